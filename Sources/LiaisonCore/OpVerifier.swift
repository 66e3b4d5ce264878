import Crypto
public import Foundation
import SwiftProtobuf
import Synchronization

/// Checks received ops: canonical encoding, body validity, the Merkle proof, the author's
/// signature over the batch root, that the signer's key is the author's, and every field
/// opening against its commitment.
///
/// A verified batch root is remembered, so the ops of one batch cost one signature check
/// and a few hashes each. Safe to share between tasks.
public final class OpVerifier: Sendable {
    private let verifiedRoots: Mutex<Set<Hash32>>
    private let capacity: Int
    /// Ops verified ahead of their turn (`verifyAhead`), by their bytes, until `verify` asks,
    /// with the bytes they hold.
    private let ahead: Mutex<(ops: [Data: VerifiedOp], bytes: Int)>
    private let aheadCapacity: Int
    private let aheadByteCapacity: Int

    /// Creates a verifier that remembers up to `capacity` verified batch roots, and at most
    /// `aheadCapacity` ops of at most `aheadByteCapacity` bytes in all verified ahead.
    public init(capacity: Int = 4096, aheadCapacity: Int = 16_384, aheadByteCapacity: Int = 32 << 20) {
        self.verifiedRoots = Mutex([])
        self.capacity = capacity
        self.ahead = Mutex(([:], 0))
        self.aheadCapacity = aheadCapacity
        self.aheadByteCapacity = aheadByteCapacity
    }

    /// Ops waiting verified ahead, and their bytes.
    var verifiedAhead: (count: Int, bytes: Int) { ahead.withLock { ($0.ops.count, $0.bytes) } }

    /// Verifies ops before the node's engine gets to them, on the caller's thread, and keeps
    /// those that verify for `verify` to hand out once (DESIGN §10: verify on every core
    /// while the previous batch commits). Verification is a function of the bytes alone, so
    /// an op verified ahead is exactly what `verify` would return; ops that fail are left for
    /// `verify` to refuse in order. Ops whose batch never reaches the engine's verification
    /// (the channel closed, or the session refused the batch first) would stay: so past
    /// `aheadCapacity` ops or `aheadByteCapacity` bytes (ops are up to 1 MiB each, and a
    /// hostile peer chooses them), everything waiting is dropped, and verified again if asked.
    public func verifyAhead(_ ops: [Data]) {
        var verified = [(Data, VerifiedOp)]()
        verified.reserveCapacity(ops.count)
        var size = 0
        for bytes in ops {
            if let op = try? verifyNow(bytes) {
                verified.append((bytes, op))
                size += bytes.count
            }
        }
        guard !verified.isEmpty else { return }
        ahead.withLock { ahead in
            if ahead.ops.count + verified.count > aheadCapacity || ahead.bytes + size > aheadByteCapacity {
                ahead.ops.removeAll(keepingCapacity: true)
                ahead.bytes = 0
            }
            guard verified.count <= aheadCapacity, size <= aheadByteCapacity else { return }
            for (bytes, op) in verified where ahead.ops.updateValue(op, forKey: bytes) == nil {
                ahead.bytes += bytes.count
            }
        }
    }

    /// Verifies an encoded `SignedOp`.
    public func verify(_ encoded: Data) throws(OpRejection) -> VerifiedOp {
        let known = ahead.withLock { ahead -> VerifiedOp? in
            guard !ahead.ops.isEmpty, let op = ahead.ops.removeValue(forKey: encoded) else { return nil }
            ahead.bytes -= encoded.count
            return op
        }
        if let known { return known }
        return try verifyNow(encoded)
    }

