public import Foundation
public import LiaisonCore
import LiaisonReplication
import LiaisonStore
public import Logging

/// The node's replication shell: owns the store writes, the clock and the per-peer counters,
/// and carries out what the pure `LinkSessionStateMachine`s ask for (load and filter batches,
/// verify, admit and commit received ops, record custody).
public actor ReplicationEngine {
    /// The node.
    public let node: LocalNode
    /// The federation as this node knows it.
    public let federation: FederationConfig
    let logger: Logger
    var logic: ReplicationLogic
    var listeners: [String: (token: Int, continuation: AsyncStream<SessionEvent>.Continuation)] = [:]
    var nextToken = 0
    var counters: [String: LinkCounters] = [:]

    struct LinkCounters {
        var state = "down"
        var channel: String?
        var rttMillis: UInt64?
        var lastContactMillis: UInt64?
        var ackedThrough: UInt64 = 0
        var lastAckMillis: UInt64?
        var opsSent: UInt64 = 0
        var opsReceived: UInt64 = 0
        var bytesSent: UInt64 = 0
        var bytesReceived: UInt64 = 0
        var opsWithheld: UInt64 = 0
        var rejects: UInt64 = 0
        var lastError: String?
    }

    /// Creates the engine for an opened node and its federation configuration.
    public init(node: LocalNode, federation: FederationConfig, logger: Logger) throws(LiaisonError) {
        guard let me = federation.partner(named: federation.me), me.nodeID == node.config.nodeID else {
            throw LiaisonError(.corrupt, "federation.json does not describe this node (\(node.config.name)); render it again")
        }
        self.node = node
        self.federation = federation
        self.logger = logger
        self.logic = try ReplicationLogic(
            me: me.recipient,
            store: node.store,
            ladder: node.config.classifications,
            knownAuthors: Set(federation.partners.map(\.nodeID)),
            neighbours: federation.neighbours.compactMap { neighbour in
                federation.partner(named: neighbour.name).map {
                    ReplicationNeighbour(partner: $0.recipient, outbound: neighbour.outbound, inbound: neighbour.inbound)
                }
            },
            maxClockSkewMillis: node.config.maxClockSkewMillis
        )
        for neighbour in federation.neighbours {
            counters[neighbour.name] = LinkCounters()
        }
        for neighbour in federation.neighbours {
            counters[neighbour.name]?.ackedThrough = (try? node.store.checkpoint(link: ReplicationLogic.sentLink(neighbour.name))) ?? 0
        }
    }


    static var nowMillis: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    // MARK: - Local writes

    /// Creates an item here and pushes it to the sessions.
    public func put(_ request: PutRequest) throws(LiaisonError) -> (item: ItemState, op: VerifiedOp) {
        let result = try node.put(request, now: Date())
        logic.observe(result.op.body.hlc, nowMillis: Self.nowMillis)
        notifyLogGrew()
        return result
    }

    /// Changes an item here and pushes the change to the sessions.
    public func update(_ id: ItemID, fields: [(name: String, value: Data)], addTags: [String], removeTags: [String])
        throws(LiaisonError) -> ItemState
    {
        let result = try node.update(id, fields: fields, addTags: addTags, removeTags: removeTags, now: Date())
        notifyLogGrew()
        return result.item
    }

    func notifyLogGrew() {
        guard let highest = try? node.store.highestSequence() else { return }
        for listener in listeners.values { listener.continuation.yield(.logGrew(highest)) }
    }

    // MARK: - Sessions

    /// Makes a new channel the peer's current one; an older channel of the same peer is told
    /// to close. Returns the token that `unregister` needs.
    func register(peer: String, channel: String, continuation: AsyncStream<SessionEvent>.Continuation) -> Int {
        listeners[peer]?.continuation.yield(.replaced)
        nextToken += 1
        listeners[peer] = (nextToken, continuation)
        counters[peer]?.state = "connecting"
        counters[peer]?.channel = channel
        return nextToken
    }

    func unregister(peer: String, token: Int, reason: String?) {
        guard let current = listeners[peer], current.token == token else { return }
        current.continuation.finish()
        listeners[peer] = nil
        counters[peer]?.lastError = reason
        counters[peer]?.state = "down"
        counters[peer]?.channel = nil
    }

    func opened(peer: String, peerHLC: HLCTimestamp) {
        counters[peer]?.state = "up"
        logic.observe(peerHLC, nowMillis: Self.nowMillis)
    }

    func heard(peer: String, bytes: Int, rttMillis: UInt64?) {
        counters[peer]?.lastContactMillis = Self.nowMillis
        counters[peer]?.bytesReceived += UInt64(bytes)
        if let rttMillis { counters[peer]?.rttMillis = rttMillis }
    }

    func sentBytes(peer: String, bytes: Int) {
        counters[peer]?.bytesSent += UInt64(bytes)
    }

    /// The session start values: how far we applied the peer's log, and our log's end.
    func sessionStart(peer: String) throws(LiaisonError) -> (checkpoint: UInt64, highest: UInt64, hlc: HLCTimestamp) {
        try logic.sessionStart(peer: peer)
    }

    /// Records a channel-level refusal (unpinned certificate, malformed frames, violations).
    func refused(peer: String?, detail: String) {
        if let peer { counters[peer]?.lastError = detail }
        _ = try? node.store.appendCustody(
            CustodyEvent(kind: .peerRefused, peer: peer, detail: detail),
            timeMillis: Int64(Self.nowMillis)
        )
        logger.warning("refused peer", metadata: ["liaison.partner": "\(peer ?? "unknown")", "liaison.reason": "\(detail)"])
    }

    // MARK: - Sending

    /// Reads our log after `after`, filters it for `peer`, and records custody of what goes
    /// and what is withheld.
    func loadBatch(for peer: String, after: UInt64, limit: Int) throws(LiaisonError) -> OutboxBatch {
        let batch = try logic.loadBatch(for: peer, after: after, limit: limit, nowMillis: Self.nowMillis)
        counters[peer]?.opsSent += UInt64(batch.sent.count)
        counters[peer]?.opsWithheld += UInt64(batch.withheld.count)
        return batch
    }

    /// The peer acknowledged our log up to `through`.
    func acknowledged(peer: String, through: UInt64) {
        try? logic.acknowledged(peer: peer, through: through)
        let acked = max(counters[peer]?.ackedThrough ?? 0, through)
        counters[peer]?.ackedThrough = acked
        counters[peer]?.lastAckMillis = Self.nowMillis
    }

    // MARK: - Receiving

    /// Verifies, admits and commits ops from `peer` covering its log up to `through`; then
    /// records the checkpoint. Refused ops are audited and counted against the peer; the
    /// rest still commit (the peer's other traffic keeps flowing).
    func receive(ops encoded: [Data], through: UInt64, from peer: String) throws(LiaisonError) -> Int {
        let outcome = try logic.receive(ops: encoded, through: through, from: peer, nowMillis: Self.nowMillis)
        counters[peer]?.rejects += UInt64(outcome.refused)
        counters[peer]?.opsReceived += UInt64(outcome.accepted)
        if outcome.refused > 0 {
            logger.warning("refused ops", metadata: ["liaison.partner": "\(peer)", "liaison.count": "\(outcome.refused)"])
        }
        if outcome.logGrew { notifyLogGrew() }
        return outcome.refused
    }

    // MARK: - Status

    /// One row per neighbour.
    public func linkStatus() -> [LinkStatus] {
        let highest = (try? node.store.highestSequence()) ?? 0
        let now = Self.nowMillis
        return federation.neighbours.map { neighbour in
            let c = counters[neighbour.name] ?? LinkCounters()
            let lag = neighbour.outbound == nil ? 0 : (highest > c.ackedThrough ? highest - c.ackedThrough : 0)
            let lagSeconds = lag == 0 ? 0 : Double(now - (c.lastAckMillis ?? c.lastContactMillis ?? now)) / 1000
            return LinkStatus(
                peer: neighbour.name,
                state: c.state,
                channel: c.channel,
                rttMillis: c.rttMillis,
                lastContact: c.lastContactMillis.map { ISO8601.format(millis: Int64($0)) },
                lagOps: lag,
                lagSeconds: lagSeconds,
                opsSent: c.opsSent,
                opsReceived: c.opsReceived,
                bytesSent: c.bytesSent,
                bytesReceived: c.bytesReceived,
                opsWithheld: c.opsWithheld,
                rejects: c.rejects,
                outbound: neighbour.outbound != nil,
                inbound: neighbour.inbound != nil,
                lastError: c.lastError
            )
        }
    }
}
