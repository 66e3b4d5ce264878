import Crypto
import Foundation
public import LiaisonCore

/// Revocation and re-admission (DESIGN §6), decided in the engine so that the simulator runs
/// the same logic as the daemon.
///
/// A statement (revoke partner P's key from time T; or re-admit P with new keys) gathers
/// endorsements, Ed25519 signatures by partners. Every node holds the endorsements it has
/// verified, merged by union, and gossips them: every statement it holds goes to each
/// neighbour when a channel opens, and a statement that taught it a new endorsement goes at
/// once to every neighbour but the one it came from — never to the partner it names. So a
/// statement crosses partners and reaches nodes that do not link to P. Once a statement
/// holds `quorum` endorsements from distinct partners other than P, each node applies it
/// on its own: a revocation as a quarantine from T that no release ends; a re-admission by
/// trusting P's new identity (pins, NodeID, sealing key) and lifting the quarantine, the
/// revoked key staying excluded.
extension NodeEngine {
    /// Endorsements needed for a statement to apply.
    public var revocationQuorum: Int {
        configuration.revocation?.quorum ?? RevocationPolicy.defaultQuorum(partners: configuration.partners.count)
    }

    /// Every partner's current NodeID by name.
    public var currentNodeIDs: [String: NodeID] { configuration.partners.mapValues(\.recipient.nodeID) }

    /// Whose endorsements count here: every partner under its current identity, revoked keys
    /// excepted.
    var endorsers: [NodeID: String] { containment.endorsers(current: currentNodeIDs) }

    // MARK: - Endorsing

    /// The operator endorses `content`: this node signs it, holds it, tells its neighbours,
    /// and applies it if that makes the quorum.
    mutating func endorse(_ content: GovernanceContent, reason: String, now: UInt64) {
        let partner = content.partner
        guard configuration.partners[partner] != nil, partner != configuration.me.name else {
            log(.error, "cannot endorse a statement about no partner or about this node", peer: partner)
            return
        }
        let statement: GovernanceStatement
        do {
            statement = try GovernanceStatement(federation: configuration.federation, content: content)
                .endorsed(by: configuration.signingKey)
        } catch {
            log(.error, "cannot endorse a statement", peer: partner, ["liaison.error": error.message])
            return
        }
        let merge = containment.governance.merge(statement, endorsers: endorsers)
        let counted = containment.governance.statements[statement.id].map {
            containment.governance.counted($0, endorsers: endorsers).count
        }
        output.append(
            .custody(
                CustodyEvent(
                    kind: .statementEndorsed, peer: partner,
                    detail: "\(statement.summary); \(counted ?? 0) of \(revocationQuorum) endorsements; "
                        + "reason: \(reason)")))
        log(
            .warning, "endorsed a \(content.kind)", peer: partner,
            ["liaison.statement": statement.shortID, "liaison.endorsements": "\(counted ?? 0)"])
        if !merge.added.isEmpty { gossip([statement.id], except: nil, now: now) }
        decideGovernance(now: now)
    }

    // MARK: - Gossip

    /// Statements from a neighbour: endorsements that verify are kept and passed on; any
    /// that do not verify, and statements that cannot be read, are one `forged` strike
    /// against the sender (an honest node passes on only what it verified).
    mutating func receivedGovernance(_ bytes: Data, from peer: String, on id: ChannelID, now: UInt64) {
        let received: [GovernanceFrame.Received]
        do {
            received = try GovernanceFrame.decode(bytes)
        } catch {
            strike(peer, .forged, "governance statements refused: \(error.message)", now: now)
            return
        }
        var faults = [String]()
        var learned = [Hash32]()
        var lacking = [Hash32]()
        for item in received {
            let statement: GovernanceStatement
            switch item.statement {
            case .failure(let error):
                faults.append(error.message)
                continue
            case .success(let decoded):
                statement = decoded
            }
            guard statement.federation == configuration.federation else {
                faults.append("statement \(statement.shortID) of federation '\(statement.federation)'")
                continue
            }
            let about = statement.content.partner
            guard about != configuration.me.name else {
                // Nobody sends a statement to the partner it names; nothing to learn here.
                log(.warning, "a statement about this node arrived; ignored", peer: peer)
                continue
            }
            guard configuration.partners[about] != nil else {
                faults.append("statement \(statement.shortID) about '\(about)', no partner")
                continue
            }
            let merge = containment.governance.merge(statement, endorsers: endorsers)
            if !merge.forged.isEmpty {
                faults.append(
                    "\(merge.forged.count) endorsements of statement \(statement.shortID) do not verify "
                        + "(\(merge.forged.map(\.short).joined(separator: ", ")))")
            }
            if !merge.added.isEmpty {
                learned.append(statement.id)
                let names = merge.added.compactMap { endorsers[$0] }
                output.append(
                    .custody(
                        CustodyEvent(
                            kind: .statementReceived, peer: peer,
                            detail: "\(statement.summary); new endorsements by \(names.joined(separator: ", "))"
                        )))
            }
            if merge.senderLacks { lacking.append(statement.id) }
        }
        if !faults.isEmpty {
            strike(peer, .forged, "governance: " + faults.joined(separator: "; "), now: now)
        }
        gossip(learned, except: peer, now: now)
        if !lacking.isEmpty, let channel = channels[id] {
            // The sender holds fewer endorsements than we do: it gets ours back on this channel.
            let statements = lacking.compactMap { containment.governance.statements[$0] }
            for chunk in Self.frames(statements) {
                perform(channel.session.outOfBand(.governance(chunk)), on: id, now: now)
            }
        }
        decideGovernance(now: now)
    }

