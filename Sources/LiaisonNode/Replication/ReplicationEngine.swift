public import Foundation
public import LiaisonCore
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
    let verifier = OpVerifier()
    var clock: HybridLogicalClock
    let me: FederationConfig.Partner
    let knownAuthors: Set<NodeID>
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
        self.me = me
        self.knownAuthors = Set(federation.partners.map(\.nodeID))
        self.clock = HybridLogicalClock(maxSkewMillis: node.config.maxClockSkewMillis, last: try node.store.highestHLC())
        for neighbour in federation.neighbours {
            counters[neighbour.name] = LinkCounters()
        }
        for neighbour in federation.neighbours {
            counters[neighbour.name]?.ackedThrough = (try? node.store.checkpoint(link: Self.sentLink(neighbour.name))) ?? 0
        }
    }

    static func sentLink(_ peer: String) -> String { "to:\(peer)" }
    static func receivedLink(_ peer: String) -> String { "from:\(peer)" }

    static var nowMillis: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    // MARK: - Local writes

    /// Creates an item here and pushes it to the sessions.
    public func put(_ request: PutRequest) throws(LiaisonError) -> (item: ItemState, op: VerifiedOp) {
        let result = try node.put(request, now: Date())
        clock = HybridLogicalClock(maxSkewMillis: clock.maxSkewMillis, last: max(clock.last, result.op.body.hlc))
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
        try? clock.observe(peerHLC, physicalMillis: Self.nowMillis)
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
        (try node.store.checkpoint(link: Self.receivedLink(peer)), try node.store.highestSequence(), clock.last)
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
        guard let partner = federation.partner(named: peer), let neighbour = federation.neighbours.first(where: { $0.name == peer })
        else { throw LiaisonError(.notFound, "no neighbour \(peer)") }
        let stored = try node.store.ops(after: after, limit: limit)
        guard let last = stored.last else { return OutboxBatch() }
        guard let filter = neighbour.outbound else {
            var batch = OutboxBatch()
            batch.throughSeq = last.sequence
            return batch
        }
        var items = [ItemID: ItemState]()
        var candidates = [OutboxCandidate]()
        var included = Set<OpID>()
        for entry in stored {
            let id = entry.op.body.itemID
            if items[id] == nil { items[id] = try node.store.item(id) }
            guard let item = items[id] else { continue }
            // When markings change, the whole item may become eligible: send its history
            // too (duplicates are harmless), so a broadened item arrives complete (§5.7).
            if case .changeMarkings = entry.op.body.change {
                for earlier in try node.store.ops(ofItem: id) where earlier.sequence < entry.sequence {
                    if included.insert(earlier.op.id).inserted {
                        candidates.append(OutboxCandidate(sequence: earlier.sequence, op: earlier.op, item: item, receivedFrom: earlier.receivedFrom))
                    }
                }
            }
            if included.insert(entry.op.id).inserted {
                candidates.append(OutboxCandidate(sequence: entry.sequence, op: entry.op, item: item, receivedFrom: entry.receivedFrom))
            }
        }
        let batch = try LinkOutbox.prepare(
            candidates,
            throughSeq: last.sequence,
            sender: node.config.nodeID,
            recipient: partner.recipient,
            filter: filter,
            ladder: node.config.classifications
        )
        let now = Int64(Self.nowMillis)
        if !batch.sent.isEmpty {
            _ = try node.store.appendCustody(
                CustodyEvent(kind: .opsSent, peer: peer, detail: "through \(batch.throughSeq)", opIDs: batch.sent),
                timeMillis: now
            )
        }
        if !batch.redacted.isEmpty {
            let fields = Set(batch.redacted.flatMap(\.fields)).sorted().joined(separator: ", ")
            _ = try node.store.appendCustody(
                CustodyEvent(kind: .opsRedacted, peer: peer, detail: "withheld values of \(fields)", opIDs: batch.redacted.map(\.id)),
                timeMillis: now
            )
        }
        if !batch.withheld.isEmpty {
            let reasons = Dictionary(grouping: batch.withheld, by: \.reason.rawValue).map { "\($0.value.count)× \($0.key)" }
            _ = try node.store.appendCustody(
                CustodyEvent(
                    kind: .filterWithheld,
                    peer: peer,
                    detail: reasons.sorted().joined(separator: "; "),
                    opIDs: batch.withheld.map(\.id)
                ),
                timeMillis: now
            )
        }
        counters[peer]?.opsSent += UInt64(batch.sent.count)
        counters[peer]?.opsWithheld += UInt64(batch.withheld.count)
        return batch
    }

    /// The peer acknowledged our log up to `through`.
    func acknowledged(peer: String, through: UInt64) {
        try? node.store.advanceCheckpoint(link: Self.sentLink(peer), to: through)
        let acked = max(counters[peer]?.ackedThrough ?? 0, through)
        counters[peer]?.ackedThrough = acked
        counters[peer]?.lastAckMillis = Self.nowMillis
    }

    // MARK: - Receiving

    /// Verifies, admits and commits ops from `peer` covering its log up to `through`; then
    /// records the checkpoint. Refused ops are audited and counted against the peer; the
    /// rest still commit (the peer's other traffic keeps flowing).
    func receive(ops encoded: [Data], through: UInt64, from peer: String) throws(LiaisonError) -> Int {
        guard let partner = federation.partner(named: peer), let neighbour = federation.neighbours.first(where: { $0.name == peer })
        else { throw LiaisonError(.notFound, "no neighbour \(peer)") }
        let now = Self.nowMillis
        var accepted = [VerifiedOp]()
        var refused = [(id: OpID?, reason: StrikeReason)]()
        var verified = [VerifiedOp]()
        for bytes in encoded {
            do {
                verified.append(try verifier.verify(bytes))
            } catch {
                refused.append((nil, .invalid(error)))
            }
        }
        // Each item as this batch leaves it: our state plus the batch's ops (a create in the
        // batch brings the item). Entitlement is judged on it, as the sender judged it.
        var states = [ItemID: ItemState]()
        for op in verified where states[op.body.itemID] == nil {
            states[op.body.itemID] = try node.store.item(op.body.itemID)
        }
        for op in verified {
            let id = op.body.itemID
            if var state = states[id] {
                _ = try? state.apply(op)
                states[id] = state
            } else if case .create = op.body.change, let state = try? ItemState(create: op) {
                states[id] = state
            }
        }
        for op in verified {
            guard let inbound = neighbour.inbound else {
                refused.append((op.id, .notEntitled(.notReleasable)))
                continue
            }
            if let strike = Admission.check(
                op,
                item: states[op.body.itemID],
                from: partner.nodeID,
                senderFilter: inbound,
                me: me.recipient,
                knownAuthors: knownAuthors,
                ladder: node.config.classifications,
                clock: clock,
                nowMillis: now
            ) {
                refused.append((op.id, strike))
                continue
            }
            try? clock.observe(op.body.hlc, physicalMillis: now)
            accepted.append(op)
        }
        if !accepted.isEmpty {
            let result = try node.store.commit(CommitBatch(ops: accepted, source: .peer(partner.nodeID), timeMillis: Int64(now)))
            counters[peer]?.rejects += UInt64(result.rejected.count)
        }
        if !refused.isEmpty {
            let reasons = Dictionary(grouping: refused, by: { $0.reason.description }).map { "\($0.value.count)× \($0.key)" }
            _ = try node.store.appendCustody(
                CustodyEvent(
                    kind: .opsRejected,
                    peer: partner.nodeID.text,
                    detail: reasons.sorted().joined(separator: "; "),
                    opIDs: refused.compactMap(\.id)
                ),
                timeMillis: Int64(now)
            )
            counters[peer]?.rejects += UInt64(refused.count)
            logger.warning(
                "refused ops",
                metadata: ["liaison.partner": "\(peer)", "liaison.count": "\(refused.count)", "liaison.reason": "\(reasons.sorted().first ?? "")"]
            )
        }
        try node.store.advanceCheckpoint(link: Self.receivedLink(peer), to: through)
        counters[peer]?.opsReceived += UInt64(accepted.count)
        if !accepted.isEmpty { notifyLogGrew() }
        return refused.count
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
