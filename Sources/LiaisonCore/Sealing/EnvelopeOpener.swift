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
/// for the very bytes it was decoded from, and `open` its ops only for an envelope with the
/// same signed bytes, opened with the same two keys. The engine `forget`s an envelope it drops
/// unopened; anything else never taken (a channel closed) is forgotten oldest first, past
/// `capacity` envelopes or `byteCapacity` bytes held (each envelope's bytes, ciphertext and
/// ops). Safe to share between tasks. The simulator's channels open envelopes ahead for the
/// receiving engine as the daemon's readers do (`Simulation.deliver`).
public final class EnvelopeOpener: Sendable {
    struct Entry {
        var bytes: Data
        var envelope: SealedEnvelope
        /// The public halves of the keys it was opened with, and what it held.
        var recipientKey: Data
        var senderKey: Data
        var ops: [Data]
        /// What it holds in memory, roughly.
        var size: Int
    }

    private let ahead = Mutex([Entry]())
    private let handed = Atomic<Int>(0)
    private let capacity: Int
    private let byteCapacity: Int

    /// Creates an opener that keeps at most `capacity` envelopes holding at most
    /// `byteCapacity` bytes in all.
    public init(capacity: Int = 16, byteCapacity: Int = 48 << 20) {
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

    /// Envelopes opened ahead and not yet taken.
    public var waiting: Int { ahead.withLock { $0.count } }

    /// How many decodings and openings were handed out instead of computed.
    public var handedOut: Int { handed.load(ordering: .relaxed) }

    /// On a channel's reader: decodes `bytes` and, if the envelope is addressed to `me`,
    /// `senderKey` knows its sender and `isNew` says it was not opened ahead before, opens it
    /// for the engine to take, with its digest computed, and returns its ops (to verify
    /// ahead). Anything else is left for the engine to judge and refuse in order; nothing is
    /// kept of it.
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
            bytes: bytes, envelope: envelope.withDigest(), recipientKey: sealingKey.publicKey.rawRepresentation,
            senderKey: key.rawRepresentation, ops: ops,
            size: bytes.count + envelope.ciphertext.count + ops.reduce(0) { $0 + $1.count })
        ahead.withLock { ahead in
            ahead.append(entry)
            var held = ahead.reduce(0) { $0 + $1.size }
            while ahead.count > capacity || held > byteCapacity {
                held -= ahead.removeFirst().size
            }
        }
        return ops
    }

    /// Decodes an envelope and checks its signature (`SealedEnvelope.decode`), or hands out
    /// the envelope decoded ahead from these very bytes.
    public func decode(_ bytes: Data) throws(LiaisonError) -> SealedEnvelope {
        // Compared outside the lock: up to 3 MiB each.
        let candidates = ahead.withLock { ahead in
            ahead.filter { $0.bytes.count == bytes.count }.map { ($0.bytes, $0.envelope) }
        }
        if let known = candidates.first(where: { $0.0 == bytes })?.1 {
            handed.add(1, ordering: .relaxed)
            return known
        }
        return try SealedEnvelope.decode(bytes)
    }

    /// Opens an envelope addressed here (`SealedEnvelope.open`), or hands out the ops it was
    /// opened to ahead, if it has the same signed bytes and was opened with the same keys;
    /// either way it is forgotten here.
    public func open(
        _ envelope: SealedEnvelope,
        with sealingKey: Curve25519.KeyAgreement.PrivateKey,
        senderSealingKey: Curve25519.KeyAgreement.PublicKey
    ) throws(LiaisonError) -> [Data] {
        if let entry = take(envelope), entry.envelope.isSame(as: envelope),
            entry.recipientKey == sealingKey.publicKey.rawRepresentation,
            entry.senderKey == senderSealingKey.rawRepresentation
        {
            handed.add(1, ordering: .relaxed)
            return entry.ops
        }
        return try envelope.open(with: sealingKey, senderSealingKey: senderSealingKey)
    }

    /// Drops what was opened ahead for an envelope the engine will not open (expired, from a
    /// quarantined partner, a replay): its ops are not kept in memory until pushed out.
    public func forget(_ envelope: SealedEnvelope) {
        _ = take(envelope)
    }

    /// Removes and returns the entry with the envelope's header, if any (at most one is
    /// of use: the rest of the envelope is compared by the caller, outside the lock).
    private func take(_ envelope: SealedEnvelope) -> Entry? {
        ahead.withLock { ahead in
            guard let index = ahead.firstIndex(where: { $0.envelope.headerBytes == envelope.headerBytes }) else {
                return nil
            }
            return ahead.remove(at: index)
        }
    }
}

extension SealedEnvelope {
    /// Whether `other` has the same signed bytes: header, keys, signature and ciphertext.
    func isSame(as other: SealedEnvelope) -> Bool {
        headerBytes == other.headerBytes && encapsulatedKey == other.encapsulatedKey && signature == other.signature
            && senderKey.rawRepresentation == other.senderKey.rawRepresentation && ciphertext == other.ciphertext
    }
}
