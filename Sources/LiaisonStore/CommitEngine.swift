import Foundation
import LiaisonCore

/// The primitive reads and writes one store transaction offers. The commit logic is
/// written once, over this, for every `Store` implementation.
protocol StoreTransaction {
    /// Reads ahead, in a few statements, what committing `ops` asks one op at a time (their
    /// items' states, whether each is stored or waiting); the per-op calls below are then
    /// answered from it, kept true by this transaction's own writes. Optional: a store may
    /// answer each call as it comes.
    mutating func prefetch(_ ops: [VerifiedOp]) throws
    /// Sequence and number of redacted fields of a stored op.
    mutating func storedOp(_ id: OpID) throws -> (sequence: UInt64, redactedCount: Int)?
    /// Replaces a stored op's bytes with another copy of the same op: one that carries more
    /// field values, or, when the item is purged, none.
    mutating func upgradeOp(_ op: VerifiedOp, sequence: UInt64) throws
    /// Stores an op under the next sequence and returns it.
    mutating func insertOp(_ op: VerifiedOp, from peer: NodeID?) throws -> UInt64
    /// Whether an op waits for its item's create op.
    mutating func isPending(_ id: OpID) throws -> Bool
    /// Keeps an op until its item's create op arrives.
    mutating func insertPending(_ op: VerifiedOp, from peer: NodeID?) throws
    /// Removes and returns the ops waiting for an item, oldest first.
    mutating func takePending(item: ItemID) throws -> [(op: VerifiedOp, peer: NodeID?)]
    /// Every stored op of an item, in log order.
    mutating func opsOfItem(_ id: ItemID) throws -> [StoredOp]
    /// Moves every stored op of an item to the end of the log, in their order, under
    /// sequences never used before; each keeps its bytes and who sent it.
    mutating func relogItem(_ id: ItemID) throws
    /// Removes an item's state.
    mutating func deleteItem(_ id: ItemID) throws
    /// Removes and returns the waiting ops `excluded` picks.
    mutating func dropPending(where excluded: (VerifiedOp) -> Bool) throws -> [VerifiedOp]
    /// Sets a metadata value.
    mutating func setMetadata(_ key: String, _ value: Data) throws
    /// An item's state.
    mutating func loadItem(_ id: ItemID) throws -> ItemState?
    /// Saves an item's state.
    mutating func saveItem(_ state: ItemState) throws
    /// The custody log's head.
    mutating func custodyHead() throws -> CustodyHead
    /// Appends a custody entry and moves the head to it.
    mutating func appendCustody(_ entry: CustodyEntry) throws
    /// Raises the recorded highest HLC.
    mutating func raiseHighestHLC(to stamp: HLCTimestamp) throws
}

extension StoreTransaction {
    mutating func prefetch(_ ops: [VerifiedOp]) throws {}
}

