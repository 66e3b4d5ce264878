import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonStore
import LiaisonTestSupport
import Testing

/// Delete, narrowing and recall between real nodes (DESIGN §5.7). Topology: demo.yaml —
/// alpha ↔ bravo ↔ charlie, no alpha–charlie link, so what alpha sends charlie goes through
/// bravo; bravo→charlie carries indicators up to CONFIDENTIAL.
@Suite("Item lifecycle between real nodes", .serialized, .timeLimit(.minutes(3)))
struct LifecycleTests {
    let all = ["alpha", "bravo", "charlie"]

    @Test(
        "a narrowing to bravo makes charlie purge the item (no values in get or in its log), with custody at alpha and charlie; bravo keeps the values"
    )
    func narrowingPurgesAtThePartnerItRemoves() async throws {
        let fixture = try FederationFixture.demo()
        try await fixture.start()
        let alpha = try fixture.client("alpha")
        let bravo = try fixture.client("bravo")
        let charlie = try fixture.client("charlie")
        let put = try await alpha.put(
            PutItemBody(
                collection: "indicators", classification: "CONFIDENTIAL", relTo: ["bravo", "charlie"],
                fields: ["indicator": .string("198.51.100.7")]))
        let arrived = try await eventually { try await charlie.item(put.id)?.fields["indicator"] != nil }
        #expect(arrived, "the item never reached charlie")

        let narrowed = try await alpha.changeMarkings(put.id, MarkingsBody(relTo: ["bravo"]))
        #expect(narrowed.recalledFrom == ["charlie"])
        #expect(narrowed.opIDs.count == 2)
        let recallID = narrowed.opIDs[1]
        let purged = try await eventually { try await charlie.item(put.id)?.purged == true }
        #expect(purged, "charlie did not purge")
        try await fixture.waitQuiet(all)

        let atCharlie = try #require(try await charlie.item(put.id))
        #expect(atCharlie.fields.isEmpty && atCharlie.redactedFields == ["indicator"])
        #expect(atCharlie.purgeReason == "recalled" && atCharlie.releasableTo == ["bravo"])
        let atBravo = try #require(try await bravo.item(put.id))
        #expect(atBravo.fields["indicator"] == .string("198.51.100.7"), "bravo lost the values")
        #expect(!atBravo.purged)
        let atAlpha = try #require(try await alpha.item(put.id))
        #expect(atAlpha.recalledFrom == ["charlie"])
        #expect(Set([atAlpha.digest, atBravo.digest, atCharlie.digest]).count == 1, "the purge changed a digest")

        // Custody: alpha created both ops and sent them on (to bravo, its only link towards
        // charlie); bravo passed the recall to charlie; charlie purged, naming the recall.
        let alphaAudit = try await alpha.audit(limit: 10_000)
        #expect(alphaAudit.contains { $0.kind == .opsCreated && $0.opIDs.map(\.hash.hex) == narrowed.opIDs })
        #expect(alphaAudit.contains { $0.kind == .opsSent && $0.opIDs.map(\.hash.hex).contains(recallID) })
        let bravoAudit = try await bravo.audit(limit: 10_000)
        #expect(
            bravoAudit.contains {
                $0.kind == .opsSent && $0.peer == "charlie" && $0.opIDs.map(\.hash.hex).contains(recallID)
            }, "bravo did not pass the recall to charlie")
        let charlieAudit = try await charlie.audit(limit: 10_000)
        let entry = try #require(charlieAudit.first { $0.kind == .opsPurged })
        #expect(entry.opIDs.first?.hash.hex == recallID)
        #expect(entry.peer == fixture.federation.nodeIDs["bravo"]?.text)
        #expect(entry.detail.contains(put.id) && entry.detail.contains("\"narrowed\""), "\(entry.detail)")
        #expect(!charlieAudit.contains { $0.detail.contains("198.51.100.7") })

