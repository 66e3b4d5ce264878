/// Why a node may keep an item's content no more (DESIGN §5.7).
public struct PurgeCause: Hashable, Sendable, CustomStringConvertible {
    /// What withdrew the content.
    public enum Kind: String, Hashable, Sendable {
        /// A recall names the node, by name, by one of its groups, or `ALL`.
        case recalled
        /// The item was recalled from everyone.
        case recalledFromAll = "recalled-from-all"
        /// The item was deleted.
        case deleted
        /// The item's current markings no longer release it to the node.
        case narrowed
    }

    /// What withdrew the content.
    public var kind: Kind
    /// The op that did: the recall, the delete or the change of markings.
    public var op: OpID

    /// Creates a cause.
    public init(kind: Kind, op: OpID) {
        self.kind = kind
        self.op = op
    }

    public var description: String {
        switch kind {
        case .recalled: "recalled from this node"
        case .recalledFromAll: "recalled from everyone"
        case .deleted: "deleted"
        case .narrowed: "no longer released to this node"
        }
    }
}

extension ItemState {
    /// The recall in force for `recipient`, if any: the latest recall whose audience names it
    /// (by name, by one of its groups, or `ALL`), when it is later than the item's current
    /// markings. A change of markings states the item's audience afresh, so a recall made
    /// before it no longer counts (the originator's `LocalNode.changeMarkings` signs the
    /// recalls again unless the change names REL TO).
    public func recallInForce(for recipient: Recipient) -> OpStamp? {
        Self.recallInForce(for: recipient, recalledFrom: recalledFrom, markingsStamp: markingsStamp)
    }

    /// The rule of `recallInForce(for:)` on the parts of a state it reads (an
    /// `ItemSummary` holds them too).
    static func recallInForce(
        for recipient: Recipient, recalledFrom: [String: OpStamp], markingsStamp: OpStamp
    ) -> OpStamp? {
        guard !recalledFrom.isEmpty else { return nil }
        let names = [recipient.name, Markings.everyone] + recipient.groups.sorted()
        guard let latest = names.compactMap({ recalledFrom[$0] }).max(), latest > markingsStamp else { return nil }
        return latest
    }

    /// The audience names whose recall is in force (later than the current markings), sorted.
    public var recallsInForce: [String] {
        recalledFrom.filter { $0.value > markingsStamp }.keys.sorted()
    }

    /// Whether `holder`, a node holding this item, must purge its content, and why; nil when
    /// it may keep it. Pure: the store applies it after every batch it commits, in the same
    /// transaction (`CommitBatch.holder`).
    ///
    /// The originator keeps its items. Anyone else purges an item that was deleted or
    /// recalled from everyone, recalled from it (by name, group or `ALL`; see
    /// `recallInForce(for:)`), or whose current markings no longer release it to it.
    public func purgeCause(at holder: Recipient) -> PurgeCause? {
        guard holder.nodeID != originator else { return nil }
        if let stamp = recalledFromAll, stamp >= (tombstone ?? stamp) {
            return PurgeCause(kind: .recalledFromAll, op: stamp.opID)
        }
        if let tombstone { return PurgeCause(kind: .deleted, op: tombstone.opID) }
        if let stamp = recallInForce(for: holder) { return PurgeCause(kind: .recalled, op: stamp.opID) }
        if !markings.isReleasable(toPartner: holder.name, groups: holder.groups) {
            return PurgeCause(kind: .narrowed, op: markingsStamp.opID)
        }
        return nil
    }

    /// This state without the values of fields that anyone but `author` wrote. Commitments
    /// and stamps stay, so the digest does not change (I1); the fields read as redacted.
    /// `author`'s own values stay: they are its content, and it still owes its annotations
    /// to the partners the item is released to.
    public func purgingValues(keepingThoseOf author: NodeID) -> ItemState {
        var kept = fields
        for (name, register) in fields where register.value != nil && register.stamp.author != author {
            kept[name]?.value = nil
        }
        guard kept != fields else { return self }
        return ItemState(
            id: id, originator: originator, collection: collection, writePolicy: writePolicy, created: created,
            markings: markings, markingsStamp: markingsStamp, fields: kept, tagsAdded: tagsAdded,
            tagsRemoved: tagsRemoved, tombstone: tombstone, recalledFromAll: recalledFromAll,
            recalledFrom: recalledFrom, lastChange: lastChange)
    }
}

extension VerifiedOp {
    /// Whether the op carries anything of an item's content beyond what a notice needs: field
    /// values, tags. A change of markings, a recall and a delete are content-free notices.
    public var carriesContent: Bool {
        switch body.change {
        case .changeMarkings, .recall, .delete: false
        case .create, .setFields, .addTags, .removeTags: true
        }
    }
}

/// The ops an originator signs to change an item's markings, and what they do.
public struct MarkingsChangePlan: Hashable, Sendable {
    /// The changes to sign in this order, stamped one after the other: the change of
    /// markings, then any recalls.
    public var changes: [OpChange]
    /// The partners the change narrows the item away from (recalled with reason `narrowed`).
    public var recalledFrom: [String]
    /// Names whose recall in force the change lifts: it releases them again.
    public var recallsLifted: [String]
}

extension ItemState {
    /// What changing this item's markings to `next` takes (DESIGN §5.7), for the originator
    /// (`LocalNode.changeMarkings`) and the simulator's workload alike:
    /// - the change of markings;
    /// - when `next` no longer releases the item to some of `partners` (the federation's
    ///   partners but the originator) that the current markings release it to, a recall of
    ///   those partners, reason `narrowed`: the content-free notice on which they purge;
    /// - when `restatesAudience` is false (the change leaves REL TO alone), a recall of the
    ///   names whose recall is in force, so that the change does not lift them. When it is
    ///   true, those recalls lapse: the change states the audience afresh.
    public func planMarkingsChange(
        to next: Markings, among partners: [Recipient], restatesAudience: Bool
    ) -> MarkingsChangePlan {
        func released(_ markings: Markings) -> Set<String> {
            Set(
                partners.filter {
                    $0.nodeID != originator && markings.isReleasable(toPartner: $0.name, groups: $0.groups)
                }
                .map(\.name))
        }
        let removed = released(markings).subtracting(released(next)).sorted()
        let inForce = recallsInForce.filter { !removed.contains($0) }
        var changes: [OpChange] = [.changeMarkings(next)]
        if !removed.isEmpty { changes.append(.recall(audience: removed, reason: "narrowed")) }
        if !restatesAudience && !inForce.isEmpty {
            changes.append(.recall(audience: inForce, reason: "kept in force over a change of markings"))
        }
        return MarkingsChangePlan(
            changes: changes, recalledFrom: removed, recallsLifted: restatesAudience ? inForce : [])
    }
}
