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
                    try printJSON(report)
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
            abstract: "Check a report's signature against the NodeID it names (exit 0 when it holds, 65 when not).",
            discussion: """
                Checks that the signing key is the NodeID's and that nothing changed after signing. \
                Compare the NodeID with the partner's in your federation.json, and the custody head \
                with what 'liaison audit verify' prints at that node.
                """
        )

        @Argument(help: "The report, as 'liaison report --json' printed it.")
        var file: String

        func run() throws {
            try reportingErrors {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw LiaisonError(.notFound, "cannot read \(file)")
                }
                let report: TransparencyReport
                do {
                    report = try JSONDecoder().decode(TransparencyReport.self, from: data)
                } catch {
                    throw LiaisonError(
                        .invalidArgument, "\(file) is not a transparency report as 'liaison report --json' prints it")
                }
                try report.verify()
                print(
                    "report verified: signed by \(report.node) (\(report.nodeID)), custody head \(report.custodyHead.sequence) \(report.custodyHead.hash)"
                )
            }
        }
    }
}
