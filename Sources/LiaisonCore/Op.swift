public import Foundation

/// A commitment, inside a signed body, to one field's value.
public struct FieldCommitment: Hashable, Sendable, Codable {
    /// The field's name.
    public var name: String
    /// `SHA-256(salt ‖ u32be(len(name)) ‖ name ‖ value)`.
    public var digest: Hash32
    /// Partner and group names the author withholds the value from (sorted, distinct): the
    /// field-level releasability the author decided, signed with the op, so that every
    /// forwarder redacts the value for them and every receiver among them refuses it in
    /// clear (DESIGN §4, "Field-level releasability").
    public var withheldFrom: [String]

    /// Creates a commitment; `withheldFrom` is sorted and de-duplicated.
    public init(name: String, digest: Hash32, withheldFrom: [String] = []) {
        self.name = name
        self.digest = digest
        self.withheldFrom = Array(Set(withheldFrom)).sorted()
    }

    /// Whether the author withholds the value from `recipient` (by name, one of its groups,
    /// or `ALL`).
    public func isWithheld(from recipient: Recipient) -> Bool { recipient.isNamed(in: withheldFrom) }
}

/// A field's salt and value, carried beside the signed body. A link filter may leave it
/// out, in which case the receiver holds the field as redacted.
public struct FieldOpening: Hashable, Sendable {
    /// The field's name.
    public var name: String
    /// 16 random bytes that keep short values from being guessed from their digest.
    public var salt: [UInt8]
    /// UTF-8 JSON text of the value.
    public var value: Data

    /// Creates an opening.
    public init(name: String, salt: [UInt8], value: Data) {
        self.name = name
        self.salt = salt
        self.value = value
    }

    /// The digest this opening commits to.
    public var digest: Hash32 { FieldOpening.digest(name: name, salt: salt, value: value) }

    /// `SHA-256(salt ‖ u32be(len(name)) ‖ name ‖ value)`.
    public static func digest(name: String, salt: [UInt8], value: Data) -> Hash32 {
        var hasher = CanonicalHasher()
        hasher.raw(salt)
        hasher.string(name)
        hasher.raw(value)
        return hasher.finalize()
    }
}

/// Who may write fields and tags of an item besides its originator.
public enum WritePolicy: String, Hashable, Sendable, Codable {
    /// Only the originator writes.
    case originatorOnly = "originator-only"
    /// Partners entitled to the item may annotate it: write fields and tags.
    case annotations
}

/// The removal of the tag instances an author had seen.
public struct TagRemoval: Hashable, Sendable, Codable {
    /// The tag.
    public var tag: String
    /// Ids of the ops whose addition of `tag` the author had seen and now removes.
    public var observed: [OpID]

    /// Creates a removal.
    public init(tag: String, observed: [OpID]) {
        self.tag = tag
        self.observed = observed
    }
}

/// The first op of an item.
public struct CreateChange: Hashable, Sendable {
    /// 16 random bytes binding the item id to the originator.
    public var nonce: [UInt8]
    /// The collection the item belongs to.
    public var collection: String
    /// Initial markings.
    public var markings: Markings
    /// Initial fields.
    public var fields: [FieldCommitment]
    /// Initial tags.
    public var tags: [String]
    /// Who else may write.
    public var writePolicy: WritePolicy
}

/// What an op changes.
public enum OpChange: Hashable, Sendable {
    /// Creates the item.
    case create(CreateChange)
    /// Sets fields (last writer wins per field).
    case setFields([FieldCommitment])
    /// Adds tags.
    case addTags([String])
    /// Removes the observed instances of tags.
    case removeTags([TagRemoval])
    /// Deletes the item, leaving a tombstone.
    case delete
    /// Replaces the item's markings; originator only.
    case changeMarkings(Markings)
    /// Withdraws the item from an audience (empty: everyone); originator only.
    case recall(audience: [String], reason: String)

