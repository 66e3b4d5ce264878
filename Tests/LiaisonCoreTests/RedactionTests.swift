import Foundation
import LiaisonCore
import LiaisonTestSupport
import SwiftProtobuf
import Testing

/// Redaction without breaking provenance (DESIGN §4).
@Suite("Redaction keeps provenance")
struct RedactionTests {
    static let secret = JSONText.string("source CORAL-7 says the ship leaves on Tuesday")
    static let title = JSONText.string("Harbour activity")

    static func create() throws -> VerifiedOp {
        var factory = OpFactory(seed: 21)
        return try factory.create(
            by: .alice,
            fields: [
                (name: "title", value: title), (name: "source", value: secret),
                (name: "score", value: JSONText.number(3)),
            ],
            tags: ["red"],
            at: .test(1)
        )
    }

    @Test("a field commitment is SHA-256(salt ‖ u32be(len(name)) ‖ name ‖ value)")
    func commitmentMatchesTheSpecification() throws {
        let op = try Self.create()
        let opening = try #require(op.openings["source"])
        var preimage = Data(opening.salt)
        preimage.append(contentsOf: [0, 0, 0, 6])
        preimage.append(contentsOf: Array("source".utf8))
        preimage.append(Self.secret)
        let committed = op.body.change.fieldCommitments.first { $0.name == "source" }
        #expect(committed?.digest == Hash32.sha256(preimage))
        #expect(opening.salt.count == 16)
    }

    @Test("the redacted copy keeps its id and verifies, without the value, its salt or its opening")
    func redactedCopyVerifies() throws {
        let op = try Self.create()
        let redacted = try op.redacting(["source"])
        #expect(redacted.id == op.id)
        #expect(redacted.body == op.body)
        #expect(redacted.openings["source"] == nil)
        #expect(redacted.openings["title"] == op.openings["title"])
        #expect(redacted.redactedFields == ["source"])
        #expect(op.redactedFields.isEmpty)

        let verified = try OpVerifier().verify(redacted.encoded)
        #expect(verified == redacted)
        #expect(verified.id == op.id)
        #expect(verified.openings["source"] == nil)
        #expect(Set(verified.openings.keys) == ["title", "score"])

        let salt = try #require(op.openings["source"]).salt
        #expect(op.encoded.firstRange(of: Self.secret) != nil, "the search must find the value in the original")
        #expect(redacted.encoded.firstRange(of: Self.secret) == nil, "the value is still in the redacted bytes")
        #expect(redacted.encoded.firstRange(of: Data(salt)) == nil, "the salt is still in the redacted bytes")
        #expect(redacted.encoded.firstRange(of: Self.title) != nil, "a field not redacted lost its value")
        #expect(try SignedOpWire(decoding: redacted.encoded).openings.map(\.name) == ["score", "title"])
    }

    @Test("redacting a field the op does not open returns the op unchanged")
    func redactingNothing() throws {
        let op = try Self.create()
        #expect(try op.redacting(["no-such-field"]) == op)
        let once = try op.redacting(["source"])
        #expect(try once.redacting(["source"]).encoded == once.encoded)
    }

    @Test("an item built from the redacted op holds the field redacted, with the same digest")
    func stateFromRedactedOp() throws {
        let op = try Self.create()
        let redacted = try op.redacting(["source"])
        let full = try ItemState(create: op)
        let partial = try ItemState(create: redacted)

        let register = try #require(partial.fields["source"])
        #expect(register.isRedacted)
        #expect(register.value == nil)
        #expect(register.digest == full.fields["source"]?.digest)
        #expect(partial.fields["title"]?.value == Self.title)
        #expect(full.fields["source"]?.value == Self.secret)
        #expect(partial.digest == full.digest)
        #expect(partial != full)

        // The unredacted copy fills the value in, by apply or by merge.
        var healed = partial
        #expect(try healed.apply(op))
        #expect(healed == full)
        #expect(partial.merged(with: full) == full)
        #expect(full.merged(with: partial) == full)
    }