    private func verifyNow(_ encoded: Data) throws(OpRejection) -> VerifiedOp {
        guard encoded.count <= OpLimits.maxEncodedBytes else {
            throw OpRejection(.tooLarge, "op of \(encoded.count) bytes exceeds \(OpLimits.maxEncodedBytes)")
        }
        let signed = try CanonicalProto.decode(Liaison_V1_SignedOp.self, from: encoded, what: "signed op")
        let bodyMessage = try CanonicalProto.decode(Liaison_V1_OpBody.self, from: signed.body, what: "op body")
        let body = try OpBody(proto: bodyMessage)
        let id = OpID(body: signed.body)

        guard signed.hasProof else { throw OpRejection(.badProof, "no signature proof") }
        let proof = signed.proof
        guard proof.signerKey.count == 32,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: proof.signerKey)
        else { throw OpRejection(.badSignature, "signer key is not an Ed25519 public key") }
        guard NodeID(signingKey: key) == body.author else {
            throw OpRejection(.authorKeyMismatch, "the signing key is not the author's")
        }
        guard proof.siblings.count <= OpLimits.maxPathLength else { throw OpRejection(.badProof, "proof too long") }
        var path = [Hash32]()
        for sibling in proof.siblings {
            guard let hash = Hash32(bytes: sibling) else { throw OpRejection(.badProof, "sibling hash length") }
            path.append(hash)
        }
        guard let root = OpBatchTree.root(of: id, index: proof.leafIndex, count: proof.leafCount, path: path) else {
            throw OpRejection(.badProof, "proof does not fit the batch shape")
        }
        let message = OpBatchTree.signedMessage(root: root, leafCount: proof.leafCount)
        var cacheKey = CanonicalHasher(domain: "liaison/v1/verified-root")
        cacheKey.bytes(proof.signerKey)
        cacheKey.bytes(proof.signature)
        cacheKey.raw(message)
        let rootKey = cacheKey.finalize()
        if !verifiedRoots.withLock({ $0.contains(rootKey) }) {
            guard key.isValidSignature(proof.signature, for: message) else {
                throw OpRejection(.badSignature, "signature does not verify")
            }
            verifiedRoots.withLock { roots in
                if roots.count >= capacity { roots.removeAll(keepingCapacity: true) }
                roots.insert(rootKey)
            }
        }

        let commitments = Dictionary(uniqueKeysWithValues: body.change.fieldCommitments.map { ($0.name, $0.digest) })
        var openings = [String: FieldOpening]()
        for message in signed.openings {
            guard let committed = commitments[message.name] else {
                throw OpRejection(.badOpening, "opening for field '\(message.name)' that the op does not commit to")
            }
            guard openings[message.name] == nil else {
                throw OpRejection(.badOpening, "field '\(message.name)' opened twice")
            }
            let opening = FieldOpening(name: message.name, salt: Array(message.salt), value: message.value)
            guard opening.salt.count == 16, opening.digest == committed else {
                throw OpRejection(.badOpening, "value of field '\(message.name)' does not match its commitment")
            }
            openings[message.name] = opening
        }
        return VerifiedOp(id: id, body: body, openings: openings, encoded: encoded)
    }
}

extension VerifiedOp {
    /// This op with the values of `fields` withheld. The body and proof are untouched, so
    /// the copy verifies and has the same op id.
    public func redacting(_ fields: some Sequence<String>) throws(LiaisonError) -> VerifiedOp {
        let withheld = Set(fields)
        guard !withheld.isDisjoint(with: openings.keys) else { return self }
        do {
            var signed = try Liaison_V1_SignedOp(serializedBytes: encoded)
            signed.openings.removeAll { withheld.contains($0.name) }
            let bytes: Data = try signed.serializedBytes()
            return VerifiedOp(
                id: id, body: body, openings: openings.filter { !withheld.contains($0.key) }, encoded: bytes)
        } catch {
            throw LiaisonError(.invalidOp, "re-encoding a redacted op failed", cause: error)
        }
    }
}

extension VerifiedOp {
    /// Decodes an op this node verified before it stored it, without checking the
    /// signature again. Only for bytes read back from the node's own store.
    public init(storedEncoding encoded: Data) throws(LiaisonError) {
        do {
            let signed = try Liaison_V1_SignedOp(serializedBytes: encoded)
            let body = try OpBody(proto: Liaison_V1_OpBody(serializedBytes: signed.body))
            var openings = [String: FieldOpening]()
            for message in signed.openings {
                openings[message.name] = FieldOpening(
                    name: message.name, salt: Array(message.salt), value: message.value)
            }
            self.init(id: OpID(body: signed.body), body: body, openings: openings, encoded: encoded)
        } catch {
            throw LiaisonError(.corrupt, "a stored op cannot be decoded; the store is damaged", cause: error)
        }
    }
}
