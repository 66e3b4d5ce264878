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

    /// Creates a clock that resumes after `last`.
    public init(maxSkewMillis: UInt64 = 60_000, last: HLCTimestamp = .zero) {
        self.maxSkewMillis = maxSkewMillis
        self.last = last
    }

    /// Creates a clock that resumes after `stored` (the greatest stamp in the store), taken
    /// in as `observe` would take it at `physicalMillis`: at most `maxLeadMillis` ahead. A
    /// partner's stamp near the edge of the skew, once stored, does not drag the stamps this
    /// node issues after a restart (or for each local write) to that edge.
    public init(maxSkewMillis: UInt64 = 60_000, resumingAfter stored: HLCTimestamp, physicalMillis: UInt64) {
        self.maxSkewMillis = maxSkewMillis
        self.last = .zero
        self.last = min(stored, leadLimit(physicalMillis: physicalMillis))
    }

    /// How far ahead of our physical time the clock itself may run: half the allowed skew.
    /// Stamps further ahead (but within the skew) are admitted, and taken in only up to this
    /// bound, so a partner stamping near the edge of the skew cannot drag this node's own
    /// stamps there: they stay within the skew of every partner whose clock is at most
    /// `maxLeadMillis` behind ours.
    public var maxLeadMillis: UInt64 { maxSkewMillis / 2 }

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

    /// When an op stamped `stamp` may be admitted at `physicalMillis` (I6): now, when it is
    /// within the allowed skew; later, when it is further ahead but by at most twice the skew
    /// (it waits until local time is within the skew of it); never, further ahead still.
    public func timing(of stamp: HLCTimestamp, physicalMillis: UInt64) -> StampTiming {
        if isWithinSkew(stamp, physicalMillis: physicalMillis) { return .timely }
        let readyAt = stamp.physicalMillis - maxSkewMillis
        guard readyAt - physicalMillis <= maxSkewMillis else {
            return .tooFar(HLCSkewError(stamp: stamp, physicalMillis: physicalMillis, maxSkewMillis: maxSkewMillis))
        }
        return .early(readyAtMillis: readyAt)
    }

    /// Takes in a stamp received from another node. A stamp further ahead of our
    /// physical time than the allowed skew is refused and leaves the clock as it was; a
    /// stamp more than `maxLeadMillis` ahead is taken in only up to that bound.
    public mutating func observe(_ stamp: HLCTimestamp, physicalMillis: UInt64) throws(HLCSkewError) {
        guard isWithinSkew(stamp, physicalMillis: physicalMillis) else {
            throw HLCSkewError(stamp: stamp, physicalMillis: physicalMillis, maxSkewMillis: maxSkewMillis)
        }
        let taken = min(stamp, leadLimit(physicalMillis: physicalMillis))
        if taken > last { last = taken }
    }

    /// The greatest stamp the clock may take in at `physicalMillis`.
    private func leadLimit(physicalMillis: UInt64) -> HLCTimestamp {
        let (limit, overflow) = physicalMillis.addingReportingOverflow(maxLeadMillis)
        guard !overflow, limit < 1 << 48 else { return HLCTimestamp(rawValue: .max) }
        return HLCTimestamp(physicalMillis: limit, logical: 0)
    }

    private func successor(of stamp: HLCTimestamp) -> HLCTimestamp {
        if stamp.logical == UInt16.max {
            return HLCTimestamp(physicalMillis: stamp.physicalMillis + 1, logical: 0)
        }
        return HLCTimestamp(rawValue: stamp.rawValue + 1)
    }
}

/// When a received op may be admitted, by its stamp alone (`HybridLogicalClock.timing`).
public enum StampTiming: Hashable, Sendable {
    /// Within the allowed skew of local time: now.
    case timely
    /// Further ahead than the skew, by at most twice the skew: once local time reaches
    /// `readyAtMillis` (the stamp's time less the skew).
    case early(readyAtMillis: UInt64)
    /// More than twice the skew ahead: refused, and charged to the op's author.
    case tooFar(HLCSkewError)
}

/// A received stamp lies further in the future than the allowed skew.
public struct HLCSkewError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The offending stamp.
    public let stamp: HLCTimestamp
    /// Our physical time when it arrived.
    public let physicalMillis: UInt64
    /// The allowed skew.
    public let maxSkewMillis: UInt64

    /// Describes a stamp `stamp` that arrived at `physicalMillis`, more than `maxSkewMillis` ahead.
    public init(stamp: HLCTimestamp, physicalMillis: UInt64, maxSkewMillis: UInt64) {
        self.stamp = stamp
        self.physicalMillis = physicalMillis
        self.maxSkewMillis = maxSkewMillis
    }

    public var description: String {
        "HLC stamp \(stamp) is \(stamp.physicalMillis - physicalMillis) ms ahead of local time; at most \(maxSkewMillis) ms are allowed"
    }
}