    @Test("a redacted set-fields op leaves the older value of other fields alone")
    func redactedSetFields() throws {
        var factory = OpFactory(seed: 22)
        let create = try Self.create()
        let item = try ItemState(create: create)
        let update = try factory.setFields(
            [(name: "source", value: JSONText.string("revised")), (name: "score", value: JSONText.number(9))],
            of: item,
            by: .alice,
            at: .test(5)
        )
        let redacted = try update.redacting(["source", "score"])
        #expect(try OpVerifier().verify(redacted.encoded).redactedFields.sorted() == ["score", "source"])
        let partial = try ItemState.build(create, [redacted])
        let full = try ItemState.build(create, [update])
        #expect(partial.digest == full.digest)
        #expect(partial.fields["source"]?.value == nil)
        #expect(partial.fields["source"]?.stamp == update.stamp)
        #expect(partial.fields["title"]?.value == Self.title)
    }

    @Test("a wrong value for a committed field is rejected as a bad opening")
    func forgedValueIsRejected() throws {
        let op = try Self.create()
        // Same length, so the message stays well-formed and only the value is wrong.
        let forged = JSONText.string("source CORAL-7 says the ship leaves on Fridays")
        #expect(forged.count == Self.secret.count)
        var bytes = op.encoded
        let range = try #require(bytes.firstRange(of: Self.secret))
        bytes.replaceSubrange(range, with: forged)
        #expect(OpVerifier().rejectionReason(of: bytes) == .badOpening)
    }

    @Test("putting a made-up value back into a redacted op is rejected")
    func forgedOpeningOfRedactedField() throws {
        let op = try Self.create()
        let redacted = try op.redacting(["source"])
        var wire = try SignedOpWire(decoding: redacted.encoded)
        var rng = SeededGenerator(seed: 5)
        wire.openings.append(.init(name: "source", salt: Data(rng.bytes(16)), value: JSONText.string("made up")))
        #expect(OpVerifier().rejectionReason(of: wire.encoded) == .badOpening)
        // The true opening, put back, is accepted again.
        var restored = try SignedOpWire(decoding: redacted.encoded)
        let opening = try #require(op.openings["source"])
        restored.openings.append(.init(name: "source", salt: Data(opening.salt), value: opening.value))
        #expect(try OpVerifier().verify(restored.encoded).openings["source"] == opening)
    }

    @Test("an opening for a field the op does not commit to is rejected")
    func openingForUncommittedField() throws {
        let op = try Self.create()
        var wire = try SignedOpWire(decoding: op.encoded)
        var rng = SeededGenerator(seed: 6)
        wire.openings.append(.init(name: "zzz", salt: Data(rng.bytes(16)), value: JSONText.number(1)))
        #expect(OpVerifier().rejectionReason(of: wire.encoded) == .badOpening)
    }

    /// `op` re-signed by alice after `edit` changed the first field commitment of its body.
    static func resigned(_ op: VerifiedOp, _ edit: (inout Liaison_V1_FieldCommitment) -> Void) throws -> Data {
        var signed = try Liaison_V1_SignedOp(serializedBytes: op.encoded)
        var body = try Liaison_V1_OpBody(serializedBytes: signed.body)
        edit(&body.create.fields[0])
        signed.body = try body.serializedBytes()
        let (root, _) = OpBatchTree.build([OpID(body: signed.body)])
        signed.proof = Liaison_V1_BatchProof()
        signed.proof.signerKey = TestNode.alice.publicKeyBytes
        signed.proof.leafCount = 1
        signed.proof.signature = try TestNode.alice.signature(for: OpBatchTree.signedMessage(root: root, leafCount: 1))
        return try signed.serializedBytes()
    }

    @Test("a field's withholding from a hostile author must be sorted, distinct, valid names, at most 64: else refused")
    func hostileWithholdingIsRefused() throws {
        var factory = OpFactory(seed: 22)
        let op = try factory.create(
            by: .alice, fields: [(name: "source", value: Self.secret)], withheld: ["source": ["bob", "carol"]],
            at: .test(1))
        // The re-signing itself is sound: the same list re-signed verifies.
        #expect(try OpVerifier().verify(Self.resigned(op) { _ in }).id == op.id)
        for (list, why) in [
            (["carol", "bob"], "unsorted"), (["bob", "bob"], "repeated"), (["a,b"], "not a label: a comma"),
            ([""], "not a label: empty"),
            ((0..<65).map { "p\(1000 + $0)" }, "over 64 names"),
        ] {
            let bytes = try Self.resigned(op) { $0.withheldFrom = list }
            #expect(throws: (any Error).self, "\(why) withholding was accepted") { try OpVerifier().verify(bytes) }
        }
    }
}
