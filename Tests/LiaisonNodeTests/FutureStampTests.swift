import Crypto
import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonStore
import LiaisonTestSupport
import LiaisonTransport
import LiaisonWire
import NIOCore
import Testing

/// I6 at the edge of the skew, through the one interpreter the daemon and the simulator run:
/// carol stamps an op just under alice's time plus the allowed skew; alice (honest) admits
/// it and passes it on to bob, whose clock is two seconds behind alice's.
@Suite("Stamps at the edge of the skew")
struct FutureStampTests {
    static let skew: UInt64 = 60_000
    /// Alice's clock at the start; bob's is `bobBehind` behind it.
    static let start: UInt64 = 1_700_000_000_000
    static let bobBehind: UInt64 = 2_000

    /// Records what an interpreter writes, for the test to carry to the other side.
    final class Wire: PeerTransport {
        var frames: [(channel: ChannelID, frame: ByteBuffer)] = []
        var closed: [ChannelID] = []

        func send(_ frame: ByteBuffer, on channel: ChannelID) { frames.append((channel, frame)) }
        func close(_ channel: ChannelID, reason: String) { closed.append(channel) }
    }

    /// Alice and bob, linked both ways; carol is a partner whose channel to alice the test
    /// drives by hand. `now` is alice's clock.
    struct World {
        var alice: NodeInterpreter<Wire>
        var bob: NodeInterpreter<Wire>
        let aliceStore = MemoryStore()
        let bobStore = MemoryStore()
        var now = FutureStampTests.start
        var bobNow: UInt64 { now - FutureStampTests.bobBehind }
        /// Alice's end and bob's end of the channel between them.
        var aliceToBob = ChannelID(1)
        var bobToAlice = ChannelID(2)
        let carolChannel = ChannelID(3)
        var nextChannel = 4

        /// `window`: the sessions' window (a receiver takes more than twice it of uncommitted
        /// batches on one channel as a flood).
        init(window: Int = 4) throws {
            alice = try Self.interpreter(
                for: .alice, store: aliceStore, nowMillis: FutureStampTests.start, window: window)
            bob = try Self.interpreter(
                for: .bob, store: bobStore, nowMillis: FutureStampTests.start - FutureStampTests.bobBehind,
                window: window)
        }

        static func interpreter(
            for node: TestNode, store: MemoryStore, nowMillis: UInt64, window: Int = 4
        ) throws -> NodeInterpreter<Wire> {
            let nodes: [TestNode] = [.alice, .bob, .carol]
            let partners = nodes.enumerated().map { index, other in
                NodeEngine.Partner(
                    recipient: other.recipient(),
                    relay: false,
                    neighbours: Set(nodes.filter { $0.name != other.name }.map(\.name)),
                    sealingKey: sealingKey(index).publicKey
                )
            }
            let links = nodes.filter { $0.name != node.name }.map {
                ReplicationNeighbour(partner: $0.recipient(), outbound: .passAll, inbound: .passAll)
            }
            var configuration = NodeEngine.Configuration(
                me: node.recipient(),
                partners: partners,
                links: links,
                isRelay: false,
                channels: ChannelSettings(),
                signingKey: node.author.signingKey,
                sealingKey: sealingKey(nodes.firstIndex { $0.name == node.name }!)
            )
            configuration.session.window = window
            return try NodeInterpreter(
                configuration: configuration,
                store: store,
                ladder: .standard,
                maxClockSkewMillis: FutureStampTests.skew,
                transport: Wire(),
                nowMillis: nowMillis,
                random: SeededRandom(seed: 5),
                logger: nil
            )
        }

        static func sealingKey(_ index: Int) -> Curve25519.KeyAgreement.PrivateKey {
            try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(repeating: UInt8(index + 1), count: 32))
        }

        /// Carol's channel to alice opens and carries `ops` as the first batch of carol's log.
        mutating func carolSends(_ ops: [VerifiedOp]) throws {
            alice.channelConnected(carolChannel, peer: "carol", endpoint: 0, address: "carol", nowMillis: now)
            _ = alice.handle(
                .frame(
                    carolChannel, .hello(SyncHello(nodeID: TestNode.carol.nodeID, hlc: .zero, checkpoint: 0)),
                    bytes: 0, atMillis: now),
                nowMillis: now
            )
            _ = alice.handle(
                .frame(
                    carolChannel, .batch(ops: ops.map(\.encoded), throughSeq: UInt64(ops.count)), bytes: 0,
                    atMillis: now),
                nowMillis: now
            )
            alice.transport.frames.removeAll()
        }

