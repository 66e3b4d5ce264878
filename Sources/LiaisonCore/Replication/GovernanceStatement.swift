public import Crypto
public import Foundation
import SwiftProtobuf

/// A partner's keys are no longer trusted (DESIGN §6, "Revocation"): once a quorum of the
/// other partners endorses it, every node quarantines the partner from `sinceMillis` on.
public struct Revocation: Hashable, Sendable {
    /// The partner's name.
    public var partner: String
    /// The NodeID revoked.
    public var nodeID: NodeID
    /// Its ops stamped from then on (Unix milliseconds) are left out.
    public var sinceMillis: UInt64

    /// Creates a revocation.
    public init(partner: String, nodeID: NodeID, sinceMillis: UInt64) {
        self.partner = partner
        self.nodeID = nodeID
        self.sinceMillis = sinceMillis
    }
}

/// A revoked partner's new keys. Once a quorum endorses it, every node pins the new identity
/// instead of the one its federation configuration names, and lifts the revocation's
/// quarantine; the revoked keys stay refused.
public struct PartnerIdentity: Hashable, Sendable, Codable {
    /// Its NodeID (SHA-256 of its Ed25519 key): ops, hellos and endorsements are checked
    /// against it.
    public var nodeID: NodeID
    /// SHA-256 of its TLS certificate's DER, lower-case hex: the pin.
    public var tlsFingerprint: String
    /// Its X25519 sealing public key, base64 (as `federation.json` has it).
    public var sealingKey: String

    /// Creates an identity.
    public init(nodeID: NodeID, tlsFingerprint: String, sealingKey: String) {
        self.nodeID = nodeID
        self.tlsFingerprint = tlsFingerprint
        self.sealingKey = sealingKey
    }

    /// Checks the parts: a 64-digit hex fingerprint and a 32-byte key in base64.
    public func validated() throws(LiaisonError) -> PartnerIdentity {
        let fingerprint = tlsFingerprint.lowercased()
        guard fingerprint.count == 64, Hex.decode(fingerprint) != nil else {
            throw LiaisonError(
                .invalidArgument,
                "the TLS fingerprint must be 64 hex digits (SHA-256 of the certificate; 'liaison rekey' prints it)")
        }
        guard let key = Data(base64Encoded: sealingKey), key.count == 32 else {
            throw LiaisonError(
                .invalidArgument, "the sealing key must be 32 bytes in base64 ('liaison rekey' prints it)")
        }
        return PartnerIdentity(nodeID: nodeID, tlsFingerprint: fingerprint, sealingKey: sealingKey)
    }
}

/// A revoked partner comes back with new keys: the statement that says so.
public struct Readmission: Hashable, Sendable {
    /// The partner's name.
    public var partner: String
    /// The revocation it ends (its statement id).
    public var revocation: Hash32
    /// The new identity.
    public var identity: PartnerIdentity

    /// Creates a re-admission.
    public init(partner: String, revocation: Hash32, identity: PartnerIdentity) {
        self.partner = partner
        self.revocation = revocation
        self.identity = identity
    }
}

/// What a governance statement says.
public enum GovernanceContent: Hashable, Sendable {
    /// A partner's keys are revoked.
    case revocation(Revocation)
    /// A revoked partner comes back with new keys.
    case readmission(Readmission)

    /// The partner the statement is about: it is never sent to that partner, and its own
    /// endorsements do not count.
    public var partner: String {
        switch self {
        case .revocation(let revocation): revocation.partner
        case .readmission(let readmission): readmission.partner
        }
    }

    /// `revocation` or `readmission`.
    public var kind: String {
        switch self {
        case .revocation: "revocation"
        case .readmission: "readmission"
        }
    }
}

/// One partner's signature over a statement's body.
public struct Endorsement: Hashable, Sendable, Codable {
    /// The endorser's Ed25519 public key, 32 bytes.
    public var signerKey: Data
    /// The Ed25519 signature over `"liaison/v1/governance" ‖ SHA-256(body)`.
    public var signature: Data

    /// Creates an endorsement.
    public init(signerKey: Data, signature: Data) {
        self.signerKey = signerKey
        self.signature = signature
    }

    /// The endorser: SHA-256 of its key.
    public var endorser: NodeID { NodeID(hash: Hash32.sha256(signerKey)) }
}

