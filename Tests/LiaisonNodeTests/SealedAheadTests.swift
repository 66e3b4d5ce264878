import Crypto
import Foundation
import LiaisonTestSupport
import Testing

@testable import LiaisonCore
@testable import LiaisonNode

/// A channel's reader opens envelopes addressed to its node and verifies their ops ahead of
/// the engine (`SealedAhead`); anything else it leaves to the engine.
@Suite("Sealed envelopes verified ahead")
struct SealedAheadTests {
    static let aliceSealing = Curve25519.KeyAgreement.PrivateKey()
    static let bobSealing = Curve25519.KeyAgreement.PrivateKey()

    static func envelope(to: TestNode, recipientKey: Curve25519.KeyAgreement.PublicKey) throws -> (Data, [Data]) {
        var factory = OpFactory(seed: 17)
        let ops = try (0..<3).map { try factory.create(by: .alice, at: .test(UInt64($0))).encoded }
        let sealed = try SealedEnvelope.seal(
            ops: ops, to: to.nodeID, recipientSealingKey: recipientKey, signingKey: TestNode.alice.author.signingKey,
            sealingKey: aliceSealing, id: Data(repeating: 3, count: 16), expiresMillis: 10_000)
        return (sealed.encoded(), ops)
    }

    /// Bob's reader, knowing alice's sealing key.
    let bobsReader = SealedAhead(
        me: TestNode.bob.nodeID, sealingKey: bobSealing, opener: EnvelopeOpener(),
        senders: [TestNode.alice.nodeID: aliceSealing.publicKey])

    @Test(
        "an envelope for this node from a known sender is opened ahead for the engine and its ops verified ahead, once each"
    )
    func opensOwnEnvelopes() throws {
        let (bytes, ops) = try Self.envelope(to: .bob, recipientKey: Self.bobSealing.publicKey)
        let verifier = OpVerifier()
        bobsReader.verifyAhead(bytes, with: verifier)
        #expect(verifier.verifiedAhead.count == ops.count)
        #expect(bobsReader.opener.waiting == 1)
        // The engine's decoding and opening take what the reader did.
        let envelope = try bobsReader.opener.decode(bytes)
        #expect(
            try bobsReader.opener.open(envelope, with: Self.bobSealing, senderSealingKey: Self.aliceSealing.publicKey)
                == ops)
        #expect(bobsReader.opener.handedOut == 2)
        #expect(bobsReader.opener.waiting == 0)
        for op in ops { _ = try verifier.verify(op) }
        #expect(verifier.verifiedAhead.count == 0, "the engine's verification took each op from the cache")
        // A relay replaying it: the reader does not open and verify it again.
        bobsReader.verifyAhead(bytes, with: verifier)
        #expect(verifier.verifiedAhead.count == 0)
        #expect(bobsReader.opener.waiting == 0)
    }

    @Test("an envelope for another node, from an unknown sender, or that is not an envelope is left alone")
    func leavesTheRest() throws {
        let verifier = OpVerifier()
        // For carol (bob relays it): bob cannot open it and does not try.
        let carol = Curve25519.KeyAgreement.PrivateKey()
        bobsReader.verifyAhead(
            try Self.envelope(to: .carol, recipientKey: carol.publicKey).0, with: verifier)
        // For bob, but from a sender whose sealing key bob's reader does not know.
        let stranger = SealedAhead(
            me: TestNode.bob.nodeID, sealingKey: Self.bobSealing, opener: bobsReader.opener, senders: [:])
        stranger.verifyAhead(try Self.envelope(to: .bob, recipientKey: Self.bobSealing.publicKey).0, with: verifier)
        // Garbage.
        bobsReader.verifyAhead(Data(repeating: 0xFF, count: 64), with: verifier)
        #expect(verifier.verifiedAhead.count == 0)
        #expect(bobsReader.opener.waiting == 0, "nothing kept for the engine")
    }
}
