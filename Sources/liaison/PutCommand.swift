import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode

struct PutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put",
        abstract: "Create an item and print its id.",
        discussion: """
            An item without --rel-to stays with this node. REL TO names partners or groups of the \
            node's federation, or the node itself; ALL releases to every partner. An unknown name is \
            refused. --field values are strings; --field-json values are JSON.
            """
    )

    @OptionGroup var directory: DirectoryOption

    @Option(help: "The collection, e.g. reports or indicators.")
    var collection: String

    @Option(help: "Classification level (default: the lowest level of the federation's ladder).")
    var classification: String?

    @Option(name: .customLong("rel-to"), help: "Partners or groups it is releasable to, comma-separated; may repeat.")
    var relTo: [String] = []

    @Flag(help: "Originator controls dissemination: partners may not pass it on.")
    var orcon = false

    @Option(help: "A handling caveat; may repeat.")
    var caveat: [String] = []

    @Option(help: "When the content must be purged, ISO 8601 (e.g. 2027-01-31T00:00:00Z).")
    var expires: String?

    @Option(help: "A tag; may repeat.")
    var tag: [String] = []

    @Option(help: ArgumentHelp("A field with a string value; may repeat.", valueName: "name=value"))
    var field: [String] = []

    @Option(
        name: .customLong("field-json"),
        help: ArgumentHelp("A field with a JSON value; may repeat.", valueName: "name=json")
    )
    var fieldJSON: [String] = []

    @Flag(help: "Let partners entitled to the item annotate it (write fields and tags).")
    var annotations = false

    @Option(
        help: ArgumentHelp(
            "Withhold a field's value from partners or groups on every path (signed in the item); may repeat.",
            valueName: "field=name,name"))
    var withhold: [String] = []

    @Flag(help: "Print JSON.")
    var json = false

    private struct Output: Encodable {
        var id: String
        var opID: String
        var digest: String
    }

    func run() async throws {
        try await reportingErrorsAsync {
            var fields = [(name: String, value: Data)]()
            for text in field {
                let (name, value) = try splitAssignment(text, flag: "--field")
                fields.append((name, try JSONEncoder().encode(value)))
            }
            for text in fieldJSON {
                let (name, value) = try splitAssignment(text, flag: "--field-json")
                let data = Data(value.utf8)
                guard (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) != nil else {
                    throw LiaisonError(
                        .invalidArgument, "--field-json \(name)=…: the value is not JSON; use --field for text")
                }
                fields.append((name, data))
            }
            var expiresAt: Date?
            if let expires {
                guard let date = ISO8601.parse(expires) else {
                    throw LiaisonError(
                        .invalidArgument, "--expires '\(expires)' is not ISO 8601, e.g. 2027-01-31T00:00:00Z")
                }
                expiresAt = date
            }
            var withheld = [String: [String]]()
            for text in withhold {
                guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
                    throw LiaisonError(.invalidArgument, "--withhold '\(text)': use FIELD=PARTNER[,PARTNER…]")
                }
                let names = text[text.index(after: equals)...].split(separator: ",").map {
                    String($0).trimmingCharacters(in: .whitespaces)
                }
                guard !names.isEmpty else {
                    throw LiaisonError(.invalidArgument, "--withhold '\(text)': name at least one partner or group")
                }
                withheld[String(text[..<equals]), default: []] += names
            }
            let request = PutRequest(
                collection: collection,
                classification: classification,
                releasableTo: relTo.flatMap {
                    $0.split(separator: ",", omittingEmptySubsequences: false).map {
                        String($0).trimmingCharacters(in: .whitespaces)
                    }
                },
                orcon: orcon,
                caveats: caveat,
                expiresAt: expiresAt,
                tags: tag,
                fields: fields,
                writePolicy: annotations ? .annotations : .originatorOnly,
                withheld: withheld
            )
            let nodeDirectory = NodeDirectory(path: directory.dir)
            let now = Date()
            // Validate before anything is opened, so bad input writes nothing.
            _ = try request.validatedMarkings(
                config: try nodeDirectory.loadConfig(),
                federation: try FederationConfig.loadIfPresent(from: nodeDirectory),
                now: now
            )
            let output: Output
            if RunningNode.runningPID(nodeDirectory) != nil {
                // The node runs: go through its API so it pushes the item at once.
                var values = [String: JSONValue]()
                for (name, value) in request.fields {
                    values[name] = try? JSONDecoder().decode(JSONValue.self, from: value)
                }
                let body = PutItemBody(
                    collection: request.collection,
                    classification: request.classification,
                    relTo: request.releasableTo,
                    orcon: request.orcon,
                    caveats: request.caveats,
                    expiresAt: expires,
                    tags: request.tags,
                    fields: values,
                    annotations: annotations,
                    withhold: withheld.isEmpty ? nil : withheld
                )
                let result = try await NodeClient(directory: nodeDirectory).put(body)
                output = Output(id: result.id, opID: result.opID, digest: result.digest)
            } else {
                let node = try LocalNode.openForCommand(nodeDirectory)
                let (item, op) = try node.put(request, now: now)
                output = Output(id: item.id.text, opID: op.id.hash.hex, digest: item.digest.hex)
            }
            if json {
                try printJSON(output)
            } else {
                print(output.id)
            }
        }
    }

    private func splitAssignment(_ text: String, flag: String) throws(LiaisonError) -> (String, String) {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
            throw LiaisonError(.invalidArgument, "\(flag) '\(text)' must look like name=value")
        }
        return (String(text[..<equals]), String(text[text.index(after: equals)...]))
    }
}
