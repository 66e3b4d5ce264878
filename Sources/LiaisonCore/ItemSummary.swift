/// What the eligibility rules (`Eligibility.decide`) need to know of an item, and nothing of
/// its content: who made it, where it lives, its markings and when they were set, its tags
/// and the recalls made of it.
///
/// A store keeps one beside each item's state, written by the same commit
/// (`Store.itemSummaries`), so a sender judges a batch for a link without decoding the
/// states, whose field values are most of their bytes. It is a function of the state
/// (`ItemState.summary`) and never the only copy of anything.
public struct ItemSummary: Hashable, Sendable {
    /// The item.
    public let id: ItemID
    /// The author of the create op.
    public let originator: NodeID
    /// The collection, fixed at creation.
    public let collection: String
    /// The create op.
    public let created: OpID
    /// Current markings.
    public let markings: Markings
    /// The op that set the current markings.
    public let markingsStamp: OpStamp
    /// The current tags.
    public let tags: Set<String>
    /// The latest recall per audience name.
    public let recalledFrom: [String: OpStamp]

    /// Creates a summary from its parts.
    public init(
        id: ItemID, originator: NodeID, collection: String, created: OpID, markings: Markings,
        markingsStamp: OpStamp, tags: Set<String>, recalledFrom: [String: OpStamp]
    ) {
        self.id = id
        self.originator = originator
        self.collection = collection
        self.created = created
        self.markings = markings
        self.markingsStamp = markingsStamp
        self.tags = tags
        self.recalledFrom = recalledFrom
    }

    /// The recall in force for `recipient`, if any (`ItemState.recallInForce(for:)`).
    public func recallInForce(for recipient: Recipient) -> OpStamp? {
        ItemState.recallInForce(for: recipient, recalledFrom: recalledFrom, markingsStamp: markingsStamp)
    }
}

extension ItemState {
    /// What eligibility needs of the item (`ItemSummary`).
    public var summary: ItemSummary {
        ItemSummary(
            id: id, originator: originator, collection: collection, created: created.opID, markings: markings,
            markingsStamp: markingsStamp, tags: Set(tags), recalledFrom: recalledFrom)
    }
}
