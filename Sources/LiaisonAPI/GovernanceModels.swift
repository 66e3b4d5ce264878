public import Foundation
public import LiaisonCore
public import LiaisonNode
import LiaisonStore

/// The body of `POST /v1/revocations`: this node endorses the revocation of a partner's key.
public struct RevocationBody: Codable, Sendable {
    /// The partner.
    public var partner: String
    /// From when its ops are left out: ISO 8601 or `now`; nil to endorse the one revocation
    /// of the partner that waits here for endorsements.
    public var since: String?
    /// Why (custody only; not part of what is signed).
    public var reason: String?

    /// Creates a body.
    public init(partner: String, since: String?, reason: String?) {
        self.partner = partner
        self.since = since
        self.reason = reason
    }

    /// `since` in milliseconds (the rules of `QuarantineBody`), nil when not given.
    public func sinceMillis(now: Date) throws(LiaisonError) -> UInt64? {
        guard let since else { return nil }
        return try QuarantineBody(partner: partner, since: since, reason: reason).sinceMillis(now: now)
    }

    /// The reason, or a default naming the operator.
    public var reasonText: String {
        QuarantineBody(partner: partner, since: "now", reason: reason).reasonText
    }
}

/// A partner's new identity, as `liaison rekey` prints it (`--json`) on the partner's node and
/// `POST /v1/readmissions` takes it.
public struct IdentityCard: Codable, Sendable, Equatable {
    /// The partner's name.
    public var name: String
    /// Its new NodeID.
    public var nodeID: String
    /// SHA-256 of its new TLS certificate, hex.
    public var tlsFingerprint: String
    /// Its new X25519 sealing public key, base64.
    public var sealingKey: String

    /// Creates a card.
    public init(name: String, nodeID: String, tlsFingerprint: String, sealingKey: String) {
        self.name = name
        self.nodeID = nodeID
        self.tlsFingerprint = tlsFingerprint
        self.sealingKey = sealingKey
    }

    /// The identity it describes; refuses malformed parts.
    public func identity() throws(LiaisonError) -> PartnerIdentity {
        guard let id = NodeID(nodeID) else {
            throw LiaisonError(
                .invalidArgument, "'\(nodeID)' is not a NodeID (13 groups of base32, as 'liaison init' prints)")
        }
        return try PartnerIdentity(
            nodeID: id, tlsFingerprint: tlsFingerprint.replacingOccurrences(of: "sha256:", with: ""),
            sealingKey: sealingKey
        ).validated()
    }
}

/// The body of `POST /v1/readmissions`: this node endorses a revoked partner's new keys.
public struct ReadmissionBody: Codable, Sendable {
    /// The partner.
    public var partner: String
    /// Its new NodeID.
    public var nodeID: String
    /// SHA-256 of its new TLS certificate, hex.
    public var tlsFingerprint: String
    /// Its new sealing public key, base64.
    public var sealingKey: String
    /// Why (custody only).
    public var reason: String?

    /// Creates a body.
    public init(partner: String, nodeID: String, tlsFingerprint: String, sealingKey: String, reason: String?) {
        self.partner = partner
        self.nodeID = nodeID
        self.tlsFingerprint = tlsFingerprint
        self.sealingKey = sealingKey
        self.reason = reason
    }

    /// The new identity.
    public func identity() throws(LiaisonError) -> PartnerIdentity {
        try IdentityCard(name: partner, nodeID: nodeID, tlsFingerprint: tlsFingerprint, sealingKey: sealingKey)
            .identity()
    }

    /// The reason, or a default naming the operator.
    public var reasonText: String {
        QuarantineBody(partner: partner, since: "now", reason: reason).reasonText
    }
}

