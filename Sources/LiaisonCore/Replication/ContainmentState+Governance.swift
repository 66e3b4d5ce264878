/// What a statement that reached its quorum does at a node.
public enum GovernanceDecision: Sendable, Hashable {
    /// Quarantine the partner as revoked (the quarantine names the statement).
    case revoke(partner: String, Quarantine)
    /// The partner's identity becomes `identity` and its revocation's quarantine ends; the
    /// revoked key stays excluded.
    case readmit(partner: String, identity: PartnerIdentity, revoked: NodeID)
}

/// Revocation and re-admission (DESIGN §6): the rules every node applies in the same way,
/// whoever runs them (the engine of a running node, the store work of a stopped one).
extension ContainmentState {
    /// Every partner's NodeID as this node trusts it now: the rendered configuration's
    /// (`rendered`, by name), with re-admissions applied.
    public func currentNodeIDs(rendered: [String: NodeID]) -> [String: NodeID] {
        var out = rendered
        for (name, identity) in identities where out[name] != nil { out[name] = identity.nodeID }
        return out
    }

    /// Whose endorsements count (partner name by NodeID): every partner under its current
    /// identity, except keys revoked here.
    public func endorsers(current: [String: NodeID]) -> [NodeID: String] {
        let revoked = Set(revokedKeys.map(\.nodeID))
        var out = [NodeID: String]()
        for (name, id) in current where !revoked.contains(id) { out[id] = name }
        return out
    }

    /// Whether `peer`'s quarantine comes from a revocation (a release cannot end it).
    public func isRevoked(_ peer: String) -> Bool { quarantines[peer]?.revocation != nil }

    /// The revocation that holds `peer` now, if any: applied here, of its current key.
    public func revocation(holding peer: String, current: [String: NodeID]) -> Hash32? {
        guard let id = current[peer] else { return nil }
        return revokedKeys.last { $0.partner == peer && $0.nodeID == id }?.statement
    }

    /// Applies every statement held that reached `quorum` endorsements from distinct partners
    /// other than the one it names and was not applied yet, in id order, until none is left:
    /// - a revocation of a partner's current key quarantines the partner from the statement's
    ///   time (or earlier, if an operator's quarantine here started earlier), and the key is
    ///   revoked for good;
    /// - a re-admission that ends a revocation applied here, for a partner still on the revoked
    ///   key, gives the partner its new identity, ends the quarantine and forgives its strikes
    ///   (the revoked key stays excluded).
    /// Statements about `me` are never applied here (nobody should send them to us). Returns
    /// what the caller must carry out, in order; the state already holds the result.
    public mutating func decide(
        rendered: [String: NodeID], me: String, quorum: Int, nowMillis: UInt64
    ) -> [GovernanceDecision] {
        var decisions = [GovernanceDecision]()
        var changed = true
        while changed {
            changed = false
            let current = currentNodeIDs(rendered: rendered)
            let endorsers = endorsers(current: current)
            for statement in governance.ordered where governance.applied[statement.id] == nil {
                let partner = statement.content.partner
                guard partner != me, current[partner] != nil else { continue }
                let names = governance.counted(statement, endorsers: endorsers)
                guard names.count >= max(quorum, 1) else { continue }
                switch statement.content {
                case .revocation(let revocation):
                    guard current[partner] == revocation.nodeID else { continue }
                    governance.applied[statement.id] = nowMillis
                    revokedKeys.append(
                        RevokedKey(
                            partner: partner, nodeID: revocation.nodeID, sinceMillis: revocation.sinceMillis,
                            statement: statement.id))
                    let since = min(revocation.sinceMillis, quarantines[partner]?.sinceMillis ?? .max)
                    let quarantine = Quarantine(
                        sinceMillis: since, atMillis: nowMillis,
                        reason: "revoked by \(names.count) of \(current.count) partners "
                            + "(\(names.joined(separator: ", "))), statement \(statement.shortID)",
                        automatic: false, revocation: statement.id)
                    quarantines[partner] = quarantine
                    decisions.append(.revoke(partner: partner, quarantine))
                case .readmission(let readmission):
                    guard governance.applied[readmission.revocation] != nil,
                        let revoked = revokedKeys.first(where: { $0.statement == readmission.revocation }),
                        revoked.partner == partner, current[partner] == revoked.nodeID,
                        !current.values.contains(readmission.identity.nodeID),
                        !revokedKeys.contains(where: { $0.nodeID == readmission.identity.nodeID })
                    else { continue }
                    governance.applied[statement.id] = nowMillis
                    identities[partner] = readmission.identity
                    if quarantines[partner]?.revocation != nil { quarantines[partner] = nil }
                    strikes[partner] = nil
                    decisions.append(
                        .readmit(partner: partner, identity: readmission.identity, revoked: revoked.nodeID))
                }
                changed = true
                break
            }
        }
        return decisions
    }
}

