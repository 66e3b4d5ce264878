public import LiaisonCore
import LiaisonReplication

/// Revocation and re-admission on a running node (called by the API): the operator's
/// endorsement goes to the engine, which signs it, gossips it and applies it once it has the
/// quorum (`NodeEngine+Governance`).
extension ReplicationEngine {
    /// Endorses the revocation of `partner`'s current key from `sinceMillis` on (nil: the one
    /// revocation of it waiting here for endorsements).
    public func endorseRevocation(
        _ partner: String, sinceMillis: UInt64?, reason: String
    ) throws(LiaisonError) -> EndorsementOutcome {
        let engine = interpreter.engine
        let revocation = try engine.containment.revocationToEndorse(
            partner: partner, sinceMillis: sinceMillis, current: engine.currentNodeIDs,
            me: engine.configuration.me.name)
        return try endorse(.revocation(revocation), reason: reason)
    }

    /// Endorses the re-admission of revoked `partner` under its new `identity`.
    public func endorseReadmission(
        _ partner: String, identity: PartnerIdentity, reason: String
    ) throws(LiaisonError) -> EndorsementOutcome {
        let engine = interpreter.engine
        let readmission = try engine.containment.readmissionToEndorse(
            partner: partner, identity: identity, current: engine.currentNodeIDs, me: engine.configuration.me.name)
        return try endorse(.readmission(readmission), reason: reason)
    }

    private func endorse(_ content: GovernanceContent, reason: String) throws(LiaisonError) -> EndorsementOutcome {
        let id = try GovernanceStatement(federation: federation.federation, content: content).id
        let report = interpreter.handle(.endorse(content, reason: reason), nowMillis: Self.nowMillis)
        if let failure = report.failures.first { throw LiaisonError(.io, failure) }
        let engine = interpreter.engine
        guard let held = engine.containment.governance.statements[id] else {
            throw LiaisonError(.io, "the engine did not keep the endorsement; see the node's log")
        }
        return EndorsementOutcome(
            statement: held,
            endorsedBy: engine.containment.governance.counted(
                held, endorsers: engine.containment.endorsers(current: engine.currentNodeIDs)),
            quorum: engine.revocationQuorum,
            applied: engine.containment.governance.applied[id] != nil,
            rebuilt: report.rebuilds.first)
    }

    /// The statements held, revoked keys and identities, with the quorum and every partner's
    /// current NodeID.
    public func governance() -> (state: ContainmentState, quorum: Int, current: [String: NodeID]) {
        let engine = interpreter.engine
        return (engine.containment, engine.revocationQuorum, engine.currentNodeIDs)
    }
}
