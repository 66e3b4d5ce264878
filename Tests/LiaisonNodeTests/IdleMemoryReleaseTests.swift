import LiaisonNode
import Testing

@Suite("Memory given back when a node goes idle")
struct IdleMemoryReleaseTests {
    /// Readings once a second from `start`, one per work count; the seconds at which the
    /// policy said to release.
    static func releases(
        _ policy: inout IdleMemoryRelease, _ counts: [UInt64], startMillis: UInt64 = 0
    ) -> [UInt64] {
        var seconds = [UInt64]()
        for (index, work) in counts.enumerated() {
            let now = startMillis + UInt64(index) * 1_000
            if policy.reading(work: work, nowMillis: now) { seconds.append(now / 1_000) }
        }
        return seconds
    }

    @Test("after heavy work, once the work has stood still for five seconds, and once only")
    func releasesOnceAfterQuiet() {
        var policy = IdleMemoryRelease()
        // Baseline 0, a catch-up of 30,000 ops over three seconds, then a minute of nothing.
        let counts: [UInt64] = [0, 10_000, 20_000, 30_000] + Array(repeating: 30_000, count: 60)
        // The count last moved at second 3: quiet for five seconds at second 8.
        #expect(Self.releases(&policy, counts) == [8])
    }

    @Test("what a node holds when it starts is not work: a restarted node holding a million ops releases nothing")
    func baselineIsNotWork() {
        var policy = IdleMemoryRelease()
        #expect(Self.releases(&policy, Array(repeating: 1_000_000, count: 60)).isEmpty)
    }

    @Test("nothing while the work goes on, nor after less than heavy work")
    func notWhileWorkingNorForLightWork() {
        var policy = IdleMemoryRelease()
        // Work growing every second for two minutes: never quiet.
        #expect(Self.releases(&policy, (0..<120).map { UInt64($0) * 1_000 }).isEmpty)
        var light = IdleMemoryRelease()
        let counts: [UInt64] =
            [0, IdleMemoryRelease.heavyWork - 1] + Array(repeating: IdleMemoryRelease.heavyWork - 1, count: 60)
        #expect(Self.releases(&light, counts).isEmpty)
    }

    @Test("new heavy work after a release gives another; a count that goes back starts a new baseline")
    func againAfterNewWork() {
        var policy = IdleMemoryRelease()
        var counts: [UInt64] = [0, 20_000] + Array(repeating: 20_000, count: 10)
        counts += [25_000] + Array(repeating: 25_000, count: 10)  // 5,000 more: not heavy
        counts += [40_000] + Array(repeating: 40_000, count: 10)  // 20,000 since the release
        #expect(Self.releases(&policy, counts) == [6, 28])
        var reset = IdleMemoryRelease()
        // Counters that start again (a restart of the counting) go back to 100: the next
        // heavy work is measured from there, not from 50,000.
        let again: [UInt64] = [50_000, 100, 10_100] + Array(repeating: 10_100, count: 10)
        #expect(Self.releases(&reset, again) == [7])
    }
}
