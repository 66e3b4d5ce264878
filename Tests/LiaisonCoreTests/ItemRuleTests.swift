import Foundation
import LiaisonCore
import LiaisonTestSupport
import Testing

/// The rules of the item CRDT (DESIGN §4).
@Suite("Item rules")
struct ItemRuleTests {
    static func item(
        _ factory: inout OpFactory,
        policy: WritePolicy = .originatorOnly,
        fields: [(name: String, value: Data)] = [(name: "title", value: JSONText.string("first"))],
        tags: [String] = ["red"]
    ) throws -> (create: VerifiedOp, state: ItemState) {
        let create = try factory.create(by: .alice, fields: fields, tags: tags, writePolicy: policy, at: .test(1))
        return (create, try ItemState(create: create))
    }

    enum OriginatorOnlyChange: String, CaseIterable, Sendable {
        case delete
        case changeMarkings = "change-markings"
        case recall
        case partialRecall = "partial recall"
    }

    @Test(
        "only the originator may delete, change markings or recall, whatever the write policy",
        arguments: OriginatorOnlyChange.allCases,
        [WritePolicy.originatorOnly, .annotations]
    )
    func originatorOnlyChanges(_ change: OriginatorOnlyChange, policy: WritePolicy) throws {
        var factory = OpFactory(seed: 61)
        let (_, state) = try Self.item(&factory, policy: policy)
        let op: VerifiedOp
        let kind: String
        switch change {
        case .delete:
            op = try factory.delete(state, by: .bob, at: .test(5))
            kind = "delete"
        case .changeMarkings:
            op = try factory.changeMarkings(
                of: state,
                to: Markings(classification: "UNCLASSIFIED", releasableTo: ["ALL"]),
                by: .bob,
                at: .test(5)
            )
            kind = "change-markings"
        case .recall:
            op = try factory.recall(state, by: .bob, at: .test(5))
            kind = "recall"
        case .partialRecall:
            op = try factory.recall(state, from: ["carol"], by: .bob, at: .test(5))
            kind = "recall"
        }
        #expect(throws: ItemRejection.notOriginator(kind: kind)) {
            try state.permits(author: TestNode.bob.nodeID, change: op.body.change).get()
        }
        var after = state
        #expect(throws: ItemRejection.notOriginator(kind: kind)) { try after.apply(op) }
        #expect(after == state, "a rejected op changed the item")

