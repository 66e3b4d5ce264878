import Foundation
import HTTPTypes
import Hummingbird
import LiaisonCore
import LiaisonNode
import LiaisonStore
import NIOCore

extension TAXII {
    /// The statuses of recent `add_objects` requests, for `GET {root}/status/{id}/`: kept 24
    /// hours (TAXII 2.1 §4.3 asks for a day), at most 10,000 and at most a million object
    /// outcomes in all (the oldest go first).
    actor Statuses {
        private var held: [String: (body: [String: JSONValue], at: Date, size: Int)] = [:]
        private var order: [String] = []
        private var outcomes = 0
        static let maxStatuses = 10_000
        static let maxOutcomes = 1_000_000

        func add(_ id: String, _ body: [String: JSONValue]) {
            let now = Date()
            var size = 0
            if case .integer(let count)? = body["total_count"] { size = Int(count) }
            held[id] = (body, now, size)
            order.append(id)
            outcomes += size
            while let oldest = order.first,
                order.count > Self.maxStatuses || outcomes > Self.maxOutcomes
                    || now.timeIntervalSince(held[oldest]?.at ?? now) >= 86_400
            {
                order.removeFirst()
                outcomes -= held.removeValue(forKey: oldest)?.size ?? 0
            }
        }

        func get(_ id: String) -> [String: JSONValue]? { held[id]?.body }
    }

