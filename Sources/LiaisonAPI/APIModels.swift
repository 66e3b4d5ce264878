public import Foundation
public import LiaisonCore
public import LiaisonNode

/// The body of `POST /v1/items`.
public struct PutItemBody: Codable, Sendable {
    /// The collection.
    public var collection: String
    /// Classification level (default: the lowest).
    public var classification: String?
    /// REL TO partner or group names, or `ALL`; a name the node does not know is refused (400).
    public var relTo: [String]?
    /// Originator controls dissemination.
    public var orcon: Bool?
    /// Handling caveats.
    public var caveats: [String]?
    /// Expiry, ISO 8601.
    public var expiresAt: String?
    /// Tags.
    public var tags: [String]?
    /// Fields with JSON values.
    public var fields: [String: JSONValue]?
    /// Let entitled partners annotate.
    public var annotations: Bool?
    /// Field-level releasability: per field, partner or group names its value is withheld
    /// from on every path (the node adds partners whose link from it redacts the field).
    public var withhold: [String: [String]]?

    /// Creates a body.
    public init(
        collection: String,
        classification: String? = nil,
        relTo: [String]? = nil,
        orcon: Bool? = nil,
        caveats: [String]? = nil,
        expiresAt: String? = nil,
        tags: [String]? = nil,
        fields: [String: JSONValue]? = nil,
        annotations: Bool? = nil,
        withhold: [String: [String]]? = nil
    ) {
        self.withhold = withhold
        self.collection = collection
        self.classification = classification
        self.relTo = relTo
        self.orcon = orcon
        self.caveats = caveats
        self.expiresAt = expiresAt
        self.tags = tags
        self.fields = fields
        self.annotations = annotations
    }

    /// The request this body asks for.
    public func request() throws(LiaisonError) -> PutRequest {
        var expires: Date?
        if let expiresAt {
            guard let date = ISO8601.parse(expiresAt) else {
                throw LiaisonError(.invalidArgument, "expiresAt '\(expiresAt)' is not ISO 8601")
            }
            expires = date
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var values = [(name: String, value: Data)]()
        for (name, value) in (fields ?? [:]).sorted(by: { $0.key < $1.key }) {
            do {
                values.append((name, try encoder.encode(value)))
            } catch {
                throw LiaisonError(.invalidArgument, "field '\(name)' cannot be encoded", cause: error)
            }
        }
        return PutRequest(
            collection: collection,
            classification: classification,
            releasableTo: relTo ?? [],
            orcon: orcon ?? false,
            caveats: caveats ?? [],
            expiresAt: expires,
            tags: tags ?? [],
            fields: values,
            writePolicy: annotations == true ? .annotations : .originatorOnly,
            withheld: withhold ?? [:]
        )
    }
}

/// The body of `PATCH /v1/items/{id}`.
public struct UpdateItemBody: Codable, Sendable {
    /// Fields to set, with JSON values.
    public var fields: [String: JSONValue]?
    /// Tags to add.
    public var addTags: [String]?
    /// Tags to remove (the instances this node has seen).
    public var removeTags: [String]?
    /// Per field set, partners or groups its new value is withheld from, besides those its
    /// current value is withheld from (who stay).
    public var withhold: [String: [String]]?

    /// Creates a body.
    public init(
        fields: [String: JSONValue]? = nil, addTags: [String]? = nil, removeTags: [String]? = nil,
        withhold: [String: [String]]? = nil
    ) {
        self.fields = fields
        self.addTags = addTags
        self.removeTags = removeTags
        self.withhold = withhold
    }

    /// The field values as JSON text, sorted by name.
    public func encodedFields() throws(LiaisonError) -> [(name: String, value: Data)] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var values = [(name: String, value: Data)]()
        for (name, value) in (fields ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard Names.isValid(name) else {
                throw LiaisonError(
                    .invalidArgument, "invalid field name '\(name)': use 1-128 letters, digits or . _ - : /")
            }
            do {
                values.append((name, try encoder.encode(value)))
            } catch {
                throw LiaisonError(.invalidArgument, "field '\(name)' cannot be encoded", cause: error)
            }
        }
        return values
    }
}

/// The answer to `POST /v1/items`.
public struct PutItemResult: Codable, Sendable {
    /// The new item's id.
    public var id: String
    /// Its create op's id.
    public var opID: String
    /// Its digest.
    public var digest: String
}

/// An error answer.
public struct APIErrorBody: Codable, Sendable {
    /// What went wrong and what to do.
    public var error: String
}

