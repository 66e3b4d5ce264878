import Crypto
import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonStore
import LiaisonTestSupport
import LiaisonTransport
import NIOCore
import Testing

/// Containment in the topology and across a restart of the interpreter.
@Suite("Containment at a node")
struct ContainmentNodeTests {
    static let base = """
        federation: f
        partners:
          alpha: {endpoints: ["127.0.0.1:1"], api: "127.0.0.1:2"}
          bravo: {endpoints: ["127.0.0.1:3"], api: "127.0.0.1:4"}
        links:
          - {from: alpha, to: bravo}
          - {from: bravo, to: alpha}

        """

    @Test("containment thresholds and window come from the topology; 0 turns a class off; others keep defaults")
    func topology() throws {
        let topology = try Topology.parse(
            Self.base + "containment: {window-ms: 60000, thresholds: {forged: 2, future-stamp: 0}}\n", file: "t.yaml")
        #expect(topology.containment.windowMillis == 60_000)
        #expect(topology.containment.thresholds[.forged] == 2)
        #expect(topology.containment.thresholds[.futureStamp] == nil)
        #expect(topology.containment.thresholds[.notReleasable] == ContainmentPolicy.default.thresholds[.notReleasable])
        #expect(try Topology.parse(Self.base, file: "t.yaml").containment == .default)
        let expiry = try Topology.parse(Self.base + "containment: {pending-expiry-ms: 86400000}\n", file: "t.yaml")
        #expect(expiry.containment.pendingExpiryMillis == 86_400_000)
        #expect(ContainmentPolicy.default.pendingExpiryMillis == 30 * 86_400_000)
        // A policy rendered into a node's configuration before the expiry existed.
        let old = Data(#"{"thresholds":{"forged":5},"windowMillis":60000}"#.utf8)
        let decoded = try JSONDecoder().decode(ContainmentPolicy.self, from: old)
        #expect(decoded.pendingExpiryMillis == ContainmentPolicy.defaultPendingExpiryMillis)
        #expect(decoded.thresholds[.forged] == 5 && decoded.windowMillis == 60_000)
    }

    @Test(
        "bad containment settings are refused with the line at fault",
        arguments: [
            ("containment: {thresholds: {forgery: 2}}", "forgery"),
            ("containment: {thresholds: {forged: -1}}", "whole number from 0"),
            ("containment: {window-ms: 5}", "window-ms must be"),
            ("containment: {grace: 1}", "grace"),
            ("containment: {pending-expiry-ms: 5}", "pending-expiry-ms must be"),
        ]
    )
    func badTopology(yaml: String, message: String) {
        do {
            _ = try Topology.parse(Self.base + yaml + "\n", file: "t.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.message.contains("t.yaml:8"), "\(error.message)")
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    final class NullTransport: PeerTransport {
        func send(_ frame: ByteBuffer, on channel: ChannelID) {}
        func close(_ channel: ChannelID, reason: String) {}
    }

    static func interpreter(_ store: MemoryStore) throws -> NodeInterpreter<NullTransport> {
        let keys = ["alice": 1, "bob": 2].mapValues {
            try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(repeating: UInt8($0), count: 32))
        }
        let partners = [TestNode.alice, TestNode.bob].map { node in
            NodeEngine.Partner(
                recipient: node.recipient(), relay: false, neighbours: [node == .alice ? "bob" : "alice"],
                sealingKey: keys[node.name]!.publicKey)
        }
        let configuration = NodeEngine.Configuration(
            me: TestNode.alice.recipient(),
            partners: partners,
            links: [ReplicationNeighbour(partner: TestNode.bob.recipient(), outbound: .passAll, inbound: .passAll)],
            isRelay: false,
            channels: ChannelSettings(),
            signingKey: TestNode.alice.author.signingKey,
            sealingKey: keys["alice"]!
        )
        return try NodeInterpreter(
            configuration: configuration, store: store, ladder: .standard, maxClockSkewMillis: 60_000,
            transport: NullTransport(), nowMillis: HLCTimestamp.testEpochMillis, random: SeededRandom(seed: 1),
            logger: nil)
    }

    /// Bob's channel 1 opens at `interpreter` and carries `ops` as one batch through `through`.
    static func deliver(
        _ ops: [VerifiedOp], through: UInt64, to interpreter: inout NodeInterpreter<NullTransport>, nowMillis: UInt64
    ) -> NodeInterpreter<NullTransport>.Report {
        let id = ChannelID(Int(through))
        interpreter.channelConnected(id, peer: "bob", endpoint: 0, address: "test", nowMillis: nowMillis)
        let hello = SyncHello(nodeID: TestNode.bob.nodeID, hlc: .test(0), checkpoint: 0)
        interpreter.handle(.frame(id, .hello(hello), bytes: 10, atMillis: nowMillis), nowMillis: nowMillis)
        return interpreter.handle(
            .frame(id, .batch(ops: ops.map(\.encoded), throughSeq: through), bytes: 10, atMillis: nowMillis),
            nowMillis: nowMillis)
    }

    @Test("strikes and a quarantine survive a restart; the restarted node still refuses the partner's ops")
    func survivesRestart() throws {
        let store = MemoryStore()
        var factory = OpFactory(seed: 3)
        let early = try factory.create(
            by: .bob, markings: Markings(classification: "UNCLASSIFIED", releasableTo: ["ALL"]), at: .test(1))
        var first = try Self.interpreter(store)
        let now = HLCTimestamp.testEpochMillis + 10_000
        first.handle(
            .committed(
                NodeEngine.CommitRequest(peer: "bob", ops: [], source: .channel(ChannelID(1), through: 1)),
                NodeEngine.CommitOutcome(
                    accepted: 0, refused: 1, highest: 0, strikes: [TestNode.bob.nodeID: [.forged: 1]])),
            nowMillis: now)
        _ = Self.deliver([early], through: 1, to: &first, nowMillis: now)
        #expect(try store.item(early.body.itemID) != nil)
        let report = first.handle(
            .quarantine(peer: "bob", sinceMillis: HLCTimestamp.testEpochMillis, reason: "test"), nowMillis: now)
        #expect(report.rebuilds.first?.removed == [early.body.itemID], "bob's item since T was not left out")
        #expect(try store.item(early.body.itemID) == nil)

        var second = try Self.interpreter(store)
        var replication = second.replicationStore
        #expect(second.engine.isQuarantined("bob"))
        #expect(second.engine.containment.strikes["bob"]?[.forged]?.total == 1)
        let late = try factory.create(
            by: .bob, markings: Markings(classification: "UNCLASSIFIED", releasableTo: ["ALL"]), at: .test(5))
        // A channel from bob is closed at once; the same op carried by anyone is refused.
        let refused = Self.deliver([late], through: 2, to: &second, nowMillis: now)
        #expect(refused.commits.isEmpty)
        #expect(second.engine.channels.isEmpty)
        let outcome = try replication.receive(ops: [late.encoded], through: 2, from: "bob", nowMillis: now)
        #expect(outcome.accepted == 0 && outcome.strikes.isEmpty)
        #expect(try store.item(late.body.itemID) == nil)

        // The release puts bob's earlier item back from the log.
        let released = second.handle(.release(peer: "bob"), nowMillis: now + 1)
        #expect(released.rebuilds.first?.changed == [early.body.itemID])
        #expect(try store.item(early.body.itemID) != nil)
        #expect(try Self.interpreter(store).engine.isQuarantined("bob") == false)
    }
}

@Suite("Pending ops from a partner")
struct PendingBoundTests {
    /// Alice's store side, in a federation of alice, bob and carol, linked to `neighbours`.
    static func alice(_ store: MemoryStore, neighbours: [TestNode]) throws -> ReplicationStore {
        try ReplicationStore(
            me: TestNode.alice.recipient(),
            store: store,
            ladder: .standard,
            partners: [TestNode.alice.recipient(), TestNode.bob.recipient(), TestNode.carol.recipient()],
            neighbours: neighbours.map {
                ReplicationNeighbour(partner: $0.recipient(), outbound: .passAll, inbound: .passAll)
            },
            maxClockSkewMillis: 60_000,
            nowMillis: nil
        )
    }

    /// Items carol created (open to annotations, releasable to all) and bob's annotation of
    /// each, stamped as `stamps` says; the creates are stamped 0, 1, 2….
    static func carolsItemsAnnotatedByBob(
        stamps: [UInt64], factory: inout OpFactory
    ) throws -> (creates: [VerifiedOp], annotations: [VerifiedOp]) {
        var creates = [VerifiedOp]()
        var annotations = [VerifiedOp]()
        for (index, stamp) in stamps.enumerated() {
            let create = try factory.create(
                by: .carol, markings: Markings(classification: "UNCLASSIFIED", releasableTo: ["ALL"]),
                writePolicy: .annotations, at: .test(UInt64(index)))
            creates.append(create)
            annotations.append(
                try factory.setFields(
                    [(name: "note", value: JSONText.string("\(index)"))], of: try ItemState(create: create), by: .bob,
                    at: .test(stamp)))
        }
        return (creates, annotations)
    }

    @Test(
        "ops for items the node does not hold are kept up to a bound per partner; past it they are refused as a flood")
    func bounded() throws {
        let store = MemoryStore()
        var replication = try Self.alice(store, neighbours: [.bob])
        replication.maxPendingPerPartner = 3
        var factory = OpFactory(seed: 9)
        // Items carol created that alice never received: bob's annotations of them wait.
        let annotations = try Self.carolsItemsAnnotatedByBob(stamps: Array(repeating: 10, count: 5), factory: &factory)
            .annotations
        let now = HLCTimestamp.testEpochMillis + 20
        let outcome = try replication.receive(
            ops: annotations.map(\.encoded), through: 5, from: "bob", nowMillis: now)
        #expect(outcome.accepted == 3)
        #expect(outcome.refused == 2)
        #expect(outcome.strikes[TestNode.bob.nodeID]?[.flood] == 1, "one strike per batch past the bound")
        #expect(try store.pendingCount(from: TestNode.bob.nodeID) == 3)
        let again = try replication.receive(
            ops: [annotations[4].encoded], through: 6, from: "bob", nowMillis: now)
        #expect(again.accepted == 0 && again.strikes[TestNode.bob.nodeID]?[.flood] == 1)
    }

    @Test(
        "with a partner's waiting ops at the bound, the creates they wait for, and ops that follow a create in the same batch, are still taken in: they never wait"
    )
    func boundSparesCreates() throws {
        let store = MemoryStore()
        var replication = try Self.alice(store, neighbours: [.bob])
        replication.maxPendingPerPartner = 2
        var factory = OpFactory(seed: 12)
        let (creates, annotations) = try Self.carolsItemsAnnotatedByBob(stamps: [10, 10, 10], factory: &factory)
        let now = HLCTimestamp.testEpochMillis + 20
        // Two annotations wait: bob is at the bound.
        let early = try replication.receive(
            ops: annotations.prefix(2).map(\.encoded), through: 2, from: "bob", nowMillis: now)
        #expect(early.accepted == 2)
        #expect(try store.pendingCount(from: TestNode.bob.nodeID) == 2)
        // The creates (carol's, forwarded by bob), then the third item's annotation after its create.
        let later = try replication.receive(
            ops: creates.map(\.encoded) + [annotations[2].encoded], through: 6, from: "bob", nowMillis: now)
        #expect(later.refused == 0)
        #expect(later.strikes[TestNode.bob.nodeID]?[.flood] == nil)
        #expect(try store.pendingCount(from: TestNode.bob.nodeID) == 0)
        for (create, annotation) in zip(creates, annotations) {
            #expect(try store.item(create.body.itemID)?.fields["note"] != nil)
            #expect(try store.op(annotation.id) != nil)
        }
    }

    @Test(
        "waiting ops stamped before the expiry are dropped with one ops.expired entry listing them; younger ones stay and apply when their create comes; nothing is written when none is that old"
    )
    func expiry() throws {
        let store = MemoryStore()
        var replication = try Self.alice(store, neighbours: [.bob, .carol])
        var factory = OpFactory(seed: 11)
        // Two items of carol's alice has not received; bob annotated one early, one late.
        let (creates, annotations) = try Self.carolsItemsAnnotatedByBob(stamps: [10, 100_000], factory: &factory)
        let now = HLCTimestamp.testEpochMillis + 100_010
        let received = try replication.receive(
            ops: annotations.map(\.encoded), through: 2, from: "bob", nowMillis: now)
        #expect(received.accepted == 2)
        #expect(try store.waitingOps().count == 2)

        let custodyBefore = try store.custody(from: 1, limit: 10_000).count
        // Nothing is stamped before the epoch: nothing to drop, nothing written.
        #expect(
            try replication.expireWaiting(stampedBeforeMillis: HLCTimestamp.testEpochMillis, nowMillis: now).isEmpty)
        #expect(try store.custody(from: 1, limit: 10_000).count == custodyBefore)

        let dropped = try replication.expireWaiting(
            stampedBeforeMillis: HLCTimestamp.testEpochMillis + 50_000, nowMillis: now)
        #expect(dropped == [annotations[0].id])
        #expect(try store.waitingOps().map(\.op.id) == [annotations[1].id])
        let entries = try store.custody(from: 1, limit: 10_000)
        #expect(entries.count == custodyBefore + 1)
        #expect(entries.last?.kind == .opsExpired && entries.last?.opIDs == [annotations[0].id])
        #expect(entries.last?.detail.contains(TestNode.bob.nodeID.short) == true, "\(entries.last?.detail ?? "")")
        #expect(try store.pendingCount(from: TestNode.bob.nodeID) == 1, "the expired op still counts against bob")

        // The creates arrive: only the annotation that was still waiting applies.
        _ = try replication.receive(ops: creates.map(\.encoded), through: 1, from: "carol", nowMillis: now)
        #expect(try store.item(creates[0].body.itemID)?.fields["note"] == nil)
        #expect(try store.item(creates[1].body.itemID)?.fields["note"] != nil)
        #expect(try store.waitingOps().isEmpty)
    }
}
