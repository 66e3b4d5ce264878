public import LiaisonCore
public import LiaisonNode
import NIOCore
import NIOPosix
import Synchronization

/// A TCP proxy on loopback that forwards every connection it accepts to one target, byte for
/// byte (TLS passes through untouched), and can be made to fail the way networks fail.
///
/// - `cut()`: connections already open become a silent blackhole (bytes are dropped in both
///   directions and both sockets stay open, like a pulled cable); new connections are accepted
///   and closed at once (like a firewall that rejects).
/// - `heal()`: the blackholed connections are closed and new ones are forwarded again.
///
/// Drills put one proxy in front of every endpoint a node dials, so faults need no root and
/// behave the same on every machine. All methods may be called from any thread.
public final class FaultProxy: Sendable {
    /// Where the proxy listens (127.0.0.1 and a free port).
    public let endpoint: Endpoint
    /// Where it forwards to.
    public let target: Endpoint

    private let serverChannel: any Channel
    private let state: Mutex<State>
    private let counters: FaultProxyCounters

    struct State {
        var cut = false
        var closed = false
        var connections: [ObjectIdentifier: FaultProxyConnection] = [:]
    }

    private init(endpoint: Endpoint, target: Endpoint, serverChannel: any Channel, counters: FaultProxyCounters) {
        self.endpoint = endpoint
        self.target = target
        self.serverChannel = serverChannel
        self.counters = counters
        self.state = Mutex(State())
    }

    /// Starts a proxy on 127.0.0.1 that forwards to `target`. The port comes from the same
    /// source as the ports `LocalFederation` hands to nodes, so a proxy never takes a port a
    /// node that has not started yet is about to bind.
    public static func start(forwardingTo target: Endpoint) async throws(LiaisonError) -> FaultProxy {
        let group = MultiThreadedEventLoopGroup.singleton
        let port = try FreePort.find()
        // The state lives in a box shared by the accept path and the proxy object, because the
        // accept path is configured before the proxy exists.
        let counters = FaultProxyCounters()
        let shared = SharedState(counters: counters)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                shared.accept(inbound, target: target)
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: "127.0.0.1", port: port).get()
        } catch {
            throw LiaisonError(.io, "the fault proxy for \(target) could not listen on loopback", cause: error)
        }
        let proxy = FaultProxy(
            endpoint: Endpoint(host: "127.0.0.1", port: port),
            target: target,
            serverChannel: channel,
            counters: counters
        )
        shared.attach(proxy)
        return proxy
    }

    /// Whether the proxy is cut.
    public var isCut: Bool { state.withLock { $0.cut } }

    /// Bytes passed on, both directions together.
    public var bytesForwarded: Int { counters.forwarded.load(ordering: .relaxed) }

    /// Bytes swallowed by blackholed connections, both directions together.
    public var bytesDropped: Int { counters.dropped.load(ordering: .relaxed) }

    /// Connections accepted and closed at once because the proxy was cut.
    public var connectionsRefused: Int { counters.refused.load(ordering: .relaxed) }

    /// Connections currently open through the proxy (forwarding or blackholed).
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Blackholes every open connection and rejects new ones until `heal()`.
    public func cut() {
        state.withLock { state in
            state.cut = true
            for connection in state.connections.values { connection.blackhole() }
        }
    }

    /// Closes the blackholed connections and forwards new connections again.
    public func heal() {
        let dropped = state.withLock { state -> [FaultProxyConnection] in
            state.cut = false
            let dropped = state.connections.values.filter(\.isBlackholed)
            for connection in dropped { state.connections[ObjectIdentifier(connection)] = nil }
            return dropped
        }
        for connection in dropped { connection.close() }
    }

    /// Stops listening and closes every connection. Further calls do nothing.
    public func shutdown() async {
        let open = state.withLock { state -> [FaultProxyConnection]? in
            guard !state.closed else { return nil }
            state.closed = true
            defer { state.connections = [:] }
            return Array(state.connections.values)
        }
        guard let open else { return }
        for connection in open { connection.close() }
        try? await serverChannel.close()
    }

    /// Called for each accepted connection: refused when cut or closed, registered otherwise.
    fileprivate func admit(_ connection: FaultProxyConnection) -> Bool {
        state.withLock { state in
            guard !state.cut, !state.closed else { return false }
            state.connections[ObjectIdentifier(connection)] = connection
            return true
        }
    }

    /// Called when a forwarding connection ended by itself.
    fileprivate func forget(_ connection: FaultProxyConnection) {
        _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(connection)) }
    }
}

/// The accept path's view of its proxy: set once, right after the listener is bound. A
/// connection accepted before then (nobody knows the port yet) is refused.
private final class SharedState: Sendable {
    private let proxy = Mutex<FaultProxy?>(nil)
    private let counters: FaultProxyCounters

    init(counters: FaultProxyCounters) { self.counters = counters }

    func attach(_ proxy: FaultProxy) { self.proxy.withLock { $0 = proxy } }

