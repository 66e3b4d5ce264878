import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonStore
import LiaisonTestSupport
import Testing

/// Delete, change of markings and recall at the originator (`LocalNode`, which the CLI and
/// the running engine call), and the purge they cause at a partner through the store path
/// the daemon and the simulator share (`ReplicationStore.receive`). Demo federation: alpha
/// (EAST), bravo (EAST, WEST), charlie (WEST); bravo→charlie carries indicators up to
/// CONFIDENTIAL.
@Suite("Item lifecycle at a node")
struct LifecycleNodeTests {
    let root: URL
    let alpha: LocalNode

    init() throws {
        root = NodeDirectoryTests.scratch()
        _ = try TopologyTests.demo().render(into: root, now: Date())
        alpha = try LocalNode.open(NodeDirectory(path: root.appendingPathComponent("alpha").path))
    }

    func node(_ name: String) throws -> LocalNode {
        try LocalNode.open(NodeDirectory(path: root.appendingPathComponent(name).path))
    }

    func put(relTo: [String] = ["bravo", "charlie"]) throws -> ItemState {
        try alpha.put(
            PutRequest(
                collection: "indicators", classification: "CONFIDENTIAL", releasableTo: relTo,
                fields: [(name: "indicator", value: JSONText.string("10.1.1.1"))]),
            now: Date()
        ).item
    }

    /// What a refused request must leave as it was: the log and the custody log.
    func fingerprint(_ node: LocalNode) throws -> (UInt64, Int) {
        (try node.store.highestSequence(), try node.store.custody(from: 1, limit: 10_000).count)
    }

    @Test(
        "an annotation the originator holds for markings applies when the originator's own change of markings entitles its author"
    )
    func originatorBroadeningAppliesHeld() throws {
        defer { NodeDirectoryTests.cleanUp(root) }
        let item = try alpha.put(
            PutRequest(
                collection: "indicators", classification: "CONFIDENTIAL", releasableTo: ["bravo"],
                fields: [(name: "indicator", value: JSONText.string("10.1.1.1"))], writePolicy: .annotations),
            now: Date()
        ).item
        let charlie = try node("charlie")
        let unsigned = try charlie.identity.author.change(
            item, .addTags(["seen"]),
            hlc: HLCTimestamp(physicalMillis: item.lastChange.hlc.physicalMillis + 1, logical: 0))
        let note = try charlie.identity.author.sign([unsigned])[0]
        // It came (through bravo, say) before any markings released the item to charlie: held.
        let partners = Dictionary(
            uniqueKeysWithValues: try #require(alpha.federation).partners.map { ($0.nodeID, $0.recipient) })
        _ = try alpha.store.commit(
            CommitBatch(
                ops: [note], source: .peer(charlie.identity.nodeID), timeMillis: 1, held: [note.id],
                partners: partners))
        #expect(try alpha.store.pendingCount(from: charlie.identity.nodeID) == 1)

        let broadened = try alpha.changeMarkings(
            item.id, MarkingsChangeRequest(releasableTo: ["bravo", "charlie"]), now: Date())
        #expect(broadened.item.tags == ["seen"], "the change's result does not show the note")
        #expect(try alpha.store.pendingCount(from: charlie.identity.nodeID) == 0, "the originator still holds it back")
        #expect(try alpha.store.op(note.id) != nil)
        #expect(try alpha.store.item(item.id)?.tags == ["seen"])
    }

    @Test(
        "a narrowing signs the change of markings and, after it in the same batch, a recall from the partners it removes"
    )
    func narrowingSignsRecall() throws {
        defer { NodeDirectoryTests.cleanUp(root) }
        let item = try put()
        let result = try alpha.changeMarkings(item.id, MarkingsChangeRequest(releasableTo: ["bravo"]), now: Date())
        #expect(result.recalledFrom == ["charlie"])
        #expect(result.ops.map(\.body.change.kindName) == ["change-markings", "recall"])
        guard case .recall(let audience, let reason) = result.ops[1].body.change else { return }
        #expect(audience == ["charlie"] && reason == "narrowed")
        #expect(result.ops[1].body.hlc > result.ops[0].body.hlc)
        #expect(result.item.markings.releasableTo == ["bravo"])
        #expect(result.item.markings.classification == "CONFIDENTIAL", "an unspecified part changed")
        #expect(result.item.recallsInForce == ["charlie"])
        #expect(result.item.fields["indicator"]?.value != nil, "the originator purged its own item")
        let entry = try #require(try alpha.store.custody(from: 1, limit: 100).last)
        #expect(entry.kind == .opsCreated && entry.opIDs == result.ops.map(\.id))
        #expect(entry.detail.contains("recall from charlie (narrowed)"), "\(entry.detail)")

        // Narrowing by group: WEST holds bravo and charlie; EAST keeps bravo, so only charlie goes.
        let byGroup = try put(relTo: ["WEST"])
        let regrouped = try alpha.changeMarkings(byGroup.id, MarkingsChangeRequest(releasableTo: ["EAST"]), now: Date())
        #expect(regrouped.recalledFrom == ["charlie"])

        // A broadening recalls no one.
        let broadened = try alpha.changeMarkings(
            byGroup.id, MarkingsChangeRequest(classification: "secret", releasableTo: ["ALL"]), now: Date())
        #expect(broadened.ops.map(\.body.change.kindName) == ["change-markings"])
        #expect(broadened.item.markings.classification == "SECRET")
        #expect(broadened.recallsLifted == ["charlie"])
        #expect(broadened.item.recallsInForce.isEmpty)
    }

    @Test("a change of markings without REL TO keeps recalls in force; one naming REL TO lifts them")
    func recallsKeptOrLifted() throws {
        defer { NodeDirectoryTests.cleanUp(root) }
        let item = try put()
        _ = try alpha.recall(item.id, from: ["charlie"], reason: "leak", now: Date())
        let reclassified = try alpha.changeMarkings(
            item.id, MarkingsChangeRequest(classification: "RESTRICTED"), now: Date())
        #expect(reclassified.ops.map(\.body.change.kindName) == ["change-markings", "recall"])
        #expect(reclassified.item.recallsInForce == ["charlie"])
        #expect(reclassified.recallsLifted.isEmpty)
        // The same REL TO, stated again, gives charlie the item back.
        let restated = try alpha.changeMarkings(
            item.id, MarkingsChangeRequest(releasableTo: ["bravo", "charlie"]), now: Date())
        #expect(restated.recallsLifted == ["charlie"])
        #expect(restated.item.recallsInForce.isEmpty)
        #expect(
            restated.item.purgeCause(at: try node("charlie").recipient) == nil, "charlie is still recalled")
    }

