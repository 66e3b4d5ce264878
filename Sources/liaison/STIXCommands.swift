import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode
import LiaisonStore

/// STIX 2.1 objects taken into a node in batches, for `liaison import BUNDLE` and `liaison
/// feed pull` (docs/stix.md): through the node's API when it runs, on its store otherwise.
struct STIXIntake {
    let directory: NodeDirectory
    let collection: String
    let classification: String?
    let releasableTo: [String]?
    let batch: Int

    /// Counts of what the node did.
    struct Tally: Encodable {
        var created = 0
        var updated = 0
        var unchanged = 0
        var superseded = 0
        var definitions = 0
        var refused = 0
        var total: Int { created + updated + unchanged + superseded + definitions + refused }
    }

    /// The objects that would be refused whatever the node holds (not STIX, markings it cannot
    /// honour, names its federation does not know), with why; writes nothing.
    func refusals(_ values: [JSONValue]) throws(LiaisonError) -> [(id: String, message: String)] {
        let config = try directory.loadConfig()
        let federation = try FederationConfig.loadIfPresent(from: directory)
        var objects = [STIXObject]()
        var refused = [(id: String, message: String)]()
        for (index, value) in values.enumerated() {
            do {
                objects.append(try STIXObject(value))
            } catch {
                refused.append((Self.id(of: value) ?? "object \(index + 1)", error.description))
            }
        }
        var importer = STIXImport(
            collection: collection, federation: federation?.federation ?? config.name,
            definitions: objects.filter { $0.type == "marking-definition" })
        importer.classification = classification
        importer.releasableTo = releasableTo
        let liaison: Set<String> = [STIXMarkings.liaisonIdentity, STIXMarkings.liaisonExtension]
        for object in objects where object.type != "marking-definition" && !liaison.contains(object.id) {
            do {
                if case .create(let request) = try importer.decide(object, existing: nil) {
                    do {
                        _ = try request.validatedMarkings(config: config, federation: federation, now: Date())
                    } catch {
                        refused.append((object.id, "refused: \(object.id): \(error.message)"))
                    }
                }
            } catch {
                refused.append((object.id, error.description))
            }
        }
        return refused
    }

    static func id(of value: JSONValue) -> String? {
        if case .object(let properties) = value { return properties["id"]?.stringValue }
        return nil
    }

    /// Takes `values` in, `batch` objects at a time (each batch with every marking definition
    /// of `values`); prints each refusal on stderr; `progress` follows.
    func run(_ values: [JSONValue], progress: Progress?) async throws(LiaisonError) -> Tally {
        let definitions = values.filter {
            if case .object(let properties) = $0 { return properties["type"] == .string("marking-definition") }
            return false
        }
        let objects = values.filter {
            if case .object(let properties) = $0 { return properties["type"] != .string("marking-definition") }
            return true
        }
        var tally = Tally()
        tally.definitions = definitions.count
        var done = 0
        func count(_ status: String, _ id: String, _ error: String?) {
            switch status {
            case "created": tally.created += 1
            case "updated": tally.updated += 1
            case "unchanged": tally.unchanged += 1
            case "superseded": tally.superseded += 1
            case "definition": break
            default:
                tally.refused += 1
                printError(error ?? "\(id): refused")
            }
        }
        try await onNode(
            directory,
            running: { client throws(LiaisonError) in
                for start in stride(from: 0, to: objects.count, by: batch) {
                    let chunk = Array(objects[start..<min(objects.count, start + batch)])
                    let result = try await client.importSTIX(
                        STIXImportBody(
                            collection: collection, classification: classification, relTo: releasableTo,
                            objects: definitions + chunk))
                    for outcome in result.outcomes { count(outcome.status, outcome.id, outcome.error) }
                    done += chunk.count
                    progress?.update(done)
                }
            },
            stopped: { node throws(LiaisonError) in
                for start in stride(from: 0, to: objects.count, by: batch) {
                    let chunk = Array(objects[start..<min(objects.count, start + batch)])
                    let (outcomes, _) = try node.importSTIX(
                        definitions + chunk, collection: collection, classification: classification,
                        releasableTo: releasableTo, now: Date())
                    for outcome in outcomes {
                        let result = STIXImportResult.Outcome(outcome)
                        count(result.status, result.id, result.error)
                    }
                    done += chunk.count
                    progress?.update(done)
                }
            })
        return tally
    }

