import Foundation
import LiaisonCore
import LiaisonStore
import LiaisonTestSupport
import Testing

/// Rebuilding items without a quarantined partner's ops (DESIGN §6, I4).
@Suite("Store rebuilds")
struct StoreRebuildTests {
    /// Alice's item X (annotations allowed) annotated by bob at 5 and retitled by alice at 6,
    /// and bob's own item Y at 7. Returns the ops and the two item ids.
    private func history(_ store: any Store) throws -> (ops: [VerifiedOp], x: ItemID, y: ItemID) {
        var factory = OpFactory(seed: 41)
        let create = try factory.create(
            by: .alice, fields: [(name: "title", value: JSONText.string("first"))], writePolicy: .annotations,
            at: .test(1))
        let x = try ItemState(create: create)
        let note = try factory.setFields(
            [(name: "note", value: JSONText.string("planted"))], of: x, by: .bob, at: .test(5))
        let retitle = try factory.setFields(
            [(name: "title", value: JSONText.string("second"))], of: x, by: .alice, at: .test(6))
        let own = try factory.create(by: .bob, at: .test(7))
        let ops = [create, note, retitle, own]
        _ = try store.commit(CommitBatch(ops: ops, source: .local, timeMillis: 1_700_000_000_000))
        return (ops, x.id, own.body.itemID)
    }