        // The same change by the originator is accepted.
        let own = try factory.change(state, op.body.change, by: .alice, at: .test(5))
        var accepted = state
        #expect(try accepted.apply(own))
    }

    enum WriterChange: String, CaseIterable, Sendable {
        case setFields = "set-fields"
        case addTags = "add-tags"
        case removeTags = "remove-tags"
    }

    @Test(
        "a non-originator writes fields and tags only when the item allows annotations",
        arguments: WriterChange.allCases
    )
    func annotations(_ change: WriterChange) throws {
        for policy in [WritePolicy.originatorOnly, .annotations] {
            var factory = OpFactory(seed: 62)
            let (_, state) = try Self.item(&factory, policy: policy)
            let op: VerifiedOp
            switch change {
            case .setFields:
                op = try factory.setFields(
                    [(name: "note", value: JSONText.string("seen"))],
                    of: state,
                    by: .bob,
                    at: .test(5)
                )
            case .addTags: op = try factory.addTags(["green"], to: state, by: .bob, at: .test(5))
            case .removeTags: op = try factory.removeTags(["red"], observedIn: state, by: .bob, at: .test(5))
            }
            var after = state
            if policy == .annotations {
                #expect(try after.apply(op), "\(policy)")
                switch change {
                case .setFields: #expect(after.fields["note"]?.value == JSONText.string("seen"))
                case .addTags: #expect(after.tags == ["green", "red"])
                case .removeTags: #expect(after.tags.isEmpty)
                }
            } else {
                #expect(throws: ItemRejection.notWriter) { try after.apply(op) }
                #expect(after == state)
            }
        }
    }

    @Test("a concurrent add survives a remove that did not observe it")
    func addWins() throws {
        var factory = OpFactory(seed: 63)
        let (create, initial) = try Self.item(&factory, policy: .annotations, tags: ["red"])
        // Bob removes "red" as he saw it (the create's instance); carol adds it again concurrently.
        let remove = try factory.removeTags(["red"], observedIn: initial, by: .bob, at: .test(5))
        let add = try factory.addTags(["red"], to: initial, by: .carol, at: .test(3))
        for order in [[remove, add], [add, remove]] {
            let state = try ItemState.build(create, order)
            #expect(state.tags == ["red"])
            #expect(state.liveInstances(of: "red") == [add.id])
        }
        // A remove that observed both instances removes the tag, whatever the stamps.
        let both = try ItemState.build(create, [add])
        let removeBoth = try factory.removeTags(["red"], observedIn: both, by: .bob, at: .test(2))
        for order in [[remove, add, removeBoth], [removeBoth, add], [add, removeBoth]] {
            let state = try ItemState.build(create, order)
            #expect(state.tags.isEmpty)
            #expect(state.liveInstances(of: "red").isEmpty)
        }
        // Removing a tag that was never added is harmless.
        let removeUnknown = try factory.removeTags(["blue"], observedIn: initial, by: .alice, at: .test(6))
        #expect(try ItemState.build(create, [removeUnknown]).tags == ["red"])
    }

    @Test("delete drops fields for good, whatever arrives before or after it; tags stay for link filters")
    func deleteIsFinal() throws {
        var factory = OpFactory(seed: 64)
        let (create, initial) = try Self.item(&factory, policy: .annotations)
        let delete = try factory.delete(initial, by: .alice, at: .test(5))
        let laterField = try factory.setFields(
            [(name: "title", value: JSONText.string("revived"))],
            of: initial,
            by: .alice,
            at: .test(9)
        )
        let laterTag = try factory.addTags(["green"], to: initial, by: .bob, at: .test(9))
        let earlierField = try factory.setFields(
            [(name: "score", value: JSONText.number(4))],
            of: initial,
            by: .alice,
            at: .test(3)
        )

        let deleted = try ItemState.build(create, [delete])
        #expect(deleted.isWithdrawn)
        #expect(deleted.tombstone == delete.stamp)
        #expect(deleted.fields.isEmpty)
        #expect(deleted.tags == ["red"], "a tombstone keeps its tags for link filters to judge")

        for order in [
            [delete, laterField, laterTag, earlierField], [earlierField, laterTag, laterField, delete],
            [laterField, delete, laterTag],
        ] {
            let state = try ItemState.build(create, order)
            #expect(state.fields.isEmpty, "fields came back")
            #expect(state.tags == ["green", "red"], "the tombstone's tags depend on the order ops arrived in")
            #expect(state.isWithdrawn)
        }
        // Applying the create again does not bring its fields back either.
        var again = deleted
        try again.apply(create)
        #expect(again.fields.isEmpty && again.tags == ["red"])
        // A join with a replica that never saw the delete stays deleted.
        let alive = try ItemState.build(create, [laterField, laterTag])
        #expect(alive.merged(with: deleted).fields.isEmpty)
        #expect(deleted.merged(with: alive).tags == ["green", "red"])
        #expect(deleted.merged(with: alive).digest == alive.merged(with: deleted).digest)
    }

    @Test("a full recall withdraws like a delete; a partial recall only records its audience")
    func recalls() throws {
        var factory = OpFactory(seed: 65)
        let (create, initial) = try Self.item(&factory)
        let partial = try factory.recall(initial, from: ["carol"], by: .alice, at: .test(4))
        let full = try factory.recall(initial, by: .alice, at: .test(5))
        let partly = try ItemState.build(create, [partial])
        #expect(!partly.isWithdrawn)
        #expect(partly.recalledFrom == ["carol": partial.stamp])
        #expect(partly.fields["title"] != nil && partly.tags == ["red"])
        let recalled = try ItemState.build(create, [partial, full])
        #expect(recalled.isWithdrawn && recalled.recalledFromAll == full.stamp)
        #expect(recalled.fields.isEmpty && recalled.tags == ["red"])
    }

    @Test("fields are last-writer-wins by HLC, then author, then op id")
    func lastWriterWins() throws {
        var factory = OpFactory(seed: 66)
        let (create, initial) = try Self.item(&factory, policy: .annotations)
        let value = { (text: String) in [(name: "title", value: JSONText.string(text))] }

        // A later HLC wins, whatever the authors' order.
        let (low, high) =
            TestNode.alice.nodeID < TestNode.bob.nodeID
            ? (TestNode.alice, TestNode.bob) : (TestNode.bob, TestNode.alice)
        let lowLater = try factory.setFields(value("low-later"), of: initial, by: low, at: .test(5, logical: 1))
        let highEarlier = try factory.setFields(value("high-earlier"), of: initial, by: high, at: .test(5, logical: 0))
        for order in [[lowLater, highEarlier], [highEarlier, lowLater]] {
            #expect(try ItemState.build(create, order).fields["title"]?.value == JSONText.string("low-later"))
        }

        // Equal HLCs from two authors: the greater NodeID wins.
        let lowSame = try factory.setFields(value("low"), of: initial, by: low, at: .test(7))
        let highSame = try factory.setFields(value("high"), of: initial, by: high, at: .test(7))
        for order in [[lowSame, highSame], [highSame, lowSame]] {
            let state = try ItemState.build(create, order)
            #expect(state.fields["title"]?.value == JSONText.string("high"))
            #expect(state.fields["title"]?.stamp == highSame.stamp)
        }

        // Equal HLC and author: the greater op id wins.
        let one = try factory.setFields(value("one"), of: initial, by: .alice, at: .test(8))
        let two = try factory.setFields(value("two"), of: initial, by: .alice, at: .test(8))
        let winner = one.id > two.id ? "one" : "two"
        for order in [[one, two], [two, one]] {
            #expect(try ItemState.build(create, order).fields["title"]?.value == JSONText.string(winner))
        }

        // Fields are independent registers.
        let score = try factory.setFields(
            [(name: "score", value: JSONText.number(1))],
            of: initial,
            by: .carol,
            at: .test(2)
        )
        let state = try ItemState.build(create, [lowLater, score])
        #expect(state.fields["score"]?.value == JSONText.number(1))
        #expect(state.fields["title"]?.value == JSONText.string("low-later"))
        // An older write does not replace the create's value.
        let older = try factory.setFields(value("ancient"), of: initial, by: .alice, at: .test(0))
        #expect(try ItemState.build(create, [older]).fields["title"]?.value == JSONText.string("first"))
    }

    @Test("markings are last-writer-wins among the originator's changes")
    func markingsLastWriterWins() throws {
        var factory = OpFactory(seed: 67)
        let (create, initial) = try Self.item(&factory)
        let first = try factory.changeMarkings(
            of: initial,
            to: Markings(classification: "CONFIDENTIAL", releasableTo: ["ALL"]),
            by: .alice,
            at: .test(3)
        )
        let second = try factory.changeMarkings(
            of: initial,
            to: Markings(classification: "TOP SECRET"),
            by: .alice,
            at: .test(4)
        )
        for order in [[first, second], [second, first]] {
            let state = try ItemState.build(create, order)
            #expect(state.markings == Markings(classification: "TOP SECRET"))
            #expect(state.markingsStamp == second.stamp)
        }
    }

    @Test("ops of another item and a second, different create are refused")
    func wrongItem() throws {
        var factory = OpFactory(seed: 68)
        let (_, state) = try Self.item(&factory)
        let (otherCreate, other) = try Self.item(&factory)
        #expect(other.id != state.id)
        let foreign = try factory.addTags(["x"], to: other, by: .alice, at: .test(2))
        var copy = state
        #expect(throws: ItemRejection.wrongItem) { try copy.apply(foreign) }
        #expect(throws: ItemRejection.wrongItem) { try copy.apply(otherCreate) }
        #expect(copy == state)
        #expect(throws: ItemRejection.wrongItem) { try ItemState(create: foreign) }

        // The same nonce (so the same item id) in a different create op.
        var replay = OpFactory(seed: 68)
        let conflicting = try replay.create(by: .alice, collection: "elsewhere", at: .test(2))
        #expect(conflicting.body.itemID == state.id && conflicting.id != state.created.opID)
        #expect(throws: ItemRejection.conflictingCreate) { try copy.apply(conflicting) }
        #expect(copy == state)
    }

    @Test("an item state survives a JSON round trip with the same digest")
    func codableRoundTrip() throws {
        for seed: UInt64 in 0..<20 {
            let set = try RandomOpSet(seed: seed)
            let state = try ItemState.build(set.create, set.ops)
            let decoded = try JSONDecoder().decode(ItemState.self, from: JSONEncoder().encode(state))
            #expect(decoded == state, "seed \(seed)")
            #expect(decoded.digest == state.digest, "seed \(seed)")
        }
    }
}
