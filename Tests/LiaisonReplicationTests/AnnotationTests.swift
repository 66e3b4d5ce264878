import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonStore
import LiaisonTestSupport
import Testing

/// Annotations, narrowing and the notice of narrowing (docs/merge-rules.md, "Annotations
/// and narrowing"): who may annotate, what an annotation's releasability is, and what a
/// partner the item is narrowed away from does with its own annotations.
@Suite("Annotations and narrowing")
struct AnnotationTests {
    static let ladder = ClassificationLadder.standard
    static let now = HLCTimestamp.testEpochMillis + 10_000

    static func markings(_ names: String...) -> Markings {
        Markings(classification: "SECRET", releasableTo: names)
    }

    static func admit(
        _ op: VerifiedOp,
        item: ItemState?,
        earlierMarkings: [Markings] = [],
        from sender: TestNode = .alice,
        to me: TestNode = .bob
    ) -> StrikeReason? {
        Admission.check(
            op,
            item: item,
            earlierMarkings: earlierMarkings,
            from: sender.nodeID,
            senderFilter: .passAll,
            me: me.recipient(),
            authors: Dictionary(
                uniqueKeysWithValues: [TestNode.alice, .bob, .carol, .mallory].map { ($0.nodeID, $0.recipient()) }),
            ladder: ladder,
            clock: HybridLogicalClock(maxSkewMillis: 60_000),
            nowMillis: now
        )
    }

    /// A node's replication logic over a memory store, linked to every other test node.
    static func node(_ me: TestNode) throws -> (logic: ReplicationStore, store: MemoryStore) {
        let store = MemoryStore()
        let others: [TestNode] = [.alice, .bob, .carol].filter { $0.name != me.name }
        let logic = try ReplicationStore(
            me: me.recipient(),
            store: store,
            ladder: ladder,
            partners: [TestNode.alice, .bob, .carol].map { $0.recipient() },
            neighbours: others.map {
                ReplicationNeighbour(partner: $0.recipient(), outbound: .passAll, inbound: .passAll)
            },
            maxClockSkewMillis: 60_000,
            nowMillis: now
        )
        return (logic, store)
    }

    // MARK: - Who may annotate

