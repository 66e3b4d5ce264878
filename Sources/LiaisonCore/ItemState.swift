public import Foundation

/// One field of an item: a last-writer-wins register ordered by `OpStamp`.
public struct FieldRegister: Hashable, Sendable, Codable {
    /// The op that wrote the value.
    public var stamp: OpStamp
    /// The commitment the author signed.
    public var digest: Hash32
    /// UTF-8 JSON text of the value; nil when this node holds the field redacted.
    public var value: Data?

    /// Whether the value was withheld from this node.
    public var isRedacted: Bool { value == nil }

    /// The join of two registers: the later write wins; for the same write, the copy that
    /// carries the value wins over a redacted one.
    func joined(with other: FieldRegister) -> FieldRegister {
        if other.stamp > stamp { return other }
        if other.stamp == stamp, value == nil, other.value != nil { return other }
        return self
    }
}

/// Why an item refused an op.
public enum ItemRejection: Error, Hashable, Sendable, CustomStringConvertible {
    /// The op names another item or another originator.
    case wrongItem
    /// Only the originator may create, delete, recall or change markings.
    case notOriginator(kind: String)
    /// The item's write policy does not let this author write.
    case notWriter
    /// A create op other than the one that made the item.
    case conflictingCreate
    /// The item's markings do not release it to the partner that would annotate it: only
    /// partners entitled to an item annotate it.
    case notEntitled

    public var description: String {
        switch self {
        case .wrongItem: "the op names another item or originator"
        case .notOriginator(let kind): "only the item's originator may \(kind)"
        case .notWriter: "the item lets only its originator write fields and tags"
        case .conflictingCreate: "a second, different create op for an existing item"
        case .notEntitled: "the item is not released to this partner, so it may not annotate it"
        }
    }
}

/// The state of an item: a join-semilattice over its ops (DESIGN §4).
///
/// - fields: last-writer-wins register per field, ordered by (HLC, author, op id);
/// - tags: add-wins observed-remove set (an instance is the id of the op that added it);
/// - delete and full recall: max registers; once either is set the fields are dropped and
///   stay dropped, keeping the tombstone and the tag set (which link filters still judge);
/// - markings: last-writer-wins among the originator's ops.
///
/// Applying ops in any order, with any duplication, or joining states built from
/// parts of an op set, gives the same state and the same `digest`.
public struct ItemState: Hashable, Sendable, Codable {
    /// The item.
    public let id: ItemID
    /// The author of the create op.
    public let originator: NodeID
    /// The collection, fixed at creation.
    public let collection: String
    /// Who else may write.
    public let writePolicy: WritePolicy
    /// The create op's stamp.
    public let created: OpStamp
    /// Current markings.
    public private(set) var markings: Markings
    /// The op that set the current markings.
    public private(set) var markingsStamp: OpStamp
    /// Fields by name (empty once the item is deleted or recalled; its tags stay).
    public private(set) var fields: [String: FieldRegister]
    /// Tag instances added, by tag.
    public private(set) var tagsAdded: [String: Set<OpID>]
    /// Tag instances removed, by tag.
    public private(set) var tagsRemoved: [String: Set<OpID>]
    /// The latest delete, if deleted.
    public private(set) var tombstone: OpStamp?
    /// The latest recall from everyone, if recalled.
    public private(set) var recalledFromAll: OpStamp?
    /// The latest recall per audience name.
    public private(set) var recalledFrom: [String: OpStamp]
    /// The greatest stamp among applied ops.
    public private(set) var lastChange: OpStamp

    /// The state right after the create op. Throws when the op is not a valid create.
    public init(create op: VerifiedOp) throws(ItemRejection) {
        guard case .create(let create) = op.body.change else { throw .wrongItem }
        guard op.body.author == op.body.originator else { throw .notOriginator(kind: "create") }
        guard ItemID(originator: op.body.originator, nonce: create.nonce) == op.body.itemID else { throw .wrongItem }
        id = op.body.itemID
        originator = op.body.originator
        collection = create.collection
        writePolicy = create.writePolicy
        created = op.stamp
        markings = create.markings
        markingsStamp = op.stamp
        fields = [:]
        tagsAdded = [:]
        tagsRemoved = [:]
        tombstone = nil
        recalledFromAll = nil
        recalledFrom = [:]
        lastChange = op.stamp
        setFields(create.fields, op: op)
        for tag in create.tags { tagsAdded[tag, default: []].insert(op.id) }
    }

