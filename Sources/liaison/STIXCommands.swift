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
    /// Whether the objects come from a feed (Liaison markings in them are refused).
    var fromFeed = false

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
        importer.fromFeed = fromFeed
        importer.me = Recipient(
            name: config.name, nodeID: config.nodeID,
            groups: Set(federation?.partners.first { $0.name == config.name }?.groups ?? []))
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
    /// of `values`); prints each refusal on stderr; `progress` follows. One outcome per object
    /// (definitions once).
    func run(_ values: [JSONValue], progress: Progress?) async throws(LiaisonError) -> [STIXImportResult.Outcome] {
        let definitions = values.filter {
            if case .object(let properties) = $0 { return properties["type"] == .string("marking-definition") }
            return false
        }
        let objects = values.filter {
            if case .object(let properties) = $0 { return properties["type"] != .string("marking-definition") }
            return true
        }
        var outcomes = [STIXImportResult.Outcome]()
        var done = 0
        var first = true
        func record(_ batch: [STIXImportResult.Outcome], chunk: Int) {
            // Each batch repeats the definitions; they are counted once.
            for outcome in batch where outcome.status != "definition" || first {
                if outcome.status == "refused" { printError(outcome.error ?? "\(outcome.id): refused") }
                outcomes.append(outcome)
            }
            first = false
            done += chunk
            progress?.update(done)
        }
        try await onNode(
            directory,
            running: { client throws(LiaisonError) in
                for start in stride(from: 0, to: max(objects.count, 1), by: batch) {
                    let chunk = Array(objects[start..<min(objects.count, start + batch)])
                    let result = try await client.importSTIX(
                        STIXImportBody(
                            collection: collection, classification: classification, relTo: releasableTo,
                            objects: definitions + chunk, feed: fromFeed))
                    record(result.outcomes, chunk: chunk.count)
                }
            },
            stopped: { node throws(LiaisonError) in
                for start in stride(from: 0, to: max(objects.count, 1), by: batch) {
                    let chunk = Array(objects[start..<min(objects.count, start + batch)])
                    let (taken, _) = try node.importSTIX(
                        definitions + chunk, collection: collection, classification: classification,
                        releasableTo: releasableTo, fromFeed: fromFeed, now: Date())
                    record(taken.map(STIXImportResult.Outcome.init), chunk: chunk.count)
                }
            })
        return outcomes
    }

    /// The outcomes counted.
    static func tally(_ outcomes: [STIXImportResult.Outcome]) -> STIXTally {
        var tally = STIXTally()
        for outcome in outcomes { tally.count(outcome) }
        return tally
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
                        // Withholding of properties, by granular markings.
                        if case .array(let entries)? = object["granular_markings"] {
                            for case .object(let entry) in entries {
                                if let ref = entry["marking_ref"]?.stringValue { refs.insert(ref) }
                            }
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
                            guard
                                let shown = STIXExport.object(
                                    of: changed.item, federation: node.federationName,
                                    withheld: try node.withholding(of: changed.item))
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
                // Owner-only, as everything Liaison writes: the bundle holds items in clear.
                try OwnerOnlyFiles.write(text, to: URL(fileURLWithPath: out), replacing: true)
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

    func run() async throws {
        try await reportingErrorsAsync {
            guard (1...LocalNode.maxItemsPerPut).contains(batch) else {
                throw LiaisonError(.invalidArgument, "--batch \(batch): use 1 to \(LocalNode.maxItemsPerPut)")
            }
            if tokenFile != nil, user != nil || passwordFile != nil {
                throw LiaisonError(.invalidArgument, "give --token-file, or --user with --password-file, not both")
            }
            if user != nil, passwordFile == nil {
                throw LiaisonError(.invalidArgument, "--user needs --password-file (a password is never a flag)")
            }
            if passwordFile != nil, user == nil { throw LiaisonError(.invalidArgument, "--password-file needs --user") }
            let audience = relTo.flatMap { $0.split(separator: ",").map(String.init) }
            let feed = FeedSource(
                url: url, collection: collection, into: into, user: user, passwordFile: passwordFile,
                tokenFile: tokenFile, classification: classification, relTo: audience.isEmpty ? nil : audience)
            let nodeDirectory = NodeDirectory(path: directory.dir)
            var intake = STIXIntake(
                directory: nodeDirectory, collection: into, classification: classification,
                releasableTo: feed.relTo, batch: batch)
            intake.fromFeed = true
            let pull = try await FeedPuller.pull(feed, directory: nodeDirectory) { values throws(LiaisonError) in
                try await intake.run(values, progress: nil)
            }
            if json {
                try printJSON(pull)
            } else {
                print(
                    "pulled \(pull.read) objects from \(url) collection \(collection) into \(into): "
                        + pull.tally.description + (pull.addedAfter.map { "; next pull after \($0)" } ?? ""))
            }
            if pull.tally.refused > 0 {
                throw LiaisonError(
                    .invalidArgument, "\(pull.tally.refused) objects refused (named above); the others were taken in")
            }
        }
    }
}
