import ArgumentParser
import Foundation
import LiaisonCore
import LiaisonNode

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a node identity (signing, sealing and TLS keys) and an empty store.",
        discussion:
            "Prints the NodeID and the TLS certificate fingerprint that partners pin. Never overwrites an identity."
    )

    @Option(help: "The partner's name: 1-64 letters, digits, '.', '_' or '-'.")
    var name: String

    @OptionGroup var directory: DirectoryOption

    @Option(
        name: .customLong("classifications"),
        help:
            "The federation's classification levels, lowest first, comma-separated (default: UNCLASSIFIED,RESTRICTED,CONFIDENTIAL,SECRET,TOP SECRET)."
    )
    var classifications: String?

    @Flag(help: "Print JSON.")
    var json = false

    private struct Output: Encodable {
        var name: String
        var nodeID: String
        var tlsFingerprint: String
        var dir: String
    }

    func run() throws {
        try reportingErrors {
            let ladder =
                try classifications.map {
                    try ClassificationLadder(
                        levels: $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) })
                } ?? .standard
            let nodeDirectory = NodeDirectory(path: directory.dir)
            let (config, _) = try nodeDirectory.initialize(name: name, classifications: ladder, now: Date())
            let output = Output(
                name: config.name,
                nodeID: config.nodeID.text,
                tlsFingerprint: config.tlsFingerprint,
                dir: nodeDirectory.url.path
            )
            if json {
                try printJSON(output)
            } else {
                print("node      \(output.name)")
                print("NodeID    \(output.nodeID)")
                print("TLS pin   sha256:\(output.tlsFingerprint)")
                print("directory \(output.dir)")
            }
        }
    }
}