    @Test(
        "leaving out a partner's ops since T rebuilds its annotations away, removes its items, keeps the ops in the log, and audits them",
        arguments: StoreKind.allCases)
    func leavesOut(kind: StoreKind) throws {
        let store = try kind.make()
        let (ops, x, y) = try history(store)
        let bob = TestNode.bob.nodeID
        #expect(try store.items(authoredBy: bob, since: .test(4)) == [x, y])
        #expect(try store.items(authoredBy: bob, since: .test(8)).isEmpty)
        let logBefore = try store.ops(after: 0, limit: 100)

        let leftOut: (VerifiedOp) -> Bool = { $0.body.author == bob && $0.body.hlc >= .test(4) }
        let result = try store.rebuild(
            items: [x, y],
            excluding: leftOut,
            listing: leftOut,
            custody: CustodyEvent(kind: .partnerQuarantined, peer: "bob", detail: "test"),
            metadata: (MetadataKey.containment, Data("quarantined".utf8)),
            timeMillis: 1_700_000_001_000
        )
        #expect(result.changed == [x, y])
        #expect(result.removed == [y])
        #expect(Set(result.listed) == [ops[1].id, ops[3].id])
        #expect(
            try store.metadata(MetadataKey.containment) == Data("quarantined".utf8), "the state was not saved with it")
        let item = try #require(try store.item(x))
        #expect(item.fields["note"] == nil, "bob's annotation survived")
        #expect(item.fields["title"]?.value == JSONText.string("second"), "alice's later op was lost")
        #expect(try store.item(y) == nil)
        // The log keeps every op; x's moved to its end (in their order, under new
        // sequences) so that links read them again; removed y's stayed where they were.
        let logAfter = try store.ops(after: 0, limit: 100)
        #expect(result.relogged == [x])
        #expect(Set(logAfter.map(\.op.id)) == Set(logBefore.map(\.op.id)), "an op left the log")
        #expect(logAfter.map(\.op.id) == [ops[3].id, ops[0].id, ops[1].id, ops[2].id])
        #expect(logAfter.map(\.op) == [ops[3], ops[0], ops[1], ops[2]], "an op's bytes changed")
        let oldEnd = logBefore.last!.sequence
        #expect(try store.ops(after: oldEnd, limit: 100).map(\.op.id) == [ops[0].id, ops[1].id, ops[2].id])
        #expect(try store.highestSequence() == oldEnd + 3)
        #expect(try store.op(ops[1].id)?.sequence == oldEnd + 2)
        let entry = try #require(try store.custody(from: 1, limit: 100).last)
        #expect(entry.kind == .partnerQuarantined && Set(entry.opIDs) == [ops[1].id, ops[3].id])
        guard case .intact = try store.verifyCustody() else {
            Issue.record("custody chain broken by the rebuild")
            return
        }
    }

    @Test(
        "a rebuild that changes nothing moves nothing, and sequences a rebuild moved are never handed out again",
        arguments: StoreKind.allCases)
    func relogSequences(kind: StoreKind) throws {
        let store = try kind.make()
        let (ops, x, y) = try history(store)
        let carols: (VerifiedOp) -> Bool = { $0.body.author == TestNode.carol.nodeID }
        let unchanged = try store.rebuild(
            items: [x, y], excluding: carols, listing: carols, custody: CustodyEvent(kind: .partnerQuarantined),
            metadata: nil, timeMillis: 1)
        #expect(unchanged.changed.isEmpty && unchanged.relogged.isEmpty)
        #expect(try store.highestSequence() == 4)
        // Leaving out bob's own item y moves nothing (it is removed); leaving out his note on
        // x moves x's three ops, the last of which held the log's highest sequence before.
        let bob = TestNode.bob.nodeID
        let bobs: (VerifiedOp) -> Bool = { $0.body.author == bob }
        _ = try store.rebuild(
            items: [x, y], excluding: bobs, listing: bobs, custody: CustodyEvent(kind: .partnerQuarantined),
            metadata: nil, timeMillis: 2)
        #expect(try store.highestSequence() == 7)
        // Releasing bob puts his ops back: x (holding the log's end) and y move again, above
        // every sequence handed out before, and a new op lands after them.
        let released = try store.rebuild(
            items: [x, y], excluding: { _ in false }, listing: bobs, custody: CustodyEvent(kind: .partnerReleased),
            metadata: nil, timeMillis: 3)
        #expect(released.relogged == [x, y])
        #expect(Set(try store.ops(after: 7, limit: 10).map(\.op.id)) == Set(ops.map(\.id)))
        #expect(try store.ops(after: 7, limit: 10).map(\.sequence) == [8, 9, 10, 11])
        var factory = OpFactory(seed: 42)
        let later = try factory.create(by: .alice, at: .test(9))
        let committed = try store.commit(CommitBatch(ops: [later], source: .local, timeMillis: 4))
        #expect(committed.applied.map(\.sequence) == [12], "a new op reused a sequence")
    }

    @Test("rebuilding with nothing left out restores every item exactly", arguments: StoreKind.allCases)
    func restores(kind: StoreKind) throws {
        let store = try kind.make()
        let (_, x, y) = try history(store)
        let before = try [x, y].map { try store.item($0) }
        let bob = TestNode.bob.nodeID
        let bobs: (VerifiedOp) -> Bool = { $0.body.author == bob }
        _ = try store.rebuild(
            items: [x, y], excluding: bobs, listing: bobs, custody: CustodyEvent(kind: .partnerQuarantined),
            metadata: nil, timeMillis: 1)
        let back = try store.rebuild(
            items: [x, y], excluding: { _ in false }, listing: bobs, custody: CustodyEvent(kind: .partnerReleased),
            metadata: nil, timeMillis: 2)
        #expect(back.changed == [x, y])
        #expect(back.listed.count == 2, "the release's entry does not list bob's ops put back")
        #expect(Set(try store.custody(from: 1, limit: 100).last?.opIDs ?? []) == Set(back.listed))
        #expect(try [x, y].map { try store.item($0) } == before)
        #expect(try store.item(x)?.digest == before[0]?.digest)
    }

    @Test("node metadata round-trips and survives reopening the SQLite store")
    func metadata() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        do {
            let store = try SQLiteStore(path: path, create: true)
            #expect(try store.metadata(MetadataKey.containment) == nil)
            try store.setMetadata(MetadataKey.containment, Data("one".utf8))
            try store.setMetadata(MetadataKey.containment, Data("two".utf8))
        }
        let reopened = try SQLiteStore(path: path, create: false)
        #expect(try reopened.metadata(MetadataKey.containment) == Data("two".utf8))
    }
}

