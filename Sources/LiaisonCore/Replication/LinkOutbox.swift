public import Foundation

/// One op of our log that might go to a peer.
public struct OutboxCandidate: Sendable {
    /// Its local sequence.
    public var sequence: UInt64
    /// The op.
    public var op: VerifiedOp
    /// Its item as it is here now, as far as eligibility needs to know it.
    public var item: ItemSummary
    /// The peer we got it from (nil: authored here).
    public var receivedFrom: NodeID?
    /// For a change of markings or a recall: every markings the item has had here (its
    /// create's and each change's), so that partners it was released to before get the
    /// notice that narrows it away from them (`Eligibility.decide`). Empty for other ops.
    public var earlierMarkings: [Markings]

    /// Creates a candidate.
    public init(
        sequence: UInt64, op: VerifiedOp, item: ItemSummary, receivedFrom: NodeID?, earlierMarkings: [Markings] = []
    ) {
        self.sequence = sequence
        self.op = op
        self.item = item
        self.receivedFrom = receivedFrom
        self.earlierMarkings = earlierMarkings
    }
}

/// What goes to a peer from a stretch of our log, and what does not and why.
public struct OutboxBatch: Sendable {
    /// Encoded ops to send, in log order (redacted where the filter says).
    public var ops: [Data] = []
    /// Ids of the ops sent.
    public var sent: [OpID] = []
    /// Ops sent with some values withheld, and which fields.
    public var redacted: [(id: OpID, fields: [String])] = []
    /// Ops withheld, and why.
    public var withheld: [(id: OpID, reason: WithholdReason)] = []
    /// Ops not sent because the peer wrote them or sent them to us.
    public var echoes: Int = 0
    /// The highest sequence the batch covers.
    public var throughSeq: UInt64 = 0
    /// Set when the batch is a part of the item history sent ahead of one log entry (that
    /// entry's history passed one batch): it covers nothing, and the next read resumes from
    /// the cut (`SyncMessage.batchPart`).
    public var cut: HistoryCut?

    /// An empty batch.
    public init(throughSeq: UInt64 = 0) { self.throughSeq = throughSeq }
}

/// Where a read of our log stopped inside one log entry whose item history goes in parts: the
/// entry, and the sequence of the last history op read for it (docs/protocol.md, "Parts").
public struct HistoryCut: Hashable, Sendable {
    /// The log entry (a change of tags or markings) whose history is being sent.
    public var entry: UInt64
    /// History ops of the entry's item up to this sequence have been read.
    public var historyThrough: UInt64

    /// Creates a cut.
    public init(entry: UInt64, historyThrough: UInt64) {
        self.entry = entry
        self.historyThrough = historyThrough
    }
}

/// Prepares batches of our log for one link (DESIGN §5.2, §5.8): every op passes the link's
/// eligibility (releasable, filter, not ORCON unless we may pass it on), is redacted where
/// the filter says, and is not echoed back to the peer it came from.
public enum LinkOutbox {
    /// Filters `candidates` (in log order) for `recipient`.
    public static func prepare(
        _ candidates: [OutboxCandidate],
        throughSeq: UInt64,
        sender: NodeID,
        recipient: Recipient,
        filter: LinkFilter,
        ladder: ClassificationLadder
    ) throws(LiaisonError) -> OutboxBatch {
        var batch = OutboxBatch()
        batch.throughSeq = throughSeq
        for candidate in candidates {
            if candidate.receivedFrom == recipient.nodeID || candidate.op.body.author == recipient.nodeID {
                batch.echoes += 1
                continue
            }
            switch Eligibility.decide(
                op: candidate.op,
                item: candidate.item,
                earlierMarkings: candidate.earlierMarkings,
                sender: sender,
                recipient: recipient,
                filter: filter,
                ladder: ladder
            ) {
            case .send:
                batch.ops.append(candidate.op.encoded)
                batch.sent.append(candidate.op.id)
            case .sendRedacted(let fields):
                batch.ops.append(try candidate.op.redacting(fields).encoded)
                batch.sent.append(candidate.op.id)
                batch.redacted.append((candidate.op.id, fields))
            case .withhold(let reason):
                batch.withheld.append((candidate.op.id, reason))
            }
        }
        return batch
    }
}

