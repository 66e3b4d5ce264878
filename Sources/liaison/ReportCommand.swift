import ArgumentParser
import Foundation
import LiaisonCore
import LiaisonNode

/// `liaison report`: the signed transparency report (docs/operations.md, "Transparency
/// report"), and `liaison report verify` for the oversight body that receives one.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract:
            "What this node shared with whom over a period: counts from the custody log, signed, without content.",
        subcommands: [Make.self, Verify.self],
        defaultSubcommand: Make.self
    )

    struct Make: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "make",
            abstract: "Compute and sign the report (the default).",
            discussion: """
                Per partner: ops and items sent and received, withheld (by reason), redacted, refused, \
                recalled and purged, by classification and collection; strikes by class; quarantines \
                and releases. No item ids, op ids or values. It names the custody chain head it was \
                computed from ('liaison audit verify' prints the same) and is signed with the node's \
                key; 'liaison report verify FILE' checks it. Works whether the node runs or not.
                """
        )

        @OptionGroup var directory: DirectoryOption

        @Option(help: "Start of the period: ISO 8601 (2026-11-01 or 2026-11-01T00:00:00Z).")
        var from: String

        @Option(help: "End of the period (exclusive): ISO 8601, or 'now'. Default: now.")
        var to = "now"

        @Flag(help: "Print the signed report as JSON (what 'liaison report verify' reads).")
        var json = false

        @Flag(help: "Print the report as a self-contained HTML page.")
        var html = false

        func run() throws {
            try reportingErrors {
                guard !(json && html) else { throw LiaisonError(.invalidArgument, "choose one of --json and --html") }
                guard let start = ISO8601.parse(from) else {
                    throw LiaisonError(.invalidArgument, "--from '\(from)' is not ISO 8601 (e.g. 2026-11-01T00:00:00Z)")
                }
                let now = Date()
                guard let end = to == "now" ? now : ISO8601.parse(to) else {
                    throw LiaisonError(.invalidArgument, "--to '\(to)' is not ISO 8601 or 'now'")
                }
                let nodeDirectory = NodeDirectory(path: directory.dir)
                let node = try LocalNode.openForCommand(nodeDirectory)
                let federation = try? FederationConfig.load(from: nodeDirectory)
                let report = try TransparencyReport.make(
                    node: node, federation: federation, from: start, to: end, now: now)
                if json {
                    FileHandle.standardOutput.write(try report.fileForm())
                } else if html {
                    print(report.html())
                } else {
                    print(report.text())
                }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Check a report: its form, its signature, and that it comes from the partner you expect (exit 0 when all hold, 65 when not).",
            discussion: """
                Give the NodeID you know for the partner (--node-id), or your own federation.json \
                (--federation), in which the report's partner name must have the report's NodeID: \
                a valid signature only proves that some key signed it. Compare the custody head \
                with what 'liaison audit verify' prints at that node.
                """
        )

        @Argument(help: "The report, as 'liaison report --json' printed it.")
        var file: String

        @Option(help: "The NodeID the report must come from.")
        var nodeId: String?

        @Option(help: "A federation.json naming the report's partner with its NodeID.")
        var federation: String?

        func run() throws {
            try reportingErrors {
                guard (nodeId == nil) != (federation == nil) else {
                    throw LiaisonError(
                        .invalidArgument,
                        "give the partner's NodeID (--node-id) or your federation.json (--federation), one of them")
                }
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw LiaisonError(.notFound, "cannot read \(file)")
                }
                let report = try TransparencyReport.verified(file: data)
                if let nodeId, nodeId != report.nodeID {
                    throw LiaisonError(.tampered, "the report is signed by \(report.nodeID), not by \(nodeId)")
                }
                if let federation {
                    guard let bytes = FileManager.default.contents(atPath: federation),
                        let config = try? JSONDecoder().decode(FederationConfig.self, from: bytes)
                    else { throw LiaisonError(.invalidArgument, "\(federation) is not a federation.json") }
                    guard let partner = config.partners.first(where: { $0.name == report.node }) else {
                        throw LiaisonError(.tampered, "\(federation) names no partner \(Self.printable(report.node))")
                    }
                    guard partner.nodeID.text == report.nodeID else {
                        throw LiaisonError(
                            .tampered,
                            "the report claims to be \(Self.printable(report.node))'s, but is signed by \(report.nodeID), not \(partner.nodeID.text)"
                        )
                    }
                }
                print(
                    "report verified: signed by \(report.nodeID) (\(Self.printable(report.node))), custody head \(report.custodyHead.sequence) \(Self.printable(report.custodyHead.hash))"
                )
            }
        }

        /// Text from the report with control characters shown as `?`, so a name cannot rewrite
        /// the terminal's line.
        static func printable(_ text: String) -> String {
            String(text.unicodeScalars.map { CharacterSet.controlCharacters.contains($0) ? "?" : Character($0) })
        }
    }
}
