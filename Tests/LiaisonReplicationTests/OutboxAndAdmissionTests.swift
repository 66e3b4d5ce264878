import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonStore
import LiaisonTestSupport
import Testing

/// I2 on both ends of a link: what the sender puts in a batch (`LinkOutbox`), and what the
/// receiver refuses and counts against the sender (`Admission`).
@Suite("Outbox and admission")
struct OutboxAndAdmissionTests {
    static let ladder = ClassificationLadder.standard
    static let secret = JSONText.string("source CORAL-7 says the ship leaves on Tuesday")
    static let title = JSONText.string("Harbour activity")

    /// An op and its item as the sender holds it, as an outbox candidate.
    static func candidate(
        _ op: VerifiedOp, item: ItemState? = nil, sequence: UInt64, receivedFrom: NodeID? = nil
    )
        throws -> OutboxCandidate
    {
        OutboxCandidate(
            sequence: sequence,
            op: op,
            item: try (item ?? ItemState(create: op)).summary,
            receivedFrom: receivedFrom
        )
    }

    static func prepare(
        _ candidates: [OutboxCandidate],
        throughSeq: UInt64,
        sender: TestNode = .alice,
        recipient: TestNode = .bob,
        filter: LinkFilter = .passAll
    ) throws -> OutboxBatch {
        try LinkOutbox.prepare(
            candidates,
            throughSeq: throughSeq,
            sender: sender.nodeID,
            recipient: recipient.recipient(),
            filter: filter,
            ladder: ladder
        )
    }

    // MARK: - LinkOutbox.prepare

    @Test("eligible ops are sent in log order; the others are withheld with their reason")
    func sendsEligibleWithholdsOthers() throws {
        var factory = OpFactory(seed: 31)
        let shared = try factory.create(by: .alice, markings: .test, at: .test(1))
        let carolOnly = try factory.create(
            by: .alice,
            markings: Markings(classification: "SECRET", releasableTo: ["carol"]),
            at: .test(2)
        )
        let otherCollection = try factory.create(by: .alice, collection: "weather", markings: .test, at: .test(3))
        let topSecret = try factory.create(
            by: .alice,
            markings: Markings(classification: "TOP SECRET", releasableTo: ["bob"]),
            at: .test(4)
        )
        let alsoShared = try factory.create(by: .alice, markings: .test, tags: ["red"], at: .test(5))

        let batch = try Self.prepare(
            [
                Self.candidate(shared, sequence: 1),
                Self.candidate(carolOnly, sequence: 2),
                Self.candidate(otherCollection, sequence: 3),
                Self.candidate(topSecret, sequence: 4),
                Self.candidate(alsoShared, sequence: 5),
            ],
            throughSeq: 5,
            filter: LinkFilter(collections: ["reports"], maxClassification: "SECRET")
        )
        #expect(batch.sent == [shared.id, alsoShared.id])
        #expect(batch.ops == [shared.encoded, alsoShared.encoded])
        #expect(batch.withheld.map(\.id) == [carolOnly.id, otherCollection.id, topSecret.id])
        #expect(batch.withheld.map(\.reason) == [.notReleasable, .collectionNotShared, .aboveClassificationCeiling])
        #expect(batch.redacted.isEmpty)
        #expect(batch.echoes == 0)
        #expect(batch.throughSeq == 5)
    }

    @Test("fields the filter names are redacted: no opening on the wire, yet the op verifies with the same id")
    func redactsNamedFields() throws {
        var factory = OpFactory(seed: 32)
        let op = try factory.create(
            by: .alice,
            markings: .test,
            fields: [(name: "title", value: Self.title), (name: "source", value: Self.secret)],
            at: .test(1)
        )
        let plain = try factory.create(
            by: .alice, markings: .test, fields: [(name: "title", value: Self.title)], at: .test(2))
        let batch = try Self.prepare(
            [Self.candidate(op, sequence: 1), Self.candidate(plain, sequence: 2)],
            throughSeq: 2,
            filter: LinkFilter(redactFields: ["source"])
        )
        #expect(batch.sent == [op.id, plain.id])
        #expect(batch.redacted.count == 1)
        #expect(batch.redacted.first?.id == op.id)
        #expect(batch.redacted.first?.fields == ["source"])
        #expect(batch.ops.count == 2)
        #expect(batch.ops[1] == plain.encoded, "an op without the field was altered")

        let bytes = try #require(batch.ops.first)
        #expect(bytes != op.encoded)
        let salt = try #require(op.openings["source"]).salt
        #expect(op.encoded.firstRange(of: Self.secret) != nil, "the search must find the value in the original")
        #expect(bytes.firstRange(of: Self.secret) == nil, "the redacted value is on the wire")
        #expect(bytes.firstRange(of: Data(salt)) == nil, "the redacted field's salt is on the wire")
        #expect(bytes.firstRange(of: Self.title) != nil, "a field not redacted lost its value")
        #expect(try SignedOpWire(decoding: bytes).openings.map(\.name) == ["title"])

        let verified = try OpVerifier().verify(bytes)
        #expect(verified.id == op.id)
        #expect(verified.body == op.body)
        #expect(verified.openings["source"] == nil)
        #expect(verified.openings["title"] == op.openings["title"])
        #expect(verified.redactedFields == ["source"])
    }

