public import Foundation
public import LiaisonCore
import Synchronization

/// A store held in memory, for the simulator and tests. Commits are atomic: a failed
/// commit leaves the state as it was. `snapshot()`/`init(snapshot:)` let the simulator
/// keep exactly what was committed across a simulated crash.
public final class MemoryStore: Store {
    /// Everything the store holds; a value, so a snapshot is a copy.
    public struct Snapshot: Sendable {
        /// In sequence order; sequences have gaps where a rebuild moved an item's ops.
        var ops: [StoredOp] = []
        var opIndex: [OpID: Int] = [:]
        /// The last sequence handed out (never handed out again).
        var lastSequence: UInt64 = 0
        var pending: [OpID: (op: VerifiedOp, peer: NodeID?, order: Int)] = [:]
        var pendingOrder = 0
        var items: [ItemID: ItemState] = [:]
        /// When each item last changed here (`ChangedItem.mark`), and the last mark given.
        var changed: [ItemID: Int64] = [:]
        var lastMark: Int64 = 0
        var checkpoints: [String: UInt64] = [:]
        var custody: [CustodyEntry] = []
        var highestHLC: HLCTimestamp = .zero
        var metadata: [String: Data] = [:]
    }

    private let state: Mutex<Snapshot>
    private let fault: (@Sendable (CommitFaultPoint) throws -> Void)?

    /// Creates an empty store. `fault` is called at each `CommitFaultPoint`; throwing aborts the commit.
    public init(fault: (@Sendable (CommitFaultPoint) throws -> Void)? = nil) {
        self.state = Mutex(Snapshot())
        self.fault = fault
    }

    /// Restores a store from a snapshot.
    public init(snapshot: Snapshot) {
        self.state = Mutex(snapshot)
        self.fault = nil
    }

    /// A copy of everything committed so far.
    public func snapshot() -> Snapshot { state.withLock { $0 } }

    public func commit(_ batch: CommitBatch) throws(LiaisonError) -> CommitResult {
        try state.withLock { (current: inout Snapshot) throws(LiaisonError) -> CommitResult in
            var tx = MemoryTransaction(state: current)
            do {
                let result = try CommitEngine.commit(batch, in: &tx, fault: { try fault?($0) })
                current = tx.state
                return result
            } catch {
                throw LiaisonError(.io, "commit failed; nothing was stored", cause: error)
            }
        }
    }

    public func appendCustody(_ event: CustodyEvent, timeMillis: Int64) throws(LiaisonError) -> CustodyEntry {
        state.withLock { current in
            var tx = MemoryTransaction(state: current)
            let entry = try! CommitEngine.append(event, timeMillis: timeMillis, in: &tx)
            current = tx.state
            return entry
        }
    }

    public func item(_ id: ItemID) throws(LiaisonError) -> ItemState? { state.withLock { $0.items[id] } }

    public func items(_ ids: Set<ItemID>) throws(LiaisonError) -> [ItemID: ItemState] {
        state.withLock { state in
            var found = [ItemID: ItemState]()
            for id in ids { if let item = state.items[id] { found[id] = item } }
            return found
        }
    }

    public func itemSummaries(_ ids: Set<ItemID>) throws(LiaisonError) -> [ItemID: ItemSummary] {
        state.withLock { state in
            var found = [ItemID: ItemSummary]()
            for id in ids { if let item = state.items[id] { found[id] = item.summary } }
            return found
        }
    }

    public func items(_ query: ItemQuery) throws(LiaisonError) -> [ItemState] {
        state.withLock { current in
            current.items.values
                .filter { item in
                    (query.collection == nil || item.collection == query.collection)
                        && (query.tag == nil || item.tags.contains(query.tag!))
                        && (query.includeWithdrawn || !item.isWithdrawn)
                }
                .sorted { ($0.lastChange, $0.id) > ($1.lastChange, $1.id) }
                .prefix(query.limit)
                .map { $0 }
        }
    }

    public func itemsChanged(_ query: ChangeQuery) throws(LiaisonError) -> [ChangedItem] {
        state.withLock { current in
            current.items.values
                .filter { item in
                    item.collection == query.collection && (query.tag.map { item.tags.contains($0) } ?? true)
                        && (current.changed[item.id] ?? 0) > query.after
                }
                .map { ChangedItem(item: $0, mark: current.changed[$0.id] ?? 0) }
                .sorted { $0.mark < $1.mark }
                .prefix(max(0, query.limit))
                .map { $0 }
        }
    }

    public func collections() throws(LiaisonError) -> [String] {
        state.withLock { Set($0.items.values.map(\.collection)).sorted() }
    }

