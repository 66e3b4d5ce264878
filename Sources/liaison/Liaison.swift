import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@main
struct Liaison: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "liaison",
        abstract: "Federated, need-to-know sync of sensitive items between partner nodes.",
        discussion: """
            Every partner runs one node with its own store. A node directory holds the node's \
            identity (keys, TLS certificate), its store and its custody log.
            Start with: liaison init --name NAME --dir DIR
            """,
        version: "0.1.0",
        subcommands: [
            InitCommand.self, RunCommand.self, PutCommand.self, GetCommand.self, ListCommand.self,
            DeleteCommand.self, MarkCommand.self, RecallCommand.self, LinksCommand.self,
            AuditCommand.self, QuarantineCommand.self, ReleaseCommand.self, QuarantinesCommand.self,
            RevokeCommand.self, ReadmitCommand.self, RevocationsCommand.self, RekeyCommand.self,
            TopologyCommand.self, ImportCommand.self, ExportCommand.self, FeedCommand.self, DemoCommand.self,
            DrillCommand.self, BenchCommand.self,
            ReportCommand.self,
        ]
    )

    /// Everything a command creates is owner-only (directories 0700, files 0600): node
    /// directories hold private keys and every item in clear. The library creates node files
    /// with those modes itself; the umask covers anything else the process writes (bench
    /// stores, demo and drill directories, logs) and the nodes the demo and drills start.
    static func main() async {
        umask(0o077)
        await main(nil)
    }
}
