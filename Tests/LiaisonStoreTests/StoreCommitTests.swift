import Foundation
import LiaisonCore
import LiaisonStore
import LiaisonTestSupport
import Synchronization
import Testing

@Suite("Store commits")
struct StoreCommitTests {
    let alice = TestNode.alice
    let bob = TestNode.bob

    /// Alice, bob and carol as a partner batch names its authors (`CommitBatch.partners`).
    private var threePartners: [NodeID: Recipient] {
        Dictionary(uniqueKeysWithValues: [alice, bob, TestNode.carol].map { ($0.nodeID, $0.recipient()) })
    }

    private func batch(_ ops: [VerifiedOp], from peer: TestNode? = nil) -> CommitBatch {
        CommitBatch(ops: ops, source: peer.map { .peer($0.nodeID) } ?? .local, timeMillis: 1_700_000_000_000)
    }

    /// A create and three further ops by alice.
    private func history() throws -> [VerifiedOp] {
        var factory = OpFactory(seed: 7)
        let create = try factory.create(
            by: alice,
            fields: [(name: "title", value: JSONText.string("first"))],
            tags: ["red"],
            at: .test(1)
        )
        let item = try ItemState(create: create)
        return [
            create,
            try factory.setFields(
                [(name: "title", value: JSONText.string("second"))], of: item, by: alice, at: .test(2)),
            try factory.addTags(["blue"], to: item, by: alice, at: .test(3)),
            try factory.removeTags(["red"], observedIn: item, by: alice, at: .test(4)),
        ]
    }

    /// `count` creates by alice, one item each, stamped one apart from `first`.
    private func creates(_ count: Int, by factory: inout OpFactory, from first: UInt64) throws -> [VerifiedOp] {
        try (0..<count).map { index in
            try factory.create(
                by: alice, fields: [(name: "n", value: JSONText.string("\(index)"))], tags: [],
                at: .test(first + UInt64(index)))
        }
    }

    @Test("ops get consecutive local sequences and the item reflects them", arguments: StoreKind.allCases)
    func appliesInOrder(kind: StoreKind) throws {
        let store = try kind.make()
        let ops = try history()
        let result = try store.commit(batch(ops))
        #expect(result.applied.map(\.sequence) == [1, 2, 3, 4])
        #expect(result.rejected.isEmpty && result.pending.isEmpty && result.duplicates.isEmpty)
        let item = try #require(try store.item(ops[0].body.itemID))
        #expect(item.tags == ["blue"])
        #expect(item.fields["title"]?.value == JSONText.string("second"))
        #expect(try store.highestSequence() == 4)
        #expect(try store.highestHLC() == .test(4))
        #expect(try store.ops(after: 1, limit: 2).map(\.op.id) == [ops[1].id, ops[2].id])
        #expect(try store.op(ops[3].id)?.sequence == 4)
    }

    @Test(
        "many items are read at once: each known id once with the state item(_:) gives, unknown ids left out, past 500 ids too",
        arguments: StoreKind.allCases)
    func readsManyItems(kind: StoreKind) throws {
        let store = try kind.make()
        var factory = OpFactory(seed: 11)
        let creates = try self.creates(1_203, by: &factory, from: 1)
        _ = try store.commit(batch(creates))
        let unknown = try factory.create(by: alice, fields: [], tags: [], at: .test(5_000)).body.itemID
        let ids = Set(creates.map(\.body.itemID)).union([unknown])
        let found = try store.items(ids)
        #expect(found.count == 1_203)
        #expect(found[unknown] == nil)
        for op in creates.enumerated().filter({ $0.offset.isMultiple(of: 97) }).map(\.element) {
            #expect(found[op.body.itemID]?.digest == (try store.item(op.body.itemID))?.digest)
        }
        #expect(try store.items([]).isEmpty)
    }

    @Test("committing the same ops again changes nothing", arguments: StoreKind.allCases)
    func idempotent(kind: StoreKind) throws {
        let store = try kind.make()
        let ops = try history()
        _ = try store.commit(batch(ops))
        let before = try StoreFingerprint(store)
        let again = try store.commit(batch(ops + ops, from: bob))
        #expect(again.applied.isEmpty)
        #expect(again.duplicates.count == 8)
        #expect(again.custody.isEmpty)
        #expect(try StoreFingerprint(store) == before)
    }

