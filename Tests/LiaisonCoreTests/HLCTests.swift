import LiaisonCore
import LiaisonTestSupport
import Testing

/// I6 Bounded time: the hybrid logical clock.
@Suite("Hybrid logical clock")
struct HLCTests {
    @Test("a stamp packs 48 bits of milliseconds and a 16-bit counter, and orders as an integer")
    func packing() {
        let stamp = HLCTimestamp(physicalMillis: 1_700_000_000_123, logical: 7)
        #expect(stamp.rawValue == 1_700_000_000_123 << 16 | 7)
        #expect(stamp.physicalMillis == 1_700_000_000_123 && stamp.logical == 7)
        #expect(HLCTimestamp(physicalMillis: 5, logical: .max) < HLCTimestamp(physicalMillis: 6, logical: 0))
        #expect(HLCTimestamp(physicalMillis: 5, logical: 1) < HLCTimestamp(physicalMillis: 5, logical: 2))
        #expect(HLCTimestamp(rawValue: stamp.rawValue) == stamp)
    }

    @Test("tick follows physical time while it moves forward")
    func tickFollowsPhysicalTime() {
        var clock = HybridLogicalClock()
        #expect(clock.tick(physicalMillis: 1_000) == HLCTimestamp(physicalMillis: 1_000, logical: 0))
        #expect(clock.tick(physicalMillis: 1_005) == HLCTimestamp(physicalMillis: 1_005, logical: 0))
        #expect(clock.last == HLCTimestamp(physicalMillis: 1_005, logical: 0))
    }

