import ArgumentParser

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
            InitCommand.self, RunCommand.self, PutCommand.self, GetCommand.self, ListCommand.self, LinksCommand.self,
            AuditCommand.self, TopologyCommand.self, DemoCommand.self, DrillCommand.self, BenchCommand.self,
        ]
    )
}