    /// A short name for logs and audit entries.
    public var kindName: String {
        switch self {
        case .create: "create"
        case .setFields: "set-fields"
        case .addTags: "add-tags"
        case .removeTags: "remove-tags"
        case .delete: "delete"
        case .changeMarkings: "change-markings"
        case .recall: "recall"
        }
    }

    /// Whether only the originator may make this change.
    public var isOriginatorOnly: Bool {
        switch self {
        case .create, .delete, .changeMarkings, .recall: true
        case .setFields, .addTags, .removeTags: false
        }
    }

    /// Whether the change can make an item eligible for a link it was not eligible for
    /// (markings broadened, tags a filter requires or excludes).
    public var mayChangeEligibility: Bool {
        switch self {
        case .changeMarkings, .addTags, .removeTags: true
        default: false
        }
    }

    /// The markings this change gives the item: a create's, or a change of markings'.
    public var markings: Markings? {
        switch self {
        case .create(let create): create.markings
        case .changeMarkings(let markings): markings
        default: nil
        }
    }

    /// The field commitments this change carries.
    public var fieldCommitments: [FieldCommitment] {
        switch self {
        case .create(let create): create.fields
        case .setFields(let fields): fields
        default: []
        }
    }
}

/// The decoded signed part of an op.
public struct OpBody: Hashable, Sendable {
    /// The item the op changes.
    public var itemID: ItemID
    /// The item's originator.
    public var originator: NodeID
    /// The op's author.
    public var author: NodeID
    /// When the author made it.
    public var hlc: HLCTimestamp
    /// What it changes.
    public var change: OpChange

    /// Creates a body.
    public init(itemID: ItemID, originator: NodeID, author: NodeID, hlc: HLCTimestamp, change: OpChange) {
        self.itemID = itemID
        self.originator = originator
        self.author = author
        self.hlc = hlc
        self.change = change
    }

    /// The order of last-writer-wins: stamp, then author, then op id.
    public func stamp(id: OpID) -> OpStamp { OpStamp(hlc: hlc, author: author, opID: id) }
}

/// The total order of ops for last-writer-wins: HLC, then author NodeID, then op id.
public struct OpStamp: Hashable, Comparable, Sendable, Codable {
    /// When.
    public var hlc: HLCTimestamp
    /// Who.
    public var author: NodeID
    /// Which op (a final tiebreak for two ops one author stamped alike).
    public var opID: OpID

    /// Creates a stamp.
    public init(hlc: HLCTimestamp, author: NodeID, opID: OpID) {
        self.hlc = hlc
        self.author = author
        self.opID = opID
    }

    public static func < (lhs: OpStamp, rhs: OpStamp) -> Bool {
        if lhs.hlc != rhs.hlc { return lhs.hlc < rhs.hlc }
        if lhs.author != rhs.author { return lhs.author < rhs.author }
        return lhs.opID < rhs.opID
    }
}

/// An op whose signature, proof and openings have been checked.
///
/// `encoded` holds the exact bytes of the `SignedOp` message as received or as signed;
/// they are what the store keeps and what is sent on.
public struct VerifiedOp: Hashable, Sendable {
    /// SHA-256 of the body bytes.
    public let id: OpID
    /// The decoded body.
    public let body: OpBody
    /// Field values present, by name. A committed field without one is redacted.
    public let openings: [String: FieldOpening]
    /// The encoded `SignedOp`.
    public let encoded: Data

    init(id: OpID, body: OpBody, openings: [String: FieldOpening], encoded: Data) {
        self.id = id
        self.body = body
        self.openings = openings
        self.encoded = encoded
    }

    /// The last-writer-wins stamp of this op.
    public var stamp: OpStamp { body.stamp(id: id) }

    /// Names of committed fields whose values this copy does not carry.
    public var redactedFields: [String] {
        body.change.fieldCommitments.map(\.name).filter { openings[$0] == nil }
    }
}
