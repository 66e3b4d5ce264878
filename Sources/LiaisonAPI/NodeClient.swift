public import Foundation
public import LiaisonCore
public import LiaisonNode

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A client of a running node's API, for the CLI, the demo and tests.
public struct NodeClient: Sendable {
    /// Base URL, e.g. `http://127.0.0.1:7501`.
    public let base: URL
    /// The bearer token.
    public let token: String

    /// Creates a client.
    public init(api: Endpoint, token: String) {
        self.base = URL(string: "http://\(api.host):\(api.port)")!
        self.token = token
    }

    /// A client for the node in `directory` (reads federation.json and api.token).
    public init(directory: NodeDirectory) throws(LiaisonError) {
        let federation = try FederationConfig.load(from: directory)
        self.init(api: federation.api, token: try directory.readAPIToken())
    }

    private static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 10
        return URLSession(configuration: configuration)
    }()

    func call(_ method: String, _ path: String, body: Data? = nil) async throws(LiaisonError) -> Data {
        let (status, data) = try await send(method, path, body: body)
        guard (200..<300).contains(status) else { throw Self.failure(status: status, data: data) }
        return data
    }

    /// The error an answer other than 2xx stands for.
    static func failure(status: Int, data: Data) -> LiaisonError {
        let message =
            (try? JSONDecoder().decode(ErrorBody.self, from: data))?.error.message
            ?? String(decoding: data, as: UTF8.self)
        let code: LiaisonError.Code =
            switch status {
            case 400: .invalidArgument
            case 401, 403: .forbidden
            case 404: .notFound
            case 409: .conflict
            default: .io
            }
        return LiaisonError(code, message)
    }

    /// Sends a request with a raw body; answers its status and body, whatever the status.
    /// For tools and tests that speak the API by hand.
    /// `timeout` (seconds) replaces the session's 10 s for a request that may take longer.
    public func send(
        _ method: String, _ path: String, body: Data? = nil, timeout: TimeInterval? = nil
    ) async throws(LiaisonError) -> (Int, Data) {
        var request = URLRequest(url: URL(string: path, relativeTo: base)!)
        if let timeout { request.timeoutInterval = timeout }
        request.httpMethod = method
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await Self.session.data(for: request)
        } catch {
            throw LiaisonError(
                .io,
                "the node's API at \(base.absoluteString) did not answer (\(error.localizedDescription)); is 'liaison run' up?",
                cause: error)
        }
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    private struct ErrorBody: Decodable {
        struct Inner: Decodable { var message: String }
        var error: Inner
    }

    func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws(LiaisonError) -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw LiaisonError(.io, "the node's API answered something unexpected", cause: error)
        }
    }

    /// Whether the API answers `/healthz`.
    public func isHealthy() async -> Bool {
        var request = URLRequest(url: URL(string: "/healthz", relativeTo: base)!)
        request.timeoutInterval = 1
        guard let (_, response) = try? await Self.session.data(for: request) else { return false }
        return (response as? HTTPURLResponse)?.statusCode == 200
    }

    /// `GET /metrics`: the Prometheus text exposition.
    public func metrics() async throws(LiaisonError) -> String {
        String(decoding: try await call("GET", "/metrics"), as: UTF8.self)
    }

    /// `POST /v1/items`.
    public func put(_ body: PutItemBody) async throws(LiaisonError) -> PutItemResult {
        let encoded: Data
        do {
            encoded = try JSONEncoder().encode(body)
        } catch {
            throw LiaisonError(.invalidArgument, "the item cannot be encoded", cause: error)
        }
        return try await put(encoded: encoded)
    }

    /// `POST /v1/items` with one item already encoded as JSON: an object (an array is a bulk
    /// put, whose answer this does not read; use `putMany(encodedArray:)`).
    public func put(encoded: Data) async throws(LiaisonError) -> PutItemResult {
        try decode(PutItemResult.self, try await call("POST", "/v1/items", body: encoded))
    }

    /// `POST /v1/items` with an array: every item or none, in one transaction. A refusal
    /// throws `.invalidArgument` whose cause is a `BulkPutRefusal` naming the refused items
    /// by their index in `bodies`.
    public func putMany(_ bodies: [PutItemBody]) async throws(LiaisonError) -> [PutItemResult] {
        try await putMany(encodedArray: try encode(bodies))
    }

    /// `POST /v1/items` with an array already encoded as JSON (a tool that holds its items as
    /// JSON text, or a benchmark that keeps encoding out of its timing); answers and refusals
    /// as `putMany(_:)`. It must be an array: an object is a single put, whose answer this
    /// does not read.
    public func putMany(encodedArray: Data) async throws(LiaisonError) -> [PutItemResult] {
        // Up to 10,000 items are checked, signed and committed before the answer.
        let (status, data) = try await send("POST", "/v1/items", body: encodedArray, timeout: 300)
        if status == 400, let refused = try? JSONDecoder().decode(BulkPutRefusalBody.self, from: data) {
            let refusal = BulkPutRefusal(failures: refused.refused.map { .init(index: $0.index, message: $0.error) })
            throw LiaisonError(.invalidArgument, refused.error.message, cause: refusal)
        }
        guard (200..<300).contains(status) else { throw Self.failure(status: status, data: data) }
        return try decode([PutItemResult].self, data)
    }

    /// `POST /v1/stix`: STIX objects taken in, one outcome each.
    public func importSTIX(_ body: STIXImportBody) async throws(LiaisonError) -> STIXImportResult {
        let encoded: Data
        do {
            encoded = try JSONEncoder().encode(body)
        } catch {
            throw LiaisonError(.invalidArgument, "the objects cannot be encoded", cause: error)
        }
        let (status, data) = try await send("POST", "/v1/stix", body: encoded, timeout: 300)
        guard (200..<300).contains(status) else { throw Self.failure(status: status, data: data) }
        return try decode(STIXImportResult.self, data)
    }

    /// `PATCH /v1/items/{id}`.
    public func update(_ id: String, _ body: UpdateItemBody) async throws(LiaisonError) -> ItemView {
        let encoded: Data
        do {
            encoded = try JSONEncoder().encode(body)
        } catch {
            throw LiaisonError(.invalidArgument, "the change cannot be encoded", cause: error)
        }
        return try decode(ItemView.self, try await call("PATCH", "/v1/items/\(id)", body: encoded))
    }

    /// `DELETE /v1/items/{id}`.
    public func delete(_ id: String) async throws(LiaisonError) -> LifecycleView {
        try decode(LifecycleView.self, try await call("DELETE", "/v1/items/\(id)"))
    }

    /// `PUT /v1/items/{id}/markings`.
    public func changeMarkings(_ id: String, _ body: MarkingsBody) async throws(LiaisonError) -> LifecycleView {
        try decode(LifecycleView.self, try await call("PUT", "/v1/items/\(id)/markings", body: try encode(body)))
    }

    /// `POST /v1/items/{id}/recall`.
    public func recall(_ id: String, _ body: RecallBody) async throws(LiaisonError) -> LifecycleView {
        try decode(LifecycleView.self, try await call("POST", "/v1/items/\(id)/recall", body: try encode(body)))
    }

    private func encode(_ body: some Encodable) throws(LiaisonError) -> Data {
        do {
            return try JSONEncoder().encode(body)
        } catch {
            throw LiaisonError(.invalidArgument, "the request cannot be encoded", cause: error)
        }
    }

    /// `GET /v1/items/{id}`; nil when the node does not hold it.
    public func item(_ id: String) async throws(LiaisonError) -> ItemView? {
        do {
            return try decode(ItemView.self, try await call("GET", "/v1/items/\(id)"))
        } catch  where error.code == .notFound {
            return nil
        }
    }

    /// `GET /v1/items`.
    public func items(
        collection: String? = nil, tag: String? = nil, all: Bool = false, limit: Int = 1000
    ) async throws(LiaisonError)
        -> [ItemView]
    {
        var components = URLComponents()
        components.path = "/v1/items"
        var query = [URLQueryItem(name: "limit", value: String(limit))]
        if let collection { query.append(URLQueryItem(name: "collection", value: collection)) }
        if let tag { query.append(URLQueryItem(name: "tag", value: tag)) }
        if all { query.append(URLQueryItem(name: "all", value: "true")) }
        components.queryItems = query
        return try decode([ItemView].self, try await call("GET", components.string!))
    }

    /// `GET /v1/links`.
    public func links() async throws(LiaisonError) -> [LinkStatus] {
        try decode([LinkStatus].self, try await call("GET", "/v1/links"))
    }

    /// `POST /v1/quarantines`.
    public func quarantine(_ body: QuarantineBody) async throws(LiaisonError) -> QuarantineResult {
        let encoded: Data
        do {
            encoded = try JSONEncoder().encode(body)
        } catch {
            throw LiaisonError(.invalidArgument, "the quarantine cannot be encoded", cause: error)
        }
        return try decode(QuarantineResult.self, try await call("POST", "/v1/quarantines", body: encoded))
    }

    /// `DELETE /v1/quarantines/{partner}`.
    public func release(_ partner: String) async throws(LiaisonError) -> QuarantineResult {
        let path = partner.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? partner
        return try decode(QuarantineResult.self, try await call("DELETE", "/v1/quarantines/\(path)"))
    }

    /// `GET /v1/quarantines`.
    public func containment() async throws(LiaisonError) -> ContainmentView {
        try decode(ContainmentView.self, try await call("GET", "/v1/quarantines"))
    }

    /// `GET /v1/audit`.
    public func audit(from: UInt64 = 1, limit: Int = 1000) async throws(LiaisonError) -> [CustodyEntry] {
        try decode([CustodyEntry].self, try await call("GET", "/v1/audit?from=\(from)&limit=\(limit)"))
    }
}
