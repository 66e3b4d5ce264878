import Crypto
public import Foundation
public import LiaisonCore

/// How STIX 2.1 objects become Liaison items and back (docs/stix.md). Pure: it decides, the
/// node writes.
///
/// An object is one item of a collection: every top-level property but its markings is a
/// field of the same name holding the property's JSON; tags `stix`, `stix-type:TYPE` and
/// `stix-id:ID` find it. The item's id is derived from the STIX id and the node that takes
/// it in, so every later version of the object is a change of the same item, and taking the
/// same object in twice writes nothing.
public struct STIXImport: Sendable {
    /// The collection new items go to.
    public var collection: String
    /// This node's federation (Liaison markings name its partners).
    public var federation: String
    /// Liaison marking definitions the request carried, by id (or why one is refused).
    var handlings: [String: Result<STIXMarkings.Handling, STIXRefusal>] = [:]
    /// For objects without a Liaison marking: their classification (nil: the ladder's lowest).
    public var classification: String?
    /// For objects without a Liaison marking that TLP lets go to partners (CLEAR, GREEN) or
    /// that carry no marking: whom they are released to, instead of every partner (CLEAR,
    /// GREEN) or no one (unmarked). AMBER, AMBER+STRICT and RED stay at this node whatever
    /// this says.
    public var releasableTo: [String]?
    /// Whether the objects come from a feed (another organisation's server): a feed's objects
    /// are marked by TLP and the feed's settings only; a Liaison marking in one is refused
    /// (anyone may write one naming this federation).
    public var fromFeed = false
    /// This node, as REL TO names it: a new item's Liaison marking must release it here.
    public var me: Recipient?
    /// Whom the fields of the item held for the object being judged are withheld from.
    var heldWithholding: [String: [String]] = [:]

    /// The tag every item holding a STIX object carries.
    public static let tag = "stix"
    /// What a property's field is set to when a later version drops the property (STIX
    /// never has null values), so the item shows it absent.
    static let removed = JSONValue.null

    /// An import into `collection` at a node of `federation`; `definitions` are the marking
    /// definitions among the objects of the request (others are ignored).
    public init(collection: String, federation: String, definitions: [STIXObject] = []) {
        self.collection = collection
        self.federation = federation
        for definition in definitions where definition.type == "marking-definition" {
            do {
                if let handling = try STIXMarkings.Handling(definition: definition) {
                    handlings[definition.id] = .success(handling)
                }
            } catch {
                handlings[definition.id] = .failure(error)
            }
        }
    }

    /// The values of a request split into parts of about `size` (by index): every part
    /// holds the request's marking definitions (and values that are not objects with an id
    /// of their own go with the first part), and every version of one object falls in one
    /// part, so a part is judged as the whole request would be. A part exceeds `size` only
    /// by the definitions, or when one object has more versions than that.
    public static func parts(of values: [JSONValue], size: Int) -> [[Int]] {
        var shared = [Int]()
        var loose = [Int]()
        var groups = [[Int]]()
        var group = [String: Int]()
        for (index, value) in values.enumerated() {
            guard case .object(let properties) = value, let id = properties["id"]?.stringValue else {
                loose.append(index)
                continue
            }
            guard properties["type"]?.stringValue != "marking-definition",
                ![STIXMarkings.liaisonIdentity, STIXMarkings.liaisonExtension].contains(id)
            else {
                shared.append(index)
                continue
            }
            if let known = group[id] {
                groups[known].append(index)
            } else {
                group[id] = groups.count
                groups.append([index])
            }
        }
        var parts = [[Int]]()
        var current = loose
        for members in groups {
            if !current.isEmpty, current.count + members.count > max(size, 1) {
                parts.append(current)
                current = []
            }
            current += members
        }
        if !current.isEmpty || parts.isEmpty { parts.append(current) }
        return parts.map { (shared + $0).sorted() }
    }

