import LiaisonNode
import Testing

@Suite("Catch-up progress lines")
struct CatchUpProgressTests {
    @Test("a long catch-up is reported every interval with its rate and time left, and its end once; short work is not")
    func reportsLongCatchUps() {
        var progress = CatchUpProgress(intervalMillis: 5_000, threshold: 10_000)
        func read(_ lag: UInt64, _ received: UInt64 = 0) -> [CatchUpProgress.Reading] {
            [CatchUpProgress.Reading(peer: "bravo", lagOps: lag, received: received)]
        }
        #expect(progress.lines(read(100_000), nowMillis: 0).isEmpty, "the first reading only sets the baseline")
        #expect(progress.lines(read(90_000), nowMillis: 4_000).isEmpty, "not a whole interval yet")
        #expect(
            progress.lines(read(65_000), nowMillis: 5_000)
                == ["catching up with bravo: 65000 ops of our log to send, 7000 ops/s, about 9 s left"])
        #expect(
            progress.lines(read(30_000), nowMillis: 10_000)
                == ["catching up with bravo: 30000 ops of our log to send, 7000 ops/s, about 4 s left"])
        #expect(progress.lines(read(0), nowMillis: 15_000) == ["catch-up with bravo done: 0 ops to send"])
        #expect(progress.lines(read(0), nowMillis: 20_000).isEmpty, "the end is said once")
        #expect(progress.lines(read(500), nowMillis: 25_000).isEmpty, "short work is not reported")
    }

    @Test("a receiver reports the rate at which a partner's ops arrive")
    func reportsReceiving() {
        var progress = CatchUpProgress(intervalMillis: 5_000, threshold: 10_000)
        let start = [CatchUpProgress.Reading(peer: "alpha", lagOps: 0, received: 1_000)]
        #expect(progress.lines(start, nowMillis: 0).isEmpty)
        let later = [CatchUpProgress.Reading(peer: "alpha", lagOps: 0, received: 41_000)]
        #expect(
            progress.lines(later, nowMillis: 5_000) == ["catching up with alpha: receiving 8000 ops/s (41000 so far)"])
    }
}
