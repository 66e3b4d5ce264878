public import Foundation
public import LiaisonCore
public import LiaisonReplication
public import LiaisonStore

/// What a receive did.
public struct ReceiveOutcome: Sendable, Equatable {
    /// Ops accepted and committed (including duplicates).
    public var accepted: Int = 0
    /// Ops refused (each counted against its culprit in `strikes`).
    public var refused: Int = 0
    /// Whether our log grew.
    public var logGrew: Bool = false
    /// The end of our log after the commit.
    public var highest: UInt64 = 0
    /// Strikes by culprit and class. The sender answers for what it should have refused
    /// itself (bad signatures, unknown authors, ops it was not entitled to send us, an
    /// annotation by a partner no markings of the item released it to, unredacted values);
    /// an op its item refuses (a non-originator deleting, a non-writer writing, a second
    /// create) proves its author's misconduct whoever carried it, and only the author chose
    /// a stamp too far ahead, so the author answers for those (`StrikeReason.chargedToAuthor`).
    /// Ops of a quarantined author are refused without one.
    public var strikes: [NodeID: [StrikeClass: Int]] = [:]
    /// Set when nothing was committed because an op of the batch is stamped further ahead
    /// than the allowed skew (by at most twice the skew): offer the batch again once local
    /// time reaches this (I6). Nothing of it is acknowledged meanwhile, so nothing is lost.
    public var waitUntilMillis: UInt64?
    /// Ops of a waiting batch stamped too far ahead.
    public var early: Int = 0
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
    /// Every partner by NodeID: the only authors accepted (and, for annotations, who they are).
    /// A partner readmitted with new keys is here under both: its revoked key's ops are
    /// refused from the revocation's start (`quarantines`), not counted as an outsider's.
    public internal(set) var authors: [NodeID: Recipient]
    /// Neighbours by name.
    public internal(set) var neighbours: [String: ReplicationNeighbour]
    /// Partners readmitted with new keys, by name: their links' checkpoints start afresh under
    /// names of their own (`ReplicationStore+Governance`).
    public internal(set) var readmitted: [String: NodeID] = [:]
    /// The node's clock (observes every accepted op).
    public private(set) var clock: HybridLogicalClock
    /// Quarantined partners by NodeID: their ops from the quarantine's start on are refused,
    /// not sent on, and left out of every item.
    public private(set) var quarantines: [NodeID: Quarantine] = [:]
    let verifier: OpVerifier

    /// Creates the logic; the clock resumes after the store's highest stamp, taken in as a
    /// received stamp is: at most half the skew ahead of `nowMillis` (nil: as it is, for
    /// callers that stamp nothing).
    public init(
        me: Recipient,
        store: any Store,
        ladder: ClassificationLadder,
        partners: [Recipient],
        neighbours: [ReplicationNeighbour],
        maxClockSkewMillis: UInt64,
        nowMillis: UInt64?,
        verifier: OpVerifier = OpVerifier()
    ) throws(LiaisonError) {
        self.me = me
        self.store = store
        self.ladder = ladder
        self.authors = Dictionary(partners.map { ($0.nodeID, $0) }, uniquingKeysWith: { first, _ in first })
        self.neighbours = Dictionary(uniqueKeysWithValues: neighbours.map { ($0.partner.name, $0) })
        let highest = try store.highestHLC()
        self.clock =
            nowMillis.map {
                HybridLogicalClock(maxSkewMillis: maxClockSkewMillis, resumingAfter: highest, physicalMillis: $0)
            } ?? HybridLogicalClock(maxSkewMillis: maxClockSkewMillis, last: highest)
        self.verifier = verifier
    }

    /// Whether an op is left out because its author is quarantined.
    public func isExcluded(_ op: VerifiedOp) -> Bool {
        isExcluded(author: op.body.author, hlc: op.body.hlc)
    }

    /// Whether an op by `author` stamped `hlc` is left out because its author is quarantined.
    public func isExcluded(author: NodeID, hlc: HLCTimestamp) -> Bool {
        quarantines[author]?.excludes(hlc) ?? false
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
        try store.setMetadata(MetadataKey.containment, try Self.encode(state))
    }

    static func encode(_ state: ContainmentState) throws(LiaisonError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        do {
            return try encoder.encode(state)
        } catch {
            throw LiaisonError(.io, "cannot encode the containment state: \(error)")
        }
    }

