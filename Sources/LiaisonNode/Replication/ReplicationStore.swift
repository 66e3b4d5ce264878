public import Foundation
public import LiaisonCore
public import LiaisonReplication
public import LiaisonStore

/// What a receive did.
public struct ReceiveOutcome: Sendable, Equatable {
    /// Ops accepted and committed (including duplicates).
    public var accepted: Int = 0
    /// Ops refused (strikes against the sender).
    public var refused: Int = 0
    /// Whether our log grew.
    public var logGrew: Bool = false
    /// The end of our log after the commit.
    public var highest: UInt64 = 0
    /// Strikes by culprit and class. The sender answers for what it should have refused
    /// itself (bad signatures, unknown authors, ops it was not entitled to send us, future
    /// stamps, unredacted values); an op its item refuses (a non-originator deleting, a
    /// non-writer writing, a second create) proves its author's misconduct whoever carried
    /// it, so the author answers for it. Ops of a quarantined author are refused without one.
    public var strikes: [NodeID: [StrikeClass: Int]] = [:]
}

/// The store side of replication, run by the one interpreter for the engine's `.loadBatch`
/// and `.commit` actions: reads our log and filters it for a neighbour with the pure
/// `LinkOutbox` rules (custody of what goes, is redacted and is withheld), and verifies,
/// admits (the pure `Admission` rules) and commits what a neighbour sent (custody of
/// refusals, checkpoints). Synchronous; time comes in as arguments.
public struct ReplicationStore: Sendable {
    /// This node.
    public let me: Recipient
    /// The store.
    public let store: any Store
    /// The federation's ladder.
    public let ladder: ClassificationLadder
    /// Every partner's NodeID: the only authors accepted.
    public let knownAuthors: Set<NodeID>
    /// Neighbours by name.
    public let neighbours: [String: ReplicationNeighbour]
    /// The node's clock (observes every accepted op).
    public private(set) var clock: HybridLogicalClock
    /// Quarantined partners by NodeID: their ops from the quarantine's start on are refused,
    /// not sent on, and left out of every item.
    public private(set) var quarantines: [NodeID: Quarantine] = [:]
    let verifier: OpVerifier

    /// Creates the logic; the clock resumes after the store's highest stamp.
    public init(
        me: Recipient,
        store: any Store,
        ladder: ClassificationLadder,
        knownAuthors: Set<NodeID>,
        neighbours: [ReplicationNeighbour],
        maxClockSkewMillis: UInt64
    ) throws(LiaisonError) {
        self.me = me
        self.store = store
        self.ladder = ladder
        self.knownAuthors = knownAuthors
        self.neighbours = Dictionary(uniqueKeysWithValues: neighbours.map { ($0.partner.name, $0) })
        self.clock = HybridLogicalClock(maxSkewMillis: maxClockSkewMillis, last: try store.highestHLC())
        self.verifier = OpVerifier()
    }

    /// Whether an op is left out because its author is quarantined.
    public func isExcluded(_ op: VerifiedOp) -> Bool {
        quarantines[op.body.author]?.excludes(op.body.hlc) ?? false
    }

    /// The containment state persisted in the store (empty when there is none).
    public static func loadContainment(_ store: any Store) throws(LiaisonError) -> ContainmentState {
        guard let data = try store.metadata(MetadataKey.containment) else { return ContainmentState() }
        do {
            return try JSONDecoder().decode(ContainmentState.self, from: data)
        } catch {
            throw LiaisonError(
                .corrupt, "the store's containment state does not decode (\(error)); restore the store from a backup")
        }
    }

    /// Persists the containment state.
    public func saveContainment(_ state: ContainmentState) throws(LiaisonError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data: Data
        do {
            data = try encoder.encode(state)
        } catch {
            throw LiaisonError(.io, "cannot encode the containment state: \(error)")
        }
        try store.setMetadata(MetadataKey.containment, data)
    }

