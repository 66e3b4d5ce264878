import Foundation
import LiaisonCore
import LiaisonReplication
import LiaisonTestSupport
import Testing

/// A peer that abuses a channel while staying within the frame format: it withholds acks,
/// floods heartbeats or sends batches without waiting for acks (issue 10, "withholding" and
/// "flood"). The session closes the channel with a reason the engine strikes; honest
/// patterns, bursts included, never trip it.
@Suite("Session abuse: withholding and flood")
struct SessionAbuseTests {
    typealias Machine = LinkSessionStateMachine
    typealias Action = LinkSessionStateMachine.Action
    typealias Sessions = LinkSessionStateMachineTests

    static func configuration(ackDeadline: UInt64 = 10_000) -> Machine.Configuration {
        var configuration = Sessions.configuration()
        configuration.ackDeadlineMillis = ackDeadline
        return configuration
    }

    static func closeReason(_ actions: [Action]) -> SessionCloseReason? {
        actions.compactMap {
            if case .close(let reason) = $0 { return reason }
            return nil
        }.first
    }

    // MARK: - Withholding

    @Test(
        "a peer that answers heartbeats and leaves our oldest batch unacknowledged past the ack deadline is closed for withholding, with a goodbye"
    )
    func withholdingCloses() throws {
        var (machine, _) = Sessions.openMachine(localHighest: 10, now: 1_000, configuration: Self.configuration())
        _ = machine.batchReady(ops: [Data("op".utf8)], throughSeq: 10)
        var now: UInt64 = 1_000
        // The peer is alive: it answers every ping. Until the deadline nothing happens.
        while now < 10_900 {
            now += 100
            let actions = machine.tick(nowMillis: now)
            #expect(Self.closeReason(actions) == nil, "closed at \(now): \(actions)")
            if let nonce = Sessions.pings(in: actions).first {
                _ = machine.received(.pong(nonce: nonce), nowMillis: now)
            }
        }
        let actions = machine.tick(nowMillis: 11_000)
        guard case .withholding(let what)? = Self.closeReason(actions) else {
            Issue.record("not closed for withholding at the deadline: \(actions)")
            return
        }
        #expect(what.contains("batch through 10") && what.contains("10000 ms"), "reason: \(what)")
        #expect(actions.first == .send(.goodbye(reason: what)), "no goodbye telling the peer why")
        #expect(machine.phase == .closed(.withholding(what)))
    }

    @Test(
        "a silent peer with our batch in flight dies of silence (nobody's fault), not of withholding, even when its measured ack time lets it stay silent past the ack deadline"
    )
    func silentPeerIsNotWithholding() {
        var (machine, _) = Sessions.openMachine(localHighest: 20, now: 0, configuration: Self.configuration())
        // The first batch took 8 s to be acknowledged (a busy receiver, answering heartbeats):
        // while a batch waits, the peer may now be silent for 16 s, past the 10 s ack deadline.
        _ = machine.batchReady(ops: [], throughSeq: 10)
        var now: UInt64 = 0
        while now < 8_000 {
            now += 100
            let actions = machine.tick(nowMillis: now)
            if let nonce = Sessions.pings(in: actions).first {
                _ = machine.received(.pong(nonce: nonce), nowMillis: now)
            }
        }
        _ = machine.received(.ack(throughSeq: 10), nowMillis: now)
        _ = machine.batchReady(ops: [], throughSeq: 20)
        #expect(machine.silenceAllowedMillis == 16_000)
        // Then nothing more arrives: the link is cut.
        let silentFrom = now
        var reason: SessionCloseReason?
        while reason == nil && now < 60_000 {
            now += 100
            reason = Self.closeReason(machine.tick(nowMillis: now))
        }
        #expect(reason == .heartbeatTimeout, "closed for \(String(describing: reason))")
        #expect(now - silentFrom == 16_000)
    }

    @Test(
        "acks that come before the deadline keep the channel, however long the link stays busy: the deadline runs from the oldest batch still waiting"
    )
    func slowAcksAreNotWithholding() {
        var (machine, _) = Sessions.openMachine(localHighest: 1_000, now: 0, configuration: Self.configuration())
        var now: UInt64 = 0
        var through: UInt64 = 0
        // Every batch waits 9.9 s for its ack (under the 10 s deadline), for five minutes.
        while now < 300_000 {
            through += 10
            _ = machine.batchReady(ops: [], throughSeq: through)
            for _ in 0..<99 {
                now += 100
                let actions = machine.tick(nowMillis: now)
                #expect(Self.closeReason(actions) == nil, "closed at \(now)")
                if let nonce = Sessions.pings(in: actions).first {
                    _ = machine.received(.pong(nonce: nonce), nowMillis: now)
                }
            }
            _ = machine.received(.ack(throughSeq: through), nowMillis: now)
            _ = machine.logGrew(to: through + 10)
        }
        #expect(!machine.isClosed)
    }

