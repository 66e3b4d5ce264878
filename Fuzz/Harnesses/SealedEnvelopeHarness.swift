// Fuzzes the sealed-envelope decoders a relay or a recipient runs on bytes from a partner:
// `SealedEnvelope.decode` and `open`, and `EnvelopeReceipt.decode`.
//
// Input: one mode byte (taken modulo 3), then the rest.
// 0: the rest is an encoded envelope, decoded and, if it decodes, opened as bob (from alice);
//    also through an `EnvelopeOpener` after bob's reader opened it ahead, which must agree.
// 1: the rest is an encoded receipt.
// 2: the rest is a `SealedEnvelope` message of which the harness keeps the header and takes
//    the ciphertext field as the payload's plaintext: it seals and signs them as alice for bob,
//    so that mutations of the header and the payload get past the signature and the AEAD to
//    their decoders.
// Fuzz/Harnesses/ProtobufMutator.swift mutates the message's fields with their lengths intact.
import Crypto
import Foundation
import LiaisonTestSupport
import SwiftProtobuf

@testable import LiaisonCore

enum Harness {
    /// Deterministic sealing keys (any 32 bytes are an X25519 private key).
    static let aliceSealing = try! Curve25519.KeyAgreement.PrivateKey(
        rawRepresentation: Data(repeating: 0x11, count: 32))
    static let bobSealing = try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(repeating: 0x22, count: 32))

    static func run(_ input: Data) {
        guard let mode = input.first else { return }
        let rest = Data(input.dropFirst())
        switch mode % 3 {
        case 0: envelope(rest)
        case 1: receipt(rest)
        default: sealedParts(rest)
        }
    }

    static func envelope(_ bytes: Data) {
        checkOpener(bytes)
        guard let envelope = try? SealedEnvelope.decode(bytes) else { return }
        checkRoundTrip(envelope)
        _ = try? envelope.open(with: bobSealing, senderSealingKey: aliceSealing.publicKey)
    }

    /// What an `EnvelopeOpener` hands bob's engine after his reader opened `bytes` ahead is
    /// what decoding and opening them compute: the same envelope, the same ops, the same
    /// refusals.
    static func checkOpener(_ bytes: Data) {
        let opener = EnvelopeOpener()
        let ahead = opener.openAhead(
            bytes, me: TestNode.bob.nodeID, sealingKey: bobSealing,
            senderKey: { $0 == TestNode.alice.nodeID ? aliceSealing.publicKey : nil }, isNew: { _ in true })
        let direct = try? SealedEnvelope.decode(bytes)
        let handed = try? opener.decode(bytes)
        guard let direct, let handed else {
            FuzzCheck.expect(direct == nil && handed == nil && ahead == nil, "the opener decoded what decode refuses")
            return
        }
        FuzzCheck.expect(handed.isSame(as: direct) && handed.header == direct.header, "the opener decoded otherwise")
        let opened = try? direct.open(with: bobSealing, senderSealingKey: aliceSealing.publicKey)
        let handedOps = try? opener.open(handed, with: bobSealing, senderSealingKey: aliceSealing.publicKey)
        FuzzCheck.expect(handedOps == opened, "the opener opened otherwise")
        if let ahead { FuzzCheck.expect(ahead == opened, "the reader opened otherwise") }
    }

    static func checkRoundTrip(_ envelope: SealedEnvelope) {
        guard let again = try? SealedEnvelope.decode(envelope.encoded()) else {
            FuzzCheck.fail("a decoded envelope does not decode again from its own encoding")
        }
        FuzzCheck.expect(
            again.header == envelope.header && again.headerBytes == envelope.headerBytes
                && again.ciphertext == envelope.ciphertext && again.encapsulatedKey == envelope.encapsulatedKey
                && again.signature == envelope.signature && again.digest == envelope.digest,
            "an envelope's encoding decodes to another envelope")
    }

    static func receipt(_ bytes: Data) {
        guard let receipt = try? EnvelopeReceipt.decode(bytes) else { return }
        guard let again = try? EnvelopeReceipt.decode(receipt.encoded()) else {
            FuzzCheck.fail("a decoded receipt does not decode again from its own encoding")
        }
        FuzzCheck.expect(
            again.envelopeID == receipt.envelopeID && again.from == receipt.from && again.to == receipt.to
                && again.envelopeDigest == receipt.envelopeDigest && again.applied == receipt.applied
                && again.refused == receipt.refused,
            "a receipt's encoding decodes to another receipt")
    }

    static func sealedParts(_ bytes: Data) {
        guard let parts = try? Liaison_V1_SealedEnvelope(serializedBytes: bytes) else { return }
        let headerBytes = parts.header
        let plaintext = parts.ciphertext
        let wire: Data
        do {
            wire = try seal(headerBytes: headerBytes, plaintext: plaintext)
        } catch {
            FuzzCheck.fail("sealing a fuzzed header and payload failed: \(error)")
        }
        checkOpener(wire)
        guard let envelope = try? SealedEnvelope.decode(wire) else { return }
        FuzzCheck.expect(envelope.headerBytes == headerBytes, "the envelope's header is not the bytes signed")
        checkRoundTrip(envelope)
        // The payload opens exactly when it is a valid payload message, to the ops it holds.
        let expected = try? Liaison_V1_SealedPayload(serializedBytes: plaintext).ops
        let opened = try? envelope.open(with: bobSealing, senderSealingKey: aliceSealing.publicKey)
        FuzzCheck.expect(
            opened == expected,
            "open gave \(String(describing: opened)) for a payload of \(String(describing: expected))")
    }

    /// An envelope from alice to bob with the given header bytes and plaintext, sealed and
    /// signed as `SealedEnvelope.seal` does.
    static func seal(headerBytes: Data, plaintext: Data) throws -> Data {
        var sender = try HPKE.Sender(
            recipientKey: bobSealing.publicKey,
            ciphersuite: SealedEnvelope.suite,
            info: SealedEnvelope.info,
            authenticatedBy: aliceSealing
        )
        let ciphertext = try sender.seal(plaintext, authenticating: headerBytes)
        let signingKey = TestNode.alice.author.signingKey
        var message = Liaison_V1_SealedEnvelope()
        message.header = headerBytes
        message.senderKey = signingKey.publicKey.rawRepresentation
        message.encapsulatedKey = sender.encapsulatedKey
        message.ciphertext = ciphertext
        message.signature = try signingKey.signature(
            for: SealedEnvelope.signedBytes(
                headerBytes: headerBytes, encapsulatedKey: sender.encapsulatedKey, ciphertext: ciphertext))
        return try message.serializedBytes()
    }

    static func seeds() throws -> [(String, Data)] {
        var factory = OpFactory(seed: 73)
        let create = try factory.create(
            by: .alice, fields: [(name: "body", value: JSONText.string("the source is in the harbour office"))],
            at: .test(1))
        let item = try ItemState(create: create)
        let ops = try [create.encoded] + factory.batch(of: 2, on: item, by: .alice).map(\.encoded)
        func seal(_ ops: [Data], to node: TestNode, key: Curve25519.KeyAgreement.PublicKey) throws -> SealedEnvelope {
            try SealedEnvelope.seal(
                ops: ops, to: node.nodeID, recipientSealingKey: key, signingKey: TestNode.alice.author.signingKey,
                sealingKey: aliceSealing, id: Data(repeating: 7, count: 16), expiresMillis: 1_700_000_600_000)
        }
        let forBob = try seal(ops, to: .bob, key: bobSealing.publicKey)
        let forCarol = try seal([create.encoded], to: .carol, key: Curve25519.KeyAgreement.PrivateKey().publicKey)
        let receipt = try EnvelopeReceipt.sign(
            for: forBob, applied: 2, refused: 1, signingKey: TestNode.bob.author.signingKey)
        var payload = Liaison_V1_SealedPayload()
        payload.ops = ops
        let plaintext: Data = try payload.serializedBytes()
        var parts = Liaison_V1_SealedEnvelope()
        parts.header = forBob.headerBytes
        parts.ciphertext = plaintext
        let partsBytes: Data = try parts.serializedBytes()
        parts.ciphertext = Data()
        let emptyPayload: Data = try parts.serializedBytes()
        return [
            ("envelope-for-bob", Data([0]) + forBob.encoded()),
            ("envelope-for-carol", Data([0]) + forCarol.encoded()),
            ("receipt", Data([1]) + receipt.encoded()),
            ("parts-for-bob", Data([2]) + partsBytes),
            ("parts-empty-payload", Data([2]) + emptyPayload),
        ]
    }
}