    /// The 16 bytes that fix the id of the item holding STIX object `id`.
    public static func nonce(stixID id: String) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: Array("liaison/stix/item".utf8))
        hasher.update(data: Array(id.utf8))
        return Array(hasher.finalize().prefix(16))
    }

    /// The markings and withheld fields an object's markings give, or why they cannot be
    /// honoured. A Liaison marking of this federation states the markings exactly; without
    /// one, TLP decides (CLEAR and GREEN: every partner; AMBER, AMBER+STRICT, RED or no
    /// marking: this node only, ORCON for the last two), and the TLP level is kept as a
    /// caveat. Granular markings withhold top-level properties.
    ///
    /// `held` is the item this node holds for the object, if any: its Liaison marking is
    /// known without its definition (an object read from this node's TAXII server and posted
    /// back names it).
    /// `heldWithholding` is whom the held item's fields are withheld from: the granular
    /// markings an export of it names are known too.
    func handling(
        of object: STIXObject, held: ItemState? = nil, heldWithholding: [String: [String]] = [:]
    ) throws(STIXRefusal) -> (markings: Markings, withheld: [String: [String]]) {
        var importer = self
        importer.heldWithholding = heldWithholding
        if let held {
            var known = [STIXMarkings.Handling(federation: federation, markings: held.markings)]
            for names in Set(heldWithholding.values.map { Array(Set($0)).sorted() }) {
                known.append(
                    STIXMarkings.Handling(federation: federation, markings: held.markings, withheldFrom: names))
            }
            for handling in known where importer.handlings[handling.id] == nil {
                importer.handlings[handling.id] = .success(handling)
            }
        }
        return try importer.resolve(object)
    }

    private func resolve(_ object: STIXObject) throws(STIXRefusal) -> (markings: Markings, withheld: [String: [String]])
    {
        var tlp: STIXMarkings.TLP?
        var stated: [STIXMarkings.Handling] = []
        for ref in object.markingRefs {
            if let level = STIXMarkings.TLP(id: ref) {
                tlp = max(tlp ?? level, level)
            } else if let handling = try liaisonHandling(ref, for: object) {
                stated.append(handling)
            } else {
                throw STIXRefusal(
                    .unknownMarking,
                    "\(object.id): marking \(ref) is neither TLP nor a Liaison marking of this request; Liaison does not store an object with markings it cannot honour"
                )
            }
        }
        guard stated.count <= 1 else {
            throw STIXRefusal(.unsupportedMarking, "\(object.id): more than one Liaison marking on one object")
        }
        var markings: Markings
        if let handling = stated.first {
            guard handling.withheldFrom.isEmpty else {
                throw STIXRefusal(
                    .unsupportedMarking,
                    "\(object.id): a Liaison marking with withheld_from withholds properties; it is named in granular_markings, not object_marking_refs"
                )
            }
            guard !fromFeed else {
                throw STIXRefusal(
                    .foreignMarking,
                    "\(object.id): a feed's objects are marked by TLP and the feed's settings; a Liaison marking is taken only from this federation's own tools"
                )
            }
            markings = handling.markings
            if let tlp, !markings.caveats.contains(tlp.caveat) {
                throw STIXRefusal(
                    .unsupportedMarking,
                    "\(object.id): its Liaison marking does not carry the \(tlp.caveat) it is also marked with")
            }
            // Never weaker than its TLP level.
            if let tlp, tlp >= .amber, !markings.releasableTo.isEmpty {
                throw STIXRefusal(
                    .unsupportedMarking, "\(object.id): its Liaison marking releases a \(tlp.caveat) object to partners"
                )
            }
            if let tlp, tlp >= .amberStrict, !markings.orcon {
                throw STIXRefusal(
                    .unsupportedMarking, "\(object.id): its Liaison marking drops the ORCON of \(tlp.caveat)")
            }
        } else {
            let shares = tlp.map(\.sharesWithFederation) ?? true
            let audience = shares ? (releasableTo ?? (tlp == nil ? [] : [Markings.everyone])) : []
            markings = Markings(
                classification: classification ?? "", releasableTo: audience,
                orcon: (tlp ?? .clear) >= .amberStrict, caveats: tlp.map { [$0.caveat] } ?? [])
        }
        // Granular markings: a property withheld from partners, or held more strictly.
        var withheld: [String: [String]] = [:]
        if let granular = object.properties["granular_markings"] {
            guard case .array(let entries) = granular else {
                throw STIXRefusal(.invalid, "\(object.id): 'granular_markings' must be a list")
            }
            for entry in entries {
                guard case .object(let fields) = entry, case .array(let selectors)? = fields["selectors"] else {
                    throw STIXRefusal(.invalid, "\(object.id): a granular marking needs 'selectors'")
                }
                guard let refValue = fields["marking_ref"] else { continue }  // a `lang` entry
                guard let ref = refValue.stringValue else {
                    throw STIXRefusal(.invalid, "\(object.id): a granular marking's marking_ref must be an id")
                }
                var names: [String]
                if let level = STIXMarkings.TLP(id: ref) {
                    // The object's own level: its TLP caveat, or, without one, the weakest (so a
                    // stricter property is withheld).
                    // (An object that stays here is withheld too: a later broadening by the
                    // operator must not release the property.)
                    let base = markings.caveats.compactMap(STIXMarkings.TLP.init(caveat:)).max() ?? .clear
                    guard level > base, level > .green else { continue }
                    names = [Markings.everyone]
                } else if let handling = try liaisonHandling(ref, for: object) {
                    guard !fromFeed else {
                        throw STIXRefusal(
                            .foreignMarking,
                            "\(object.id): a feed's objects are marked by TLP and the feed's settings; a Liaison granular marking is taken only from this federation's own tools"
                        )
                    }
                    // The object's own markings (its classification, when TLP alone marks it,
                    // is the ladder's lowest, which the node fills in).
                    var own = handling.markings
                    if markings.classification.isEmpty { own.classification = "" }
                    guard own == markings, !handling.withheldFrom.isEmpty else {
                        throw STIXRefusal(
                            .unsupportedMarking,
                            "\(object.id): a granular Liaison marking may only withhold a property from partners, under the object's own markings"
                        )
                    }
                    // A property the federation withholds from this node (by its name, a group
                    // of it, or `ALL`) is not this node's to take in: only the node that holds
                    // it so already (the object posted back) takes it.
                    if let me, me.isNamed(in: handling.withheldFrom) {
                        for selector in selectors {
                            let path = selector.stringValue ?? ""
                            guard !Set(handling.withheldFrom).isSubset(of: heldWithholding[path] ?? []) else {
                                continue
                            }
                            throw STIXRefusal(
                                .unsupportedMarking,
                                "\(object.id): its property '\(path)' is withheld from \(handling.withheldFrom.joined(separator: ", ")), which names \(me.name); only a node it may reach takes it in"
                            )
                        }
                    }
                    names = handling.withheldFrom
                } else {
                    throw STIXRefusal(.unknownMarking, "\(object.id): granular marking \(ref) is not one Liaison knows")
                }
                for selector in selectors {
                    guard let path = selector.stringValue, object.properties[path] != nil else {
                        throw STIXRefusal(
                            .unsupportedMarking,
                            "\(object.id): granular selector \(selector.stringValue ?? "?") is not a top-level property of the object; Liaison withholds whole properties"
                        )
                    }
                    guard !["id", "type", "spec_version", "created", "modified"].contains(path) else {
                        throw STIXRefusal(.unsupportedMarking, "\(object.id): '\(path)' cannot be withheld")
                    }
                    names = Array(Set(names).union(withheld[path] ?? [])).sorted()
                    withheld[path] = names
                }
            }
        }
        return (markings, withheld)
    }

    private func liaisonHandling(_ ref: String, for object: STIXObject) throws(STIXRefusal) -> STIXMarkings.Handling? {
        guard let found = handlings[ref] else { return nil }
        switch found {
        case .failure(let refusal): throw refusal
        case .success(let handling):
            guard handling.federation == federation else {
                throw STIXRefusal(
                    .foreignMarking,
                    "\(object.id): its Liaison marking is of federation '\(handling.federation)', not '\(federation)'")
            }
            return handling
        }
    }

    /// The fields an object is held in: every property but its markings (a `lang` granular
    /// entry stays, in `granular_markings`).
    static func fields(of object: STIXObject) -> [(name: String, value: Data)] {
        var out = [(name: String, value: Data)]()
        for name in object.properties.keys.sorted() where name != "object_marking_refs" {
            var value = object.properties[name]!
            if name == "granular_markings", case .array(let entries) = value {
                let lang = entries.filter {
                    if case .object(let entry) = $0 { return entry["marking_ref"] == nil }
                    return false
                }
                guard !lang.isEmpty else { continue }
                value = .array(lang)
            }
            out.append((name, value.jsonText))
        }
        return out
    }

    /// The tags of the item holding `object` (`decide` refuses an object whose tags would
    /// not be valid names: it could not be found by id).
    static func tags(of object: STIXObject) -> [String] {
        [tag, "stix-type:\(object.type)", "stix-id:\(object.id)"]
    }

    /// What taking `object` in does, given the item this node already holds for it (the one
    /// of id `ItemID(originator: me, nonce: nonce(stixID:))`, or nil).
    public enum Decision: Sendable {
        /// A new item.
        case create(PutRequest)
        /// A later version: these fields change (a property dropped becomes JSON null).
        case update(fields: [(name: String, value: Data)], withheld: [String: [String]])
        /// The same version, already held.
        case unchanged
        /// An earlier version than the one held: not written (the item keeps the later one).
        case stale(held: String)
    }

    /// Decides what taking `object` in does; throws why it is refused. `heldWithholding` is
    /// whom the fields of `existing` are withheld from (`LocalNode.withholding(of:)`).
    public func decide(
        _ object: STIXObject, existing: ItemState?, heldWithholding: [String: [String]] = [:]
    ) throws(STIXRefusal) -> Decision {
        guard object.type != "marking-definition" else {
            throw STIXRefusal(
                .invalid,
                "\(object.id): marking definitions are not stored as objects; they mark the objects that name them")
        }
        guard Self.tags(of: object).allSatisfy(Names.isValid) else {
            throw STIXRefusal(
                .limits,
                "\(object.id): types longer than 82 characters are not taken (the object could not be found by id)")
        }
        let (markings, withheld) = try handling(of: object, held: existing, heldWithholding: heldWithholding)
        let fields = Self.fields(of: object)
        guard let existing else {
            // A new item this node originates: its Liaison marking must release the object to
            // this node, and not be ORCON (only the originator may pass that on).
            if object.markingRefs.contains(where: { handlings[$0] != nil }) {
                if let me, !me.isNamed(in: markings.releasableTo) {
                    throw STIXRefusal(
                        .unsupportedMarking,
                        "\(object.id): its Liaison marking does not release it to \(me.name); only a node it is released to takes it in"
                    )
                }
                if markings.orcon {
                    throw STIXRefusal(
                        .unsupportedMarking,
                        "\(object.id): its Liaison marking is ORCON; only its originator may pass it on")
                }
            }
            return .create(
                PutRequest(
                    collection: collection,
                    classification: markings.classification.isEmpty ? nil : markings.classification,
                    releasableTo: markings.releasableTo, orcon: markings.orcon, caveats: markings.caveats,
                    expiresAt: markings.expiresAtMillis.map { Date(timeIntervalSince1970: Double($0) / 1000) },
                    tags: Self.tags(of: object), fields: fields, withheld: withheld,
                    nonce: Self.nonce(stixID: object.id)))
        }
        guard existing.collection == collection else {
            throw STIXRefusal(
                .conflictingVersion,
                "\(object.id): this node holds it in collection \(existing.collection), not \(collection); take its versions in there"
            )
        }
        guard !existing.isWithdrawn else {
            throw STIXRefusal(
                .conflictingVersion,
                "\(object.id): the item that held it was deleted or recalled; it is not taken in again")
        }
        var wanted = markings
        if wanted.classification.isEmpty { wanted.classification = existing.markings.classification }
        guard wanted == existing.markings else {
            throw STIXRefusal(
                .markingsChanged,
                "\(object.id): version \(object.modified ?? "-") has other markings than the item; change the item's markings with 'liaison mark' first, then take it in"
            )
        }
        var held = [String: Data]()
        for (name, register) in existing.fields {
            if let value = register.value, value != Self.removed.jsonText { held[name] = value }
        }
        let incoming = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        // The same content is the same version only if the item already withholds what the
        // object's granular markings withhold (else it would be held weaker than marked).
        let uncovered = withheld.keys.sorted().filter { name in
            !Set(withheld[name]!).isSubset(of: heldWithholding[name] ?? [])
        }
        if incoming == held, !uncovered.isEmpty {
            throw STIXRefusal(
                .markingsChanged,
                "\(object.id): version \(object.modified ?? "-") is held without withholding \(uncovered.joined(separator: ", ")) as its granular markings do; only a later version can withhold more"
            )
        }
        if incoming == held { return .unchanged }
        if object.isObservable {
            throw STIXRefusal(
                .conflictingVersion,
                "\(object.id): an observable with this id and other content is held; observables have no versions")
        }
        let heldModified = held["modified"].flatMap { JSONValue(jsonText: $0)?.stringValue }
        guard let mine = object.modified.flatMap(STIXTimestamp.init),
            let theirs = heldModified.flatMap(STIXTimestamp.init)
        else {
            throw STIXRefusal(.conflictingVersion, "\(object.id): the held item has no 'modified' to compare with")
        }
        if mine < theirs { return .stale(held: heldModified!) }
        guard theirs < mine else {
            throw STIXRefusal(
                .conflictingVersion,
                "\(object.id): version \(object.modified!) is held with other content; a new version needs a later 'modified'"
            )
        }
        // A property that changed, and one the version withholds (written again with its
        // withholding: a write only ever adds to whom a field is withheld from).
        var changes = fields.filter { held[$0.name] != $0.value || withheld[$0.name] != nil }
        for name in held.keys.sorted() where incoming[name] == nil {
            changes.append((name, Self.removed.jsonText))
        }
        return .update(fields: changes, withheld: withheld.filter { name, _ in changes.contains { $0.name == name } })
    }
}

