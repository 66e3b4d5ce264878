import Foundation
import LiaisonCore
import LiaisonStore
import LiaisonTestSupport
import Testing

/// Purge at the receiving partner (DESIGN §5.7, I5): in the transaction of the commit that
/// brings the recall or the narrowing, the item loses its values and its stored ops their
/// openings, with an `ops.purged` custody entry.
@Suite("Store purges")
struct StorePurgeTests {
    static let carol = TestNode.carol.recipient()
    static let time: Int64 = 1_700_000_000_000

    /// Alice's item REL TO bob and carol (annotations allowed), retitled by alice and
    /// annotated by carol; then narrowed to bob with a recall from carol.
    struct History {
        var factory = OpFactory(seed: 5)
        let create: VerifiedOp
        let retitle: VerifiedOp
        let note: VerifiedOp
        let narrowing: VerifiedOp
        let recall: VerifiedOp

        init() throws {
            create = try factory.create(
                by: .alice, markings: .test,
                fields: [
                    (name: "title", value: JSONText.string("first")), (name: "source", value: JSONText.string("s")),
                ],
                writePolicy: .annotations, at: .test(1))
            var item = try ItemState(create: create)
            retitle = try factory.setFields(
                [(name: "title", value: JSONText.string("second"))], of: item, by: .alice, at: .test(2))
            note = try factory.setFields(
                [(name: "note", value: JSONText.string("carol's"))], of: item, by: .carol, at: .test(3))
            try item.apply(retitle)
            try item.apply(note)
            narrowing = try factory.changeMarkings(
                of: item, to: Markings(classification: "SECRET", releasableTo: ["bob"]), by: .alice, at: .test(4))
            recall = try factory.recall(item, from: ["carol"], reason: "narrowed", by: .alice, at: .test(5))
        }

        var content: [VerifiedOp] { [create, retitle, note] }
    }

    private func commit(_ store: any Store, _ ops: [VerifiedOp], holder: Recipient? = carol) throws -> CommitResult {
        try store.commit(
            CommitBatch(ops: ops, source: .peer(TestNode.alice.nodeID), timeMillis: Self.time, holder: holder))
    }

    @Test(
        "a recall naming the holder purges the item and strips the log in the same commit; the digest and op ids stay",
        arguments: StoreKind.allCases)
    func recallPurges(kind: StoreKind) throws {
        let store = try kind.make()
        let history = try History()
        _ = try commit(store, history.content)
        let id = history.create.body.itemID
        let before = try #require(try store.item(id))
        #expect(before.fields["title"]?.value == JSONText.string("second"))

        let result = try commit(store, [history.narrowing, history.recall])
        #expect(result.purged[id] == PurgeCause(kind: .recalled, op: history.recall.id))
        let item = try #require(try store.item(id))
        #expect(item.fields["title"]?.value == nil && item.fields["source"]?.value == nil)
        #expect(item.fields["note"]?.value == JSONText.string("carol's"), "carol's own annotation was purged")
        var reference = try ItemState.build(history.create, [history.retitle, history.note])
        try reference.apply(history.narrowing)
        try reference.apply(history.recall)
        #expect(item.digest == reference.digest, "the purge changed the digest (I1)")
        // The summary a sender filters by follows: the recall is in force for carol.
        #expect(try store.itemSummaries([id]) == [id: item.summary])
        #expect(try store.itemSummaries([id])[id]?.recallInForce(for: TestNode.carol.recipient()) != nil)

        let log = try store.ops(ofItem: id)
        #expect(log.map(\.op.id) == history.content.map(\.id) + [history.narrowing.id, history.recall.id])
        for stored in log where stored.op.body.author == TestNode.alice.nodeID {
            #expect(stored.op.openings.isEmpty, "\(stored.op.body.change.kindName) kept its values")
            #expect(try OpVerifier().verify(stored.op.encoded).id == stored.op.id, "a stripped op no longer verifies")
        }
        #expect(log.first { $0.op.id == history.note.id }?.op.openings["note"] != nil)

        let entry = try #require(try store.custody(from: 1, limit: 100).last)
        #expect(entry.kind == .opsPurged)
        #expect(entry.peer == TestNode.alice.nodeID.text)
        #expect(entry.opIDs == [history.recall.id, history.create.id, history.retitle.id])
        #expect(entry.detail.contains(id.text) && entry.detail.contains("\"narrowed\""), "\(entry.detail)")
        #expect(entry.detail.contains("source, title"), "\(entry.detail)")
        #expect(result.custody.last == entry)
        guard case .intact = try store.verifyCustody() else {
            Issue.record("custody chain broken")
            return
        }
    }