    @Test(
        "a fault anywhere in a commit leaves the store exactly as before",
        arguments: StoreKind.allCases, [CommitFaultPoint.afterOp(0), .afterOp(1), .afterOp(2), .beforeCustody]
    )
    func crashAtomicity(kind: StoreKind, point: CommitFaultPoint) throws {
        let armed = ArmedFault(at: point)
        let store = try kind.make(fault: { try armed.check($0) })
        let ops = try history()
        _ = try store.commit(batch([ops[0]]))
        let before = try StoreFingerprint(store)
        armed.arm()
        #expect(throws: LiaisonError.self) { try store.commit(batch(Array(ops.dropFirst()))) }
        #expect(armed.fired)
        #expect(try StoreFingerprint(store) == before)
        armed.disarm()
        let retry = try store.commit(batch(Array(ops.dropFirst())))
        #expect(retry.applied.map(\.sequence) == [2, 3, 4])
    }

    @Test(
        "in one batch past the 500 ids read ahead at once: ops before their create wait and apply with it, a repeat of an op the batch applied is a duplicate, stored ops are duplicates",
        arguments: StoreKind.allCases)
    func oneLargeBatchJudgesEachOpOnce(kind: StoreKind) throws {
        let store = try kind.make()
        var factory = OpFactory(seed: 23)
        let creates = try self.creates(600, by: &factory, from: 10)
        _ = try store.commit(batch(Array(creates[..<300])))
        let ops = try history()
        let result = try store.commit(
            batch(Array(ops.dropFirst()) + [ops[0], ops[1]] + creates, from: bob))
        // The three that came before their create are reported waiting, and applied with it.
        #expect(result.pending == ops.dropFirst().map(\.id))
        #expect(result.applied.count == 4 + 300)
        #expect(Set(result.duplicates) == Set([ops[1].id] + creates[..<300].map(\.id)))
        #expect(result.duplicates.count == 301)
        let reference = try ops.dropFirst().reduce(into: ItemState(create: ops[0])) { state, op in try state.apply(op) }
        #expect(try store.item(ops[0].body.itemID)?.digest == reference.digest)
        #expect(try store.highestSequence() == 604)
        #expect(try store.items(Set(creates.map(\.body.itemID))).count == 600)
    }

    @Test(
        "in one batch, a redacted copy of a new op then its full copy: the full copy fills the value in, in the op and the item",
        arguments: StoreKind.allCases)
    func redactedThenFullCopyInOneBatch(kind: StoreKind) throws {
        let store = try kind.make()
        let create = try history()[0]
        let redacted = try create.redacting(["title"])
        let result = try store.commit(batch([redacted, create], from: bob))
        #expect(result.applied.map(\.id) == [create.id])
        #expect(result.duplicates == [create.id])
        #expect(try store.op(create.id)?.op.openings["title"] != nil)
        #expect(try store.item(create.body.itemID)?.fields["title"]?.value == JSONText.string("first"))
    }

    @Test("ops that arrive before their item's create wait, then apply in arrival order", arguments: StoreKind.allCases)
    func pendingUntilCreate(kind: StoreKind) throws {
        let store = try kind.make()
        let ops = try history()
        let early = try store.commit(batch(Array(ops.dropFirst().reversed()), from: bob))
        #expect(early.pending.count == 3)
        #expect(early.applied.isEmpty)
        #expect(try store.item(ops[0].body.itemID) == nil)
        #expect(try store.highestSequence() == 0)
        let repeated = try store.commit(batch([ops[1]], from: bob))
        #expect(repeated.duplicates == [ops[1].id])
        let created = try store.commit(batch([ops[0]], from: bob))
        #expect(created.applied.count == 4)
        let reference = try ops.dropFirst().reduce(into: ItemState(create: ops[0])) { state, op in try state.apply(op) }
        #expect(try store.item(ops[0].body.itemID)?.digest == reference.digest)
        #expect(try store.highestSequence() == 4)
    }