    /// Restores a state from its parts (the storage decoder).
    init(
        id: ItemID,
        originator: NodeID,
        collection: String,
        writePolicy: WritePolicy,
        created: OpStamp,
        markings: Markings,
        markingsStamp: OpStamp,
        fields: [String: FieldRegister],
        tagsAdded: [String: Set<OpID>],
        tagsRemoved: [String: Set<OpID>],
        tombstone: OpStamp?,
        recalledFromAll: OpStamp?,
        recalledFrom: [String: OpStamp],
        lastChange: OpStamp
    ) {
        self.id = id
        self.originator = originator
        self.collection = collection
        self.writePolicy = writePolicy
        self.created = created
        self.markings = markings
        self.markingsStamp = markingsStamp
        self.fields = fields
        self.tagsAdded = tagsAdded
        self.tagsRemoved = tagsRemoved
        self.tombstone = tombstone
        self.recalledFromAll = recalledFromAll
        self.recalledFrom = recalledFrom
        self.lastChange = lastChange
    }

    /// Whether the item was deleted or recalled from everyone: only its tombstone remains.
    public var isWithdrawn: Bool { tombstone != nil || recalledFromAll != nil }

    /// Whether `author` may write an op of this kind to this item, as far as the item alone
    /// can tell. (Whether an annotating partner is entitled to the item is checked on receipt.)
    public func permits(author: NodeID, change: OpChange) -> Result<Void, ItemRejection> {
        if author == originator { return .success(()) }
        if change.isOriginatorOnly { return .failure(.notOriginator(kind: change.kindName)) }
        return writePolicy == .annotations ? .success(()) : .failure(.notWriter)
    }

    /// Whether the partner `writer` may write an op of this kind here and now (put time):
    /// what `permits(author:change:)` allows, and, for anyone but the originator, that the
    /// item's current markings release it to `writer` (by name, group or ALL). Only partners
    /// entitled to an item annotate it; a partner the item was narrowed away from writes no
    /// more annotations.
    public func permits(writer: Recipient, change: OpChange) -> Result<Void, ItemRejection> {
        if case .failure(let rejection) = permits(author: writer.nodeID, change: change) { return .failure(rejection) }
        guard writer.nodeID == originator || markings.isReleasable(toPartner: writer.name, groups: writer.groups)
        else { return .failure(.notEntitled) }
        return .success(())
    }

    /// Applies an op; returns whether the state changed. Duplicates change nothing.
    @discardableResult
    public mutating func apply(_ op: VerifiedOp) throws(ItemRejection) -> Bool {
        guard op.body.itemID == id, op.body.originator == originator else { throw .wrongItem }
        if case .failure(let rejection) = permits(author: op.body.author, change: op.body.change) {
            throw rejection
        }
        let before = self
        switch op.body.change {
        case .create:
            guard op.id == created.opID else { throw .conflictingCreate }
            // The create op itself: its fields may carry values a redacted copy lacked.
            if case .create(let create) = op.body.change { setFields(create.fields, op: op) }
        case .setFields(let commitments):
            setFields(commitments, op: op)
        case .addTags(let tags):
            for tag in tags { tagsAdded[tag, default: []].insert(op.id) }
        case .removeTags(let removals):
            for removal in removals { tagsRemoved[removal.tag, default: []].formUnion(removal.observed) }
        case .delete:
            tombstone = max(tombstone ?? op.stamp, op.stamp)
        case .changeMarkings(let newMarkings):
            if op.stamp > markingsStamp {
                markings = newMarkings
                markingsStamp = op.stamp
            }
        case .recall(let audience, _):
            if audience.isEmpty {
                recalledFromAll = max(recalledFromAll ?? op.stamp, op.stamp)
            } else {
                for name in audience { recalledFrom[name] = max(recalledFrom[name] ?? op.stamp, op.stamp) }
            }
        }
        lastChange = max(lastChange, op.stamp)
        dropContentIfWithdrawn()
        return self != before
    }

    /// The state of an item from a set of its ops, in any order (the store's rebuild). When
    /// the set holds more than one valid create (a forked create: only the originator can
    /// sign one, so it equivocated), the least create by stamp defines the item and the
    /// others are left out, so every node that holds the same ops holds the same state.
    /// Ops the item refuses are skipped. Nil when the set holds no valid create.
    public static func fold(_ ops: some Sequence<VerifiedOp>) -> ItemState? {
        var creates = [ItemState]()
        var others = [VerifiedOp]()
        for op in ops {
            if case .create = op.body.change {
                if let state = try? ItemState(create: op) { creates.append(state) }
            } else {
                others.append(op)
            }
        }
        guard var state = creates.min(by: { $0.created < $1.created }) else { return nil }
        let id = state.id
        for op in others where op.body.itemID == id { _ = try? state.apply(op) }
        return state
    }

