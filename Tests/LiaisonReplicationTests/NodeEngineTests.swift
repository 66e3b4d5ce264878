import Crypto
import Foundation
import LiaisonCore
import LiaisonReplication
import LiaisonTestSupport
import Testing

/// The node engine, driven event by event with a manual clock: what it asks the interpreter
/// to do for sessions, failover, sealing, relaying and receipts.
@Suite("Node engine")
struct NodeEngineTests {
    /// A federation of alice (this node), bob and carol; carol relays and links to both.
    struct World {
        var engine: NodeEngine
        var now: UInt64 = 1_700_000_000_000
        let sealingKeys: [String: Curve25519.KeyAgreement.PrivateKey]

        init(bobIsRelay: Bool = false, carolIsRelay: Bool = true, carolLinksBob: Bool = true, aliceRelays: Bool = false)
        {
            var keys = [String: Curve25519.KeyAgreement.PrivateKey]()
            for (index, name) in ["alice", "bob", "carol"].enumerated() {
                keys[name] = try! Curve25519.KeyAgreement.PrivateKey(
                    rawRepresentation: Data(repeating: UInt8(index + 1), count: 32))
            }
            sealingKeys = keys
            let partners = [
                NodeEngine.Partner(
                    recipient: TestNode.alice.recipient(),
                    relay: aliceRelays,
                    neighbours: ["bob", "carol"],
                    sealingKey: keys["alice"]!.publicKey
                ),
                NodeEngine.Partner(
                    recipient: TestNode.bob.recipient(),
                    relay: bobIsRelay,
                    neighbours: carolLinksBob ? ["alice", "carol"] : ["alice"],
                    sealingKey: keys["bob"]!.publicKey
                ),
                NodeEngine.Partner(
                    recipient: TestNode.carol.recipient(),
                    relay: carolIsRelay,
                    neighbours: carolLinksBob ? ["alice", "bob"] : ["alice"],
                    sealingKey: keys["carol"]!.publicKey
                ),
            ]
            var settings = ChannelSettings()
            settings.relayAfterMillis = 300
            settings.receiptTimeoutMillis = 800
            let configuration = NodeEngine.Configuration(
                me: TestNode.alice.recipient(),
                partners: partners,
                links: [
                    ReplicationNeighbour(partner: TestNode.bob.recipient(), outbound: .passAll, inbound: .passAll),
                    ReplicationNeighbour(partner: TestNode.carol.recipient(), outbound: .passAll, inbound: .passAll),
                ],
                isRelay: aliceRelays,
                channels: settings,
                signingKey: TestNode.alice.author.signingKey,
                sealingKey: keys["alice"]!
            )
            engine = NodeEngine(
                configuration: configuration, acked: [:], highest: 10, nowMillis: now, random: SeededRandom(seed: 7))
        }

        mutating func handle(_ event: NodeEngine.Event) -> [NodeEngine.Action] {
            engine.handle(event, nowMillis: now)
        }

        /// An envelope of `ops` sealed by `sender` for `recipient`, with id bytes all `id`.
        func envelope(
            _ ops: [Data], from sender: TestNode, to recipient: TestNode, id: UInt8, expiresMillis: UInt64? = nil
        ) throws -> SealedEnvelope {
            try SealedEnvelope.seal(
                ops: ops,
                to: recipient.nodeID,
                recipientSealingKey: sealingKeys[recipient.name]!.publicKey,
                signingKey: sender.author.signingKey,
                sealingKey: sealingKeys[sender.name]!,
                id: Data(repeating: id, count: 16),
                expiresMillis: expiresMillis ?? now + 60_000
            )
        }

        /// Connects a channel and completes the peer's hello.
        mutating func open(_ id: Int, to peer: TestNode, endpoint: Int = 0) -> [NodeEngine.Action] {
            let start = NodeEngine.SessionStart(
                checkpoint: 0, highest: 10, hlc: HLCTimestamp(physicalMillis: now, logical: 0))
            _ = handle(
                .channelConnected(ChannelID(id), peer: peer.name, endpoint: endpoint, address: "test", start: start))
            let hello = SyncHello(
                nodeID: peer.nodeID, hlc: HLCTimestamp(physicalMillis: now, logical: 0), checkpoint: 0)
            return handle(.frame(ChannelID(id), .hello(hello), bytes: 64, atMillis: now))
        }
    }

