import Crypto
import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonStore
import LiaisonTestSupport
import Testing

/// Sealed envelopes and receipts (DESIGN §5.8): only the recipient opens, only the sender
/// could have sealed, a relay can check the header but not the content, and the sender's
/// and relay's bookkeeping.
@Suite("Sealed relays")
struct SealedRelayTests {
    static let aliceSealing = Curve25519.KeyAgreement.PrivateKey()
    static let bobSealing = Curve25519.KeyAgreement.PrivateKey()
    static let mallorySealing = Curve25519.KeyAgreement.PrivateKey()

    static func ops() throws -> [Data] {
        var factory = OpFactory(seed: 9)
        let create = try factory.create(
            by: TestNode.alice,
            fields: [(name: "body", value: Data(#""the source is in the harbour office""#.utf8))]
        )
        return [create.encoded]
    }

    static func seal(
        _ ops: [Data], expires: UInt64 = 10_000, id: Data = Data(repeating: 7, count: 16)
    ) throws -> SealedEnvelope {
        try SealedEnvelope.seal(
            ops: ops,
            to: TestNode.bob.nodeID,
            recipientSealingKey: bobSealing.publicKey,
            signingKey: TestNode.alice.author.signingKey,
            sealingKey: aliceSealing,
            id: id,
            expiresMillis: expires
        )
    }

    @Test("the recipient opens what the sender sealed; the wire bytes hold no plaintext")
    func roundTrip() throws {
        let ops = try Self.ops()
        let envelope = try Self.seal(ops)
        let wire = envelope.encoded()
        #expect(wire.range(of: Data("harbour".utf8)) == nil)
        #expect(wire.range(of: ops[0].prefix(40)) == nil)
        let decoded = try SealedEnvelope.decode(wire)
        #expect(decoded.header.to == TestNode.bob.nodeID)
        #expect(decoded.header.from == TestNode.alice.nodeID)
        #expect(try decoded.open(with: Self.bobSealing, senderSealingKey: Self.aliceSealing.publicKey) == ops)
    }

    @Test("nobody but the recipient opens it, and it opens only as the named sender's")
    func onlyTheRecipient() throws {
        let envelope = try Self.seal(try Self.ops())
        #expect(throws: LiaisonError.self) {
            try envelope.open(with: Self.mallorySealing, senderSealingKey: Self.aliceSealing.publicKey)
        }
        #expect(throws: LiaisonError.self) {
            try envelope.open(with: Self.bobSealing, senderSealingKey: Self.mallorySealing.publicKey)
        }
    }

    @Test("a relay that alters the header, the ciphertext or the signature is caught before anyone opens it")
    func tamperingIsCaught() throws {
        let wire = try Self.seal(try Self.ops()).encoded()
        var caught = 0
        for index in stride(from: 0, to: wire.count, by: max(1, wire.count / 60)) {
            var altered = wire
            altered[index] ^= 0x20
            do {
                let decoded = try SealedEnvelope.decode(altered)
                _ = try decoded.open(with: Self.bobSealing, senderSealingKey: Self.aliceSealing.publicKey)
            } catch {
                caught += 1
                continue
            }
            Issue.record("a flipped bit at \(index) went unnoticed")
        }
        #expect(caught > 0)
    }

    @Test("an envelope signed with another key than its sender's is refused")
    func forgedSender() throws {
        // Mallory seals to Bob but claims Alice's NodeID in the header by signing with her own key.
        let envelope = try SealedEnvelope.seal(
            ops: try Self.ops(),
            to: TestNode.bob.nodeID,
            recipientSealingKey: Self.bobSealing.publicKey,
            signingKey: TestNode.mallory.author.signingKey,
            sealingKey: Self.mallorySealing,
            id: Data(repeating: 1, count: 16),
            expiresMillis: 10
        )
        #expect(envelope.header.from == TestNode.mallory.nodeID)
        #expect(throws: LiaisonError.self) {
            try envelope.open(with: Self.bobSealing, senderSealingKey: Self.aliceSealing.publicKey)
        }
    }

    @Test("a receipt names the envelope and verifies under the recipient's key only")
    func receipts() throws {
        let envelope = try Self.seal(try Self.ops())
        let receipt = try EnvelopeReceipt.sign(
            for: envelope, applied: 1, refused: 0, signingKey: TestNode.bob.author.signingKey)
        let decoded = try EnvelopeReceipt.decode(receipt.encoded())
        #expect(decoded.envelopeID == envelope.header.id)
        #expect(decoded.from == TestNode.bob.nodeID)
        #expect(decoded.to == TestNode.alice.nodeID)
        #expect(decoded.envelopeDigest == envelope.digest)
        var altered = receipt.encoded()
        altered[altered.count - 5] ^= 1
        #expect(throws: LiaisonError.self) { try EnvelopeReceipt.decode(altered) }
    }