    @Test(
        "a field its author withholds from the recipient is redacted by every forwarder, over a link that redacts nothing"
    )
    func withheldFieldIsRedactedByEveryForwarder() throws {
        var factory = OpFactory(seed: 33)
        // alice's own link to bob redacts `source`, so alice signs `source` as withheld from
        // bob; carol forwards the op to bob over a link with no redaction at all.
        let withheld = FieldReleasability.withheld(
            fields: ["title", "source"], outbound: ["bob": LinkFilter(redactFields: ["source"]), "carol": .passAll])
        #expect(withheld == ["source": ["bob"]])
        var everyone = Markings.test
        everyone.releasableTo = [Markings.everyone]
        let op = try factory.create(
            by: .alice,
            markings: everyone,
            fields: [(name: "title", value: Self.title), (name: "source", value: Self.secret)],
            withheld: withheld,
            at: .test(1)
        )
        let viaCarol = try Self.prepare(
            [Self.candidate(op, sequence: 1, receivedFrom: TestNode.alice.nodeID)], throughSeq: 1, sender: .carol)
        #expect(viaCarol.sent == [op.id])
        #expect(viaCarol.redacted.first?.fields == ["source"])
        let bytes = try #require(viaCarol.ops.first)
        #expect(bytes.firstRange(of: Self.secret) == nil, "the withheld value went to bob through carol")
        #expect(try OpVerifier().verify(bytes).id == op.id)
        // A partner the field is not withheld from gets it in clear from the same forwarder.
        let toDave = try LinkOutbox.prepare(
            [Self.candidate(op, sequence: 1, receivedFrom: TestNode.alice.nodeID)], throughSeq: 1,
            sender: TestNode.carol.nodeID, recipient: Recipient(name: "dave", nodeID: TestNode.bob.nodeID),
            filter: .passAll, ladder: Self.ladder)
        #expect(toDave.sent == [op.id] && toDave.redacted.isEmpty)
        #expect(toDave.ops.first?.firstRange(of: Self.secret) != nil)
        // Withholding from a group binds its members.
        let byGroup = try factory.create(
            by: .alice, markings: .test, fields: [(name: "source", value: Self.secret)], withheld: ["source": ["EAST"]],
            at: .test(2))
        let toEast = try LinkOutbox.prepare(
            [Self.candidate(byGroup, sequence: 1)], throughSeq: 1, sender: TestNode.carol.nodeID,
            recipient: Recipient(name: "bob", nodeID: TestNode.bob.nodeID, groups: ["EAST"]), filter: .passAll,
            ladder: Self.ladder)
        #expect(toEast.redacted.first?.fields == ["source"])
    }

