public import Foundation
public import LiaisonCore
import LiaisonStore

/// What taking in one STIX object did.
public struct STIXOutcome: Sendable, Hashable {
    /// What happened.
    public enum Status: Sendable, Hashable {
        /// A new item holds it.
        case created
        /// A later version: the item that holds the object changed.
        case updated
        /// This version was already held.
        case unchanged
        /// An earlier version than the one held, or than another in the same request: not written.
        case superseded
        /// Understood and not stored: a marking definition marks the objects that name it.
        case definition
        /// Refused; nothing of it was written.
        case refused(STIXRefusal)
    }

    /// The object's id (or what stood in its place, for an object too broken to have one).
    public var id: String
    /// Its `modified`, if any.
    public var version: String?
    /// What happened.
    public var status: Status
    /// The item that holds the object, when one does.
    public var item: ItemID?

    /// Whether the object is held (created, updated or already there, or a definition understood).
    public var succeeded: Bool {
        if case .refused = status { return false }
        return true
    }

    /// Creates an outcome.
    public init(id: String, version: String?, status: Status, item: ItemID? = nil) {
        self.id = id
        self.version = version
        self.status = status
        self.item = item
    }
}

extension LocalNode {
    /// The name Liaison markings of this node's federation carry.
    public var federationName: String { federation?.federation ?? config.name }

    /// The item that holds STIX object `id` when this node took it in.
    public func stixItemID(_ id: String) -> ItemID {
        ItemID(originator: identity.nodeID, nonce: STIXImport.nonce(stixID: id))
    }

