import Foundation
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonStore
import LiaisonTestSupport
import Logging
import Synchronization
import Testing

@testable import LiaisonAPI

/// Parts of the operator surface that depend on time or on counts going down, driven in
/// process with a clock and states set by hand.
@Suite("Operator surface, in process")
struct OperatorSurfaceTests {
    @Test("a strike count that drops (a readmitted partner starts again) does not hide the strikes after it")
    func countersGoOnAfterADrop() throws {
        let fixture = try FederationFixture.demo()
        let node = try LocalNode.open(fixture.federation.directory("alpha"))
        let metrics = NodeMetrics(node: node)
        func strikes(_ total: UInt64) -> Double? {
            var containment = ContainmentState()
            var tally = StrikeTally()
            tally.total = total
            containment.strikes["bravo"] = [.forged: tally]
            return MetricsTests.sample(
                metrics.exposition(links: [], containment: containment), "liaison_partner_strikes_total",
                ["partner": "bravo", "class": "forged"])
        }
        #expect(strikes(5) == 5)
        #expect(strikes(2) == 5, "a counter never goes back")
        #expect(strikes(4) == 7, "the two strikes after the drop count")
    }

    @Test("refusals counted within a minute are written once the minute ends, with their number, and not twice")
    func refusalsAreFlushed() async throws {
        let fixture = try FederationFixture.demo()
        let directory = fixture.federation.directory("alpha")
        let node = try LocalNode.open(directory)
        let engine = try ReplicationEngine(
            node: node, federation: try FederationConfig.load(from: directory), logger: Logger(label: "test"))
        let now = LockedClock(1_000_000)
        let audit = RefusalAudit(engine: engine) { now.read() }
        func refusals() throws -> [String] {
            try node.store.custody(from: 1, limit: 1000).filter { $0.kind == .apiRefused }.map(\.detail)
        }
        for _ in 0..<3 { await audit.record(role: .reader, route: "GET /v1/links") }
        #expect(try refusals() == ["reader token refused: GET /v1/links"])
        now.set(1_030_000)
        await audit.flushDue()
        #expect(try refusals().count == 1, "not before the minute ends")
        now.set(1_061_000)
        await audit.flushDue()
        #expect(
            try refusals() == [
                "reader token refused: GET /v1/links",
                "reader token refused: GET /v1/links (2 more refusals in the minute after the last entry)",
            ])
        now.set(1_200_000)
        await audit.flushDue()
        #expect(try refusals().count == 2, "nothing counted, nothing written")
    }
}

/// A clock a test sets.
final class LockedClock: Sendable {
    private let value: Mutex<UInt64>
    init(_ start: UInt64) { value = Mutex(start) }
    func read() -> UInt64 { value.withLock { $0 } }
    func set(_ millis: UInt64) { value.withLock { $0 = millis } }
}