    @Test(
        "an op held for its item's markings waits durably, through a change that does not release the item to its author, and applies with the one that does",
        arguments: StoreKind.allCases)
    func heldUntilMarkingsRelease(kind: StoreKind) throws {
        let store = try kind.make()
        let carol = TestNode.carol
        let partners = threePartners
        var factory = OpFactory(seed: 11)
        let orcon = { (names: [String]) in Markings(classification: "SECRET", releasableTo: names, orcon: true) }
        let create = try factory.create(by: alice, markings: orcon(["bob"]), writePolicy: .annotations, at: .test(1))
        var item = try ItemState(create: create)
        let reclassified = try factory.changeMarkings(of: item, to: orcon(["bob", "EAST"]), by: alice, at: .test(2))
        try item.apply(reclassified)
        let toCarol = try factory.changeMarkings(of: item, to: orcon(["bob", "carol"]), by: alice, at: .test(3))
        try item.apply(toCarol)
        let note = try factory.addTags(["seen"], to: item, by: carol, at: .test(4))
        _ = try store.commit(batch([create], from: alice))

        var early = batch([note], from: carol)
        early.held = [note.id]
        let held = try store.commit(early)
        #expect(held.held == [note.id] && held.applied.isEmpty)
        #expect(try store.op(note.id) == nil)
        #expect(try store.pendingCount(from: carol.nodeID) == 1)
        #expect(held.custody.first?.opIDs == [note.id], "custody does not record the held op")

        // A change that releases the item to a group carol is not in: the op keeps waiting.
        var first = batch([reclassified], from: alice)
        first.partners = partners
        let still = try store.commit(first)
        #expect(still.applied.map(\.id) == [reclassified.id])
        #expect(try store.pendingCount(from: carol.nodeID) == 1)

        var second = batch([toCarol], from: alice)
        second.partners = partners
        let released = try store.commit(second)
        #expect(released.applied.map(\.id) == [toCarol.id, note.id])
        #expect(try store.pendingCount(from: carol.nodeID) == 0)
        #expect(try store.op(note.id)?.receivedFrom == carol.nodeID)
        #expect(try store.item(item.id)?.tags == ["seen"])
    }

    @Test(
        "ops that waited for their create apply with it only when the markings entitle their author, and a change of markings among them entitles those before it",
        arguments: StoreKind.allCases)
    func waitingOpsJudgedAtCreate(kind: StoreKind) throws {
        let store = try kind.make()
        let carol = TestNode.carol
        let partners = threePartners
        var factory = OpFactory(seed: 12)
        let releasable = { (names: [String]) in Markings(classification: "SECRET", releasableTo: names) }
        let create = try factory.create(
            by: alice, markings: releasable(["bob"]), writePolicy: .annotations, at: .test(1))
        var item = try ItemState(create: create)
        let bobNote = try factory.addTags(["bob"], to: item, by: bob, at: .test(2))
        try item.apply(bobNote)
        let carolNote = try factory.addTags(["carol"], to: item, by: carol, at: .test(3))
        try item.apply(carolNote)
        let toCarol = try factory.changeMarkings(of: item, to: releasable(["bob", "carol"]), by: alice, at: .test(4))

        // Both notes come before the create: they wait. Carol was never released the item
        // under its create's markings, so hers may not apply with it (before, it did).
        var early = batch([bobNote, carolNote], from: bob)
        early.partners = partners
        #expect(try store.commit(early).pending == [bobNote.id, carolNote.id])
        var created = batch([create], from: alice)
        created.partners = partners
        #expect(try store.commit(created).applied.map(\.id) == [create.id, bobNote.id])
        #expect(try store.op(carolNote.id) == nil, "an annotation by a partner not entitled applied")
        #expect(try store.pendingCount(from: bob.nodeID) == 1)
        var change = batch([toCarol], from: alice)
        change.partners = partners
        #expect(try store.commit(change).applied.map(\.id) == [toCarol.id, carolNote.id])
        #expect(try store.item(item.id)?.tags == ["bob", "carol"])

        // The same ops on another store, the change of markings waiting too, after carol's
        // note: the change entitles the note in the commit that brings the create.
        let other = try kind.make()
        var all = batch([carolNote, toCarol], from: bob)
        all.partners = partners
        _ = try other.commit(all)
        var createdThere = batch([create], from: alice)
        createdThere.partners = partners
        #expect(try other.commit(createdThere).applied.map(\.id) == [create.id, toCarol.id, carolNote.id])
        #expect(try other.pendingCount(from: bob.nodeID) == 0)
    }