/// Why a received op was refused, and whom it is counted against: the peer that sent it,
/// or, for a stamp too far ahead, the op's author (`chargedToAuthor`).
public enum StrikeReason: Hashable, Sendable, CustomStringConvertible {
    /// Malformed or badly signed.
    case invalid(OpRejection)
    /// Its author is no partner of the federation.
    case unknownAuthor(NodeID)
    /// Stamped further ahead than the allowed skew (charged to the author).
    case futureHLC(HLCSkewError)
    /// Not releasable to us, or the sender's link filter excludes it (I2).
    case notEntitled(WithholdReason)
    /// The item refused it (e.g. a non-originator changing markings).
    case refusedByItem(ItemRejection)
    /// It carried values of fields the sender's link filter redacts.
    case unredacted([String])
    /// An op for an item we do not hold, past the bound of such ops kept for one partner.
    case tooManyPending(limit: Int)

    /// Whether the op's author is at fault rather than the peer that sent it. Only the author
    /// chose a stamp too far ahead: an honest forwarder admitted it within the skew of its own
    /// clock, and the receiver's clock may be behind the forwarder's. An op its item refuses
    /// breaks rules that depend on no concurrent state (originator-only changes, the write
    /// policy, one create), so it proves its author's misconduct. An annotation by a partner
    /// no markings of the item released it to, as far as the receiver knows, proves nothing
    /// against its author (the receiver may hold only part of the markings history): the
    /// sender answers for it, as for everything else it had to check before sending.
    public var chargedToAuthor: Bool {
        switch self {
        case .futureHLC: true
        case .refusedByItem(.notEntitled): false
        case .refusedByItem: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .invalid(let rejection): "invalid op: \(rejection)"
        case .unknownAuthor(let author): "author \(author.short) is not a partner"
        case .futureHLC(let error): "future stamp: \(error)"
        case .notEntitled(let reason): "sent though not entitled here (\(reason.rawValue))"
        case .refusedByItem(let rejection): "refused by the item: \(rejection)"
        case .unredacted(let fields): "values of redacted fields sent: \(fields.joined(separator: ", "))"
        case .tooManyPending(let limit): "more than \(limit) ops waiting for items this node does not hold"
        }
    }
}

