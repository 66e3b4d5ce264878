/// A deterministic random number generator (SplitMix64) for reproducible tests.
///
/// The same seed always yields the same sequence, so a failing property test can be
/// replayed from the seed it prints.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    /// The internal state; advances by a fixed odd constant on every draw.
    public private(set) var state: UInt64

    /// Starts the sequence for `seed`.
    public init(seed: UInt64) {
        self.state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count)
        while out.count < count {
            var word = next()
            for _ in 0..<8 where out.count < count {
                out.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return out
    }
}