    /// Takes STIX objects in (docs/stix.md): each is judged on its own, so one refused object
    /// refuses only itself. New objects are created in one transaction, later versions change
    /// their item; an object whose markings Liaison cannot honour is refused with the reason,
    /// never stored with weaker markings. Returns one outcome per value, in order, and the
    /// ops written.
    ///
    /// `classification` and `releasableTo` mark objects that carry no Liaison marking
    /// (`STIXImport`): an operator's choice for a feed.
    /// `fromFeed`: the objects come from another organisation's TAXII server (Liaison markings
    /// in them are refused).
    public func importSTIX(
        _ values: [JSONValue], collection: String, classification: String? = nil, releasableTo: [String]? = nil,
        fromFeed: Bool = false, now: Date
    ) throws(LiaisonError) -> (outcomes: [STIXOutcome], ops: [VerifiedOp]) {
        var outcomes = [STIXOutcome]()
        var objects = [(index: Int, object: STIXObject)]()
        for (index, value) in values.enumerated() {
            do {
                let object = try STIXObject(value)
                outcomes.append(STIXOutcome(id: object.id, version: object.modified, status: .definition))
                // Liaison's own identity and extension definition (an export's head) describe
                // its markings; they are not content.
                guard ![STIXMarkings.liaisonIdentity, STIXMarkings.liaisonExtension].contains(object.id) else {
                    continue
                }
                objects.append((index, object))
            } catch {
                let id = value.objectID ?? "object \(index + 1)"
                outcomes.append(STIXOutcome(id: id, version: nil, status: .refused(error)))
            }
        }
        var importer = STIXImport(
            collection: collection, federation: federationName,
            definitions: objects.map(\.object).filter { $0.type == "marking-definition" })
        importer.classification = classification
        importer.releasableTo = releasableTo
        importer.fromFeed = fromFeed
        importer.me = recipient
        // One object per id: the latest version given; the others are superseded by it.
        var latest = [String: Int]()
        for (position, entry) in objects.enumerated() where entry.object.type != "marking-definition" {
            if let other = latest[entry.object.id] {
                let mine = entry.object.modified.flatMap(STIXTimestamp.init)
                let theirs = objects[other].object.modified.flatMap(STIXTimestamp.init)
                if let mine, let theirs, theirs < mine {
                    outcomes[objects[other].index].status = .superseded
                    latest[entry.object.id] = position
                } else {
                    outcomes[entry.index].status = .superseded
                }
            } else {
                latest[entry.object.id] = position
            }
        }
        var creates = [(index: Int, request: PutRequest)]()
        var written = [VerifiedOp]()
        for position in latest.values.sorted() {
            let (index, object) = objects[position]
            let item = stixItemID(object.id)
            outcomes[index].item = item
            let existing = try store.item(item)
            let heldWithholding: [String: [String]]
            do {
                heldWithholding = try existing.map(withholding(of:)) ?? [:]
            } catch {
                outcomes[index].status = .refused(STIXRefusal(.refused, "\(object.id): \(error.message)"))
                outcomes[index].item = nil
                continue
            }
            let decision: STIXImport.Decision
            do {
                decision = try importer.decide(object, existing: existing, heldWithholding: heldWithholding)
            } catch {
                outcomes[index].status = .refused(error)
                outcomes[index].item = nil
                continue
            }
            do {
                switch decision {
                case .create(let request):
                    creates.append((index, request))
                case .update(let fields, let withheld):
                    do {
                        let result = try update(
                            item, fields: fields, addTags: [], removeTags: [], withheld: withheld, now: now)
                        written += result.ops
                        outcomes[index].status = .updated
                    } catch {
                        outcomes[index].status = .refused(STIXRefusal(.refused, "\(object.id): \(error.message)"))
                    }
                case .unchanged:
                    outcomes[index].status = .unchanged
                case .stale:
                    outcomes[index].status = .superseded
                }
            }
        }
        // The creates the node's own checks refuse (REL TO names, classifications, sizes) are
        // named; the others go in one transaction.
        for failure in refusals(of: creates.map(\.request), now: now).failures.reversed() {
            let index = creates[failure.index].index
            outcomes[index].status = .refused(STIXRefusal(.refused, "\(outcomes[index].id): \(failure.message)"))
            outcomes[index].item = nil
            creates.remove(at: failure.index)
        }
        // Signed; a create too large to sign (over 1 MiB) is refused on its own and the
        // others are signed again without it.
        var signed = [VerifiedOp]()
        while !creates.isEmpty {
            let requests = creates.map(\.request)
            let stamps = try reserveStamps(requests.count, now: now)
            do {
                signed = try signedCreates(requests, stamps: stamps, now: now)
                break
            } catch {
                guard let refusal = error.cause as? BulkPutRefusal, !refusal.failures.isEmpty else { throw error }
                for failure in refusal.failures.sorted(by: { $0.index > $1.index }) {
                    let index = creates[failure.index].index
                    outcomes[index].status = .refused(
                        STIXRefusal(.limits, "\(outcomes[index].id): \(failure.message)"))
                    outcomes[index].item = nil
                    creates.remove(at: failure.index)
                }
            }
        }
        if !signed.isEmpty {
            written += try commitCreates(signed, now: now).map(\.op)
            for (index, _) in creates { outcomes[index].status = .created }
        }
        // An earlier version superseded by one of the same request that was refused is
        // not held either: it is refused with it.
        for (position, entry) in objects.enumerated() where outcomes[entry.index].status == .superseded {
            guard let chosen = latest[entry.object.id], chosen != position,
                case .refused(let refusal) = outcomes[objects[chosen].index].status
            else { continue }
            outcomes[entry.index].status = .refused(
                STIXRefusal(
                    refusal.code,
                    "\(entry.object.id): a later version in the same request was refused: \(refusal.message)"))
        }
        return (outcomes, written)
    }
}

extension JSONValue {
    /// The `id` property of a JSON object, if it has a string one.
    public var stixID: String? { objectID }

    /// The `id` property of a JSON object, if it has a string one.
    var objectID: String? {
        guard case .object(let properties) = self else { return nil }
        return properties["id"]?.stringValue
    }
}
