import LiaisonWire
public import NIOCore
import NIOExtras
public import NIOPosix
import NIOSSL

/// One TLS channel to a peer, carrying length-prefixed sync frames.
public struct PeerConnection: Sendable {
    /// The channel.
    public let channel: any Channel
    /// Frame payloads in and out.
    public let io: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    /// Completes with the peer's certificate when the handshake is done.
    let handshake: EventLoopFuture<NIOSSLCertificate?>
    /// What the channel's keepalive heard: frame arrivals, and the heartbeats it answered
    /// or took (they do not reach `io`).
    public let heartbeats: HeartbeatRecord

    /// Waits for the TLS handshake and returns the SHA-256 fingerprint of the peer's
    /// pinned certificate. Throws when the handshake fails (unpinned, no certificate,
    /// not TLS 1.3, not TLS at all).
    public func peerFingerprint() async throws -> String {
        guard let leaf = try await handshake.get() else { throw NIOSSLError.noCertificateToValidate }
        return try PinnedTLS.fingerprint(leaf)
    }

    /// Closes a channel that will not carry a session (refused peer), finishing its writer.
    public func reject() async {
        try? await io.executeThenClose { _, _ in }
    }

    /// The remote address as `host:port` (`[host]:port` for IPv6), for logs and link health.
    public var remoteAddress: String {
        guard let address = channel.remoteAddress, let host = address.ipAddress, let port = address.port else {
            return channel.remoteAddress?.description ?? "unknown"
        }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    static func configure(_ channel: any Channel, tls: NIOSSLHandler) throws -> PeerConnection {
        let operations = channel.pipeline.syncOperations
        let done = channel.eventLoop.makePromise(of: NIOSSLCertificate?.self)
        try operations.addHandler(tls)
        try operations.addHandler(TLSHandshakeHandler(promise: done))
        try operations.addHandler(
            ByteToMessageHandler(
                LengthFieldBasedFrameDecoder(lengthFieldBitLength: .fourBytes),
                maximumBufferSize: SyncFrameCodec.maxFrameBytes + 4
            )
        )
        try operations.addHandler(LengthFieldPrepender(lengthFieldBitLength: .fourBytes))
        let heartbeats = HeartbeatRecord()
        try operations.addHandler(KeepaliveHandler(record: heartbeats))
        // Heartbeats stay out of `io`, so what waits here for a busy reader is log traffic:
        // at most a window of batches, the acks of ours and a few envelopes from an honest
        // peer. Past the high watermark the channel stops reading the socket.
        let configuration = NIOAsyncChannel<ByteBuffer, ByteBuffer>.Configuration(
            backPressureStrategy: .init(lowWatermark: 8, highWatermark: 24))
        return PeerConnection(
            channel: channel,
            io: try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: configuration),
            handshake: done.futureResult,
            heartbeats: heartbeats
        )
    }
}

/// Listens for and dials TLS channels to pinned peers.
public enum TLSTransport {
    /// Whether an error that ended an established channel is a network fault (a reset, a
    /// broken pipe, an end of stream, a close without TLS close-notify) rather than something
    /// the other end sent: a bad TLS record or alert, a frame over the size limit.
    public static func isNetworkFault(_ error: any Error) -> Bool {
        switch error {
        case is IOError, is ChannelError: true
        case NIOSSLError.uncleanShutdown: true
        default: false
        }
    }

    public static func listen(
        host: String,
        port: Int,
        tls: PinnedTLS,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> NIOAsyncChannel<PeerConnection, Never> {
        let context = try tls.context(server: true)
        let pins = tls.table
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try PeerConnection.configure(
                        channel,
                        tls: NIOSSLServerHandler(
                            context: context, customVerificationCallbackWithMetadata: PinnedTLS.verifier(pins))
                    )
                }
            }
    }

    /// Dials a peer; fails if the TCP connection cannot be made within `timeout`.
    public static func dial(
        host: String,
        port: Int,
        tls: PinnedTLS,
        timeout: TimeAmount = .seconds(2),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> PeerConnection {
        let context = try tls.context(server: false)
        let pins = tls.table
        return try await ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try PeerConnection.configure(
                        channel,
                        tls: try NIOSSLClientHandler(
                            context: context,
                            serverHostname: nil,
                            customVerificationCallbackWithMetadata: PinnedTLS.verifier(pins)
                        )
                    )
                }
            }
    }
}
