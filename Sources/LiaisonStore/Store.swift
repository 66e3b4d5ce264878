public import Foundation
public import LiaisonCore

/// Where a batch of ops came from.
public enum OpSource: Hashable, Sendable {
    /// Authored on this node.
    case local
    /// Received from a peer node.
    case peer(NodeID)

    /// The peer, if any.
    public var peer: NodeID? {
        if case .peer(let id) = self { return id }
        return nil
    }
}

/// A batch of verified ops to commit in one transaction.
public struct CommitBatch: Sendable {
    /// The ops, in the order they arrived.
    public var ops: [VerifiedOp]
    /// Where they came from.
    public var source: OpSource
    /// When they were committed, milliseconds since the Unix epoch (for custody).
    public var timeMillis: Int64
    /// The node whose store this is, as REL TO names it. When set, every item the batch
    /// touches that this node may keep the content of no more (`ItemState.purgeCause(at:)`:
    /// recalled from it, no longer released to it, deleted) is purged in the same
    /// transaction: values leave the item and the openings leave its stored ops, with an
    /// `ops.purged` custody entry. Nil purges nothing.
    public var holder: Recipient?
    /// What the batch does, for the custody entry that records it (e.g. "recall from
    /// charlie"); nil says nothing more than the counts.
    public var note: String?
    /// Ops of the batch to hold, durable but not applied, until a change of markings of their
    /// item (held here) releases the item to their author: annotations whose author's
    /// entitlement the item's markings here do not show yet (docs/merge-rules.md, "Held
    /// annotations"). They wait with the ops waiting for a create, and count with them
    /// (`Store.pendingCount`).
    public var held: Set<OpID>
    /// Every partner by NodeID. When set, a change of markings this batch applies judges again
    /// the ops held for its item, and applies those whose author it now releases the item to;
    /// nil leaves them waiting.
    public var partners: [NodeID: Recipient]?

    /// Creates a batch.
    public init(
        ops: [VerifiedOp], source: OpSource, timeMillis: Int64, holder: Recipient? = nil, note: String? = nil,
        held: Set<OpID> = [], partners: [NodeID: Recipient]? = nil
    ) {
        self.ops = ops
        self.source = source
        self.timeMillis = timeMillis
        self.holder = holder
        self.note = note
        self.held = held
        self.partners = partners
    }
}

/// What a commit did with each op.
public struct CommitResult: Sendable, Equatable {
    /// Ops newly stored and applied, with their local sequence numbers.
    public var applied: [(id: OpID, sequence: UInt64)]
    /// Ops already held (possibly upgraded from a redacted copy); nothing changed for them
    /// except filling in values.
    public var duplicates: [OpID]
    /// Ops stored durably but waiting for their item's create op.
    public var pending: [OpID]
    /// Ops of the batch held (`CommitBatch.held`), durable, until their item's markings here
    /// release the item to their author.
    public var held: [OpID]
    /// Ops the item refused, with the reason; recorded in custody, not stored.
    public var rejected: [(id: OpID, reason: ItemRejection)]
    /// The author of each refused op (a pending op refused when its create arrives was not
    /// in the batch).
    public var rejectedAuthors: [OpID: NodeID]
    /// Second, different creates of items held here (the originator equivocated): stored
    /// and folded in (`ItemState.fold`: the least create defines the item everywhere).
    public var forkedCreates: [OpID]
    /// The items whose state changed.
    public var changedItems: Set<ItemID>
    /// The state each of `changedItems` was saved with, as a read after the commit would
    /// return it (a bulk put answers with these instead of reading its items back).
    public var states: [ItemID: ItemState]
    /// The custody entries the commit appended.
    public var custody: [CustodyEntry]
    /// Items whose content the commit purged (`CommitBatch.holder`), with why.
    public var purged: [ItemID: PurgeCause]

    /// An empty result.
    public init() {
        applied = []
        duplicates = []
        pending = []
        held = []
        rejected = []
        rejectedAuthors = [:]
        forkedCreates = []
        changedItems = []
        states = [:]
        custody = []
        purged = [:]
    }

    public static func == (lhs: CommitResult, rhs: CommitResult) -> Bool {
        lhs.applied.map(\.id) == rhs.applied.map(\.id) && lhs.applied.map(\.sequence) == rhs.applied.map(\.sequence)
            && lhs.duplicates == rhs.duplicates && lhs.pending == rhs.pending && lhs.held == rhs.held
            && lhs.rejected.map(\.id) == rhs.rejected.map(\.id) && lhs.changedItems == rhs.changedItems
            && lhs.custody == rhs.custody && lhs.purged == rhs.purged
    }
}

