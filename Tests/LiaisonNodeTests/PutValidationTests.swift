import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonStore
import LiaisonTestSupport
import Testing

/// Put-time checks on REL TO: a name that is neither ALL, nor the node, nor a partner or
/// group of its federation would release the item to no one, so the put is refused and
/// nothing is written. `LocalNode.put` is what both `liaison put` and `POST /v1/items` call.
@Suite("Put validation")
struct PutValidationTests {
    @Test("a rendered node accepts its partners, groups, itself and ALL, and refuses anything else naming them")
    func releasabilityInAFederation() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        _ = try TopologyTests.demo().render(into: root, now: Date())
        let node = try LocalNode.open(NodeDirectory(path: root.appendingPathComponent("alpha").path))
        #expect(node.federation?.me == "alpha")

        for relTo in [["bravo"], ["charlie", "WEST"], ["EAST"], ["alpha"], ["ALL"], []] {
            let (item, _) = try node.put(PutRequest(collection: "reports", releasableTo: relTo), now: Date())
            #expect(item.markings.releasableTo == relTo.sorted())
        }
        let sequence = try node.store.highestSequence()
        let custody = try node.store.custody(from: 1, limit: 1000).count
        for (relTo, unknown) in [(["delta"], "delta"), (["bravo", "NORTH"], "NORTH"), (["all"], "all")] {
            do {
                _ = try node.put(PutRequest(collection: "reports", releasableTo: relTo), now: Date())
                Issue.record("REL TO \(relTo) was accepted")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(
                    error.message
                        == "unknown REL TO '\(unknown)': known partners alpha, bravo, charlie; groups EAST, WEST")
            }
        }
        #expect(try node.store.highestSequence() == sequence, "a refused put wrote an op")
        #expect(try node.store.custody(from: 1, limit: 1000).count == custody, "a refused put wrote custody")
    }

    @Test(
        "a put signs, per field, who its value is withheld from: the names given and every partner whose link redacts it"
    )
    func fieldWithholding() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        _ = try TopologyTests.demo().render(into: root, now: Date())
        // In the demo topology alpha's link to bravo redacts `source`.
        let node = try LocalNode.open(NodeDirectory(path: root.appendingPathComponent("alpha").path))
        let fields: [(name: String, value: Data)] = [
            ("source", JSONText.string("agent-9")), ("title", JSONText.string("harbour")),
            ("notes", JSONText.string("x")),
        ]
        let (_, op) = try node.put(
            PutRequest(collection: "reports", releasableTo: ["ALL"], fields: fields, withheld: ["notes": ["WEST"]]),
            now: Date())
        let withheld = Dictionary(
            uniqueKeysWithValues: op.body.change.fieldCommitments.map { ($0.name, $0.withheldFrom) })
        #expect(withheld == ["source": ["bravo"], "title": [], "notes": ["WEST"]])

        let sequence = try node.store.highestSequence()
        for (request, message) in [
            (["notes": ["delta"]], "unknown partner to withhold 'notes' from 'delta'"),
            (["missing": ["bravo"]], "field 'missing' is withheld but not given"),
        ] {
            do {
                _ = try node.put(
                    PutRequest(collection: "reports", releasableTo: ["ALL"], fields: fields, withheld: request),
                    now: Date())
                Issue.record("withholding \(request) was accepted")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.message.hasPrefix(message), "\(error.message)")
            }
        }
        #expect(try node.store.highestSequence() == sequence, "a refused put wrote an op")
    }

    @Test("a federation without groups says so")
    func federationWithoutGroups() throws {
        let yaml = """
            federation: pair
            partners:
              alpha: {endpoints: ["127.0.0.1:1"], api: "127.0.0.1:2"}
              bravo: {endpoints: ["127.0.0.1:3"], api: "127.0.0.1:4"}
            links:
              - {from: alpha, to: bravo}
            """
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        _ = try Topology.parse(yaml).render(into: root, now: Date())
        let node = try LocalNode.open(NodeDirectory(path: root.appendingPathComponent("bravo").path))
        let error = #expect(throws: LiaisonError.self) {
            _ = try node.put(PutRequest(collection: "reports", releasableTo: ["EAST"]), now: Date())
        }
        #expect(error?.message == "unknown REL TO 'EAST': known partners alpha, bravo; no groups")
    }

    @Test("a node without a federation accepts only ALL and its own name")
    func releasabilityWithoutFederation() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let directory = NodeDirectory(path: root.appendingPathComponent("alpha").path)
        _ = try directory.initialize(name: "alpha", now: Date())
        let node = try LocalNode.open(directory)
        #expect(node.federation == nil)
        for relTo in [["ALL"], ["alpha"], []] {
            _ = try node.put(PutRequest(collection: "reports", releasableTo: relTo), now: Date())
        }
        let sequence = try node.store.highestSequence()
        do {
            _ = try node.put(PutRequest(collection: "reports", releasableTo: ["ALL", "bravo"]), now: Date())
            Issue.record("REL TO bravo was accepted by a node with no federation")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("unknown REL TO 'bravo': node alpha has no federation yet"))
            #expect(error.message.contains("liaison topology render"))
        }
        #expect(try node.store.highestSequence() == sequence)
    }

    @Test(
        "an item whose signed op would exceed the 1 MiB partners accept is refused at put, update and bulk put, naming the limit; nothing is written"
    )
    func oversizedOps() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        _ = try TopologyTests.demo().render(into: root, now: Date())
        let node = try LocalNode.open(NodeDirectory(path: root.appendingPathComponent("alpha").path))
        let big = JSONText.string(String(repeating: "a", count: OpLimits.maxEncodedBytes))
        let small = JSONText.string(String(repeating: "a", count: 900_000))
        // Just under the limit is accepted: the check is the partners' limit, not a lower one.
        let (item, op) = try node.put(
            PutRequest(collection: "reports", releasableTo: ["bravo"], fields: [("body", small)]), now: Date())
        #expect(op.encoded.count <= OpLimits.maxEncodedBytes)
        let sequence = try node.store.highestSequence()
        let custody = try node.store.custody(from: 1, limit: 1000).count
        func expectRefused(_ what: String, _ body: () throws -> Void) {
            do {
                try body()
                Issue.record("\(what) was accepted")
            } catch {
                let refusal = error as? LiaisonError
                #expect(refusal?.code == .invalidArgument, "\(what)")
                #expect(
                    refusal?.message.contains("partners refuse ops over 1048576 bytes") == true, "\(what): \(error)")
            }
        }
        expectRefused("put") {
            _ = try node.put(
                PutRequest(collection: "reports", releasableTo: ["bravo"], fields: [("body", big)]), now: Date())
        }
        expectRefused("update") {
            _ = try node.update(item.id, fields: [("body", big)], addTags: [], removeTags: [], now: Date())
        }
        expectRefused("bulk put") {
            _ = try node.putMany(
                [
                    PutRequest(collection: "reports", fields: [("body", JSONText.string("fine"))]),
                    PutRequest(collection: "reports", fields: [("body", big)]),
                ], now: Date())
        }
        #expect(try node.store.highestSequence() == sequence, "a refused change wrote an op")
        #expect(try node.store.custody(from: 1, limit: 1000).count == custody, "a refused change wrote custody")
    }
}

