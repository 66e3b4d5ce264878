import Foundation
public import Hummingbird
import LiaisonCore
public import LiaisonNode
import LiaisonTransport
public import NIOCore
import NIOSSL

/// The API's request context: the role of the token the request came with, once the access
/// middleware has checked it.
public struct APIContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The caller's role.
    public var role: APIRole?
    /// The connection the request came on (its TLS handshake names a client certificate).
    public let channel: any Channel

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

/// Which roles may use a group of routes (docs/operations.md, "Roles").
enum APIAccess: Sendable {
    /// Reading items (an auditor sees them without field values).
    case readItems
    /// Writing items: put, update, delete, markings, recall.
    case writeItems
    /// Link health, metrics, custody, quarantines and revocations, read only.
    case observe
    /// Quarantine, release, revocation and re-admission.
    case contain

    var roles: Set<APIRole> {
        switch self {
        case .readItems: [.reader, .writer, .operator, .auditor]
        case .writeItems: [.writer, .operator]
        case .observe: [.operator, .auditor]
        case .contain: [.operator]
        }
    }

    /// What the group's routes do, for a refusal's message.
    var action: String {
        switch self {
        case .readItems: "read items"
        case .writeItems: "write items (put, update, delete, change markings, recall)"
        case .observe: "read link health, metrics, custody, quarantines or revocations"
        case .contain: "quarantine, release, revoke or readmit partners"
        }
    }

    /// The refusal's message for `role`.
    func refusal(for role: APIRole) -> String {
        let allowed = roles.sorted().map { "\($0.rawValue) (\($0.tokenFile))" }
        let article = [.operator, .auditor].contains(role) ? "an" : "a"
        return "\(article) \(role.rawValue) token may not \(action); use a token of one of these roles: "
            + allowed.joined(separator: ", ")
    }
}

/// Checks the bearer token (401 when it is no role's) and the role's access to the routes
/// behind it (403 with what to use instead, and a custody entry). Tokens are compared in
/// constant time, each against every role's.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let tokens: [(role: APIRole, token: [UInt8])]
    let access: APIAccess
    let refusals: RefusalAudit
    /// Whether the routes behind it are TAXII's: refusals come as TAXII error resources,
    /// a 401 with `WWW-Authenticate` (TAXII 2.1 §1.6.9).
    let taxii: Bool
    /// Client certificates by SHA-256 fingerprint, with their roles (TAXII over HTTPS): a
    /// request without an `Authorization` header acts with its connection's certificate's.
    let clients: [String: APIRole]

    init(
        tokens: [APIRole: String], access: APIAccess, refusals: RefusalAudit, taxii: Bool = false,
        clients: [String: APIRole] = [:]
    ) {
        self.tokens = tokens.sorted { $0.key < $1.key }.map { ($0.key, Array("Bearer \($0.value)".utf8)) }
        self.access = access
        self.refusals = refusals
        self.taxii = taxii
        self.clients = clients
    }

    /// The role of the client certificate the request's connection presented, if any (the
    /// handshake refused every certificate not listed).
    func certificateRole(_ context: APIContext) async -> APIRole? {
        guard !clients.isEmpty, let leaf = try? await context.channel.nioSSL_peerCertificate().get(),
            let fingerprint = try? PinnedTLS.fingerprint(leaf)
        else { return nil }
        return clients[fingerprint]
    }

    /// The role whose token `presented` is, comparing with every role's in constant time.
    static func role(of presented: [UInt8], among tokens: [(role: APIRole, token: [UInt8])]) -> APIRole? {
        var found: APIRole?
        for (role, expected) in tokens {
            var difference = presented.count ^ expected.count
            for index in 0..<expected.count {
                difference |= Int(expected[index] ^ (index < presented.count ? presented[index] : 0))
            }
            if difference == 0 { found = role }
        }
        return found
    }

    func handle(
        _ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response
    ) async throws -> Response {
        let presented = Array((request.headers[.authorization] ?? "").utf8)
        var found = Self.role(of: presented, among: tokens)
        // A certificate stands for a token only when none is sent: a wrong token is a 401.
        if found == nil, request.headers[.authorization] == nil { found = await certificateRole(context) }
        guard let role = found else {
            if taxii {
                var response = TAXII.error(
                    .unauthorized, "missing or wrong bearer token",
                    "the node directory holds one per role (api-reader.token to read, api-writer.token to add objects)")
                response.headers[.wwwAuthenticate] = "Bearer realm=\"liaison\""
                return response
            }
            throw HTTPError(
                .unauthorized,
                message:
                    "missing or wrong bearer token; the node directory holds one per role (api.token for the operator)"
            )
        }
        guard access.roles.contains(role) else {
            // The matched route's pattern (`/v1/items/{id}`), not the path: one key per route.
            let route = context.endpointPath ?? request.uri.path
            await refusals.record(role: role, route: "\(request.method.rawValue) \(route)")
            if taxii { return TAXII.error(.forbidden, "this token's role may not do that", access.refusal(for: role)) }
            throw HTTPError(.forbidden, message: access.refusal(for: role))
        }
        var context = context
        context.role = role
        return try await next(request, context)
    }
}

/// Audits the API's refusals in the custody log without letting a client in a loop grow it
/// without bound: the first refusal of a role on a route is written at once, then at most one
/// entry a minute per role and route, each counting the refusals since the one before.
actor RefusalAudit {
    private let engine: ReplicationEngine
    private var last: [String: (atMillis: UInt64, unwritten: Int)] = [:]
    static let intervalMillis: UInt64 = 60_000

    /// Milliseconds since the epoch, now (a test moves it by hand).
    private let clock: @Sendable () -> UInt64

    init(engine: ReplicationEngine, clock: @escaping @Sendable () -> UInt64 = { RefusalAudit.nowMillis }) {
        self.engine = engine
        self.clock = clock
    }

    func record(role: APIRole, route: String) async {
        let now = clock()
        let key = "\(role.rawValue) \(route)"
        if let previous = last[key], now < previous.atMillis + Self.intervalMillis {
            last[key]?.unwritten += 1
            return
        }
        let count = (last[key]?.unwritten ?? 0) + 1
        last[key] = (now, 0)
        await write(role: role.rawValue, route: route, note: count > 1 ? "\(count) refusals since the last entry" : nil)
    }

    /// Writes the refusals counted but not yet written whose minute has ended (called every
    /// few seconds, so a client that stops leaves no count unwritten for long).
    func flushDue() async {
        let now = clock()
        for key in last.keys.sorted() {
            guard let entry = last[key], entry.unwritten > 0, now >= entry.atMillis + Self.intervalMillis else {
                continue
            }
            last[key] = (now, 0)
            let parts = key.split(separator: " ", maxSplits: 1).map(String.init)
            await write(
                role: parts[0], route: parts.count > 1 ? parts[1] : "",
                note: "\(entry.unwritten) more refusals in the minute after the last entry")
        }
    }

    private func write(role: String, route: String, note: String?) async {
        let detail = "\(role) token refused: \(route)" + (note.map { " (\($0))" } ?? "")
        try? await engine.audit(CustodyEvent(kind: .apiRefused, detail: detail))
    }

    static var nowMillis: UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }
}
