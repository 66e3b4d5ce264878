import Foundation
import LiaisonCore
import LiaisonTestSupport
import Testing

/// Recall and narrowing (DESIGN §5.7): when a node must purge an item's content, what the
/// purge leaves, and what still goes to a partner recalled from.
@Suite("Purge and recall")
struct PurgeTests {
    /// Alice's item, SECRET, REL TO bob and carol, with a title alice wrote and a note bob
    /// wrote (annotations allowed).
    struct Fixture {
        var factory = OpFactory(seed: 77)
        let create: VerifiedOp
        let note: VerifiedOp
        var item: ItemState

        init() throws {
            create = try factory.create(
                by: .alice, fields: [(name: "title", value: JSONText.string("plan"))], writePolicy: .annotations,
                at: .test(1))
            let created = try ItemState(create: create)
            note = try factory.setFields(
                [(name: "note", value: JSONText.string("bob's"))], of: created, by: .bob, at: .test(2))
            item = try ItemState.build(create, [note])
        }

        mutating func apply(_ change: OpChange, at millis: UInt64) throws -> VerifiedOp {
            let op = try factory.change(item, change, by: .alice, at: .test(millis))
            try item.apply(op)
            return op
        }
    }

    static let bob = TestNode.bob.recipient()
    static let carol = TestNode.carol.recipient(groups: ["WEST"])

    @Test("the originator never purges; a partner the markings release keeps the content")
    func noCause() throws {
        var fixture = try Fixture()
        #expect(fixture.item.purgeCause(at: TestNode.alice.recipient()) == nil)
        #expect(fixture.item.purgeCause(at: Self.bob) == nil)
        _ = try fixture.apply(.recall(audience: [], reason: "gone"), at: 5)
        #expect(fixture.item.purgeCause(at: TestNode.alice.recipient()) == nil)
    }