    @Test("tick is strictly increasing when physical time stands still or goes backwards")
    func tickIsStrictlyIncreasing() {
        var clock = HybridLogicalClock()
        var rng = SeededGenerator(seed: 71)
        var physical: UInt64 = 10_000_000
        var previous = clock.tick(physicalMillis: physical)
        for step in 0..<5_000 {
            // Mostly still, sometimes backwards (by up to 10 s), sometimes forwards.
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<6: break
            case 6..<8: physical -= min(physical, UInt64.random(in: 1...10_000, using: &rng))
            default: physical += UInt64.random(in: 1...3, using: &rng)
            }
            let next = clock.tick(physicalMillis: physical)
            #expect(next > previous, "step \(step)")
            #expect(clock.last == next)
            previous = next
        }
        var still = HybridLogicalClock()
        let a = still.tick(physicalMillis: 9)
        let b = still.tick(physicalMillis: 9)
        let c = still.tick(physicalMillis: 3)
        #expect(
            [a, b, c] == [
                .init(physicalMillis: 9, logical: 0), .init(physicalMillis: 9, logical: 1),
                .init(physicalMillis: 9, logical: 2),
            ]
        )
    }

    @Test("a full logical counter rolls over into the next millisecond")
    func logicalOverflow() {
        var clock = HybridLogicalClock(last: HLCTimestamp(physicalMillis: 2_000, logical: .max - 1))
        #expect(clock.tick(physicalMillis: 2_000) == HLCTimestamp(physicalMillis: 2_000, logical: .max))
        #expect(clock.tick(physicalMillis: 2_000) == HLCTimestamp(physicalMillis: 2_001, logical: 0))
        #expect(clock.tick(physicalMillis: 1_999) == HLCTimestamp(physicalMillis: 2_001, logical: 1))
        #expect(clock.tick(physicalMillis: 2_001) == HLCTimestamp(physicalMillis: 2_001, logical: 2))
        #expect(clock.tick(physicalMillis: 2_002) == HLCTimestamp(physicalMillis: 2_002, logical: 0))
    }

    @Test("observe refuses a stamp beyond the allowed skew and leaves the clock unchanged")
    func observeRefusesFutureStamps() {
        var clock = HybridLogicalClock(maxSkewMillis: 1_000)
        let before = clock.tick(physicalMillis: 10_000)
        let future = HLCTimestamp(physicalMillis: 11_001, logical: 0)
        #expect(!clock.isWithinSkew(future, physicalMillis: 10_000))
        let error = #expect(throws: HLCSkewError.self) { try clock.observe(future, physicalMillis: 10_000) }
        #expect(error?.stamp == future && error?.physicalMillis == 10_000 && error?.maxSkewMillis == 1_000)
        #expect(clock.last == before)
        #expect(clock.tick(physicalMillis: 10_000) == HLCTimestamp(physicalMillis: 10_000, logical: 1))
        // The same stamp is admitted once local time is within the skew of it, and taken in
        // only up to the clock's lead (half the skew) ahead, until local time is within that.
        #expect(throws: Never.self) { try clock.observe(future, physicalMillis: 10_001) }
        #expect(clock.last == HLCTimestamp(physicalMillis: 10_501, logical: 0))
        #expect(throws: Never.self) { try clock.observe(future, physicalMillis: 10_501) }
        #expect(clock.last == future)
    }

    @Test("observe accepts a stamp within the lead (half the skew), and later ticks exceed it")
    func observeWithinLead() throws {
        var clock = HybridLogicalClock(maxSkewMillis: 1_000)
        #expect(clock.maxLeadMillis == 500)
        _ = clock.tick(physicalMillis: 10_000)
        let near = HLCTimestamp(physicalMillis: 10_499, logical: 40)
        try clock.observe(near, physicalMillis: 10_000)
        #expect(clock.last == near)
        let next = clock.tick(physicalMillis: 10_000)
        #expect(next == HLCTimestamp(physicalMillis: 10_499, logical: 41))
        #expect(clock.tick(physicalMillis: 11_500) == HLCTimestamp(physicalMillis: 11_500, logical: 0))
        // An older stamp does not move the clock back.
        try clock.observe(HLCTimestamp(physicalMillis: 3, logical: 0), physicalMillis: 11_500)
        #expect(clock.last == HLCTimestamp(physicalMillis: 11_500, logical: 0))
    }

    @Test(
        "a stamp near the edge of the skew is admitted but taken in only up to the lead: a partner cannot drag our own stamps to the edge"
    )
    func observeNearTheEdgeIsCapped() throws {
        var clock = HybridLogicalClock(maxSkewMillis: 1_000)
        _ = clock.tick(physicalMillis: 10_000)
        let edge = HLCTimestamp(physicalMillis: 11_000, logical: 40)
        #expect(clock.isWithinSkew(edge, physicalMillis: 10_000))
        try clock.observe(edge, physicalMillis: 10_000)
        let own = clock.tick(physicalMillis: 10_000)
        #expect(own.physicalMillis <= 10_500, "our own stamp was dragged to \(own)")
        #expect(own > HLCTimestamp(physicalMillis: 10_000, logical: 0))
        // Our stamps stay within the skew of a partner whose clock is half the skew behind.
        #expect(clock.isWithinSkew(own, physicalMillis: 9_500))
    }

    @Test("a clock resumed after a stored stamp near the edge starts at most the lead ahead")
    func resumeCapsAStoredEdgeStamp() {
        let stored = HLCTimestamp(physicalMillis: 70_900, logical: 3)
        var clock = HybridLogicalClock(maxSkewMillis: 1_000, resumingAfter: stored, physicalMillis: 70_000)
        let own = clock.tick(physicalMillis: 70_000)
        #expect(own == HLCTimestamp(physicalMillis: 70_500, logical: 1), "resumed at \(own)")
        var plain = HybridLogicalClock(maxSkewMillis: 1_000, resumingAfter: stored, physicalMillis: 71_000)
        #expect(plain.tick(physicalMillis: 71_000) == HLCTimestamp(physicalMillis: 71_000, logical: 0))
        var behind = HybridLogicalClock(
            maxSkewMillis: 1_000, resumingAfter: HLCTimestamp(physicalMillis: 70_200, logical: 8),
            physicalMillis: 70_000)
        #expect(behind.tick(physicalMillis: 70_000) == HLCTimestamp(physicalMillis: 70_200, logical: 9))
    }

    @Test("timing: within the skew now; up to twice the skew ahead once local time is within the skew; beyond, never")
    func timing() {
        let clock = HybridLogicalClock(maxSkewMillis: 1_000)
        #expect(clock.timing(of: HLCTimestamp(physicalMillis: 11_000, logical: 9), physicalMillis: 10_000) == .timely)
        #expect(
            clock.timing(of: HLCTimestamp(physicalMillis: 11_001, logical: 0), physicalMillis: 10_000)
                == .early(readyAtMillis: 10_001))
        #expect(
            clock.timing(of: HLCTimestamp(physicalMillis: 12_000, logical: 0), physicalMillis: 10_000)
                == .early(readyAtMillis: 11_000))
        let far = HLCTimestamp(physicalMillis: 12_001, logical: 0)
        #expect(
            clock.timing(of: far, physicalMillis: 10_000)
                == .tooFar(HLCSkewError(stamp: far, physicalMillis: 10_000, maxSkewMillis: 1_000)))
        // Once local time is ready, the same stamp is timely.
        #expect(clock.timing(of: HLCTimestamp(physicalMillis: 12_000, logical: 0), physicalMillis: 11_000) == .timely)
    }

    @Test("a clock resumed from a stored stamp never issues anything at or below it")
    func resumeAfterRestart() {
        let stored = HLCTimestamp(physicalMillis: 80_000, logical: 12)
        var clock = HybridLogicalClock(last: stored)
        // The machine's time went backwards across the restart.
        #expect(clock.tick(physicalMillis: 70_000) == HLCTimestamp(physicalMillis: 80_000, logical: 13))
    }

    @Test("a skew so large it would overflow accepts every stamp")
    func hugeSkewDoesNotWrap() {
        var clock = HybridLogicalClock(maxSkewMillis: .max)
        let now: UInt64 = 1_700_000_000_000
        let stamp = HLCTimestamp(physicalMillis: now + 5, logical: 0)
        #expect(clock.isWithinSkew(stamp, physicalMillis: now))
        #expect(throws: Never.self) { try clock.observe(stamp, physicalMillis: now) }
    }
}