/// The body of `PUT /v1/items/{id}/markings`: the parts of the markings to change, as a
/// put gives them; a part left out keeps its value.
public struct MarkingsBody: Codable, Sendable {
    /// Classification level.
    public var classification: String?
    /// REL TO partner or group names, or `ALL`, replacing the current list; a name the node
    /// does not know is refused (400).
    public var relTo: [String]?
    /// Originator controls dissemination.
    public var orcon: Bool?
    /// Handling caveats, replacing the current ones.
    public var caveats: [String]?
    /// Expiry, ISO 8601, in the future.
    public var expiresAt: String?

    /// Creates a body.
    public init(
        classification: String? = nil, relTo: [String]? = nil, orcon: Bool? = nil, caveats: [String]? = nil,
        expiresAt: String? = nil
    ) {
        self.classification = classification
        self.relTo = relTo
        self.orcon = orcon
        self.caveats = caveats
        self.expiresAt = expiresAt
    }

    /// The request this body asks for.
    public func request() throws(LiaisonError) -> MarkingsChangeRequest {
        var expires: Date?
        if let expiresAt {
            guard let date = ISO8601.parse(expiresAt) else {
                throw LiaisonError(.invalidArgument, "expiresAt '\(expiresAt)' is not ISO 8601")
            }
            expires = date
        }
        return MarkingsChangeRequest(
            classification: classification, releasableTo: relTo, orcon: orcon, caveats: caveats, expiresAt: expires)
    }
}

/// The body of `POST /v1/items/{id}/recall`.
public struct RecallBody: Codable, Sendable {
    /// Partner or group names to recall the item from; empty or left out: everyone.
    public var from: [String]?
    /// Why, for the custody log and the partners.
    public var reason: String

    /// Creates a body.
    public init(from: [String]? = nil, reason: String) {
        self.from = from
        self.reason = reason
    }
}

/// The answer to `DELETE /v1/items/{id}`, `PUT /v1/items/{id}/markings` and
/// `POST /v1/items/{id}/recall`.
public struct LifecycleView: Codable, Sendable {
    /// The item after the change, as this node (its originator) holds it.
    public var item: ItemView
    /// The ops signed, in order (a narrowing signs the change of markings, then the recall).
    public var opIDs: [String]
    /// Who the change recalled the item from: the partners a narrowing removed, or the
    /// recall's audience.
    public var recalledFrom: [String]
    /// Names whose earlier recall a change of REL TO lifted.
    public var recallsLifted: [String]

    /// The view of a result.
    public init(_ result: LifecycleResult) {
        item = ItemView(result.item)
        opIDs = result.ops.map(\.id.hash.hex)
        recalledFrom = result.recalledFrom
        recallsLifted = result.recallsLifted
    }
}

/// The body of `POST /v1/stix`: STIX 2.1 objects to take in (docs/stix.md), with the
/// markings of those that carry no Liaison marking.
public struct STIXImportBody: Codable, Sendable {
    /// The collection new items go to.
    public var collection: String
    /// Classification of objects without a Liaison marking (nil: the ladder's lowest).
    public var classification: String?
    /// REL TO of objects without a Liaison marking that TLP lets go (CLEAR, GREEN) or that
    /// carry no marking (nil: TLP decides: every partner, or no one for unmarked objects).
    public var relTo: [String]?
    /// The objects, marking definitions among them.
    public var objects: [JSONValue]
    /// Whether they come from a feed (another organisation's server): Liaison markings in
    /// them are refused.
    public var feed: Bool?

    /// Creates a body.
    public init(
        collection: String, classification: String? = nil, relTo: [String]? = nil, objects: [JSONValue],
        feed: Bool? = nil
    ) {
        self.collection = collection
        self.classification = classification
        self.relTo = relTo
        self.objects = objects
        self.feed = feed
    }
}

/// What `POST /v1/stix` did with each object, in order.
public struct STIXImportResult: Codable, Sendable {
    /// One object's outcome.
    public struct Outcome: Codable, Sendable, Hashable {
        /// The object's id.
        public var id: String
        /// Its `modified`.
        public var version: String?
        /// `created`, `updated`, `unchanged`, `superseded`, `definition` or `refused`.
        public var status: String
        /// For a refusal: the code and why (`STIXRefusal`).
        public var error: String?
        /// The item that holds the object.
        public var item: String?

        /// The outcome of `outcome`.
        public init(_ outcome: STIXOutcome) {
            id = outcome.id
            version = outcome.version
            item = outcome.item?.text
            switch outcome.status {
            case .created: status = "created"
            case .updated: status = "updated"
            case .unchanged: status = "unchanged"
            case .superseded: status = "superseded"
            case .definition: status = "definition"
            case .refused(let refusal):
                status = "refused"
                error = refusal.description
            }
        }
    }

    /// The outcomes, one per object given.
    public var outcomes: [Outcome]

    /// Creates a result.
    public init(outcomes: [Outcome]) { self.outcomes = outcomes }
}