/// Commits batches through a `StoreTransaction`; shared by every store.
enum CommitEngine {
    static func commit<T: StoreTransaction>(
        _ batch: CommitBatch,
        in tx: inout T,
        fault: (CommitFaultPoint) throws -> Void
    ) throws -> CommitResult {
        var result = CommitResult()
        var items = [ItemID: ItemState]()
        var highest = HLCTimestamp.zero
        let peer = batch.source.peer
        // Items whose markings the batch changed: their held ops are judged again.
        var remarked = Set<ItemID>()

        // The log's greatest stamp (`Store.highestHLC`) counts only ops the log takes in: an op
        // refused, kept waiting or already held says nothing about time here (a refused op's
        // stamp would otherwise move the clock a restart or a local write resumes from).
        func insert(_ op: VerifiedOp, from source: NodeID?) throws -> UInt64 {
            highest = max(highest, op.body.hlc)
            return try tx.insertOp(op, from: source)
        }

        func state(_ id: ItemID) throws -> ItemState? {
            if let cached = items[id] { return cached }
            let loaded = try tx.loadItem(id)
            items[id] = loaded
            return loaded
        }

        try tx.prefetch(batch.ops)
        for (index, op) in batch.ops.enumerated() {
            if let stored = try tx.storedOp(op.id) {
                if op.redactedFields.count < stored.redactedCount, var item = try state(op.body.itemID) {
                    try tx.upgradeOp(op, sequence: stored.sequence)
                    if (try? item.apply(op)) == true {
                        items[item.id] = item
                        result.changedItems.insert(item.id)
                    }
                }
                result.duplicates.append(op.id)
                try fault(.afterOp(index))
                continue
            }
            if try tx.isPending(op.id) {
                result.duplicates.append(op.id)
                try fault(.afterOp(index))
                continue
            }
            if batch.held.contains(op.id) {
                try tx.insertPending(op, from: peer)
                result.held.append(op.id)
                try fault(.afterOp(index))
                continue
            }
            if var item = try state(op.body.itemID) {
                if case .create = op.body.change, op.id != item.created.opID, (try? ItemState(create: op)) != nil {
                    // A forked create: keep it (it is the proof, and it goes on so that every
                    // node folds the same set) and fold the item from all its ops.
                    result.applied.append((op.id, try insert(op, from: peer)))
                    result.forkedCreates.append(op.id)
                    // Its markings count among the item's: held ops are judged again.
                    remarked.insert(item.id)
                    if let folded = ItemState.fold(try tx.opsOfItem(item.id).map(\.op)), folded != item {
                        items[item.id] = folded
                        result.changedItems.insert(item.id)
                    }
                } else if let rejection = rejection(applying: op, to: &item) {
                    result.rejected.append((op.id, rejection))
                    result.rejectedAuthors[op.id] = op.body.author
                } else {
                    items[item.id] = item
                    result.changedItems.insert(item.id)
                    result.applied.append((op.id, try insert(op, from: peer)))
                    if case .changeMarkings = op.body.change { remarked.insert(item.id) }
                }
            } else if case .create = op.body.change {
                switch Result(catching: { () throws(ItemRejection) in try ItemState(create: op) }) {
                case .failure(let rejection):
                    result.rejected.append((op.id, rejection))
                    result.rejectedAuthors[op.id] = op.body.author
                case .success(var item):
                    result.applied.append((op.id, try insert(op, from: peer)))
                    // The ops that waited for this create: each applies once the item's
                    // markings entitle its author (`settle`); the others wait on, held.
                    var history = [Markings]()
                    let settled = settle(
                        try tx.takePending(item: item.id), item: &item, history: &history, partners: batch.partners)
                    for entry in settled.applied {
                        result.applied.append((entry.op.id, try insert(entry.op, from: entry.peer)))
                    }
                    for (entry, rejection) in settled.rejected {
                        result.rejected.append((entry.op.id, rejection))
                        result.rejectedAuthors[entry.op.id] = entry.op.body.author
                    }
                    for entry in settled.waiting { try tx.insertPending(entry.op, from: entry.peer) }
                    // A change of markings that waited applied with the create: ops of this
                    // batch held after it are judged again at the end.
                    if settled.applied.contains(where: { $0.op.body.change.markings != nil }) {
                        remarked.insert(item.id)
                    }
                    items[item.id] = item
                    result.changedItems.insert(item.id)
                }
            } else {
                try tx.insertPending(op, from: peer)
                result.pending.append(op.id)
            }
            try fault(.afterOp(index))
        }

        // Ops held until their item's markings release it to their author: judged again now.
        if let partners = batch.partners {
            for id in remarked.sorted() {
                guard var item = try state(id) else { continue }
                let waiting = try tx.takePending(item: id)
                guard !waiting.isEmpty else { continue }
                var history = try tx.opsOfItem(id).compactMap(\.op.body.change.markings)
                let settled = settle(waiting, item: &item, history: &history, partners: partners)
                for entry in settled.applied {
                    result.applied.append((entry.op.id, try insert(entry.op, from: entry.peer)))
                    result.changedItems.insert(id)
                }
                for (entry, rejection) in settled.rejected {
                    result.rejected.append((entry.op.id, rejection))
                    result.rejectedAuthors[entry.op.id] = entry.op.body.author
                }
                for entry in settled.waiting { try tx.insertPending(entry.op, from: entry.peer) }
                items[id] = item
            }
        }

        // Content this node may keep no more leaves the items the batch touched, and their
        // stored ops, in this transaction (DESIGN §5.7).
        var purges = [CustodyEvent]()
        if let holder = batch.holder {
            for id in Set(batch.ops.map(\.body.itemID)).sorted() {
                guard let item = try state(id), let purge = try purge(item, at: holder, peer: peer, in: &tx) else {
                    continue
                }
                if purge.state != item {
                    items[id] = purge.state
                    result.changedItems.insert(id)
                }
                result.purged[id] = purge.cause
                purges.append(purge.custody)
            }
        }

        for id in result.changedItems.sorted() {
            if let item = items[id] {
                try tx.saveItem(item)
                result.states[id] = item
            }
        }
        if highest > .zero { try tx.raiseHighestHLC(to: highest) }
        try fault(.beforeCustody)

        var head = try tx.custodyHead()
        func record(_ event: CustodyEvent) throws {
            let entry = CustodyEntry(
                event: event,
                timeMillis: batch.timeMillis,
                after: head.count == 0 ? nil : (head.count, head.hash)
            )
            try tx.appendCustody(entry)
            head = CustodyHead(count: entry.sequence, hash: entry.hash)
            result.custody.append(entry)
        }
        let accepted = result.applied.map(\.id) + result.pending + result.held
        if !accepted.isEmpty {
            try record(
                CustodyEvent(
                    kind: peer == nil ? .opsCreated : .opsReceived,
                    peer: peer?.text,
                    detail: "applied \(result.applied.count), pending \(result.pending.count), "
                        + (result.held.isEmpty ? "" : "held for markings \(result.held.count), ")
                        + "duplicates \(result.duplicates.count)" + (batch.note.map { "; \($0)" } ?? ""),
                    opIDs: accepted
                )
            )
        }
        if !result.rejected.isEmpty {
            let reasons = Dictionary(grouping: result.rejected, by: { $0.reason.description })
                .map { "\($0.value.count)× \($0.key)" }
                .sorted()
                .joined(separator: "; ")
            try record(
                CustodyEvent(kind: .opsRejected, peer: peer?.text, detail: reasons, opIDs: result.rejected.map(\.id))
            )
        }
        for event in purges { try record(event) }
        return result
    }