    @Test(
        "delete and recall from everyone leave the originator only the tombstone; later changes are refused as conflicts"
    )
    func withdrawnRefusesChanges() throws {
        defer { NodeDirectoryTests.cleanUp(root) }
        let deleted = try put()
        let result = try alpha.delete(deleted.id, now: Date())
        #expect(result.item.tombstone != nil && result.item.fields.isEmpty)
        let recalled = try put()
        #expect(try alpha.recall(recalled.id, from: [], reason: "wrong", now: Date()).item.isWithdrawn)
        let before = try fingerprint(alpha)
        for id in [deleted.id, recalled.id] {
            let attempts: [() throws -> Void] = [
                { _ = try alpha.delete(id, now: Date()) },
                { _ = try alpha.changeMarkings(id, MarkingsChangeRequest(releasableTo: ["bravo"]), now: Date()) },
                { _ = try alpha.recall(id, from: ["bravo"], reason: "again", now: Date()) },
            ]
            for attempt in attempts {
                let error = #expect(throws: LiaisonError.self) { try attempt() }
                #expect(error?.code == .conflict)
                #expect(error?.message.contains("already deleted or recalled") == true, "\(String(describing: error))")
            }
        }
        #expect(try fingerprint(alpha) == before, "a refused change wrote something")
    }

    @Test("only the originator deletes, re-marks or recalls; unknown items are not found; nothing is written")
    func refusals() throws {
        defer { NodeDirectoryTests.cleanUp(root) }
        let item = try put()
        let bravo = try node("bravo")
        let ops = try alpha.store.ops(ofItem: item.id).map(\.op)
        _ = try bravo.store.commit(CommitBatch(ops: ops, source: .peer(alpha.identity.nodeID), timeMillis: 1))
        let before = try fingerprint(bravo)
        let attempts: [() throws -> Void] = [
            { _ = try bravo.delete(item.id, now: Date()) },
            { _ = try bravo.changeMarkings(item.id, MarkingsChangeRequest(releasableTo: ["bravo"]), now: Date()) },
            { _ = try bravo.recall(item.id, from: ["charlie"], reason: "mine now", now: Date()) },
        ]
        for attempt in attempts {
            let error = #expect(throws: LiaisonError.self) { try attempt() }
            #expect(error?.code == .forbidden)
            #expect(error?.message.hasPrefix("only the item's originator") == true, "\(String(describing: error))")
        }
        #expect(try fingerprint(bravo) == before, "a refused change wrote something")
        let unknown = ItemID(bytes: [UInt8](repeating: 7, count: 16))!
        let error = #expect(throws: LiaisonError.self) { _ = try alpha.delete(unknown, now: Date()) }
        #expect(error?.code == .notFound)
    }