@Suite("Store pending drops")
struct StorePendingDropTests {
    @Test(
        "a rebuild drops the waiting ops it leaves out, lists them, and a create arriving later applies none of them",
        arguments: StoreKind.allCases)
    func drops(kind: StoreKind) throws {
        let store = try kind.make()
        var factory = OpFactory(seed: 5)
        let create = try factory.create(by: .alice, writePolicy: .annotations, at: .test(1))
        let item = try ItemState(create: create)
        let bobs = try factory.setFields([(name: "b", value: JSONText.string("b"))], of: item, by: .bob, at: .test(5))
        let carols = try factory.setFields(
            [(name: "c", value: JSONText.string("c"))], of: item, by: .carol, at: .test(6))
        _ = try store.commit(CommitBatch(ops: [bobs, carols], source: .peer(TestNode.carol.nodeID), timeMillis: 1))
        let isBobs: (VerifiedOp) -> Bool = { $0.body.author == TestNode.bob.nodeID }
        let dropped = try store.rebuild(
            items: [], excluding: isBobs, listing: isBobs, custody: CustodyEvent(kind: .partnerQuarantined),
            metadata: nil, timeMillis: 1)
        #expect(dropped.droppedPending == 1 && dropped.listed == [bobs.id])
        _ = try store.commit(CommitBatch(ops: [create], source: .peer(TestNode.alice.nodeID), timeMillis: 2))
        let after = try #require(try store.item(item.id))
        #expect(after.fields["b"] == nil && after.fields["c"] != nil)
    }
    @Test(
        "a release that puts back the change of markings an annotation waited for applies the annotation in its transaction",
        arguments: StoreKind.allCases)
    func releaseAppliesWaiting(kind: StoreKind) throws {
        let store = try kind.make()
        let (alice, carol) = (TestNode.alice, TestNode.carol)
        let partners = Dictionary(
            uniqueKeysWithValues: [alice, TestNode.bob, carol].map { ($0.nodeID, $0.recipient()) })
        var factory = OpFactory(seed: 43)
        let releasable = { (names: [String]) in Markings(classification: "SECRET", releasableTo: names) }
        let create = try factory.create(
            by: alice, markings: releasable(["bob"]), writePolicy: .annotations, at: .test(1))
        var item = try ItemState(create: create)
        let toCarol = try factory.changeMarkings(of: item, to: releasable(["bob", "carol"]), by: alice, at: .test(2))
        try item.apply(toCarol)
        let note = try factory.addTags(["seen"], to: item, by: carol, at: .test(3))
        var first = CommitBatch(
            ops: [create, toCarol], source: .peer(alice.nodeID), timeMillis: 1_700_000_000_000)
        first.partners = partners
        _ = try store.commit(first)

        // Alice quarantined since 2: her change releasing the item to carol is left out, so
        // carol's note is held when it comes.
        let leftOut: (VerifiedOp) -> Bool = { $0.body.author == alice.nodeID && $0.body.hlc >= .test(2) }
        _ = try store.rebuild(
            items: [item.id], excluding: leftOut, listing: leftOut,
            custody: CustodyEvent(kind: .partnerQuarantined, peer: "alice", detail: "test"), metadata: nil,
            timeMillis: 1_700_000_001_000, purgingFor: nil, admitting: partners)
        let early = CommitBatch(
            ops: [note], source: .peer(carol.nodeID), timeMillis: 1_700_000_002_000, held: [note.id],
            partners: partners)
        _ = try store.commit(early)
        #expect(try store.pendingCount(from: carol.nodeID) == 1)
        #expect(try store.op(note.id) == nil)

        // The release puts the change back and, in the same transaction, applies the note.
        let released = try store.rebuild(
            items: [item.id], excluding: { _ in false }, listing: leftOut,
            custody: CustodyEvent(kind: .partnerReleased, peer: "alice", detail: "its ops count again"),
            metadata: nil, timeMillis: 1_700_000_003_000, purgingFor: nil, admitting: partners)
        #expect(released.applied == [note.id], "the held annotation still waits after the release")
        #expect(released.relogged == [item.id])
        #expect(try store.pendingCount(from: carol.nodeID) == 0)
        #expect(try store.op(note.id)?.receivedFrom == carol.nodeID)
        #expect(try store.item(item.id)?.tags == ["seen"])
        var expected = item
        try expected.apply(note)
        #expect(try store.item(item.id)?.digest == expected.digest)
        #expect(try store.highestHLC() == .test(3))
        #expect(released.custody?.opIDs == [toCarol.id, note.id])
        #expect(released.custody?.detail.contains("1 waiting op(s) applied") == true)
        #expect(try store.verifyCustody() == .intact(entries: 4))
    }
}