    /// Quarantines `author` (named `name`): its ops from `quarantine.sinceMillis` on leave
    /// every item they touched (they stay in the log), in one transaction with its custody
    /// entry. Also sets the quarantine at start-up (then nothing is rebuilt if the items
    /// already leave the ops out).
    @discardableResult
    public mutating func quarantine(
        _ name: String, author: NodeID, _ quarantine: Quarantine, nowMillis: UInt64
    ) throws(LiaisonError) -> RebuildResult {
        let earliest = min(quarantine.sinceMillis, quarantines[author]?.sinceMillis ?? .max)
        quarantines[author] = quarantine
        let detail =
            "\(quarantine.automatic ? "by its strikes" : "by the operator"): \(quarantine.reason); "
            + "its ops since \(quarantine.sinceMillis) ms are left out"
        return try rebuild(
            author: author, sinceMillis: earliest,
            custody: CustodyEvent(kind: .partnerQuarantined, peer: name, detail: detail), nowMillis: nowMillis)
    }

    /// Sets the quarantines a restarted node held (its items already leave their ops out).
    public mutating func restore(_ quarantines: [NodeID: Quarantine]) {
        self.quarantines = quarantines
    }

    /// Ends `author`'s quarantine: its ops count again and the items they touched are
    /// rebuilt with them.
    @discardableResult
    public mutating func release(
        _ name: String, author: NodeID, nowMillis: UInt64
    ) throws(LiaisonError)
        -> RebuildResult
    {
        guard let quarantine = quarantines.removeValue(forKey: author) else { return RebuildResult() }
        return try rebuild(
            author: author, sinceMillis: quarantine.sinceMillis,
            custody: CustodyEvent(kind: .partnerReleased, peer: name, detail: "its ops count again"),
            nowMillis: nowMillis)
    }

    private func rebuild(
        author: NodeID, sinceMillis: UInt64, custody: CustodyEvent, nowMillis: UInt64
    ) throws(LiaisonError) -> RebuildResult {
        let items = try store.items(authoredBy: author, since: HLCTimestamp(physicalMillis: sinceMillis, logical: 0))
        let quarantines = self.quarantines
        var result = try store.rebuild(
            items: items,
            excluding: { quarantines[$0.body.author]?.excludes($0.body.hlc) ?? false },
            custody: custody,
            timeMillis: Int64(nowMillis)
        )
        // Only the author's own ops are reported as left out or put back.
        if custody.kind == .partnerReleased {
            result.excluded = []
        }
        return result
    }

    /// Most ops from one partner kept waiting for items this node does not hold (an
    /// annotation can arrive before its item's create; a partner sending ops for items that
    /// never come would grow the store without bound). Past it such ops are refused with a
    /// `flood` strike; they come again with their create.
    public var maxPendingPerPartner = 10_000

    /// The checkpoint names of the two directions of a link.
    public static func sentLink(_ peer: String) -> String { "to:\(peer)" }
    /// How far we applied a peer's log.
    public static func receivedLink(_ peer: String) -> String { "from:\(peer)" }

    /// A stamp for an op authored here now.
    public mutating func tick(nowMillis: UInt64) -> HLCTimestamp {
        clock.tick(physicalMillis: nowMillis)
    }

    /// Takes in a stamp seen elsewhere (a hello, a local op).
    public mutating func observe(_ stamp: HLCTimestamp, nowMillis: UInt64) {
        try? clock.observe(stamp, physicalMillis: nowMillis)
    }

    /// A new session's starting point: how far we applied the peer's log, our log's end, our clock.
    public func sessionStart(
        peer: String
    ) throws(LiaisonError) -> (checkpoint: UInt64, highest: UInt64, hlc: HLCTimestamp) {
        (try store.checkpoint(link: Self.receivedLink(peer)), try store.highestSequence(), clock.last)
    }

    /// The peer acknowledged our log up to `through`.
    public func acknowledged(peer: String, through: UInt64) throws(LiaisonError) {
        try store.advanceCheckpoint(link: Self.sentLink(peer), to: through)
    }

