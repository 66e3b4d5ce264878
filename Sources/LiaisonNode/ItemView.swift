public import Foundation
public import LiaisonCore

/// An item as people and programs read it: the JSON of `liaison get --json` and of the API.
public struct ItemView: Codable, Sendable, Equatable {
    /// The item id.
    public var id: String
    /// Its collection.
    public var collection: String
    /// The originator's NodeID.
    public var originator: String
    /// The classification level.
    public var classification: String
    /// REL TO.
    public var releasableTo: [String]
    /// Originator controls dissemination.
    public var orcon: Bool
    /// Further caveats.
    public var caveats: [String]
    /// Expiry, ISO 8601, if any.
    public var expiresAt: String?
    /// Field values present here.
    public var fields: [String: JSONValue]
    /// Fields whose values were withheld from this node.
    public var redactedFields: [String]
    /// Current tags.
    public var tags: [String]
    /// Whether the item was deleted (only its tombstone remains).
    public var deleted: Bool
    /// Whether the item was recalled from everyone.
    public var recalled: Bool
    /// Partner and group names a recall in force withdrew the item from.
    public var recalledFrom: [String]
    /// Whether this node purged the item's content (recalled from it, no longer released to
    /// it, deleted): it keeps the item's markings and commitments, no values.
    public var purged: Bool
    /// Why, when purged: `recalled`, `narrowed`, `deleted` or `recalled-from-all`.
    public var purgeReason: String?
    /// Who may write besides the originator.
    public var writePolicy: String
    /// When it was created (HLC physical time), ISO 8601.
    public var createdAt: String
    /// When it last changed (HLC physical time), ISO 8601.
    public var changedAt: String
    /// Canonical digest of the state (equal on every node holding the same ops).
    public var digest: String
    /// For an auditor's token: the fields whose values the view leaves out (an auditor sees
    /// metadata and digests, never values). Absent for every other role.
    public var valuesHidden: [String]?

    /// The same view without field values, as an auditor sees it.
    public func withoutValues() -> ItemView {
        var view = self
        view.valuesHidden = fields.keys.sorted()
        view.fields = [:]
        return view
    }

    /// The view of an item state.
    public init(_ item: ItemState) { self.init(item, at: nil) }

    /// The view of an item state held by `holder` (nil: as the originator sees it), which
    /// says whether the holder purged its content and why.
    public init(_ item: ItemState, at holder: Recipient?) {
        id = item.id.text
        collection = item.collection
        originator = item.originator.text
        classification = item.markings.classification
        releasableTo = item.markings.releasableTo
        orcon = item.markings.orcon
        caveats = item.markings.caveats
        expiresAt = item.markings.expiresAtMillis.map { ISO8601.format(millis: $0) }
        var fields = [String: JSONValue]()
        var redacted = [String]()
        for (name, register) in item.fields {
            if let value = register.value {
                fields[name] =
                    (try? JSONDecoder().decode(JSONValue.self, from: value))
                    ?? .string(String(decoding: value, as: UTF8.self))
            } else {
                redacted.append(name)
            }
        }
        self.fields = fields
        redactedFields = redacted.sorted()
        tags = item.isWithdrawn ? [] : item.tags
        deleted = item.tombstone != nil
        recalled = item.recalledFromAll != nil
        recalledFrom = item.recallsInForce
        let cause = holder.flatMap { item.purgeCause(at: $0) }
        purged = cause != nil
        purgeReason = cause?.kind.rawValue
        writePolicy = item.writePolicy.rawValue
        createdAt = ISO8601.format(millis: Int64(item.created.hlc.physicalMillis))
        changedAt = ISO8601.format(millis: Int64(item.lastChange.hlc.physicalMillis))
        digest = item.digest.hex
    }
}

/// ISO 8601 text for millisecond timestamps.
public enum ISO8601 {
    /// `2026-11-22T13:16:14.123Z`, exact to the millisecond: the seconds are formatted from a
    /// whole number and the milliseconds appended as digits, so no binary fraction can show
    /// .122 for .123 (which moved a `--since` taken from a shown time one millisecond early).
    public static func format(millis: Int64) -> String {
        let (seconds, remainder) = millis.quotientAndRemainder(dividingBy: 1000)
        let (whole, fraction) = remainder < 0 ? (seconds - 1, remainder + 1000) : (seconds, remainder)
        let text = Date(timeIntervalSince1970: Double(whole)).formatted(Date.ISO8601FormatStyle())
        let digits = String(fraction)
        return text.dropLast() + "." + String(repeating: "0", count: 3 - digits.count) + digits + "Z"
    }

    /// Milliseconds since the epoch of a date, rounded to the nearest (a parsed `.123` is
    /// `...122.99997` as a binary fraction: truncating it lost a millisecond).
    public static func millis(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// Parses ISO 8601 with or without fractional seconds; nil when it is not ISO 8601.
    public static func parse(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
        if let date = try? Date.ISO8601FormatStyle().year().month().day().parse(text) { return date }
        return nil
    }
}
