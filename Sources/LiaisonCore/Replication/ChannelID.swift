/// Names one channel (one TLS connection, or one simulated stream) for as long as it lives.
/// The shell that opens a channel chooses its id and never reuses it.
public struct ChannelID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number.
    public var raw: Int

    /// An id.
    public init(_ raw: Int) { self.raw = raw }

    public static func < (lhs: ChannelID, rhs: ChannelID) -> Bool { lhs.raw < rhs.raw }

    public var description: String { "#\(raw)" }
}