/// A revocation or a re-admission, with the endorsements gathered for it
/// (`proto/liaison/v1/governance.proto`). The body's exact bytes are what endorsers sign,
/// and their SHA-256 is the statement's id, so endorsements made at different nodes for the
/// same content combine: the endorsements of one body are a grow-only set, merged by union.
public struct GovernanceStatement: Hashable, Sendable {
    /// The federation's name the statement belongs to.
    public let federation: String
    /// What it says.
    public let content: GovernanceContent
    /// The encoded body, as endorsed.
    public let body: Data
    /// SHA-256 of the body.
    public let id: Hash32
    /// Endorsements by endorser. Only verified ones are kept (`GovernanceLedger`).
    public var endorsements: [NodeID: Endorsement]

    /// The signed message's domain.
    static let context = Data("liaison/v1/governance".utf8)
    /// Most bytes a body may have.
    public static let maxBodyBytes = 1_024
    /// Most endorsements one statement may carry (a federation has at most this many partners).
    public static let maxEndorsements = 256
    /// Most statements one frame may carry.
    public static let maxPerFrame = 256

    /// A statement with no endorsement yet. The body is the deterministic encoding of the
    /// content, so every node that states the same content states the same body.
    public init(federation: String, content: GovernanceContent) throws(LiaisonError) {
        var message = Liaison_V1_GovernanceBody()
        message.format = 1
        message.federation = federation
        switch content {
        case .revocation(let revocation):
            guard NameRules.isPartnerName(revocation.partner) else {
                throw LiaisonError(.invalidArgument, "'\(revocation.partner)' is not a partner name")
            }
            var inner = Liaison_V1_Revocation()
            inner.partner = revocation.partner
            inner.nodeID = revocation.nodeID.hash.data
            inner.sinceMillis = revocation.sinceMillis
            message.revocation = inner
        case .readmission(let readmission):
            guard NameRules.isPartnerName(readmission.partner) else {
                throw LiaisonError(.invalidArgument, "'\(readmission.partner)' is not a partner name")
            }
            let identity = try readmission.identity.validated()
            var inner = Liaison_V1_Readmission()
            inner.partner = readmission.partner
            inner.revocation = readmission.revocation.data
            inner.nodeID = identity.nodeID.hash.data
            inner.tlsFingerprint = Data(Hex.decode(identity.tlsFingerprint) ?? [])
            inner.sealingKey = Data(base64Encoded: identity.sealingKey) ?? Data()
            message.readmission = inner
        }
        let body: Data
        do {
            body = try message.serializedBytes()
        } catch {
            throw LiaisonError(.io, "could not encode a governance statement", cause: error)
        }
        self = try Self.decode(body: body, endorsements: [:])
    }

    /// Reads a body strictly: the deterministic encoding of what it decodes to, format 1, a
    /// statement of a known kind with well-formed parts.
    public static func decode(body: Data, endorsements: [NodeID: Endorsement]) throws(LiaisonError) -> Self {
        guard body.count <= maxBodyBytes else {
            throw LiaisonError(.invalidOp, "a governance body of \(body.count) bytes is too large")
        }
        let message: Liaison_V1_GovernanceBody
        do {
            message = try CanonicalProto.decode(Liaison_V1_GovernanceBody.self, from: body, what: "governance body")
        } catch {
            throw LiaisonError(.invalidOp, error.description)
        }
        guard message.format == 1 else {
            throw LiaisonError(.invalidOp, "governance body of format \(message.format); this build reads 1")
        }
        let content: GovernanceContent
        switch message.statement {
        case .revocation(let inner):
            guard NameRules.isPartnerName(inner.partner), let node = NodeID(bytes: inner.nodeID) else {
                throw LiaisonError(.invalidOp, "a revocation with a bad partner name or NodeID")
            }
            content = .revocation(Revocation(partner: inner.partner, nodeID: node, sinceMillis: inner.sinceMillis))
        case .readmission(let inner):
            guard NameRules.isPartnerName(inner.partner), let node = NodeID(bytes: inner.nodeID),
                let revocation = Hash32(bytes: inner.revocation), inner.tlsFingerprint.count == 32,
                inner.sealingKey.count == 32
            else {
                throw LiaisonError(.invalidOp, "a re-admission with a bad partner name, NodeID, fingerprint or key")
            }
            content = .readmission(
                Readmission(
                    partner: inner.partner, revocation: revocation,
                    identity: PartnerIdentity(
                        nodeID: node, tlsFingerprint: Hex.encode(inner.tlsFingerprint),
                        sealingKey: inner.sealingKey.base64EncodedString())))
        case .none:
            throw LiaisonError(.invalidOp, "a governance body that states nothing")
        }
        return GovernanceStatement(
            federation: message.federation, content: content, body: body, id: Hash32.sha256(body),
            endorsements: endorsements)
    }