/// An item shown as the STIX object it holds (docs/stix.md, "Export").
public enum STIXExport {
    /// The object `item` holds, as this node holds it (a property withheld from this node,
    /// or dropped by a later version, is absent), marked with its TLP level and its Liaison
    /// marking; and the marking definitions those refs name. Nil when the item holds no
    /// STIX object.
    /// `markings` stand for the item's (an earlier version shown under the current markings).
    /// `withheld` is whom each field is withheld from (`LocalNode.withholding(of:)`): each
    /// set of names becomes a granular Liaison marking on those properties, so a node that
    /// takes the object in withholds them from the same names.
    public static func object(
        of item: ItemState, federation: String, markings given: Markings? = nil,
        withheld: [String: [String]] = [:]
    ) -> (object: [String: JSONValue], definitions: [[String: JSONValue]])? {
        let markings = given ?? item.markings
        guard item.tags.contains(STIXImport.tag) else { return nil }
        var object = [String: JSONValue]()
        for (name, register) in item.fields {
            guard let text = register.value, let value = JSONValue(jsonText: text), value != .null else { continue }
            object[name] = value
        }
        // Only a STIX object bound to its item (the item's id derived from its originator and
        // the STIX id, as taking it in makes it), valid as STIX, and not a marking definition:
        // a partner's plain item with STIX-looking fields is not served as one.
        guard let id = object["id"]?.stringValue, let type = object["type"]?.stringValue,
            type != "marking-definition",
            item.id == ItemID(originator: item.originator, nonce: STIXImport.nonce(stixID: id)),
            (try? STIXObject(.object(object))) != nil
        else { return nil }
        var refs = [JSONValue]()
        var definitions = [[String: JSONValue]]()
        if let tlp = markings.caveats.compactMap(STIXMarkings.TLP.init(caveat:)).max() {
            refs.append(.string(tlp.id))
            definitions.append(tlp.definition)
        }
        let handling = STIXMarkings.Handling(federation: federation, markings: markings)
        refs.append(.string(handling.id))
        definitions.append(handling.definition)
        object["object_marking_refs"] = .array(refs)
        // Withheld properties, grouped by whom they are withheld from (a `lang` entry the
        // object carried stays first).
        var bySet = [[String]: [String]]()
        for (name, names) in withheld where object[name] != nil && !names.isEmpty {
            bySet[Array(Set(names)).sorted(), default: []].append(name)
        }
        if !bySet.isEmpty {
            var granular = [JSONValue]()
            if case .array(let kept)? = object["granular_markings"] { granular = kept }
            for (names, properties) in bySet.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                let withholding = STIXMarkings.Handling(federation: federation, markings: markings, withheldFrom: names)
                granular.append(
                    .object([
                        "marking_ref": .string(withholding.id),
                        "selectors": .array(properties.sorted().map(JSONValue.string)),
                    ]))
                definitions.append(withholding.definition)
            }
            object["granular_markings"] = .array(granular)
        }
        return (object, definitions)
    }
}
