/// The health of the link pair with one neighbour, as `liaison links` and `/v1/links` show it.
public struct LinkStatus: Codable, Sendable, Equatable {
    /// The neighbour's name.
    public var peer: String
    /// `up` (a channel is open), `relayed` (no channel; our ops go sealed through a relay),
    /// `connecting`, or `down`.
    public var state: String
    /// The path our ops take now: `channel N (ADDRESS)`, `channels N, M` (active-active),
    /// `relay via NAME`, or `none`.
    public var path: String
    /// The carrying channel's remote address, if any.
    public var channel: String?
    /// The carrying channel's last measured round trip, milliseconds.
    public var rttMillis: UInt64?
    /// When a frame last arrived from the peer (ISO 8601).
    public var lastContact: String?
    /// Ops of our log the peer has not acknowledged on a channel.
    public var lagOps: UInt64
    /// Seconds since the peer last acknowledged while lag was above zero (0 when caught up).
    public var lagSeconds: Double
    /// Ops sent to / received from the peer since the node started.
    public var opsSent: UInt64
    public var opsReceived: UInt64
    /// Frame bytes sent to / received from the peer since the node started.
    public var bytesSent: UInt64
    public var bytesReceived: UInt64
    /// Ops withheld from the peer by the link filter since start.
    public var opsWithheld: UInt64
    /// The same, by reason (`not-releasable`, `excluded-tag`, …); absent from nodes older
    /// than the field.
    public var withheldByReason: [String: UInt64]?
    /// Ops from the peer refused since start.
    public var rejects: UInt64
    /// Whether a link carries ops to / from the peer.
    public var outbound: Bool
    public var inbound: Bool
    /// Why the last channel closed, if it did.
    public var lastError: String?
    /// One row per endpoint of the peer's: the channels of this link.
    public var channels: [ChannelStatus]
    /// Times the carrying channel changed (failover or failback) since start.
    public var failovers: Int
    /// Sealed envelopes for this peer sent through relays and awaiting the peer's receipt.
    public var envelopesAwaiting: Int
    /// Sealed envelopes for this peer receipted since start, and the ops in them.
    public var envelopesReceipted: UInt64
    public var sealedOpsReceipted: UInt64
    /// Sealed envelopes from this peer opened here since start.
    public var envelopesOpened: UInt64
    /// Envelopes and receipts this node holds as a relay for the peer, waiting for a channel.
    public var relayHeld: Int
}

/// One channel of a link: the connection to one of the listening partner's endpoints.
public struct ChannelStatus: Codable, Sendable, Equatable {
    /// The listening partner's endpoint index (0: its primary network).
    public var endpoint: Int
    /// `carrying`, `standby` (open, heartbeating, not carrying), `held` (open but damped
    /// after flapping), `connecting`, or `down`.
    public var state: String
    /// The remote address, while connected.
    public var address: String?
    /// Last measured round trip, milliseconds.
    public var rttMillis: UInt64?
    /// When a frame last arrived on it (ISO 8601).
    public var lastContact: String?
    /// Times a channel on this endpoint died since start.
    public var failures: Int
    /// Why the last channel on this endpoint closed.
    public var lastError: String?
}
