/// What a link lets through, set per directed link in the topology.
///
/// Every condition must hold for an item's ops to be sent; `redactFields` then names
/// fields whose values are withheld while the op itself still goes (and still verifies).
public struct LinkFilter: Hashable, Sendable, Codable {
    /// Collections shared over the link; nil shares every collection.
    public var collections: Set<String>?
    /// The highest classification the link carries; nil means no ceiling beyond releasability.
    public var maxClassification: String?
    /// Tags an item must all carry.
    public var requiredTags: Set<String>
    /// Tags an item must not carry.
    public var excludedTags: Set<String>
    /// Fields whose values are withheld (redacted).
    public var redactFields: Set<String>

    /// Creates a filter; the default lets everything releasable through.
    public init(
        collections: Set<String>? = nil,
        maxClassification: String? = nil,
        requiredTags: Set<String> = [],
        excludedTags: Set<String> = [],
        redactFields: Set<String> = []
    ) {
        self.collections = collections
        self.maxClassification = maxClassification
        self.requiredTags = requiredTags
        self.excludedTags = excludedTags
        self.redactFields = redactFields
    }

    /// A filter that lets everything releasable through, unredacted.
    public static let passAll = LinkFilter()
}

/// Field-level releasability (DESIGN §4): the partners and groups an author withholds each
/// field's value from, decided when the op is written and signed in it, so that it binds on
/// every path and not only on the author's own links.
public enum FieldReleasability {
    /// For each of `fields`, the names in `explicit` (given at put time) and every partner
    /// whose link from the author redacts the field (`outbound`: the author's links by
    /// partner name). Fields withheld from no one are left out.
    public static func withheld(
        fields: [String], explicit: [String: [String]] = [:], outbound: [String: LinkFilter]
    ) -> [String: [String]] {
        var out = [String: [String]]()
        for field in fields {
            let fromLinks = outbound.filter { $0.value.redactFields.contains(field) }.map(\.key)
            let names = Set(explicit[field] ?? []).union(fromLinks)
            if !names.isEmpty { out[field] = names.sorted() }
        }
        return out
    }
}

/// The receiving end of a link, as eligibility needs to know it.
public struct Recipient: Hashable, Sendable {
    /// The partner's name (matched against REL TO).
    public var name: String
    /// The partner's node.
    public var nodeID: NodeID
    /// Groups the partner belongs to (matched against REL TO).
    public var groups: Set<String>

    /// Creates a recipient.
    public init(name: String, nodeID: NodeID, groups: Set<String> = []) {
        self.name = name
        self.nodeID = nodeID
        self.groups = groups
    }
}

extension Recipient {
    /// Whether a list of partner and group names (REL TO, a recall's audience, a field's withholding) names this
    /// partner: by name, by one of its groups, or `ALL`.
    public func isNamed(in names: [String]) -> Bool {
        names.contains { $0 == name || $0 == Markings.everyone || groups.contains($0) }
    }
}

/// Why an op was withheld from a link.
public enum WithholdReason: String, Hashable, Sendable, Codable, CaseIterable {
    /// The item's REL TO does not name the recipient or any of its groups.
    case notReleasable = "not-releasable"
    /// The item is ORCON and the sender would pass on an op it neither originated nor wrote.
    case orcon
    /// The item is classified above the link's ceiling.
    case aboveClassificationCeiling = "above-classification-ceiling"
    /// The item's classification is not on the federation's ladder.
    case unknownClassification = "unknown-classification"
    /// The link does not carry the item's collection.
    case collectionNotShared = "collection-not-shared"
    /// The item lacks a tag the link requires.
    case missingRequiredTag = "missing-required-tag"
    /// The item carries a tag the link excludes.
    case excludedTag = "excluded-tag"
    /// The originator recalled the item from the recipient: its content goes there no more.
    case recalled
}

/// The decision for one op on one link.
public enum Eligibility: Hashable, Sendable {
    /// Send as is.
    case send
    /// Send without the values of these fields (sorted); the op still verifies.
    case sendRedacted(fields: [String])
    /// Do not send.
    case withhold(WithholdReason)

    /// Whether anything is sent.
    public var sends: Bool {
        if case .withhold = self { return false }
        return true
    }