/// The receiver's checks of an op from a peer, before it is committed (DESIGN §5.3, I2, I4,
/// I6): known author, clock within skew, that the author may write it (an annotating
/// partner must be entitled to the item), and that the sender was allowed to send it to us.
public enum Admission {
    /// Checks one verified op. `item` is the state of its item as the batch the op came in
    /// leaves it (our state with the batch's ops applied; nil if neither we nor the batch
    /// hold its create op: the op then waits for it). Entitlement is judged on that
    /// state, as the sender judged it: a markings change later in the batch that releases
    /// the item to us admits the item's earlier ops with it (DESIGN §5.7).
    ///
    /// `earlierMarkings` are the markings the item had before, as far as we and the batch
    /// know (its create's and every change of markings), or empty when the caller did not
    /// look them up. With them:
    /// - an annotation (an op by anyone but the originator) is admitted when its author is
    ///   entitled under the item's markings or under any earlier markings: it wrote the
    ///   annotation while entitled, and a narrowing it had not seen yet does not void it;
    /// - a change of markings that no longer releases the item to us, or a recall naming us,
    ///   is admitted when an earlier markings did: it is the notice of narrowing that a
    ///   sender owes us.
    /// Without them, both are refused; the caller looks them up and checks again
    /// (`needsEarlierMarkings`), so that the common case reads no history.
    ///
    /// With `judgingAnnotator` false, whether an annotating author is entitled is not judged,
    /// everything else is: for an op the receiver holds until the item's markings here catch
    /// up with its author's (`CommitBatch.held`).
    public static func check(
        _ op: VerifiedOp,
        item: ItemState?,
        earlierMarkings: [Markings] = [],
        judgingAnnotator: Bool = true,
        from sender: NodeID,
        senderFilter: LinkFilter,
        me: Recipient,
        authors: [NodeID: Recipient],
        ladder: ClassificationLadder,
        clock: HybridLogicalClock,
        nowMillis: UInt64
    ) -> StrikeReason? {
        guard let author = authors[op.body.author] else { return .unknownAuthor(op.body.author) }
        guard clock.isWithinSkew(op.body.hlc, physicalMillis: nowMillis) else {
            return .futureHLC(
                HLCSkewError(stamp: op.body.hlc, physicalMillis: nowMillis, maxSkewMillis: clock.maxSkewMillis)
            )
        }
        var state = item
        if state == nil, case .create = op.body.change {
            do {
                state = try ItemState(create: op)
            } catch {
                return .refusedByItem(error)
            }
        }
        // An op for an item we do not hold yet (an annotation of an ORCON item can come from
        // its author before the originator's create arrives): it waits, durable but
        // invisible and not passed on, until the create arrives and is admitted. What needs no
        // item is judged now: values its author withheld from us, or that the sender's link
        // redacts, must not arrive in clear on any path.
        guard let state else {
            let unredacted = Eligibility.redactedFields(of: op, for: me, filter: senderFilter)
            return unredacted.isEmpty ? nil : .unredacted(unredacted)
        }
        if case .failure(let rejection) = state.permits(author: op.body.author, change: op.body.change) {
            return .refusedByItem(rejection)
        }
        // Judge entitlement by the markings the op leaves the item with, so that a change
        // of markings that releases the item to us is accepted with the op that makes it.
        // Tag conditions of the filter are the sender's alone to enforce: tags are concurrent
        // state that legitimately differs between sender and receiver at send time.
        var after = state
        _ = try? after.apply(op)
        // Only partners entitled to the item annotate it.
        if judgingAnnotator, op.body.author != after.originator,
            !([after.markings] + earlierMarkings).contains(where: {
                $0.isReleasable(toPartner: author.name, groups: author.groups)
            })
        {
            return .refusedByItem(.notEntitled)
        }
        func withheld(wasReleased: Bool) -> WithholdReason? {
            Eligibility.withholdReason(
                markings: after.markings,
                collection: after.collection,
                tags: nil,
                originator: after.originator,
                opAuthor: op.body.author,
                sender: sender,
                recipient: me,
                filter: senderFilter,
                ladder: ladder,
                wasReleased: wasReleased
            )
        }
        if var reason = withheld(wasReleased: false) {
            // A change of markings that narrows the item away from us: the notice (§5.7).
            if reason == .notReleasable, isNotice(op.body.change, to: me),
                earlierMarkings.contains(where: { $0.isReleasable(toPartner: me.name, groups: me.groups) })
            {
                guard let other = withheld(wasReleased: true) else { return nil }
                reason = other
            }
            return .notEntitled(reason)
        }
        let unredacted = Eligibility.redactedFields(of: op, for: me, filter: senderFilter)
        return unredacted.isEmpty ? nil : .unredacted(unredacted)
    }

    /// Whether `change` is a notice a partner the item was narrowed away from is owed: a change
    /// of markings, or a recall whose audience names it (DESIGN §5.7).
    static func isNotice(_ change: OpChange, to me: Recipient) -> Bool {
        switch change {
        case .changeMarkings: true
        case .recall(let audience, _): me.isNamed(in: audience)
        default: false
        }
    }

    /// Whether `strike` may be lifted by the item's earlier markings (see `check`): the caller
    /// then looks them up and checks again.
    public static func needsEarlierMarkings(_ strike: StrikeReason) -> Bool {
        switch strike {
        case .refusedByItem(.notEntitled), .notEntitled(.notReleasable): true
        default: false
        }
    }
}
