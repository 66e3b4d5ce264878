import Foundation
import LiaisonCore
import LiaisonReplication
import LiaisonTestSupport
import Testing

/// The per-channel session (DESIGN §5.1–5.5), driven without sockets: events in, actions out.
@Suite("Link session state machine")
struct LinkSessionStateMachineTests {
    typealias Machine = LinkSessionStateMachine
    typealias Action = LinkSessionStateMachine.Action

    static let alice = TestNode.alice.nodeID
    static let bob = TestNode.bob.nodeID
    static let carol = TestNode.carol.nodeID

    /// Distinct, recognisable log entries: `"tag-1"`, `"tag-2"`, …
    static func log(_ tag: String, count: Int) -> [Data] {
        (0..<count).map { Data("\(tag)-\($0 + 1)".utf8) }
    }

    static func configuration(window: Int = 4, maxBatchOps: Int = 512) -> Machine.Configuration {
        var configuration = Machine.Configuration()
        configuration.window = window
        configuration.maxBatchOps = maxBatchOps
        configuration.heartbeatIntervalMillis = 500
        configuration.deadAfterMillis = 2_000
        return configuration
    }

    /// A machine for `local` facing `peer`, already open: the peer's hello (with `peerCheckpoint`)
    /// has been received. Returns the actions the hello produced.
    static func openMachine(
        local: NodeID = alice,
        peer: NodeID = bob,
        checkpoint: UInt64 = 0,
        localHighest: UInt64 = 0,
        peerCheckpoint: UInt64 = 0,
        now: UInt64 = 1_000,
        configuration: Machine.Configuration = configuration()
    ) -> (Machine, [Action]) {
        var machine = Machine(
            local: local,
            peer: peer,
            checkpoint: checkpoint,
            localHighest: localHighest,
            nowMillis: now,
            configuration: configuration
        )
        _ = machine.start(hlc: .test(now))
        let actions = machine.received(
            .hello(SyncHello(nodeID: peer, hlc: .test(now), checkpoint: peerCheckpoint)),
            nowMillis: now
        )
        return (machine, actions)
    }

    static func loads(in actions: [Action]) -> [UInt64] {
        actions.compactMap {
            if case .loadBatch(let after, _, _, _) = $0 { return after }
            return nil
        }
    }

    static func sentBatches(in actions: [Action]) -> [UInt64] {
        actions.compactMap {
            if case .send(.batch(_, let through)) = $0 { return through }
            return nil
        }
    }

    static func pings(in actions: [Action]) -> [UInt64] {
        actions.compactMap {
            if case .send(.ping(let nonce)) = $0 { return nonce }
            return nil
        }
    }