/// What an endorsement did, in answer to `POST /v1/revocations` and `POST /v1/readmissions`.
public struct EndorsementResult: Codable, Sendable {
    /// The statement's id (SHA-256 of its body, hex).
    public var statement: String
    /// `revocation` or `readmission`.
    public var kind: String
    /// The partner it names.
    public var partner: String
    /// Partners whose endorsements count, this node's included.
    public var endorsedBy: [String]
    /// Endorsements it needs.
    public var quorum: Int
    /// Whether it applies at this node.
    public var applied: Bool
    /// Items rebuilt by applying it here now (a revocation).
    public var itemsRebuilt: Int
    /// Items removed (their create was left out).
    public var itemsRemoved: Int
    /// The partner's ops left out.
    public var opsLeftOut: Int

    /// Summarises an outcome.
    public init(_ outcome: EndorsementOutcome) {
        statement = outcome.statement.id.hex
        kind = outcome.statement.content.kind
        partner = outcome.statement.content.partner
        endorsedBy = outcome.endorsedBy
        quorum = outcome.quorum
        applied = outcome.applied
        let isRevocation = outcome.statement.content.kind == "revocation"
        itemsRebuilt = outcome.rebuilt?.changed.count ?? 0
        itemsRemoved = outcome.rebuilt?.removed.count ?? 0
        opsLeftOut = isRevocation ? outcome.rebuilt?.listed.count ?? 0 : 0
    }
}

/// The statements a node holds, for `GET /v1/revocations` and `liaison revocations`.
public struct GovernanceView: Codable, Sendable {
    /// One statement.
    public struct Statement: Codable, Sendable {
        public var id: String
        /// `revocation` or `readmission`.
        public var kind: String
        public var partner: String
        /// The NodeID revoked, or the new NodeID of a re-admission.
        public var nodeID: String
        /// A revocation's start (ISO 8601).
        public var since: String?
        /// A re-admission's new TLS pin.
        public var tlsFingerprint: String?
        /// The revocation a re-admission ends.
        public var revocation: String?
        /// Partners whose endorsements count here.
        public var endorsedBy: [String]
        /// Endorsements it needs.
        public var quorum: Int
        /// When it applied here (ISO 8601), nil while it waits.
        public var appliedAt: String?
    }

    /// A key revoked here.
    public struct RevokedKeyEntry: Codable, Sendable {
        public var partner: String
        public var nodeID: String
        public var since: String
        public var statement: String
    }

    /// A partner trusted under a new identity.
    public struct IdentityEntry: Codable, Sendable {
        public var partner: String
        public var nodeID: String
        public var tlsFingerprint: String
    }

    /// Endorsements a statement needs.
    public var quorum: Int
    /// Statements held, oldest id first.
    public var statements: [Statement]
    /// Keys revoked here.
    public var revokedKeys: [RevokedKeyEntry]
    /// Partners readmitted with new keys.
    public var identities: [IdentityEntry]

    /// The view of a node's state.
    public init(_ state: ContainmentState, quorum: Int, current: [String: NodeID]) {
        self.quorum = quorum
        let endorsers = state.endorsers(current: current)
        func time(_ millis: UInt64) -> String { ISO8601.format(millis: Int64(clamping: millis)) }
        statements = state.governance.ordered.map { statement in
            var entry = Statement(
                id: statement.id.hex, kind: statement.content.kind, partner: statement.content.partner, nodeID: "",
                endorsedBy: state.governance.counted(statement, endorsers: endorsers), quorum: quorum,
                appliedAt: state.governance.applied[statement.id].map(time))
            switch statement.content {
            case .revocation(let revocation):
                entry.nodeID = revocation.nodeID.text
                entry.since = time(revocation.sinceMillis)
            case .readmission(let readmission):
                entry.nodeID = readmission.identity.nodeID.text
                entry.tlsFingerprint = readmission.identity.tlsFingerprint
                entry.revocation = readmission.revocation.hex
            }
            return entry
        }
        revokedKeys = state.revokedKeys.map {
            RevokedKeyEntry(
                partner: $0.partner, nodeID: $0.nodeID.text, since: time($0.sinceMillis), statement: $0.statement.hex)
        }
        identities = state.identities.sorted { $0.key < $1.key }.map {
            IdentityEntry(partner: $0.key, nodeID: $0.value.nodeID.text, tlsFingerprint: $0.value.tlsFingerprint)
        }
    }
}