    /// `created 3, new versions 1, already held 2, …` (the parts that are not zero).
    static func describe(_ tally: Tally) -> String {
        let parts = [
            (tally.created, "created"), (tally.updated, "new versions"), (tally.unchanged, "already held"),
            (tally.superseded, "superseded"), (tally.refused, "refused"),
        ].filter { $0.0 > 0 }.map { "\($0.1) \($0.0)" }
        return parts.isEmpty ? "nothing new" : parts.joined(separator: ", ")
    }
}

/// A STIX 2.1 bundle in a file.
enum STIXBundle {
    /// The objects of `data` when it is a STIX bundle (a JSON object of type `bundle`); nil
    /// when it is something else (JSON lines of items).
    static func objects(in data: Data) throws(LiaisonError) -> [JSONValue]? {
        guard let first = data.first(where: { ![0x20, 0x09, 0x0a, 0x0d].contains($0) }), first == UInt8(ascii: "{")
        else { return nil }
        guard case .object(let bundle)? = try? JSONDecoder().decode(JSONValue.self, from: data) else {
            return nil  // the first line of JSON lines
        }
        guard bundle["type"] == .string("bundle") else { return nil }
        guard case .array(let objects)? = bundle["objects"] ?? .array([]) else {
            throw LiaisonError(.invalidArgument, "the bundle's 'objects' is not a list")
        }
        return objects
    }

    /// A bundle of `objects` with the definitions they need first, as `liaison export` writes it.
    static func bundle(objects: [[String: JSONValue]], definitions: [[String: JSONValue]]) -> JSONValue {
        var seen = Set<String>()
        var head = [JSONValue]()
        let needsLiaison = definitions.contains { definition in
            if case .object(let extensions)? = definition["extensions"] {
                return extensions[STIXMarkings.liaisonExtension] != nil
            }
            return false
        }
        if needsLiaison {
            head.append(.object(STIXMarkings.liaisonIdentityObject))
            head.append(.object(STIXMarkings.liaisonExtensionDefinition))
        }
        for definition in definitions {
            guard let id = definition["id"]?.stringValue, seen.insert(id).inserted else { continue }
            head.append(.object(definition))
        }
        return .object([
            "type": .string("bundle"),
            "id": .string("bundle--\(UUID().uuidString.lowercased())"),
            "objects": .array(head + objects.map(JSONValue.object)),
        ])
    }
}