    /// Checks that `actions` say goodbye and close for a protocol violation, and that the
    /// machine is closed for that reason.
    static func expectViolation(
        _ actions: [Action],
        _ machine: Machine,
        mentioning fragment: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard case .closed(.protocolViolation(let what)) = machine.phase else {
            Issue.record("phase is \(machine.phase), expected a protocol violation", sourceLocation: sourceLocation)
            return
        }
        #expect(
            what.contains(fragment), "reason '\(what)' does not mention '\(fragment)'", sourceLocation: sourceLocation)
        #expect(
            actions == [.send(.goodbye(reason: what)), .close(.protocolViolation(what))],
            sourceLocation: sourceLocation
        )
        #expect(machine.isClosed, sourceLocation: sourceLocation)
    }

    // MARK: - An in-memory network of two machines

    /// Two machines back to back. Messages travel in order; the shells' work (loading a
    /// slice of the log, committing received ops) is done on the spot.
    struct Network {
        struct Side {
            var machine: Machine
            /// This node's log: sequence `i + 1` is `log[i]`.
            var log: [Data]
            /// What this node committed of the peer's log, in commit order.
            var received: [Data] = []
            /// `after` of every `loadBatch` asked.
            var loads: [UInt64] = []
            /// Every `acknowledged` reported.
            var acknowledged: [UInt64] = []
            /// Largest number of batches in flight seen.
            var maxInFlight = 0
            var opened = false
            var closed: SessionCloseReason?
            var sealed = [SyncMessage]()
            /// Messages on their way to this side.
            var inbox: [SyncMessage] = []
        }

        var a: Side
        var b: Side
        var now: UInt64 = 1_000
        var delivered = 0

        init(
            aLog: [Data],
            bLog: [Data],
            aCheckpoint: UInt64 = 0,
            bCheckpoint: UInt64 = 0,
            configuration: Machine.Configuration
        ) {
            a = Side(
                machine: Machine(
                    local: LinkSessionStateMachineTests.alice,
                    peer: LinkSessionStateMachineTests.bob,
                    checkpoint: aCheckpoint,
                    localHighest: UInt64(aLog.count),
                    nowMillis: now,
                    configuration: configuration
                ),
                log: aLog
            )
            b = Side(
                machine: Machine(
                    local: LinkSessionStateMachineTests.bob,
                    peer: LinkSessionStateMachineTests.alice,
                    checkpoint: bCheckpoint,
                    localHighest: UInt64(bLog.count),
                    nowMillis: now,
                    configuration: configuration
                ),
                log: bLog
            )
        }

        mutating func start() {
            let forA = a.machine.start(hlc: .test(now))
            carryOut(forA, onA: true)
            let forB = b.machine.start(hlc: .test(now))
            carryOut(forB, onA: false)
        }

        /// Delivers messages, one at a time and alternating sides, until none are left.
        mutating func run(limit: Int = 100_000) {
            while !(a.inbox.isEmpty && b.inbox.isEmpty), delivered < limit {
                if !a.inbox.isEmpty {
                    let message = a.inbox.removeFirst()
                    delivered += 1
                    let actions = a.machine.received(message, nowMillis: now)
                    carryOut(actions, onA: true)
                }
                if !b.inbox.isEmpty {
                    let message = b.inbox.removeFirst()
                    delivered += 1
                    let actions = b.machine.received(message, nowMillis: now)
                    carryOut(actions, onA: false)
                }
            }
        }

        /// Appends entries to one side's log and tells its machine.
        mutating func append(_ entries: [Data], onA: Bool) {
            if onA {
                a.log += entries
                carryOut(a.machine.logGrew(to: UInt64(a.log.count)), onA: true)
            } else {
                b.log += entries
                carryOut(b.machine.logGrew(to: UInt64(b.log.count)), onA: false)
            }
        }

        mutating func carryOut(_ actions: [Action], onA: Bool) {
            for action in actions {
                var side = onA ? a : b
                var follow = [Action]()
                switch action {
                case .send(let message):
                    if onA { b.inbox.append(message) } else { a.inbox.append(message) }
                    side = onA ? a : b
                case .loadBatch(let after, let limit, _, _):
                    side.loads.append(after)
                    let start = Int(after)
                    let end = min(start + limit, side.log.count)
                    let ops = start < end ? Array(side.log[start..<end]) : []
                    follow = side.machine.batchReady(ops: ops, throughSeq: UInt64(max(start, end)))
                    side.maxInFlight = max(side.maxInFlight, side.machine.inFlight.count)
                case .commit(let ops, let through, let part):
                    side.received += ops
                    follow = side.machine.committed(throughSeq: through, part: part)
                case .acknowledged(let through):
                    side.acknowledged.append(through)
                case .opened:
                    side.opened = true
                case .close(let reason):
                    side.closed = reason
                case .sealedTraffic(let message):
                    side.sealed.append(message)
                case .governance(let statements):
                    side.sealed.append(.governance(statements))
                }
                if onA { a = side } else { b = side }
                carryOut(follow, onA: onA)
            }
        }
    }

    // MARK: - Replication

    @Test("two machines exchange hello and replicate both logs: every entry once, in order, all acknowledged")
    func replicatesBothWays() {
        let aLog = Self.log("a", count: 23)
        let bLog = Self.log("b", count: 11)
        var network = Network(aLog: aLog, bLog: bLog, configuration: Self.configuration(window: 2, maxBatchOps: 4))
        network.start()
        network.run()

        #expect(network.a.opened && network.b.opened)
        #expect(network.a.closed == nil && network.b.closed == nil)
        #expect(network.b.received == aLog, "bob's copy of alice's log differs")
        #expect(network.a.received == bLog, "alice's copy of bob's log differs")
        #expect(network.a.machine.ackedThrough == UInt64(aLog.count))
        #expect(network.b.machine.ackedThrough == UInt64(bLog.count))
        #expect(network.a.machine.sentThrough == UInt64(aLog.count))
        #expect(network.a.machine.lag == 0 && network.b.machine.lag == 0)
        #expect(network.a.machine.inFlight.isEmpty && network.b.machine.inFlight.isEmpty)
        #expect(network.b.machine.committedThrough == UInt64(aLog.count))
        #expect(network.a.machine.committedThrough == UInt64(bLog.count))
        // Acknowledgements only move forward and end at the log end.
        #expect(network.a.acknowledged == network.a.acknowledged.sorted())
        #expect(network.a.acknowledged.last == UInt64(aLog.count))
        // Batches of at most 4 from 0: 0, 4, 8, …, 20.
        #expect(network.a.loads == Array(stride(from: 0, to: 23, by: 4)))
        #expect(network.a.maxInFlight <= 2)
        #expect(network.a.machine.phase == .open && network.b.machine.phase == .open)
    }

    @Test("a receiver that applied up to k makes the sender resume after k")
    func resumesAfterCheckpoint() {
        let aLog = Self.log("a", count: 12)
        var network = Network(aLog: aLog, bLog: [], bCheckpoint: 7, configuration: Self.configuration(maxBatchOps: 3))
        network.start()
        network.run()

        #expect(network.a.loads.first == 7)
        #expect(network.a.loads == [7, 10])
        #expect(network.b.received == Array(aLog[7...]), "bob got entries he already had, or missed some")
        #expect(network.a.acknowledged.first == 7, "the hello's checkpoint counts as acknowledged")
        #expect(network.a.machine.ackedThrough == 12)
        #expect(network.b.machine.committedThrough == 12)
    }

    @Test("a hello from the peer names our checkpoint, and the first loadBatch starts there")
    func helloCarriesCheckpoint() {
        var machine = Machine(local: Self.bob, peer: Self.alice, checkpoint: 5, localHighest: 9, nowMillis: 0)
        let actions = machine.start(hlc: .test(3))
        #expect(actions == [.send(.hello(SyncHello(nodeID: Self.bob, hlc: .test(3), checkpoint: 5)))])

        let (open, opened) = Self.openMachine(localHighest: 20, peerCheckpoint: 13)
        #expect(opened.contains(.opened(peerHLC: .test(1_000))))
        #expect(opened.contains(.acknowledged(throughSeq: 13)))
        #expect(Self.loads(in: opened) == [13])
        #expect(open.sentThrough == 13 && open.ackedThrough == 13)
    }

    @Test("with window 2 and no acks, at most 2 batches are in flight and no more is loaded until an ack")
    func windowBoundsBatchesInFlight() {
        var (machine, actions) = Self.openMachine(
            localHighest: 10,
            configuration: Self.configuration(window: 2, maxBatchOps: 1)
        )
        #expect(Self.loads(in: actions) == [0])

        actions = machine.batchReady(ops: [Data("1".utf8)], throughSeq: 1)
        #expect(Self.sentBatches(in: actions) == [1])
        #expect(Self.loads(in: actions) == [1])

        actions = machine.batchReady(ops: [Data("2".utf8)], throughSeq: 2)
        #expect(Self.sentBatches(in: actions) == [2])
        #expect(Self.loads(in: actions).isEmpty, "a third batch was asked with two in flight")
        #expect(machine.inFlight == [1, 2])

        // Nothing wakes it while the window is full: more log, time passing, pings.
        #expect(Self.loads(in: machine.logGrew(to: 30)).isEmpty)
        #expect(Self.loads(in: machine.tick(nowMillis: 1_600)).isEmpty)
        #expect(Self.loads(in: machine.received(.ping(nonce: 9), nowMillis: 1_700)).isEmpty)
        #expect(machine.inFlight.count == 2)

        actions = machine.received(.ack(throughSeq: 1), nowMillis: 1_800)
        #expect(actions.first == .acknowledged(throughSeq: 1))
        #expect(Self.loads(in: actions) == [2])
        #expect(machine.inFlight == [2])
        #expect(machine.ackedThrough == 1)

        actions = machine.batchReady(ops: [Data("3".utf8)], throughSeq: 3)
        #expect(Self.sentBatches(in: actions) == [3])
        #expect(Self.loads(in: actions).isEmpty)
        #expect(machine.inFlight == [2, 3])

        // One ack may cover several batches.
        actions = machine.received(.ack(throughSeq: 3), nowMillis: 1_900)
        #expect(machine.inFlight.isEmpty)
        #expect(machine.ackedThrough == 3)
        #expect(Self.loads(in: actions) == [3])
    }

    @Test("only one loadBatch is outstanding at a time")
    func oneLoadAtATime() {
        var (machine, actions) = Self.openMachine(localHighest: 10, configuration: Self.configuration(window: 4))
        #expect(Self.loads(in: actions) == [0])
        #expect(Self.loads(in: machine.logGrew(to: 20)).isEmpty, "a second load before the first reported")
        actions = machine.batchReady(ops: [], throughSeq: 10)
        #expect(Self.sentBatches(in: actions) == [10], "an all-withheld batch still carries its throughSeq")
        #expect(Self.loads(in: actions) == [10])
    }

    @Test("live push: after catch-up a grown log is loaded at once; an idle session asks for nothing")
    func livePush() {
        let aLog = Self.log("a", count: 5)
        var network = Network(aLog: aLog, bLog: [], configuration: Self.configuration())
        network.start()
        network.run()
        #expect(network.b.received == aLog)
        #expect(network.a.loads == [0])

        // Idle: nothing new, nothing asked.
        #expect(network.a.machine.logGrew(to: 5).isEmpty)
        #expect(network.a.machine.logGrew(to: 3).isEmpty, "a stale report of the log end woke the sender")
        #expect(network.b.machine.logGrew(to: 0).isEmpty)

        // A new entry is pushed at once.
        let new = Data("a-6".utf8)
        network.a.log.append(new)
        let actions = network.a.machine.logGrew(to: 6)
        #expect(actions == [.loadBatch(after: 5, limit: Self.configuration().maxBatchOps, parts: true)])
        network.carryOut(actions, onA: true)
        network.run()
        #expect(network.b.received == aLog + [new])
        #expect(network.a.machine.ackedThrough == 6)

        network.append(Self.log("x", count: 3), onA: true)
        network.run()
        #expect(network.b.received.count == 9)
        #expect(Array(network.b.received.suffix(3)) == Self.log("x", count: 3))
        #expect(network.a.machine.ackedThrough == 9)
    }

    @Test("a log that grows before the hello is sent from the start once the session opens")
    func growthBeforeOpen() {
        var machine = Machine(local: Self.alice, peer: Self.bob, checkpoint: 0, localHighest: 0, nowMillis: 0)
        _ = machine.start(hlc: .test(0))
        #expect(machine.logGrew(to: 4).isEmpty, "loaded before the peer said where it stands")
        let actions = machine.received(.hello(SyncHello(nodeID: Self.bob, hlc: .test(0), checkpoint: 0)), nowMillis: 1)
        #expect(Self.loads(in: actions) == [0])
    }

    // MARK: - Protocol violations

    @Test("a hello from the wrong NodeID is a protocol violation")
    func helloFromWrongNode() {
        var machine = Machine(local: Self.alice, peer: Self.bob, checkpoint: 0, localHighest: 3, nowMillis: 0)
        _ = machine.start(hlc: .test(0))
        let actions = machine.received(
            .hello(SyncHello(nodeID: Self.carol, hlc: .test(0), checkpoint: 0)),
            nowMillis: 1
        )
        Self.expectViolation(actions, machine, mentioning: "hello from")
        #expect(!actions.contains { if case .opened = $0 { true } else { false } })
    }

    @Test("a hello with no common protocol version is a protocol violation")
    func noCommonVersion() {
        var machine = Machine(local: Self.alice, peer: Self.bob, checkpoint: 0, localHighest: 0, nowMillis: 0)
        let actions = machine.received(
            .hello(SyncHello(versions: [99, 100], nodeID: Self.bob, hlc: .test(0), checkpoint: 0)),
            nowMillis: 1
        )
        Self.expectViolation(actions, machine, mentioning: "version")

        // A hello that lists ours among others is fine.
        var other = Machine(local: Self.alice, peer: Self.bob, checkpoint: 0, localHighest: 0, nowMillis: 0)
        _ = other.received(
            .hello(SyncHello(versions: [99] + SyncProtocol.versions, nodeID: Self.bob, hlc: .test(0), checkpoint: 0)),
            nowMillis: 1
        )
        #expect(other.phase == .open)
    }

    @Test(
        "any message before hello is a protocol violation",
        arguments: [
            SyncMessage.batch(ops: [Data("x".utf8)], throughSeq: 1), .ack(throughSeq: 1), .ping(nonce: 1),
            .pong(nonce: 1),
        ]
    )
    func messageBeforeHello(message: SyncMessage) {
        var machine = Machine(local: Self.alice, peer: Self.bob, checkpoint: 0, localHighest: 3, nowMillis: 0)
        _ = machine.start(hlc: .test(0))
        let actions = machine.received(message, nowMillis: 1)
        Self.expectViolation(actions, machine, mentioning: "before hello")
    }

    @Test("a second hello is a protocol violation")
    func secondHello() {
        var (machine, _) = Self.openMachine()
        let actions = machine.received(
            .hello(SyncHello(nodeID: Self.bob, hlc: .test(5), checkpoint: 0)), nowMillis: 1_001)
        Self.expectViolation(actions, machine, mentioning: "second hello")
    }

    @Test("a batch whose throughSeq does not rise is a protocol violation")
    func batchMustRise() {
        // At the checkpoint: the receiver already holds the sender's log up to 5.
        var (atCheckpoint, _) = Self.openMachine(checkpoint: 5)
        let stale = atCheckpoint.received(.batch(ops: [Data("5".utf8)], throughSeq: 5), nowMillis: 1_001)
        Self.expectViolation(stale, atCheckpoint, mentioning: "batch through 5")

        // Going back after a later batch.
        var (machine, _) = Self.openMachine()
        let first = machine.received(.batch(ops: [Data("1".utf8), Data("2".utf8)], throughSeq: 2), nowMillis: 1_001)
        #expect(first == [.commit(ops: [Data("1".utf8), Data("2".utf8)], throughSeq: 2)])
        #expect(machine.receivedThrough == 2)
        let again = machine.received(.batch(ops: [Data("2".utf8)], throughSeq: 2), nowMillis: 1_002)
        Self.expectViolation(again, machine, mentioning: "batch through 2")
    }

    @Test("an oversized batch is a protocol violation")
    func oversizedBatch() {
        var (machine, _) = Self.openMachine(configuration: Self.configuration(maxBatchOps: 2))
        let ops = Array(repeating: Data("x".utf8), count: 9)
        let actions = machine.received(.batch(ops: ops, throughSeq: 9), nowMillis: 1_001)
        Self.expectViolation(actions, machine, mentioning: "batch of 9")
    }

    @Test("an ack that matches nothing in flight is a protocol violation")
    func ackWithoutBatch() {
        // Nothing in flight at all.
        var (idle, _) = Self.openMachine(localHighest: 0)
        Self.expectViolation(idle.received(.ack(throughSeq: 3), nowMillis: 1_001), idle, mentioning: "ack through 3")

        // An ack beyond what was sent.
        var (machine, _) = Self.openMachine(localHighest: 10, configuration: Self.configuration(maxBatchOps: 4))
        _ = machine.batchReady(ops: [], throughSeq: 4)
        #expect(machine.inFlight == [4])
        Self.expectViolation(
            machine.received(.ack(throughSeq: 5), nowMillis: 1_001), machine, mentioning: "ack through 5")

        // An ack below the oldest batch in flight (already acknowledged).
        var (again, _) = Self.openMachine(localHighest: 10, configuration: Self.configuration(maxBatchOps: 4))
        _ = again.batchReady(ops: [], throughSeq: 4)
        _ = again.received(.ack(throughSeq: 4), nowMillis: 1_001)
        _ = again.batchReady(ops: [], throughSeq: 8)
        #expect(again.inFlight == [8])
        Self.expectViolation(again.received(.ack(throughSeq: 4), nowMillis: 1_002), again, mentioning: "ack through 4")
    }

    @Test("a hello claiming a checkpoint beyond our log end is a protocol violation")
    func checkpointBeyondLogEnd() {
        var machine = Machine(local: Self.alice, peer: Self.bob, checkpoint: 0, localHighest: 4, nowMillis: 0)
        let actions = machine.received(.hello(SyncHello(nodeID: Self.bob, hlc: .test(0), checkpoint: 5)), nowMillis: 1)
        Self.expectViolation(actions, machine, mentioning: "up to 5")

        var exact = Machine(local: Self.alice, peer: Self.bob, checkpoint: 0, localHighest: 4, nowMillis: 0)
        let ok = exact.received(.hello(SyncHello(nodeID: Self.bob, hlc: .test(0), checkpoint: 4)), nowMillis: 1)
        #expect(exact.phase == .open)
        #expect(Self.loads(in: ok).isEmpty, "a peer that holds our whole log needs no batch")
    }

    @Test("the shell's failure closes the session; a protocol violation says goodbye")
    func shellFailure() {
        var (machine, _) = Self.openMachine()
        Self.expectViolation(machine.fail(.protocolViolation("bad signature")), machine, mentioning: "bad signature")

        var (other, _) = Self.openMachine()
        #expect(other.fail(.localShutdown) == [.close(.localShutdown)])
        #expect(other.phase == .closed(.localShutdown))
    }

    @Test("the peer's goodbye closes the session without an answer")
    func peerGoodbye() {
        var (machine, _) = Self.openMachine()
        #expect(machine.received(.goodbye(reason: "bye"), nowMillis: 1_001) == [.close(.peerClosed("bye"))])
        #expect(machine.phase == .closed(.peerClosed("bye")))
    }

    // MARK: - Heartbeats

    @Test("once open, tick sends a ping every heartbeat interval, each with a new nonce")
    func pingsEveryInterval() {
        var waiting = Machine(
            local: Self.alice,
            peer: Self.bob,
            checkpoint: 0,
            localHighest: 0,
            nowMillis: 1_000,
            configuration: Self.configuration()
        )
        #expect(waiting.tick(nowMillis: 1_500).isEmpty, "pinged before the session opened")

        var (machine, _) = Self.openMachine(now: 1_000)
        #expect(machine.tick(nowMillis: 1_499).isEmpty)
        let first = Self.pings(in: machine.tick(nowMillis: 1_500))
        #expect(first.count == 1)
        #expect(machine.tick(nowMillis: 1_501).isEmpty)
        #expect(machine.tick(nowMillis: 1_999).isEmpty)
        // Keep the channel alive so the dead timer does not interfere.
        _ = machine.received(.ping(nonce: 77), nowMillis: 1_999)
        let second = Self.pings(in: machine.tick(nowMillis: 2_000))
        #expect(second.count == 1)
        #expect(first != second, "a ping reused its nonce")
    }

    @Test("a pong with the right nonce sets rttMillis to the elapsed virtual time; others are ignored")
    func pongMeasuresRTT() throws {
        var (machine, _) = Self.openMachine(now: 1_000)
        #expect(machine.rttMillis == nil)
        let nonce = try #require(Self.pings(in: machine.tick(nowMillis: 1_500)).first)

        #expect(machine.received(.pong(nonce: nonce &+ 1000), nowMillis: 1_510).isEmpty)
        #expect(machine.rttMillis == nil, "a pong with a wrong nonce measured something")

        #expect(machine.received(.pong(nonce: nonce), nowMillis: 1_537).isEmpty)
        #expect(machine.rttMillis == 37)

        // A duplicate of the same pong later does not re-measure.
        _ = machine.received(.pong(nonce: nonce), nowMillis: 1_900)
        #expect(machine.rttMillis == 37)

        let next = try #require(Self.pings(in: machine.tick(nowMillis: 2_000)).first)
        _ = machine.received(.pong(nonce: next), nowMillis: 2_120)
        #expect(machine.rttMillis == 120)
    }

    @Test(
        "a ping is left to the channel's keepalive to answer: after the hello, the keepalive answers with a pong of its nonce and the machine sends nothing"
    )
    func pingIsAnswered() {
        var (machine, _) = Self.openMachine()
        #expect(machine.received(.ping(nonce: 4242), nowMillis: 1_100).isEmpty)
        var keepalive = ChannelKeepalive()
        // The first message goes to the engine in order, even a ping (a hello must come first).
        #expect(keepalive.inbound(.ping(nonce: 1)) == .engine)
        #expect(keepalive.inbound(.ping(nonce: 4242)) == .heartbeat(reply: .pong(nonce: 4242)))
        #expect(keepalive.inbound(.pong(nonce: 7)) == .heartbeat(reply: nil))
        #expect(keepalive.inbound(.ack(throughSeq: 3)) == .engine)
        #expect(keepalive.inbound(nil) == .engine, "a frame too large to be a heartbeat")
    }

    @Test(
        "a node that was busy and sent no pings does not declare its peer dead on waking; a ping unanswered for the deadline does"
    )
    func busyNodeDoesNotKill() {
        var (machine, _) = Self.openMachine(now: 1_000)
        // Pings go out and are answered until 2 000; then this node stalls (no ticks) for
        // ten seconds, and the peer, which pings nobody, sends nothing meanwhile.
        for now in stride(from: UInt64(1_100), through: 2_000, by: 100) {
            for nonce in Self.pings(in: machine.tick(nowMillis: now)) {
                _ = machine.received(.pong(nonce: nonce), nowMillis: now + 5)
            }
        }
        let woke: UInt64 = 12_000
        let first = machine.tick(nowMillis: woke)
        #expect(!first.contains(.close(.heartbeatTimeout)), "dead on waking, before asking")
        #expect(Self.pings(in: first).count == 1, "no ping on waking")
        // The peer does not answer: dead once the ping has waited the deadline, counted from
        // one interval before it.
        var closedAt: UInt64?
        for now in stride(from: woke + 100, through: woke + 3_000, by: 100) where closedAt == nil {
            if machine.tick(nowMillis: now).contains(.close(.heartbeatTimeout)) { closedAt = now }
        }
        #expect(closedAt == woke + 1_500, "closed at \(String(describing: closedAt))")
    }

    @Test(
        "silence for deadAfterMillis closes an open session with heartbeatTimeout; before hello the peer has helloTimeoutMillis"
    )
    func silenceKills() {
        var (machine, _) = Self.openMachine(now: 1_000)
        for now in stride(from: UInt64(1_100), to: 3_000, by: 100) {
            let actions = machine.tick(nowMillis: now)
            #expect(!actions.contains(.close(.heartbeatTimeout)), "dead after \(now - 1_000) ms of silence")
        }
        #expect(!machine.isClosed)
        #expect(machine.tick(nowMillis: 3_000) == [.close(.heartbeatTimeout)])
        #expect(machine.phase == .closed(.heartbeatTimeout))

        // While waiting for hello the peer has longer.
        var waiting = Machine(
            local: Self.alice,
            peer: Self.bob,
            checkpoint: 0,
            localHighest: 0,
            nowMillis: 0,
            configuration: Self.configuration()
        )
        // Before the peer's hello the deadline is the hello timeout, not the heartbeat one.
        #expect(waiting.tick(nowMillis: 2_000).isEmpty)
        #expect(waiting.tick(nowMillis: 4_999).isEmpty)
        #expect(waiting.tick(nowMillis: 5_000) == [.close(.heartbeatTimeout)])
    }

    @Test(
        "any received message resets the silence timer",
        arguments: [
            SyncMessage.ping(nonce: 5), .pong(nonce: 12345), .batch(ops: [], throughSeq: 1),
        ]
    )
    func anyMessageResetsSilence(message: SyncMessage) {
        var (machine, _) = Self.openMachine(now: 1_000)
        #expect(!machine.tick(nowMillis: 2_500).contains(.close(.heartbeatTimeout)))
        _ = machine.received(message, nowMillis: 2_500)
        #expect(machine.lastHeardMillis == 2_500)
        // 2 000 ms after the start, but only 500 after the message: alive.
        #expect(!machine.tick(nowMillis: 3_000).contains(.close(.heartbeatTimeout)))
        #expect(!machine.tick(nowMillis: 4_499).contains(.close(.heartbeatTimeout)))
        #expect(!machine.isClosed)
        #expect(machine.tick(nowMillis: 4_500).contains(.close(.heartbeatTimeout)))
    }

    @Test("an ack also resets the silence timer")
    func ackResetsSilence() {
        var (machine, _) = Self.openMachine(localHighest: 3, now: 1_000)
        _ = machine.batchReady(ops: [], throughSeq: 3)
        _ = machine.received(.ack(throughSeq: 3), nowMillis: 2_900)
        #expect(!machine.tick(nowMillis: 3_000).contains(.close(.heartbeatTimeout)))
        #expect(machine.tick(nowMillis: 4_900).contains(.close(.heartbeatTimeout)))
    }

    @Test(
        "while batches wait for an ack the peer may be silent for twice the measured ack time, within the cap; idle, the deadline is deadAfterMillis"
    )
    func busyPeerAllowance() {
        var (machine, _) = Self.openMachine(localHighest: 100, now: 1_000)
        #expect(machine.silenceAllowedMillis == 2_000, "idle deadline")
        _ = machine.batchReady(ops: [], throughSeq: 10)
        // Before any ack is measured, the first estimate is the idle deadline: twice that.
        #expect(machine.silenceAllowedMillis == 4_000)
        #expect(!machine.tick(nowMillis: 4_999).contains(.close(.heartbeatTimeout)))
        // The ack took 4 s (a receiver committing on a loaded machine).
        _ = machine.received(.ack(throughSeq: 10), nowMillis: 5_000)
        #expect(machine.ackLatencyMillis == 4_000)
        _ = machine.batchReady(ops: [], throughSeq: 20)
        #expect(machine.silenceAllowedMillis == 8_000)
        // Ticking (and pinging) every 100 ms, nothing answered.
        for now in stride(from: UInt64(5_100), to: 13_000, by: 100) {
            #expect(!machine.tick(nowMillis: now).contains(.close(.heartbeatTimeout)), "dead at \(now)")
        }
        #expect(machine.tick(nowMillis: 13_000).contains(.close(.heartbeatTimeout)))

        // Fast acks bring the allowance back down: the estimate decays by an eighth per ack.
        var (fast, _) = Self.openMachine(localHighest: 100, now: 1_000)
        var now: UInt64 = 1_000
        for through in stride(from: UInt64(10), through: 100, by: 10) {
            _ = fast.batchReady(ops: [], throughSeq: through)
            now += 10
            _ = fast.received(.ack(throughSeq: through), nowMillis: now)
        }
        #expect(fast.ackLatencyMillis < 1_000)
        #expect(fast.inFlight.isEmpty && fast.silenceAllowedMillis == 2_000, "idle again: the idle deadline")

        // A peer that never acks is dead at the cap (10 × deadAfterMillis), however slow it was.
        var (stuck, _) = Self.openMachine(localHighest: 100, now: 0)
        _ = stuck.batchReady(ops: [], throughSeq: 10)
        _ = stuck.received(.ack(throughSeq: 10), nowMillis: 60_000)
        _ = stuck.batchReady(ops: [], throughSeq: 20)
        #expect(stuck.silenceAllowedMillis == 20_000)
        var stuckAt: UInt64?
        for now in stride(from: UInt64(60_100), through: 90_000, by: 100) where stuckAt == nil {
            if stuck.tick(nowMillis: now).contains(.close(.heartbeatTimeout)) { stuckAt = now }
        }
        #expect(stuckAt == 80_000)
    }

    // MARK: - After close

    @Test("after close, further events produce no actions")
    func closedIsInert() {
        var (machine, _) = Self.openMachine(localHighest: 10)
        _ = machine.fail(.protocolViolation("test"))
        #expect(machine.isClosed)
        let phase = machine.phase

        #expect(machine.received(.ping(nonce: 1), nowMillis: 1_100).isEmpty)
        #expect(machine.received(.ack(throughSeq: 1), nowMillis: 1_100).isEmpty)
        #expect(machine.received(.batch(ops: [Data("x".utf8)], throughSeq: 1), nowMillis: 1_100).isEmpty)
        #expect(
            machine.received(.hello(SyncHello(nodeID: Self.bob, hlc: .test(0), checkpoint: 0)), nowMillis: 1_100)
                .isEmpty)
        #expect(machine.received(.goodbye(reason: "late"), nowMillis: 1_100).isEmpty)
        #expect(machine.batchReady(ops: [Data("x".utf8)], throughSeq: 4).isEmpty)
        #expect(machine.committed(throughSeq: 4).isEmpty)
        #expect(machine.logGrew(to: 50).isEmpty)
        #expect(machine.tick(nowMillis: 1_600).isEmpty)
        #expect(machine.tick(nowMillis: 100_000).isEmpty)
        #expect(machine.fail(.localShutdown).isEmpty)
        #expect(machine.phase == phase, "a closed session changed its close reason")
        #expect(machine.inFlight.isEmpty)
    }

    @Test("after a heartbeat timeout the network stays quiet")
    func timedOutIsInert() {
        var (machine, _) = Self.openMachine(now: 0)
        for now in stride(from: UInt64(100), through: 2_000, by: 100) { _ = machine.tick(nowMillis: now) }
        #expect(machine.phase == .closed(.heartbeatTimeout))
        #expect(machine.received(.pong(nonce: 1), nowMillis: 2_001).isEmpty)
        #expect(machine.tick(nowMillis: 2_500).isEmpty)
        #expect(machine.phase == .closed(.heartbeatTimeout))
    }

    // MARK: - Parts

    @Test(
        "a history that passes a batch goes in parts to a peer that takes them: numbered from 1 ahead of the entry, read on from the cut, acknowledged by part without moving the checkpoint"
    )
    func sendsParts() {
        var (machine, actions) = Self.openMachine(localHighest: 10)
        #expect(machine.peerTakesParts)
        #expect(actions.contains(.loadBatch(after: 0, limit: 512, parts: true, resume: nil)))
        let first = HistoryCut(entry: 5, historyThrough: 2)
        actions = machine.batchPartReady(ops: [Data("h1".utf8), Data("e".utf8)], cut: first)
        #expect(actions.first == .send(.batchPart(ops: [Data("h1".utf8), Data("e".utf8)], throughSeq: 5, part: 1)))
        #expect(actions.contains(.loadBatch(after: 0, limit: 512, parts: true, resume: first)), "reads on from the cut")
        let second = HistoryCut(entry: 5, historyThrough: 4)
        actions = machine.batchPartReady(ops: [Data("h2".utf8), Data("e".utf8)], cut: second)
        #expect(actions.first == .send(.batchPart(ops: [Data("h2".utf8), Data("e".utf8)], throughSeq: 5, part: 2)))
        // A stale read (not past the last cut) sends nothing.
        #expect(!machine.batchPartReady(ops: [], cut: first).contains { if case .send = $0 { true } else { false } })
        actions = machine.batchReady(ops: [Data("e".utf8)], throughSeq: 5)
        #expect(Self.sentBatches(in: actions) == [5])
        #expect(machine.sentThrough == 5 && machine.sentPart == nil)
        #expect(machine.inFlight == [5, 5, 5])

        actions = machine.received(.partAck(throughSeq: 5, part: 1), nowMillis: 1_100)
        #expect(!actions.contains { if case .acknowledged = $0 { true } else { false } }, "a part moves no checkpoint")
        #expect(machine.inFlight.count == 2 && machine.ackedThrough == 0)
        actions = machine.received(.ack(throughSeq: 5), nowMillis: 1_200)
        #expect(actions.first == .acknowledged(throughSeq: 5))
        #expect(machine.inFlight.isEmpty && machine.ackedThrough == 5)
        // An ack of a part no longer in flight matches nothing.
        actions = machine.received(.partAck(throughSeq: 5, part: 2), nowMillis: 1_300)
        #expect(machine.isClosed)
    }

    @Test(
        "a channel that stops and starts carrying again goes on with the history it was sending while the entry is ahead, and never repeats a part number"
    )
    func partsAcrossCarrying() {
        var (machine, _) = Self.openMachine(localHighest: 10)
        _ = machine.batchPartReady(ops: [Data("h1".utf8)], cut: HistoryCut(entry: 8, historyThrough: 2))
        _ = machine.batchPartReady(ops: [Data("h2".utf8)], cut: HistoryCut(entry: 8, historyThrough: 4))
        _ = machine.setCarrying(false, resumeAfter: 0)
        // Another channel carried meanwhile and the link's acknowledgement moved to 7.
        var actions = machine.setCarrying(true, resumeAfter: 7)
        #expect(machine.sentPart?.cut == HistoryCut(entry: 8, historyThrough: 4), "the history goes on")
        // The read asked before the change comes back: still ahead, it goes as the next part.
        actions = machine.batchPartReady(ops: [Data("h3".utf8)], cut: HistoryCut(entry: 8, historyThrough: 6))
        #expect(actions.first == .send(.batchPart(ops: [Data("h3".utf8)], throughSeq: 8, part: 3)))
        #expect(
            actions.contains(
                .loadBatch(after: 7, limit: 512, parts: true, resume: HistoryCut(entry: 8, historyThrough: 6))))
        // Past the entry, the history is over for this channel; a later entry's parts still
        // count up.
        _ = machine.setCarrying(false, resumeAfter: 0)
        _ = machine.setCarrying(true, resumeAfter: 8)
        #expect(machine.sentPart == nil)
        actions = machine.batchPartReady(ops: [Data("k1".utf8)], cut: HistoryCut(entry: 9, historyThrough: 3))
        #expect(actions.first == .send(.batchPart(ops: [Data("k1".utf8)], throughSeq: 9, part: 4)))
    }

    @Test("an ack must name a batch or part in flight: a value between them closes the channel")
    func acksNameABatch() {
        var (machine, _) = Self.openMachine(localHighest: 10)
        _ = machine.batchReady(ops: [Data("a".utf8)], throughSeq: 3)
        _ = machine.batchReady(ops: [Data("b".utf8)], throughSeq: 6)
        #expect(machine.received(.ack(throughSeq: 3), nowMillis: 1_100).first == .acknowledged(throughSeq: 3))
        let actions = machine.received(.ack(throughSeq: 5), nowMillis: 1_200)
        #expect(actions.contains { if case .close(.protocolViolation) = $0 { true } else { false } })
    }

    @Test("a peer of version 1 is never asked for parts, nor sent one")
    func versionOnePeerGetsNoParts() {
        var machine = Machine(local: Self.alice, peer: Self.bob, checkpoint: 0, localHighest: 10, nowMillis: 1_000)
        _ = machine.start(hlc: .test(1_000))
        let actions = machine.received(
            .hello(SyncHello(versions: [1], nodeID: Self.bob, hlc: .test(1_000), checkpoint: 0)), nowMillis: 1_000)
        #expect(!machine.peerTakesParts)
        #expect(actions.contains(.loadBatch(after: 0, limit: machine.configuration.maxBatchOps, parts: false)))
        let sent = machine.batchPartReady(ops: [Data("h".utf8)], cut: HistoryCut(entry: 3, historyThrough: 1))
        #expect(!sent.contains { if case .send = $0 { true } else { false } })
    }

    @Test(
        "a receiver commits parts without moving its checkpoint and acknowledges each by part; parts move forward, and a whole batch may not fall behind one"
    )
    func receivesParts() {
        var (machine, _) = Self.openMachine()
        var actions = machine.received(.batchPart(ops: [Data("h".utf8)], throughSeq: 5, part: 1), nowMillis: 1_100)
        #expect(actions == [.commit(ops: [Data("h".utf8)], throughSeq: 5, part: 1)])
        actions = machine.committed(throughSeq: 5, part: 1)
        #expect(actions == [.send(.partAck(throughSeq: 5, part: 1))])
        #expect(machine.committedThrough == 0 && machine.receivedThrough == 0)
        actions = machine.received(.batchPart(ops: [], throughSeq: 5, part: 2), nowMillis: 1_200)
        #expect(actions == [.commit(ops: [], throughSeq: 5, part: 2)])
        actions = machine.received(.batch(ops: [Data("e".utf8)], throughSeq: 5), nowMillis: 1_300)
        #expect(actions == [.commit(ops: [Data("e".utf8)], throughSeq: 5)])
        #expect(machine.receivedPart == nil)

        for (first, second) in [
            (
                SyncMessage.batchPart(ops: [], throughSeq: 5, part: 2),
                SyncMessage.batchPart(ops: [], throughSeq: 5, part: 2)
            ),
            (.batchPart(ops: [], throughSeq: 5, part: 2), .batchPart(ops: [], throughSeq: 5, part: 1)),
            (.batchPart(ops: [], throughSeq: 5, part: 1), .batch(ops: [], throughSeq: 4)),
            (.batch(ops: [], throughSeq: 5), .batchPart(ops: [], throughSeq: 5, part: 3)),
        ] {
            var (receiver, _) = Self.openMachine()
            _ = receiver.received(first, nowMillis: 1_100)
            #expect(!receiver.isClosed)
            let closed = receiver.received(second, nowMillis: 1_200)
            #expect(
                closed.contains { if case .close(.protocolViolation) = $0 { true } else { false } },
                "\(second) after \(first) was taken")
        }
    }

    @Test(
        "parts keep a batch's bounds: more than four times the batch size is a protocol violation, more than twice the window uncommitted a flood"
    )
    func partsAreBounded() {
        let configuration = Self.configuration(window: 2, maxBatchOps: 2)
        var (big, _) = Self.openMachine(configuration: configuration)
        let ops = (0..<9).map { Data("\($0)".utf8) }
        let closed = big.received(.batchPart(ops: ops, throughSeq: 5, part: 1), nowMillis: 1_100)
        #expect(closed.contains { if case .close(.protocolViolation) = $0 { true } else { false } })

        var (flooded, _) = Self.openMachine(configuration: configuration)
        for part in UInt32(1)...4 {
            let actions = flooded.received(.batchPart(ops: [], throughSeq: 5, part: part), nowMillis: 1_100)
            #expect(actions == [.commit(ops: [], throughSeq: 5, part: part)], "part \(part) of four within the bound")
        }
        let fifth = flooded.received(.batchPart(ops: [], throughSeq: 5, part: 5), nowMillis: 1_100)
        #expect(fifth.contains { if case .close(.flood) = $0 { true } else { false } })
    }
}