    /// The join of two states of the same item.
    public func merged(with other: ItemState) -> ItemState {
        precondition(id == other.id && created == other.created, "merging states of different items")
        var result = self
        if other.markingsStamp > result.markingsStamp {
            result.markings = other.markings
            result.markingsStamp = other.markingsStamp
        }
        for (name, register) in other.fields {
            result.fields[name] = result.fields[name].map { $0.joined(with: register) } ?? register
        }
        for (tag, instances) in other.tagsAdded { result.tagsAdded[tag, default: []].formUnion(instances) }
        for (tag, instances) in other.tagsRemoved { result.tagsRemoved[tag, default: []].formUnion(instances) }
        result.tombstone = [result.tombstone, other.tombstone].compactMap { $0 }.max()
        result.recalledFromAll = [result.recalledFromAll, other.recalledFromAll].compactMap { $0 }.max()
        for (name, stamp) in other.recalledFrom {
            result.recalledFrom[name] = max(result.recalledFrom[name] ?? stamp, stamp)
        }
        result.lastChange = max(result.lastChange, other.lastChange)
        result.dropContentIfWithdrawn()
        return result
    }

    /// Tags currently present, sorted.
    public var tags: [String] {
        tagsAdded.compactMap { tag, added in
            added.subtracting(tagsRemoved[tag] ?? []).isEmpty ? nil : tag
        }.sorted()
    }

    /// The live instances (add op ids) of a tag, as a remove op must name them.
    public func liveInstances(of tag: String) -> [OpID] {
        (tagsAdded[tag] ?? []).subtracting(tagsRemoved[tag] ?? []).sorted()
    }

    /// Canonical digest of the state: equal for equal states on every node, whether or not a
    /// node holds some fields redacted (it covers each field's commitment, not its value).
    public var digest: Hash32 {
        var h = CanonicalHasher(domain: "liaison/v1/item-state")
        h.raw(id.bytes)
        h.hash(originator.hash)
        h.string(collection)
        h.string(writePolicy.rawValue)
        h.stamp(created)
        h.markings(markings)
        h.stamp(markingsStamp)
        h.optionalStamp(tombstone)
        h.optionalStamp(recalledFromAll)
        h.uint32(UInt32(recalledFrom.count))
        for name in recalledFrom.keys.sorted() {
            h.string(name)
            h.stamp(recalledFrom[name]!)
        }
        h.uint32(UInt32(fields.count))
        for name in fields.keys.sorted() {
            h.string(name)
            h.hash(fields[name]!.digest)
            h.stamp(fields[name]!.stamp)
        }
        let present = tags
        h.uint32(UInt32(present.count))
        for tag in present {
            h.string(tag)
            let live = liveInstances(of: tag)
            h.uint32(UInt32(live.count))
            for instance in live { h.hash(instance.hash) }
        }
        return h.finalize()
    }

    private mutating func setFields(_ commitments: [FieldCommitment], op: VerifiedOp) {
        guard !isWithdrawn else { return }
        for commitment in commitments {
            let register = FieldRegister(
                stamp: op.stamp, digest: commitment.digest, value: op.openings[commitment.name]?.value)
            fields[commitment.name] = fields[commitment.name].map { $0.joined(with: register) } ?? register
        }
    }

    /// A withdrawn item drops its fields' values and commitments. Its tags stay: a link
    /// filter judges the tombstone's ops by them, so a deleted item's create (tags and
    /// values) never crosses a link that excludes its tags (`Eligibility.decide`).
    private mutating func dropContentIfWithdrawn() {
        guard isWithdrawn else { return }
        fields = [:]
    }
}

extension CanonicalHasher {
    mutating func stamp(_ stamp: OpStamp) {
        uint64(stamp.hlc.rawValue)
        hash(stamp.author.hash)
        hash(stamp.opID.hash)
    }

    mutating func optionalStamp(_ stamp: OpStamp?) {
        bool(stamp != nil)
        if let stamp { self.stamp(stamp) }
    }

    mutating func markings(_ markings: Markings) {
        string(markings.classification)
        strings(markings.releasableTo.sorted())
        bool(markings.orcon)
        strings(markings.caveats.sorted())
        bool(markings.expiresAtMillis != nil)
        if let expires = markings.expiresAtMillis { int64(expires) }
    }
}