    /// Adds the TAXII routes under `/taxii2/`: `read` allows reading roles, `write` writing ones.
    /// `statuses` are shared by the loopback API and the HTTPS listener.
    static func addRoutes(
        read: RouterGroup<APIContext>, write: RouterGroup<APIContext>, engine: ReplicationEngine, node: LocalNode,
        federation: FederationConfig, statuses: Statuses
    ) {
        let rootPath = "/taxii2/\(root)/"

        /// Runs `body` for a request whose `Accept` allows TAXII 2.1, turning refusals and
        /// node errors into TAXII error resources.
        @Sendable func serve(_ request: Request, _ body: () async throws -> Response) async -> Response {
            guard accepts(request.headers[.accept]) else {
                return error(.notAcceptable, "this server answers application/taxii+json;version=2.1 only")
            }
            do {
                return try await body()
            } catch let refused as Refused {
                return refused.response
            } catch let failure as LiaisonError {
                return error(
                    failure.code == .invalidArgument ? .badRequest : .internalServerError, "the node could not answer",
                    failure.message)
            } catch {
                return TAXII.error(.internalServerError, "the node could not answer", "\(error)")
            }
        }

        /// The collection a path names that the caller may read.
        @Sendable func readable(_ context: APIContext) throws -> Collection {
            let id = try context.parameters.require("collection")
            guard let collection = try TAXII.collection(id, node: node, federation: federation) else {
                throw Refused(.notFound, "no collection \(id) here")
            }
            guard mayRead(context.role) else {
                throw Refused(.forbidden, "an auditor token sees no content; use a reader token")
            }
            return collection
        }

        /// The query's parameters, percent-decoded (clients send `match%5Btype%5D`).
        @Sendable func query(_ request: Request) -> [(String, String)] {
            request.uri.queryParameters.map {
                let key = String($0.key)
                let value = String($0.value).replacingOccurrences(of: "+", with: " ")
                return (key.removingPercentEncoding ?? key, value.removingPercentEncoding ?? value)
            }
        }

        read.get("") { request, _ in
            await serve(request) {
                answer([
                    "title": .string("Liaison node \(node.config.name)"),
                    "description": .string(
                        "The STIX objects held at this node of federation \(node.federationName), as need-to-know releases them to it"
                    ),
                    "default": .string(rootPath),
                    "api_roots": .array([.string(rootPath)]),
                ])
            }
        }
        read.get("\(root)") { request, _ in
            await serve(request) {
                answer([
                    "title": .string("Liaison \(node.config.name)"),
                    "versions": .array([.string(mediaType)]),
                    "max_content_length": .integer(Int64(maxContentLength)),
                ])
            }
        }
        read.get("\(root)/status/{status}") { request, context in
            await serve(request) {
                let id = try context.parameters.require("status")
                guard mayRead(context.role) else {
                    throw Refused(.forbidden, "an auditor token sees no content; use a reader token")
                }
                guard let body = await statuses.get(id) else { throw Refused(.notFound, "no status \(id) here") }
                return answer(body)
            }
        }
        read.get("\(root)/collections") { request, context in
            await serve(request) {
                let all = try collections(node: node, federation: federation)
                return answer(["collections": .array(all.map { .object($0.resource(for: context.role)) })])
            }
        }
        read.get("\(root)/collections/{collection}") { request, context in
            await serve(request) {
                let id = try context.parameters.require("collection")
                guard let collection = try TAXII.collection(id, node: node, federation: federation) else {
                    throw Refused(.notFound, "no collection \(id) here")
                }
                return answer(collection.resource(for: context.role))
            }
        }
        read.get("\(root)/collections/{collection}/objects") { request, context in
            await serve(request) {
                let collection = try readable(context)
                let filters = try Filters(query(request), collection: collection.name, allowsMatch: true)
                let found = try page(collection: collection.name, filters: filters, node: node)
                return envelope(found, collection: collection.name)
            }
        }
        read.get("\(root)/collections/{collection}/objects/{object}") { request, context in
            await serve(request) {
                let collection = try readable(context)
                let object = try context.parameters.require("object")
                let filters = try Filters(query(request), collection: collection.name, allowsMatch: false)
                if object.hasPrefix("marking-definition--") {
                    return try markingDefinition(object, in: collection, node: node)
                }
                let found = try page(collection: collection.name, filters: filters, node: node, only: object)
                if found.entries.isEmpty, filters.next == nil, filters.addedAfter == nil {
                    let any = Filters.everything(collection: collection.name)
                    if try page(collection: collection.name, filters: any, node: node, only: object, showing: false)
                        .entries.isEmpty
                    {
                        throw Refused(.notFound, "no object \(object) in collection \(collection.name)")
                    }
                }
                return envelope(found, collection: collection.name)
            }
        }
        read.get("\(root)/collections/{collection}/objects/{object}/versions") { request, context in
            await serve(request) {
                let collection = try readable(context)
                let object = try context.parameters.require("object")
                var filters = try Filters(query(request), collection: collection.name, allowsMatch: false)
                filters.versions = ["all"]
                let found = try page(collection: collection.name, filters: filters, node: node, only: object)
                guard !found.entries.isEmpty || filters.next != nil || filters.addedAfter != nil else {
                    throw Refused(.notFound, "no object \(object) in collection \(collection.name)")
                }
                var body: [String: JSONValue] = [:]
                if !found.entries.isEmpty { body["versions"] = .array(found.entries.map { .string($0.version) }) }
                paging(&body, page: found, collection: collection.name)
                return answer(body, headers: dateHeaders(found.entries))
            }
        }
        read.get("\(root)/collections/{collection}/manifest") { request, context in
            await serve(request) {
                let collection = try readable(context)
                let filters = try Filters(query(request), collection: collection.name, allowsMatch: true)
                let found = try page(collection: collection.name, filters: filters, node: node, showing: false)
                var body: [String: JSONValue] = [:]
                if !found.entries.isEmpty {
                    body["objects"] = .array(
                        found.entries.map {
                            .object([
                                "id": .string($0.id), "date_added": .string(STIXTimestamp(micros: $0.mark).text),
                                "version": .string($0.version), "media_type": .string(stixMediaType),
                            ])
                        })
                }
                paging(&body, page: found, collection: collection.name)
                return answer(body, headers: dateHeaders(found.entries))
            }
        }
        write.post("\(root)/collections/{collection}/objects") { request, context in
            await serve(request) {
                guard isTAXII(request.headers[.contentType]) else {
                    throw Refused(.unsupportedMediaType, "send application/taxii+json;version=2.1")
                }
                let id = try context.parameters.require("collection")
                guard let collection = try TAXII.collection(id, node: node, federation: federation) else {
                    throw Refused(.notFound, "no collection \(id) here")
                }
                let data: Data
                do {
                    data = Data(try await request.body.collect(upTo: maxContentLength).readableBytesView)
                } catch is NIOTooManyBytesError {
                    throw Refused(.contentTooLarge, "a request takes at most \(maxContentLength) bytes")
                }
                guard case .object(let envelope)? = try? JSONDecoder().decode(JSONValue.self, from: data),
                    case .array(let objects)? = envelope["objects"]
                else {
                    throw Refused(.badRequest, "the body must be an envelope: a JSON object with a list 'objects'")
                }
                guard objects.count <= LocalNode.maxItemsPerPut else {
                    throw Refused(
                        .contentTooLarge, "\(objects.count) objects; send at most \(LocalNode.maxItemsPerPut) at a time"
                    )
                }
                let requested = Date()
                let outcomes = try await engine.importSTIX(objects, collection: collection.name)
                let statusID = UUID().uuidString.lowercased()
                let body = statusResource(statusID, outcomes: outcomes, requested: requested)
                await statuses.add(statusID, body)
                return answer(body, status: .accepted)
            }
        }
        write.delete("\(root)/collections/{collection}/objects/{object}") { request, context in
            await serve(request) {
                let collection = try readable(context)
                let object = try context.parameters.require("object")
                let mine = node.stixItemID(object)
                guard let item = try node.store.item(mine), item.collection == collection.name, !item.isWithdrawn
                else {
                    let others = try page(
                        collection: collection.name, filters: .everything(collection: collection.name), node: node,
                        only: object, showing: false)
                    if others.entries.isEmpty { throw Refused(.notFound, "no object \(object) here") }
                    throw Refused(
                        .forbidden,
                        "object \(object) was taken in by another partner; only the node that took it in may delete it")
                }
                _ = try await engine.delete(item.id)
                var response = Response(status: .ok)
                response.headers[.contentType] = mediaType
                return response
            }
        }
    }