    /// Decides whether `sender` may send `op` of an item (as `item` sums it up) to `recipient` over
    /// a link with `filter`. Pure: the same inputs always give the same answer.
    ///
    /// Checks, in order: releasability (the recipient or one of its groups is in REL TO,
    /// or the recipient is the originator), ORCON (only the originator's node passes on
    /// others' ops; a partner may send its own annotations),
    /// the classification ceiling, the collection, required and excluded tags; then
    /// redaction of the op's field values the filter names.
    ///
    /// Every op is judged against the item's current markings at the sender, annotations
    /// included: an annotation goes where the item goes. One exception: a change of markings
    /// also goes to a recipient that `earlierMarkings` (the item's markings before, as the
    /// sender holds them) released the item to. That is the content-free, originator-signed
    /// notice of DESIGN §5.7: a partner the item is narrowed away from learns it, stops
    /// annotating, and passes on its own annotations under the markings now in force.
    /// Recalls come first (`recallDecision`): a recall goes to the partners it names that
    /// were released the item, and content goes no more to a partner recalled from.
    public static func decide(
        op: VerifiedOp,
        item: ItemSummary,
        earlierMarkings: [Markings] = [],
        sender: NodeID,
        recipient: Recipient,
        filter: LinkFilter,
        ladder: ClassificationLadder
    ) -> Eligibility {
        // A link that does not carry the item's collection carries none of its ops, whatever
        // else is true of them: judged first, so a store can withhold such ops without
        // reading them (`Store.outboxRead`) and give the same reason as a full judgement.
        if let collections = filter.collections, !collections.contains(item.collection) {
            return .withhold(.collectionNotShared)
        }
        if let recall = recallDecision(
            op: op, item: item, earlierMarkings: earlierMarkings, sender: sender, recipient: recipient,
            filter: filter, ladder: ladder)
        {
            return recall
        }
        func reason(wasReleased: Bool) -> WithholdReason? {
            withholdReason(
                markings: item.markings,
                collection: item.collection,
                tags: item.tags,
                originator: item.originator,
                opAuthor: op.body.author,
                sender: sender,
                recipient: recipient,
                filter: filter,
                ladder: ladder,
                wasReleased: wasReleased
            )
        }
        if let withheld = reason(wasReleased: false) {
            guard withheld == .notReleasable, case .changeMarkings = op.body.change,
                earlierMarkings.contains(where: { $0.isReleasable(toPartner: recipient.name, groups: recipient.groups) }
                ),
                reason(wasReleased: true) == nil
            else { return .withhold(withheld) }
            return .send
        }
        let redacted = redactedFields(of: op, for: recipient, filter: filter)
        return redacted.isEmpty ? .send : .sendRedacted(fields: redacted)
    }

    /// The fields of `op` whose values must not reach `recipient` over a link with
    /// `filter`, sorted: those the link redacts, and those the op's author withholds from
    /// the recipient or one of its groups (signed in the op, so they bind on every path).
    public static func redactedFields(of op: VerifiedOp, for recipient: Recipient, filter: LinkFilter) -> [String] {
        let withheld = Set(op.body.change.fieldCommitments.filter { $0.isWithheld(from: recipient) }.map(\.name))
        return op.openings.keys.filter { filter.redactFields.contains($0) || withheld.contains($0) }.sorted()
    }

    /// The item-level part of `decide`: why an item with these markings, collection and tags
    /// may not go from `sender` to `recipient`, or nil when it may. `tags` nil skips the tag
    /// checks (the receiver's admission: tags are the sender's to judge). `opAuthor` is the author of the op in question.
    /// `wasReleased` skips the releasability check (a notice of narrowing to a partner the
    /// item was released to before).
    public static func withholdReason(
        markings: Markings,
        collection: String,
        tags: Set<String>?,
        originator: NodeID,
        opAuthor: NodeID,
        sender: NodeID,
        recipient: Recipient,
        filter: LinkFilter,
        ladder: ClassificationLadder,
        wasReleased: Bool = false
    ) -> WithholdReason? {
        if !wasReleased, recipient.nodeID != originator,
            !markings.isReleasable(toPartner: recipient.name, groups: recipient.groups)
        {
            return .notReleasable
        }
        if markings.orcon, sender != originator, opAuthor != sender {
            return .orcon
        }
        guard let rank = ladder.rank(of: markings.classification) else {
            return .unknownClassification
        }
        if let ceiling = filter.maxClassification {
            guard let ceilingRank = ladder.rank(of: ceiling), rank <= ceilingRank else {
                return .aboveClassificationCeiling
            }
        }
        if let collections = filter.collections, !collections.contains(collection) {
            return .collectionNotShared
        }
        if let tags {
            if !filter.requiredTags.isSubset(of: tags) { return .missingRequiredTag }
            if !filter.excludedTags.isDisjoint(with: tags) { return .excludedTag }
        }
        return nil
    }
}