    public func op(_ id: OpID) throws(LiaisonError) -> StoredOp? {
        state.withLock { current in current.opIndex[id].map { current.ops[$0] } }
    }

    public func ops(after sequence: UInt64, limit: Int) throws(LiaisonError) -> [StoredOp] {
        state.withLock { current in
            let start = current.firstIndex(after: sequence)
            return Array(current.ops[start..<min(current.ops.count, start + limit)])
        }
    }

    public func outboxRead(
        after sequence: UInt64, limit: Int, echoesOf peer: NodeID, scan: UInt64, carrying collections: Set<String>?
    ) throws(LiaisonError) -> OutboxRead {
        state.withLock { current in
            let bound = sequence &+ max(scan, 1)
            var ops = [StoredOp]()
            var outside = [OutsideOp]()
            var covered = sequence
            var index = current.firstIndex(after: sequence)
            while index < current.ops.count, ops.count + outside.count < limit {
                let stored = current.ops[index]
                guard stored.sequence <= bound else { break }
                covered = stored.sequence
                index += 1
                if OutboxRead.skips(stored, echoesOf: peer) { continue }
                if let collections, let item = current.items[stored.op.body.itemID],
                    !collections.contains(item.collection)
                {
                    outside.append(
                        OutsideOp(
                            sequence: stored.sequence, id: stored.op.id, author: stored.op.body.author,
                            hlc: stored.op.body.hlc, receivedFrom: stored.receivedFrom))
                } else {
                    ops.append(stored)
                }
            }
            // Nothing more before the bound: the read covered through the bound or the log's end.
            if ops.count + outside.count < limit {
                covered = max(covered, min(bound, current.ops.last?.sequence ?? 0))
            }
            return OutboxRead(ops: ops, outside: outside, coveredThrough: covered)
        }
    }

    public func ops(ofItem id: ItemID) throws(LiaisonError) -> [StoredOp] {
        state.withLock { current in current.ops.filter { $0.op.body.itemID == id } }
    }

    public func highestSequence() throws(LiaisonError) -> UInt64 {
        state.withLock { $0.ops.last?.sequence ?? 0 }
    }

    public func highestHLC() throws(LiaisonError) -> HLCTimestamp { state.withLock { $0.highestHLC } }

    public func checkpoint(link: String) throws(LiaisonError) -> UInt64 { state.withLock { $0.checkpoints[link] ?? 0 } }

    public func advanceCheckpoint(link: String, to sequence: UInt64) throws(LiaisonError) {
        state.withLock { $0.checkpoints[link] = max($0.checkpoints[link] ?? 0, sequence) }
    }

    public func custody(from sequence: UInt64, limit: Int) throws(LiaisonError) -> [CustodyEntry] {
        state.withLock { current in
            let start = Int(max(sequence, 1) - 1)
            guard start < current.custody.count else { return [] }
            return Array(current.custody[start..<min(current.custody.count, start + limit)])
        }
    }

    public func pendingCount(from peer: NodeID) throws(LiaisonError) -> Int {
        state.withLock { current in current.pending.values.count { $0.peer == peer } }
    }

    public func waitingOps() throws(LiaisonError) -> [(op: VerifiedOp, receivedFrom: NodeID?)] {
        state.withLock { current in
            current.pending.values.sorted { $0.order < $1.order }.map { ($0.op, $0.peer) }
        }
    }

    public func metadata(_ key: String) throws(LiaisonError) -> Data? { state.withLock { $0.metadata[key] } }

    public func setMetadata(_ key: String, _ value: Data) throws(LiaisonError) {
        state.withLock { $0.metadata[key] = value }
    }

    public func items(authoredBy author: NodeID, since: HLCTimestamp) throws(LiaisonError) -> Set<ItemID> {
        state.withLock { current in
            Set(
                current.ops.lazy.filter { $0.op.body.author == author && $0.op.body.hlc >= since }.map(\.op.body.itemID)
            )
        }
    }

    public func rebuild(
        items: Set<ItemID>,
        excluding excluded: (VerifiedOp) -> Bool,
        listing listed: (VerifiedOp) -> Bool,
        custody: CustodyEvent,
        metadata: (key: String, value: Data)?,
        timeMillis: Int64,
        purgingFor holder: Recipient?,
        admitting partners: [NodeID: Recipient]?
    ) throws(LiaisonError) -> RebuildResult {
        try state.withLock { (current: inout Snapshot) throws(LiaisonError) -> RebuildResult in
            var tx = MemoryTransaction(state: current)
            do {
                let result = try CommitEngine.rebuild(
                    items, excluding: excluded, listing: listed, custody: custody, metadata: metadata,
                    timeMillis: timeMillis, purgingFor: holder, admitting: partners, in: &tx)
                current = tx.state
                return result
            } catch {
                throw LiaisonError(.io, "rebuilding items failed; nothing changed", cause: error)
            }
        }
    }

