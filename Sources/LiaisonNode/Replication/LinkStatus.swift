/// The health of the link pair with one neighbour, as `liaison links` and `/v1/links` show it.
public struct LinkStatus: Codable, Sendable, Equatable {
    /// The neighbour's name.
    public var peer: String
    /// `up` (session open), `connecting`, or `down`.
    public var state: String
    /// The channel in use (remote address), if any.
    public var channel: String?
    /// Last measured round trip, milliseconds.
    public var rttMillis: UInt64?
    /// When a frame last arrived from the peer (ISO 8601).
    public var lastContact: String?
    /// Ops of our log the peer has not acknowledged.
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
    /// Ops from the peer refused since start.
    public var rejects: UInt64
    /// Whether a link carries ops to / from the peer.
    public var outbound: Bool
    public var inbound: Bool
    /// Why the last channel closed, if it did.
    public var lastError: String?
}
