import Crypto
import Foundation
import LiaisonTestSupport
import Testing

@testable import LiaisonCore

/// A channel's reader decodes and opens envelopes addressed to its node ahead of the engine
/// (`EnvelopeOpener`); the engine gets the results only for the very bytes and the same keys,
/// so it cannot be handed anything it would not have computed itself.
@Suite("Envelopes opened ahead")
struct EnvelopeOpenerTests {
    static let aliceSealing = SealedRelayTests.aliceSealing
    static let bobSealing = SealedRelayTests.bobSealing

    static func wire(id: UInt8) throws -> (bytes: Data, ops: [Data]) {
        let ops = try SealedRelayTests.ops()
        return (try SealedRelayTests.seal(ops, id: Data(repeating: id, count: 16)).encoded(), ops)
    }

    /// Bob's reader opening `bytes` ahead.
    @discardableResult
    static func openAhead(_ bytes: Data, into opener: EnvelopeOpener) -> [Data]? {
        opener.openAhead(
            bytes, me: TestNode.bob.nodeID, sealingKey: bobSealing,
            senderKey: { $0 == TestNode.alice.nodeID ? aliceSealing.publicKey : nil }, isNew: { _ in true })
    }

    @Test("the engine is handed what the reader opened, for the same bytes and keys, once")
    func handsOutOnce() throws {
        let (bytes, ops) = try Self.wire(id: 1)
        let opener = EnvelopeOpener()
        #expect(Self.openAhead(bytes, into: opener) == ops)
        #expect(opener.waiting == 1)
        let envelope = try opener.decode(bytes)
        #expect(envelope.digest == Hash32.sha256(envelope.ciphertext))
        #expect(try opener.open(envelope, with: Self.bobSealing, senderSealingKey: Self.aliceSealing.publicKey) == ops)
        #expect(opener.handedOut == 2)
        #expect(opener.waiting == 0)
        // Taken once: the same envelope again is decoded and opened afresh, with the same result.
        let again = try opener.decode(bytes)
        #expect(try opener.open(again, with: Self.bobSealing, senderSealingKey: Self.aliceSealing.publicKey) == ops)
        #expect(opener.handedOut == 2)
    }