    /// Purges `item` at `holder` when `ItemState.purgeCause(at:)` says so: the values of
    /// fields others wrote leave the state (commitments stay, so the digest does not change)
    /// and the openings leave the item's stored ops (the ops stay: their bodies and
    /// signatures are intact, and they verify as redacted copies). `holder`'s own values and
    /// ops stay. Returns nil when there is no cause or nothing left to drop; otherwise the
    /// purged state, the cause, and the `ops.purged` custody event (the causing op, then the
    /// ops stripped; `peer` is the partner the batch came from).
    static func purge<T: StoreTransaction>(
        _ item: ItemState, at holder: Recipient, peer: NodeID?, in tx: inout T
    ) throws -> (state: ItemState, cause: PurgeCause, custody: CustodyEvent)? {
        guard let cause = item.purgeCause(at: holder) else { return nil }
        let state = item.purgingValues(keepingThoseOf: holder.nodeID)
        var fields = Set(item.fields.keys.filter { item.fields[$0]?.value != nil && state.fields[$0]?.value == nil })
        var stripped = [OpID]()
        var reason: String?
        for stored in try tx.opsOfItem(item.id) {
            if stored.op.id == cause.op, case .recall(_, let text) = stored.op.body.change { reason = text }
            guard !stored.op.openings.isEmpty, stored.op.body.author != holder.nodeID else { continue }
            fields.formUnion(stored.op.openings.keys)
            try tx.upgradeOp(try stored.op.redacting(stored.op.openings.keys), sequence: stored.sequence)
            stripped.append(stored.op.id)
        }
        guard !stripped.isEmpty || state != item else { return nil }
        let why = reason.map { " (\"\($0)\")" } ?? ""
        let detail =
            "item \(item.id.text): \(cause) by op \(cause.op.hash.hex.prefix(16))\(why); "
            + "values of \(fields.sorted().joined(separator: ", ")) dropped from the item and from \(stripped.count) ops"
        return (
            state, cause,
            CustodyEvent(
                kind: .opsPurged, peer: peer?.text, detail: detail,
                opIDs: [cause.op] + stripped.filter { $0 != cause.op })
        )
    }

