import ArgumentParser
import Foundation
import LiaisonCore
import LiaisonNode

struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Check and render federation topologies (topology/*.yaml; schema in docs/topology.md).",
        subcommands: [Check.self, Render.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a topology file; print its partners and links.")

        @Argument(help: "The topology file.")
        var file: String

        func run() throws {
            try reportingErrors {
                let topology = try Topology.load(path: file)
                print(
                    "federation \(topology.federation): \(topology.partners.count) partners, \(topology.links.count) links"
                )
                for link in topology.links { print("  \(link.from) -> \(link.to)") }
            }
        }
    }

    struct Render: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write one ready-to-run node directory per partner (identity, pins, filters, API token)."
        )

        @Argument(help: "The topology file.")
        var file: String

        @Option(help: "Where to write the node directories (one per partner, named after it).")
        var out: String

        @Flag(help: "Print JSON.")
        var json = false

        private struct Row: Encodable {
            var name: String
            var nodeID: String
            var tlsFingerprint: String
            var dir: String
        }

        func run() throws {
            try reportingErrors {
                let topology = try Topology.load(path: file)
                let made = try topology.render(into: URL(fileURLWithPath: out), now: Date())
                let rows = topology.partners.map { partner in
                    let (config, directory) = made[partner.name]!
                    return Row(
                        name: partner.name, nodeID: config.nodeID.text, tlsFingerprint: config.tlsFingerprint,
                        dir: directory.url.path)
                }
                if json {
                    try printJSON(rows)
                } else {
                    printTable(
                        header: ["PARTNER", "NODEID", "DIRECTORY"], rows: rows.map { [$0.name, $0.nodeID, $0.dir] })
                    print("start each node with: liaison run --dir DIRECTORY")
                }
            }
        }
    }
}
