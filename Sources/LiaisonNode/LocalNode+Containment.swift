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
        let quarantine = Quarantine(sinceMillis: sinceMillis, atMillis: nowMillis, reason: reason, automatic: false)
        state.quarantines[peer] = quarantine
        return try replication.quarantine(
            peer, author: federation.partner(named: peer)!.nodeID, quarantine, containment: state,
            nowMillis: nowMillis)
    }

    /// Ends `peer`'s quarantine: its ops count again.
    public func release(_ peer: String, nowMillis: UInt64) throws(LiaisonError) -> RebuildResult {
        var (replication, federation, state) = try containmentContext()
        try federation.checkQuarantinable(peer)
        guard state.release(peer) != nil else {
            throw LiaisonError(.notFound, "\(peer) is not quarantined; 'liaison quarantines' lists who is")
        }
        return try replication.release(
            peer, author: federation.partner(named: peer)!.nodeID, containment: state, nowMillis: nowMillis)
    }

    private func containmentContext() throws(LiaisonError) -> (ReplicationStore, FederationConfig, ContainmentState) {
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
        replication.restore(state.quarantinesByNodeID { federation.partner(named: $0)?.nodeID })
        return (replication, federation, state)
    }
}