    @Test("withholding is signed: a forwarder cannot strip it without breaking the op's signature")
    func withholdingIsSigned() throws {
        var factory = OpFactory(seed: 34)
        let op = try factory.create(
            by: .alice, markings: .test, fields: [(name: "source", value: Self.secret)],
            withheld: ["source": ["bob"]], at: .test(1))
        #expect(op.body.change.fieldCommitments.first?.withheldFrom == ["bob"])
        let plain = try factory.create(
            by: .alice, markings: .test, fields: [(name: "source", value: Self.secret)], at: .test(1))
        #expect(op.id != plain.id, "the withholding is not part of the signed body")
        #expect(throws: (any Error).self) {
            try factory.create(
                by: .alice, markings: .test, fields: [(name: "title", value: Self.title)],
                withheld: ["source": ["bob"]], at: .test(2))
        }
    }

    @Test("ops the recipient wrote, or sent us, are not echoed back")
    func skipsEchoes() throws {
        var factory = OpFactory(seed: 33)
        let create = try factory.create(by: .alice, markings: .test, writePolicy: .annotations, at: .test(1))
        let item = try ItemState(create: create)
        let byBob = try factory.setFields(
            [(name: "note", value: JSONText.string("bob's"))], of: item, by: .bob, at: .test(2))
        let byCarolViaBob = try factory.addTags(["seen"], to: item, by: .carol, at: .test(3))
        let byCarolDirect = try factory.addTags(["direct"], to: item, by: .carol, at: .test(4))
        let createViaBob = create  // even our own op, if bob handed it to us, is not sent back

        let batch = try Self.prepare(
            [
                Self.candidate(byBob, item: item, sequence: 10, receivedFrom: TestNode.bob.nodeID),
                Self.candidate(byCarolViaBob, item: item, sequence: 11, receivedFrom: TestNode.bob.nodeID),
                Self.candidate(byCarolDirect, item: item, sequence: 12, receivedFrom: TestNode.carol.nodeID),
                Self.candidate(createViaBob, item: item, sequence: 13, receivedFrom: TestNode.bob.nodeID),
            ],
            throughSeq: 13
        )
        #expect(batch.echoes == 3)
        #expect(batch.sent == [byCarolDirect.id])
        #expect(batch.withheld.isEmpty, "echoes must not be counted as filter decisions")

        // Bob's own op is an echo even when it reached us through carol.
        let relayed = try Self.prepare(
            [Self.candidate(byBob, item: item, sequence: 14, receivedFrom: TestNode.carol.nodeID)],
            throughSeq: 14
        )
        #expect(relayed.echoes == 1)
        #expect(relayed.ops.isEmpty)
    }

    @Test("an all-withheld stretch of the log still carries its throughSeq")
    func throughSeqWhenAllWithheld() throws {
        var factory = OpFactory(seed: 34)
        let hidden = try factory.create(
            by: .alice,
            markings: Markings(classification: "SECRET", releasableTo: ["carol"]),
            at: .test(1)
        )
        let orcon = try factory.create(
            by: .carol, markings: Markings(classification: "SECRET", releasableTo: ["bob", "alice"], orcon: true),
            at: .test(2))
        let batch = try Self.prepare(
            [
                Self.candidate(hidden, sequence: 40),
                Self.candidate(orcon, sequence: 41, receivedFrom: TestNode.carol.nodeID),
            ],
            throughSeq: 42
        )
        #expect(batch.ops.isEmpty)
        #expect(batch.sent.isEmpty)
        #expect(batch.throughSeq == 42)
        #expect(batch.withheld.map(\.reason) == [.notReleasable, .orcon])

        let empty = try Self.prepare([], throughSeq: 7)
        #expect(empty.throughSeq == 7)
        #expect(empty.ops.isEmpty)
    }

    // MARK: - Admission.check

    struct Receiver {
        var me = TestNode.bob.recipient()
        var sender = TestNode.alice.nodeID
        var senderFilter = LinkFilter.passAll
        var authors: [NodeID: Recipient] = Dictionary(
            uniqueKeysWithValues: [TestNode.alice, .bob, .carol].map { ($0.nodeID, $0.recipient()) })
        var clock = HybridLogicalClock(maxSkewMillis: 60_000)
        var nowMillis = HLCTimestamp.testEpochMillis + 1_000

        func check(_ op: VerifiedOp, item: ItemState? = nil) -> StrikeReason? {
            Admission.check(
                op,
                item: item,
                from: sender,
                senderFilter: senderFilter,
                me: me,
                authors: authors,
                ladder: OutboxAndAdmissionTests.ladder,
                clock: clock,
                nowMillis: nowMillis
            )
        }
    }

    @Test("a releasable op from a neighbour is accepted")
    func acceptsReleasableOp() throws {
        var factory = OpFactory(seed: 41)
        let create = try factory.create(
            by: .alice, markings: .test, fields: [(name: "title", value: Self.title)], at: .test(1))
        let item = try ItemState(create: create)
        let update = try factory.setFields(
            [(name: "title", value: JSONText.string("new"))], of: item, by: .alice, at: .test(2))
        let receiver = Receiver()
        #expect(receiver.check(create) == nil)
        #expect(receiver.check(create, item: item) == nil, "a duplicate create must pass admission")
        #expect(receiver.check(update, item: item) == nil)
    }

    @Test("an op by an author who is no partner is refused")
    func refusesUnknownAuthor() throws {
        var factory = OpFactory(seed: 42)
        let op = try factory.create(by: .mallory, markings: .test, at: .test(1))
        #expect(Receiver().check(op) == .unknownAuthor(TestNode.mallory.nodeID))
        var knowing = Receiver()
        knowing.authors[TestNode.mallory.nodeID] = TestNode.mallory.recipient()
        #expect(knowing.check(op) == nil)
    }

    @Test("an op stamped beyond the allowed skew is refused")
    func refusesFutureHLC() throws {
        var factory = OpFactory(seed: 43)
        let receiver = Receiver()
        let now = receiver.nowMillis
        let future = HLCTimestamp(physicalMillis: now + 60_001, logical: 0)
        let op = try factory.create(by: .alice, markings: .test, at: future)
        let strike = receiver.check(op)
        guard case .futureHLC(let error) = strike else {
            Issue.record("expected futureHLC, got \(String(describing: strike))")
            return
        }
        #expect(error.stamp == future)
        #expect(error.physicalMillis == now)
        #expect(error.maxSkewMillis == 60_000)

        let edge = try factory.create(
            by: .alice, markings: .test, at: HLCTimestamp(physicalMillis: now + 60_000, logical: 9))
        #expect(receiver.check(edge) == nil, "a stamp exactly at the skew limit is allowed")
    }

    @Test("an op not releasable to the receiver is refused as not entitled")
    func refusesNotReleasable() throws {
        var factory = OpFactory(seed: 44)
        let op = try factory.create(
            by: .alice, markings: Markings(classification: "SECRET", releasableTo: ["carol"]), at: .test(1))
        #expect(Receiver().check(op) == .notEntitled(.notReleasable))
        let item = try ItemState(create: op)
        let update = try factory.setFields([(name: "x", value: JSONText.number(1))], of: item, by: .alice, at: .test(2))
        #expect(Receiver().check(update, item: item) == .notEntitled(.notReleasable))
    }

    @Test("an op that the sender's filter excludes is refused as not entitled")
    func refusesFilteredOut() throws {
        var factory = OpFactory(seed: 45)
        let op = try factory.create(by: .alice, collection: "weather", markings: .test, at: .test(1))
        var receiver = Receiver()
        receiver.senderFilter = LinkFilter(collections: ["reports"])
        #expect(receiver.check(op) == .notEntitled(.collectionNotShared))
    }

    @Test("an op carrying values of a field the sender's filter redacts is refused; the redacted copy is accepted")
    func refusesUnredacted() throws {
        var factory = OpFactory(seed: 46)
        let op = try factory.create(
            by: .alice,
            markings: .test,
            fields: [(name: "title", value: Self.title), (name: "source", value: Self.secret)],
            at: .test(1)
        )
        var receiver = Receiver()
        receiver.senderFilter = LinkFilter(redactFields: ["source"])
        #expect(receiver.check(op) == .unredacted(["source"]))
        #expect(receiver.check(try op.redacting(["source"])) == nil)
        // The same for an op of an item the receiver does not hold yet: it would wait for the
        // create and apply with it, values in clear (before, it was not judged at all).
        let annotation = try factory.setFields(
            [(name: "source", value: Self.secret)], of: try ItemState(create: op), by: .alice, at: .test(2))
        #expect(receiver.check(annotation, item: nil) == .unredacted(["source"]))
        #expect(receiver.check(try annotation.redacting(["source"]), item: nil) == nil)
    }

    @Test(
        "one batch holding a create in clear (refused: a field is withheld from the receiver) and its redacted copy (accepted) stores the item without the withheld value"
    )
    func clearAndRedactedCopiesInOneBatch() throws {
        let op = try Self.createWithholdingSource(from: "bob", seed: 48)
        for copies in [[op, try op.redacting(["source"])], [try op.redacting(["source"]), op]] {
            // A node of its own for each order: the create is new to it both times.
            var (bob, bobStore) = try AnnotationTests.node(.bob)
            let outcome = try bob.receive(
                ops: copies.map(\.encoded), through: nil, from: "carol", nowMillis: AnnotationTests.now)
            #expect(outcome.refused == 1, "the copy in clear is refused")
            let item = try #require(try bobStore.item(op.body.itemID))
            #expect(item.fields["source"] != nil, "the field is there, committed")
            #expect(item.fields["source"]?.value == nil, "its value is not")
            #expect(item.fields["title"]?.value == Self.title)
            #expect(try bobStore.op(op.id)?.op.openings["source"] == nil)
        }
    }

    /// Alice's create of an item with a title and a source, the source withheld from `partner`.
    static func createWithholdingSource(from partner: String, seed: UInt64) throws -> VerifiedOp {
        var factory = OpFactory(seed: seed)
        return try factory.create(
            by: .alice, markings: .test,
            fields: [(name: "title", value: Self.title), (name: "source", value: Self.secret)],
            withheld: ["source": [partner]], at: .test(1))
    }

    @Test(
        "a receiver the author withheld a field from refuses the op in clear from any sender; the redacted copy is accepted"
    )
    func refusesFieldWithheldFromIt() throws {
        let op = try Self.createWithholdingSource(from: "bob", seed: 47)
        var receiver = Receiver()
        receiver.sender = TestNode.carol.nodeID
        #expect(receiver.check(op) == .unredacted(["source"]))
        #expect(receiver.check(try op.redacting(["source"])) == nil)
        receiver.me = TestNode.carol.recipient()
        receiver.sender = TestNode.alice.nodeID
        #expect(receiver.check(op) == nil, "a partner the field is not withheld from must get it")
    }

    @Test("a markings change by a non-originator is refused by the item")
    func refusesMarkingsChangeByNonOriginator() throws {
        var factory = OpFactory(seed: 47)
        let create = try factory.create(by: .alice, markings: .test, writePolicy: .annotations, at: .test(1))
        let item = try ItemState(create: create)
        let change = try factory.changeMarkings(
            of: item,
            to: Markings(classification: "UNCLASSIFIED", releasableTo: ["ALL"]),
            by: .carol,
            at: .test(2)
        )
        var receiver = Receiver()
        receiver.sender = TestNode.carol.nodeID
        #expect(receiver.check(change, item: item) == .refusedByItem(.notOriginator(kind: "change-markings")))

        // Carol may annotate, but not change markings.
        let note = try factory.addTags(["seen"], to: item, by: .carol, at: .test(3))
        #expect(receiver.check(note, item: item) == nil)
    }

    @Test("a markings change that newly releases the item to the receiver is accepted")
    func acceptsMarkingsChangeThatReleases() throws {
        var factory = OpFactory(seed: 48)
        let create = try factory.create(
            by: .alice, markings: Markings(classification: "SECRET", releasableTo: ["carol"]), at: .test(1))
        let item = try ItemState(create: create)
        let release = try factory.changeMarkings(
            of: item,
            to: Markings(classification: "SECRET", releasableTo: ["bob", "carol"]),
            by: .alice,
            at: .test(2)
        )
        let receiver = Receiver()
        #expect(receiver.check(release, item: item) == nil)
        // Without the change, the same item is not ours to receive.
        let other = try factory.setFields([(name: "x", value: JSONText.number(1))], of: item, by: .alice, at: .test(3))
        #expect(receiver.check(other, item: item) == .notEntitled(.notReleasable))
    }

    @Test("an item newly released to the receiver arrives whole: the sender sends its history, the receiver admits it")
    func newlyReleasedItemArrivesWhole() throws {
        var factory = OpFactory(seed: 49)
        let create = try factory.create(
            by: .alice,
            markings: Markings(classification: "SECRET", releasableTo: ["carol"]),
            fields: [(name: "title", value: Self.title)],
            at: .test(1)
        )
        var item = try ItemState(create: create)
        let release = try factory.changeMarkings(
            of: item,
            to: Markings(classification: "SECRET", releasableTo: ["bob", "carol"]),
            by: .alice,
            at: .test(2)
        )
        try item.apply(release)

        // The sender judges every op of the item by the item as it stands now (DESIGN §5.7).
        let batch = try Self.prepare(
            [Self.candidate(create, item: item, sequence: 1), Self.candidate(release, item: item, sequence: 2)],
            throughSeq: 2
        )
        #expect(batch.sent == [create.id, release.id])

        // The receiver, who never held the item, judges each op on the item as the whole
        // batch leaves it, as ReplicationEngine.receive does.
        let receiver = Receiver()
        let verifier = OpVerifier()
        let ops = try batch.ops.map { try verifier.verify($0) }
        var state: ItemState?
        for op in ops {
            if var known = state {
                try known.apply(op)
                state = known
            } else if case .create = op.body.change {
                state = try ItemState(create: op)
            }
        }
        var strikes = [StrikeReason]()
        for op in ops {
            if let strike = receiver.check(op, item: state) { strikes.append(strike) }
        }
        let admittedWithoutItem = [OpID]()
        #expect(strikes.isEmpty, "the honest sender was struck: \(strikes)")
        #expect(admittedWithoutItem.isEmpty, "ops of an item the receiver does not hold were admitted unchecked")
        #expect(state?.markings.releasableTo == ["bob", "carol"])
        #expect(state?.fields["title"]?.value == Self.title)
    }
}