        /// Alice writes an item of her own, stamped by her clock.
        mutating func aliceWrites() throws -> VerifiedOp {
            var random = SeededGenerator(seed: 9)
            let op = try TestNode.alice.author.sign([
                try TestNode.alice.author.create(
                    collection: "reports", markings: Markings(classification: "SECRET", releasableTo: ["ALL"]),
                    hlc: alice.tick(nowMillis: now), using: &random)
            ])[0]
            _ = try aliceStore.commit(CommitBatch(ops: [op], source: .local, timeMillis: Int64(now)))
            _ = alice.committedLocally(stamps: [op.body.hlc], nowMillis: now)
            return op
        }

        /// A channel between alice and bob comes up.
        mutating func connect() {
            aliceToBob = ChannelID(nextChannel)
            bobToAlice = ChannelID(nextChannel + 1)
            nextChannel += 2
            alice.channelConnected(aliceToBob, peer: "bob", endpoint: 0, address: "bob", nowMillis: now)
            bob.channelConnected(bobToAlice, peer: "alice", endpoint: 0, address: "bob", nowMillis: bobNow)
            exchange()
        }

        /// Carries frames both ways until none is left.
        mutating func exchange() {
            for _ in 0..<1_000 {
                let fromAlice = alice.transport.frames.filter { $0.channel == aliceToBob }.map(\.frame)
                let fromBob = bob.transport.frames.filter { $0.channel == bobToAlice }.map(\.frame)
                alice.transport.frames.removeAll()
                bob.transport.frames.removeAll()
                if fromAlice.isEmpty && fromBob.isEmpty { return }
                for frame in fromAlice {
                    let message = try! SyncFrameCodec.decode(frame)
                    bob.handle(
                        .frame(bobToAlice, message, bytes: frame.readableBytes, atMillis: bobNow), nowMillis: bobNow)
                }
                for frame in fromBob {
                    let message = try! SyncFrameCodec.decode(frame)
                    alice.handle(.frame(aliceToBob, message, bytes: frame.readableBytes, atMillis: now), nowMillis: now)
                }
            }
        }

        /// Time passes on both clocks, in steps of 100 ms with heartbeats.
        mutating func advance(_ millis: UInt64) {
            for _ in 0..<(millis / 100) {
                now += 100
                alice.handle(.tick(), nowMillis: now)
                bob.handle(.tick(), nowMillis: bobNow)
                exchange()
            }
        }

        /// Bob stops (everything not committed is gone) and starts again over his store; the
        /// channel comes back.
        mutating func restartBob() throws {
            alice.handle(.channelLost(aliceToBob, error: "reset"), nowMillis: now)
            bob = try Self.interpreter(for: .bob, store: bobStore, nowMillis: bobNow)
            connect()
        }

