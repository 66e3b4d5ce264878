import Foundation
import SwiftProtobuf

/// Limits on what one op may hold (I7). A decoder refuses anything larger.
public enum OpLimits {
    /// Largest encoded `SignedOp`, in bytes.
    public static let maxEncodedBytes = 1 << 20
    /// Most fields one op may set.
    public static let maxFields = 256
    /// Most tags one op may add or remove.
    public static let maxTags = 256
    /// Longest name of a field, tag, collection, partner or caveat, in bytes.
    public static let maxNameBytes = 128
    /// Most names in REL TO or caveats.
    public static let maxMarkingsEntries = 64
    /// Deepest Merkle path (a batch holds at most 2^maxPathLength ops).
    public static let maxPathLength = 24
    /// Most observed instances in one tag removal.
    public static let maxObservedInstances = 4096
}

/// The names Liaison accepts for collections, tags and fields: 1–128 bytes of letters,
/// digits and `. _ - : /`.
public enum Names {
    /// Whether `name` is a valid collection, tag or field name.
    public static func isValid(_ name: String) -> Bool {
        let utf8 = name.utf8
        guard !utf8.isEmpty, utf8.count <= OpLimits.maxNameBytes else { return false }
        return utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
                || c == UInt8(ascii: ":") || c == UInt8(ascii: "/")
        }
    }

    /// Whether `label` is a valid classification level, partner, group or caveat label:
    /// 1–128 bytes, printable, no leading or trailing space, no comma.
    public static func isValidLabel(_ label: String) -> Bool {
        let utf8 = label.utf8
        guard !utf8.isEmpty, utf8.count <= OpLimits.maxNameBytes else { return false }
        guard label.first != " ", label.last != " " else { return false }
        return label.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7f && $0 != "," }
    }
}

/// Why a received op was refused before it reached any item.
public struct OpRejection: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of defect.
    public enum Reason: String, Hashable, Sendable {
        case tooLarge = "too-large"
        case malformed
        case nonCanonical = "non-canonical"
        case unsupportedFormat = "unsupported-format"
        case badProof = "bad-proof"
        case badSignature = "bad-signature"
        case authorKeyMismatch = "author-key-mismatch"
        case badOpening = "bad-opening"
        case invalidContent = "invalid-content"
    }

    /// What kind of defect.
    public var reason: Reason
    /// Details for the audit log.
    public var detail: String

    /// Creates a rejection.
    public init(_ reason: Reason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(reason.rawValue): \(detail)" }
}

// MARK: - Swift values to protobuf

extension Markings {
    var proto: Liaison_V1_Markings {
        var message = Liaison_V1_Markings()
        message.classification = classification
        message.relTo = releasableTo
        message.orcon = orcon
        message.caveats = caveats
        if let expiresAtMillis { message.expiresAtMs = expiresAtMillis }
        return message
    }

    init(proto message: Liaison_V1_Markings) throws(OpRejection) {
        guard Names.isValidLabel(message.classification) else {
            throw OpRejection(.invalidContent, "classification is empty or not a valid label")
        }
        guard message.relTo.count <= OpLimits.maxMarkingsEntries, message.caveats.count <= OpLimits.maxMarkingsEntries,
            message.relTo.allSatisfy(Names.isValidLabel), message.caveats.allSatisfy(Names.isValidLabel)
        else { throw OpRejection(.invalidContent, "REL TO or caveats hold an invalid or excessive entry") }
        guard message.relTo.isSortedAndDistinct, message.caveats.isSortedAndDistinct
        else { throw OpRejection(.invalidContent, "REL TO and caveats must be sorted and distinct") }
        self.init(
            classification: message.classification,
            releasableTo: message.relTo,
            orcon: message.orcon,
            caveats: message.caveats,
            expiresAtMillis: message.hasExpiresAtMs ? message.expiresAtMs : nil
        )
    }
}