    /// A marking definition the collection's objects name: a TLP level, or a Liaison marking
    /// of items it holds, their own or one withholding some of their fields (found by looking
    /// through them: rare, and bounded by the scan cap).
    static func markingDefinition(_ id: String, in collection: Collection, node: LocalNode) throws -> Response {
        guard let (definition, mark) = try findDefinition(id, collection: collection.name, node: node) else {
            throw Refused(.notFound, "no marking definition \(id) in \(collection.name)")
        }
        let version = definition["created"]?.stringValue ?? ""
        let entry = Entry(
            object: definition, version: version, mark: mark == 0 ? 1 : mark, index: 0, id: id,
            type: "marking-definition", specVersion: "2.1")
        return envelope(Page(entries: [entry], more: false), collection: collection.name)
    }

    /// The marking definition `id` names, and when the item it marks changed here: a TLP
    /// level (by the TLP 2.0 ids Liaison names, not the 1.0 ids it takes in), or a Liaison
    /// marking of an item of `collection`, its own or one withholding some of its fields.
    static func findDefinition(
        _ id: String, collection: String, node: LocalNode, scanLimit: Int = maxScan
    ) throws(LiaisonError) -> (definition: [String: JSONValue], mark: Int64)? {
        if let level = STIXMarkings.TLP(id: id), level.id == id {
            let definition = level.definition
            return (definition, definition["created"]?.stringValue.flatMap(STIXTimestamp.init)?.micros ?? 0)
        }
        // Two passes: the items' own markings, which cost a hash each, over up to ten times the
        // scan cap; then the markings that withhold fields, which cost a read of the ops that
        // wrote them, over the scan cap (oldest items first: the store reads forward).
        for withholding in [false, true] {
            var after = Int64(0)
            var scanned = 0
            let limit = withholding ? scanLimit : scanLimit * 10
            while scanned < limit {
                let chunk = try node.store.itemsChanged(
                    ChangeQuery(collection: collection, tag: STIXImport.tag, after: after, limit: 500))
                after = chunk.last?.mark ?? after
                for changed in chunk where !changed.item.isWithdrawn {
                    let markings = changed.item.markings
                    var handlings = [STIXMarkings.Handling]()
                    if withholding {
                        for names in Set(try node.withholding(of: changed.item).values.map { Array(Set($0)).sorted() })
                        {
                            handlings.append(
                                STIXMarkings.Handling(
                                    federation: node.federationName, markings: markings, withheldFrom: names))
                        }
                    } else {
                        handlings.append(STIXMarkings.Handling(federation: node.federationName, markings: markings))
                    }
                    if let handling = handlings.first(where: { $0.id == id }) {
                        return (handling.definition, changed.mark)
                    }
                }
                scanned += chunk.count
                if chunk.count < 500 { break }
            }
        }
        return nil
    }

    /// An envelope of objects.
    static func envelope(_ page: Page, collection: String) -> Response {
        var body: [String: JSONValue] = [:]
        if !page.entries.isEmpty { body["objects"] = .array(page.entries.map { .object($0.object) }) }
        paging(&body, page: page, collection: collection)
        return answer(body, headers: dateHeaders(page.entries))
    }

    /// The status resource of an `add_objects` request, complete when answered.
    static func statusResource(_ id: String, outcomes: [STIXOutcome], requested: Date) -> [String: JSONValue] {
        func detail(_ outcome: STIXOutcome, _ message: String?) -> JSONValue {
            var entry: [String: JSONValue] = ["id": .string(outcome.id)]
            if let version = outcome.version { entry["version"] = .string(version) }
            if let message { entry["message"] = .string(message) }
            return .object(entry)
        }
        var successes = [JSONValue]()
        var failures = [JSONValue]()
        for outcome in outcomes {
            switch outcome.status {
            case .created: successes.append(detail(outcome, "stored"))
            case .updated: successes.append(detail(outcome, "stored as a new version"))
            case .unchanged: successes.append(detail(outcome, "already held"))
            case .superseded: successes.append(detail(outcome, "a later version is held; not stored"))
            case .definition: successes.append(detail(outcome, "a marking definition; it marks the objects naming it"))
            case .refused(let refusal): failures.append(detail(outcome, refusal.description))
            }
        }
        var body: [String: JSONValue] = [
            "id": .string(id),
            "status": .string("complete"),
            "request_timestamp": .string(
                STIXTimestamp(micros: Int64(requested.timeIntervalSince1970 * 1_000_000)).text),
            "total_count": .integer(Int64(outcomes.count)),
            "success_count": .integer(Int64(successes.count)),
            "failure_count": .integer(Int64(failures.count)),
            "pending_count": .integer(0),
        ]
        if !successes.isEmpty { body["successes"] = .array(successes) }
        if !failures.isEmpty { body["failures"] = .array(failures) }
        return body
    }
}

extension TAXII.Filters {
    /// Every version of everything (to tell "no such object" from "none after the filters").
    static func everything(collection: String) -> TAXII.Filters {
        var filters = try! TAXII.Filters([], collection: collection, allowsMatch: true)
        filters.versions = ["all"]
        return filters
    }
}
