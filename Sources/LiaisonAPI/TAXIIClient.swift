public import Foundation
public import LiaisonCore
public import LiaisonNode

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A TAXII 2.1 client of one collection: this node's own (for `liaison import` and `export`
/// while the node runs) or another server's (`liaison feed pull`).
public struct TAXIIClient: Sendable {
    /// How the client authenticates.
    public enum Credentials: Sendable {
        /// None.
        case none
        /// `Authorization: Bearer TOKEN` (a Liaison node's role tokens).
        case bearer(String)
        /// HTTP Basic (what most TAXII servers take).
        case basic(user: String, password: String)
    }

    /// The collection's URL, ending in `/`: `{api root}/collections/{id}/`.
    public let collection: URL
    /// The credentials.
    public let credentials: Credentials

    /// A client of collection `id` under the API root `apiRoot`.
    public init(apiRoot: URL, collection id: String, credentials: Credentials) {
        var root = apiRoot.absoluteString
        if !root.hasSuffix("/") { root += "/" }
        let escaped = id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? id
        self.collection = URL(string: "\(root)collections/\(escaped)/")!
        self.credentials = credentials
    }

    /// A client of collection `name` at the running node of `directory`, with its writer
    /// token (the operator's when the writer's is missing).
    public init(node directory: NodeDirectory, collection name: String) throws(LiaisonError) {
        let federation = try FederationConfig.load(from: directory)
        let writer = try? String(contentsOf: directory.url.appendingPathComponent("api-writer.token"), encoding: .utf8)
        let token: String
        if let writer { token = writer } else { token = try directory.readAPIToken() }
        self.init(
            apiRoot: URL(string: "http://\(federation.api.host):\(federation.api.port)/taxii2/liaison/")!,
            collection: name, credentials: .bearer(token.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// The most bytes one answer may hold (a page of objects, a status): a server that sends
    /// more is cut off, so it cannot fill this node's memory.
    public var maxResponseBytes = 128 << 20

    /// One page of the collection's objects.
    public struct Page: Sendable {
        /// The objects.
        public var objects: [JSONValue]
        /// Whether more follow.
        public var more: Bool
        /// The cursor to the next page.
        public var next: String?
        /// `X-TAXII-Date-Added-Last`: where an `added_after` read goes on from.
        public var dateAddedLast: String?
    }

    /// `GET objects/`: a page after `addedAfter` or at `next`, at most `limit`.
    public func objects(
        addedAfter: String? = nil, next: String? = nil, limit: Int = 1000
    ) async throws(LiaisonError)
        -> Page
    {
        var components = URLComponents(
            url: collection.appendingPathComponent("objects/"), resolvingAgainstBaseURL: true)!
        var query = [URLQueryItem(name: "limit", value: String(limit))]
        if let addedAfter { query.append(URLQueryItem(name: "added_after", value: addedAfter)) }
        if let next { query.append(URLQueryItem(name: "next", value: next)) }
        components.queryItems = query
        let (data, response) = try await send("GET", components.url!)
        guard case .object(let envelope)? = try? JSONDecoder().decode(JSONValue.self, from: data) else {
            throw LiaisonError(.io, "\(collection.absoluteString) answered something that is not a TAXII envelope")
        }
        var objects = [JSONValue]()
        if case .array(let list)? = envelope["objects"] { objects = list }
        return Page(
            objects: objects, more: envelope["more"] == .bool(true), next: envelope["next"]?.stringValue,
            dateAddedLast: response.value(forHTTPHeaderField: "X-TAXII-Date-Added-Last"))
    }

    /// `GET objects/{id}/`: the object's latest version, or nil when the server has none.
    public func object(_ id: String) async throws(LiaisonError) -> JSONValue? {
        let url = collection.appendingPathComponent("objects/\(id)/")
        do {
            let (data, _) = try await send("GET", url)
            guard case .object(let envelope)? = try? JSONDecoder().decode(JSONValue.self, from: data),
                case .array(let list)? = envelope["objects"]
            else { return nil }
            return list.last
        } catch  where error.code == .notFound {
            return nil
        }
    }

    /// `POST objects/`: the status the server answers.
    public func add(_ objects: [JSONValue]) async throws(LiaisonError) -> [String: JSONValue] {
        let body = JSONValue.object(["objects": .array(objects)]).jsonText
        let (data, _) = try await send("POST", collection.appendingPathComponent("objects/"), body: body)
        guard case .object(let status)? = try? JSONDecoder().decode(JSONValue.self, from: data) else {
            throw LiaisonError(.io, "\(collection.absoluteString) answered something that is not a TAXII status")
        }
        return status
    }

    private func send(
        _ method: String, _ url: URL, body: Data? = nil
    ) async throws(LiaisonError) -> (
        Data, HTTPURLResponse
    ) {
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.setValue("application/taxii+json;version=2.1", forHTTPHeaderField: "Accept")
        switch credentials {
        case .none: break
        case .bearer(let token): request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        case .basic(let user, let password):
            request.setValue(
                "Basic \(Data("\(user):\(password)".utf8).base64EncodedString())", forHTTPHeaderField: "Authorization")
        }
        if let body {
            request.httpBody = body
            request.setValue("application/taxii+json;version=2.1", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await BoundedFetch.fetch(request, limit: maxResponseBytes)
        guard let http = response as? HTTPURLResponse else {
            throw LiaisonError(.io, "the TAXII server at \(url.absoluteString) did not answer over HTTP")
        }
        guard (200..<300).contains(http.statusCode) else {
            var detail = String(decoding: data.prefix(500), as: UTF8.self)
            if case .object(let error)? = try? JSONDecoder().decode(JSONValue.self, from: data) {
                detail = [error["title"]?.stringValue, error["description"]?.stringValue].compactMap { $0 }
                    .joined(separator: ": ")
            }
            let code: LiaisonError.Code =
                switch http.statusCode {
                case 401, 403: .forbidden
                case 404: .notFound
                case 400, 413, 415, 422: .invalidArgument
                default: .io
                }
            throw LiaisonError(code, "\(method) \(url.absoluteString): \(http.statusCode) \(detail)")
        }
        return (data, http)
    }
}

/// One HTTP exchange read into memory, bounded: at most `limit` bytes of answer, and
/// redirects followed only within the origin asked (scheme, host and port), so credentials
/// never go to another server a feed names.
final class BoundedFetch: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    /// What the exchange has come to so far (guarded by `lock`).
    private struct Progress {
        var data = Data()
        var refusal: LiaisonError?
        var continuation: CheckedContinuation<(Data, URLResponse), any Error>?
        var response: URLResponse?
    }

    private let lock = NSLock()
    private var progress = Progress()
    private let limit: Int
    private let origin: URL

    private init(limit: Int, origin: URL) {
        self.limit = limit
        self.origin = origin
    }

    private static let configuration: URLSessionConfiguration = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 120
        // A server that answers a byte at a time holds a request 10 minutes at most.
        configuration.timeoutIntervalForResource = 600
        return configuration
    }()

    /// Sends `request` and reads its answer, or throws why not.
    static func fetch(_ request: URLRequest, limit: Int) async throws(LiaisonError) -> (Data, URLResponse) {
        let url = request.url!
        let fetch = BoundedFetch(limit: limit, origin: url)
        let session = URLSession(configuration: configuration, delegate: fetch, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        let task = session.dataTask(with: request)
        do {
            // A pull the node stops (its shutdown) cancels the request at once.
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    fetch.lock.withLock { fetch.progress.continuation = continuation }
                    task.resume()
                }
            } onCancel: {
                task.cancel()
            }
        } catch let error as LiaisonError {
            throw error
        } catch {
            throw LiaisonError(
                .io, "the TAXII server at \(url.absoluteString) did not answer (\(error.localizedDescription))",
                cause: error)
        }
    }

    private func sameOrigin(_ url: URL?) -> Bool {
        guard let url else { return false }
        func port(_ url: URL) -> Int? { url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80) }
        return url.scheme?.lowercased() == origin.scheme?.lowercased()
            && url.host?.lowercased() == origin.host?.lowercased() && port(url) == port(origin)
    }

    private func refuse(_ error: LiaisonError) {
        lock.withLock { if progress.refusal == nil { progress.refusal = error } }
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        guard sameOrigin(request.url) else {
            refuse(
                LiaisonError(
                    .io,
                    "\(origin.absoluteString) redirected to \(request.url?.absoluteString ?? "?"), another server; Liaison follows redirects only within the server it was given (name the new address in the feed)"
                ))
            completionHandler(nil)
            task.cancel()
            return
        }
        completionHandler(request)
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void
    ) {
        // The answer's own URL, after every redirect followed: still the origin asked (in case
        // a redirect reached the transfer other than through the delegate).
        guard sameOrigin(response.url) else {
            refuse(
                LiaisonError(
                    .io,
                    "\(origin.absoluteString) answered from \(response.url?.absoluteString ?? "?"), another server; Liaison reads answers only from the server it was given"
                ))
            completionHandler(.cancel)
            return
        }
        if response.expectedContentLength > Int64(limit) {
            refuse(tooLarge)
            completionHandler(.cancel)
            return
        }
        lock.withLock { progress.response = response }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let over = lock.withLock {
            guard progress.refusal == nil else { return false }
            progress.data.append(data)
            return progress.data.count > limit
        }
        if over {
            refuse(tooLarge)
            dataTask.cancel()
        }
    }

    private var tooLarge: LiaisonError {
        LiaisonError(
            .io,
            "\(origin.absoluteString) answered more than \(limit >> 20) MiB; Liaison reads no larger answer (ask for smaller pages)"
        )
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        let (continuation, outcome):
            (CheckedContinuation<(Data, URLResponse), any Error>?, Result<(Data, URLResponse), any Error>) =
                lock.withLock {
                    let continuation = progress.continuation
                    progress.continuation = nil
                    if let refusal = progress.refusal { return (continuation, .failure(refusal)) }
                    if let error { return (continuation, .failure(error)) }
                    guard let response = progress.response ?? task.response else {
                        return (continuation, .failure(LiaisonError(.io, "\(origin.absoluteString) gave no answer")))
                    }
                    return (continuation, .success((progress.data, response)))
                }
        continuation?.resume(with: outcome)
    }
}
