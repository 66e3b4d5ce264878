public import Crypto
public import Foundation
import Synchronization

/// Decodes and opens sealed envelopes for a node's engine, handing out the work done ahead of
/// it: a channel's reader decodes and opens an envelope addressed here on its own thread
/// (`openAhead`), and the engine, which decides what happens to the envelope, gets the
/// results instead of checking its signature, hashing and deciphering up to 3 MiB again on
/// its one thread (DESIGN §10: sealing and opening off the hot actor).
///
/// Decoding and opening are functions of the bytes and the keys alone, so what the engine
/// gets from here is exactly what it would have computed: `decode` hands out an envelope only
/// for the very bytes it was decoded from, and `open` its ops only for the same envelope,
/// opened with the same keys. What is never asked for (a replay the engine drops, a channel
/// closed) is forgotten oldest first, past `capacity` envelopes or `byteCapacity` bytes.
/// Safe to share between tasks; the simulator's engines use one with nothing ahead.
public final class EnvelopeOpener: Sendable {
    struct Entry {
        var bytes: Data
        var envelope: SealedEnvelope
        /// The keys it was opened with, and what it held.
        var sealingKey: Data
        var senderKey: Data
        var ops: [Data]
    }

    private let ahead = Mutex([Entry]())
    private let handed = Atomic<Int>(0)
    /// How many decodings and openings were handed out instead of computed (for tests).
    var handedOut: Int { handed.load(ordering: .relaxed) }
    private let capacity: Int
    private let byteCapacity: Int

    /// Creates an opener that keeps at most `capacity` envelopes of at most `byteCapacity`
    /// bytes in all (each costs about three times its size: its bytes, its ciphertext, its ops).
    public init(capacity: Int = 8, byteCapacity: Int = 16 << 20) {
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

    /// Envelopes opened ahead and not yet taken.
    public var waiting: Int { ahead.withLock { $0.count } }

    /// On a channel's reader: decodes `bytes` and, if the envelope is addressed to `me`,
    /// `senderKey` knows its sender and `isNew` says it was not opened ahead before, opens it
    /// for the engine to take, and returns its ops (to verify ahead). Anything else is left
    /// for the engine to judge and refuse in order; nothing is kept of it.
    public func openAhead(
        _ bytes: Data,
        me: NodeID,
        sealingKey: Curve25519.KeyAgreement.PrivateKey,
        senderKey: (NodeID) -> Curve25519.KeyAgreement.PublicKey?,
        isNew: (SealedEnvelope) -> Bool
    ) -> [Data]? {
        guard bytes.count <= byteCapacity, let envelope = try? SealedEnvelope.decode(bytes),
            envelope.header.to == me, let key = senderKey(envelope.header.from), isNew(envelope),
            let ops = try? envelope.open(with: sealingKey, senderSealingKey: key)
        else { return nil }
        let entry = Entry(
            bytes: bytes, envelope: envelope, sealingKey: sealingKey.rawRepresentation,
            senderKey: key.rawRepresentation, ops: ops)
        ahead.withLock { ahead in
            ahead.append(entry)
            var held = ahead.reduce(0) { $0 + $1.bytes.count }
            while ahead.count > capacity || held > byteCapacity {
                held -= ahead.removeFirst().bytes.count
            }
        }
        return ops
    }

    /// Decodes an envelope and checks its signature (`SealedEnvelope.decode`), or hands out
    /// the envelope decoded ahead from these very bytes.
    public func decode(_ bytes: Data) throws(LiaisonError) -> SealedEnvelope {
        let known = ahead.withLock { ahead -> SealedEnvelope? in
            ahead.first { $0.bytes.count == bytes.count && $0.bytes == bytes }?.envelope
        }
        if let known {
            handed.add(1, ordering: .relaxed)
            return known
        }
        return try SealedEnvelope.decode(bytes)
    }

    /// Opens an envelope addressed here (`SealedEnvelope.open`), or hands out the ops it was
    /// opened to ahead with the same keys; either way it is forgotten here.
    public func open(
        _ envelope: SealedEnvelope,
        with sealingKey: Curve25519.KeyAgreement.PrivateKey,
        senderSealingKey: Curve25519.KeyAgreement.PublicKey
    ) throws(LiaisonError) -> [Data] {
        let entry = ahead.withLock { ahead -> Entry? in
            guard let index = ahead.firstIndex(where: { $0.envelope.isSame(as: envelope) }) else { return nil }
            return ahead.remove(at: index)
        }
        if let entry, entry.sealingKey == sealingKey.rawRepresentation,
            entry.senderKey == senderSealingKey.rawRepresentation
        {
            handed.add(1, ordering: .relaxed)
            return entry.ops
        }
        return try envelope.open(with: sealingKey, senderSealingKey: senderSealingKey)
    }
}

extension SealedEnvelope {
    /// Whether `other` has the same signed bytes: header, keys, ciphertext and signature.
    func isSame(as other: SealedEnvelope) -> Bool {
        digest == other.digest && headerBytes == other.headerBytes && encapsulatedKey == other.encapsulatedKey
            && signature == other.signature && senderKey.rawRepresentation == other.senderKey.rawRepresentation
            && ciphertext == other.ciphertext
    }
}
