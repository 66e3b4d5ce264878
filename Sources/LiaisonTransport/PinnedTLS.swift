import Crypto
import NIOCore
public import NIOSSL
import NIOTLS

/// Mutual TLS 1.3 where each side trusts exactly the certificates whose SHA-256
/// fingerprints it has pinned (DESIGN §5.1). Chain and expiry checks are replaced by the pin;
/// BoringSSL still proves the peer holds the certificate's private key.
public struct PinnedTLS: Sendable {
    /// This node's certificate, PEM.
    public let certificatePEM: String
    /// This node's TLS private key, PEM.
    public let privateKeyPEM: String
    /// The peers' certificates, by partner; consulted at every handshake, so a pin replaced
    /// while the node runs (a re-admission with new keys) takes effect at once.
    public let table: PinTable

    /// Lower-case hex SHA-256 fingerprints of the peers' certificates.
    public var pins: Set<String> { table.fingerprints }

    /// Creates a configuration trusting `pins` (partners unnamed).
    public init(certificatePEM: String, privateKeyPEM: String, pins: Set<String>) {
        self.init(
            certificatePEM: certificatePEM, privateKeyPEM: privateKeyPEM,
            table: PinTable(Dictionary(uniqueKeysWithValues: pins.map { ($0, $0) })))
    }

    /// Creates a configuration trusting the certificates of `table`.
    public init(certificatePEM: String, privateKeyPEM: String, table: PinTable) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
        self.table = table
    }

    /// Lower-case hex SHA-256 of a certificate's DER.
    public static func fingerprint(_ certificate: NIOSSLCertificate) throws -> String {
        SHA256.hash(data: try certificate.toDERBytes()).map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]])
        }.joined()
    }

    func context(server: Bool) throws -> NIOSSLContext {
        let certificate = try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem)
        let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
        var configuration =
            server
            ? TLSConfiguration.makeServerConfiguration(
                certificateChain: [.certificate(certificate)], privateKey: .privateKey(key))
            : TLSConfiguration.makeClientConfiguration()
        if !server {
            configuration.certificateChain = [.certificate(certificate)]
            configuration.privateKey = .privateKey(key)
        }
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([])
        return try NIOSSLContext(configuration: configuration)
    }

    /// The verification callback: accept exactly the pinned leaf certificates.
    static func verifier(_ pins: PinTable) -> NIOSSLCustomVerificationCallbackWithMetadata {
        { presented, promise in
            guard let leaf = presented.first, let fingerprint = try? PinnedTLS.fingerprint(leaf),
                pins.contains(fingerprint)
            else { return promise.succeed(.failed) }
            promise.succeed(.certificateVerified(VerificationMetadata(ValidatedCertificateChain([leaf]))))
        }
    }
}

/// A TLS handshake that did not finish within its deadline.
public struct HandshakeTimeout: Error, CustomStringConvertible {
    /// The deadline in milliseconds.
    public var deadlineMillis: Int64
    public var description: String { "no TLS handshake within \(deadlineMillis) ms" }
}

/// Reports the peer's leaf certificate once the TLS handshake completes; fails the report
/// when the channel errs, closes or is torn down first, or when the handshake misses its
/// deadline (then it closes the channel: a connection that never speaks TLS holds nothing
/// for long). Completes its promise exactly once.
final class TLSHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// How long a new connection has to complete its TLS handshake.
    static let deadline = TimeAmount.seconds(5)

    private let promise: EventLoopPromise<NIOSSLCertificate?>
    private var completed = false
    private var timeout: Scheduled<Void>?

    init(promise: EventLoopPromise<NIOSSLCertificate?>) { self.promise = promise }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: Self.deadline) { [self] in
            guard !completed else { return }
            fail(HandshakeTimeout(deadlineMillis: Self.deadline.nanoseconds / 1_000_000))
            channel.close(promise: nil)
        }
    }

    private func succeed(_ leaf: NIOSSLCertificate?) {
        guard !completed else { return }
        completed = true
        timeout?.cancel()
        promise.succeed(leaf)
    }

    private func fail(_ error: any Error) {
        guard !completed else { return }
        completed = true
        timeout?.cancel()
        promise.fail(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            succeed((try? context.pipeline.syncOperations.nioSSL_peerValidatedCertificateChain())?.leaf)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(ChannelError.eof)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(ChannelError.ioOnClosedChannel)
    }
}

@available(*, unavailable)
extension TLSHandshakeHandler: Sendable {}