/// What an operator may endorse: checked the same way by a running node and a stopped one.
extension ContainmentState {
    /// The revocation of `partner`'s current key from `sinceMillis` on. Without a time, the
    /// one revocation of that key other partners already endorsed and that waits here for
    /// more endorsements (so operators need not agree on the millisecond).
    public func revocationToEndorse(
        partner: String, sinceMillis: UInt64?, current: [String: NodeID], me: String
    ) throws(LiaisonError) -> Revocation {
        guard partner != me else { throw LiaisonError(.invalidArgument, "a node cannot revoke its own keys") }
        guard let nodeID = current[partner] else {
            let known = current.keys.filter { $0 != me }.sorted().joined(separator: ", ")
            throw LiaisonError(.notFound, "no partner '\(partner)'; known: \(known)")
        }
        guard !revokedKeys.contains(where: { $0.nodeID == nodeID }) else {
            throw LiaisonError(
                .invalidArgument,
                "\(partner)'s key \(nodeID.short) is revoked already; it comes back only with new keys ('liaison readmit')"
            )
        }
        if let sinceMillis { return Revocation(partner: partner, nodeID: nodeID, sinceMillis: sinceMillis) }
        let pending = governance.ordered.compactMap { statement -> Revocation? in
            guard governance.applied[statement.id] == nil, case .revocation(let revocation) = statement.content,
                revocation.partner == partner, revocation.nodeID == nodeID
            else { return nil }
            return revocation
        }
        guard pending.count == 1, let only = pending.first else {
            throw LiaisonError(
                .invalidArgument,
                pending.isEmpty
                    ? "no revocation of \(partner) waits for endorsements here; give --since"
                    : "\(pending.count) revocations of \(partner) wait for endorsements here; give --since to choose one"
            )
        }
        return only
    }

    /// The re-admission of revoked `partner` under `identity`: new keys, ending the
    /// revocation that holds it here.
    public func readmissionToEndorse(
        partner: String, identity: PartnerIdentity, current: [String: NodeID], me: String
    ) throws(LiaisonError) -> Readmission {
        guard partner != me else { throw LiaisonError(.invalidArgument, "a node cannot readmit itself") }
        guard current[partner] != nil else {
            let known = current.keys.filter { $0 != me }.sorted().joined(separator: ", ")
            throw LiaisonError(.notFound, "no partner '\(partner)'; known: \(known)")
        }
        let identity = try identity.validated()
        guard let revocation = revocation(holding: partner, current: current) else {
            throw LiaisonError(
                .invalidArgument, "\(partner) is not revoked here; 'liaison revocations' lists the revocations")
        }
        guard !current.values.contains(identity.nodeID),
            !revokedKeys.contains(where: { $0.nodeID == identity.nodeID })
        else {
            throw LiaisonError(
                .invalidArgument,
                "NodeID \(identity.nodeID.short) is a partner's or a revoked key; re-admission needs new keys "
                    + "('liaison rekey' on the partner's node makes them)")
        }
        return Readmission(partner: partner, revocation: revocation, identity: identity)
    }
}
