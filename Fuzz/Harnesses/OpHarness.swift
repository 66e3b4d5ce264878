// Fuzzes `OpVerifier.verify`: what turns an op's bytes, received in a batch or a sealed
// envelope, into a `VerifiedOp` (`ReplicationStore.receive` calls it for every op), and the
// item rules the receive path then applies to it.
//
// Input: one mode byte, then the rest.
// Even mode: the rest is an encoded `SignedOp`, as a peer sends it. Mutations of the body
//   change the op id and so break the signature, but reach every check before it; the verifier
//   remembers verified batch roots, so mutations of a seed's field openings reach the checks
//   after it.
// Odd mode: the rest is a `SignedOp` whose proof the harness replaces: it signs the body as a
//   batch of one with the key of the test node the body names as author (alice when it names
//   none), so that mutated bodies get past the signature and into the item rules.
// Fuzz/Harnesses/ProtobufMutator.swift mutates the message's fields with their lengths intact.
import Foundation
import LiaisonTestSupport
import SwiftProtobuf

@testable import LiaisonCore

enum Harness {
    static let verifier = OpVerifier()
    /// The item the seeds change: applying a verified op to it must return or throw.
    nonisolated(unsafe) static var base: ItemState? = nil

    static let signers: [TestNode] = [.alice, .bob, .carol, .mallory]

    static func run(_ input: Data) {
        guard let mode = input.first else { return }
        let rest = Data(input.dropFirst())
        let encoded = mode & 1 == 0 ? rest : signedByItsAuthor(rest)
        guard let encoded else { return }
        let op: VerifiedOp
        do {
            op = try verifier.verify(encoded)
        } catch {
            return
        }
        FuzzCheck.expect(op.encoded == encoded, "a verified op keeps other bytes than it came in")
        checkRoundTrips(op)
        if case .create = op.body.change {
            _ = try? ItemState(create: op)
        } else if var state = base {
            _ = try? state.apply(op)
        }
    }

    /// The op re-signed by the author its body names (odd mode).
    static func signedByItsAuthor(_ bytes: Data) -> Data? {
        guard var signed = try? Liaison_V1_SignedOp(serializedBytes: bytes) else { return nil }
        let author = (try? Liaison_V1_OpBody(serializedBytes: signed.body)).flatMap { NodeID(bytes: $0.author) }
        let signer = signers.first { $0.nodeID == author } ?? .alice
        let (root, _) = OpBatchTree.build([OpID(body: signed.body)])
        signed.proof = Liaison_V1_BatchProof()
        signed.proof.signerKey = signer.publicKeyBytes
        signed.proof.leafCount = 1
        do {
            signed.proof.signature = try signer.signature(for: OpBatchTree.signedMessage(root: root, leafCount: 1))
        } catch {
            FuzzCheck.fail("signing a fuzzed body failed: \(error)")
        }
        return try? signed.serializedBytes()
    }

    static func checkRoundTrips(_ op: VerifiedOp) {
        // The body re-encodes to the bytes the op id hashes (canonical encoding).
        guard let body: Data = try? op.body.proto.serializedBytes() else { FuzzCheck.fail("body does not encode") }
        FuzzCheck.expect(OpID(body: body) == op.id, "the decoded body re-encodes to other bytes")
        // Read back as the store reads it: the same op.
        guard let stored = try? VerifiedOp(storedEncoding: op.encoded) else {
            FuzzCheck.fail("a verified op cannot be read back from its stored encoding")
        }
        FuzzCheck.expect(stored == op, "the stored encoding reads back as another op")
        // Redacting every field keeps an op that verifies, with the same id and body.
        guard let redacted = try? op.redacting(op.openings.keys) else { FuzzCheck.fail("redaction failed") }
        guard let again = try? verifier.verify(redacted.encoded) else {
            FuzzCheck.fail("a redacted op no longer verifies")
        }
        FuzzCheck.expect(
            again.id == op.id && again.body == op.body && again.openings.isEmpty,
            "redaction changed the op's id or body, or kept a value")
    }

    static func seeds() throws -> [(String, Data)] {
        var factory = OpFactory(seed: 72)
        let create = try factory.create(
            by: .alice,
            fields: [
                (name: "body", value: JSONText.string("convoy at the north gate")),
                (name: "source", value: JSONText.string("harbour office")),
            ],
            tags: ["convoy", "north"],
            writePolicy: .annotations,
            at: .test(1))
        let item = try ItemState(create: create)
        base = item
        let batch = try factory.batch(of: 5, on: item, by: .alice)
        let ops: [(String, VerifiedOp)] = [
            ("create", create),
            ("create-plain", try factory.create(by: .bob, markings: Markings(classification: "UNCLASSIFIED"))),
            ("set-fields-batch-0", batch[0]),
            ("set-fields-batch-3", batch[3]),
            ("add-tags", try factory.addTags(["urgent"], to: item, by: .bob, at: .test(5))),
            ("remove-tags", try factory.removeTags(["convoy"], observedIn: item, by: .alice, at: .test(6))),
            ("delete", try factory.delete(item, by: .alice, at: .test(7))),
            (
                "change-markings",
                try factory.changeMarkings(
                    of: item,
                    to: Markings(
                        classification: "TOP SECRET", releasableTo: ["bob"], orcon: true, caveats: ["NOFORN"],
                        expiresAtMillis: Int64(HLCTimestamp.testEpochMillis) + 86_400_000),
                    by: .alice, at: .test(8))
            ),
            ("recall", try factory.recall(item, from: ["carol"], reason: "source at risk", by: .alice, at: .test(9))),
            ("create-redacted", try create.redacting(["source"])),
        ]
        var seeds = [(String, Data)]()
        for (name, op) in ops {
            seeds.append(("op-\(name)", Data([0]) + op.encoded))
            var unsigned = try Liaison_V1_SignedOp(serializedBytes: op.encoded)
            unsigned.clearProof()
            seeds.append(("body-\(name)", Data([1]) + (try unsigned.serializedBytes() as Data)))
        }
        return seeds
    }
}
