import LiaisonCore

/// A deterministic random number generator for reproducible tests: LiaisonCore's
/// `SeededRandom` (SplitMix64, the generator the node engine and the simulator draw from),
/// with `bytes(_:)` packing eight bytes into each draw as the tests' fixed vectors expect.
///
/// The same seed always yields the same sequence, so a failing property test can be
/// replayed from the seed it prints.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var random: SeededRandom

    /// Starts the sequence for `seed`.
    public init(seed: UInt64) {
        self.random = SeededRandom(seed: seed)
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        random.next()
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
