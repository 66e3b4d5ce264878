public import LiaisonCore
public import LiaisonStore

/// What endorsing a statement did.
public struct EndorsementOutcome: Sendable {
    /// The statement with every endorsement held here.
    public var statement: GovernanceStatement
    /// The partners whose endorsements count, by name.
    public var endorsedBy: [String]
    /// Endorsements it needs.
    public var quorum: Int
    /// Whether it applies here (now or before).
    public var applied: Bool
    /// What applying it rebuilt (a revocation), or recorded (a re-admission).
    public var rebuilt: RebuildResult?

    /// Creates an outcome.
    public init(
        statement: GovernanceStatement, endorsedBy: [String], quorum: Int, applied: Bool, rebuilt: RebuildResult?
    ) {
        self.statement = statement
        self.endorsedBy = endorsedBy
        self.quorum = quorum
        self.applied = applied
        self.rebuilt = rebuilt
    }
}

/// Revocation and re-admission on a node that is not running (`liaison revoke` and
/// `liaison readmit` without a daemon): the node signs the statement and holds it; if that
/// makes the quorum here, it applies it as the engine would (the same `ContainmentState`
/// rules, the same store work). The node's neighbours get the statement when it next runs.
extension LocalNode {
    /// Endorses the revocation of `partner`'s current key from `sinceMillis` on (nil: the one
    /// revocation of it waiting here for endorsements).
    public func endorseRevocation(
        _ partner: String, sinceMillis: UInt64?, reason: String, nowMillis: UInt64
    ) throws(LiaisonError) -> EndorsementOutcome {
        let (_, federation, state) = try containmentContext()
        let revocation = try state.revocationToEndorse(
            partner: partner, sinceMillis: sinceMillis,
            current: state.currentNodeIDs(rendered: federation.renderedNodeIDs), me: federation.me)
        return try endorse(.revocation(revocation), reason: reason, nowMillis: nowMillis)
    }

    /// Endorses the re-admission of revoked `partner` under its new `identity`.
    public func endorseReadmission(
        _ partner: String, identity: PartnerIdentity, reason: String, nowMillis: UInt64
    ) throws(LiaisonError) -> EndorsementOutcome {
        let (_, federation, state) = try containmentContext()
        let readmission = try state.readmissionToEndorse(
            partner: partner, identity: identity,
            current: state.currentNodeIDs(rendered: federation.renderedNodeIDs), me: federation.me)
        return try endorse(.readmission(readmission), reason: reason, nowMillis: nowMillis)
    }

    private func endorse(
        _ content: GovernanceContent, reason: String, nowMillis: UInt64
    ) throws(LiaisonError) -> EndorsementOutcome {
        var (replication, federation, state) = try containmentContext()
        let rendered = federation.renderedNodeIDs
        let signed = try GovernanceStatement(federation: federation.federation, content: content)
            .endorsed(by: identity.signingKey)
        let endorsers = state.endorsers(current: state.currentNodeIDs(rendered: rendered))
        _ = state.governance.merge(signed, endorsers: endorsers)
        let held = state.governance.statements[signed.id] ?? signed
        let counted = state.governance.counted(held, endorsers: endorsers)
        _ = try store.appendCustody(
            CustodyEvent(
                kind: .statementEndorsed, peer: content.partner,
                detail: "\(held.summary); \(counted.count) of \(federation.revocationQuorum) "
                    + "endorsements; reason: \(reason)"),
            timeMillis: Int64(nowMillis))
        let decisions = state.decide(
            rendered: rendered, me: federation.me, quorum: federation.revocationQuorum, nowMillis: nowMillis)
        var rebuilt: RebuildResult?
        if decisions.isEmpty {
            try replication.saveContainment(state)
        }
        for decision in decisions {
            switch decision {
            case .revoke(let partner, let quarantine):
                guard let author = state.revokedKeys.last(where: { $0.partner == partner })?.nodeID else { continue }
                let result = try replication.quarantine(
                    partner, author: author, quarantine, containment: state, nowMillis: nowMillis)
                if decision.partner == content.partner { rebuilt = result }
            case .readmit(let partner, let identity, let revoked):
                let result = try replication.readmit(
                    partner, identity: identity, revoked: revoked, containment: state, nowMillis: nowMillis)
                if partner == content.partner { rebuilt = result }
            }
        }
        return EndorsementOutcome(
            statement: held, endorsedBy: counted, quorum: federation.revocationQuorum,
            applied: state.governance.applied[held.id] != nil, rebuilt: rebuilt)
    }
}

extension GovernanceDecision {
    /// The partner it is about.
    public var partner: String {
        switch self {
        case .revoke(let partner, _): partner
        case .readmit(let partner, _, _): partner
        }
    }
}