    /// Reads our log after `after`, filters it for `peer`, and records custody of what goes
    /// and what is withheld.
    /// `sealedVia` names the relay when the batch leaves sealed rather than on a channel.
    public func loadBatch(
        for peer: String,
        after: UInt64,
        limit: Int,
        nowMillis: UInt64,
        sealedVia relay: String? = nil
    ) throws(LiaisonError) -> OutboxBatch {
        guard let neighbour = neighbours[peer] else { throw LiaisonError(.notFound, "no neighbour \(peer)") }
        let stored = try store.ops(after: after, limit: limit)
        guard let last = stored.last else { return OutboxBatch() }
        guard let filter = neighbour.outbound else {
            var batch = OutboxBatch()
            batch.throughSeq = last.sequence
            return batch
        }
        var items = [ItemID: ItemState]()
        var candidates = [OutboxCandidate]()
        var included = Set<OpID>()
        var quarantined = [OpID]()
        for entry in stored {
            let id = entry.op.body.itemID
            // Ops of a quarantined partner since its quarantine's start go nowhere.
            if isExcluded(entry.op) {
                quarantined.append(entry.op.id)
                continue
            }
            if items[id] == nil { items[id] = try store.item(id) }
            guard let item = items[id] else { continue }
            // When markings or tags change, the whole item may become eligible: send its
            // history too (duplicates are harmless), so the item arrives complete (§5.7).
            if entry.op.body.change.mayChangeEligibility {
                for earlier in try store.ops(ofItem: id)
                where earlier.sequence < entry.sequence && !isExcluded(earlier.op) {
                    if included.insert(earlier.op.id).inserted {
                        candidates.append(
                            OutboxCandidate(
                                sequence: earlier.sequence, op: earlier.op, item: item,
                                receivedFrom: earlier.receivedFrom))
                    }
                }
            }
            if included.insert(entry.op.id).inserted {
                candidates.append(
                    OutboxCandidate(
                        sequence: entry.sequence, op: entry.op, item: item, receivedFrom: entry.receivedFrom))
            }
        }
        let batch = try LinkOutbox.prepare(
            candidates,
            throughSeq: last.sequence,
            sender: me.nodeID,
            recipient: neighbour.partner,
            filter: filter,
            ladder: ladder
        )
        let now = Int64(nowMillis)
        if !quarantined.isEmpty {
            _ = try store.appendCustody(
                CustodyEvent(
                    kind: .filterWithheld, peer: peer, detail: "\(quarantined.count)× author quarantined",
                    opIDs: quarantined),
                timeMillis: now
            )
        }
        if !batch.sent.isEmpty {
            _ = try store.appendCustody(
                CustodyEvent(
                    kind: .opsSent,
                    peer: peer,
                    detail: relay.map { "sealed via \($0) through \(batch.throughSeq)" }
                        ?? "through \(batch.throughSeq)",
                    opIDs: batch.sent
                ),
                timeMillis: now
            )
        }
        if !batch.redacted.isEmpty {
            let fields = Set(batch.redacted.flatMap(\.fields)).sorted().joined(separator: ", ")
            _ = try store.appendCustody(
                CustodyEvent(
                    kind: .opsRedacted, peer: peer, detail: "withheld values of \(fields)",
                    opIDs: batch.redacted.map(\.id)),
                timeMillis: now
            )
        }
        if !batch.withheld.isEmpty {
            let reasons = Dictionary(grouping: batch.withheld, by: \.reason.rawValue).map {
                "\($0.value.count)× \($0.key)"
            }
            _ = try store.appendCustody(
                CustodyEvent(
                    kind: .filterWithheld,
                    peer: peer,
                    detail: reasons.sorted().joined(separator: "; "),
                    opIDs: batch.withheld.map(\.id)
                ),
                timeMillis: now
            )
        }
        return batch
    }

