/// What a channel's transport does with each message from the peer before the engine sees
/// it (DESIGN §5.5, docs/decisions.md "Heartbeats are answered by the channel").
///
/// A heartbeat says that the peer's process and the path to it are alive. It must not wait
/// for the node's store: a receiver committing a large batch, or a sender reading one, would
/// otherwise go silent for as long as the store work takes, and its peer would declare the
/// channel dead, reconnect and resend (found under load: a 10,000-op catch-up made no
/// progress for minutes). So the transport answers a ping with a pong at once, on its own
/// thread, and records every heartbeat with the time it arrived; the engine receives the
/// records later and still judges them (round trips, floods). Whether our acks keep up is
/// the ack deadline's business, not the heartbeat's.
///
/// Both shells use this one rule: the daemon's channel handler (LiaisonTransport) and the
/// simulator's network.
public struct ChannelKeepalive: Sendable {
    /// What to do with one message.
    public enum Disposition: Hashable, Sendable {
        /// Hand it to the engine, in order with the channel's other messages.
        case engine
        /// A heartbeat: answer with `reply` now (if any) and record it for the engine.
        case heartbeat(reply: SyncMessage?)
    }

    /// Whether the channel's first message (the peer's hello) has gone to the engine.
    public private(set) var opened = false

    /// A keepalive for a new channel.
    public init() {}

    /// The disposition of a message from the peer; nil stands for a frame the transport did
    /// not decode (too large to be a heartbeat). The first message always goes to the
    /// engine, so a heartbeat is never recorded ahead of the hello that opens the session;
    /// a session that is not open yet leaves the records waiting.
    public mutating func inbound(_ message: SyncMessage?) -> Disposition {
        guard opened, let message else {
            opened = true
            return .engine
        }
        switch message {
        case .ping(let nonce): return .heartbeat(reply: .pong(nonce: nonce))
        case .pong: return .heartbeat(reply: nil)
        default: return .engine
        }
    }

    /// Frames of at most this many bytes may be heartbeats; the transport decodes only those
    /// itself (a ping or a pong is a nonce and a few bytes of framing).
    public static let maxHeartbeatFrameBytes = 64

    /// Most heartbeats recorded for the engine between two of its turns. An honest peer sends
    /// a few per second; past this it floods, and the engine strikes it on the records it
    /// has. Heartbeats beyond it are neither answered nor recorded.
    public static let maxRecordedHeartbeats = 1_024
}