    @Test("only partners entitled to an item annotate it (put time); the originator always writes")
    func onlyEntitledPartnersAnnotate() throws {
        var factory = OpFactory(seed: 61)
        let create = try factory.create(
            by: .alice, markings: Self.markings("bob", "EAST"), writePolicy: .annotations, at: .test(1))
        let item = try ItemState(create: create)
        let note = OpChange.setFields([])
        #expect(throws: Never.self) { try item.permits(writer: TestNode.bob.recipient(), change: note).get() }
        #expect(throws: Never.self) {
            try item.permits(writer: TestNode.carol.recipient(groups: ["EAST"]), change: note).get()
        }
        #expect(throws: ItemRejection.notEntitled) {
            try item.permits(writer: TestNode.carol.recipient(), change: note).get()
        }
        #expect(throws: Never.self) { try item.permits(writer: TestNode.alice.recipient(), change: note).get() }
        // The write policy still comes first.
        let closed = try ItemState(
            create: try factory.create(by: .alice, markings: Self.markings("bob"), at: .test(2)))
        #expect(throws: ItemRejection.notWriter) {
            try closed.permits(writer: TestNode.bob.recipient(), change: note).get()
        }
    }

    @Test(
        "an annotation by a partner the item was never released to is refused at admission, against the sender"
    )
    func annotationByOutsiderIsRefused() throws {
        var factory = OpFactory(seed: 62)
        let create = try factory.create(
            by: .alice, markings: Self.markings("bob"), writePolicy: .annotations, at: .test(1))
        let item = try ItemState(create: create)
        let byCarol = try factory.addTags(["seen"], to: item, by: .carol, at: .test(2))
        let strike = Self.admit(byCarol, item: item, earlierMarkings: [create.body.change.markings!])
        #expect(strike == .refusedByItem(.notEntitled))
        #expect(strike?.chargedToAuthor == false, "the sender had to refuse it too")
        let byBob = try factory.addTags(["seen"], to: item, by: .bob, at: .test(3))
        #expect(Self.admit(byBob, item: item, from: .carol, to: .alice) == nil)
    }

    @Test("an annotation written before a narrowing its author had not seen is admitted on the earlier markings")
    func annotationFromBeforeANarrowingIsAdmitted() throws {
        var factory = OpFactory(seed: 63)
        let create = try factory.create(
            by: .alice, markings: Self.markings("bob", "carol"), writePolicy: .annotations, at: .test(1))
        var item = try ItemState(create: create)
        let byCarol = try factory.addTags(["seen"], to: item, by: .carol, at: .test(3))
        let narrowing = try factory.changeMarkings(of: item, to: Self.markings("bob"), by: .alice, at: .test(2))
        try item.apply(narrowing)

        let withoutHistory = try #require(Self.admit(byCarol, item: item))
        #expect(withoutHistory == .refusedByItem(.notEntitled))
        #expect(Admission.needsEarlierMarkings(withoutHistory), "the caller would not look the history up")
        let history = [create, narrowing].compactMap(\.body.change.markings)
        #expect(Self.admit(byCarol, item: item, earlierMarkings: history) == nil)
    }

    // MARK: - The notice of narrowing

    @Test(
        "a narrowing goes to the partner it narrows the item away from (content-free, signed by the originator); nothing else of the item does"
    )
    func narrowingGoesToThoseItRemoves() throws {
        var factory = OpFactory(seed: 64)
        let create = try factory.create(
            by: .alice, markings: Self.markings("bob", "carol"),
            fields: [(name: "title", value: JSONText.string("Harbour"))], writePolicy: .annotations, at: .test(1))
        var item = try ItemState(create: create)
        let edit = try factory.setFields(
            [(name: "title", value: JSONText.string("Harbour, later"))], of: item, by: .alice, at: .test(2))
        try item.apply(edit)
        let narrowing = try factory.changeMarkings(of: item, to: Self.markings("carol"), by: .alice, at: .test(3))
        try item.apply(narrowing)
        let history = [create, narrowing].compactMap(\.body.change.markings)

        let batch = try LinkOutbox.prepare(
            [
                OutboxCandidate(sequence: 1, op: create, item: item.summary, receivedFrom: nil),
                OutboxCandidate(sequence: 2, op: edit, item: item.summary, receivedFrom: nil),
                OutboxCandidate(
                    sequence: 3, op: narrowing, item: item.summary, receivedFrom: nil, earlierMarkings: history),
            ],
            throughSeq: 3,
            sender: TestNode.alice.nodeID,
            recipient: TestNode.bob.recipient(),
            filter: .passAll,
            ladder: Self.ladder
        )
        #expect(batch.sent == [narrowing.id])
        #expect(batch.withheld.map(\.id) == [create.id, edit.id])

        // A partner the item was never released to learns nothing, not even the narrowing.
        let never = try LinkOutbox.prepare(
            [
                OutboxCandidate(
                    sequence: 3, op: narrowing, item: item.summary, receivedFrom: nil, earlierMarkings: history)
            ],
            throughSeq: 3,
            sender: TestNode.alice.nodeID,
            recipient: TestNode.mallory.recipient(),
            filter: .passAll,
            ladder: Self.ladder
        )
        #expect(never.sent.isEmpty)

        // Bob admits it on the markings he held; without them it would be a strike.
        let bobsItem = try ItemState.build(create, [edit, narrowing])
        #expect(Self.admit(narrowing, item: bobsItem) == .notEntitled(.notReleasable))
        #expect(Self.admit(narrowing, item: bobsItem, earlierMarkings: history) == nil)
    }

    @Test("the notice keeps the other rules: not passed on by a non-originator of an ORCON item")
    func noticeKeepsOrcon() throws {
        var factory = OpFactory(seed: 65)
        let create = try factory.create(
            by: .alice, markings: Markings(classification: "SECRET", releasableTo: ["bob", "carol"], orcon: true),
            at: .test(1))
        var item = try ItemState(create: create)
        let narrowing = try factory.changeMarkings(
            of: item, to: Markings(classification: "SECRET", releasableTo: ["carol"], orcon: true), by: .alice,
            at: .test(2))
        try item.apply(narrowing)
        let decision = Eligibility.decide(
            op: narrowing,
            item: item.summary,
            earlierMarkings: [create, narrowing].compactMap(\.body.change.markings),
            sender: TestNode.carol.nodeID,
            recipient: TestNode.bob.recipient(),
            filter: .passAll,
            ladder: Self.ladder
        )
        #expect(decision == .withhold(.notReleasable))
    }

    // MARK: - A partner narrowed away passes on its own annotations

    @Test(
        "a partner the item was narrowed away from learns it, writes no more annotations, and passes on those it wrote under the markings now in force (seed 901486)"
    )
    func narrowedAnnotatorPassesItsAnnotationsOn() throws {
        var factory = OpFactory(seed: 66)
        let (alice, aliceStore) = try Self.node(.alice)
        var (bob, bobStore) = try Self.node(.bob)
        var (carol, carolStore) = try Self.node(.carol)

        // Alice releases the item to bob alone; bob annotates it.
        let create = try factory.create(
            by: .alice, markings: Self.markings("bob"), writePolicy: .annotations, at: .test(1))
        _ = try aliceStore.commit(CommitBatch(ops: [create], source: .local, timeMillis: 0))
        let first = try alice.loadBatch(for: "bob", after: 0, limit: 100, nowMillis: Self.now)
        #expect(
            try bob.receive(ops: first.ops, through: first.throughSeq, from: "alice", nowMillis: Self.now).refused == 0)
        let bobsItem = try #require(try bobStore.item(create.body.itemID))
        #expect(throws: Never.self) {
            try bobsItem.permits(writer: TestNode.bob.recipient(), change: .setFields([])).get()
        }
        let note = try factory.setFields(
            [(name: "note", value: JSONText.string("seen at the harbour"))], of: bobsItem, by: .bob, at: .test(2))
        _ = try bobStore.commit(CommitBatch(ops: [note], source: .local, timeMillis: 0))

        // Alice narrows the item to carol: bob gets the narrowing, and nothing else.
        var aliceItem = try #require(try aliceStore.item(create.body.itemID))
        let narrowing = try factory.changeMarkings(of: aliceItem, to: Self.markings("carol"), by: .alice, at: .test(3))
        _ = try aliceStore.commit(CommitBatch(ops: [narrowing], source: .local, timeMillis: 0))
        aliceItem = try #require(try aliceStore.item(create.body.itemID))
        let notice = try alice.loadBatch(for: "bob", after: first.throughSeq, limit: 100, nowMillis: Self.now)
        #expect(notice.sent == [narrowing.id])
        let received = try bob.receive(ops: notice.ops, through: notice.throughSeq, from: "alice", nowMillis: Self.now)
        #expect(received.refused == 0, "bob struck alice for the notice")
        let narrowed = try #require(try bobStore.item(create.body.itemID))
        #expect(narrowed.markings == aliceItem.markings)

        // Bob may not annotate any more.
        #expect(throws: ItemRejection.notEntitled) {
            try narrowed.permits(writer: TestNode.bob.recipient(), change: .setFields([])).get()
        }
        // His annotation goes to carol, entitled under the markings now in force, and carol
        // admits it: bob wrote it while entitled.
        let toCarol = try bob.loadBatch(for: "carol", after: 0, limit: 100, nowMillis: Self.now)
        #expect(toCarol.sent.contains(note.id), "bob withheld his own annotation from carol")
        let atCarol = try carol.receive(ops: toCarol.ops, through: toCarol.throughSeq, from: "bob", nowMillis: Self.now)
        #expect(atCarol.refused == 0)
        #expect(try carolStore.op(note.id) != nil)
        #expect(try carolStore.item(create.body.itemID)?.fields["note"] != nil)
    }

    @Test(
        "an op that left its sender before a narrowing reached it, arriving after the narrowing, is refused without a strike"
    )
    func opOvertakenByANarrowingIsNoStrike() throws {
        var factory = OpFactory(seed: 67)
        var (bob, bobStore) = try Self.node(.bob)
        let create = try factory.create(
            by: .alice, markings: Self.markings("bob", "carol"), writePolicy: .annotations, at: .test(1))
        var item = try ItemState(create: create)
        let edit = try factory.setFields(
            [(name: "title", value: JSONText.string("later"))], of: item, by: .alice, at: .test(2))
        let narrowing = try factory.changeMarkings(of: item, to: Self.markings("carol"), by: .alice, at: .test(3))
        try item.apply(narrowing)
        #expect(try bob.receive(ops: [create.encoded], through: 1, from: "alice", nowMillis: Self.now).strikes.isEmpty)
        #expect(
            try bob.receive(ops: [narrowing.encoded], through: 3, from: "alice", nowMillis: Self.now).strikes.isEmpty)
        // The edit was on its way (through carol, who had not seen the narrowing yet).
        let late = try bob.receive(ops: [edit.encoded], through: 1, from: "carol", nowMillis: Self.now)
        #expect(late.strikes.isEmpty, "bob struck carol for a race: \(late.strikes)")
        #expect(late.refused == 1)
        #expect(try bobStore.op(edit.id) == nil, "bob took content of an item narrowed away from him")

        // An item never released to bob is still a strike against the sender.
        let secret = try factory.create(by: .alice, markings: Self.markings("carol"), at: .test(4))
        let strikes = try bob.receive(ops: [secret.encoded], through: 2, from: "carol", nowMillis: Self.now).strikes
        #expect(strikes == [TestNode.carol.nodeID: [.notReleasable: 1]])
    }

    // MARK: - Held annotations

    /// Alice's ORCON item, first released to bob alone, then to bob and carol; carol writes a
    /// tag once the change reaches her. Bob holds the create only.
    static func orconAnnotationBeforeItsChange(
        _ factory: inout OpFactory, bob: inout ReplicationStore
    ) throws -> (change: VerifiedOp, annotation: VerifiedOp) {
        let orcon = { (names: [String]) in Markings(classification: "SECRET", releasableTo: names, orcon: true) }
        let create = try factory.create(
            by: .alice, markings: orcon(["bob"]), writePolicy: .annotations, at: .test(1))
        var item = try ItemState(create: create)
        let change = try factory.changeMarkings(of: item, to: orcon(["bob", "carol"]), by: .alice, at: .test(2))
        try item.apply(change)
        let annotation = try factory.addTags(["seen"], to: item, by: .carol, at: .test(3))
        #expect(try bob.receive(ops: [create.encoded], through: 1, from: "alice", nowMillis: Self.now).refused == 0)
        return (change, annotation)
    }

    @Test(
        "an ORCON annotation that overtakes the change of markings entitling its author is held, not refused, and applied when the change arrives (seed 325488)"
    )
    func orconAnnotationIsHeldForItsMarkings() throws {
        var factory = OpFactory(seed: 68)
        var (bob, bobStore) = try Self.node(.bob)
        let (change, annotation) = try Self.orconAnnotationBeforeItsChange(&factory, bob: &bob)
        let id = annotation.body.itemID

        // Only carol may pass her annotation on, and she sends it before alice's change
        // reaches bob. Bob acknowledges it: it must not be lost.
        let early = try bob.receive(ops: [annotation.encoded], through: 1, from: "carol", nowMillis: Self.now)
        #expect(early.strikes.isEmpty)
        #expect(early.refused == 0, "bob refused carol's annotation, which nobody would send him again")
        #expect(early.accepted == 1)
        #expect(try bobStore.op(annotation.id) == nil, "applied before bob knew carol was entitled")
        #expect(try bobStore.item(id)?.tags.isEmpty == true)
        #expect(try bobStore.pendingCount(from: TestNode.carol.nodeID) == 1)
        // Carol sends it again (a new session): still held once.
        #expect(try bob.receive(ops: [annotation.encoded], through: 1, from: "carol", nowMillis: Self.now).refused == 0)
        #expect(try bobStore.pendingCount(from: TestNode.carol.nodeID) == 1)

        // The change arrives: the held annotation is judged again and applied.
        let later = try bob.receive(ops: [change.encoded], through: 2, from: "alice", nowMillis: Self.now)
        #expect(later.strikes.isEmpty && later.refused == 0)
        #expect(try bobStore.op(annotation.id) != nil)
        #expect(try bobStore.item(id)?.tags == ["seen"])
        #expect(try bobStore.pendingCount(from: TestNode.carol.nodeID) == 0)
    }

    @Test(
        "an annotation that a forwarder sends ahead of the change of markings entitling its author is held without a strike and applied when the change arrives (seed 438557)"
    )
    func forwardedAnnotationIsHeldForItsMarkings() throws {
        var factory = OpFactory(seed: 71)
        var (bob, bobStore) = try Self.node(.bob)
        let create = try factory.create(
            by: .alice, markings: Self.markings("bob"), writePolicy: .annotations, at: .test(1))
        var item = try ItemState(create: create)
        let change = try factory.changeMarkings(of: item, to: Self.markings("bob", "carol"), by: .alice, at: .test(2))
        try item.apply(change)
        let annotation = try factory.addTags(["seen"], to: item, by: .carol, at: .test(3))
        #expect(try bob.receive(ops: [create.encoded], through: 1, from: "alice", nowMillis: Self.now).refused == 0)
        let id = annotation.body.itemID

        // Alice forwards carol's annotation before her change reaches bob (another batch).
        let early = try bob.receive(ops: [annotation.encoded], through: 2, from: "alice", nowMillis: Self.now)
        #expect(early.strikes.isEmpty, "an honest forwarder was struck: \(early.strikes)")
        #expect(early.refused == 0 && early.accepted == 1)
        #expect(try bobStore.op(annotation.id) == nil, "applied before bob knew carol was entitled")
        #expect(try bobStore.pendingCount(from: TestNode.alice.nodeID) == 1)

        let later = try bob.receive(ops: [change.encoded], through: 3, from: "alice", nowMillis: Self.now)
        #expect(later.strikes.isEmpty && later.refused == 0)
        #expect(try bobStore.op(annotation.id) != nil)
        #expect(try bobStore.item(id)?.tags == ["seen"])
        #expect(try bobStore.pendingCount(from: TestNode.alice.nodeID) == 0)
    }

    @Test("a held annotation counts against its sender's bound of waiting ops; past it, a flood strike")
    func heldAnnotationsAreBounded() throws {
        var factory = OpFactory(seed: 69)
        var (bob, bobStore) = try Self.node(.bob)
        bob.maxPendingPerPartner = 1
        let (_, annotation) = try Self.orconAnnotationBeforeItsChange(&factory, bob: &bob)
        let (_, second) = try Self.orconAnnotationBeforeItsChange(&factory, bob: &bob)
        let outcome = try bob.receive(
            ops: [annotation.encoded, second.encoded], through: 2, from: "carol", nowMillis: Self.now)
        #expect(outcome.accepted == 1)
        #expect(outcome.strikes == [TestNode.carol.nodeID: [.flood: 1]])
        #expect(try bobStore.pendingCount(from: TestNode.carol.nodeID) == 1)
    }

    // MARK: - Markings that differ by a quarantine

    @Test(
        "an op refused as not releasable because this node leaves out its item's quarantined originator's change of markings is no strike against the honest sender (seed 320643)"
    )
    func quarantinedOriginatorsMarkingsAreNoStrike() throws {
        var factory = OpFactory(seed: 70)
        let (bob, bobStore) = try Self.node(.bob)
        var (carol, carolStore) = try Self.node(.carol)
        // Alice's item, released to bob; later (after the start of carol's quarantine of alice,
        // before bob's) alice releases it to carol too.
        let create = try factory.create(by: .alice, markings: Self.markings("bob"), at: .test(1))
        var item = try ItemState(create: create)
        let broadening = try factory.changeMarkings(
            of: item, to: Self.markings("bob", "carol"), by: .alice, at: .test(5))
        try item.apply(broadening)
        _ = try bobStore.commit(
            CommitBatch(ops: [create, broadening], source: .peer(TestNode.alice.nodeID), timeMillis: 0))
        _ = try carol.quarantine(
            "alice", author: TestNode.alice.nodeID,
            Quarantine(
                sinceMillis: HLCTimestamp.test(3).physicalMillis, atMillis: Self.now, reason: "test", automatic: false),
            containment: ContainmentState(), nowMillis: Self.now)

        // Bob, who has not quarantined alice, sends carol the item with its history.
        let batch = try bob.loadBatch(for: "carol", after: 0, limit: 100, nowMillis: Self.now)
        #expect(Set(batch.sent) == [create.id, broadening.id])
        let outcome = try carol.receive(ops: batch.ops, through: batch.throughSeq, from: "bob", nowMillis: Self.now)
        #expect(
            outcome.strikes.isEmpty, "carol struck bob for markings only her quarantine changed: \(outcome.strikes)")
        #expect(outcome.refused == 2)
        #expect(try carolStore.item(create.body.itemID) == nil)
        #expect(try carolStore.op(create.id) == nil)

        // An item of a partner carol has not quarantined, not releasable to her, is a strike.
        let bobs = try factory.create(by: .bob, markings: Self.markings("alice"), at: .test(6))
        let struck = try carol.receive(ops: [bobs.encoded], through: 3, from: "bob", nowMillis: Self.now)
        #expect(struck.strikes == [TestNode.bob.nodeID: [.notReleasable: 1]])
    }
}