    @Test("the sender keeps each envelope until its receipt, and sends an overdue one through another relay")
    func outboxRetries() throws {
        var outbox = SealedOutbox()
        #expect(outbox.cursor(for: "bob", acked: 40) == 40)
        let first = try Self.seal(try Self.ops(), id: Data(repeating: 1, count: 16))
        let second = try Self.seal(try Self.ops(), id: Data(repeating: 2, count: 16))
        outbox.sent(first, opCount: 1, to: "bob", via: "delta", nowMillis: 0)
        outbox.sent(second, opCount: 1, to: "bob", via: "delta", nowMillis: 0)
        outbox.advance("bob", to: 50)
        #expect(outbox.awaiting("bob") == 2)
        #expect(outbox.overdue(nowMillis: 2_999, timeoutMillis: 3_000) { _ in ["delta", "echo"] }.isEmpty)
        let bobReceipt = try EnvelopeReceipt.sign(
            for: first, applied: 1, refused: 0, signingKey: TestNode.bob.author.signingKey)
        #expect(outbox.receipt(bobReceipt, from: "bob") != nil)
        #expect(outbox.receipt(bobReceipt, from: "bob") == nil, "a duplicate receipt settles nothing")
        let retries = outbox.overdue(nowMillis: 3_000, timeoutMillis: 3_000) { _ in ["delta", "echo"] }
        #expect(retries.count == 1)
        #expect(retries.first?.relay == "echo")
        #expect(outbox.awaiting("bob") == 1)
        #expect(outbox.opsReceipted["bob"] == 1)
        // The link came back: sealing stops, its cursor is forgotten.
        outbox.linkRestored("bob")
        #expect(outbox.awaiting("bob") == 0)
        #expect(outbox.cursor(for: "bob", acked: 45) == 45)
    }

    @Test("the relay queue is bounded, drops expired envelopes and ignores duplicates")
    func relayQueue() throws {
        var queue = RelayQueue()
        queue.maxMessagesPerDestination = 2
        let a = try Self.seal(try Self.ops(), expires: 100, id: Data(repeating: 1, count: 16))
        let b = try Self.seal(try Self.ops(), expires: 10_000, id: Data(repeating: 2, count: 16))
        let c = try Self.seal(try Self.ops(), expires: 10_000, id: Data(repeating: 3, count: 16))
        try queue.enqueue(envelope: a, encoded: a.encoded(), destination: "bob", nowMillis: 0)
        try queue.enqueue(envelope: a, encoded: a.encoded(), destination: "bob", nowMillis: 0)
        try queue.enqueue(envelope: b, encoded: b.encoded(), destination: "bob", nowMillis: 0)
        #expect(queue.held(for: "bob") == 2)
        #expect(throws: RelayQueue.Refusal.full) {
            try queue.enqueue(envelope: c, encoded: c.encoded(), destination: "bob", nowMillis: 0)
        }
        #expect(throws: RelayQueue.Refusal.expired) {
            try queue.enqueue(envelope: a, encoded: a.encoded(), destination: "carol", nowMillis: 200)
        }
        let out = queue.drain("bob", nowMillis: 200)
        #expect(out == [.envelope(b.encoded())])
        #expect(queue.expired == 1)
        #expect(queue.held(for: "bob") == 0)
    }
}

/// The recipient's side of a sealed envelope, on the real `ReplicationStore`.
@Suite("Sealed delivery at the recipient")
struct SealedDeliveryTests {
    @Test("ops that came sealed are admitted as the link's own but move no checkpoint; a batch on a channel does")
    func sealedOpsMoveNoCheckpoint() throws {
        let store = MemoryStore()
        var logic = try ReplicationStore(
            me: TestNode.bob.recipient(),
            store: store,
            ladder: .standard,
            partners: [TestNode.alice.recipient(), TestNode.bob.recipient(), TestNode.carol.recipient()],
            neighbours: [
                ReplicationNeighbour(partner: TestNode.alice.recipient(), outbound: .passAll, inbound: .passAll)
            ],
            maxClockSkewMillis: 60_000,
            nowMillis: HLCTimestamp.testEpochMillis
        )
        var factory = OpFactory(seed: 3)
        let forBob = try factory.create(
            by: TestNode.alice, markings: Markings(classification: "UNCLASSIFIED", releasableTo: ["bob"]))
        let notForBob = try factory.create(
            by: TestNode.alice, markings: Markings(classification: "UNCLASSIFIED", releasableTo: ["carol"]))
        let outcome = try logic.receive(
            ops: [forBob.encoded, notForBob.encoded], through: nil, from: "alice", nowMillis: 1_700_000_100_000)
        let why = try store.custody(from: 1, limit: 100).map(\.detail)
        #expect(outcome.accepted == 1, "\(why)")
        #expect(outcome.refused == 1, "a sealed op not releasable to the recipient is refused like any other")
        #expect(try store.op(forBob.id) != nil)
        #expect(try store.op(notForBob.id) == nil)
        #expect(try store.checkpoint(link: ReplicationStore.receivedLink("alice")) == 0)
        _ = try logic.receive(ops: [], through: 7, from: "alice", nowMillis: 1_700_000_100_000)
        #expect(try store.checkpoint(link: ReplicationStore.receivedLink("alice")) == 7)
    }
}