    @Test(
        "bad requests are refused before anything is written",
        arguments: [
            (MarkingsChangeRequest(), "nothing to change"),
            (MarkingsChangeRequest(releasableTo: ["delta"]), "unknown REL TO 'delta': known partners"),
            (MarkingsChangeRequest(classification: "COSMIC"), "COSMIC"),
            (MarkingsChangeRequest(expiresAt: Date(timeIntervalSince1970: 0)), "is not in the future"),
            (MarkingsChangeRequest(releasableTo: ["bravo", "charlie"]), "already has these markings"),
        ])
    func badMarkings(request: MarkingsChangeRequest, message: String) throws {
        defer { NodeDirectoryTests.cleanUp(root) }
        let item = try put()
        let before = try fingerprint(alpha)
        let error = #expect(throws: LiaisonError.self) { _ = try alpha.changeMarkings(item.id, request, now: Date()) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
        #expect(try fingerprint(alpha) == before)
    }

    @Test(
        "bad recalls are refused before anything is written",
        arguments: [
            (["charlie"], " ", "give a reason"),
            (["ALL"], "r", "name no partner"),
            (["alpha"], "r", "does not recall an item from itself"),
            (["delta"], "r", "unknown REL TO 'delta'"),
        ])
    func badRecalls(audience: [String], reason: String, message: String) throws {
        defer { NodeDirectoryTests.cleanUp(root) }
        let item = try put()
        let before = try fingerprint(alpha)
        let error = #expect(throws: LiaisonError.self) {
            _ = try alpha.recall(item.id, from: audience, reason: reason, now: Date())
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
        #expect(try fingerprint(alpha) == before)
    }

    @Test("a partner the item is narrowed away from admits the notice from its neighbour and purges, with custody")
    func partnerPurgesOnReceipt() throws {
        defer { NodeDirectoryTests.cleanUp(root) }
        let item = try put()
        let charlie = try node("charlie")
        let federation = try #require(charlie.federation)
        let neighbours = federation.neighbours.compactMap { neighbour in
            federation.partner(named: neighbour.name).map {
                ReplicationNeighbour(partner: $0.recipient, outbound: neighbour.outbound, inbound: neighbour.inbound)
            }
        }
        var replication = try ReplicationStore(
            me: charlie.recipient, store: charlie.store, ladder: charlie.config.classifications,
            partners: federation.partners.map(\.recipient), neighbours: neighbours,
            maxClockSkewMillis: charlie.config.maxClockSkewMillis, nowMillis: nil)
        let now = UInt64(Date().timeIntervalSince1970 * 1000) + 1000
        let content = try alpha.store.ops(ofItem: item.id).map(\.op.encoded)
        #expect(try replication.receive(ops: content, through: 1, from: "bravo", nowMillis: now).accepted == 1)
        #expect(try charlie.store.item(item.id)?.fields["indicator"]?.value != nil)

        let narrowing = try alpha.changeMarkings(item.id, MarkingsChangeRequest(releasableTo: ["bravo"]), now: Date())
        let outcome = try replication.receive(
            ops: narrowing.ops.map(\.encoded), through: 2, from: "bravo", nowMillis: now)
        #expect(outcome.accepted == 2 && outcome.refused == 0 && outcome.strikes.isEmpty, "\(outcome)")
        let held = try #require(try charlie.store.item(item.id))
        #expect(held.fields["indicator"]?.value == nil)
        #expect(held.digest == narrowing.item.digest)
        let view = ItemView(held, at: charlie.recipient)
        #expect(view.purged && view.purgeReason == "recalled" && view.fields.isEmpty)
        #expect(view.redactedFields == ["indicator"])
        #expect(try charlie.store.ops(ofItem: item.id).allSatisfy { $0.op.openings.isEmpty })
        let entry = try #require(try charlie.store.custody(from: 1, limit: 100).last)
        #expect(entry.kind == .opsPurged && entry.opIDs.first == narrowing.ops[1].id)
        let bravoID = try #require(federation.partner(named: "bravo")).nodeID
        #expect(entry.peer == bravoID.text)
        // Charlie writes nothing more on it.
        let refused = #expect(throws: LiaisonError.self) {
            _ = try charlie.update(
                item.id, fields: [("note", JSONText.string("x"))], addTags: [], removeTags: [], now: Date())
        }
        #expect(refused?.code == .forbidden)
    }
}
