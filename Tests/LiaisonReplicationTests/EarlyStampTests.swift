import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonStore
import LiaisonTestSupport
import Testing

/// I6 at the receiver (`ReplicationStore.receive`), with a manual clock: ops stamped beyond
/// the skew wait rather than vanish, and what is refused for time is charged to the op's
/// author, not to the partner that passed it on.
@Suite("Ops stamped ahead of the receiver's clock")
struct EarlyStampTests {
    static let skew: UInt64 = 60_000
    /// Bob's clock.
    static let now = HLCTimestamp.testEpochMillis + 100_000

    static func bob() throws -> (logic: ReplicationStore, store: MemoryStore) {
        let store = MemoryStore()
        let logic = try ReplicationStore(
            me: TestNode.bob.recipient(),
            store: store,
            ladder: .standard,
            partners: [TestNode.alice.recipient(), TestNode.bob.recipient(), TestNode.carol.recipient()],
            neighbours: [TestNode.alice, .carol].map {
                ReplicationNeighbour(partner: $0.recipient(), outbound: .passAll, inbound: .passAll)
            },
            maxClockSkewMillis: skew,
            nowMillis: now
        )
        return (logic, store)
    }

    /// An item by carol, released to everyone, stamped `ahead` ms after bob's clock.
    static func byCarol(ahead: UInt64, seed: UInt64) throws -> VerifiedOp {
        var factory = OpFactory(seed: seed)
        return try factory.create(
            by: .carol, markings: Markings(classification: "SECRET", releasableTo: ["ALL"]),
            at: HLCTimestamp(physicalMillis: now + ahead, logical: 0))
    }

    static func custody(_ store: MemoryStore, _ kind: CustodyKind) throws -> [CustodyEntry] {
        try store.custody(from: 1, limit: 1_000).filter { $0.kind == kind }
    }

    @Test(
        "a channel's batch holding an op beyond the skew (by at most twice it) commits nothing, moves no checkpoint, and waits; custody names the author"
    )
    func batchWaits() throws {
        var (bob, store) = try Self.bob()
        let timely = try Self.byCarol(ahead: 0, seed: 71)
        let early = try Self.byCarol(ahead: Self.skew + 1_500, seed: 72)
        let outcome = try bob.receive(
            ops: [timely.encoded, early.encoded], through: 2, from: "alice", nowMillis: Self.now, mayWait: true)
        #expect(outcome.waitUntilMillis == Self.now + 1_500)
        #expect(outcome.early == 1)
        #expect(outcome.accepted == 0 && outcome.refused == 0)
        #expect(try store.highestSequence() == 0, "part of a waiting batch was committed")
        #expect(try store.checkpoint(link: ReplicationStore.receivedLink("alice")) == 0)
        let deferred = try Self.custody(store, .opsDeferred)
        #expect(deferred.map(\.peer) == [TestNode.carol.nodeID.text])
        #expect(deferred.first?.opIDs == [early.id])
        #expect(try Self.custody(store, .opsRejected).isEmpty)

        // Once bob's clock is within the skew of it, the same batch commits whole.
        let later = try bob.receive(
            ops: [timely.encoded, early.encoded], through: 2, from: "alice", nowMillis: Self.now + 1_500,
            mayWait: true)
        #expect(later.waitUntilMillis == nil)
        #expect(later.accepted == 2 && later.refused == 0)
        #expect(try store.checkpoint(link: ReplicationStore.receivedLink("alice")) == 2)
    }

    @Test("an op more than twice the skew ahead is refused: a future-stamp strike against its author, not the sender")
    func farFutureIsChargedToItsAuthor() throws {
        var (bob, store) = try Self.bob()
        let far = try Self.byCarol(ahead: 2 * Self.skew + 1, seed: 73)
        let outcome = try bob.receive(ops: [far.encoded], through: 1, from: "alice", nowMillis: Self.now, mayWait: true)
        #expect(outcome.waitUntilMillis == nil)
        #expect(outcome.refused == 1)
        #expect(
            outcome.strikes == [TestNode.carol.nodeID: [.futureStamp: 1]],
            "the strike went to alice, who only passed it on")
        #expect(try Self.custody(store, .opsRejected).flatMap(\.opIDs) == [far.id])
        #expect(try store.op(far.id) == nil)

        // From its author directly, the author is the sender.
        var (direct, _) = try Self.bob()
        let directly = try direct.receive(ops: [far.encoded], through: 1, from: "carol", nowMillis: Self.now)
        #expect(directly.strikes == [TestNode.carol.nodeID: [.futureStamp: 1]])
    }

    @Test(
        "sealed ops beyond the skew are refused, struck against their author; the link, whose checkpoint they did not move, brings them again"
    )
    func sealedEarlyOpsAreRefusedAgainstTheAuthor() throws {
        var (bob, store) = try Self.bob()
        let early = try Self.byCarol(ahead: Self.skew + 10, seed: 75)
        let outcome = try bob.receive(ops: [early.encoded], through: nil, from: "alice", nowMillis: Self.now)
        #expect(outcome.waitUntilMillis == nil)
        #expect(outcome.strikes == [TestNode.carol.nodeID: [.futureStamp: 1]])
        #expect(try Self.custody(store, .opsRejected).flatMap(\.opIDs) == [early.id])
        #expect(try store.checkpoint(link: ReplicationStore.receivedLink("alice")) == 0)
    }
}