    /// Quarantines `author` (named `name`): its ops from `quarantine.sinceMillis` on leave
    /// every item they touched (they stay in the log) and its waiting ops are dropped, in one
    /// transaction with its custody entry and `containment` (the node's state with the
    /// quarantine), so a crash cannot leave items rebuilt under a quarantine not recorded.
    @discardableResult
    public mutating func quarantine(
        _ name: String, author: NodeID, _ quarantine: Quarantine, containment: ContainmentState, nowMillis: UInt64
    ) throws(LiaisonError) -> RebuildResult {
        let earliest = min(quarantine.sinceMillis, quarantines[author]?.sinceMillis ?? .max)
        var next = quarantines
        next[author] = quarantine
        let by =
            quarantine.revocation != nil
            ? "by revocation" : quarantine.automatic ? "by its strikes" : "by the operator"
        let detail =
            "\(by): \(quarantine.reason); "
            + "its ops since \(quarantine.sinceMillis) ms are left out"
        let result = try rebuild(
            author: author, sinceMillis: earliest, quarantines: next,
            listing: { $0.body.author == author && quarantine.excludes($0.body.hlc) },
            custody: CustodyEvent(kind: .partnerQuarantined, peer: name, detail: detail),
            containment: containment, nowMillis: nowMillis)
        quarantines = next
        return result
    }

    /// Drops the ops waiting (for their item's create, or for markings entitling their author)
    /// that were stamped before `stampedBeforeMillis`, in one transaction with an
    /// `ops.expired` custody entry listing them; nothing is written when none is that old.
    /// Their item never reached this node in the time the containment policy allows: an op
    /// for an item not releasable here, a recall for an item never held, or a partner
    /// filling its bound. An item that arrives later still does not bring them back.
    @discardableResult
    public func expireWaiting(stampedBeforeMillis before: UInt64, nowMillis: UInt64) throws(LiaisonError) -> [OpID] {
        let expired = { (op: VerifiedOp) in op.body.hlc.physicalMillis < before }
        let waiting = try store.waitingOps()
        let old = waiting.filter { expired($0.op) }
        guard !old.isEmpty else { return [] }
        let senders = Set(old.compactMap(\.receivedFrom).map(\.short)).sorted()
        let detail =
            "\(old.count) op(s) waited for their item since before \(ISO8601.format(millis: Int64(before))) "
            + "(received from \(senders.isEmpty ? "-" : senders.joined(separator: ", "))); dropped"
        let result = try store.rebuild(
            items: [], excluding: expired, listing: expired,
            custody: CustodyEvent(kind: .opsExpired, detail: detail), metadata: nil,
            timeMillis: Int64(nowMillis), purgingFor: me, admitting: nil)
        return result.listed
    }

    /// Sets the quarantines a restarted node held (its items already leave their ops out).
    public mutating func restore(_ quarantines: [NodeID: Quarantine]) {
        self.quarantines = quarantines
    }

    /// Ends `author`'s quarantine: its ops count again and the items they touched are
    /// rebuilt with them, in one transaction with the custody entry (listing the ops put
    /// back) and `containment` (the node's state without the quarantine).
    @discardableResult
    public mutating func release(
        _ name: String, author: NodeID, containment: ContainmentState, nowMillis: UInt64
    ) throws(LiaisonError) -> RebuildResult {
        guard let quarantine = quarantines[author] else { return RebuildResult() }
        var next = quarantines
        next[author] = nil
        let result = try rebuild(
            author: author, sinceMillis: quarantine.sinceMillis, quarantines: next,
            listing: { $0.body.author == author && quarantine.excludes($0.body.hlc) },
            custody: CustodyEvent(kind: .partnerReleased, peer: name, detail: "its ops count again"),
            containment: containment, nowMillis: nowMillis)
        quarantines = next
        return result
    }

    private func rebuild(
        author: NodeID,
        sinceMillis: UInt64,
        quarantines: [NodeID: Quarantine],
        listing: (VerifiedOp) -> Bool,
        custody: CustodyEvent,
        containment: ContainmentState,
        nowMillis: UInt64
    ) throws(LiaisonError) -> RebuildResult {
        let items = try store.items(authoredBy: author, since: HLCTimestamp(physicalMillis: sinceMillis, logical: 0))
        return try store.rebuild(
            items: items,
            excluding: { quarantines[$0.body.author]?.excludes($0.body.hlc) ?? false },
            listing: listing,
            custody: custody,
            metadata: (MetadataKey.containment, try Self.encode(containment)),
            timeMillis: Int64(nowMillis),
            purgingFor: me,
            admitting: authors
        )
    }

