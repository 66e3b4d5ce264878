import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import LiaisonCore
import LiaisonNode
import LiaisonTransport
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle

/// The node's TAXII 2.1 server over HTTPS (docs/taxii.md, "HTTPS and client certificates"):
/// the TAXII routes only, on the listener's own address, for CTI tools off the node's
/// machine. A tool authenticates with a role token or with a client certificate the
/// topology lists (pinned by SHA-256, each with a role); a certificate not listed fails the
/// handshake.
enum TAXIIHTTPS {
    /// The TLS settings: the listener's certificate (or the node's own), TLS 1.2 or later,
    /// and, when clients are listed, a certificate asked for and accepted only when listed.
    static func configuration(
        _ listener: TAXIIListener, identity: NodeIdentity
    ) throws(LiaisonError) -> TLSChannelConfiguration {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            if let certificate = listener.certificate, let keyFile = listener.key {
                chain = try NIOSSLCertificate.fromPEMFile(certificate)
                key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
            } else {
                chain = [try NIOSSLCertificate(bytes: Array(identity.tlsCertificatePEM.utf8), format: .pem)]
                key = try NIOSSLPrivateKey(bytes: Array(identity.tlsKeyPEM.utf8), format: .pem)
            }
        } catch {
            throw LiaisonError(
                .invalidArgument,
                "taxii: cannot read the certificate or key (\(listener.certificate ?? "the node's own"): \(error)); give PEM files the node may read",
                cause: error)
        }
        guard !chain.isEmpty else {
            throw LiaisonError(.invalidArgument, "taxii: \(listener.certificate ?? "") holds no certificate")
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        let pins = Set(listener.clients.map(\.sha256))
        guard !pins.isEmpty else { return TLSChannelConfiguration(tlsConfiguration: tls) }
        // Ask for a certificate; a connection without one goes on (a token then), one with a
        // certificate not listed is refused in the handshake.
        tls.certificateVerification = .optionalVerification
        tls.trustRoots = .certificates([])
        return TLSChannelConfiguration(tlsConfiguration: tls) { presented, promise in
            // The fingerprint partners' certificates are pinned by (`PinnedTLS`), as sha256sum
            // prints it for the certificate's DER.
            guard let leaf = presented.first, let found = try? PinnedTLS.fingerprint(leaf), pins.contains(found) else {
                return promise.succeed(.failed)
            }
            promise.succeed(.certificateVerified)
        }
    }

    /// The HTTPS application: discovery, the API root and everything under it, with the same
    /// roles as on the loopback API.
    static func application(
        engine: ReplicationEngine, federation: FederationConfig, listener: TAXIIListener,
        tokens: [APIRole: String], statuses: TAXII.Statuses, logger: Logger
    ) async throws(LiaisonError) -> some Service {
        let node = await engine.node
        let tls = try configuration(listener, identity: node.identity)
        let clients = Dictionary(
            listener.clients.compactMap { client in client.apiRole.map { (client.sha256, $0) } },
            uniquingKeysWith: { first, _ in first })
        let refusals = RefusalAudit(engine: engine)
        let router = Router(context: APIContext.self)
        func group(_ access: APIAccess) -> RouterGroup<APIContext> {
            router.group("taxii2").add(
                middleware: AccessMiddleware(
                    tokens: tokens, access: access, refusals: refusals, taxii: true, clients: clients))
        }
        TAXII.addRoutes(
            read: group(.readItems), write: group(.writeItems), engine: engine, node: node, federation: federation,
            statuses: statuses)
        // Bounded for an outsider: connections per address and in all (refused before the
        // TLS handshake), and a connection that sends nothing (a handshake left half done
        // included) is closed after `idleSeconds`.
        let perAddress = ConnectionLimiter(limit: maxConnectionsPerAddress)
        let total = ConnectionLimiter(limit: maxConnections)
        let http = HTTP1Channel.Configuration(idleTimeout: .seconds(idleSeconds))
        let server = HTTPServerBuilder { responder throws in
            LimitedChannel(
                base: try TLSChannel(HTTP1Channel(responder: responder, configuration: http), configuration: tls),
                perAddress: perAddress, total: total)
        }
        return Application(
            router: router, server: server,
            configuration: .init(
                address: .hostname(listener.listen.host, port: listener.listen.port), serverName: "liaison"),
            logger: logger)
    }
}

extension TAXIIHTTPS {
    /// The most connections one address holds open at once.
    static let maxConnectionsPerAddress = 32
    /// The most connections open at once.
    static let maxConnections = 512
    /// Seconds a connection may send nothing (the TLS handshake included) before it is closed.
    static let idleSeconds: Int64 = 30
}

/// A child channel that takes a place per remote address and in all before it sets up
/// `base`, and closes the connection at once when either has none left.
struct LimitedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let perAddress: ConnectionLimiter
    let total: ConnectionLimiter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        guard total.enter("all") else {
            return channel.close().flatMapThrowing { throw ChannelError.ioOnClosedChannel }
        }
        guard perAddress.enter(address) else {
            total.leave("all")
            return channel.close().flatMapThrowing { throw ChannelError.ioOnClosedChannel }
        }
        channel.closeFuture.whenComplete { [perAddress, total] _ in
            perAddress.leave(address)
            total.leave("all")
        }
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
