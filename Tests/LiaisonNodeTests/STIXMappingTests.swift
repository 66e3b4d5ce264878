import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonStore
import LiaisonTestSupport
import Testing

/// STIX 2.1 objects taken in as items and shown back (docs/stix.md), at a rendered node of
/// the demo federation: markings are honoured or the object is refused, never stored weaker.
@Suite("STIX objects as items")
struct STIXMappingTests {
    static let green = STIXMarkings.TLP.green.id
    static let amber = STIXMarkings.TLP.amber.id
    static let red = STIXMarkings.TLP.red.id

    static func node(_ root: URL, _ name: String = "alpha") throws -> LocalNode {
        if !FileManager.default.fileExists(atPath: root.appendingPathComponent(name).path) {
            _ = try TopologyTests.demo().render(into: root, now: Date())
        }
        return try LocalNode.open(NodeDirectory(path: root.appendingPathComponent(name).path))
    }

    static func indicator(
        _ uuid: String, modified: String = "2026-01-01T00:00:00.000Z", name: String = "bad ip",
        markings: [String] = [], extra: [String: JSONValue] = [:]
    ) -> JSONValue {
        var object: [String: JSONValue] = [
            "type": .string("indicator"), "spec_version": .string("2.1"), "id": .string("indicator--\(uuid)"),
            "created": .string("2026-01-01T00:00:00.000Z"), "modified": .string(modified), "name": .string(name),
            "pattern": .string("[ipv4-addr:value = '198.51.100.1']"), "pattern_type": .string("stix"),
            "valid_from": .string("2026-01-01T00:00:00Z"),
        ]
        if !markings.isEmpty { object["object_marking_refs"] = .array(markings.map(JSONValue.string)) }
        for (key, value) in extra { object[key] = value }
        return .object(object)
    }

    /// A `granular_markings` list: each property withheld under the marking named.
    static func granular(_ refs: [String: String]) -> JSONValue {
        .array(
            refs.keys.sorted().map { path in
                .object(["selectors": .array([.string(path)]), "marking_ref": .string(refs[path]!)])
            })
    }

    static let ids = (0..<10).map { "00000000-0000-4000-8000-00000000000\($0)" }