/// An op as the store holds it.
public struct StoredOp: Sendable, Hashable {
    /// Local log sequence (every stored op gets the next one, whatever its origin).
    public var sequence: UInt64
    /// The op.
    public var op: VerifiedOp
    /// The peer it came from; nil when authored here.
    public var receivedFrom: NodeID?
}

/// Which items `Store.itemsChanged` lists.
public struct ChangeQuery: Sendable, Hashable {
    /// The collection.
    public var collection: String
    /// Only items carrying this tag.
    public var tag: String?
    /// Only items that changed here after this mark (0: from the start).
    public var after: Int64
    /// At most this many.
    public var limit: Int

    /// Creates a query.
    public init(collection: String, tag: String? = nil, after: Int64 = 0, limit: Int) {
        self.collection = collection
        self.tag = tag
        self.after = after
        self.limit = limit
    }
}

/// An item and when it last changed at this node.
public struct ChangedItem: Sendable, Hashable {
    /// The item as held (withdrawn items included).
    public var item: ItemState
    /// When the item last changed here: microseconds since 1970 by this node's clock, made
    /// strictly greater than every mark the store gave before (so it orders changes and a
    /// reader that keeps the last one it saw misses none and sees none twice).
    public var mark: Int64

    /// Creates one.
    public init(item: ItemState, mark: Int64) {
        self.item = item
        self.mark = mark
    }

    /// The next mark after `last` at `nowMicros`: now, or just after `last` when the clock
    /// has not moved past it (or went back).
    public static func nextMark(after last: Int64, nowMicros: Int64) -> Int64 { max(nowMicros, last &+ 1) }

    /// Now in microseconds since 1970.
    public static var nowMicros: Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
}

/// Which items to list.
public struct ItemQuery: Sendable, Hashable {
    /// Only this collection.
    public var collection: String?
    /// Only items carrying this tag.
    public var tag: String?
    /// Include deleted and recalled items (tombstones).
    public var includeWithdrawn: Bool
    /// At most this many, newest change first.
    public var limit: Int

    /// Creates a query.
    public init(collection: String? = nil, tag: String? = nil, includeWithdrawn: Bool = false, limit: Int = 1000) {
        self.collection = collection
        self.tag = tag
        self.includeWithdrawn = includeWithdrawn
        self.limit = limit
    }
}

/// The result of checking a store's custody log.
public enum CustodyVerification: Sendable, Equatable {
    /// Every entry is intact.
    case intact(entries: UInt64)
    /// The first defect found.
    case broken(CustodyDefect)
}

/// A place where a fault can be injected into a commit, for crash-atomicity tests.
public enum CommitFaultPoint: Sendable, Hashable {
    /// After the n-th op (from 0) of the batch was written.
    case afterOp(Int)
    /// Just before the custody entry is appended.
    case beforeCustody
}