    @Test(
        "waiting ops are judged by every change of markings that applies: an older change applied after a newer one, one applied with the create before a held op of the same batch, and a forked create",
        arguments: StoreKind.allCases)
    func waitingOpsSeeEveryMarkings(kind: StoreKind) throws {
        let carol = TestNode.carol
        let partners = threePartners
        let releasable = { (names: [String]) in Markings(classification: "SECRET", releasableTo: names) }
        var factory = OpFactory(seed: 13)
        let create = try factory.create(
            by: alice, markings: releasable(["bob"]), writePolicy: .annotations, at: .test(1))
        var item = try ItemState(create: create)
        let toCarol = try factory.changeMarkings(of: item, to: releasable(["bob", "carol"]), by: alice, at: .test(2))
        try item.apply(toCarol)
        let note = try factory.addTags(["carol"], to: item, by: carol, at: .test(3))
        try item.apply(note)
        let narrowed = try factory.changeMarkings(of: item, to: releasable(["bob"]), by: alice, at: .test(4))

        // The narrowing, then the change releasing the item to carol (older), then her note,
        // all before the create: the older change's markings entitle her though the item
        // ends with the newer ones.
        let first = try kind.make()
        var early = batch([narrowed, toCarol, note], from: bob)
        early.partners = partners
        _ = try first.commit(early)
        var created = batch([create], from: alice)
        created.partners = partners
        #expect(Set(try first.commit(created).applied.map(\.id)) == [create.id, narrowed.id, toCarol.id, note.id])
        #expect(try first.pendingCount(from: bob.nodeID) == 0)

        // The change waits; the create comes with carol's note, held by the receiver's
        // admission (it had not seen the change): the change applies with the create and the
        // note with it, in the same commit.
        let second = try kind.make()
        var change = batch([toCarol], from: bob)
        change.partners = partners
        _ = try second.commit(change)
        var both = batch([create, note], from: alice)
        both.held = [note.id]
        both.partners = partners
        #expect(try second.commit(both).applied.map(\.id) == [create.id, toCarol.id, note.id])
        #expect(try second.pendingCount(from: alice.nodeID) == 0)

        // A forked create (same item id, other markings) that releases the item to carol:
        // her note, held under the first create's markings, applies with it.
        var forks = (OpFactory(seed: 14), OpFactory(seed: 14))
        let plain = try forks.0.create(
            by: alice, markings: releasable(["bob"]), writePolicy: .annotations, at: .test(1))
        let fork = try forks.1.create(
            by: alice, markings: releasable(["bob", "carol"]), writePolicy: .annotations, at: .test(1))
        try #require(plain.body.itemID == fork.body.itemID && plain.id != fork.id)
        let forkedNote = try factory.addTags(["carol"], to: try ItemState(create: fork), by: carol, at: .test(3))
        let third = try kind.make()
        var plainFirst = batch([plain], from: alice)
        plainFirst.partners = partners
        _ = try third.commit(plainFirst)
        var held = batch([forkedNote], from: carol)
        held.held = [forkedNote.id]
        held.partners = partners
        _ = try third.commit(held)
        #expect(try third.pendingCount(from: carol.nodeID) == 1)
        var forked = batch([fork], from: bob)
        forked.partners = partners
        #expect(try third.commit(forked).applied.map(\.id) == [fork.id, forkedNote.id])
        #expect(try third.pendingCount(from: carol.nodeID) == 0)
    }