    /// Whether a refusal that the item's earlier markings did not lift is an honest race with a
    /// change of markings rather than a fault: refused, audited, but no strike.
    /// - An op of an item narrowed away from us (earlier markings released it to us): the
    ///   sender may have sent it before the narrowing reached it. We are owed nothing more of
    ///   the item; if it is released to us again, its history comes again.
    /// - An annotation of an ORCON item from its own author, whose entitlement our markings
    ///   history does not show, that fails another check too (one that passes every other
    ///   check is held instead: `awaitsMarkings`).
    static func isRace(
        _ strike: StrikeReason, op: VerifiedOp, from sender: NodeID, state: ItemState?, earlierMarkings: [Markings],
        me: Recipient
    ) -> Bool {
        switch strike {
        case .notEntitled(.notReleasable):
            return earlierMarkings.contains { $0.isReleasable(toPartner: me.name, groups: me.groups) }
        case .refusedByItem(.notEntitled):
            return state?.markings.orcon == true && op.body.author == sender
        default:
            return false
        }
    }

    /// Whether a refusal may come from a quarantine rather than a fault, and strikes no one:
    /// the op's item was originated by a partner quarantined here, and it is refused for a
    /// reason that depends on the markings, which only the originator writes (not releasable
    /// here, ORCON, above the link's ceiling, an unknown classification, or an annotator no
    /// markings known here released the item to). This node
    /// leaves out the originator's ops since the quarantine's start; an honest sender that
    /// has not quarantined it yet (each operator acts at its own time) still holds them, and
    /// judges the item by markings this node does not (seed 320643). The op is refused and
    /// audited all the same.
    static func mayDifferByQuarantine(
        _ strike: StrikeReason, op: VerifiedOp, quarantines: [NodeID: Quarantine]
    ) -> Bool {
        guard quarantines[op.body.originator] != nil else { return false }
        switch strike {
        case .notEntitled(.notReleasable), .notEntitled(.orcon), .notEntitled(.aboveClassificationCeiling),
            .notEntitled(.unknownClassification), .refusedByItem(.notEntitled):
            return true
        default:
            return false
        }
    }

    /// Whether an op refused for `strike` is held, not refused, until a change of markings
    /// releases its item to its author (`CommitBatch.held`): an annotation of an ORCON item
    /// from its own author, whose entitlement our markings history does not show. The author
    /// may not pass the originator's change of markings on, so the annotation can overtake
    /// it; and only its author may pass it on, and the originator's link may keep it from the
    /// originator, so refusing it could lose it for good (seed 325488). Stamps cannot tell
    /// whether the change it waits for is still to come (an originator's clock may run ahead
    /// of the stamps its partners take in), so it waits until that change comes, its author
    /// is quarantined, or forever, counted against the sender's bound of waiting ops.
    ///
    /// An annotation of an item that is not ORCON waits the same way, whoever forwards it:
    /// a forwarder may hold the change of markings that entitles its author before we do, and
    /// send the annotation ahead of it (seed 438557: the annotation reached the forwarder from
    /// the originator, the change through another partner, and the forwarder's batch to us
    /// split them). We cannot tell that race from a forwarder's fault, so we strike no one;
    /// the op is not applied or passed on while it waits.
    static func awaitsMarkings(_ strike: StrikeReason, op: VerifiedOp, from sender: NodeID, state: ItemState?) -> Bool {
        guard case .refusedByItem(.notEntitled) = strike, let state else { return false }
        return state.markings.orcon ? op.body.author == sender : true
    }

