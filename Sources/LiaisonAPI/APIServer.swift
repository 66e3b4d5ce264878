import Foundation
public import Hummingbird
import LiaisonCore
public import LiaisonNode
import LiaisonStore
public import Logging
public import ServiceLifecycle

extension ItemView: ResponseEncodable {}
extension LinkStatus: ResponseEncodable {}
extension PutItemResult: ResponseEncodable {}
extension CustodyEntry: ResponseEncodable {}
extension QuarantineResult: ResponseEncodable {}
extension ContainmentView: ResponseEncodable {}
extension LifecycleView: ResponseEncodable {}

/// Requires `Authorization: Bearer TOKEN` (compared in constant time).
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let presented = Array((request.headers[.authorization] ?? "").utf8)
        let expected = Array("Bearer ".utf8) + token
        var difference = presented.count ^ expected.count
        for index in 0..<min(presented.count, expected.count) { difference |= Int(presented[index] ^ expected[index]) }
        guard difference == 0 else {
            throw HTTPError(
                .unauthorized, message: "missing or wrong bearer token; it is in the node directory's api.token")
        }
        return try await next(request, context)
    }
}

/// The node's loopback HTTP API (DESIGN §7), on Hummingbird 2.
public enum APIServer {
    /// Whether a node is ready, and the line `/readyz` answers: ready when the store answers
    /// a read (`readStore` does not throw) and the node has at least one link.
    public static func readiness(
        links: Int, readStore: () throws -> Void
    ) -> (ready: Bool, text: String) {
        do {
            try readStore()
        } catch {
            let message = (error as? LiaisonError)?.message ?? "\(error)"
            return (false, "not ready: the store does not answer: \(message)")
        }
        guard links > 0 else {
            return (false, "not ready: federation.json gives this node no links; render the topology again")
        }
        return (true, "ready")
    }