    static func loads(_ actions: [NodeEngine.Action]) -> [NodeEngine.BatchRequest] {
        actions.compactMap {
            if case .loadBatch(let request) = $0 { return request }
            return nil
        }
    }

    static func commits(_ actions: [NodeEngine.Action]) -> [NodeEngine.CommitRequest] {
        actions.compactMap {
            if case .commit(let request) = $0 { return request }
            return nil
        }
    }

    static func sends(_ actions: [NodeEngine.Action]) -> [(ChannelID, SyncMessage)] {
        actions.compactMap {
            if case .send(let id, let message) = $0 { return (id, message) }
            return nil
        }
    }

    @Test("a new channel says hello; after the peer's hello it carries and asks for our log from the peer's checkpoint")
    func helloThenCarry() {
        var world = World()
        let start = NodeEngine.SessionStart(
            checkpoint: 4, highest: 10, hlc: HLCTimestamp(physicalMillis: world.now, logical: 0))
        let first = world.handle(.channelConnected(ChannelID(1), peer: "bob", endpoint: 0, address: "x", start: start))
        guard case .hello(let hello)? = Self.sends(first).first?.1 else {
            Issue.record("no hello: \(first)")
            return
        }
        #expect(hello.checkpoint == 4)
        let peerHello = SyncHello(
            nodeID: TestNode.bob.nodeID, hlc: HLCTimestamp(physicalMillis: world.now, logical: 3), checkpoint: 2)
        let actions = world.handle(.frame(ChannelID(1), .hello(peerHello), bytes: 64, atMillis: world.now))
        #expect(actions.contains { if case .observeClock = $0 { return true } else { return false } })
        #expect(
            Self.loads(actions) == [
                .init(
                    peer: "bob", after: 2, limit: LinkSessionStateMachine.Configuration().maxBatchOps,
                    purpose: .channel(ChannelID(1)), parts: true)
            ])
        let loaded = world.handle(
            .batchLoaded(
                Self.loads(actions)[0], NodeEngine.LoadedBatch(ops: [Data([1])], sent: 1, withheld: 0, throughSeq: 10))
        )
        #expect(Self.sends(loaded).map(\.1) == [.batch(ops: [Data([1])], throughSeq: 10)])
        #expect(world.engine.counters["bob"]?.opsSent == 1)
    }

    @Test("a hello from the wrong partner is a protocol violation: goodbye, close, custody")
    func wrongHello() {
        var world = World()
        let start = NodeEngine.SessionStart(
            checkpoint: 0, highest: 10, hlc: HLCTimestamp(physicalMillis: world.now, logical: 0))
        _ = world.handle(.channelConnected(ChannelID(1), peer: "bob", endpoint: 0, address: "x", start: start))
        let hello = SyncHello(
            nodeID: TestNode.mallory.nodeID, hlc: HLCTimestamp(physicalMillis: world.now, logical: 0), checkpoint: 0)
        let actions = world.handle(.frame(ChannelID(1), .hello(hello), bytes: 64, atMillis: world.now))
        #expect(Self.sends(actions).contains { if case .goodbye = $0.1 { return true } else { return false } })
        #expect(actions.contains { if case .close(ChannelID(1), _) = $0 { return true } else { return false } })
        #expect(
            actions.contains {
                if case .custody(let event) = $0 { return event.kind == .peerRefused } else { return false }
            })
        #expect(world.engine.channels.isEmpty)
    }

    @Test("failover: the primary falls silent past the deadline; the backup starts carrying from what was acknowledged")
    func failover() {
        var world = World()
        _ = world.open(1, to: .bob, endpoint: 0)
        let backup = world.open(2, to: .bob, endpoint: 1)
        #expect(Self.loads(backup).isEmpty, "the backup stands by")
        #expect(world.engine.selectors["bob"]?.carriers == [1])
        // The backup keeps answering; the primary says nothing.
        for _ in 0..<14 {
            world.now += 50
            _ = world.handle(.frame(ChannelID(2), .ping(nonce: world.now), bytes: 16, atMillis: world.now))
            let actions = world.handle(.tick())
            if actions.contains(where: { if case .close(ChannelID(1), _) = $0 { return true } else { return false } }) {
                #expect(Self.loads(actions).map(\.purpose) == [.channel(ChannelID(2))])
                #expect(world.engine.selectors["bob"]?.carriers == [2])
                #expect(world.engine.counters["bob"]?.failures[0] == 1)
                return
            }
        }
        Issue.record("the silent primary was never declared dead")
    }

    @Test("frames read but not yet handed over keep a channel alive")
    func heardKeepsAlive() {
        var world = World()
        _ = world.open(1, to: .bob)
        for _ in 0..<20 {
            world.now += 50
            let actions = world.handle(.tick(heard: [ChannelID(1): world.now]))
            #expect(!actions.contains { if case .close = $0 { return true } else { return false } })
        }
        #expect(world.engine.isOpen(ChannelID(1)))
    }

    @Test(
        "a link with no channel seals its ops through a relay that links to the destination, and the receipt settles them"
    )
    func sealThroughRelay() throws {
        var world = World()
        _ = world.open(3, to: .carol)
        world.now += 400
        let actions = world.handle(.tick())
        let seal = Self.loads(actions).filter { $0.peer == "bob" }
        #expect(seal.map(\.purpose) == [.seal(relay: "carol")])
        let loaded = world.handle(
            .batchLoaded(seal[0], NodeEngine.LoadedBatch(ops: [Data([9])], sent: 1, withheld: 0, throughSeq: 10)))
        guard let (id, message) = Self.sends(loaded).first, case .envelope(let bytes) = message else {
            Issue.record("no envelope sent: \(loaded)")
            return
        }
        #expect(id == ChannelID(3))
        let envelope = try SealedEnvelope.decode(bytes)
        #expect(envelope.header.to == TestNode.bob.nodeID)
        #expect(
            try envelope.open(with: world.sealingKeys["bob"]!, senderSealingKey: world.sealingKeys["alice"]!.publicKey)
                == [Data([9])])
        #expect(world.engine.sealed.awaiting("bob") == 1)
        let receipt = try EnvelopeReceipt.sign(
            for: envelope, applied: 1, refused: 0, signingKey: TestNode.bob.author.signingKey)
        _ = world.handle(.frame(ChannelID(3), .receipt(receipt.encoded()), bytes: 100, atMillis: world.now))
        #expect(world.engine.sealed.awaiting("bob") == 0)
        #expect(world.engine.sealed.receipted["bob"] == 1)
    }

    @Test("relay choice: a partner that does not relay, or has no link to the destination, is never chosen")
    func relayChoice() {
        var notRelay = World(carolIsRelay: false)
        _ = notRelay.open(3, to: .carol)
        notRelay.now += 400
        #expect(Self.loads(notRelay.handle(.tick())).filter { $0.peer == "bob" }.isEmpty)
        #expect(notRelay.engine.relays(for: "bob").isEmpty)

        var noLink = World(carolLinksBob: false)
        _ = noLink.open(3, to: .carol)
        noLink.now += 400
        #expect(Self.loads(noLink.handle(.tick())).filter { $0.peer == "bob" }.isEmpty)
        #expect(noLink.engine.relays(for: "bob").isEmpty)

        var both = World()
        _ = both.open(3, to: .carol)
        #expect(both.engine.relays(for: "bob") == ["carol"])
        #expect(both.engine.relays(for: "carol").isEmpty, "a partner is no relay to itself")
    }

    @Test("an envelope addressed to this node is opened and committed; the receipt goes back once the ops are durable")
    func openAndReceipt() throws {
        var world = World()
        _ = world.open(3, to: .carol)
        let envelope = try world.envelope([Data([5])], from: .bob, to: .alice, id: 1)
        let actions = world.handle(.frame(ChannelID(3), .envelope(envelope.encoded()), bytes: 200, atMillis: world.now))
        let commits = Self.commits(actions)
        #expect(commits.count == 1)
        #expect(commits.first?.peer == "bob")
        #expect(commits.first?.ops == [Data([5])])
        #expect(commits.first?.through == nil, "sealed ops move no checkpoint")
        #expect(Self.sends(actions).isEmpty, "no receipt before the commit")
        let done = world.handle(.committed(commits[0], NodeEngine.CommitOutcome(accepted: 1, refused: 0, highest: 11)))
        guard let (id, message) = Self.sends(done).first, case .receipt(let bytes) = message else {
            Issue.record("no receipt: \(done)")
            return
        }
        #expect(id == ChannelID(3), "back the way it came: no channel to bob is open")
        let receipt = try EnvelopeReceipt.decode(bytes)
        #expect(receipt.applied == 1)
        #expect(world.engine.counters["bob"]?.envelopesOpened == 1)
    }

    @Test("a node that does not relay strikes a neighbour that asks it to carry an envelope")
    func notARelay() throws {
        var world = World(aliceRelays: false)
        _ = world.open(3, to: .carol)
        let envelope = try world.envelope([Data([5])], from: .carol, to: .bob, id: 2)
        let actions = world.handle(.frame(ChannelID(3), .envelope(envelope.encoded()), bytes: 200, atMillis: world.now))
        #expect(actions.contains { if case .strike(peer: "carol", _, _) = $0 { return true } else { return false } })
        #expect(world.engine.relayQueue.held(for: "bob") == 0)
    }

    @Test("a relay carries an envelope for its neighbour: custody of the header only, handed on when a channel opens")
    func carry() throws {
        var world = World(aliceRelays: true)
        _ = world.open(3, to: .carol)
        let envelope = try world.envelope([Data([5])], from: .carol, to: .bob, id: 3)
        let actions = world.handle(.frame(ChannelID(3), .envelope(envelope.encoded()), bytes: 200, atMillis: world.now))
        #expect(
            actions.contains {
                if case .custody(let event) = $0 { return event.kind == .opsRelayed } else { return false }
            })
        #expect(world.engine.relayQueue.held(for: "bob") == 1)
        let opened = world.open(4, to: .bob)
        #expect(Self.sends(opened).contains { $0.0 == ChannelID(4) && $0.1 == .envelope(envelope.encoded()) })
        #expect(world.engine.relayQueue.held(for: "bob") == 0)
    }

    @Test("the same seed gives the same reconnect jitter, within the cap")
    func seededJitter() {
        var a = World()
        var b = World()
        let first = (0..<20).map { _ in a.engine.reconnectDelay(capMillis: 1_000) }
        let second = (0..<20).map { _ in b.engine.reconnectDelay(capMillis: 1_000) }
        #expect(first == second)
        #expect(first.allSatisfy { $0 <= 1_000 })
        #expect(Set(first).count > 1)
    }
    @Test(
        "the engine takes an envelope as the channel's reader opened it, and lets go at once of one it drops unopened"
    )
    func envelopesTakenFromTheReader() throws {
        var world = World()
        _ = world.open(3, to: .carol)
        let keys = world.sealingKeys
        func openAhead(_ envelope: SealedEnvelope) -> [Data]? {
            world.engine.envelopes.openAhead(
                envelope.encoded(), me: TestNode.alice.nodeID, sealingKey: keys["alice"]!,
                senderKey: { $0 == TestNode.bob.nodeID ? keys["bob"]!.publicKey : nil }, isNew: { _ in true })
        }
        let fresh = try world.envelope([Data([9])], from: .bob, to: .alice, id: 9)
        #expect(openAhead(fresh) == [Data([9])])
        let opened = world.handle(.frame(ChannelID(3), .envelope(fresh.encoded()), bytes: 200, atMillis: world.now))
        #expect(Self.commits(opened).first?.ops == [Data([9])])
        #expect(world.engine.envelopes.handedOut == 2, "decoded and opened by the reader, not again by the engine")
        #expect(world.engine.envelopes.waiting == 0)

        let stale = try world.envelope([Data([10])], from: .bob, to: .alice, id: 10, expiresMillis: world.now - 1)
        #expect(openAhead(stale) == [Data([10])])
        #expect(world.engine.envelopes.waiting == 1)
        let dropped = world.handle(.frame(ChannelID(3), .envelope(stale.encoded()), bytes: 200, atMillis: world.now))
        #expect(Self.commits(dropped).isEmpty, "an expired envelope is not opened")
        #expect(world.engine.envelopes.waiting == 0, "its ops are not held until pushed out")
    }

    @Test("a replayed envelope is not committed again; its receipt is sent again; an expired one is dropped unopened")
    func envelopeReplays() throws {
        var world = World()
        _ = world.open(3, to: .carol)
        let first = try world.envelope([Data([7])], from: .bob, to: .alice, id: 7)
        let opened = world.handle(.frame(ChannelID(3), .envelope(first.encoded()), bytes: 200, atMillis: world.now))
        #expect(Self.commits(opened).count == 1)
        let done = world.handle(
            .committed(Self.commits(opened)[0], NodeEngine.CommitOutcome(accepted: 1, refused: 0, highest: 11)))
        let receipts = Self.sends(done).filter { if case .receipt = $0.1 { return true } else { return false } }
        #expect(receipts.count == 1)

        let replay = world.handle(.frame(ChannelID(3), .envelope(first.encoded()), bytes: 200, atMillis: world.now))
        #expect(Self.commits(replay).isEmpty, "a replay is not committed twice")
        #expect(Self.sends(replay).map(\.1) == receipts.map(\.1), "the same receipt goes again")
        #expect(world.engine.counters["bob"]?.envelopesOpened == 1)

        let stale = try world.envelope([Data([8])], from: .bob, to: .alice, id: 8, expiresMillis: world.now - 1)
        let dropped = world.handle(.frame(ChannelID(3), .envelope(stale.encoded()), bytes: 200, atMillis: world.now))
        #expect(Self.commits(dropped).isEmpty, "an expired envelope is not opened")

        // Once the first has expired it is forgotten: the memory of replays is bounded by time.
        world.now += 61_000
        _ = world.handle(.tick())
        #expect(world.engine.openedEnvelopes.isEmpty)
    }
    static func struck(_ actions: [NodeEngine.Action]) -> [String] {
        actions.compactMap {
            if case .strike(let peer, .badEnvelope, _) = $0 { return peer }
            return nil
        }
    }

    @Test("an envelope whose sender signed it but that does not open is charged to the sender, not the relay")
    func unopenableEnvelopeChargedToSender() throws {
        var world = World()
        _ = world.open(3, to: .carol)
        // Signed by bob, addressed to alice, sealed to carol's key: a relay sees nothing wrong.
        let envelope = try SealedEnvelope.seal(
            ops: [Data([5])],
            to: TestNode.alice.nodeID,
            recipientSealingKey: world.sealingKeys["carol"]!.publicKey,
            signingKey: TestNode.bob.author.signingKey,
            sealingKey: world.sealingKeys["bob"]!,
            id: Data(repeating: 11, count: 16),
            expiresMillis: world.now + 60_000
        )
        let actions = world.handle(.frame(ChannelID(3), .envelope(envelope.encoded()), bytes: 200, atMillis: world.now))
        #expect(Self.commits(actions).isEmpty, "nothing of it is committed")
        #expect(Self.struck(actions) == ["bob"], "the sender who signed it, never carol who carried it: \(actions)")
        #expect(world.engine.containment.strikes["carol"] == nil)
    }

    @Test("an envelope id is remembered per sender: a relay's own envelope cannot claim an honest sender's id")
    func envelopeIDsPerSender() throws {
        var world = World()
        _ = world.open(3, to: .carol)
        // carol, relaying for bob, reads the id of bob's envelope and sends her own under it first.
        let squatter = try world.envelope([Data([9])], from: .carol, to: .alice, id: 9)
        let first = world.handle(.frame(ChannelID(3), .envelope(squatter.encoded()), bytes: 200, atMillis: world.now))
        let commits = Self.commits(first)
        #expect(commits.map(\.peer) == ["carol"])
        _ = world.handle(.committed(commits[0], NodeEngine.CommitOutcome(accepted: 1, refused: 0, highest: 11)))
        let honest = try world.envelope([Data([10])], from: .bob, to: .alice, id: 9)
        let second = world.handle(.frame(ChannelID(3), .envelope(honest.encoded()), bytes: 200, atMillis: world.now))
        #expect(Self.commits(second).map(\.peer) == ["bob"], "bob's envelope is opened: \(second)")
        #expect(Self.commits(second).first?.ops == [Data([10])])
        // And bob's own replay is still dropped.
        let replay = world.handle(.frame(ChannelID(3), .envelope(honest.encoded()), bytes: 200, atMillis: world.now))
        #expect(Self.commits(replay).isEmpty)
    }

    @Test("a connect loop is audited once per minute per source, with a count, not once per attempt")
    func refusedConnectionsAggregate() {
        var world = World()
        func custody(_ actions: [NodeEngine.Action]) -> [CustodyEvent] {
            actions.compactMap { if case .custody(let event) = $0 { return event } else { return nil } }
        }
        var entries = [CustodyEvent]()
        for attempt in 0..<100 {
            world.now += 100
            entries += custody(
                world.handle(.connectionRefused(peer: nil, detail: "certificate from 10.0.0.\(attempt)")))
            entries += custody(world.handle(.tick()))
        }
        #expect(entries.count == 1, "only the first refusal of the window is audited at once")
        entries += custody(world.handle(.connectionRefused(peer: "bob", detail: "wrong certificate")))
        #expect(entries.count == 2, "a partner's refusals are counted apart from outsiders'")
        world.now += NodeEngine.refusalWindowMillis
        entries += custody(world.handle(.tick()))
        #expect(entries.count == 3)
        #expect(entries.last?.detail.hasPrefix("99 more refused connections") == true, "\(entries.last?.detail ?? "")")
        #expect(entries.last?.peer == nil)
    }
    @Test("an envelope with no receipt in time goes again, through another relay if there is one")
    func envelopeRetry() throws {
        var world = World()
        _ = world.open(3, to: .carol)
        world.now += 400
        let seal = Self.loads(world.handle(.tick())).filter { $0.peer == "bob" }
        #expect(seal.count == 1)
        let sent = world.handle(
            .batchLoaded(seal[0], NodeEngine.LoadedBatch(ops: [Data([9])], sent: 1, withheld: 0, throughSeq: 10)))
        let envelopes = Self.sends(sent).filter { if case .envelope = $0.1 { return true } else { return false } }
        #expect(envelopes.count == 1)
        // The relay withholds it: no receipt. Past the receipt timeout it goes again.
        var resent = [(ChannelID, SyncMessage)]()
        for _ in 0..<20 where resent.isEmpty {
            world.now += 100
            _ = world.handle(.frame(ChannelID(3), .ping(nonce: world.now), bytes: 16, atMillis: world.now))
            resent = Self.sends(world.handle(.tick())).filter {
                if case .envelope = $0.1 { return true } else { return false }
            }
        }
        #expect(resent.map(\.1) == envelopes.map(\.1), "the same envelope, sent again")
        #expect(world.engine.sealed.retries == 1)
    }
    @Test("a pinned peer that connects and never says hello is closed at the hello deadline and audited")
    func noHello() {
        var world = World()
        let start = NodeEngine.SessionStart(
            checkpoint: 0, highest: 10, hlc: HLCTimestamp(physicalMillis: world.now, logical: 0))
        _ = world.handle(.channelConnected(ChannelID(1), peer: "bob", endpoint: 0, address: "x", start: start))
        var actions = [NodeEngine.Action]()
        for _ in 0..<120 where world.engine.channels[ChannelID(1)] != nil {
            world.now += 50
            actions = world.handle(.tick())
        }
        #expect(actions.contains { if case .close(ChannelID(1), _) = $0 { return true } else { return false } })
        #expect(
            actions.contains {
                if case .custody(let event) = $0 {
                    return event.detail.hasPrefix("no hello within")
                } else {
                    return false
                }
            })
    }
}