    /// Sends the statements `ids` to every neighbour but `sender` and the partner each names.
    mutating func gossip(_ ids: [Hash32], except sender: String?, now: UInt64) {
        guard !ids.isEmpty else { return }
        for peer in configuration.links.keys.sorted() where peer != sender && !containment.isQuarantined(peer) {
            let statements = ids.compactMap { containment.governance.statements[$0] }.filter {
                $0.content.partner != peer
            }
            for chunk in Self.frames(statements) { sendOutOfBand(.governance(chunk), to: peer, now: now) }
        }
    }

    /// A channel opened: it carries every statement this node holds, but those that name the
    /// peer, so a node that was away learns what it missed.
    mutating func gossipOnOpen(_ id: ChannelID, now: UInt64) {
        guard let channel = channels[id] else { return }
        let statements = containment.governance.ordered.filter { $0.content.partner != channel.peer }
        for chunk in Self.frames(statements) {
            perform(channel.session.outOfBand(.governance(chunk)), on: id, now: now)
        }
    }

    /// Statements as frame payloads, at most `GovernanceStatement.maxPerFrame` per frame.
    static func frames(_ statements: [GovernanceStatement]) -> [Data] {
        stride(from: 0, to: statements.count, by: GovernanceStatement.maxPerFrame).map {
            GovernanceFrame.encode(Array(statements[$0..<min($0 + GovernanceStatement.maxPerFrame, statements.count)]))
        }
    }

    // MARK: - Applying

    /// Applies every statement that reached the quorum.
    mutating func decideGovernance(now: UInt64) {
        let decisions = containment.decide(
            rendered: currentNodeIDs, me: configuration.me.name, quorum: revocationQuorum, nowMillis: now)
        for decision in decisions {
            switch decision {
            case .revoke(let partner, let quarantine):
                self.quarantine(partner, quarantine, now: now)
            case .readmit(let partner, let identity, let revoked):
                readmit(partner, identity, revoked: revoked, now: now)
            }
        }
    }

    /// `peer` comes back under `identity`: its channels must present the new certificate and
    /// say hello with the new NodeID, its ops are checked against it, envelopes for it are
    /// sealed to its new key. Its link starts afresh (a re-keyed node may have a new store).
    mutating func readmit(_ peer: String, _ identity: PartnerIdentity, revoked: NodeID, now: UInt64) {
        configuration.adopt(peer, identity)
        for id in channels.keys.sorted() where channels[id]?.peer == peer {
            output.append(.close(id, reason: "\(peer) was readmitted with new keys"))
            remove(id, reason: "readmitted with new keys", failed: false, expected: true, now: now)
        }
        counters[peer]?.ackedThrough = 0
        counters[peer]?.lastError = nil
        output.append(.readmitted(peer: peer, identity: identity, revoked: revoked))
        log(
            .warning, "partner readmitted with new keys", peer: peer,
            ["liaison.node_id": identity.nodeID.text, "liaison.revoked": revoked.text])
    }
}

extension NodeEngine.Configuration {
    /// Trusts `identity` for partner `name` from now on (a re-admission): its NodeID, on the
    /// partner record and on its link, and its sealing key.
    public mutating func adopt(_ name: String, _ identity: PartnerIdentity) {
        guard var partner = partners[name] else { return }
        partner.recipient.nodeID = identity.nodeID
        if let raw = Data(base64Encoded: identity.sealingKey),
            let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw)
        {
            partner.sealingKey = key
        }
        partners[name] = partner
        links[name]?.partner.nodeID = identity.nodeID
    }
}
