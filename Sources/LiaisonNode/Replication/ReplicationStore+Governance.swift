public import LiaisonCore
import LiaisonReplication
public import LiaisonStore

/// The store side of revocation and re-admission (`NodeEngine+Governance`): a revocation is
/// a quarantine (`quarantine(_:author:_:containment:nowMillis:)`); a re-admission trusts the
/// partner's new NodeID for its link and its future ops, keeps its revoked key a known author
/// whose ops since the revocation's start are refused, and starts the link's checkpoints
/// afresh (a re-keyed node may come back with a new store, whose log starts again at 1).
extension ReplicationStore {
    /// Takes in what the stored state says of identities: partners readmitted with new keys
    /// and revoked keys (at start, before any traffic).
    public mutating func adopt(_ state: ContainmentState) {
        for (name, identity) in state.identities.sorted(by: { $0.key < $1.key }) {
            trust(name, identity.nodeID)
        }
        for key in state.revokedKeys where authors[key.nodeID] == nil {
            let groups = authors.values.first { $0.name == key.partner }?.groups ?? []
            authors[key.nodeID] = Recipient(name: key.partner, nodeID: key.nodeID, groups: groups)
        }
    }

    /// `name`'s ops and link are checked against `nodeID` from now on; its earlier key stays a
    /// known author.
    mutating func trust(_ name: String, _ nodeID: NodeID) {
        let groups = authors.values.first { $0.name == name }?.groups ?? neighbours[name]?.partner.groups ?? []
        authors[nodeID] = Recipient(name: name, nodeID: nodeID, groups: groups)
        neighbours[name]?.partner.nodeID = nodeID
        readmitted[name] = nodeID
    }

    /// Applies a re-admission: `name` is trusted under `identity` (its revoked key `revoked`
    /// stays excluded from the revocation's start), recorded in one transaction with its
    /// custody entry and `containment` (the node's state after the re-admission). Nothing is
    /// rebuilt: the revoked key's ops stay out.
    @discardableResult
    public mutating func readmit(
        _ name: String, identity: PartnerIdentity, revoked: NodeID, containment: ContainmentState,
        nowMillis: UInt64
    ) throws(LiaisonError) -> RebuildResult {
        let result = try store.rebuild(
            items: [],
            excluding: { _ in false },
            listing: { _ in false },
            custody: CustodyEvent(
                kind: .partnerReadmitted, peer: name,
                detail: "new NodeID \(identity.nodeID.text), TLS pin \(identity.tlsFingerprint); "
                    + "revoked key \(revoked.text) stays excluded"),
            metadata: (MetadataKey.containment, try Self.encode(containment)),
            timeMillis: Int64(nowMillis)
        )
        trust(name, identity.nodeID)
        return result
    }

    /// Whether `author` is a key `peer` held before it was readmitted with new keys: nothing
    /// it wrote is sent to `peer` (a new node of the partner does not take its revoked key as
    /// its own, and an old one holds what it wrote).
    public func isRevokedKey(_ author: NodeID, of peer: String) -> Bool {
        guard readmitted[peer] != nil, author != neighbours[peer]?.partner.nodeID else { return false }
        return authors[author]?.name == peer
    }

    /// The checkpoint name of what `peer` acknowledged of our log: per identity once the
    /// partner was readmitted with new keys.
    public func sentLinkName(_ peer: String) -> String {
        readmitted[peer].map { "\(Self.sentLink(peer))@\($0.text)" } ?? Self.sentLink(peer)
    }

    /// The checkpoint name of how far we applied `peer`'s log: per identity once the partner
    /// was readmitted with new keys.
    public func receivedLinkName(_ peer: String) -> String {
        readmitted[peer].map { "\(Self.receivedLink(peer))@\($0.text)" } ?? Self.receivedLink(peer)
    }
}