    @Test(
        "an op that waited for its create and that the item refuses whoever writes it is refused with the create, not held",
        arguments: StoreKind.allCases)
    func waitingNonWriterRefused(kind: StoreKind) throws {
        let store = try kind.make()
        let carol = TestNode.carol
        let partners = threePartners
        var factory = OpFactory(seed: 15)
        let create = try factory.create(
            by: alice, markings: Markings(classification: "SECRET", releasableTo: ["bob"]), at: .test(1))
        let item = try ItemState(create: create)
        // carol, not entitled, and the item lets only its originator write.
        let write = try factory.addTags(["carol"], to: item, by: carol, at: .test(2))
        var early = batch([write], from: carol)
        early.partners = partners
        _ = try store.commit(early)
        var created = batch([create], from: alice)
        created.partners = partners
        let result = try store.commit(created)
        #expect(result.rejected.map(\.id) == [write.id])
        #expect(result.rejected.first?.reason == .notWriter)
        #expect(try store.pendingCount(from: carol.nodeID) == 0)
    }

    @Test("an op the item refuses is not stored and is recorded as rejected", arguments: StoreKind.allCases)
    func rejectedOpsAreAudited(kind: StoreKind) throws {
        let store = try kind.make()
        let ops = try history()
        _ = try store.commit(batch([ops[0]]))
        let item = try #require(try store.item(ops[0].body.itemID))
        let forged = try OpFactory(seed: 9).delete(item, by: bob, at: .test(9))
        let result = try store.commit(batch([forged], from: bob))
        #expect(result.rejected.map(\.id) == [forged.id])
        #expect(result.rejected.first?.reason == .notOriginator(kind: "delete"))
        #expect(try store.op(forged.id) == nil)
        #expect(try store.item(item.id)?.tombstone == nil)
        let entry = try #require(result.custody.last)
        #expect(entry.kind == .opsRejected)
        #expect(entry.peer == bob.nodeID.text)
        #expect(entry.opIDs == [forged.id])
        #expect(try store.verifyCustody() == .intact(entries: 2))
    }

    @Test(
        "the highest stamp counts only ops the log took in: not a refused op, one waiting for its create or a copy",
        arguments: StoreKind.allCases)
    func highestStampCountsOnlyStoredOps(kind: StoreKind) throws {
        let store = try kind.make()
        let ops = try history()
        _ = try store.commit(batch([ops[0], ops[1]], from: alice))
        #expect(try store.highestHLC() == .test(2))
        let item = try #require(try store.item(ops[0].body.itemID))
        // A delete by a partner that may not delete (refused), an op of an item not held yet
        // (waiting) and a copy of a held op, each stamped after everything in the log: a
        // clock that resumes after the log's highest stamp must not take in any of them.
        var factory = OpFactory(seed: 13)
        let refused = try factory.delete(item, by: bob, at: .test(9))
        let otherCreate = try factory.create(by: bob, at: .test(10))
        let waiting = try factory.addTags(["late"], to: try ItemState(create: otherCreate), by: bob, at: .test(11))
        let result = try store.commit(batch([refused, waiting, ops[1]], from: bob))
        #expect(result.rejected.map(\.id) == [refused.id])
        #expect(result.pending == [waiting.id])
        #expect(try store.highestHLC() == .test(2))
        // The waiting op counts once the log takes it in.
        _ = try store.commit(batch([otherCreate], from: bob))
        #expect(try store.highestHLC() == .test(11))
    }

    @Test(
        "a forked create (a second create for one item id) is kept and folded: in any order, the least create defines the item",
        arguments: StoreKind.allCases)
    func forkedCreatesConverge(kind: StoreKind) throws {
        // The same seed draws the same nonce, so both creates name one item.
        var first = OpFactory(seed: 77)
        var second = OpFactory(seed: 77)
        let least = try first.create(
            by: alice, collection: "reports", fields: [(name: "title", value: JSONText.string("a"))], at: .test(1))
        let fork = try second.create(
            by: alice, collection: "indicators", fields: [(name: "title", value: JSONText.string("b"))], at: .test(2))
        #expect(least.body.itemID == fork.body.itemID && least.id != fork.id)
        let later = try first.setFields(
            [(name: "score", value: JSONText.number(5))], of: try ItemState(create: least), by: alice, at: .test(3))
        let expected = try #require(ItemState.fold([least, later]))
        for order in [[least, later, fork], [fork, least, later], [fork, later, least], [later, fork, least]] {
            let store = try kind.make()
            var forked = [OpID]()
            for op in order { forked += try store.commit(batch([op], from: bob)).forkedCreates }
            let item = try #require(try store.item(least.body.itemID))
            #expect(item.collection == "reports", "order \(order.map(\.body.change.kindName))")
            #expect(item.digest == expected.digest)
            #expect(forked.count == 1, "the second create to arrive is the fork")
            #expect(try store.op(least.id) != nil && store.op(fork.id) != nil, "both creates are kept (the proof)")
        }
    }

