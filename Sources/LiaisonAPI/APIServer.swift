import Foundation
public import Hummingbird
public import LiaisonCore
public import LiaisonNode
import LiaisonStore
public import Logging
public import ServiceLifecycle

extension ItemView: ResponseEncodable {}
extension LinkStatus: ResponseEncodable {}
extension DashboardView: ResponseEncodable {}
extension PutItemResult: ResponseEncodable {}
extension CustodyEntry: ResponseEncodable {}
extension QuarantineResult: ResponseEncodable {}
extension ContainmentView: ResponseEncodable {}
extension LifecycleView: ResponseEncodable {}

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

    /// The services a running node's API needs: the loopback API and, when the topology gives
    /// the node one, its TAXII server over HTTPS (docs/taxii.md, "HTTPS and client certificates").
    public static func services(
        engine: ReplicationEngine,
        federation: FederationConfig,
        tokens: [APIRole: String],
        logger: Logger
    ) async throws(LiaisonError) -> [any Service] {
        let statuses = TAXII.Statuses()
        var services: [any Service] = [
            await application(
                engine: engine, federation: federation, tokens: tokens, statuses: statuses, logger: logger)
        ]
        if let listener = federation.taxii {
            services.append(
                try await TAXIIHTTPS.application(
                    engine: engine, federation: federation, listener: listener, tokens: tokens, statuses: statuses,
                    logger: logger))
        }
        return services
    }

    /// Builds the API application for a running node. Writes and link health go through the
    /// engine; reads of items and custody go to the node's store without waiting for the engine.
    static func application(
        engine: ReplicationEngine,
        federation: FederationConfig,
        tokens: [APIRole: String],
        statuses: TAXII.Statuses,
        logger: Logger
    ) async -> some Service {
        let node = await engine.node
        let router = Router(context: APIContext.self)
        let refusals = RefusalAudit(engine: engine)
        // Refusals counted within a minute are written when the minute ends, not only when
        // the next refusal of the same kind comes.
        Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(5))
                await refusals.flushDue()
            }
        }
        /// The routes under `path` that `access` allows (`v1` or `metrics`).
        func group(_ path: RouterPath, _ access: APIAccess, taxii: Bool = false) -> RouterGroup<APIContext> {
            router.group(path).add(
                middleware: AccessMiddleware(tokens: tokens, access: access, refusals: refusals, taxii: taxii))
        }
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
        // The dashboard page: no data in it, so no token; its script asks /v1/dashboard with
        // the token from the URL's fragment. It may run inline code and reach this node only.
        router.get("dashboard") { _, _ -> Response in
            var response = Response(
                status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: DashboardPage.html)))
            response.headers[.contentType] = "text/html; charset=utf-8"
            response.headers[.contentSecurityPolicy] =
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"
            response.headers[.cacheControl] = "no-store"
            return response
        }
        // Prometheus metrics (docs/operations.md, "Metrics"), with the API's token: a scrape
        // job sends it as its bearer credentials.
        let metrics = NodeMetrics(node: node)
        await engine.observeCommits { metrics.observeCommit($0, ops: $1, duration: $2) }
        group("metrics", .observe)
            .get { _, _ -> Response in
                let text = metrics.exposition(links: await engine.linkStatus(), containment: await engine.containment())
                var response = Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
                response.headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
                return response
            }
        // Roles (docs/operations.md, "Roles"): each group of routes names who may use it.
        let readItems = group("v1", .readItems)
        let writeItems = group("v1", .writeItems)
        let observe = group("v1", .observe)
        let contain = group("v1", .contain)
        // TAXII 2.1 (docs/taxii.md): the STIX objects held here, for CTI tools.
        TAXII.addRoutes(
            read: group("taxii2", .readItems, taxii: true), write: group("taxii2", .writeItems, taxii: true),
            engine: engine, node: node,
            federation: federation, statuses: statuses)
        // One item (an object), or many at once (an array, committed in one transaction:
        // all or nothing: docs/decisions.md, "Bulk put").
        writeItems.post("items") { request, context -> Response in
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
        // STIX objects for `liaison import` and `liaison feed pull` (docs/stix.md): each judged
        // on its own; one outcome per object.
        writeItems.post("stix") { request, context -> Response in
            let data = try await BulkPut.collect(request)
            let body: STIXImportBody
            do {
                body = try JSONDecoder().decode(STIXImportBody.self, from: data)
            } catch {
                throw HTTPError(
                    .badRequest, message: "the body is not a STIX import: \(DecodingErrorText.describe(error))")
            }
            guard body.objects.count <= LocalNode.maxItemsPerPut else {
                throw HTTPError(
                    .contentTooLarge,
                    message: "\(body.objects.count) objects in one request; send at most \(LocalNode.maxItemsPerPut)")
            }
            do {
                let outcomes = try await engine.importSTIX(
                    body.objects, collection: body.collection, classification: body.classification,
                    releasableTo: body.relTo, fromFeed: body.feed ?? false)
                return try BulkPut.json(
                    STIXImportResult(outcomes: outcomes.map(STIXImportResult.Outcome.init)), status: .ok)
            } catch let error as LiaisonError {
                throw HTTPError(
                    error.code == .invalidArgument ? .badRequest : .internalServerError, message: error.message)
            }
        }
        readItems.get("items") { request, context -> [ItemView] in
            let query = request.uri.queryParameters
            // At most 10,000 a request, as for custody: no one request reads the whole store.
            let limit = min(query.get("limit").flatMap { Int($0) } ?? 1000, 10_000)
            guard limit > 0 else { throw HTTPError(.badRequest, message: "limit must be at least 1") }
            let items = try node.items(
                ItemQuery(
                    collection: query.get("collection"),
                    tag: query.get("tag"),
                    includeWithdrawn: query.get("all") == "true",
                    limit: limit
                )
            )
            let views = items.map { ItemView($0, at: node.recipient) }
            return context.role == .auditor ? views.map { $0.withoutValues() } : views
        }
        readItems.get("items/{id}") { _, context -> ItemView in
            let text = try context.parameters.require("id")
            guard let id = ItemID(text) else { throw HTTPError(.badRequest, message: "'\(text)' is not an item id") }
            guard let item = try node.item(id) else {
                throw HTTPError(.notFound, message: "no item \(text) at this node")
            }
            let view = ItemView(item, at: node.recipient)
            return context.role == .auditor ? view.withoutValues() : view
        }
        writeItems.delete("items/{id}") { _, context -> LifecycleView in
            let id = try Self.itemID(context)
            do {
                return LifecycleView(try await engine.delete(id))
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
        writeItems.put("items/{id}/markings") { request, context -> LifecycleView in
            let id = try Self.itemID(context)
            let body = try await request.decode(as: MarkingsBody.self, context: context)
            do {
                return LifecycleView(try await engine.changeMarkings(id, try body.request()))
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
        writeItems.post("items/{id}/recall") { request, context -> LifecycleView in
            let id = try Self.itemID(context)
            let body = try await request.decode(as: RecallBody.self, context: context)
            do {
                return LifecycleView(try await engine.recall(id, from: body.from ?? [], reason: body.reason))
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
        writeItems.patch("items/{id}") { request, context -> ItemView in
            let text = try context.parameters.require("id")
            guard let id = ItemID(text) else { throw HTTPError(.badRequest, message: "'\(text)' is not an item id") }
            let body = try await request.decode(as: UpdateItemBody.self, context: context)
            do {
                let item = try await engine.update(
                    id,
                    fields: try body.encodedFields(),
                    addTags: body.addTags ?? [],
                    removeTags: body.removeTags ?? [],
                    withheld: body.withhold ?? [:]
                )
                return ItemView(item, at: node.recipient)
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
        observe.get("links") { _, _ -> [LinkStatus] in await engine.linkStatus() }
        observe.get("dashboard") { _, _ -> DashboardView in
            DashboardView(
                federation: federation, links: await engine.linkStatus(), containment: await engine.containment(),
                now: Date())
        }
        observe.get("quarantines") { _, _ -> ContainmentView in
            ContainmentView(await engine.containment(), policy: federation.containment ?? .default)
        }
        contain.post("quarantines") { request, context -> EditedResponse<QuarantineResult> in
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
        contain.delete("quarantines/{partner}") { _, context -> QuarantineResult in
            let partner = try context.parameters.require("partner")
            do {
                return QuarantineResult(partner: partner, try await engine.release(partner), released: true)
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
        addGovernanceRoutes(observe: observe, contain: contain, engine: engine)
        observe.get("audit") { request, _ -> [CustodyEntry] in
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
