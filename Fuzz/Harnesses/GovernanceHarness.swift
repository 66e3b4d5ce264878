// Fuzzes the governance decoders a node runs on a partner's `Frame.governance` payload:
// `GovernanceFrame.decode`, `GovernanceStatement.decode(body:endorsements:)` and the ledger's
// `merge` of what they accept (revocation and re-admission statements, issue 10).
//
// Input: one mode byte (taken modulo 2), then the rest.
// 0: the rest is a statement list as it arrives from a partner. Each accepted statement must
//    encode and decode again to the same body and endorsements, state its content again as
//    the same body (bodies are canonical), and merge into a ledger whose partners are alice
//    and bob: an endorsement is added only if it verifies, reported forged only if it does
//    not, and a second merge adds nothing.
// 1: the rest is a statement body. One the decoder accepts is endorsed as alice and bob by
//    the harness, so that mutations of the body get past the signatures to the ledger: both
//    count unless the statement names them, and an endorsement with one bit of its signature
//    flipped is forged.
// Fuzz/Harnesses/ProtobufMutator.swift mutates the message's fields with their lengths intact.
import Crypto
import Foundation
import LiaisonTestSupport

@testable import LiaisonCore

enum Harness {
    static let endorsers: [NodeID: String] = [TestNode.alice.nodeID: "alice", TestNode.bob.nodeID: "bob"]

    static func run(_ input: Data) {
        guard let mode = input.first else { return }
        let rest = Data(input.dropFirst())
        if mode % 2 == 0 { frame(rest) } else { body(rest) }
    }

    static func frame(_ bytes: Data) {
        guard let received = try? GovernanceFrame.decode(bytes) else { return }
        var ledger = GovernanceLedger()
        for entry in received {
            guard case .success(let statement) = entry.statement else { continue }
            checkCanonical(statement)
            let merge = ledger.merge(statement, endorsers: endorsers)
            for endorser in merge.added {
                FuzzCheck.expect(
                    statement.endorsements[endorser].map(statement.verifies) == true,
                    "an endorsement that does not verify was added")
            }
            for endorser in merge.forged {
                FuzzCheck.expect(
                    statement.endorsements[endorser].map(statement.verifies) == false,
                    "an endorsement that verifies was reported forged")
            }
            let again = ledger.merge(statement, endorsers: endorsers)
            FuzzCheck.expect(again.added.isEmpty, "merging the same statement twice added endorsements")
        }
    }

    /// A statement's encoding decodes to the same statement, and its content states the same body.
    static func checkCanonical(_ statement: GovernanceStatement) {
        guard let decoded = try? GovernanceFrame.decode(GovernanceFrame.encode([statement])),
            decoded.count == 1, case .success(let again) = decoded[0].statement
        else {
            FuzzCheck.fail("an accepted statement does not decode again from its own encoding")
        }
        FuzzCheck.expect(
            again.body == statement.body && again.id == statement.id && again.endorsements == statement.endorsements,
            "a statement's encoding decodes to another statement")
        if let restated = try? GovernanceStatement(federation: statement.federation, content: statement.content) {
            FuzzCheck.expect(restated.body == statement.body, "a statement's content states another body")
        }
    }

    static func body(_ bytes: Data) {
        guard let statement = try? GovernanceStatement.decode(body: bytes, endorsements: [:]) else { return }
        checkCanonical(statement)
        let endorsed: GovernanceStatement
        do {
            endorsed = try statement.endorsed(by: TestNode.alice.author.signingKey)
                .endorsed(by: TestNode.bob.author.signingKey)
        } catch {
            FuzzCheck.fail("endorsing an accepted statement failed: \(error)")
        }
        var ledger = GovernanceLedger()
        let merge = ledger.merge(endorsed, endorsers: endorsers)
        let expected = ["alice", "bob"].filter { $0 != statement.content.partner }
        FuzzCheck.expect(
            merge.added.compactMap { endorsers[$0] }.sorted() == expected,
            "endorsements by alice and bob were not both counted")
        FuzzCheck.expect(merge.forged.isEmpty, "a valid endorsement was reported forged")
        // A flipped bit in a signature is forged, by a partner whose endorsement counts.
        guard var alice = endorsed.endorsements[TestNode.alice.nodeID], statement.content.partner != "alice" else {
            return
        }
        var signature = alice.signature
        signature[signature.startIndex] ^= 0x01
        alice = Endorsement(signerKey: alice.signerKey, signature: signature)
        var tampered = statement
        tampered.endorsements = [TestNode.alice.nodeID: alice]
        var fresh = GovernanceLedger()
        FuzzCheck.expect(
            fresh.merge(tampered, endorsers: endorsers).forged == [TestNode.alice.nodeID],
            "an endorsement with a flipped signature bit was not reported forged")
    }

    static func seeds() throws -> [(String, Data)] {
        let revocation = try GovernanceStatement(
            federation: "harbour",
            content: .revocation(
                Revocation(partner: "carol", nodeID: TestNode.carol.nodeID, sinceMillis: 1_700_000_000_000)))
        let readmission = try GovernanceStatement(
            federation: "harbour",
            content: .readmission(
                Readmission(
                    partner: "carol", revocation: revocation.id,
                    identity: PartnerIdentity(
                        nodeID: TestNode.mallory.nodeID, tlsFingerprint: String(repeating: "ab", count: 32),
                        sealingKey: Curve25519.KeyAgreement.PrivateKey(
                            rawRepresentation: Data(repeating: 0x33, count: 32)
                        ).publicKey.rawRepresentation.base64EncodedString()))))
        let endorsed = try revocation.endorsed(by: TestNode.alice.author.signingKey)
            .endorsed(by: TestNode.bob.author.signingKey)
        let byAlice = try readmission.endorsed(by: TestNode.alice.author.signingKey)
        return [
            ("frame-revocation-endorsed", Data([0]) + GovernanceFrame.encode([endorsed])),
            ("frame-both", Data([0]) + GovernanceFrame.encode([endorsed, byAlice])),
            ("body-revocation", Data([1]) + revocation.body),
            ("body-readmission", Data([1]) + readmission.body),
        ]
    }
}