/// A node's durable state: the op log with local sequence numbers, materialized items,
/// per-link checkpoints and the custody log.
///
/// Every `commit` is one transaction: a failure anywhere leaves the store as it was.
/// Applying an op twice changes nothing. Nothing above this protocol assumes SQLite.
public protocol Store: Sendable {
    /// Stores and applies a batch of verified ops, and records it in custody, atomically.
    func commit(_ batch: CommitBatch) throws(LiaisonError) -> CommitResult
    /// Appends a custody entry on its own (sent, withheld, operator actions).
    func appendCustody(_ event: CustodyEvent, timeMillis: Int64) throws(LiaisonError) -> CustodyEntry
    /// The item's state, or nil if unknown.
    func item(_ id: ItemID) throws(LiaisonError) -> ItemState?
    /// The states of those of `ids` that are known, read at one point in time (one read
    /// transaction): what a batch's senders and receivers need of many items at once.
    func items(_ ids: Set<ItemID>) throws(LiaisonError) -> [ItemID: ItemState]
    /// What eligibility needs of those of `ids` that are known (`ItemSummary`), read at one
    /// point in time: what a sender reads to filter a batch for a link. Equal to the
    /// `summary` of each state `items(_:)` returns, without decoding the states (a store
    /// keeps the summary beside the state, written by the same commit).
    func itemSummaries(_ ids: Set<ItemID>) throws(LiaisonError) -> [ItemID: ItemSummary]
    /// Items matching a query, most recently changed first.
    func items(_ query: ItemQuery) throws(LiaisonError) -> [ItemState]
    /// Items of one collection in the order they last changed **here**, after a mark an
    /// earlier answer gave (`ChangeQuery`): what a feed of this node's items (TAXII's
    /// `added_after` and paging) reads without missing an item that arrived late with an old
    /// stamp.
    func itemsChanged(_ query: ChangeQuery) throws(LiaisonError) -> [ChangedItem]
    /// The collections of the items held here, sorted.
    func collections() throws(LiaisonError) -> [String]
    /// A stored op.
    func op(_ id: OpID) throws(LiaisonError) -> StoredOp?
    /// Ops with sequence greater than `sequence`, in order, at most `limit`.
    func ops(after sequence: UInt64, limit: Int) throws(LiaisonError) -> [StoredOp]
    /// What a link's session reads of the log for `peer` (`OutboxRead`): ops after
    /// `sequence`, in order, at most `limit`, skipping the peer's echoes (ops it wrote or sent
    /// us) unless they may change an item's eligibility; and how far the read covered, within
    /// at most `scan` sequences.
    ///
    /// With `carrying` (the link's collections; nil: every collection), an op of an item the
    /// store holds in a collection outside the set comes back without its bytes, in
    /// `OutboxRead.outside`: the link withholds it whatever else is true of it
    /// (`Eligibility.decide` judges the collection first), so neither the op nor its item is
    /// decoded. `limit` counts both kinds.
    func outboxRead(
        after sequence: UInt64, limit: Int, echoesOf peer: NodeID, scan: UInt64, carrying collections: Set<String>?
    ) throws(LiaisonError)
        -> OutboxRead
    /// Every stored op of one item, in sequence order.
    func ops(ofItem id: ItemID) throws(LiaisonError) -> [StoredOp]
    /// The highest local sequence (0 when empty).
    func highestSequence() throws(LiaisonError) -> UInt64
    /// The greatest HLC stamp among stored ops (zero when empty).
    func highestHLC() throws(LiaisonError) -> HLCTimestamp
    /// A link's checkpoint (0 when never set).
    func checkpoint(link: String) throws(LiaisonError) -> UInt64
    /// Advances a link's checkpoint; a lower value than the current one is ignored. Need not
    /// be durable before the next durable commit: one lost to a crash only has ops sent again.
    func advanceCheckpoint(link: String, to sequence: UInt64) throws(LiaisonError)
    /// Custody entries from `sequence` on (1 is the first), at most `limit`.
    func custody(from sequence: UInt64, limit: Int) throws(LiaisonError) -> [CustodyEntry]
    /// Walks the whole custody log and its recorded head.
    func verifyCustody() throws(LiaisonError) -> CustodyVerification
    /// How many ops received from `peer` wait for their item's create op.
    func pendingCount(from peer: NodeID) throws(LiaisonError) -> Int
    /// Every op waiting (for its item's create, or for markings that entitle its author), in
    /// order of arrival, with the partner it came from.
    func waitingOps() throws(LiaisonError) -> [(op: VerifiedOp, receivedFrom: NodeID?)]
    /// A value the node keeps about itself under `key` (e.g. its containment state), or nil.
    func metadata(_ key: String) throws(LiaisonError) -> Data?
    /// Sets such a value.
    func setMetadata(_ key: String, _ value: Data) throws(LiaisonError)
    /// The items with an op by `author` stamped at or after `since`.
    func items(authoredBy author: NodeID, since: HLCTimestamp) throws(LiaisonError) -> Set<ItemID>
    /// In one transaction: rebuilds `items` from their stored ops in log order, leaving out
    /// the ops `excluded` picks (they stay in the log), and saves the new states (an item
    /// whose create is left out is removed); moves the ops of every item whose state changed
    /// or that holds a `listed` op to the end of the log (`RebuildResult.relogged`); drops the waiting ops `excluded` picks (no
    /// create arriving later applies them); sets `metadata` if given; and appends `custody`
    /// listing the ops `listed` picks among those it looked at. With a `holder`, a rebuilt
    /// item this node may keep the content of no more is purged as a commit purges it. With
    /// `partners`, the ops waiting for a rebuilt item that the rebuilt state admits are
    /// applied, as a commit applies them (`RebuildResult.applied`).
    func rebuild(
        items: Set<ItemID>,
        excluding excluded: (VerifiedOp) -> Bool,
        listing listed: (VerifiedOp) -> Bool,
        custody: CustodyEvent,
        metadata: (key: String, value: Data)?,
        timeMillis: Int64,
        purgingFor holder: Recipient?,
        admitting partners: [NodeID: Recipient]?
    ) throws(LiaisonError) -> RebuildResult
    /// Gives back memory the store holds only to be faster (caches, prepared statements),
    /// when the node has gone idle after heavy work. Nothing stored changes. Reads and
    /// writes under way finish first; call it off the thread that writes.
    func releaseCaches()
}