extension OpBody {
    /// The body as its protobuf message.
    var proto: Liaison_V1_OpBody {
        var message = Liaison_V1_OpBody()
        message.format = 1
        message.itemID = Data(itemID.bytes)
        message.originator = Data(originator.bytes)
        message.author = Data(author.bytes)
        message.hlc = hlc.rawValue
        switch change {
        case .create(let create):
            var c = Liaison_V1_Create()
            c.nonce = Data(create.nonce)
            c.collection = create.collection
            c.markings = create.markings.proto
            c.fields = create.fields.map(\.proto)
            c.tags = create.tags
            c.writePolicy = create.writePolicy == .annotations ? .annotations : .originatorOnly
            message.create = c
        case .setFields(let fields):
            var s = Liaison_V1_SetFields()
            s.fields = fields.map(\.proto)
            message.setFields = s
        case .addTags(let tags):
            var a = Liaison_V1_AddTags()
            a.tags = tags
            message.addTags = a
        case .removeTags(let removals):
            var r = Liaison_V1_RemoveTags()
            r.removals = removals.map { removal in
                var m = Liaison_V1_TagRemoval()
                m.tag = removal.tag
                m.observed = removal.observed.map(\.hash.data)
                return m
            }
            message.removeTags = r
        case .delete:
            message.delete = Liaison_V1_Delete()
        case .changeMarkings(let markings):
            var m = Liaison_V1_ChangeMarkings()
            m.markings = markings.proto
            message.changeMarkings = m
        case .recall(let audience, let reason):
            var r = Liaison_V1_Recall()
            r.audience = audience
            r.reason = reason
            message.recall = r
        }
        return message
    }

    /// Decodes and validates a body message.
    init(proto message: Liaison_V1_OpBody) throws(OpRejection) {
        guard message.format == 1 else {
            throw OpRejection(.unsupportedFormat, "op format \(message.format); this node reads format 1")
        }
        guard let itemID = ItemID(bytes: message.itemID), let originator = NodeID(bytes: message.originator),
            let author = NodeID(bytes: message.author)
        else { throw OpRejection(.malformed, "item id, originator or author has the wrong length") }
        let change: OpChange
        switch message.change {
        case .none:
            throw OpRejection(.malformed, "the op changes nothing")
        case .create(let c):
            guard c.nonce.count == 16 else { throw OpRejection(.malformed, "create nonce must be 16 bytes") }
            guard Names.isValid(c.collection) else { throw OpRejection(.invalidContent, "invalid collection name") }
            guard c.hasMarkings else { throw OpRejection(.malformed, "create without markings") }
            guard author == originator else {
                throw OpRejection(.invalidContent, "create authored by a non-originator")
            }
            guard ItemID(originator: originator, nonce: c.nonce) == itemID else {
                throw OpRejection(.invalidContent, "item id does not derive from originator and nonce")
            }
            let policy: WritePolicy
            switch c.writePolicy {
            case .originatorOnly: policy = .originatorOnly
            case .annotations: policy = .annotations
            case .UNRECOGNIZED(let value): throw OpRejection(.malformed, "unknown write policy \(value)")
            }
            change = .create(
                CreateChange(
                    nonce: Array(c.nonce),
                    collection: c.collection,
                    markings: try Markings(proto: c.markings),
                    fields: try Self.commitments(c.fields, allowEmpty: true),
                    tags: try Self.tags(c.tags, allowEmpty: true),
                    writePolicy: policy
                )
            )
        case .setFields(let s):
            change = .setFields(try Self.commitments(s.fields, allowEmpty: false))
        case .addTags(let a):
            change = .addTags(try Self.tags(a.tags, allowEmpty: false))
        case .removeTags(let r):
            guard !r.removals.isEmpty, r.removals.count <= OpLimits.maxTags else {
                throw OpRejection(.invalidContent, "a tag removal names 1 to \(OpLimits.maxTags) tags")
            }
            var removals = [TagRemoval]()
            for removal in r.removals {
                guard Names.isValid(removal.tag) else { throw OpRejection(.invalidContent, "invalid tag name") }
                guard removal.observed.count <= OpLimits.maxObservedInstances else {
                    throw OpRejection(.invalidContent, "too many observed tag instances")
                }
                var observed = [OpID]()
                for bytes in removal.observed {
                    guard let hash = Hash32(bytes: bytes) else { throw OpRejection(.malformed, "observed id length") }
                    observed.append(OpID(hash: hash))
                }
                removals.append(TagRemoval(tag: removal.tag, observed: observed))
            }
            change = .removeTags(removals)
        case .delete:
            change = .delete
        case .changeMarkings(let m):
            guard m.hasMarkings else { throw OpRejection(.malformed, "change of markings without markings") }
            change = .changeMarkings(try Markings(proto: m.markings))
        case .recall(let r):
            guard r.audience.count <= OpLimits.maxMarkingsEntries, r.audience.allSatisfy(Names.isValidLabel),
                r.reason.utf8.count <= 1024
            else { throw OpRejection(.invalidContent, "recall audience or reason is invalid") }
            change = .recall(audience: r.audience, reason: r.reason)
        }
        self.init(
            itemID: itemID, originator: originator, author: author, hlc: HLCTimestamp(rawValue: message.hlc),
            change: change)
    }