    @Test(
        "altered bytes are decoded afresh and refused, and other keys open afresh and fail, whatever was opened ahead")
    func nothingForOtherBytesOrKeys() throws {
        let (bytes, _) = try Self.wire(id: 2)
        let opener = EnvelopeOpener()
        Self.openAhead(bytes, into: opener)
        // One byte of the ciphertext changed (the signature no longer covers it).
        var altered = bytes
        altered[altered.count - 80] ^= 0x01
        #expect(throws: LiaisonError.self) { try opener.decode(altered) }
        // The engine's keys for the sender are not those the reader used (a partner
        // readmitted with new keys since the reader was made): opened with the engine's keys.
        let envelope = try opener.decode(bytes)
        let newKey = Curve25519.KeyAgreement.PrivateKey().publicKey
        #expect(throws: LiaisonError.self) {
            try opener.open(envelope, with: Self.bobSealing, senderSealingKey: newKey)
        }
        #expect(opener.handedOut == 1, "only the decoding of the same bytes")
        #expect(opener.waiting == 0)
    }

    @Test("envelopes for another node, from an unknown sender, already seen or unopenable are not kept")
    func keepsOnlyWhatOpens() throws {
        let opener = EnvelopeOpener()
        let carol = Curve25519.KeyAgreement.PrivateKey()
        let forCarol = try SealedEnvelope.seal(
            ops: try SealedRelayTests.ops(), to: TestNode.carol.nodeID, recipientSealingKey: carol.publicKey,
            signingKey: TestNode.alice.author.signingKey, sealingKey: Self.aliceSealing,
            id: Data(repeating: 3, count: 16), expiresMillis: 10_000)
        #expect(Self.openAhead(forCarol.encoded(), into: opener) == nil)
        let (bytes, _) = try Self.wire(id: 4)
        #expect(
            opener.openAhead(
                bytes, me: TestNode.bob.nodeID, sealingKey: Self.bobSealing, senderKey: { _ in nil },
                isNew: { _ in true }) == nil)
        #expect(
            opener.openAhead(
                bytes, me: TestNode.bob.nodeID, sealingKey: Self.bobSealing,
                senderKey: { _ in Self.aliceSealing.publicKey }, isNew: { _ in false }) == nil)
        let mallory = Curve25519.KeyAgreement.PrivateKey().publicKey
        #expect(
            opener.openAhead(
                bytes, me: TestNode.bob.nodeID, sealingKey: Self.bobSealing, senderKey: { _ in mallory },
                isNew: { _ in true }) == nil)
        #expect(Self.openAhead(Data(repeating: 0xFF, count: 64), into: opener) == nil)
        #expect(opener.waiting == 0)
    }

    @Test("past its capacity in envelopes or bytes the opener forgets the oldest, which the engine then opens itself")
    func bounded() throws {
        let opener = EnvelopeOpener(capacity: 2)
        let wires = try (10..<13).map { try Self.wire(id: UInt8($0)) }
        for wire in wires { Self.openAhead(wire.bytes, into: opener) }
        #expect(opener.waiting == 2)
        for wire in wires {
            let envelope = try opener.decode(wire.bytes)
            #expect(
                try opener.open(envelope, with: Self.bobSealing, senderSealingKey: Self.aliceSealing.publicKey)
                    == wire.ops)
        }
        #expect(opener.handedOut == 4, "the two newest, decoded and opened")
        // Each envelope holds its bytes, its ciphertext and its ops.
        let size =
            wires[0].bytes.count + (try SealedEnvelope.decode(wires[0].bytes)).ciphertext.count
            + wires[0].ops.reduce(0) { $0 + $1.count }
        let small = EnvelopeOpener(byteCapacity: size * 2 - 1)
        for wire in wires { Self.openAhead(wire.bytes, into: small) }
        #expect(small.waiting == 1)
    }

    @Test(
        "another envelope with the same sender and id (a hostile sender's second one) gets its own ops, never those opened ahead"
    )
    func sameHeaderOtherContent() throws {
        let first = try SealedRelayTests.seal(try SealedRelayTests.ops(), id: Data(repeating: 5, count: 16))
        var factory = OpFactory(seed: 77)
        let otherOps = [try factory.create(by: .alice, fields: [(name: "body", value: Data("2".utf8))]).encoded]
        let second = try SealedRelayTests.seal(otherOps, id: Data(repeating: 5, count: 16))
        #expect(first.headerBytes == second.headerBytes)
        let opener = EnvelopeOpener()
        Self.openAhead(first.encoded(), into: opener)
        let decoded = try opener.decode(second.encoded())
        #expect(
            try opener.open(decoded, with: Self.bobSealing, senderSealingKey: Self.aliceSealing.publicKey) == otherOps)
        #expect(opener.handedOut == 0)
    }

    @Test("an envelope the engine lets go unopened is forgotten at once, with its ops")
    func forgotten() throws {
        let (bytes, _) = try Self.wire(id: 6)
        let opener = EnvelopeOpener()
        Self.openAhead(bytes, into: opener)
        opener.forget(try opener.decode(bytes))
        #expect(opener.waiting == 0)
    }

    @Test("an envelope opened ahead carries its digest, computed once; one only decoded computes it when asked")
    func digestOnce() throws {
        let (bytes, _) = try Self.wire(id: 7)
        let decoded = try SealedEnvelope.decode(bytes)
        #expect(decoded.knownDigest == nil, "a relay, which never names it, does not hash the ciphertext")
        #expect(decoded.digest == Hash32.sha256(decoded.ciphertext))
        let opener = EnvelopeOpener()
        Self.openAhead(bytes, into: opener)
        #expect(try opener.decode(bytes).knownDigest == decoded.digest)
    }
}