    @Test("with nothing in flight a quiet, heartbeating peer is never withholding")
    func idlePeerIsNotWithholding() {
        var (machine, _) = Sessions.openMachine(localHighest: 0, now: 0, configuration: Self.configuration())
        for now in stride(from: UInt64(100), through: 600_000, by: 100) {
            let actions = machine.tick(nowMillis: now)
            if let nonce = Sessions.pings(in: actions).first {
                _ = machine.received(.pong(nonce: nonce), nowMillis: now)
            }
        }
        #expect(!machine.isClosed)
    }

    // MARK: - Heartbeat flood

    @Test("hundreds of pings within a second close the channel for flood at the 209th; the machine itself answers none")
    func pingFlood() {
        var (machine, _) = Sessions.openMachine(now: 1_000, configuration: Self.configuration())
        var pongs = 0
        var counted = 0
        var reason: SessionCloseReason?
        for index in 0..<1_000 where reason == nil {
            let actions = machine.received(.ping(nonce: UInt64(index)), nowMillis: 1_000 + UInt64(index))
            pongs += actions.filter { if case .send(.pong) = $0 { true } else { false } }.count
            counted += 1
            reason = Self.closeReason(actions)
        }
        guard case .flood(let what)? = reason else {
            Issue.record("not closed for flood: \(String(describing: reason))")
            return
        }
        // A burst of 208 heartbeats is allowed; one a millisecond refills far too slowly.
        #expect(counted == 209)
        // The channel's keepalive answers pings (`ChannelKeepalive`); the machine only judges.
        #expect(pongs == 0, "the machine answered \(pongs) pings")
        #expect(what.contains("209 heartbeats"), "reason: \(what)")
    }

    @Test("pongs that answer no ping of ours count as heartbeats too")
    func unsolicitedPongFlood() {
        var (machine, _) = Sessions.openMachine(now: 1_000, configuration: Self.configuration())
        var reason: SessionCloseReason?
        for index in 0..<1_000 where reason == nil {
            reason = Self.closeReason(machine.received(.pong(nonce: UInt64(index) + 1_000_000), nowMillis: 1_000))
        }
        guard case .flood? = reason else {
            Issue.record("not closed for flood: \(String(describing: reason))")
            return
        }
    }

    @Test(
        "an honest peer's heartbeats never trip the flood limit: one per interval for an hour, with bursts of late ones after stalls of up to five minutes"
    )
    func honestHeartbeatsWithStalls() {
        var (machine, _) = Sessions.openMachine(now: 0, configuration: Self.configuration())
        var now: UInt64 = 0
        var owed = 0
        var nonce: UInt64 = 0
        var random = SeededRandom(seed: 41)
        while now < 3_600_000 {
            now += 500
            owed += 1
            // Now and then the receiving side stalls (a long commit) and takes in every ping
            // that waited at once.
            if random.next(upperBound: UInt64(40)) == 0 {
                let stall = 500 * UInt64(random.next(upperBound: UInt64(600)))
                now += stall
                owed += Int(stall / 500)
            }
            for _ in 0..<owed {
                nonce += 1
                let actions = machine.received(.ping(nonce: nonce), nowMillis: now)
                #expect(Self.closeReason(actions) == nil, "closed at \(now): \(actions)")
            }
            owed = 0
            let ticks = machine.tick(nowMillis: now)
            if let ours = Sessions.pings(in: ticks).first { _ = machine.received(.pong(nonce: ours), nowMillis: now) }
        }
        #expect(!machine.isClosed)
    }

    @Test(
        "pongs that answer our pings, however late, leave the peer's own allowance whole: a peer pinging at 1.7 per interval beside pongs three intervals late, for an hour, is no flood; at 2.5 per interval it is"
    )
    func latePongsAreNotFlood() {
        /// Runs an hour in which our pongs come back three intervals late and the peer pings
        /// every `pingEvery` ms; the close reason, if any.
        func run(pingEvery: UInt64) -> SessionCloseReason? {
            var (machine, _) = Sessions.openMachine(now: 0, configuration: Self.configuration())
            var unanswered = [UInt64]()
            for now in stride(from: UInt64(100), through: 3_600_000, by: 100) {
                var actions = machine.tick(nowMillis: now)
                unanswered += Sessions.pings(in: actions)
                if unanswered.count > 3 {
                    actions += machine.received(.pong(nonce: unanswered.removeFirst()), nowMillis: now)
                }
                if now % pingEvery == 0 { actions += machine.received(.ping(nonce: now), nowMillis: now) }
                if let reason = Self.closeReason(actions) { return reason }
            }
            return nil
        }
        // Counted with the pongs, 1.7 pings per interval would be 2.7 heartbeats, past the
        // allowance's two per interval.
        #expect(run(pingEvery: 300) == nil)
        guard case .flood? = run(pingEvery: 200) else {
            Issue.record("a peer pinging at 2.5 per interval was not a flood")
            return
        }
    }

