import ArgumentParser

@main
struct Liaison: ParsableCommand {
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
            InitCommand.self, PutCommand.self, GetCommand.self, ListCommand.self, AuditCommand.self,
            BenchCommand.self,
        ]
    )
}