    private init(
        federation: String, content: GovernanceContent, body: Data, id: Hash32, endorsements: [NodeID: Endorsement]
    ) {
        self.federation = federation
        self.content = content
        self.body = body
        self.id = id
        self.endorsements = endorsements
    }

    /// The message an endorser signs.
    var signedMessage: Data { Self.context + id.data }

    /// This statement endorsed by `key` (replacing an earlier endorsement by the same key).
    public func endorsed(by key: Curve25519.Signing.PrivateKey) throws(LiaisonError) -> GovernanceStatement {
        var copy = self
        do {
            let signature = try key.signature(for: signedMessage)
            let endorsement = Endorsement(signerKey: key.publicKey.rawRepresentation, signature: signature)
            copy.endorsements[endorsement.endorser] = endorsement
        } catch {
            throw LiaisonError(.io, "could not sign a governance statement", cause: error)
        }
        return copy
    }

    /// Whether an endorsement's signature over this body verifies.
    public func verifies(_ endorsement: Endorsement) -> Bool {
        guard endorsement.signerKey.count == 32, endorsement.signature.count == 64,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: endorsement.signerKey)
        else { return false }
        return key.isValidSignature(endorsement.signature, for: signedMessage)
    }

    /// The statement id as hex, shortened for logs and tables.
    public var shortID: String { String(id.hex.prefix(12)) }

    /// What the statement says, for custody and logs.
    public var summary: String {
        switch content {
        case .revocation(let revocation):
            "revocation \(shortID) of \(revocation.partner)'s key \(revocation.nodeID.short) "
                + "since \(revocation.sinceMillis) ms"
        case .readmission(let readmission):
            "re-admission \(shortID) of \(readmission.partner) with key \(readmission.identity.nodeID.short) "
                + "(ends revocation \(String(readmission.revocation.hex.prefix(12))))"
        }
    }
}

/// What one `Frame.governance` carries: statements with the endorsements a node holds.
public enum GovernanceFrame {
    /// A statement as it arrived, before its endorsements are checked.
    public struct Received: Sendable {
        /// The statement (endorsements unverified), or why its body was refused.
        public var statement: Result<GovernanceStatement, LiaisonError>
    }

    /// Encodes statements for a frame.
    public static func encode(_ statements: [GovernanceStatement]) -> Data {
        var list = Liaison_V1_GovernanceStatements()
        list.statements = statements.map { statement in
            var message = Liaison_V1_GovernanceStatement()
            message.body = statement.body
            message.endorsements = statement.endorsements.sorted { $0.key < $1.key }.map { _, endorsement in
                var inner = Liaison_V1_Endorsement()
                inner.signerKey = endorsement.signerKey
                inner.signature = endorsement.signature
                return inner
            }
            return message
        }
        return (try? list.serializedBytes()) ?? Data()
    }

    /// Decodes a frame's statements. A payload that is not a statement list, or that holds
    /// more than `GovernanceStatement.maxPerFrame` statements or a statement with more than
    /// `maxEndorsements`, is refused whole; a statement whose body is malformed is reported
    /// on its own. Endorsements are not verified here.
    public static func decode(_ bytes: Data) throws(LiaisonError) -> [Received] {
        let list: Liaison_V1_GovernanceStatements
        do {
            list = try Liaison_V1_GovernanceStatements(serializedBytes: bytes)
        } catch {
            throw LiaisonError(.invalidOp, "governance frame is not a statement list: \(error)", cause: error)
        }
        guard list.statements.count <= GovernanceStatement.maxPerFrame else {
            throw LiaisonError(.invalidOp, "governance frame with \(list.statements.count) statements")
        }
        var out = [Received]()
        for message in list.statements {
            guard message.endorsements.count <= GovernanceStatement.maxEndorsements else {
                throw LiaisonError(.invalidOp, "a statement with \(message.endorsements.count) endorsements")
            }
            var endorsements = [NodeID: Endorsement]()
            for inner in message.endorsements {
                let endorsement = Endorsement(signerKey: inner.signerKey, signature: inner.signature)
                if endorsements[endorsement.endorser] == nil { endorsements[endorsement.endorser] = endorsement }
            }
            do {
                out.append(
                    Received(
                        statement: .success(
                            try GovernanceStatement.decode(body: message.body, endorsements: endorsements))))
            } catch {
                out.append(Received(statement: .failure(error)))
            }
        }
        return out
    }
}

/// Partner names as the topology allows them: 1–64 letters, digits, `.`, `_` or `-`.
enum NameRules {
    static func isPartnerName(_ name: String) -> Bool {
        name.utf8.count <= 64 && !name.contains(":") && !name.contains("/") && Names.isValid(name)
    }
}
