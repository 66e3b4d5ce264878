import Foundation
public import LiaisonCore
import LiaisonWire
import NIOCore
import Synchronization

/// What a channel's keepalive heard, for the engine to take on its next turn: when the
/// last frame of any kind arrived, and the heartbeats (pings and pongs) it answered or took,
/// in order, with their arrival times.
public final class HeartbeatRecord: Sendable {
    /// One heartbeat from the peer.
    public struct Heartbeat: Sendable, Hashable {
        /// The ping or pong.
        public var message: SyncMessage
        /// Its frame's size on the wire.
        public var bytes: Int
        /// When it arrived.
        public var atMillis: UInt64
    }

    private struct State {
        var lastArrivalMillis: UInt64 = 0
        var heartbeats: [Heartbeat] = []
    }

    private let state = Mutex(State())

    /// An empty record.
    public init() {}

    /// When the last frame arrived (0: none yet).
    public var lastArrivalMillis: UInt64 { state.withLock { $0.lastArrivalMillis } }

    /// A frame arrived at `atMillis`.
    func arrived(atMillis: UInt64) {
        state.withLock { $0.lastArrivalMillis = max($0.lastArrivalMillis, atMillis) }
    }

    /// Records a heartbeat; false when `ChannelKeepalive.maxRecordedHeartbeats` wait already
    /// (the peer floods: the heartbeat is neither answered nor recorded).
    func record(_ heartbeat: Heartbeat) -> Bool {
        state.withLock { state in
            guard state.heartbeats.count < ChannelKeepalive.maxRecordedHeartbeats else { return false }
            state.heartbeats.append(heartbeat)
            return true
        }
    }

    /// Takes the heartbeats recorded so far, oldest first.
    public func take() -> [Heartbeat] {
        state.withLock { state in
            defer { state.heartbeats = [] }
            return state.heartbeats
        }
    }
}

/// Answers the peer's pings on the channel's event loop, whatever the node's engine is doing
/// (`ChannelKeepalive`), records every frame's arrival and every heartbeat in a
/// `HeartbeatRecord`, and passes every other frame on to the session's reader.
final class KeepaliveHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let record: HeartbeatRecord
    private var keepalive = ChannelKeepalive()

    init(record: HeartbeatRecord) {
        self.record = record
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let at = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        record.arrived(atMillis: at)
        var message: SyncMessage?
        if frame.readableBytes <= ChannelKeepalive.maxHeartbeatFrameBytes {
            message = try? SyncFrameCodec.decode(frame)
        }
        switch keepalive.inbound(message) {
        case .engine:
            context.fireChannelRead(data)
        case .heartbeat(let reply):
            guard let message else { return }
            let recorded = record.record(.init(message: message, bytes: frame.readableBytes + 4, atMillis: at))
            if recorded, let reply, let encoded = try? SyncFrameCodec.encode(reply) {
                context.writeAndFlush(wrapOutboundOut(encoded), promise: nil)
            }
        }
    }
}