    /// Builds the API application for a running node. Writes and link health go through the
    /// engine; reads of items and custody go to the node's store without waiting for the engine.
    public static func application(
        engine: ReplicationEngine,
        federation: FederationConfig,
        token: String,
        logger: Logger
    ) async -> some Service {
        let node = await engine.node
        let router = Router()
        // Probes, without a token. Liveness: the process serves HTTP. Readiness: the store
        // answers a read and the node has links to replicate on. Neither waits for the
        // engine, which may be busy committing for seconds while the node is healthy.
        router.get("livez") { _, _ in "ok\n" }
        router.get("healthz") { _, _ in "ok\n" }
        let links = federation.neighbours.count
        router.get("readyz") { _, _ -> Response in
            let readiness = Self.readiness(links: links) { _ = try node.store.highestSequence() }
            var response = Response(
                status: readiness.ready ? .ok : .serviceUnavailable,
                body: ResponseBody(byteBuffer: ByteBuffer(string: readiness.text + "\n")))
            response.headers[.contentType] = "text/plain; charset=utf-8"
            return response
        }
        // Prometheus metrics (docs/operations.md, "Metrics"), with the API's token: a scrape
        // job sends it as its bearer credentials.
        let metrics = NodeMetrics(node: node)
        await engine.observeCommits { metrics.observeCommit($0, ops: $1, duration: $2) }
        router.group("metrics").add(middleware: BearerTokenMiddleware(token: Array(token.utf8)))
            .get { _, _ -> Response in
                let text = metrics.exposition(links: await engine.linkStatus(), containment: await engine.containment())
                var response = Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
                response.headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
                return response
            }
        let v1 = router.group("v1").add(middleware: BearerTokenMiddleware(token: Array(token.utf8)))
        // One item (an object), or many at once (an array, committed in one transaction:
        // all or nothing: docs/decisions.md, "Bulk put").
        v1.post("items") { request, context -> Response in
            let data = try await BulkPut.collect(request)
            if BulkPut.isArray(data) {
                return try await BulkPut.handle(data, engine: engine)
            }
            let body: PutItemBody
            do {
                body = try JSONDecoder().decode(PutItemBody.self, from: data)
            } catch {
                throw HTTPError(.badRequest, message: "the body is not an item: \(DecodingErrorText.describe(error))")
            }
            do {
                let (item, op) = try await engine.put(try body.request())
                return try BulkPut.json(
                    PutItemResult(id: item.id.text, opID: op.id.hash.hex, digest: item.digest.hex), status: .created)
            } catch let error as LiaisonError {
                throw HTTPError(
                    error.code == .invalidArgument ? .badRequest : .internalServerError, message: error.message)
            }
        }
        v1.get("items") { request, _ -> [ItemView] in
            let query = request.uri.queryParameters
            let limit = query.get("limit").flatMap { Int($0) } ?? 1000
            guard limit > 0 else { throw HTTPError(.badRequest, message: "limit must be at least 1") }
            let items = try node.items(
                ItemQuery(
                    collection: query.get("collection"),
                    tag: query.get("tag"),
                    includeWithdrawn: query.get("all") == "true",
                    limit: limit
                )
            )
            return items.map { ItemView($0, at: node.recipient) }
        }
        v1.get("items/{id}") { _, context -> ItemView in
            let text = try context.parameters.require("id")
            guard let id = ItemID(text) else { throw HTTPError(.badRequest, message: "'\(text)' is not an item id") }
            guard let item = try node.item(id) else {
                throw HTTPError(.notFound, message: "no item \(text) at this node")
            }
            return ItemView(item, at: node.recipient)
        }
        v1.delete("items/{id}") { _, context -> LifecycleView in
            let id = try Self.itemID(context)
            do {
                return LifecycleView(try await engine.delete(id))
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
        v1.put("items/{id}/markings") { request, context -> LifecycleView in
            let id = try Self.itemID(context)
            let body = try await request.decode(as: MarkingsBody.self, context: context)
            do {
                return LifecycleView(try await engine.changeMarkings(id, try body.request()))
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
        v1.post("items/{id}/recall") { request, context -> LifecycleView in
            let id = try Self.itemID(context)
            let body = try await request.decode(as: RecallBody.self, context: context)
            do {
                return LifecycleView(try await engine.recall(id, from: body.from ?? [], reason: body.reason))
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
        v1.patch("items/{id}") { request, context -> ItemView in
            let text = try context.parameters.require("id")
            guard let id = ItemID(text) else { throw HTTPError(.badRequest, message: "'\(text)' is not an item id") }
            let body = try await request.decode(as: UpdateItemBody.self, context: context)
            do {
                let item = try await engine.update(
                    id,
                    fields: try body.encodedFields(),
                    addTags: body.addTags ?? [],
                    removeTags: body.removeTags ?? []
                )
                return ItemView(item, at: node.recipient)
            } catch let error as LiaisonError {
                let status: HTTPResponse.Status =
                    switch error.code {
                    case .invalidArgument: .badRequest
                    case .notFound: .notFound
                    case .forbidden: .forbidden
                    default: .internalServerError
                    }
                throw HTTPError(status, message: error.message)
            }
        }
        v1.get("links") { _, _ -> [LinkStatus] in await engine.linkStatus() }
        v1.get("quarantines") { _, _ -> ContainmentView in
            ContainmentView(await engine.containment(), policy: federation.containment ?? .default)
        }
        v1.post("quarantines") { request, context -> EditedResponse<QuarantineResult> in
            let body = try await request.decode(as: QuarantineBody.self, context: context)
            do {
                let since = try body.sinceMillis(now: Date())
                let result = try await engine.quarantine(body.partner, sinceMillis: since, reason: body.reasonText)
                return EditedResponse(
                    status: .created, response: QuarantineResult(partner: body.partner, result, released: false))
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
        v1.delete("quarantines/{partner}") { _, context -> QuarantineResult in
            let partner = try context.parameters.require("partner")
            do {
                return QuarantineResult(partner: partner, try await engine.release(partner), released: true)
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
        addGovernanceRoutes(to: v1, engine: engine)
        v1.get("audit") { request, _ -> [CustodyEntry] in
            let query = request.uri.queryParameters
            let from = query.get("from").flatMap { UInt64($0) } ?? 1
            let limit = min(query.get("limit").flatMap { Int($0) } ?? 100, 10_000)
            return try node.store.custody(from: from, limit: max(limit, 1))
        }
        return Application(
            router: router,
            configuration: .init(
                address: .hostname(federation.api.host, port: federation.api.port), serverName: "liaison"),
            logger: logger
        )
    }

    /// The HTTP status of a refusal.
    static func status(of error: LiaisonError) -> HTTPResponse.Status {
        switch error.code {
        case .invalidArgument: .badRequest
        case .notFound: .notFound
        case .forbidden: .forbidden
        case .conflict: .conflict
        default: .internalServerError
        }
    }

    /// The item id in the path; 400 when it is not one.
    static func itemID(_ context: some RequestContext) throws -> ItemID {
        let text = try context.parameters.require("id")
        guard let id = ItemID(text) else { throw HTTPError(.badRequest, message: "'\(text)' is not an item id") }
        return id
    }
}