        // Charlie's log holds the item's ops without their values.
        fixture.federation.stop("charlie")
        let node = try LocalNode.open(fixture.federation.directory("charlie"))
        let id = try #require(ItemID(put.id))
        let log = try node.store.ops(ofItem: id)
        #expect(log.count == 3, "\(log.map(\.op.body.change.kindName))")
        #expect(log.allSatisfy { $0.op.openings.isEmpty }, "charlie's log kept values")
        #expect(!log.contains { String(decoding: $0.op.encoded, as: UTF8.self).contains("198.51.100.7") })
    }

    @Test("liaison delete and liaison recall on a running originator reach the partner, which purges")
    func deleteAndRecallFromTheCLI() async throws {
        let fixture = try FederationFixture.demo()
        try await fixture.start()
        let alpha = try fixture.client("alpha")
        let bravo = try fixture.client("bravo")
        var ids = [String]()
        for title in ["to delete", "to recall"] {
            let put = try await alpha.put(
                PutItemBody(collection: "reports", relTo: ["bravo"], fields: ["title": .string(title)]))
            ids.append(put.id)
        }
        for id in ids {
            let arrived = try await eventually { try await bravo.item(id)?.fields["title"] != nil }
            #expect(arrived)
        }
        let cli = try CommandRunner()
        let dir = fixture.federation.directory("alpha").url.path
        let deleted = try await cli.run(["delete", ids[0], "--dir", dir])
        #expect(deleted.status == 0 && deleted.stdout == "deleted \(ids[0])\n", "\(deleted)")
        let recalled = try await cli.run([
            "recall", ids[1], "--from", "bravo", "--reason", "sent in error", "--dir", dir,
        ])
        #expect(recalled.status == 0 && recalled.stdout == "\(ids[1]) recalled from bravo\n", "\(recalled)")

        let gone = try await eventually { try await bravo.item(ids[0])?.deleted == true }
        #expect(gone, "the delete did not reach bravo")
        let purged = try await eventually { try await bravo.item(ids[1])?.purged == true }
        #expect(purged, "the recall did not reach bravo")
        let view = try #require(try await bravo.item(ids[1]))
        #expect(view.purgeReason == "recalled" && view.fields.isEmpty)
        #expect(
            try await bravo.audit(limit: 10_000).contains {
                $0.kind == .opsPurged && $0.detail.contains("sent in error")
            })
        // Alpha keeps its recalled item; the deleted one is a tombstone.
        #expect(try await alpha.item(ids[1])?.fields["title"] == .string("to recall"))
        #expect(try await alpha.item(ids[0])?.fields.isEmpty == true)
    }

    @Test("the API refuses with 400, 403, 404 and 409 and writes nothing")
    func refusals() async throws {
        let fixture = try FederationFixture.demo()
        try await fixture.start()
        let alpha = try fixture.client("alpha")
        let bravo = try fixture.client("bravo")
        let put = try await alpha.put(PutItemBody(collection: "reports", relTo: ["bravo"]))
        #expect(try await eventually { try await bravo.item(put.id) != nil })
        try await fixture.waitQuiet(all)

        func refused(
            _ client: NodeClient, _ code: LiaisonError.Code, _ call: () async throws -> LifecycleView,
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws {
            let before = try await client.audit(limit: 10_000).count
            do {
                _ = try await call()
                Issue.record("accepted", sourceLocation: sourceLocation)
            } catch let error as LiaisonError {
                #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
            }
            #expect(
                try await client.audit(limit: 10_000).count == before, "wrote custody", sourceLocation: sourceLocation)
        }
        let unknown = "00000000-0000-0000-0000-000000000000"
        try await refused(bravo, .forbidden) { try await bravo.delete(put.id) }
        try await refused(bravo, .forbidden) {
            try await bravo.recall(put.id, RecallBody(from: ["charlie"], reason: "r"))
        }
        try await refused(alpha, .notFound) { try await alpha.delete(unknown) }
        try await refused(alpha, .invalidArgument) {
            try await alpha.changeMarkings(put.id, MarkingsBody(relTo: ["delta"]))
        }
        try await refused(alpha, .invalidArgument) {
            try await alpha.recall(put.id, RecallBody(from: ["bravo"], reason: ""))
        }
        _ = try await alpha.delete(put.id)
        try await refused(alpha, .conflict) {
            try await alpha.changeMarkings(put.id, MarkingsBody(classification: "SECRET"))
        }
    }
}
