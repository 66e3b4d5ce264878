import Foundation
public import LiaisonCore
public import LiaisonStore

/// Quarantine and release on a node that is not running (`liaison quarantine` without a
/// daemon): the same store work the running engine's interpreter does, with the state
/// persisted for the engine to find when it starts.
extension LocalNode {
    /// Strikes and quarantines held in the store.
    public func containment() throws(LiaisonError) -> ContainmentState {
        try ReplicationStore.loadContainment(store)
    }

    /// Quarantines `peer` from `sinceMillis` on: its ops since then leave every item.
    public func quarantine(
        _ peer: String, sinceMillis: UInt64, reason: String, nowMillis: UInt64
    ) throws(LiaisonError) -> RebuildResult {
        var (replication, federation, state) = try containmentContext()
        try federation.checkQuarantinable(peer)
        guard !state.isRevoked(peer) else { throw Self.revokedError(peer) }
        let quarantine = Quarantine(sinceMillis: sinceMillis, atMillis: nowMillis, reason: reason, automatic: false)
        state.quarantines[peer] = quarantine
        return try replication.quarantine(
            peer, author: try currentNodeID(peer, federation, state), quarantine, containment: state,
            nowMillis: nowMillis)
    }

    /// Ends `peer`'s quarantine: its ops count again.
    public func release(_ peer: String, nowMillis: UInt64) throws(LiaisonError) -> RebuildResult {
        var (replication, federation, state) = try containmentContext()
        try federation.checkQuarantinable(peer)
        guard !state.isRevoked(peer) else { throw Self.revokedError(peer) }
        guard state.release(peer) != nil else {
            throw LiaisonError(.notFound, "\(peer) is not quarantined; 'liaison quarantines' lists who is")
        }
        return try replication.release(
            peer, author: try currentNodeID(peer, federation, state), containment: state, nowMillis: nowMillis)
    }

    /// Why a revoked partner cannot be released or quarantined again.
    public static func revokedError(_ peer: String) -> LiaisonError {
        LiaisonError(
            .invalidArgument,
            "\(peer) is revoked by a quorum of partners; a release cannot end that: re-admission needs new keys "
                + "('liaison rekey' on its node, then 'liaison readmit \(peer)' by the quorum)")
    }

    private func currentNodeID(
        _ peer: String, _ federation: FederationConfig, _ state: ContainmentState
    ) throws(LiaisonError) -> NodeID {
        guard let id = state.currentNodeIDs(rendered: federation.renderedNodeIDs)[peer] else {
            throw LiaisonError(.notFound, "no partner '\(peer)'")
        }
        return id
    }

    func containmentContext() throws(LiaisonError) -> (ReplicationStore, FederationConfig, ContainmentState) {
        guard let federation, let me = federation.partner(named: federation.me) else {
            throw LiaisonError(
                .notFound,
                "\(directory.url.path) belongs to no federation; render it with 'liaison topology render'")
        }
        var replication = try ReplicationStore(
            me: me.recipient,
            store: store,
            ladder: config.classifications,
            partners: federation.partners.map(\.recipient),
            neighbours: [],
            maxClockSkewMillis: config.maxClockSkewMillis,
            nowMillis: nil
        )
        let state = try ReplicationStore.loadContainment(store)
        replication.adopt(state)
        let current = state.currentNodeIDs(rendered: federation.renderedNodeIDs)
        replication.restore(state.quarantinesByNodeID { current[$0] })
        return (replication, federation, state)
    }
}
