/// A hybrid logical clock stamp: 48 bits of milliseconds since the Unix epoch and a
/// 16-bit counter, in one `UInt64` so that stamps order as integers.
public struct HLCTimestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The packed value: `physicalMillis << 16 | logical`.
    public let rawValue: UInt64

    /// Wraps a packed value.
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Packs a physical time and a counter.
    public init(physicalMillis: UInt64, logical: UInt16) {
        precondition(physicalMillis < 1 << 48, "HLC physical time exceeds 48 bits")
        self.rawValue = physicalMillis << 16 | UInt64(logical)
    }

    /// Milliseconds since the Unix epoch.
    public var physicalMillis: UInt64 { rawValue >> 16 }
    /// The counter that orders stamps within one millisecond.
    public var logical: UInt16 { UInt16(truncatingIfNeeded: rawValue) }

    /// The smallest stamp.
    public static let zero = HLCTimestamp(rawValue: 0)

    public static func < (lhs: HLCTimestamp, rhs: HLCTimestamp) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(UInt64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { "\(physicalMillis).\(logical)" }
}

/// A hybrid logical clock (Kulkarni et al., 2014) as a value-type state machine.
///
/// The caller supplies physical time on every call, so the clock never reads the
/// system time itself; tests and the simulator drive it with a virtual clock.
public struct HybridLogicalClock: Sendable {
    /// How far ahead of our physical time a received stamp may be, in milliseconds.
    public let maxSkewMillis: UInt64
    /// The last stamp issued or observed.
    public private(set) var last: HLCTimestamp

    /// Creates a clock that resumes after `last` (e.g. the last stamp in the store).
    public init(maxSkewMillis: UInt64 = 60_000, last: HLCTimestamp = .zero) {
        self.maxSkewMillis = maxSkewMillis
        self.last = last
    }

    /// A stamp for a local event: greater than every stamp issued or observed before.
    public mutating func tick(physicalMillis: UInt64) -> HLCTimestamp {
        let next: HLCTimestamp
        if physicalMillis > last.physicalMillis {
            next = HLCTimestamp(physicalMillis: physicalMillis, logical: 0)
        } else {
            next = successor(of: last)
        }
        last = next
        return next
    }

    /// Whether a received stamp is within the allowed skew of our physical time.
    public func isWithinSkew(_ stamp: HLCTimestamp, physicalMillis: UInt64) -> Bool {
        let (limit, overflow) = physicalMillis.addingReportingOverflow(maxSkewMillis)
        return overflow || stamp.physicalMillis <= limit
    }

    /// Takes in a stamp received from another node. A stamp further ahead of our
    /// physical time than the allowed skew is refused and leaves the clock as it was.
    public mutating func observe(_ stamp: HLCTimestamp, physicalMillis: UInt64) throws(HLCSkewError) {
        guard isWithinSkew(stamp, physicalMillis: physicalMillis) else {
            throw HLCSkewError(stamp: stamp, physicalMillis: physicalMillis, maxSkewMillis: maxSkewMillis)
        }
        if stamp > last { last = stamp }
    }

    private func successor(of stamp: HLCTimestamp) -> HLCTimestamp {
        if stamp.logical == UInt16.max {
            return HLCTimestamp(physicalMillis: stamp.physicalMillis + 1, logical: 0)
        }
        return HLCTimestamp(rawValue: stamp.rawValue + 1)
    }
}

/// A received stamp lies further in the future than the allowed skew.
public struct HLCSkewError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The offending stamp.
    public let stamp: HLCTimestamp
    /// Our physical time when it arrived.
    public let physicalMillis: UInt64
    /// The allowed skew.
    public let maxSkewMillis: UInt64

    public var description: String {
        "HLC stamp \(stamp) is \(stamp.physicalMillis - physicalMillis) ms ahead of local time; at most \(maxSkewMillis) ms are allowed"
    }
}