    /// An op waiting in the store (for its item's create, or held for markings), with the
    /// partner it came from.
    typealias Waiting = (op: VerifiedOp, peer: NodeID?)

    /// Sorts an item's waiting ops, in their order, into those that apply to `item` now
    /// (`isAdmissible`, then `ItemState.apply`), those the item refuses, and those that wait
    /// on. Each change of markings applied among them judges the ones still waiting again,
    /// so an annotation that arrived before the change entitling its author applies with it
    /// (`history` gains the markings it replaced). Without `partners` (a store that cannot
    /// name authors) every op is admissible, as `ItemState` alone judges it.
    static func settle(
        _ waiting: [Waiting], item: inout ItemState, history: inout [Markings], partners: [NodeID: Recipient]?
    ) -> (applied: [Waiting], rejected: [(Waiting, ItemRejection)], waiting: [Waiting]) {
        var applied = [Waiting]()
        var rejected = [(Waiting, ItemRejection)]()
        var left = waiting
        var remarked = true
        // Each pass that goes on applied a change of markings, so this ends.
        while remarked && !left.isEmpty {
            remarked = false
            var next = [Waiting]()
            for entry in left {
                // What the item alone refuses (a non-writer, a non-originator) is refused now,
                // whoever it is from: waiting is only for markings that may yet entitle.
                if case .failure(let refusal) = item.permits(author: entry.op.body.author, change: entry.op.body.change)
                {
                    rejected.append((entry, refusal))
                    continue
                }
                if let partners,
                    !isAdmissible(held: entry.op, item: item, markingsHistory: history, partners: partners)
                {
                    next.append(entry)
                    continue
                }
                let markings = item.markings
                if let refusal = rejection(applying: entry.op, to: &item) {
                    rejected.append((entry, refusal))
                } else {
                    applied.append(entry)
                    if case .changeMarkings(let changed) = entry.op.body.change {
                        // Both: the markings it replaced, and its own, which an older change
                        // applied after a newer one does not leave on the item.
                        history += [markings, changed]
                        remarked = true
                    }
                }
            }
            left = next
        }
        return (applied, rejected, left)
    }

    /// Whether an op held until its item's markings release the item to its author
    /// (`CommitBatch.held`) is admitted now: the item's markings, now or earlier
    /// (`markingsHistory`), release it to its author, as `Admission.check` judges an
    /// annotation. Otherwise it waits for the next change of markings; an author this store
    /// cannot name (not in `partners`) waits too.
    static func isAdmissible(
        held op: VerifiedOp, item: ItemState, markingsHistory: [Markings], partners: [NodeID: Recipient]
    ) -> Bool {
        if op.body.author == item.originator { return true }
        guard let author = partners[op.body.author] else { return false }
        return ([item.markings] + markingsHistory).contains {
            $0.isReleasable(toPartner: author.name, groups: author.groups)
        }
    }