    /// Verifies, admits and commits ops from `peer` covering its log up to `through`; then
    /// records the checkpoint. Refused ops are audited and counted against the peer; the
    /// rest still commit (the peer's other traffic keeps flowing). Ops that came sealed
    /// (`through` nil) are admitted the same way but move no checkpoint: they are not a
    /// contiguous stretch of the peer's log.
    public mutating func receive(
        ops encoded: [Data], through: UInt64?, from peer: String, nowMillis: UInt64
    ) throws(LiaisonError) -> ReceiveOutcome {
        guard let neighbour = neighbours[peer] else { throw LiaisonError(.notFound, "no neighbour \(peer)") }
        let partner = neighbour.partner
        let now = nowMillis
        var accepted = [VerifiedOp]()
        var refused = [(id: OpID?, reason: StrikeReason, culprit: NodeID)]()
        var verified = [VerifiedOp]()
        var quarantined = [VerifiedOp]()
        for bytes in encoded {
            do {
                let op = try verifier.verify(bytes)
                // A quarantined partner's ops since its quarantine's start are refused from
                // whoever passes them on; the forwarder is not struck (it may not know yet).
                if isExcluded(op) {
                    quarantined.append(op)
                } else {
                    verified.append(op)
                }
            } catch {
                refused.append((nil, .invalid(error), partner.nodeID))
            }
        }
        // Each item as this batch leaves it: our state plus the batch's ops (a create in the
        // batch brings the item). Entitlement is judged on it, as the sender judged it.
        var states = [ItemID: ItemState]()
        for op in verified where states[op.body.itemID] == nil {
            states[op.body.itemID] = try store.item(op.body.itemID)
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
        var pendingRoom: Int?
        for op in verified {
            guard let inbound = neighbour.inbound else {
                refused.append((op.id, .notEntitled(.notReleasable), partner.nodeID))
                continue
            }
            if let strike = Admission.check(
                op,
                item: states[op.body.itemID],
                from: partner.nodeID,
                senderFilter: inbound,
                me: me,
                knownAuthors: knownAuthors,
                ladder: ladder,
                clock: clock,
                nowMillis: now
            ) {
                if case .refusedByItem = strike {
                    refused.append((op.id, strike, op.body.author))
                } else {
                    refused.append((op.id, strike, partner.nodeID))
                }
                continue
            }
            if states[op.body.itemID] == nil, try store.op(op.id) == nil {
                // It will wait for its create: bounded per partner.
                var room = pendingRoom ?? 0
                if pendingRoom == nil { room = maxPendingPerPartner - (try store.pendingCount(from: partner.nodeID)) }
                guard room > 0 else {
                    pendingRoom = 0
                    refused.append((op.id, .tooManyPending(limit: maxPendingPerPartner), partner.nodeID))
                    continue
                }
                pendingRoom = room - 1
            }
            try? clock.observe(op.body.hlc, physicalMillis: now)
            accepted.append(op)
        }
        var outcome = ReceiveOutcome()
        if !accepted.isEmpty {
            let before = try store.highestSequence()
            let result = try store.commit(
                CommitBatch(ops: accepted, source: .peer(partner.nodeID), timeMillis: Int64(now)))
            outcome.refused += result.rejected.count
            for rejected in result.rejected {
                let author = result.rejectedAuthors[rejected.id] ?? partner.nodeID
                outcome.strikes[author, default: [:]][.nonWriter, default: 0] += 1
            }
            outcome.logGrew = try store.highestSequence() > before
        }
        if !quarantined.isEmpty {
            _ = try store.appendCustody(
                CustodyEvent(
                    kind: .opsRejected, peer: partner.nodeID.text,
                    detail: "\(quarantined.count)× author quarantined", opIDs: quarantined.map(\.id)),
                timeMillis: Int64(now)
            )
            outcome.refused += quarantined.count
        }
        outcome.highest = try store.highestSequence()
        if !refused.isEmpty {
            let reasons = Dictionary(grouping: refused, by: { $0.reason.description }).map {
                "\($0.value.count)× \($0.key)"
            }
            _ = try store.appendCustody(
                CustodyEvent(
                    kind: .opsRejected,
                    peer: partner.nodeID.text,
                    detail: reasons.sorted().joined(separator: "; "),
                    opIDs: refused.compactMap(\.id)
                ),
                timeMillis: Int64(now)
            )
        }
        if let through { try store.advanceCheckpoint(link: Self.receivedLink(peer), to: through) }
        outcome.accepted = accepted.count
        outcome.refused += refused.count
        var overflowStruck = false
        for entry in refused {
            // Ops past the pending bound count once per batch: the strike is for the burst.
            if case .tooManyPending = entry.reason {
                if overflowStruck { continue }
                overflowStruck = true
            }
            outcome.strikes[entry.culprit, default: [:]][entry.reason.strikeClass, default: 0] += 1
        }
        return outcome
    }
}