    @Test("a narrowing alone purges a holder it no longer releases the item to", arguments: StoreKind.allCases)
    func narrowingPurges(kind: StoreKind) throws {
        let store = try kind.make()
        let history = try History()
        _ = try commit(store, history.content)
        let result = try commit(store, [history.narrowing])
        let id = history.create.body.itemID
        #expect(result.purged[id] == PurgeCause(kind: .narrowed, op: history.narrowing.id))
        #expect(try store.item(id)?.fields["title"]?.value == nil)
        #expect(
            try store.ops(ofItem: id).filter { $0.op.body.author == TestNode.alice.nodeID }.allSatisfy {
                $0.op.openings.isEmpty
            })
    }

    @Test(
        "content arriving after the purge (a forwarder that had not seen it) is stripped in its commit too",
        arguments: StoreKind.allCases)
    func laterContentStripped(kind: StoreKind) throws {
        let store = try kind.make()
        let history = try History()
        let id = history.create.body.itemID
        // The recall first, then the item's content (a create with values, a copy of an op
        // held stripped): neither brings values back.
        _ = try commit(store, [try history.create.redacting(["title", "source"])])
        _ = try commit(store, [history.narrowing, history.recall])
        let custody = try store.custody(from: 1, limit: 100).count
        let result = try commit(store, [history.create, history.retitle])
        #expect(result.purged[id]?.kind == .recalled)
        #expect(try store.item(id)?.fields.values.allSatisfy { $0.value == nil } == true)
        #expect(try store.ops(ofItem: id).allSatisfy { $0.op.openings.isEmpty })
        #expect(try store.custody(from: 1, limit: 100).last?.kind == .opsPurged)
        #expect(try store.custody(from: 1, limit: 100).count == custody + 2, "received, then purged")
        // Nothing left to drop: a further notice records no purge.
        let again = try commit(store, [history.recall])
        #expect(again.purged.isEmpty)
    }

    @Test("without a holder, or at a holder still entitled, nothing is purged", arguments: StoreKind.allCases)
    func noPurge(kind: StoreKind) throws {
        let history = try History()
        let id = history.create.body.itemID
        for holder in [nil, TestNode.bob.recipient()] {
            let store = try kind.make()
            let result = try commit(store, history.content + [history.narrowing, history.recall], holder: holder)
            #expect(result.purged.isEmpty)
            #expect(try store.item(id)?.fields["title"]?.value == JSONText.string("second"))
            #expect(try store.ops(ofItem: id).first?.op.openings.isEmpty == false)
            #expect(try store.custody(from: 1, limit: 100).allSatisfy { $0.kind != .opsPurged })
        }
    }

    @Test(
        "a rebuild with a holder purges an item it leaves not releasable to the holder", arguments: StoreKind.allCases)
    func rebuildPurges(kind: StoreKind) throws {
        let store = try kind.make()
        let history = try History()
        let id = history.create.body.itemID
        let factory = OpFactory(seed: 6)
        // Alice broadens to carol at 6 after narrowing at 4: carol holds the content again.
        var state = try ItemState.build(history.create, [history.narrowing])
        let broadening = try factory.changeMarkings(of: state, to: .test, by: .alice, at: .test(6))
        try state.apply(broadening)
        _ = try commit(store, history.content + [history.narrowing, broadening])
        #expect(try store.item(id)?.fields["title"]?.value == JSONText.string("second"))
        // Leaving out alice's ops since 6 (a quarantine) leaves the narrowing in force.
        let leftOut: (VerifiedOp) -> Bool = { $0.body.author == TestNode.alice.nodeID && $0.body.hlc >= .test(6) }
        let result = try store.rebuild(
            items: [id], excluding: leftOut, listing: leftOut,
            custody: CustodyEvent(kind: .partnerQuarantined, peer: "alice", detail: "test"), metadata: nil,
            timeMillis: Self.time, purgingFor: Self.carol, admitting: nil)
        #expect(result.purged[id]?.kind == .narrowed)
        #expect(try store.item(id)?.fields["title"]?.value == nil)
        #expect(try store.custody(from: 1, limit: 100).suffix(2).map(\.kind) == [.partnerQuarantined, .opsPurged])
    }
}
