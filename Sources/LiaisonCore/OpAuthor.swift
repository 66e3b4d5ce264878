public import Crypto
public import Foundation
import SwiftProtobuf

/// An op whose body is encoded but not yet signed.
public struct UnsignedOp: Sendable {
    /// The decoded body.
    public let body: OpBody
    /// The exact body bytes that will be signed.
    public let bodyBytes: Data
    /// The field values beside the body.
    public let openings: [FieldOpening]

    /// SHA-256 of the body bytes.
    public var id: OpID { OpID(body: bodyBytes) }
}

/// A node's authority to author ops: its Ed25519 signing key.
///
/// Makes op bodies (drawing salts and nonces from an injected generator) and signs them
/// in batches: one Ed25519 signature over the Merkle root of the batch's op ids.
public struct OpAuthor: Sendable {
    /// The private signing key.
    public let signingKey: Curve25519.Signing.PrivateKey
    /// The NodeID of the key.
    public let nodeID: NodeID

    /// Wraps a signing key.
    public init(signingKey: Curve25519.Signing.PrivateKey) {
        self.signingKey = signingKey
        self.nodeID = NodeID(signingKey: signingKey.publicKey)
    }

    /// A create op for a new item. `withheld` names, per field, the partners and groups the
    /// value is withheld from on every path (signed in the op; a field not given is refused).
    /// `nonce` (16 bytes) fixes the item's id (an item bound to an outside identifier, such as
    /// a STIX object's); nil draws it at random.
    public func create(
        collection: String,
        markings: Markings,
        fields: [(name: String, value: Data)] = [],
        tags: [String] = [],
        writePolicy: WritePolicy = .originatorOnly,
        withheld: [String: [String]] = [:],
        nonce given: [UInt8]? = nil,
        hlc: HLCTimestamp,
        using generator: inout some RandomNumberGenerator
    ) throws(LiaisonError) -> UnsignedOp {
        if let given, given.count != 16 {
            throw LiaisonError(.invalidArgument, "an item's nonce is 16 bytes, not \(given.count)")
        }
        let nonce = given ?? randomBytes(16, using: &generator)
        let (commitments, openings) = try commit(fields, withheld: withheld, using: &generator)
        let change = OpChange.create(
            CreateChange(
                nonce: nonce,
                collection: collection,
                markings: markings,
                fields: commitments,
                tags: tags,
                writePolicy: writePolicy
            )
        )
        let body = OpBody(
            itemID: ItemID(originator: nodeID, nonce: nonce),
            originator: nodeID,
            author: nodeID,
            hlc: hlc,
            change: change
        )
        return try encode(body, openings: openings)
    }

    /// An op that sets fields of an item. `withheld` names, per field, the partners and
    /// groups the value is withheld from on every path (signed in the op).
    public func setFields(
        _ fields: [(name: String, value: Data)],
        of item: ItemState,
        withheld: [String: [String]] = [:],
        hlc: HLCTimestamp,
        using generator: inout some RandomNumberGenerator
    ) throws(LiaisonError) -> UnsignedOp {
        let (commitments, openings) = try commit(fields, withheld: withheld, using: &generator)
        return try change(item, .setFields(commitments), hlc: hlc, openings: openings)
    }

    /// An op that changes an item without field values: tags, delete, markings, recall.
    /// For `.removeTags`, build the removals with `ItemState.liveInstances(of:)`.
    public func change(
        _ item: ItemState,
        _ change: OpChange,
        hlc: HLCTimestamp,
        openings: [FieldOpening] = []
    ) throws(LiaisonError) -> UnsignedOp {
        let body = OpBody(itemID: item.id, originator: item.originator, author: nodeID, hlc: hlc, change: change)
        return try encode(body, openings: openings)
    }