    @Test(
        "TLP decides where an object goes: CLEAR and GREEN to every partner, AMBER and unmarked stay here, AMBER+STRICT and RED also ORCON; the level is kept as a caveat"
    )
    func tlp() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let node = try Self.node(root)
        let cases: [(refs: [String], relTo: [String], orcon: Bool, caveats: [String])] = [
            ([STIXMarkings.TLP.clear.id], ["ALL"], false, ["TLP:CLEAR"]),
            ([Self.green], ["ALL"], false, ["TLP:GREEN"]),
            (["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"], ["ALL"], false, ["TLP:GREEN"]),  // TLP 1.0
            ([Self.amber], [], false, ["TLP:AMBER"]),
            ([STIXMarkings.TLP.amberStrict.id], [], true, ["TLP:AMBER+STRICT"]),
            ([Self.red], [], true, ["TLP:RED"]),
            ([Self.green, Self.red], [], true, ["TLP:RED"]),  // the strictest wins
            ([], [], false, []),
        ]
        let values = cases.enumerated().map { Self.indicator(Self.ids[$0.offset], markings: $0.element.refs) }
        let (outcomes, _) = try node.importSTIX(values, collection: "stix", now: Date())
        #expect(outcomes.allSatisfy { $0.status == .created }, "\(outcomes)")
        for (index, expected) in cases.enumerated() {
            let itemID = try #require(outcomes[index].item)
            let item = try #require(try node.store.item(itemID))
            #expect(item.markings.releasableTo == expected.relTo, "\(expected.refs)")
            #expect(item.markings.orcon == expected.orcon, "\(expected.refs)")
            #expect(item.markings.caveats == expected.caveats, "\(expected.refs)")
            #expect(item.markings.classification == "UNCLASSIFIED")
            #expect(item.tags.contains("stix") && item.tags.contains("stix-type:indicator"))
            #expect(item.id == node.stixItemID("indicator--\(Self.ids[index])"))
            // Shown back with the same TLP level.
            let shown = try #require(STIXExport.object(of: item, federation: node.federationName))
            let refs = shown.object["object_marking_refs"]
            if let caveat = expected.caveats.first {
                let level = try #require(STIXMarkings.TLP(caveat: caveat))
                #expect(refs == .array([.string(level.id), .string(shown.definitions.last!["id"]!.stringValue!)]))
            }
            #expect(shown.object["name"] == .string("bad ip"))
        }
    }

    @Test(
        "an object with a marking Liaison cannot honour, or not valid STIX, is refused with the reason and nothing of it is written; the rest of the request is taken"
    )
    func refusals() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let node = try Self.node(root)
        let before = try node.store.highestSequence()
        let statement = JSONValue.object([
            "type": .string("marking-definition"), "spec_version": .string("2.1"),
            "id": .string("marking-definition--22222222-2222-4222-8222-222222222222"),
            "created": .string("2026-01-01T00:00:00.000Z"), "definition_type": .string("statement"),
            "definition": .object(["statement": .string("do not share")]),
        ])
        let values: [JSONValue] = [
            Self.indicator(Self.ids[0], markings: [Self.green]),
            Self.indicator(Self.ids[1], markings: ["marking-definition--11111111-1111-4111-8111-111111111111"]),
            Self.indicator(Self.ids[2], markings: ["marking-definition--22222222-2222-4222-8222-222222222222"]),
            statement,
            Self.indicator(Self.ids[3], extra: ["spec_version": .string("2.0")]),
            Self.indicator(Self.ids[4], extra: ["description": .null]),
            .object(["type": .string("indicator"), "id": .string("indicator--not-a-uuid")]),
            Self.indicator(Self.ids[5], modified: "2025-01-01T00:00:00.000Z"),  // before `created`
            Self.indicator(
                Self.ids[6], markings: [Self.green],
                extra: [
                    "granular_markings": .array([
                        .object([
                            "selectors": .array([.string("external_references.[0].url")]),
                            "marking_ref": .string(Self.red),
                        ])
                    ])
                ]),
            .string("not an object"),
        ]
        let (outcomes, ops) = try node.importSTIX(values, collection: "stix", now: Date())
        #expect(outcomes.map(\.succeeded) == [true, false, false, true, false, false, false, false, false, false])
        func code(_ index: Int) -> STIXRefusal.Code? {
            if case .refused(let refusal) = outcomes[index].status { return refusal.code }
            return nil
        }
        #expect(code(1) == .unknownMarking)
        #expect(code(2) == .unknownMarking, "a statement marking cannot be enforced, so it is not taken")
        #expect(code(4) == .invalid && code(5) == .invalid && code(6) == .invalid && code(7) == .invalid)
        #expect(code(8) == .unsupportedMarking, "a nested selector would be withheld only in part")
        #expect(outcomes[3].status == .definition)
        #expect(ops.count == 1)
        #expect(try node.store.highestSequence() == before + 1, "a refused object wrote something")
        for index in 1..<7 {
            #expect(try node.store.item(node.stixItemID("indicator--\(Self.ids[index])")) == nil)
        }
    }

    @Test(
        "a later version changes the same item; the same version or an earlier one writes nothing; the same version with other content is refused; a property a version drops is gone from what is shown"
    )
    func versions() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let node = try Self.node(root)
        let first = Self.indicator(
            Self.ids[0], modified: "2026-01-02T00:00:00.000Z", markings: [Self.green],
            extra: ["description": .string("seen at the port")])
        _ = try node.importSTIX([first], collection: "stix", now: Date())
        let id = node.stixItemID("indicator--\(Self.ids[0])")
        let sequence = try node.store.highestSequence()

        var (outcomes, _) = try node.importSTIX([first], collection: "stix", now: Date())
        #expect(outcomes[0].status == .unchanged)
        (outcomes, _) = try node.importSTIX(
            [Self.indicator(Self.ids[0], modified: "2026-01-01T23:59:59.999Z", markings: [Self.green])],
            collection: "stix", now: Date())
        #expect(outcomes[0].status == .superseded)
        (outcomes, _) = try node.importSTIX(
            [
                Self.indicator(
                    Self.ids[0], modified: "2026-01-02T00:00:00.000Z", name: "other", markings: [Self.green],
                    extra: ["description": .string("seen at the port")])
            ], collection: "stix", now: Date())
        if case .refused(let refusal) = outcomes[0].status {
            #expect(refusal.code == .conflictingVersion)
        } else {
            Issue.record("the same version with other content was taken: \(outcomes[0])")
        }
        #expect(try node.store.highestSequence() == sequence)

        // Microseconds later: a later version, without `description`.
        (outcomes, _) = try node.importSTIX(
            [Self.indicator(Self.ids[0], modified: "2026-01-02T00:00:00.000001Z", name: "v2", markings: [Self.green])],
            collection: "stix", now: Date())
        #expect(outcomes[0].status == .updated)
        let item = try #require(try node.store.item(id))
        let shown = try #require(STIXExport.object(of: item, federation: node.federationName)).object
        #expect(shown["name"] == .string("v2"))
        #expect(shown["modified"] == .string("2026-01-02T00:00:00.000001Z"))
        #expect(shown["description"] == nil, "a dropped property is still shown")

        // A version that changes the markings is refused: the operator changes them.
        (outcomes, _) = try node.importSTIX(
            [Self.indicator(Self.ids[0], modified: "2026-03-01T00:00:00.000Z", markings: [Self.red])],
            collection: "stix", now: Date())
        if case .refused(let refusal) = outcomes[0].status {
            #expect(refusal.code == .markingsChanged)
        } else {
            Issue.record("a version with other markings was taken: \(outcomes[0])")
        }
        // In one request, only the latest version of an object is written.
        (outcomes, _) = try node.importSTIX(
            [
                Self.indicator(Self.ids[1], modified: "2026-02-01T00:00:00.000Z", name: "late", markings: [Self.green]),
                Self.indicator(
                    Self.ids[1], modified: "2026-01-01T00:00:00.000Z", name: "early", markings: [Self.green]),
            ], collection: "stix", now: Date())
        #expect(outcomes.map(\.status) == [.created, .superseded])
        let late = try #require(try node.store.item(node.stixItemID("indicator--\(Self.ids[1])")))
        #expect(STIXExport.object(of: late, federation: node.federationName)?.object["name"] == .string("late"))
    }

    @Test(
        "a Liaison marking states the markings exactly: shown at one node and taken in at another of the federation it releases the object to, the item has the same markings; one of another federation, naming an unknown partner, not releasing to the node, ORCON, weaker than its TLP, forged, or in a feed is refused"
    )
    func liaisonMarkings() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let alpha = try Self.node(root, "alpha")
        let stated = STIXMarkings.Handling(
            federation: "demo",
            markings: Markings(classification: "SECRET", releasableTo: ["EAST", "bravo"], caveats: ["TLP:GREEN"]))
        let (taken, _) = try alpha.importSTIX(
            [.object(stated.definition), Self.indicator(Self.ids[0], markings: [Self.green, stated.id])],
            collection: "stix", now: Date())
        #expect(taken.last?.status == .created, "\(taken)")
        let item = try #require(try alpha.store.item(alpha.stixItemID("indicator--\(Self.ids[0])")))
        #expect(item.markings.classification == "SECRET" && item.markings.releasableTo == ["EAST", "bravo"])
        let shown = try #require(STIXExport.object(of: item, federation: "demo"))
        let values = shown.definitions.map(JSONValue.object) + [.object(shown.object)]

        let bravo = try Self.node(root, "bravo")
        let (outcomes, _) = try bravo.importSTIX(values, collection: "stix", now: Date())
        #expect(outcomes.last?.status == .created, "\(outcomes)")
        let copy = try #require(try bravo.store.item(bravo.stixItemID("indicator--\(Self.ids[0])")))
        #expect(copy.markings == item.markings)

        func refusal(
            _ markings: Markings, federation: String = "demo", refs: [String] = [], fromFeed: Bool = false, _ n: Int
        ) throws -> STIXRefusal.Code? {
            let handling = STIXMarkings.Handling(federation: federation, markings: markings)
            let (result, _) = try bravo.importSTIX(
                [.object(handling.definition), Self.indicator(Self.ids[n], markings: refs + [handling.id])],
                collection: "stix", fromFeed: fromFeed, now: Date())
            if case .refused(let refusal) = result[1].status { return refusal.code }
            return nil
        }
        let plain = Markings(classification: "UNCLASSIFIED", releasableTo: ["bravo"])
        #expect(try refusal(plain, federation: "other", 1) == .foreignMarking)
        #expect(try refusal(Markings(classification: "UNCLASSIFIED", releasableTo: ["zulu", "bravo"]), 2) == .refused)
        #expect(
            try refusal(Markings(classification: "UNCLASSIFIED", releasableTo: ["charlie"]), 3) == .unsupportedMarking,
            "an object not released to bravo was taken in there")
        #expect(
            try refusal(Markings(classification: "UNCLASSIFIED", releasableTo: ["bravo"], orcon: true), 4)
                == .unsupportedMarking, "an ORCON object was re-originated")
        #expect(
            try refusal(
                Markings(classification: "UNCLASSIFIED", releasableTo: ["bravo"], caveats: ["TLP:RED"]),
                refs: [Self.red],
                5) == .unsupportedMarking, "a Liaison marking weaker than TLP:RED was taken")
        #expect(try refusal(plain, fromFeed: true, 6) == .foreignMarking, "a feed set its own Liaison marking")

        // A Liaison marking whose id does not match its content is refused.
        var forged = stated.definition
        forged["id"] = .string("marking-definition--33333333-3333-4333-8333-333333333333")
        let (result, _) = try bravo.importSTIX(
            [
                .object(forged),
                Self.indicator(Self.ids[7], markings: ["marking-definition--33333333-3333-4333-8333-333333333333"]),
            ], collection: "stix", now: Date())
        #expect(!result[1].succeeded)
    }

    @Test(
        "only items bound to their STIX id are shown as STIX objects; a version for another collection than its item's is refused; an expiry past the year 9999 is shown, not a crash"
    )
    func bindingAndCollections() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let node = try Self.node(root)
        // A plain item with STIX-looking fields (as a partner could put): not a STIX object.
        let (plain, _) = try node.put(
            PutRequest(
                collection: "stix", releasableTo: ["ALL"], tags: ["stix"],
                fields: [
                    ("type", JSONText.string("indicator")), ("id", JSONText.string("indicator--\(Self.ids[0])")),
                    ("spec_version", JSONText.string("2.1")), ("created", JSONText.string("2026-01-01T00:00:00.000Z")),
                    ("modified", JSONText.string("2026-01-01T00:00:00.000Z")),
                ]),
            now: Date())
        #expect(STIXExport.object(of: plain, federation: "demo") == nil)

        _ = try node.importSTIX(
            [Self.indicator(Self.ids[1], markings: [Self.green])], collection: "indicators", now: Date())
        let (outcomes, _) = try node.importSTIX(
            [Self.indicator(Self.ids[1], modified: "2026-02-01T00:00:00.000Z", markings: [Self.green])],
            collection: "stix", now: Date())
        if case .refused(let refusal) = outcomes[0].status {
            #expect(refusal.code == .conflictingVersion)
        } else {
            Issue.record("a version for another collection changed the item: \(outcomes[0])")
        }

        let far = STIXMarkings.Handling(
            federation: "demo", markings: Markings(classification: "UNCLASSIFIED", expiresAtMillis: Int64.max))
        #expect(far.definition["id"] != nil)
        #expect(STIXTimestamp(micros: Int64.min).seconds == 0)
    }

    @Test(
        "a granular marking withholds a top-level property: TLP stricter than the object's from every partner, a Liaison one from the partners it names"
    )
    func granular() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let node = try Self.node(root)
        let handling = STIXMarkings.Handling(
            federation: "demo",
            markings: Markings(classification: "UNCLASSIFIED", releasableTo: ["ALL"], caveats: ["TLP:GREEN"]),
            withheldFrom: ["charlie"])
        let object = Self.indicator(
            Self.ids[0], markings: [Self.green],
            extra: [
                "description": .string("from agent K"), "labels": .array([.string("apt")]),
                "granular_markings": .array([
                    .object(["selectors": .array([.string("description")]), "marking_ref": .string(Self.amber)]),
                    .object(["selectors": .array([.string("labels")]), "marking_ref": .string(handling.id)]),
                ]),
            ])
        let (outcomes, ops) = try node.importSTIX(
            [.object(handling.definition), object], collection: "stix", now: Date())
        #expect(outcomes.map(\.succeeded) == [true, true], "\(outcomes)")
        let create = try #require(ops.first)
        func withheld(_ field: String) -> [String]? {
            create.body.change.fieldCommitments.first { $0.name == field }?.withheldFrom
        }
        #expect(withheld("description") == ["ALL"])
        #expect(withheld("labels") == ["charlie"])
        #expect(withheld("name") == [])
        // Identity properties are never withheld.
        let bad = Self.indicator(
            Self.ids[1], markings: [Self.green],
            extra: [
                "granular_markings": .array([
                    .object(["selectors": .array([.string("modified")]), "marking_ref": .string(Self.red)])
                ])
            ])
        let (refused, _) = try node.importSTIX([bad], collection: "stix", now: Date())
        #expect(!refused[0].succeeded)
    }

    @Test(
        "an export marks withheld properties with granular Liaison markings: taken in at another node they stay withheld from the same names, posted back they are the same version; a property withheld from the node taking it in (by name or ALL), newly withheld at the same version, or marked so by a feed is refused"
    )
    func granularOnExport() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let alpha = try Self.node(root, "alpha")
        let markings = Markings(classification: "UNCLASSIFIED", releasableTo: ["ALL"], caveats: ["TLP:GREEN"])
        let fromCharlie = STIXMarkings.Handling(federation: "demo", markings: markings, withheldFrom: ["charlie"])
        let object = Self.indicator(
            Self.ids[0], markings: [Self.green],
            extra: [
                "description": .string("from agent K"), "labels": .array([.string("apt")]),
                "granular_markings": Self.granular(["description": Self.amber, "labels": fromCharlie.id]),
            ])
        let (taken, _) = try alpha.importSTIX(
            [.object(fromCharlie.definition), object], collection: "stix", now: Date())
        #expect(taken.map(\.succeeded) == [true, true], "\(taken)")
        let item = try #require(try alpha.store.item(alpha.stixItemID("indicator--\(Self.ids[0])")))
        let shown = try #require(
            STIXExport.object(of: item, federation: "demo", withheld: try alpha.withholding(of: item)))
        guard case .array(let granular)? = shown.object["granular_markings"] else {
            Issue.record("the export names no granular markings: \(shown.object)")
            return
        }
        #expect(granular.count == 2)
        #expect(shown.definitions.count == 4, "TLP, the object's own marking and two withholding markings")

        // At bravo: a property withheld from every partner (ALL names bravo too) is not
        // bravo's to take in; the object is refused, naming it.
        let bravo = try Self.node(root, "bravo")
        let values = shown.definitions.map(JSONValue.object) + [.object(shown.object)]
        let (outcomes, _) = try bravo.importSTIX(values, collection: "stix", now: Date())
        if case .refused(let refusal) = outcomes.last?.status {
            #expect(refusal.code == .unsupportedMarking && refusal.message.contains("'description'"), "\(refusal)")
        } else {
            Issue.record("a property withheld from ALL was taken in at bravo: \(outcomes)")
        }
        // An object whose property is withheld from charlie only: bravo takes it in, and
        // withholds the property from charlie as alpha does.
        let labelled = Self.indicator(
            Self.ids[3], markings: [Self.green],
            extra: [
                "labels": .array([.string("apt")]),
                "granular_markings": Self.granular(["labels": fromCharlie.id]),
            ])
        _ = try alpha.importSTIX([.object(fromCharlie.definition), labelled], collection: "stix", now: Date())
        let third = try #require(try alpha.store.item(alpha.stixItemID("indicator--\(Self.ids[3])")))
        let exported = try #require(
            STIXExport.object(of: third, federation: "demo", withheld: try alpha.withholding(of: third)))
        let (taken3, ops) = try bravo.importSTIX(
            exported.definitions.map(JSONValue.object) + [.object(exported.object)], collection: "stix", now: Date())
        #expect(taken3.last?.status == .created, "\(taken3)")
        let create = try #require(ops.first)
        func withheld(_ field: String) -> [String]? {
            create.body.change.fieldCommitments.first { $0.name == field }?.withheldFrom
        }
        #expect(withheld("labels") == ["charlie"])
        #expect(withheld("name") == [])

        // A feed may not use Liaison markings, granular ones included.
        let (fed, _) = try bravo.importSTIX(
            [
                .object(fromCharlie.definition),
                Self.indicator(
                    Self.ids[4], markings: [Self.green],
                    extra: [
                        "labels": .array([.string("apt")]),
                        "granular_markings": Self.granular(["labels": fromCharlie.id]),
                    ]),
            ], collection: "stix", fromFeed: true, now: Date())
        if case .refused(let refusal) = fed[1].status {
            #expect(refusal.code == .foreignMarking, "\(refusal)")
        } else {
            Issue.record("a feed's Liaison granular marking was taken: \(fed[1])")
        }

        // Posted back to alpha as read (no definitions with it): the version alpha holds.
        let (back, written) = try alpha.importSTIX([.object(shown.object)], collection: "stix", now: Date())
        #expect(back[0].status == .unchanged, "\(back)")
        #expect(written.isEmpty)

        // A property withheld from bravo by name is not bravo's to hold.
        let fromBravo = STIXMarkings.Handling(federation: "demo", markings: markings, withheldFrom: ["bravo"])
        let (refused, _) = try bravo.importSTIX(
            [
                .object(fromBravo.definition),
                Self.indicator(
                    Self.ids[1],
                    markings: [Self.green, STIXMarkings.Handling(federation: "demo", markings: markings).id],
                    extra: [
                        "labels": .array([.string("apt")]),
                        "granular_markings": Self.granular(["labels": fromBravo.id]),
                    ]),
                .object(STIXMarkings.Handling(federation: "demo", markings: markings).definition),
            ], collection: "stix", now: Date())
        if case .refused(let refusal) = refused[1].status {
            #expect(refusal.code == .unsupportedMarking, "\(refusal)")
        } else {
            Issue.record("a property withheld from bravo was taken in at bravo: \(refused[1])")
        }

        // The same version again, now withholding a property it did not: refused, not "held".
        _ = try alpha.importSTIX([Self.indicator(Self.ids[2], markings: [Self.green])], collection: "stix", now: Date())
        let (again, _) = try alpha.importSTIX(
            [
                .object(fromCharlie.definition),
                Self.indicator(
                    Self.ids[2], markings: [Self.green],
                    extra: [
                        "granular_markings": Self.granular(["name": fromCharlie.id])
                    ]),
            ], collection: "stix", now: Date())
        if case .refused(let refusal) = again[1].status {
            #expect(refusal.code == .markingsChanged, "\(refusal)")
        } else {
            Issue.record("the same version newly withholding a property was taken as held: \(again[1])")
        }
    }

    @Test(
        "markings are never dropped: a stricter property of an object with no TLP level is withheld, a version that newly withholds an unchanged property writes it withheld, a same version with other markings is refused"
    )
    func neverWeaker() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let node = try Self.node(root)
        let amberDescription = JSONValue.array([
            .object(["selectors": .array([.string("description")]), "marking_ref": .string(Self.amber)])
        ])
        // No TLP on the object, released by the operator's choice (a feed's --rel-to).
        var (outcomes, ops) = try node.importSTIX(
            [
                Self.indicator(
                    Self.ids[0], extra: ["description": .string("d"), "granular_markings": amberDescription])
            ], collection: "stix", releasableTo: ["bravo"], now: Date())
        #expect(outcomes[0].status == .created)
        #expect(ops.first?.body.change.fieldCommitments.first { $0.name == "description" }?.withheldFrom == ["ALL"])

        // A later version adds a granular marking to a property it does not change.
        _ = try node.importSTIX(
            [Self.indicator(Self.ids[1], markings: [Self.green], extra: ["description": .string("d")])],
            collection: "stix", now: Date())
        (outcomes, ops) = try node.importSTIX(
            [
                Self.indicator(
                    Self.ids[1], modified: "2026-02-01T00:00:00.000Z", markings: [Self.green],
                    extra: ["description": .string("d"), "granular_markings": amberDescription])
            ], collection: "stix", now: Date())
        #expect(outcomes[0].status == .updated)
        #expect(ops.first?.body.change.fieldCommitments.first { $0.name == "description" }?.withheldFrom == ["ALL"])

        // The same version with stricter markings is not "already held".
        (outcomes, _) = try node.importSTIX(
            [
                Self.indicator(
                    Self.ids[1], modified: "2026-02-01T00:00:00.000Z", markings: [Self.red],
                    extra: ["description": .string("d"), "granular_markings": amberDescription])
            ], collection: "stix", now: Date())
        if case .refused(let refusal) = outcomes[0].status {
            #expect(refusal.code == .markingsChanged)
        } else {
            Issue.record("the same version with stricter markings was taken as held: \(outcomes[0])")
        }
    }

    @Test(
        "an object too large for one op, or whose type is too long to be found by id, is refused on its own; the others are created"
    )
    func limits() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let node = try Self.node(root)
        let big = String(repeating: "x", count: 1_100_000)
        let longType = String(repeating: "t", count: 90)
        let (outcomes, _) = try node.importSTIX(
            [
                Self.indicator(Self.ids[0], markings: [Self.green]),
                Self.indicator(Self.ids[1], markings: [Self.green], extra: ["description": .string(big)]),
                .object([
                    "type": .string(longType), "spec_version": .string("2.1"),
                    "id": .string("\(longType)--\(Self.ids[2])"), "created": .string("2026-01-01T00:00:00.000Z"),
                    "modified": .string("2026-01-01T00:00:00.000Z"),
                ]),
                Self.indicator(Self.ids[3], markings: [Self.green]),
            ], collection: "stix", now: Date())
        #expect(outcomes.map(\.status.isCreated) == [true, false, false, true], "\(outcomes)")
        for index in [1, 2] {
            if case .refused(let refusal) = outcomes[index].status {
                #expect(refusal.code == .limits, "\(refusal)")
            }
        }
    }

    @Test("STIX timestamps are compared exactly, past milliseconds, and malformed ones are refused")
    func timestamps() {
        let a = STIXTimestamp("2026-01-01T00:00:00.000Z")
        let b = STIXTimestamp("2026-01-01T00:00:00.0000001Z")
        #expect(a != nil && b != nil && a! < b!)
        #expect(STIXTimestamp("2026-01-01T00:00:00Z") == a)
        #expect(STIXTimestamp("2024-02-29T12:34:56.789Z")?.seconds == 1_709_210_096)
        for bad in ["2026-01-01", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00.Z", "x"] {
            #expect(STIXTimestamp(bad) == nil, "\(bad)")
        }
        #expect(STIXTimestamp(micros: 1_709_210_096_789_000).text == "2024-02-29T12:34:56.789000Z")
    }
}

extension STIXOutcome.Status {
    var isCreated: Bool { self == .created }
}
