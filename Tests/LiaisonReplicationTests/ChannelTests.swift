import Foundation
import LiaisonCore
import LiaisonReplication
import LiaisonTestSupport
import Testing

/// Several channels per link (DESIGN §6): which channel carries, failover, failback,
/// damping, active-active, and what a standby channel does.
@Suite("Channels of a link")
struct ChannelTests {
    typealias Machine = LinkSessionStateMachine

    static func selector(_ mode: ChannelSettings.Mode = .failover) -> ChannelSelector {
        var settings = ChannelSettings()
        settings.mode = mode
        settings.failbackAfterMillis = 2_000
        return ChannelSelector(settings: settings)
    }

    @Test("the primary endpoint's channel carries; the backup stands by")
    func primaryCarries() {
        var selector = Self.selector()
        selector.opened(7, endpoint: 1, nowMillis: 0)
        selector.opened(8, endpoint: 0, nowMillis: 0)
        let (start, stop) = selector.select(nowMillis: 0)
        #expect(start == [8])
        #expect(stop.isEmpty)
        #expect(selector.carriers == [8])
    }

    @Test("when the carrier dies the standby carries at once, and the link moves back only after the primary settled")
    func failoverAndFailback() {
        var selector = Self.selector()
        selector.opened(1, endpoint: 0, nowMillis: 0)
        selector.opened(2, endpoint: 1, nowMillis: 0)
        _ = selector.select(nowMillis: 0)
        selector.closed(1, failed: true, nowMillis: 1_000)
        #expect(selector.select(nowMillis: 1_000).start == [2])
        #expect(selector.switches == 0, "the carrier died; nothing was carrying when the standby took over")
        // The primary comes back: the backup keeps carrying until the primary has been up 2 s.
        selector.opened(3, endpoint: 0, nowMillis: 1_500)
        #expect(selector.select(nowMillis: 1_500).start.isEmpty)
        #expect(selector.select(nowMillis: 3_400).start.isEmpty)
        let (start, stop) = selector.select(nowMillis: 3_500)
        #expect(start == [3])
        #expect(stop == [2])
        #expect(selector.switches == 1)
    }

    @Test("an endpoint that keeps dying is held down and carries only when nothing else can")
    func flappingIsDamped() {
        var selector = Self.selector()
        selector.opened(2, endpoint: 1, nowMillis: 0)
        for round in 0..<3 {
            let at = UInt64(round) * 100
            selector.opened(10 + round, endpoint: 0, nowMillis: at)
            _ = selector.select(nowMillis: at)
            selector.closed(10 + round, failed: true, nowMillis: at + 50)
        }
        #expect(selector.heldUntil(endpoint: 0) > 250)
        selector.opened(20, endpoint: 0, nowMillis: 300)
        _ = selector.select(nowMillis: 300)
        #expect(selector.carriers == [2], "the flapping primary must not take the link back while held down")
        // Even long after failback would be due, the hold keeps it off.
        _ = selector.select(nowMillis: 2_200)
        #expect(selector.carriers == [2])
        // With the backup gone, the held primary carries rather than nothing.
        selector.closed(2, failed: true, nowMillis: 2_300)
        _ = selector.select(nowMillis: 2_300)
        #expect(selector.carriers == [20])
    }

    @Test("a channel closed on purpose (replaced, shut down) is no flap")
    func deliberateCloseIsNoFlap() {
        var selector = Self.selector()
        for id in 0..<5 {
            selector.opened(id, endpoint: 0, nowMillis: UInt64(id))
            selector.closed(id, failed: false, nowMillis: UInt64(id))
        }
        #expect(selector.heldUntil(endpoint: 0) == 0)
    }

    @Test("active-active: every healthy channel carries")
    func activeActive() {
        var selector = Self.selector(.activeActive)
        selector.opened(1, endpoint: 0, nowMillis: 0)
        selector.opened(2, endpoint: 1, nowMillis: 0)
        #expect(Set(selector.select(nowMillis: 0).start) == [1, 2])
        selector.closed(1, failed: true, nowMillis: 10)
        _ = selector.select(nowMillis: 10)
        #expect(selector.carriers == [2])
    }

    @Test(
        "a standby channel answers and receives but sends no batch until it carries; then it resumes after what the link acknowledged"
    )
    func standbyThenCarry() {
        var machine = Machine(
            local: TestNode.alice.nodeID,
            peer: TestNode.bob.nodeID,
            checkpoint: 0,
            localHighest: 100,
            nowMillis: 0,
            carrying: false
        )
        _ = machine.start(hlc: .test(0))
        let opened = machine.received(
            .hello(SyncHello(nodeID: TestNode.bob.nodeID, hlc: .test(0), checkpoint: 10)), nowMillis: 0)
        #expect(!opened.contains { if case .loadBatch = $0 { true } else { false } })
        // The channel's keepalive answered the ping; the machine counts it and says nothing.
        #expect(machine.received(.ping(nonce: 3), nowMillis: 1).isEmpty)
        #expect(
            machine.received(.batch(ops: [Data("x".utf8)], throughSeq: 4), nowMillis: 2) == [
                .commit(ops: [Data("x".utf8)], throughSeq: 4)
            ])
        #expect(machine.logGrew(to: 120).isEmpty)
        // Another channel got the peer's acks up to 60: this one resumes after 60, not 10.
        let actions = machine.setCarrying(true, resumeAfter: 60)
        #expect(actions == [.loadBatch(after: 60, limit: machine.configuration.maxBatchOps, parts: true)])
        #expect(machine.ackedThrough == 60)
        // Stopping leaves what is in flight alone and loads nothing more.
        _ = machine.batchReady(ops: [], throughSeq: 70)
        #expect(machine.setCarrying(false, resumeAfter: 60).isEmpty)
        #expect(machine.received(.ack(throughSeq: 70), nowMillis: 3) == [.acknowledged(throughSeq: 70)])
    }

    @Test("an envelope or a receipt on an open channel goes to the relay logic; before hello it is a violation")
    func sealedTrafficPassesThrough() {
        var machine = Machine(
            local: TestNode.alice.nodeID, peer: TestNode.bob.nodeID, checkpoint: 0, localHighest: 0, nowMillis: 0)
        _ = machine.start(hlc: .test(0))
        #expect(machine.outOfBand(.envelope(Data([1]))).isEmpty, "nothing goes out before the session is open")
        var early = machine
        #expect(
            early.received(.envelope(Data([1])), nowMillis: 0).contains(
                .close(.protocolViolation("a message before hello"))))
        _ = machine.received(.hello(SyncHello(nodeID: TestNode.bob.nodeID, hlc: .test(0), checkpoint: 0)), nowMillis: 0)
        #expect(machine.received(.envelope(Data([1])), nowMillis: 1) == [.sealedTraffic(.envelope(Data([1])))])
        #expect(machine.received(.receipt(Data([2])), nowMillis: 1) == [.sealedTraffic(.receipt(Data([2])))])
        #expect(machine.outOfBand(.receipt(Data([2]))) == [.send(.receipt(Data([2])))])
    }
}