    /// Signs ops as one batch: one signature, and a Merkle proof per op.
    public func sign(_ ops: [UnsignedOp]) throws(LiaisonError) -> [VerifiedOp] {
        guard !ops.isEmpty else { return [] }
        guard ops.count <= 1 << OpLimits.maxPathLength else {
            throw LiaisonError(.invalidArgument, "a signature batch holds at most \(1 << OpLimits.maxPathLength) ops")
        }
        let ids = ops.map(\.id)
        let (root, paths) = OpBatchTree.build(ids)
        let count = UInt32(ops.count)
        let signature: Data
        do {
            signature = try signingKey.signature(for: OpBatchTree.signedMessage(root: root, leafCount: count))
        } catch {
            throw LiaisonError(.invalidOp, "signing failed", cause: error)
        }
        let publicKey = signingKey.publicKey.rawRepresentation
        var out = [VerifiedOp]()
        out.reserveCapacity(ops.count)
        for (index, op) in ops.enumerated() {
            var proof = Liaison_V1_BatchProof()
            proof.signerKey = publicKey
            proof.signature = signature
            proof.leafIndex = UInt32(index)
            proof.leafCount = count
            proof.siblings = paths[index].map(\.data)
            var signed = Liaison_V1_SignedOp()
            signed.body = op.bodyBytes
            signed.proof = proof
            signed.openings = op.openings.map(\.proto)
            let encoded: Data
            do {
                encoded = try signed.serializedBytes()
            } catch {
                throw LiaisonError(.invalidOp, "encoding a signed op failed", cause: error)
            }
            let openings = Dictionary(uniqueKeysWithValues: op.openings.map { ($0.name, $0) })
            out.append(VerifiedOp(id: ids[index], body: op.body, openings: openings, encoded: encoded))
        }
        return out
    }

    private func encode(_ body: OpBody, openings: [FieldOpening]) throws(LiaisonError) -> UnsignedOp {
        let bytes: Data
        do {
            bytes = try body.proto.serializedBytes()
        } catch {
            throw LiaisonError(.invalidOp, "encoding an op body failed", cause: error)
        }
        // Check the op as a receiver would, so that no node ever signs what others refuse.
        do {
            let decoded = try OpBody(proto: CanonicalProto.decode(Liaison_V1_OpBody.self, from: bytes, what: "op body"))
            precondition(decoded == body, "op body does not survive its own encoding")
        } catch {
            throw LiaisonError(.invalidArgument, "the op is not valid: \(error.detail)", cause: error)
        }
        return UnsignedOp(body: body, bodyBytes: bytes, openings: openings.sorted { $0.name < $1.name })
    }

    private func commit(
        _ fields: [(name: String, value: Data)],
        withheld: [String: [String]],
        using generator: inout some RandomNumberGenerator
    )
        throws(LiaisonError) -> ([FieldCommitment], [FieldOpening])
    {
        var commitments = [FieldCommitment]()
        var openings = [FieldOpening]()
        if let stray = withheld.keys.sorted().first(where: { name in !fields.contains { $0.name == name } }) {
            throw LiaisonError(
                .invalidArgument, "field '\(stray)' is withheld but not set: withhold only fields you give")
        }
        for (name, value) in fields {
            guard Names.isValid(name) else {
                throw LiaisonError(
                    .invalidArgument, "invalid field name '\(name)': use 1-128 letters, digits or . _ - : /")
            }
            guard (try? JSONSerialization.jsonObject(with: value, options: [.fragmentsAllowed])) != nil else {
                throw LiaisonError(.invalidArgument, "the value of field '\(name)' is not JSON text")
            }
            let opening = FieldOpening(name: name, salt: randomBytes(16, using: &generator), value: value)
            for audience in withheld[name] ?? [] where !Names.isValidLabel(audience) {
                throw LiaisonError(.invalidArgument, "field '\(name)' is withheld from an invalid name '\(audience)'")
            }
            commitments.append(
                FieldCommitment(name: name, digest: opening.digest, withheldFrom: withheld[name] ?? []))
            openings.append(opening)
        }
        return (commitments, openings)
    }
}

func randomBytes(_ count: Int, using generator: inout some RandomNumberGenerator) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(count)
    while out.count < count {
        var word = generator.next()
        for _ in 0..<8 where out.count < count {
            out.append(UInt8(truncatingIfNeeded: word))
            word >>= 8
        }
    }
    return out
}