    @Test(
        "a recall naming the node, one of its groups or ALL purges it; others keep the content",
        arguments: [["carol"], ["WEST"], ["ALL"]])
    func recalledByName(audience: [String]) throws {
        var fixture = try Fixture()
        let recall = try fixture.apply(.recall(audience: audience, reason: "leak"), at: 5)
        #expect(fixture.item.purgeCause(at: Self.carol) == PurgeCause(kind: .recalled, op: recall.id))
        #expect(fixture.item.recallInForce(for: Self.carol) == recall.stamp)
        if audience != ["ALL"] { #expect(fixture.item.purgeCause(at: Self.bob) == nil) }
        #expect(fixture.item.recallsInForce == audience)
    }

    @Test("markings that no longer release the item purge it, with the change of markings as the cause")
    func narrowed() throws {
        var fixture = try Fixture()
        let narrowing = try fixture.apply(
            .changeMarkings(Markings(classification: "SECRET", releasableTo: ["bob"])), at: 5)
        #expect(fixture.item.purgeCause(at: Self.carol) == PurgeCause(kind: .narrowed, op: narrowing.id))
        #expect(fixture.item.purgeCause(at: Self.bob) == nil)
    }

    @Test("a delete and a recall from everyone purge every holder but the originator")
    func withdrawn() throws {
        var deleted = try Fixture()
        let delete = try deleted.apply(.delete, at: 5)
        #expect(deleted.item.purgeCause(at: Self.bob) == PurgeCause(kind: .deleted, op: delete.id))
        var recalled = try Fixture()
        let recall = try recalled.apply(.recall(audience: [], reason: "gone"), at: 5)
        #expect(recalled.item.purgeCause(at: Self.bob) == PurgeCause(kind: .recalledFromAll, op: recall.id))
    }

    @Test("a later change of markings lifts a recall; an earlier one does not, whatever the order of arrival")
    func liftedByLaterMarkings() throws {
        let fixture = try Fixture()
        let recall = try fixture.factory.recall(fixture.item, from: ["carol"], by: .alice, at: .test(5))
        let later = try fixture.factory.changeMarkings(
            of: fixture.item, to: Markings(classification: "TOP SECRET", releasableTo: ["bob", "carol"]), by: .alice,
            at: .test(6))
        let earlier = try fixture.factory.changeMarkings(
            of: fixture.item, to: Markings(classification: "CONFIDENTIAL", releasableTo: ["bob", "carol"]),
            by: .alice, at: .test(4))
        for order in [[recall, earlier], [earlier, recall]] {
            var state = fixture.item
            for op in order { try state.apply(op) }
            #expect(state.purgeCause(at: Self.carol)?.kind == .recalled, "\(order.map(\.body.change.kindName))")
        }
        for order in [[recall, later], [later, recall]] {
            var state = fixture.item
            for op in order { try state.apply(op) }
            #expect(state.purgeCause(at: Self.carol) == nil, "\(order.map(\.body.change.kindName))")
            #expect(state.recallsInForce.isEmpty)
        }
    }

    @Test("purging drops the values others wrote, keeps the holder's own, the commitments and the digest")
    func purgingValues() throws {
        let fixture = try Fixture()
        let purged = fixture.item.purgingValues(keepingThoseOf: TestNode.bob.nodeID)
        #expect(purged.fields["title"]?.value == nil)
        #expect(purged.fields["title"]?.digest == fixture.item.fields["title"]?.digest)
        #expect(purged.fields["note"]?.value == JSONText.string("bob's"), "bob's own annotation was dropped")
        #expect(purged.digest == fixture.item.digest)
        let byCarol = fixture.item.purgingValues(keepingThoseOf: TestNode.carol.nodeID)
        #expect(byCarol.fields.values.allSatisfy { $0.value == nil })
        #expect(byCarol.digest == fixture.item.digest)
        #expect(byCarol.purgingValues(keepingThoseOf: TestNode.carol.nodeID) == byCarol)
    }

    // MARK: - Eligibility

    func decide(
        _ op: VerifiedOp, _ item: ItemState, earlier: [Markings] = [], sender: TestNode = .alice,
        to recipient: Recipient = carol, filter: LinkFilter = .passAll
    ) -> Eligibility {
        Eligibility.decide(
            op: op, item: item.summary, earlierMarkings: earlier, sender: sender.nodeID, recipient: recipient,
            filter: filter, ladder: .standard)
    }

    @Test("after a recall naming a partner still in REL TO, its content goes there no more; notices still go")
    func recalledPartnerGetsNoContent() throws {
        var fixture = try Fixture()
        let recall = try fixture.apply(.recall(audience: ["carol"], reason: "leak"), at: 5)
        let retitle = try fixture.factory.setFields(
            [(name: "title", value: JSONText.string("new"))], of: fixture.item, by: .alice, at: .test(6))
        try fixture.item.apply(retitle)
        let tag = try fixture.factory.addTags(["red"], to: fixture.item, by: .alice, at: .test(7))
        try fixture.item.apply(tag)
        for op in [fixture.create, fixture.note, retitle, tag] {
            #expect(decide(op, fixture.item) == .withhold(.recalled), "\(op.body.change.kindName)")
            #expect(decide(op, fixture.item, to: Self.bob).sends, "\(op.body.change.kindName) to bob")
        }
        #expect(decide(recall, fixture.item) == .send)
        #expect(decide(recall, fixture.item, to: Self.bob) == .send, "entitled partners converge on the recall")
        let delete = try fixture.factory.delete(fixture.item, by: .alice, at: .test(8))
        #expect(decide(delete, fixture.item) == .send)
    }

    @Test("a narrowing's recall reaches the partners it removes, as far as the sender knows them, and no one else")
    func narrowingRecall() throws {
        var fixture = try Fixture()
        let before = fixture.item.markings
        _ = try fixture.apply(.changeMarkings(Markings(classification: "SECRET", releasableTo: ["bob"])), at: 5)
        let recall = try fixture.apply(.recall(audience: ["carol"], reason: "narrowed"), at: 6)
        #expect(decide(recall, fixture.item, earlier: [before]) == .send)
        #expect(
            decide(recall, fixture.item) == .withhold(.notReleasable),
            "sent to a partner no markings the sender knows released the item to")
        let mallory = TestNode.mallory.recipient()
        #expect(decide(recall, fixture.item, earlier: [before], to: mallory) == .withhold(.notReleasable))
        // The other rules still hold: ORCON, the link's ceiling and collections.
        #expect(
            decide(recall, fixture.item, earlier: [before], filter: LinkFilter(maxClassification: "CONFIDENTIAL"))
                == .withhold(.aboveClassificationCeiling))
        var orcon = try Fixture()
        let orconBefore = Markings(classification: "SECRET", releasableTo: ["bob", "carol"], orcon: true)
        _ = try orcon.apply(.changeMarkings(orconBefore), at: 4)
        _ = try orcon.apply(
            .changeMarkings(Markings(classification: "SECRET", releasableTo: ["bob"], orcon: true)), at: 5)
        let orconRecall = try orcon.apply(.recall(audience: ["carol"], reason: "narrowed"), at: 6)
        #expect(decide(orconRecall, orcon.item, earlier: [orconBefore], sender: .bob) == .withhold(.orcon))
        #expect(decide(orconRecall, orcon.item, earlier: [orconBefore]) == .send)
    }

    @Test("the receiver admits a recall naming it after a narrowing, and only one naming it")
    func admission() throws {
        var fixture = try Fixture()
        let before = fixture.item.markings
        let narrowing = try fixture.apply(
            .changeMarkings(Markings(classification: "SECRET", releasableTo: ["bob"])), at: 5)
        let recall = try fixture.apply(.recall(audience: ["carol"], reason: "narrowed"), at: 6)
        let other = try fixture.apply(.recall(audience: ["dave"], reason: "narrowed"), at: 7)
        func admit(_ op: VerifiedOp, earlier: [Markings]) -> StrikeReason? {
            Admission.check(
                op, item: fixture.item, earlierMarkings: earlier, from: TestNode.alice.nodeID,
                senderFilter: .passAll, me: Self.carol,
                authors: [TestNode.alice.nodeID: TestNode.alice.recipient(), TestNode.carol.nodeID: Self.carol],
                ladder: .standard,
                clock: HybridLogicalClock(maxSkewMillis: 60_000, last: .zero),
                nowMillis: HLCTimestamp.testEpochMillis + 10)
        }
        #expect(admit(narrowing, earlier: [before]) == nil)
        #expect(admit(recall, earlier: [before]) == nil)
        #expect(admit(recall, earlier: []) == .notEntitled(.notReleasable))
        #expect(admit(other, earlier: [before]) == .notEntitled(.notReleasable))
    }
}