    /// Most ops from one partner kept waiting for items this node does not hold (an
    /// annotation can arrive before its item's create; a partner sending ops for items that
    /// never come would grow the store without bound), or held for their item's markings
    /// (`awaitsMarkings`). Past it such ops are refused with a `flood` strike; they come again
    /// with their create.
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
        (try store.checkpoint(link: receivedLinkName(peer)), try store.highestSequence(), clock.last)
    }

    /// The peer acknowledged our log up to `through`.
    public func acknowledged(peer: String, through: UInt64) throws(LiaisonError) {
        try store.advanceCheckpoint(link: sentLinkName(peer), to: through)
    }

    /// How many sequences one read for a link may cover per op it may return: a bound on the
    /// rows a read scans while it skips a peer's echoes (a receiver's whole catch-up, for its
    /// session back to the sender).
    static let echoScanFactor: UInt64 = 64

    /// The most op bytes a batch on a channel carries: a batch frame may hold up to
    /// `SyncFrameCodec.maxFrameBytes` (4 MiB) and an op up to 1 MiB, so one op past this
    /// budget still fits. A batch always takes at least one log entry.
    static let channelBatchBytes = 3 << 20
    /// The same for a batch sealed for a relay: an envelope holds up to 3 MiB in all.
    static let sealedBatchBytes = 2 << 20
    /// The most bytes of later changes of markings a batch brings along
    /// (`laterChanges`): a batch holds at most its budget (or one entry past it), so
    /// with these the frame (4 MiB) and the envelope (3 MiB) still fit.
    static let pulledBytes = 256 << 10
    /// The most ops a batch carries, items' histories included (a change of markings or tags
    /// sends its item's history with it): a receiver refuses a batch of more than four times
    /// its own batch size (`LinkSessionStateMachine.Configuration.maxBatchOps`, which was 512
    /// until 2026-12-01), so 2,048 passes every version; and at most twice the read's `limit`.
    /// A batch always takes at least one log entry. An entry whose item history alone is
    /// longer goes in parts to a peer that takes them (`parts`); to one that does not, it
    /// still makes one larger batch (docs/decisions.md).
    static let batchOps = 2_048

    /// Reads our log after `after`, filters it for `peer`, and records custody of what goes
    /// and what is withheld.
    /// `sealedVia` names the relay when the batch leaves sealed rather than on a channel.
    /// With `parts`, a first entry whose item history passes the batch's bounds comes back as
    /// a part of it (`OutboxBatch.cut`): history ops in log order, then the entry's own op, so
    /// that the receiver judges them on the item as the entry leaves it; the next read passes
    /// the cut as `resume` and goes on after it.
    public func loadBatch(
        for peer: String,
        after: UInt64,
        limit: Int,
        nowMillis: UInt64,
        sealedVia relay: String? = nil,
        parts: Bool = false,
        resume: HistoryCut? = nil
    ) throws(LiaisonError) -> OutboxBatch {
        guard let neighbour = neighbours[peer] else { throw LiaisonError(.notFound, "no neighbour \(peer)") }
        // The peer's own ops and those it sent us go nowhere but back to it, which the link
        // never does: the store skips them (but for changes of eligibility, which make earlier
        // ops due) and says how far the read got (`OutboxRead`).
        // Ops of items in collections the link does not carry come back without their bytes
        // (`OutboxRead.outside`): withheld, or left out as a quarantined author's, unread.
        let read = try store.outboxRead(
            after: after, limit: limit, echoesOf: neighbour.partner.nodeID, scan: UInt64(limit) * Self.echoScanFactor,
            carrying: neighbour.outbound?.collections)
        let stored = read.ops
        guard read.coveredThrough > after else { return OutboxBatch() }
        guard let filter = neighbour.outbound, !stored.isEmpty || !read.outside.isEmpty else {
            return OutboxBatch(throughSeq: read.coveredThrough)
        }
        // Every item of the batch in one read, not one read transaction per op; as summaries,
        // which hold all eligibility reads of an item, without its field values.
        let items = try store.itemSummaries(Set(stored.map(\.op.body.itemID)))
        var histories = [ItemID: [StoredOp]]()
        func history(_ id: ItemID) throws(LiaisonError) -> [StoredOp] {
            if let known = histories[id] { return known }
            let loaded = try store.ops(ofItem: id)
            histories[id] = loaded
            return loaded
        }
        var candidates = [OutboxCandidate]()
        var included = Set<OpID>()
        var quarantined = [(sequence: UInt64, id: OpID)]()
        // Where each log entry's candidates (its item's history, then itself) end: the batch
        // is cut between entries when it would pass its byte budget.
        var groups = [(end: Int, sequence: UInt64)]()
        func include(_ entry: StoredOp, item: ItemSummary) throws(LiaisonError) {
            guard included.insert(entry.op.id).inserted else { return }
            // A change of markings, and a recall, also go to partners earlier markings released
            // the item to: the notice that narrows it away from them (§5.7).
            var earlier = [Markings]()
            switch entry.op.body.change {
            case .changeMarkings, .recall:
                earlier = try history(entry.op.body.itemID).compactMap(\.op.body.change.markings)
            default:
                break
            }
            candidates.append(
                OutboxCandidate(
                    sequence: entry.sequence, op: entry.op, item: item, receivedFrom: entry.receivedFrom,
                    earlierMarkings: earlier))
        }
        // The log entries in order: read whole, or outside the link's collections.
        var outside = read.outside[...]
        var outsideGroups = [Int: (id: OpID, echo: Bool)]()
        func takeOutside(before sequence: UInt64) {
            while let next = outside.first, next.sequence < sequence {
                outside.removeFirst()
                defer { groups.append((candidates.count, next.sequence)) }
                if isExcluded(author: next.author, hlc: next.hlc) || isRevokedKey(next.author, of: peer) {
                    quarantined.append((next.sequence, next.id))
                    continue
                }
                outsideGroups[groups.count] = (next.id, next.isEcho(for: neighbour.partner.nodeID))
            }
        }
        for entry in stored {
            takeOutside(before: entry.sequence)
            let id = entry.op.body.itemID
            // Ops of a quarantined partner since its quarantine's start go nowhere, and a
            // partner readmitted with new keys gets nothing its revoked keys wrote.
            defer { groups.append((candidates.count, entry.sequence)) }
            if isExcluded(entry.op) || isRevokedKey(entry.op.body.author, of: peer) {
                quarantined.append((entry.sequence, entry.op.id))
                continue
            }
            guard let item = items[id] else { continue }
            // When markings or tags change, the whole item may become eligible: send its
            // history too (duplicates are harmless), so the item arrives complete (§5.7). A
            // history under way in parts goes on after the last op sent.
            if entry.op.body.change.mayChangeEligibility {
                let sentBefore = resume.flatMap { $0.entry == entry.sequence ? $0.historyThrough : nil } ?? 0
                for earlier in try history(id)
                where earlier.sequence < entry.sequence && earlier.sequence > sentBefore && !isExcluded(earlier.op)
                    && !isRevokedKey(earlier.op.body.author, of: peer)
                {
                    try include(earlier, item: item)
                }
            }
            try include(entry, item: item)
        }
        takeOutside(before: .max)
        // Judged entry by entry, and cut when the ops to send would pass the budget (always
        // at least one entry): a frame past the receiver's limit, or an envelope past the
        // sealing limit, would be refused every time it was sent again.
        let budget = relay == nil ? Self.channelBatchBytes : Self.sealedBatchBytes
        let maxOps = min(Self.batchOps, 2 * max(limit, 1))
        // Each entry's part of the batch (what the link sends of its candidates), in order.
        var taken = [OutboxBatch]()
        var piece: OutboxBatch?
        var bytes = 0
        var ops = 0
        var start = 0
        for (index, group) in groups.enumerated() {
            var part = try LinkOutbox.prepare(
                Array(candidates[start..<group.end]),
                throughSeq: group.sequence,
                sender: me.nodeID,
                recipient: neighbour.partner,
                filter: filter,
                ladder: ladder
            )
            if let entry = outsideGroups[index] {
                // What `LinkOutbox.prepare` makes of it, without reading it.
                if entry.echo {
                    part.echoes += 1
                } else {
                    part.withheld.append((entry.id, .collectionNotShared))
                }
            }
            let partBytes = part.ops.reduce(0) { $0 + $1.count }
            // An entry whose history alone passes the bounds goes in parts, to a peer that
            // takes them (not sealed: an envelope covers no stretch of the log).
            if index == 0, parts, relay == nil, partBytes > budget || part.ops.count > maxOps {
                piece = try historyPart(
                    candidates[0..<group.end], entry: group.sequence, peer: neighbour.partner, filter: filter,
                    budget: budget, maxOps: maxOps)
                if piece != nil { break }
            }
            if index > 0, bytes + partBytes > budget || ops + part.ops.count > maxOps { break }
            bytes += partBytes
            ops += part.ops.count
            taken.append(part)
            start = group.end
        }
        // The batch of the first `count` entries, with the later changes of markings its ops
        // need (`laterChanges`); cut shorter while those do not fit.
        var batch: OutboxBatch
        var count = taken.count
        var looked = [OpID: StoredOp?]()
        func storedOp(_ id: OpID) throws(LiaisonError) -> StoredOp? {
            if let known = looked[id] { return known }
            let found = try store.op(id)
            looked[id] = found
            return found
        }
        while true {
            if let piece {
                batch = piece
            } else {
                batch = OutboxBatch(
                    throughSeq: count == groups.count ? read.coveredThrough : groups[max(count, 1) - 1].sequence)
                for part in taken.prefix(count) {
                    batch.ops += part.ops
                    batch.sent += part.sent
                    batch.redacted += part.redacted
                    batch.withheld += part.withheld
                    batch.echoes += part.echoes
                }
            }
            let later = try laterChanges(
                for: batch, entries: piece == nil ? count : 1, groups: groups, candidates: candidates, items: items,
                history: history, storedOp: storedOp, peer: peer, recipient: neighbour.partner, filter: filter,
                maxOps: maxOps)
            if let short = later.cutBefore, short > 0, piece == nil {
                count = short
                continue
            }
            batch.ops += later.pulled.ops
            batch.sent += later.pulled.sent
            batch.redacted += later.pulled.redacted
            break
        }
        let now = Int64(nowMillis)
        let covered = batch.cut.map { $0.entry - 1 } ?? batch.throughSeq
        let cutOff = quarantined.filter { $0.sequence <= covered }.map(\.id)
        if !cutOff.isEmpty {
            _ = try store.appendCustody(
                CustodyEvent(
                    kind: .filterWithheld, peer: peer, detail: "\(cutOff.count)× author quarantined",
                    opIDs: cutOff),
                timeMillis: now
            )
        }
        if !batch.sent.isEmpty {
            _ = try store.appendCustody(
                CustodyEvent(
                    kind: .opsSent,
                    peer: peer,
                    detail: relay.map { "sealed via \($0) through \(batch.throughSeq)" }
                        ?? batch.cut.map { "history ahead of \($0.entry), through \($0.historyThrough)" }
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

    /// Ops are judged on their item as it is now, so an op may go before the later log entry
    /// that released the item to the peer (the change of markings that set its markings
    /// now). The receiver judges a batch on each item as the batch leaves it (tags aside):
    /// without that change it would refuse the op as not releasable to it and strike us.
    /// Such changes go along, after the batch's ops (and again in their turn: duplicates are
    /// harmless). They count in the batch's bounds (`maxOps`, and `pulledBytes` of them):
    /// `cutBefore` names the first of the batch's `entries` whose change does not fit, before
    /// which the batch must end (the first entry's always fits).
    private func laterChanges(
        for batch: OutboxBatch, entries: Int, groups: [(end: Int, sequence: UInt64)], candidates: [OutboxCandidate],
        items: [ItemID: ItemSummary], history: (ItemID) throws(LiaisonError) -> [StoredOp],
        storedOp: (OpID) throws(LiaisonError) -> StoredOp?, peer: String, recipient: Recipient, filter: LinkFilter,
        maxOps: Int
    ) throws(LiaisonError) -> (pulled: OutboxBatch, cutBefore: Int?) {
        var pulled = OutboxBatch(throughSeq: batch.throughSeq)
        guard !batch.sent.isEmpty else { return (pulled, nil) }
        let sent = Set(batch.sent)
        // What the receiver holds, or takes with this batch: our log through the batch, or,
        // for a part, the history through its cut (a change of markings in the history still
        // to come goes along too: the entry's own op need not be what released the item).
        let through = batch.cut?.historyThrough ?? batch.throughSeq
        var seen = Set<ItemID>()
        var bytes = 0
        var start = 0
        for (index, group) in groups.prefix(entries).enumerated() {
            defer { start = group.end }
            for candidate in candidates[start..<group.end] where sent.contains(candidate.op.id) {
                let id = candidate.op.body.itemID
                guard seen.insert(id).inserted, let item = items[id] else { continue }
                let setter = item.markingsStamp.opID
                // Markings from the create (the receiver holds it, or holds the op waiting
                // for it), or set by an op of this batch: nothing to bring.
                guard setter != item.created, !sent.contains(setter),
                    let later = try storedOp(setter), later.sequence > through, !isExcluded(later.op),
                    !isRevokedKey(later.op.body.author, of: peer)
                else { continue }
                let change = try LinkOutbox.prepare(
                    [
                        OutboxCandidate(
                            sequence: later.sequence, op: later.op, item: item, receivedFrom: later.receivedFrom,
                            earlierMarkings: try history(id).compactMap(\.op.body.change.markings))
                    ],
                    throughSeq: batch.throughSeq, sender: me.nodeID, recipient: recipient, filter: filter,
                    ladder: ladder)
                let changeBytes = change.ops.reduce(0) { $0 + $1.count }
                if index > 0,
                    batch.ops.count + pulled.ops.count + change.ops.count > maxOps
                        || bytes + changeBytes > Self.pulledBytes
                {
                    return (pulled, index)
                }
                // What it withholds is recorded in its turn.
                pulled.ops += change.ops
                pulled.sent += change.sent
                pulled.redacted += change.redacted
                bytes += changeBytes
            }
        }
        return (pulled, nil)
    }

    /// The first part of `candidates` (one log entry's: its item's history in log order, then
    /// the entry) when they pass the batch's bounds: as many history ops as fit with the
    /// entry's own op after them, and where they stop. Nil when they fit whole.
    private func historyPart(
        _ candidates: ArraySlice<OutboxCandidate>, entry: UInt64, peer: Recipient, filter: LinkFilter, budget: Int,
        maxOps: Int
    ) throws(LiaisonError) -> OutboxBatch? {
        func prepare(_ candidate: OutboxCandidate) throws(LiaisonError) -> OutboxBatch {
            try LinkOutbox.prepare(
                [candidate], throughSeq: entry, sender: me.nodeID, recipient: peer, filter: filter, ladder: ladder)
        }
        guard let last = candidates.last, last.sequence == entry else { return nil }
        let own = try prepare(last)
        let ownBytes = own.ops.reduce(0) { $0 + $1.count }
        var piece = OutboxBatch(throughSeq: entry)
        var bytes = ownBytes
        for candidate in candidates.dropLast() {
            let next = try prepare(candidate)
            let nextBytes = next.ops.reduce(0) { $0 + $1.count }
            if piece.cut != nil, bytes + nextBytes > budget || piece.ops.count + next.ops.count + own.ops.count > maxOps
            {
                piece.ops += own.ops
                piece.sent += own.sent
                piece.redacted += own.redacted
                return piece
            }
            bytes += nextBytes
            piece.ops += next.ops
            piece.sent += next.sent
            piece.redacted += next.redacted
            piece.withheld += next.withheld
            piece.echoes += next.echoes
            piece.cut = HistoryCut(entry: entry, historyThrough: candidate.sequence)
        }
        // The whole history fits with the entry: no part.
        return nil
    }

    /// Verifies, admits and commits ops from `peer` covering its log up to `through`; then
    /// records the checkpoint. Refused ops are audited and counted against their culprit (the
    /// peer, or the op's author: `ReceiveOutcome.strikes`); the rest still commit (the peer's
    /// other traffic keeps flowing). Ops that came sealed (`through` nil) are admitted the
    /// same way but move no checkpoint: they are not a contiguous stretch of the peer's log.
    ///
    /// With `mayWait`, a batch holding an op stamped further ahead than the skew allows, but
    /// by at most twice the skew, is not committed at all: the outcome says when to offer it
    /// again (`waitUntilMillis`), and custody records the early ops against their authors
    /// (`ops.deferred`). Nothing of the batch is acknowledged meanwhile, so a crash loses
    /// nothing: the sender sends it again. Without `mayWait` (sealed ops, or a sender that
    /// overruns its window), such ops are refused like those stamped further ahead still,
    /// against their authors; sealed ops come again on the link, whose checkpoint they did
    /// not move.
    public mutating func receive(
        ops encoded: [Data], through: UInt64?, from peer: String, nowMillis: UInt64, mayWait: Bool = false
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
        if mayWait {
            var early = [VerifiedOp]()
            var readyAt: UInt64 = 0
            for op in verified {
                if case .early(let at) = clock.timing(of: op.body.hlc, physicalMillis: now) {
                    early.append(op)
                    readyAt = max(readyAt, at)
                }
            }
            if !early.isEmpty {
                for (author, ops) in Dictionary(grouping: early, by: \.body.author).sorted(by: { $0.key < $1.key }) {
                    let ahead = ops.map { $0.body.hlc.physicalMillis - now }.max() ?? 0
                    _ = try store.appendCustody(
                        CustodyEvent(
                            kind: .opsDeferred,
                            peer: author.text,
                            detail: "stamped up to \(ahead) ms ahead of local time (at most \(clock.maxSkewMillis) ms "
                                + "allowed); the batch from \(partner.name) through \(through.map(String.init) ?? "-") "
                                + "waits \(readyAt - now) ms",
                            opIDs: ops.map(\.id)
                        ),
                        timeMillis: Int64(now)
                    )
                }
                var outcome = ReceiveOutcome()
                outcome.highest = try store.highestSequence()
                outcome.waitUntilMillis = readyAt
                outcome.early = early.count
                return outcome
            }
        }
        // Each item as this batch leaves it: our state plus the batch's ops (a create in the
        // batch brings the item). Entitlement is judged on it, as the sender judged it.
        var states = try store.items(Set(verified.map(\.body.itemID)))
        for op in verified {
            let id = op.body.itemID
            if var state = states[id] {
                _ = try? state.apply(op)
                states[id] = state
            } else if case .create = op.body.change, let state = try? ItemState(create: op) {
                states[id] = state
            }
        }
        // Every markings the item has had, as far as we and the batch know: read only when an
        // annotation's author or a narrowing needs them (`Admission.check`).
        var earlierMarkings = [ItemID: [Markings]]()
        func earlier(_ id: ItemID) throws(LiaisonError) -> [Markings] {
            if let known = earlierMarkings[id] { return known }
            let found =
                try store.ops(ofItem: id).compactMap(\.op.body.change.markings)
                + verified.filter { $0.body.itemID == id }.compactMap(\.body.change.markings)
            earlierMarkings[id] = found
            return found
        }
        // Ops kept waiting (for their item's create, or held for its markings) are bounded per
        // partner.
        var pendingRoom: Int?
        func takePendingRoom() throws(LiaisonError) -> Bool {
            var room = pendingRoom ?? 0
            if pendingRoom == nil { room = maxPendingPerPartner - (try store.pendingCount(from: partner.nodeID)) }
            guard room > 0 else {
                pendingRoom = 0
                return false
            }
            pendingRoom = room - 1
            return true
        }
        var raced = [(id: OpID, reason: StrikeReason)]()
        var contained = [(id: OpID, reason: StrikeReason)]()
        var held = Set<OpID>()
        for op in verified {
            guard let inbound = neighbour.inbound else {
                refused.append((op.id, .notEntitled(.notReleasable), partner.nodeID))
                continue
            }
            func check(_ earlierMarkings: [Markings], judgingAnnotator: Bool = true) -> StrikeReason? {
                Admission.check(
                    op,
                    item: states[op.body.itemID],
                    earlierMarkings: earlierMarkings,
                    judgingAnnotator: judgingAnnotator,
                    from: partner.nodeID,
                    senderFilter: inbound,
                    me: me,
                    authors: authors,
                    ladder: ladder,
                    clock: clock,
                    nowMillis: now
                )
            }
            var strike = check([])
            if let first = strike, Admission.needsEarlierMarkings(first) {
                let history = try earlier(op.body.itemID)
                strike = check(history)
                if let found = strike,
                    Self.awaitsMarkings(found, op: op, from: partner.nodeID, state: states[op.body.itemID]),
                    check(history, judgingAnnotator: false) == nil
                {
                    // Held until the change of markings its author saw arrives here.
                    guard try takePendingRoom() else {
                        refused.append((op.id, .tooManyPending(limit: maxPendingPerPartner), partner.nodeID))
                        continue
                    }
                    held.insert(op.id)
                    accepted.append(op)
                    continue
                }
                if let found = strike,
                    Self.isRace(
                        found, op: op, from: partner.nodeID, state: states[op.body.itemID], earlierMarkings: history,
                        me: me)
                {
                    raced.append((op.id, found))
                    continue
                }
            }
            if let strike, Self.mayDifferByQuarantine(strike, op: op, quarantines: quarantines) {
                contained.append((op.id, strike))
                continue
            }
            if let strike {
                refused.append((op.id, strike, strike.chargedToAuthor ? op.body.author : partner.nodeID))
                continue
            }
            // It will wait for its create: bounded per partner. (`states` holds the items this
            // batch creates, so a create, and an op after its item's create, never count.)
            if states[op.body.itemID] == nil, try store.op(op.id) == nil, try !takePendingRoom() {
                refused.append((op.id, .tooManyPending(limit: maxPendingPerPartner), partner.nodeID))
                continue
            }
            accepted.append(op)
        }
        var outcome = ReceiveOutcome()
        if !accepted.isEmpty {
            let before = try store.highestSequence()
            let result = try store.commit(
                CommitBatch(
                    ops: accepted, source: .peer(partner.nodeID), timeMillis: Int64(now), holder: me, held: held,
                    partners: authors))
            outcome.refused += result.rejected.count
            for rejected in result.rejected {
                let author = result.rejectedAuthors[rejected.id] ?? partner.nodeID
                outcome.strikes[author, default: [:]][.nonWriter, default: 0] += 1
            }
            // A forked create is the originator's equivocation, whoever carried it.
            let forked = Set(result.forkedCreates)
            for op in accepted where forked.contains(op.id) {
                outcome.strikes[op.body.author, default: [:]][.equivocation, default: 0] += 1
            }
            outcome.logGrew = try store.highestSequence() > before
            // The clock takes in the stamps of ops new here: a copy of an op we hold already
            // (a replay, a second path) tells nothing new, and an op waiting for its create
            // may yet be refused.
            let applied = Set(result.applied.map(\.id))
            for op in accepted where applied.contains(op.id) { try? clock.observe(op.body.hlc, physicalMillis: now) }
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
        for (excused, why) in [
            (raced, "a race with a change of markings"),
            (contained, "the item's originator is quarantined here, so its markings here may differ from the sender's"),
        ] where !excused.isEmpty {
            let reasons = Dictionary(grouping: excused, by: { $0.reason.description }).map {
                "\($0.value.count)× \($0.key)"
            }
            _ = try store.appendCustody(
                CustodyEvent(
                    kind: .opsRejected, peer: partner.nodeID.text,
                    detail: reasons.sorted().joined(separator: "; ") + " (\(why): no strike)",
                    opIDs: excused.map(\.id)),
                timeMillis: Int64(now)
            )
            outcome.refused += excused.count
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
        if let through { try store.advanceCheckpoint(link: receivedLinkName(peer), to: through) }
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