extension Store {
    /// A store that keeps no caches has nothing to give back.
    public func releaseCaches() {}

    /// `rebuild` without purging.
    public func rebuild(
        items: Set<ItemID>,
        excluding excluded: (VerifiedOp) -> Bool,
        listing listed: (VerifiedOp) -> Bool,
        custody: CustodyEvent,
        metadata: (key: String, value: Data)?,
        timeMillis: Int64
    ) throws(LiaisonError) -> RebuildResult {
        try rebuild(
            items: items, excluding: excluded, listing: listed, custody: custody, metadata: metadata,
            timeMillis: timeMillis, purgingFor: nil, admitting: nil)
    }
}

/// What rebuilding items did.
public struct RebuildResult: Sendable, Hashable {
    /// Items whose state changed (removed ones included).
    public var changed: Set<ItemID> = []
    /// Items removed because their create was left out.
    public var removed: Set<ItemID> = []
    /// Items whose ops moved to the end of the log, so that every link reads their history
    /// again under the rebuilt state.
    public var relogged: Set<ItemID> = []
    /// The ops the custody entry lists (for a quarantine: the partner's ops left out,
    /// waiting ones dropped included; for a release: its ops put back).
    public var listed: [OpID] = []
    /// Waiting ops dropped.
    public var droppedPending: Int = 0
    /// Waiting ops the rebuilt items admitted, now in the log.
    public var applied: [OpID] = []
    /// Waiting ops the rebuilt items refused (`ItemState.apply`), no longer kept.
    public var refused: [OpID] = []
    /// Rebuilt items whose content was purged (`purgingFor`), with why.
    public var purged: [ItemID: PurgeCause] = [:]
    /// The custody entry appended.
    public var custody: CustodyEntry?

    /// Nothing rebuilt.
    public init() {}
}

/// Keys of `Store.metadata` the node uses.
public enum MetadataKey {
    /// The node's strikes and quarantines (JSON of `ContainmentState`).
    public static let containment = "node.containment"
}

/// A read of the log for one peer's link: the ops to judge, and the sequence the read
/// covered. The ops skipped (the peer's own, and those it sent us, that change no item's
/// eligibility) would only be dropped as echoes, and cost a decode each: on a receiver during
/// a catch-up they were most of what its session to the sender read (BENCHMARKS.md). Those
/// that may change eligibility (changes of markings and tags) are kept: they make an item's
/// earlier ops due to the peer (`ReplicationStore.loadBatch`).
public struct OutboxRead: Sendable {
    /// The ops to judge, in log order.
    public var ops: [StoredOp]
    /// Ops of items in collections the link does not carry, in log order, without their bytes.
    public var outside: [OutsideOp]
    /// Every sequence up to this one was read or skipped (0: nothing after the start).
    public var coveredThrough: UInt64

    public init(ops: [StoredOp], outside: [OutsideOp] = [], coveredThrough: UInt64) {
        self.ops = ops
        self.outside = outside
        self.coveredThrough = coveredThrough
    }

    /// Whether a stored op is an echo for `peer` that a session may skip.
    public static func skips(_ stored: StoredOp, echoesOf peer: NodeID) -> Bool {
        (stored.receivedFrom == peer || stored.op.body.author == peer) && !stored.op.body.change.mayChangeEligibility
    }
}

/// A stored op of an item in a collection a link does not carry, as `Store.outboxRead` gives
/// it: what the link's custody and containment need, without the op's bytes.
public struct OutsideOp: Sendable, Hashable {
    /// Local log sequence.
    public var sequence: UInt64
    /// The op's id.
    public var id: OpID
    /// Its author.
    public var author: NodeID
    /// Its stamp.
    public var hlc: HLCTimestamp
    /// The peer it came from; nil when authored here.
    public var receivedFrom: NodeID?

    public init(sequence: UInt64, id: OpID, author: NodeID, hlc: HLCTimestamp, receivedFrom: NodeID?) {
        self.sequence = sequence
        self.id = id
        self.author = author
        self.hlc = hlc
        self.receivedFrom = receivedFrom
    }

    /// Whether it is an echo for `peer` (it wrote the op or sent it to us).
    public func isEcho(for peer: NodeID) -> Bool { receivedFrom == peer || author == peer }
}

extension Store {
    /// `outboxRead` for a link that carries every collection.
    public func outboxRead(
        after sequence: UInt64, limit: Int, echoesOf peer: NodeID, scan: UInt64
    ) throws(LiaisonError) -> OutboxRead {
        try outboxRead(after: sequence, limit: limit, echoesOf: peer, scan: scan, carrying: nil)
    }
}