        /// Custody at bob of `kind` that names `node` as the peer.
        func bobCustody(_ kind: CustodyKind, naming node: TestNode) throws -> [CustodyEntry] {
            try bobStore.custody(from: 1, limit: 10_000).filter { $0.kind == kind && $0.peer == node.nodeID.text }
        }
    }

    /// Carol's op, stamped 500 ms short of alice's time plus the skew: 1.5 s beyond bob's.
    static func edgeOp() throws -> VerifiedOp {
        var random = SeededGenerator(seed: 8)
        let unsigned = try TestNode.carol.author.create(
            collection: "reports",
            markings: Markings(classification: "SECRET", releasableTo: ["ALL"]),
            hlc: HLCTimestamp(physicalMillis: start + skew - 500, logical: 0),
            using: &random
        )
        return try TestNode.carol.author.sign([unsigned])[0]
    }

    @Test("an honest node that admits a stamp near the edge of the skew does not stamp its own ops there")
    func ownStampsAreNotDragged() throws {
        var world = try World()
        try world.carolSends([Self.edgeOp()])
        #expect(try world.aliceStore.op(Self.edgeOp().id) != nil, "alice refused carol's op within the skew")
        let own = try world.aliceWrites()
        #expect(
            own.body.hlc.physicalMillis <= Self.start + Self.skew / 2,
            "alice's own op is stamped \(own.body.hlc.physicalMillis - Self.start) ms ahead of her clock")
    }

    @Test(
        "an op an honest forwarder admitted but stamped beyond the receiver's skew waits for the receiver's clock: not lost, not struck against the forwarder"
    )
    func forwardedEarlyOpWaits() throws {
        var world = try World()
        let edge = try Self.edgeOp()
        try world.carolSends([edge])
        let own = try world.aliceWrites()
        world.connect()

        // Bob's clock is 1.5 s short of admitting carol's op: its batch waits, unacknowledged.
        #expect(try world.bobStore.op(edge.id) == nil)
        #expect(try world.bobStore.checkpoint(link: ReplicationStore.receivedLink("alice")) == 0)
        #expect(try !world.bobCustody(.opsDeferred, naming: .carol).isEmpty, "no custody of the wait against carol")

        world.advance(1_600)
        #expect(try world.bobStore.op(edge.id) != nil, "carol's op was lost at bob")
        #expect(try world.bobStore.op(own.id) != nil, "alice's own op was lost at bob")
        #expect(try world.bobStore.checkpoint(link: ReplicationStore.receivedLink("alice")) == 2)
        #expect(try world.bobCustody(.opsRejected, naming: .alice).isEmpty, "bob refused ops from honest alice")
    }

    @Test("a receiver that stops while a batch waits loses nothing: the batch was never acknowledged")
    func waitingBatchSurvivesARestart() throws {
        var world = try World()
        let edge = try Self.edgeOp()
        try world.carolSends([edge])
        world.connect()
        #expect(try world.bobStore.op(edge.id) == nil)

        try world.restartBob()
        #expect(try world.bobStore.op(edge.id) == nil)
        world.advance(1_600)
        #expect(try world.bobStore.op(edge.id) != nil, "carol's op was lost when bob stopped while it waited")
        #expect(try world.bobCustody(.opsRejected, naming: .alice).isEmpty, "bob refused ops from honest alice")
    }

    /// Alice's channel hands bob a batch `through` holding one create of carol's stamped a
    /// second beyond bob's skew (it waits for bob's clock).
    static func earlyBatch(
        through: UInt64, to world: inout World, using random: inout SeededGenerator
    ) throws -> NodeInterpreter<Wire>.Report {
        let op = try TestNode.carol.author.sign([
            try TestNode.carol.author.create(
                collection: "reports", markings: Markings(classification: "SECRET", releasableTo: ["ALL"]),
                hlc: HLCTimestamp(physicalMillis: world.bobNow + skew + 1_000, logical: 0), using: &random)
        ])[0]
        return world.bob.handle(
            .frame(world.bobToAlice, .batch(ops: [op.encoded], throughSeq: through), bytes: 0, atMillis: world.bobNow),
            nowMillis: world.bobNow)
    }

    @Test(
        "a sender that overruns its window with early ops does not grow the receiver's memory: past 16 waiting batches they commit, early ops refused"
    )
    func waitingIsBounded() throws {
        // With a window of 16, 17 uncommitted batches are no flood (that takes 33): the
        // interpreter's own bound of 16 waiting batches is what shows.
        var world = try World(window: 16)
        world.connect()
        var random = SeededGenerator(seed: 11)
        var strikes = [NodeID: [StrikeClass: Int]]()
        for through in 1...UInt64(17) {
            let report = try Self.earlyBatch(through: through, to: &world, using: &random)
            for (_, outcome) in report.commits {
                for (culprit, classes) in outcome.strikes {
                    strikes[culprit, default: [:]].merge(classes, uniquingKeysWith: +)
                }
            }
            #expect(world.bob.waitingBatches == (through <= 16 ? Int(through) : 0), "after batch \(through)")
        }
        #expect(try world.bobStore.checkpoint(link: ReplicationStore.receivedLink("alice")) == 17)
        #expect(strikes == [TestNode.carol.nodeID: [.futureStamp: 17]], "struck: \(strikes)")
    }

    @Test(
        "with the default window, a sender whose early batches wait and who sends a ninth without an ack is a flood: the channel closes, the sender is struck, no more batches wait"
    )
    func overrunIsFlood() throws {
        var world = try World()
        world.connect()
        var random = SeededGenerator(seed: 12)
        for through in 1...UInt64(9) {
            let report = try Self.earlyBatch(through: through, to: &world, using: &random)
            let closed = report.actions.contains {
                if case .close(world.bobToAlice, _) = $0 { return true } else { return false }
            }
            #expect(closed == (through == 9), "after batch \(through)")
            #expect(world.bob.waitingBatches == Int(min(through, 8)), "after batch \(through)")
        }
        #expect(world.bob.engine.containment.strikes["alice"]?[.flood]?.total == 1)
    }
}