    /// Rebuilds items from their stored ops, leaving out the `excluded` ones; see
    /// `Store.rebuild`.
    static func rebuild<T: StoreTransaction>(
        _ ids: Set<ItemID>,
        excluding excluded: (VerifiedOp) -> Bool,
        listing listed: (VerifiedOp) -> Bool,
        custody event: CustodyEvent,
        metadata: (key: String, value: Data)?,
        timeMillis: Int64,
        purgingFor holder: Recipient?,
        admitting partners: [NodeID: Recipient]?,
        in tx: inout T
    ) throws -> RebuildResult {
        var purges = [CustodyEvent]()
        var result = RebuildResult()
        var highest = HLCTimestamp.zero
        for id in ids.sorted() {
            let before = try tx.loadItem(id)
            let ops = try tx.opsOfItem(id).map(\.op)
            let listedHere = ops.filter(listed).map(\.id)
            result.listed += listedHere
            if var state = ItemState.fold(ops.filter { !excluded($0) }) {
                // Ops waiting for this item (its create was left out, or its markings did
                // not yet entitle their author) are judged again under the rebuilt state, as
                // a commit judges them: a release that puts back the change of markings or the
                // create they waited for applies them now, not at the item's next change.
                var appliedHere = false
                if let partners {
                    let waiting = try tx.takePending(item: id)
                    var history = ops.filter { !excluded($0) }.compactMap(\.body.change.markings)
                    let settled = settle(
                        waiting.filter { !excluded($0.op) }, item: &state, history: &history, partners: partners)
                    for entry in settled.applied {
                        highest = max(highest, entry.op.body.hlc)
                        _ = try tx.insertOp(entry.op, from: entry.peer)
                        result.applied.append(entry.op.id)
                        appliedHere = true
                    }
                    for entry in settled.waiting + waiting.filter({ excluded($0.op) }) {
                        try tx.insertPending(entry.op, from: entry.peer)
                    }
                    for (entry, _) in settled.rejected { result.refused.append(entry.op.id) }
                }
                if let holder, let purge = try purge(state, at: holder, peer: nil, in: &tx) {
                    state = purge.state
                    result.purged[id] = purge.cause
                    purges.append(purge.custody)
                }
                if state != before {
                    try tx.saveItem(state)
                    result.changed.insert(id)
                }
                // The rebuild may have changed what the links may carry (tags or markings
                // without an op of their own, ops put back): the links read the item's
                // history again, as they do after a change of tags (docs/filter-rules.md,
                // "Rebuilt items"). Duplicates are harmless to the receiver.
                if state != before || !listedHere.isEmpty || appliedHere {
                    try tx.relogItem(id)
                    result.relogged.insert(id)
                }
            } else if before != nil {
                try tx.deleteItem(id)
                result.changed.insert(id)
                result.removed.insert(id)
            }
        }
        let dropped = try tx.dropPending(where: excluded)
        result.droppedPending = dropped.count
        result.listed += dropped.filter(listed).map(\.id)
        if highest > .zero { try tx.raiseHighestHLC(to: highest) }
        if let metadata { try tx.setMetadata(metadata.key, metadata.value) }
        var event = event
        event.opIDs = result.listed + result.applied + result.refused
        if !result.applied.isEmpty {
            event.detail += "; \(result.applied.count) waiting op(s) applied"
        }
        if !result.refused.isEmpty {
            event.detail += "; \(result.refused.count) waiting op(s) refused by their item"
        }
        result.custody = try append(event, timeMillis: timeMillis, in: &tx)
        for purge in purges { _ = try append(purge, timeMillis: timeMillis, in: &tx) }
        return result
    }

    /// Applies an op to an item; returns the item's refusal, if any.
    private static func rejection(applying op: VerifiedOp, to item: inout ItemState) -> ItemRejection? {
        do {
            try item.apply(op)
            return nil
        } catch {
            return error
        }
    }

    static func append<T: StoreTransaction>(
        _ event: CustodyEvent, timeMillis: Int64, in tx: inout T
    ) throws
        -> CustodyEntry
    {
        let head = try tx.custodyHead()
        let entry = CustodyEntry(
            event: event, timeMillis: timeMillis, after: head.count == 0 ? nil : (head.count, head.hash))
        try tx.appendCustody(entry)
        return entry
    }
}