/// A field withheld from a partner stays withheld from it when a later write sets it: the
/// new value's commitment names the partner again, so no forwarder sends it in clear.
@Suite("Withholding outlives a write")
struct WithholdingOnUpdateTests {
    @Test("an update of a withheld field withholds the new value from the same partners, and adds those it names")
    func updateKeepsWithholding() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        _ = try TopologyTests.demo().render(into: root, now: Date())
        let node = try LocalNode.open(NodeDirectory(path: root.appendingPathComponent("alpha").path))
        let (item, create) = try node.put(
            PutRequest(
                collection: "reports", releasableTo: ["ALL"],
                fields: [("source", JSONText.string("agent K")), ("title", JSONText.string("port"))],
                withheld: ["source": ["charlie"]]),
            now: Date())

        func withheld(_ op: VerifiedOp, _ field: String) -> [String]? {
            op.body.change.fieldCommitments.first { $0.name == field }?.withheldFrom
        }
        // charlie by name; bravo because alpha's link to it redacts `source` (the demo topology).
        #expect(withheld(create, "source") == ["bravo", "charlie"])
        #expect(withheld(create, "title") == [])
        let (_, first) = try node.update(
            item.id, fields: [("source", JSONText.string("agent K, again"))], addTags: [], removeTags: [],
            now: Date())
        #expect(withheld(first[0], "source") == ["bravo", "charlie"], "the new value went to charlie in clear")

        let (_, second) = try node.update(
            item.id, fields: [("title", JSONText.string("harbour"))], addTags: [], removeTags: [],
            withheld: ["title": ["EAST"]], now: Date())
        #expect(withheld(second[0], "title") == ["EAST"])

        // ... and later writes keep it, adding what they name.
        let (_, third) = try node.update(
            item.id,
            fields: [("source", JSONText.string("agent M")), ("title", JSONText.string("quay"))],
            addTags: [], removeTags: [], withheld: ["title": ["bravo"]], now: Date())
        #expect(withheld(third[0], "source") == ["bravo", "charlie"])
        #expect(withheld(third[0], "title") == ["EAST", "bravo"])
    }

    @Test("an update withholding a field it does not set, or from an unknown name, is refused and writes nothing")
    func updateWithholdingChecked() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        _ = try TopologyTests.demo().render(into: root, now: Date())
        let node = try LocalNode.open(NodeDirectory(path: root.appendingPathComponent("alpha").path))
        let (item, _) = try node.put(
            PutRequest(collection: "reports", releasableTo: ["ALL"], fields: [("title", JSONText.string("port"))]),
            now: Date())
        let sequence = try node.store.highestSequence()
        for (withheld, message) in [
            (["source": ["bravo"]], "field 'source' is withheld but not given: withhold only fields you set"),
            (["title": ["delta"]], "unknown partner to withhold 'title' from 'delta': known partners"),
        ] {
            do {
                _ = try node.update(
                    item.id, fields: [("title", JSONText.string("harbour"))], addTags: [], removeTags: [],
                    withheld: withheld, now: Date())
                Issue.record("\(withheld) was accepted")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.message.hasPrefix(message), "\(error.message)")
            }
        }
        #expect(try node.store.highestSequence() == sequence)
    }
}
