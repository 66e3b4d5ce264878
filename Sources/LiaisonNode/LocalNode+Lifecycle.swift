public import Foundation
public import LiaisonCore
import LiaisonStore

/// What `liaison mark` asks for: the parts of an item's markings to change. A part left nil
/// keeps its current value.
public struct MarkingsChangeRequest: Sendable, Equatable {
    /// Classification level name (any case).
    public var classification: String?
    /// REL TO partner or group names, replacing the current list. Giving it states the item's
    /// audience afresh: a partner it releases gets the item again even if recalled before.
    public var releasableTo: [String]?
    /// Originator controls dissemination.
    public var orcon: Bool?
    /// Handling caveats, replacing the current ones.
    public var caveats: [String]?
    /// Expiry (must lie in the future).
    public var expiresAt: Date?

    /// Creates a request.
    public init(
        classification: String? = nil,
        releasableTo: [String]? = nil,
        orcon: Bool? = nil,
        caveats: [String]? = nil,
        expiresAt: Date? = nil
    ) {
        self.classification = classification
        self.releasableTo = releasableTo
        self.orcon = orcon
        self.caveats = caveats
        self.expiresAt = expiresAt
    }

    /// Whether it asks for no change at all.
    public var isEmpty: Bool {
        classification == nil && releasableTo == nil && orcon == nil && caveats == nil && expiresAt == nil
    }
}

/// What a delete, a change of markings or a recall did at the originator.
public struct LifecycleResult: Sendable {
    /// The item after the change.
    public var item: ItemState
    /// The ops signed and committed, in order.
    public var ops: [VerifiedOp]
    /// Who the change recalled the item from: the partners a narrowing removed, or the
    /// recall's audience (empty for a delete, or a recall from everyone).
    public var recalledFrom: [String]
    /// Names whose earlier recall the change of markings lifted (it releases them again).
    public var recallsLifted: [String]

    /// Creates a result.
    public init(item: ItemState, ops: [VerifiedOp], recalledFrom: [String] = [], recallsLifted: [String] = []) {
        self.item = item
        self.ops = ops
        self.recalledFrom = recalledFrom
        self.recallsLifted = recallsLifted
    }
}

/// Deleting, re-marking and recalling items (DESIGN §4, §5.7): the originator's changes
/// besides fields and tags. `liaison delete|mark|recall` on a stopped node, and the running
/// engine (`ReplicationEngine`) for the API, call these.
///
/// Each is refused, with nothing written, when the item is not held here (`notFound`), was
/// not originated here (`forbidden`: only the originator deletes, re-marks or recalls), is
/// already deleted or recalled from everyone (`conflict`), or the request is invalid
/// (`invalidArgument`).
extension LocalNode {
    /// Deletes an item: everyone holding it keeps only its tombstone.
    public func delete(_ id: ItemID, now: Date) throws(LiaisonError) -> LifecycleResult {
        let item = try originatedItem(id, toDo: "delete")
        return try commit(item, [.delete], now: now, note: "delete")
    }

    /// Changes an item's markings; parts the request leaves nil keep their value. The given
    /// parts are validated as a put's are (the ladder, REL TO names the node knows, an expiry
    /// in the future).
    ///
    /// When the change narrows releasability (a partner released before is no longer), a
    /// recall from the partners it removes (reason `narrowed`) is signed in the same batch,
    /// after the change: the content-free notice on which they purge (§5.7). Recalls in
    /// force are signed again after the change unless the request gives REL TO, so a change
    /// of classification does not give a recalled partner the item back.
    public func changeMarkings(
        _ id: ItemID, _ request: MarkingsChangeRequest, now: Date
    ) throws(LiaisonError) -> LifecycleResult {
        guard !request.isEmpty else {
            throw LiaisonError(
                .invalidArgument,
                "nothing to change: give a classification, REL TO, ORCON, caveats or an expiry")
        }
        let given = try validatedMarkings(request, now: now)
        let item = try originatedItem(id, toDo: "change the markings of")
        let next = Markings(
            classification: request.classification == nil ? item.markings.classification : given.classification,
            releasableTo: request.releasableTo == nil ? item.markings.releasableTo : given.releasableTo,
            orcon: request.orcon ?? item.markings.orcon,
            caveats: request.caveats == nil ? item.markings.caveats : given.caveats,
            expiresAtMillis: request.expiresAt == nil ? item.markings.expiresAtMillis : given.expiresAtMillis
        )
        let partners = (federation?.partners ?? []).map(\.recipient)
        let plan = item.planMarkingsChange(
            to: next, among: partners, restatesAudience: request.releasableTo != nil)
        guard next != item.markings || !plan.recallsLifted.isEmpty else {
            throw LiaisonError(.invalidArgument, "item \(id.text) already has these markings; nothing to change")
        }
        var note = "change of markings"
        if !plan.recalledFrom.isEmpty {
            note += "; recall from \(plan.recalledFrom.joined(separator: ", ")) (narrowed)"
        }
        if !plan.recallsLifted.isEmpty { note += "; recall lifted for \(plan.recallsLifted.joined(separator: ", "))" }
        var result = try commit(item, plan.changes, now: now, note: note)
        result.recalledFrom = plan.recalledFrom
        result.recallsLifted = plan.recallsLifted
        return result
    }