    @Test("a full copy of an op held redacted fills in the value", arguments: StoreKind.allCases)
    func redactedCopyUpgrades(kind: StoreKind) throws {
        let store = try kind.make()
        let ops = try history()
        let redacted = try ops[0].redacting(["title"])
        _ = try store.commit(batch([redacted], from: bob))
        #expect(try store.item(ops[0].body.itemID)?.fields["title"]?.isRedacted == true)
        let digest = try store.item(ops[0].body.itemID)?.digest
        let result = try store.commit(batch([ops[0]], from: bob))
        #expect(result.duplicates == [ops[0].id])
        let item = try #require(try store.item(ops[0].body.itemID))
        #expect(item.fields["title"]?.value == JSONText.string("first"))
        #expect(item.digest == digest)
        #expect(try store.op(ops[0].id)?.op.redactedFields == [])
    }

    @Test("checkpoints only move forward", arguments: StoreKind.allCases)
    func checkpointsNeverGoBack(kind: StoreKind) throws {
        let store = try kind.make()
        #expect(try store.checkpoint(link: "alice->bob") == 0)
        try store.advanceCheckpoint(link: "alice->bob", to: 10)
        try store.advanceCheckpoint(link: "alice->bob", to: 4)
        #expect(try store.checkpoint(link: "alice->bob") == 10)
        try store.advanceCheckpoint(link: "alice->bob", to: 11)
        #expect(try store.checkpoint(link: "alice->bob") == 11)
        #expect(try store.checkpoint(link: "alice->carol") == 0)
    }

    @Test("list filters by collection and tag and hides tombstones unless asked", arguments: StoreKind.allCases)
    func listing(kind: StoreKind) throws {
        let store = try kind.make()
        var factory = OpFactory(seed: 3)
        let a = try factory.create(by: alice, collection: "reports", tags: ["red"], at: .test(1))
        let b = try factory.create(by: alice, collection: "indicators", tags: ["red", "blue"], at: .test(2))
        let c = try factory.create(by: alice, collection: "reports", at: .test(3))
        let deleteC = try factory.delete(try ItemState(create: c), by: alice, at: .test(4))
        _ = try store.commit(batch([a, b, c, deleteC]))
        #expect(try store.items(ItemQuery()).map(\.id) == [b.body.itemID, a.body.itemID])
        #expect(try store.items(ItemQuery(collection: "reports")).map(\.id) == [a.body.itemID])
        #expect(try store.items(ItemQuery(tag: "blue")).map(\.id) == [b.body.itemID])
        #expect(
            try store.items(ItemQuery(collection: "reports", includeWithdrawn: true)).map(\.id) == [
                c.body.itemID, a.body.itemID,
            ])
        #expect(try store.items(ItemQuery(limit: 1)).count == 1)
    }
}

/// A fault that fires once at one commit point while armed.
final class ArmedFault: Sendable {
    private let point: CommitFaultPoint
    private let state = Mutex<(armed: Bool, fired: Bool)>((false, false))

    init(at point: CommitFaultPoint) { self.point = point }

    func arm() { state.withLock { $0.armed = true } }
    func disarm() { state.withLock { $0.armed = false } }
    var fired: Bool { state.withLock { $0.fired } }

    func check(_ reached: CommitFaultPoint) throws {
        try state.withLock { current in
            if current.armed && reached == point {
                current.fired = true
                throw InjectedFault()
            }
        }
    }
}