    // MARK: - Batches without waiting for acks

    @Test("more than twice the window of uncommitted batches is a flood; batches that commit free their place")
    func batchFlood() {
        let configuration = Self.configuration()
        var (machine, _) = Sessions.openMachine(now: 1_000, configuration: configuration)
        let window = configuration.window
        // An honest sender: a window of batches, then more only as they commit.
        var through: UInt64 = 0
        for _ in 0..<20 {
            for _ in 0..<window {
                through += 1
                let actions = machine.received(.batch(ops: [], throughSeq: through), nowMillis: 1_000)
                #expect(Self.closeReason(actions) == nil)
            }
            _ = machine.committed(throughSeq: through)
        }
        // A flooding one: the receiver has not finished committing, and batches keep coming.
        var reason: SessionCloseReason?
        var sent = 0
        while reason == nil && sent < 100 {
            through += 1
            sent += 1
            reason = Self.closeReason(machine.received(.batch(ops: [], throughSeq: through), nowMillis: 1_000))
        }
        guard case .flood(let what)? = reason else {
            Issue.record("not closed for flood: \(String(describing: reason))")
            return
        }
        #expect(sent == 2 * window + 1, "closed after \(sent) batches")
        #expect(what.contains("without waiting for acks"))
    }

    // MARK: - Settings

    @Test("channel settings rendered before the ack deadline existed decode with its default; new ones round-trip")
    func settingsDecode() throws {
        let old =
            Data(
                #"{"mode":"active-active","heartbeatMillis":100,"deadAfterMillis":400,"relayAfterMillis":1000,"#
                    .utf8) + Data(#""receiptTimeoutMillis":3000,"failbackAfterMillis":2000}"#.utf8)
        let decoded = try JSONDecoder().decode(ChannelSettings.self, from: old)
        #expect(decoded.mode == .activeActive && decoded.heartbeatMillis == 100 && decoded.deadAfterMillis == 400)
        #expect(decoded.ackDeadlineMillis == ChannelSettings().ackDeadlineMillis)
        var settings = ChannelSettings()
        settings.ackDeadlineMillis = 7_000
        let again = try JSONDecoder().decode(ChannelSettings.self, from: JSONEncoder().encode(settings))
        #expect(again == settings)
        #expect(Machine.Configuration(channels: settings).ackDeadlineMillis == 7_000)
    }

    // MARK: - In the engine

    @Test("the engine strikes a flood and a withholding with their classes, audits them and closes the channel")
    func engineStrikes() {
        var world = NodeEngineTests.World()
        _ = world.open(1, to: .bob)
        var flooded = [NodeEngine.Action]()
        for index in 0..<300 {
            flooded += world.handle(.frame(ChannelID(1), .ping(nonce: UInt64(index)), bytes: 12, atMillis: world.now))
        }
        #expect(NodeEngineContainmentTests.closes(flooded) == [ChannelID(1)])
        #expect(world.engine.containment.strikes["bob"]?[.flood]?.total == 1)
        #expect(
            flooded.contains {
                if case .custody(let event) = $0 { return event.kind == .peerRefused } else { return false }
            })

        // Carol takes a batch and then only answers heartbeats.
        let opened = world.open(2, to: .carol)
        let load = NodeEngineTests.loads(opened)
        #expect(load.count == 1)
        _ = world.handle(
            .batchLoaded(load[0], NodeEngine.LoadedBatch(ops: [Data([1])], sent: 1, withheld: 0, throughSeq: 10)))
        let deadline = world.engine.configuration.channels.ackDeadlineMillis
        let start = world.now
        var closed = [ChannelID]()
        while closed.isEmpty && world.now < start + deadline + 5_000 {
            world.now += 100
            let actions = world.handle(.tick(heard: [:]))
            for (id, message) in NodeEngineTests.sends(actions) where id == ChannelID(2) {
                if case .ping(let nonce) = message {
                    _ = world.handle(.frame(ChannelID(2), .pong(nonce: nonce), bytes: 12, atMillis: world.now))
                }
            }
            closed = NodeEngineContainmentTests.closes(actions)
        }
        #expect(closed == [ChannelID(2)])
        #expect(world.now >= start + deadline, "closed before the ack deadline")
        #expect(world.engine.containment.strikes["carol"]?[.withholding]?.total == 1)
        #expect(world.engine.containment.strikes["carol"]?[.flood] == nil)
    }
}