    private static func commitments(
        _ fields: [Liaison_V1_FieldCommitment], allowEmpty: Bool
    ) throws(OpRejection)
        -> [FieldCommitment]
    {
        guard fields.count <= OpLimits.maxFields, allowEmpty || !fields.isEmpty else {
            throw OpRejection(.invalidContent, "an op sets 1 to \(OpLimits.maxFields) fields")
        }
        var seen = Set<String>()
        var out = [FieldCommitment]()
        for field in fields {
            guard Names.isValid(field.name) else { throw OpRejection(.invalidContent, "invalid field name") }
            guard seen.insert(field.name).inserted else {
                throw OpRejection(.invalidContent, "field '\(field.name)' appears twice")
            }
            guard let digest = Hash32(bytes: field.digest) else { throw OpRejection(.malformed, "field digest length") }
            guard field.withheldFrom.count <= OpLimits.maxMarkingsEntries,
                field.withheldFrom.allSatisfy(Names.isValidLabel),
                field.withheldFrom.isSortedAndDistinct
            else { throw OpRejection(.invalidContent, "field '\(field.name)' is withheld from invalid names") }
            out.append(FieldCommitment(name: field.name, digest: digest, withheldFrom: field.withheldFrom))
        }
        return out
    }

    private static func tags(_ tags: [String], allowEmpty: Bool) throws(OpRejection) -> [String] {
        guard tags.count <= OpLimits.maxTags, allowEmpty || !tags.isEmpty else {
            throw OpRejection(.invalidContent, "an op adds 1 to \(OpLimits.maxTags) tags")
        }
        guard tags.allSatisfy(Names.isValid) else { throw OpRejection(.invalidContent, "invalid tag name") }
        guard Set(tags).count == tags.count else { throw OpRejection(.invalidContent, "a tag appears twice") }
        return tags
    }
}

extension FieldCommitment {
    var proto: Liaison_V1_FieldCommitment {
        var message = Liaison_V1_FieldCommitment()
        message.name = name
        message.digest = digest.data
        message.withheldFrom = withheldFrom
        return message
    }
}

extension FieldOpening {
    var proto: Liaison_V1_FieldOpening {
        var message = Liaison_V1_FieldOpening()
        message.name = name
        message.salt = Data(salt)
        message.value = value
        return message
    }
}

// MARK: - Canonical decoding

enum CanonicalProto {
    /// Parses `bytes` as `M` and requires them to be exactly the deterministic encoding of
    /// what they decode to: no unknown fields, no repeated singular fields, no odd varints.
    static func decode<M: SwiftProtobuf.Message>(
        _ type: M.Type, from bytes: Data, what: String
    ) throws(OpRejection) -> M {
        var options = BinaryDecodingOptions()
        options.discardUnknownFields = true
        options.messageDepthLimit = 16
        let message: M
        do {
            message = try M(serializedBytes: bytes, options: options)
        } catch {
            throw OpRejection(.malformed, "\(what) is not a valid protobuf message: \(error)")
        }
        let again: Data
        do {
            again = try message.serializedBytes()
        } catch {
            throw OpRejection(.malformed, "\(what) cannot be re-encoded: \(error)")
        }
        guard again == bytes else { throw OpRejection(.nonCanonical, "\(what) is not in canonical encoding") }
        return message
    }
}