    /// Recalls an item from `audience` (partner or group names of the federation), or from
    /// everyone when it is empty, with a reason for the custody log. The partners named
    /// receive the signed, content-free recall and purge the item's content; nothing of its
    /// content goes to them any more. A recall from everyone withdraws the item everywhere,
    /// here too: only its tombstone remains.
    public func recall(
        _ id: ItemID, from audience: [String], reason: String, now: Date
    ) throws(LiaisonError) -> LifecycleResult {
        let why = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !why.isEmpty, why.utf8.count <= 1024 else {
            throw LiaisonError(.invalidArgument, "give a reason for the recall (at most 1024 bytes)")
        }
        for name in audience {
            if name == Markings.everyone {
                throw LiaisonError(.invalidArgument, "to recall from everyone, name no partner (leave out --from)")
            }
            if name == config.name {
                throw LiaisonError(.invalidArgument, "a node does not recall an item from itself")
            }
            guard Names.isValidLabel(name) else {
                throw LiaisonError(.invalidArgument, "invalid recall audience '\(name)': use a partner or group name")
            }
        }
        try PutRequest.checkKnown(audience, config: config, federation: federation)
        let names = Array(Set(audience)).sorted()
        guard names.count <= OpLimits.maxMarkingsEntries else {
            throw LiaisonError(.invalidArgument, "a recall names at most \(OpLimits.maxMarkingsEntries) partners")
        }
        let item = try originatedItem(id, toDo: "recall")
        var result = try commit(
            item, [.recall(audience: names, reason: why)], now: now,
            note: names.isEmpty ? "recall from everyone" : "recall from \(names.joined(separator: ", "))")
        result.recalledFrom = names
        return result
    }

    /// The item, when it is held here, was originated here and is not withdrawn.
    private func originatedItem(_ id: ItemID, toDo action: String) throws(LiaisonError) -> ItemState {
        guard let item = try store.item(id) else { throw LiaisonError(.notFound, "no item \(id.text) at this node") }
        guard item.originator == identity.nodeID else {
            throw LiaisonError(
                .forbidden,
                "only the item's originator (\(item.originator.short)) may \(action) it; this node is \(config.name)")
        }
        guard !item.isWithdrawn else {
            throw LiaisonError(
                .conflict, "item \(id.text) was already deleted or recalled from everyone; it takes no more changes")
        }
        return item
    }

    /// The request's given parts validated as a put's are, before the store is read (parts
    /// not given come out at their put defaults).
    private func validatedMarkings(_ request: MarkingsChangeRequest, now: Date) throws(LiaisonError) -> Markings {
        let put = PutRequest(
            collection: "markings",
            classification: request.classification,
            releasableTo: request.releasableTo ?? [],
            orcon: request.orcon ?? false,
            caveats: request.caveats ?? [],
            expiresAt: request.expiresAt
        )
        return try put.validatedMarkings(config: config, federation: federation, now: now)
    }

    /// Signs `changes` of `item` as one batch, stamped in order, and commits them.
    private func commit(
        _ item: ItemState, _ changes: [OpChange], now: Date, note: String
    ) throws(LiaisonError) -> LifecycleResult {
        let nowMillis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var clock = try resumedClock(nowMillis: nowMillis)
        var unsigned = [UnsignedOp]()
        for change in changes {
            unsigned.append(try identity.author.change(item, change, hlc: clock.tick(physicalMillis: nowMillis)))
        }
        let signed = try identity.author.sign(unsigned)
        try Self.refuseOversized(signed)
        // With the federation's partners, a change of markings here judges the ops held for
        // the item's markings again, as a partner's change does (docs/merge-rules.md, "Held
        // annotations"): an annotation the originator holds applies when it entitles its author.
        var batch = CommitBatch(
            ops: signed, source: .local, timeMillis: Int64(nowMillis), holder: recipient, note: note)
        batch.partners = federation.map {
            Dictionary($0.partners.map { ($0.nodeID, $0.recipient) }, uniquingKeysWith: { first, _ in first })
        }
        let result = try store.commit(batch)
        guard result.rejected.isEmpty, let updated = try store.item(item.id) else {
            throw LiaisonError(.invalidOp, "the store refused the change: \(result.rejected.map(\.reason))")
        }
        return LifecycleResult(item: updated, ops: signed)
    }
}