/// `liaison export`: a collection's STIX objects as a bundle.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a collection's STIX 2.1 objects held here as a bundle.",
        discussion: """
            Every STIX object of the collection this node holds, at its latest version, marked \
            with its TLP level and its Liaison marking (docs/stix.md, "Export"), with the \
            marking definitions they name first. --since keeps the objects that changed here \
            after a time. Through the node's TAXII server when it runs, from its store otherwise.
            """
    )

    @OptionGroup var directory: DirectoryOption

    @Option(help: "The collection.")
    var collection = "stix"

    @Option(help: "Only objects that changed here after this time (ISO 8601).")
    var since: String?

    @Option(help: "Write the bundle to this file instead of standard output.")
    var out: String?

    func run() async throws {
        try await reportingErrorsAsync {
            let nodeDirectory = NodeDirectory(path: directory.dir)
            var after: STIXTimestamp?
            if let since {
                guard let date = ISO8601.parse(since) else {
                    throw LiaisonError(.invalidArgument, "--since '\(since)' is not an ISO 8601 time")
                }
                after = STIXTimestamp(micros: ISO8601.millis(date) * 1000)
            }
            var objects = [[String: JSONValue]]()
            var definitions = [[String: JSONValue]]()
            try await onNode(
                nodeDirectory,
                running: { _ throws(LiaisonError) in
                    let client = try TAXIIClient(node: nodeDirectory, collection: collection)
                    var next: String?
                    repeat {
                        let page = try await client.objects(addedAfter: next == nil ? after?.text : nil, next: next)
                        for case .object(let object) in page.objects { objects.append(object) }
                        next = page.more ? page.next : nil
                    } while next != nil
                    var refs = Set<String>()
                    for object in objects {
                        if case .array(let list)? = object["object_marking_refs"] {
                            refs.formUnion(list.compactMap(\.stringValue))
                        }
                    }
                    for ref in refs.sorted() {
                        if let level = STIXMarkings.TLP(id: ref) {
                            definitions.append(level.definition)
                        } else if case .object(let definition)? = try await client.object(ref) {
                            definitions.append(definition)
                        }
                    }
                },
                stopped: { node throws(LiaisonError) in
                    var mark = after?.micros ?? 0
                    while true {
                        let chunk = try node.store.itemsChanged(
                            ChangeQuery(collection: collection, tag: STIXImport.tag, after: mark, limit: 1000))
                        for changed in chunk where !changed.item.isWithdrawn {
                            guard let shown = STIXExport.object(of: changed.item, federation: node.federationName)
                            else { continue }
                            objects.append(shown.object)
                            definitions += shown.definitions
                        }
                        guard let last = chunk.last, chunk.count == 1000 else { break }
                        mark = last.mark
                    }
                })
            let bundle = STIXBundle.bundle(objects: objects, definitions: definitions)
            var text = bundle.jsonText
            text.append(0x0a)
            if let out {
                guard FileManager.default.createFile(atPath: out, contents: text) else {
                    throw LiaisonError(.io, "cannot write \(out)")
                }
            } else {
                FileHandle.standardOutput.write(text)
            }
            FileHandle.standardError.write(Data("exported \(objects.count) objects of collection \(collection)\n".utf8))
        }
    }
}

/// `liaison feed`: STIX feeds from other TAXII servers.
struct FeedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feed",
        abstract: "Take in STIX feeds from other TAXII 2.1 servers.",
        subcommands: [FeedPullCommand.self]
    )
}