    func accept(_ inbound: any Channel, target: Endpoint) -> EventLoopFuture<Void> {
        let connection = FaultProxyConnection(inbound: inbound, counters: counters)
        guard let proxy = proxy.withLock({ $0 }), proxy.admit(connection) else {
            // Rejected: accepted, then closed at once.
            counters.refused.add(1, ordering: .relaxed)
            return inbound.close()
        }
        connection.onEnd = { [weak proxy] in proxy?.forget(connection) }
        // The target is dialled once the accepted channel is active (see the handler), so a
        // fast dial can never find it not yet registered.
        return inbound.eventLoop.makeCompletedFuture {
            try inbound.pipeline.syncOperations.addHandler(
                FaultProxyRelayHandler(connection: connection, dialling: target))
        }
    }
}

/// Traffic counters of one proxy.
final class FaultProxyCounters: Sendable {
    let forwarded = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let refused = Atomic<Int>(0)
}

/// One proxied connection: the accepted channel and the one dialled to the target, and
/// whether bytes between them are dropped.
final class FaultProxyConnection: Sendable {
    private let inbound: any Channel
    /// The channel to the target once dialled, and whether `close()` ran (a close that comes
    /// before the dial completes must still close the dialled channel).
    private let outbound = Mutex<(channel: (any Channel)?, closed: Bool)>((nil, false))
    private let blackholed = Atomic<Bool>(false)
    private let endHook = Mutex<(@Sendable () -> Void)?>(nil)
    let counters: FaultProxyCounters

    init(inbound: any Channel, counters: FaultProxyCounters) {
        self.inbound = inbound
        self.counters = counters
    }

    /// Run once when the connection ends without being blackholed.
    var onEnd: (@Sendable () -> Void)? {
        get { endHook.withLock { $0 } }
        set { endHook.withLock { $0 = newValue } }
    }

    var isBlackholed: Bool { blackholed.load(ordering: .acquiring) }

    func blackhole() { blackholed.store(true, ordering: .releasing) }

    /// Dials the target from the accepted channel's event loop; `left` is the accepted
    /// channel's handler.
    func dial(_ target: Endpoint, left: FaultProxyRelayHandler, on eventLoop: any EventLoop) {
        ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.autoRead, value: false)
            .connect(host: target.host, port: target.port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let outbound): self.join(outbound, left: left)
                case .failure: self.ended()
                }
            }
    }

    /// Wires the dialled channel to the accepted one (both on the same event loop, where
    /// this runs) and starts reading.
    private func join(_ outbound: any Channel, left: FaultProxyRelayHandler) {
        let closed = self.outbound.withLock { state in
            state.channel = outbound
            return state.closed
        }
        guard !closed else {
            // The accepted side ended (or heal/shutdown ran) while the target was dialled.
            outbound.close(promise: nil)
            return
        }
        let right = FaultProxyRelayHandler(connection: self, dialling: nil)
        do {
            try outbound.pipeline.syncOperations.addHandler(right)
        } catch {
            ended()
            return
        }
        left.partner = right
        right.partner = left
        guard inbound.isActive, outbound.isActive else {
            ended()
            return
        }
        // Reading starts now that both sides are wired; the handlers gate every read.
        try? inbound.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
        try? outbound.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
    }

    /// One side closed (or the target could not be reached): the other follows, unless the
    /// connection is a blackhole (a pulled cable does not tell the far side anything; `heal()`
    /// or `shutdown()` closes it later).
    func ended() {
        guard !isBlackholed else { return }
        close()
        endHook.withLock { hook in
            hook?()
            hook = nil
        }
    }

    /// Closes both sides.
    func close() {
        inbound.close(promise: nil)
        let channel = outbound.withLock { state in
            state.closed = true
            return state.channel
        }
        channel?.close(promise: nil)
    }
}

/// Copies bytes from its channel to the partner channel's handler, with back-pressure:
/// it reads only while the partner can write. Drops everything once the connection is
/// blackholed.
final class FaultProxyRelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let connection: FaultProxyConnection
    /// On the accepted side: the target to dial once the channel is active.
    private let target: Endpoint?
    var partner: FaultProxyRelayHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    init(connection: FaultProxyConnection, dialling target: Endpoint?) {
        self.connection = connection
        self.target = target
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelActive(context: ChannelHandlerContext) {
        if let target { connection.dial(target, left: self, on: context.eventLoop) }
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data).readableBytes
        guard !connection.isBlackholed else {
            connection.counters.dropped.add(bytes, ordering: .relaxed)
            return
        }
        connection.counters.forwarded.add(bytes, ordering: .relaxed)
        partner?.partnerWrite(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard !connection.isBlackholed else { return }
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.ended()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or similar: the channel closes, channelInactive follows.
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        // While blackholed keep reading (and dropping), so the sender never sees back-pressure
        // it could take for a signal.
        if connection.isBlackholed || partner?.partnerWritable ?? false {
            context.read()
        } else {
            pendingRead = true
        }
    }

    private func partnerWrite(_ data: NIOAny) { context?.write(data, promise: nil) }

    private func partnerFlush() { context?.flush() }

    private var partnerWritable: Bool { context?.channel.isWritable ?? false }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }
}

@available(*, unavailable)
extension FaultProxyRelayHandler: Sendable {}