    public func verifyCustody() throws(LiaisonError) -> CustodyVerification {
        state.withLock { current in
            var verifier = CustodyChainVerifier()
            for entry in current.custody { verifier.check(entry) }
            verifier.finish(
                head: CustodyHead(count: UInt64(current.custody.count), hash: current.custody.last?.hash ?? .zero))
            return verifier.defect.map(CustodyVerification.broken) ?? .intact(entries: verifier.verifiedCount)
        }
    }
}

private struct MemoryTransaction: StoreTransaction {
    var state: MemoryStore.Snapshot

    mutating func storedOp(_ id: OpID) throws -> (sequence: UInt64, redactedCount: Int)? {
        guard let index = state.opIndex[id] else { return nil }
        let stored = state.ops[index]
        return (stored.sequence, stored.op.redactedFields.count)
    }

    mutating func upgradeOp(_ op: VerifiedOp, sequence: UInt64) throws {
        let index = state.firstIndex(after: sequence - 1)
        guard index < state.ops.count, state.ops[index].sequence == sequence else {
            throw LiaisonError(.notFound, "no stored op at sequence \(sequence)")
        }
        state.ops[index].op = op
    }

    mutating func insertOp(_ op: VerifiedOp, from peer: NodeID?) throws -> UInt64 {
        state.lastSequence += 1
        state.opIndex[op.id] = state.ops.count
        state.ops.append(StoredOp(sequence: state.lastSequence, op: op, receivedFrom: peer))
        return state.lastSequence
    }

    mutating func relogItem(_ id: ItemID) throws {
        let moved = state.ops.filter { $0.op.body.itemID == id }
        state.ops.removeAll { $0.op.body.itemID == id }
        for entry in moved {
            state.lastSequence += 1
            state.ops.append(StoredOp(sequence: state.lastSequence, op: entry.op, receivedFrom: entry.receivedFrom))
        }
        state.opIndex = Dictionary(uniqueKeysWithValues: state.ops.enumerated().map { ($1.op.id, $0) })
    }

    mutating func isPending(_ id: OpID) throws -> Bool { state.pending[id] != nil }

    mutating func insertPending(_ op: VerifiedOp, from peer: NodeID?) throws {
        state.pendingOrder += 1
        state.pending[op.id] = (op, peer, state.pendingOrder)
    }

    mutating func takePending(item: ItemID) throws -> [(op: VerifiedOp, peer: NodeID?)] {
        let waiting = state.pending.values.filter { $0.op.body.itemID == item }.sorted { $0.order < $1.order }
        for entry in waiting { state.pending[entry.op.id] = nil }
        return waiting.map { ($0.op, $0.peer) }
    }

    mutating func opsOfItem(_ id: ItemID) throws -> [StoredOp] { state.ops.filter { $0.op.body.itemID == id } }

    mutating func deleteItem(_ id: ItemID) throws { state.items[id] = nil }

    mutating func dropPending(where excluded: (VerifiedOp) -> Bool) throws -> [VerifiedOp] {
        let dropped = state.pending.values.filter { excluded($0.op) }.sorted { $0.order < $1.order }
        for entry in dropped { state.pending[entry.op.id] = nil }
        return dropped.map(\.op)
    }

    mutating func setMetadata(_ key: String, _ value: Data) throws { state.metadata[key] = value }

    mutating func loadItem(_ id: ItemID) throws -> ItemState? { state.items[id] }

    mutating func saveItem(_ item: ItemState) throws {
        state.items[item.id] = item
        state.lastMark = ChangedItem.nextMark(after: state.lastMark, nowMicros: ChangedItem.nowMicros)
        state.changed[item.id] = state.lastMark
    }

    mutating func custodyHead() throws -> CustodyHead {
        CustodyHead(count: UInt64(state.custody.count), hash: state.custody.last?.hash ?? .zero)
    }

    mutating func appendCustody(_ entry: CustodyEntry) throws { state.custody.append(entry) }

    mutating func raiseHighestHLC(to stamp: HLCTimestamp) throws { state.highestHLC = max(state.highestHLC, stamp) }
}

extension MemoryStore.Snapshot {
    /// The index of the first op with a sequence above `sequence` (`ops.count` if none).
    func firstIndex(after sequence: UInt64) -> Int {
        var low = 0
        var high = ops.count
        while low < high {
            let middle = (low + high) / 2
            if ops[middle].sequence <= sequence { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
