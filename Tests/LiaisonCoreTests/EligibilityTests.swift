import Foundation
import LiaisonCore
import LiaisonTestSupport
import Testing

/// I2 Need-to-know: what a sender may put on a link.
@Suite("Link eligibility")
struct EligibilityTests {
    enum Who: String, Sendable {
        case alice, bob, carol, mallory
        var node: TestNode {
            switch self {
            case .alice: .alice
            case .bob: .bob
            case .carol: .carol
            case .mallory: .mallory
            }
        }
    }

    /// One row: an item alice created, the op that carries it, and the link it would go over.
    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var classification = "SECRET"
        var releasableTo: [String] = ["bob"]
        var orcon = false
        var collection = "reports"
        var tags: [String] = []
        var openedFields = ["title", "summary", "score"]
        var alreadyRedacted: [String] = []
        var filter = LinkFilter.passAll
        var sender = Who.alice
        var recipient = Who.bob
        var recipientGroups: Set<String> = []
        var expected: Eligibility

        var testDescription: String { label }
    }

    static let cases: [Case] = [
        // Releasability.
        Case(label: "REL TO names the partner", releasableTo: ["bob"], expected: .send),
        Case(
            label: "REL TO names a group of the partner",
            releasableTo: ["FVEY"],
            recipientGroups: ["FVEY", "NATO"],
            expected: .send
        ),
        Case(label: "REL TO ALL", releasableTo: ["ALL"], expected: .send),
        Case(label: "REL TO another partner", releasableTo: ["carol"], expected: .withhold(.notReleasable)),
        Case(
            label: "REL TO another group",
            releasableTo: ["NATO"],
            recipientGroups: ["FVEY"],
            expected: .withhold(.notReleasable)
        ),
        Case(label: "REL TO nobody", releasableTo: [], expected: .withhold(.notReleasable)),
        Case(label: "REL TO matches names exactly", releasableTo: ["Bob"], expected: .withhold(.notReleasable)),
        Case(
            label: "the recipient is the originator",
            releasableTo: [],
            sender: .bob,
            recipient: .alice,
            expected: .send
        ),
        // ORCON.
        Case(label: "ORCON sent on by a non-originator", orcon: true, sender: .carol, expected: .withhold(.orcon)),
        Case(label: "ORCON sent by the originator", orcon: true, sender: .alice, expected: .send),
        Case(
            label: "releasability is checked before ORCON",
            releasableTo: ["carol"],
            orcon: true,
            sender: .carol,
            expected: .withhold(.notReleasable)
        ),
        Case(label: "not ORCON, sent on by a non-originator", sender: .carol, expected: .send),
        // Classification ceiling.
        Case(
            label: "above the ceiling",
            classification: "TOP SECRET",
            filter: LinkFilter(maxClassification: "SECRET"),
            expected: .withhold(.aboveClassificationCeiling)
        ),
        Case(
            label: "at the ceiling",
            classification: "SECRET",
            filter: LinkFilter(maxClassification: "SECRET"),
            expected: .send
        ),
        Case(
            label: "below the ceiling",
            classification: "UNCLASSIFIED",
            filter: LinkFilter(maxClassification: "SECRET"),
            expected: .send
        ),
        Case(label: "a level not on the ladder", classification: "COSMIC", expected: .withhold(.unknownClassification)),
        Case(
            label: "a level not on the ladder under a ceiling",
            classification: "COSMIC",
            filter: LinkFilter(maxClassification: "TOP SECRET"),
            expected: .withhold(.unknownClassification)
        ),
        Case(
            label: "levels are matched case-sensitively",
            classification: "secret",
            expected: .withhold(.unknownClassification)
        ),
        Case(
            label: "a ceiling not on the ladder fails closed",
            filter: LinkFilter(maxClassification: "ULTRA"),
            expected: .withhold(.aboveClassificationCeiling)
        ),
        // Collections.
        Case(label: "collection shared", filter: LinkFilter(collections: ["reports", "indicators"]), expected: .send),
        Case(
            label: "collection not shared",
            filter: LinkFilter(collections: ["indicators"]),
            expected: .withhold(.collectionNotShared)
        ),
        Case(
            label: "no collection shared",
            filter: LinkFilter(collections: []),
            expected: .withhold(.collectionNotShared)
        ),
        // Tags.
        Case(
            label: "required tag present",
            tags: ["tlp:amber", "red"],
            filter: LinkFilter(requiredTags: ["tlp:amber"]),
            expected: .send
        ),
        Case(
            label: "required tag missing",
            tags: ["red"],
            filter: LinkFilter(requiredTags: ["tlp:amber"]),
            expected: .withhold(.missingRequiredTag)
        ),
        Case(
            label: "one of two required tags missing",
            tags: ["tlp:amber"],
            filter: LinkFilter(requiredTags: ["tlp:amber", "shareable"]),
            expected: .withhold(.missingRequiredTag)
        ),
        Case(
            label: "excluded tag present",
            tags: ["draft", "red"],
            filter: LinkFilter(excludedTags: ["draft"]),
            expected: .withhold(.excludedTag)
        ),
        Case(label: "excluded tag absent", tags: ["red"], filter: LinkFilter(excludedTags: ["draft"]), expected: .send),
        // Redaction.
        Case(
            label: "redact two opened fields",
            filter: LinkFilter(redactFields: ["summary", "score"]),
            expected: .sendRedacted(fields: ["score", "summary"])
        ),
        Case(
            label: "redact names only fields the op opens",
            filter: LinkFilter(redactFields: ["summary", "elsewhere"]),
            expected: .sendRedacted(fields: ["summary"])
        ),
        Case(
            label: "redact a field the op does not carry",
            filter: LinkFilter(redactFields: ["elsewhere"]),
            expected: .send
        ),
        Case(
            label: "redact a field already redacted",
            alreadyRedacted: ["summary"],
            filter: LinkFilter(redactFields: ["summary"]),
            expected: .send
        ),
        Case(
            label: "redact one field already redacted and one opened",
            alreadyRedacted: ["summary"],
            filter: LinkFilter(redactFields: ["summary", "title"]),
            expected: .sendRedacted(fields: ["title"])
        ),
        Case(
            label: "redaction does not override a withholding",
            releasableTo: ["carol"],
            filter: LinkFilter(redactFields: ["summary"]),
            expected: .withhold(.notReleasable)
        ),
    ]

    @Test("eligibility decision", arguments: cases)
    func decide(_ row: Case) throws {
        var factory = OpFactory(seed: 51)
        let create = try factory.create(
            by: .alice,
            collection: row.collection,
            markings: Markings(classification: row.classification, releasableTo: row.releasableTo, orcon: row.orcon),
            fields: row.openedFields.map { (name: $0, value: JSONText.string("value of \($0)")) },
            tags: row.tags,
            at: .test(1)
        )
        let item = try ItemState(create: create)
        let op = try create.redacting(row.alreadyRedacted)
        let decision = Eligibility.decide(
            op: op,
            item: item.summary,
            sender: row.sender.node.nodeID,
            recipient: row.recipient.node.recipient(groups: row.recipientGroups),
            filter: row.filter,
            ladder: .standard
        )
        #expect(decision == row.expected)
        if case .withhold = row.expected { #expect(!decision.sends) } else { #expect(decision.sends) }
        if case .sendRedacted(let fields) = decision {
            // What the decision names, redacted, leaves an op that verifies and passes as is.
            let redacted = try op.redacting(fields)
            #expect(
                try OpVerifier().verify(redacted.encoded).redactedFields.sorted()
                    == (fields + row.alreadyRedacted).sorted()
            )
            let again = Eligibility.decide(
                op: redacted,
                item: item.summary,
                sender: row.sender.node.nodeID,
                recipient: row.recipient.node.recipient(groups: row.recipientGroups),
                filter: row.filter,
                ladder: .standard
            )
            #expect(again == .send)
        }
    }

    @Test("markings changed later decide for every op of the item")
    func currentMarkingsDecide() throws {
        var factory = OpFactory(seed: 52)
        let create = try factory.create(
            by: .alice,
            markings: Markings(classification: "SECRET", releasableTo: ["bob"]),
            at: .test(1)
        )
        var item = try ItemState(create: create)
        let narrowed = try factory.changeMarkings(
            of: item,
            to: Markings(classification: "SECRET", releasableTo: ["carol"]),
            by: .alice,
            at: .test(2)
        )
        try item.apply(narrowed)
        let decision = Eligibility.decide(
            op: create,
            item: item.summary,
            sender: TestNode.alice.nodeID,
            recipient: TestNode.bob.recipient(),
            filter: .passAll,
            ladder: .standard
        )
        #expect(decision == .withhold(.notReleasable))
    }

    @Test(
        "a deleted item is judged by the tags it had: its create (tags and values) never crosses a link that excludes them"
    )
    func tombstoneKeepsItsTagsForFilters() throws {
        var factory = OpFactory(seed: 53)
        let create = try factory.create(
            by: .alice, fields: [(name: "source", value: JSONText.string("agent-9"))], tags: ["tlp:amber"],
            at: .test(1))
        var item = try ItemState(create: create)
        let delete = try factory.delete(item, by: .alice, at: .test(2))
        try item.apply(delete)
        #expect(item.fields.isEmpty)
        func decide(_ op: VerifiedOp, _ filter: LinkFilter) -> Eligibility {
            Eligibility.decide(
                op: op, item: item.summary, sender: TestNode.alice.nodeID, recipient: TestNode.bob.recipient(),
                filter: filter, ladder: .standard)
        }
        let excluding = LinkFilter(excludedTags: ["tlp:amber"])
        #expect(decide(create, excluding) == .withhold(.excludedTag), "the deleted item's create leaks its values")
        #expect(decide(delete, excluding) == .withhold(.excludedTag))
        let requiring = LinkFilter(requiredTags: ["tlp:amber"])
        #expect(decide(create, requiring) == .send)
        #expect(decide(delete, requiring) == .send, "the tombstone must reach a link the item went over")
    }

    @Test("a partner's own annotation on an ORCON item can go back to the originator")
    func ownAnnotationOnOrconItemReachesOriginator() throws {
        var factory = OpFactory(seed: 54)
        let create = try factory.create(
            by: .alice,
            markings: Markings(classification: "SECRET", releasableTo: ["bob"], orcon: true),
            writePolicy: .annotations,
            at: .test(1)
        )
        var item = try ItemState(create: create)
        let annotation = try factory.setFields(
            [(name: "assessment", value: JSONText.string("credible"))],
            of: item,
            by: .bob,
            at: .test(2)
        )
        try item.apply(annotation)
        let decision = Eligibility.decide(
            op: annotation,
            item: item.summary,
            sender: TestNode.bob.nodeID,
            recipient: TestNode.alice.recipient(),
            filter: .passAll,
            ladder: .standard
        )
        #expect(decision == .send)
    }
}