/// `liaison feed pull URL`: what a TAXII collection added since the last pull.
struct FeedPullCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Take in what a TAXII 2.1 collection added since the last pull.",
        discussion: """
            URL is the server's API root (e.g. https://feeds.example/api1/). The objects are \
            read page by page and taken in as `liaison import` takes a bundle (docs/stix.md); \
            the time of the last object read (X-TAXII-Date-Added-Last) is kept in the node \
            directory's feeds.json, and the next pull asks only for what was added after it. \
            Objects without a Liaison marking get --classification (default: the lowest) and, \
            when TLP lets them go to partners (CLEAR, GREEN) or they carry no marking, --rel-to \
            (default: every partner for CLEAR and GREEN, no one for unmarked objects). AMBER, \
            AMBER+STRICT and RED stay at this node whatever --rel-to says.
            """
    )

    @OptionGroup var directory: DirectoryOption

    @Argument(help: "The TAXII server's API root URL.")
    var url: String

    @Option(help: "The collection's id at that server.")
    var collection: String

    @Option(help: "The Liaison collection the objects go to.")
    var into = "stix"

    @Option(help: "HTTP Basic user name (with --password-file).")
    var user: String?

    @Option(help: "A file holding the HTTP Basic password.")
    var passwordFile: String?

    @Option(help: "A file holding a bearer token (instead of HTTP Basic).")
    var tokenFile: String?

    @Option(help: "Classification of objects without a Liaison marking.")
    var classification: String?

    @Option(parsing: .upToNextOption, help: "REL TO of objects without a Liaison marking that TLP lets go.")
    var relTo: [String] = []

    @Option(help: "Objects per request to the node (1 to \(LocalNode.maxItemsPerPut)).")
    var batch = 1000

    @Flag(help: "Print the summary as JSON.")
    var json = false

    private struct Summary: Encodable {
        var read: Int
        var tally: STIXIntake.Tally
        var addedAfter: String?
    }

    func run() async throws {
        try await reportingErrorsAsync {
            guard (1...LocalNode.maxItemsPerPut).contains(batch) else {
                throw LiaisonError(.invalidArgument, "--batch \(batch): use 1 to \(LocalNode.maxItemsPerPut)")
            }
            guard let root = URL(string: url), ["http", "https"].contains(root.scheme?.lowercased() ?? "") else {
                throw LiaisonError(.invalidArgument, "'\(url)' is not an http(s) URL of a TAXII API root")
            }
            let credentials = try credentials()
            let nodeDirectory = NodeDirectory(path: directory.dir)
            var feeds = try FeedState.load(nodeDirectory)
            let key = "\(root.absoluteString) \(collection)"
            let client = TAXIIClient(apiRoot: root, collection: collection, credentials: credentials)
            let intake = STIXIntake(
                directory: nodeDirectory, collection: into, classification: classification,
                releasableTo: relTo.isEmpty ? nil : relTo.flatMap { $0.split(separator: ",").map(String.init) },
                batch: batch)
            var tally = STIXIntake.Tally()
            var read = 0
            var addedAfter = feeds[key]
            var next: String?
            repeat {
                let page = try await client.objects(addedAfter: next == nil ? addedAfter : nil, next: next)
                read += page.objects.count
                let done = try await intake.run(page.objects, progress: nil)
                tally.created += done.created
                tally.updated += done.updated
                tally.unchanged += done.unchanged
                tally.superseded += done.superseded
                tally.definitions += done.definitions
                tally.refused += done.refused
                if let last = page.dateAddedLast { addedAfter = last }
                next = page.more ? page.next : nil
                if page.more, next == nil, page.dateAddedLast != nil, !page.objects.isEmpty {
                    // A server that pages by time only: go on after the page's last object.
                    addedAfter = page.dateAddedLast
                    continue
                }
                if next == nil { break }
            } while true
            if let addedAfter {
                feeds[key] = addedAfter
                try FeedState.save(feeds, nodeDirectory)
            }
            if json {
                try printJSON(Summary(read: read, tally: tally, addedAfter: addedAfter))
            } else {
                print(
                    "pulled \(read) objects from \(root.absoluteString) collection \(collection) into \(into): "
                        + STIXIntake.describe(tally) + (addedAfter.map { "; next pull after \($0)" } ?? ""))
            }
            if tally.refused > 0 {
                throw LiaisonError(
                    .invalidArgument, "\(tally.refused) objects refused (named above); the others were taken in")
            }
        }
    }

    private func credentials() throws(LiaisonError) -> TAXIIClient.Credentials {
        func secret(_ path: String) throws(LiaisonError) -> String {
            guard let data = FileManager.default.contents(atPath: path),
                let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
                !text.isEmpty
            else { throw LiaisonError(.notFound, "cannot read a secret from \(path)") }
            return text
        }
        if let tokenFile {
            guard user == nil, passwordFile == nil else {
                throw LiaisonError(.invalidArgument, "give --token-file, or --user with --password-file, not both")
            }
            return .bearer(try secret(tokenFile))
        }
        if let user {
            guard let passwordFile else {
                throw LiaisonError(.invalidArgument, "--user needs --password-file (a password is never a flag)")
            }
            return .basic(user: user, password: try secret(passwordFile))
        }
        guard passwordFile == nil else { throw LiaisonError(.invalidArgument, "--password-file needs --user") }
        return .none
    }
}

/// `feeds.json` in a node directory: per feed (API root and collection), the
/// `X-TAXII-Date-Added-Last` of the last pull.
enum FeedState {
    static func url(_ directory: NodeDirectory) -> URL { directory.url.appendingPathComponent("feeds.json") }

    static func load(_ directory: NodeDirectory) throws(LiaisonError) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: url(directory).path) else { return [:] }
        do {
            return try JSONDecoder().decode([String: String].self, from: data)
        } catch {
            throw LiaisonError(.corrupt, "\(url(directory).path) is damaged; delete it to pull every feed afresh")
        }
    }

    static func save(_ feeds: [String: String], _ directory: NodeDirectory) throws(LiaisonError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(feeds) else { throw LiaisonError(.io, "cannot encode feeds.json") }
        try OwnerOnlyFiles.write(data, to: url(directory), replacing: true)
    }
}
