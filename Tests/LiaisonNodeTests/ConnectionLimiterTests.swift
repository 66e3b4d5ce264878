import LiaisonTransport
import Testing

@Suite("Connections per address")
struct ConnectionLimiterTests {
    @Test("an address gets at most the limit of open connections; a place comes back when one ends")
    func limit() {
        let limiter = ConnectionLimiter(limit: 3)
        #expect((0..<5).map { _ in limiter.enter("10.0.0.1") } == [true, true, true, false, false])
        #expect(limiter.enter("10.0.0.2"), "another address has its own count")
        limiter.leave("10.0.0.1")
        #expect(limiter.enter("10.0.0.1"))
        #expect(!limiter.enter("10.0.0.1"))
        #expect(limiter.count("10.0.0.1") == 3)
    }
}
