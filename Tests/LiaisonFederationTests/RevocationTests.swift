import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonTestSupport
import Testing

/// Revocation by a quorum of partners and re-admission with new keys, between real nodes
/// (DESIGN §6): the statement crosses partners to nodes with no link to the revoked one.
@Suite("Revocation of a partner between real nodes", .serialized, .timeLimit(.minutes(5)))
struct RevocationTests {
    /// A line: alpha — bravo — charlie — delta. Only charlie links to delta; two of the three
    /// others make the quorum.
    static let line = """
        federation: line
        partners:
          alpha: {endpoints: ["127.0.0.1:1"], api: "127.0.0.1:2"}
          bravo: {endpoints: ["127.0.0.1:3"], api: "127.0.0.1:4"}
          charlie: {endpoints: ["127.0.0.1:5"], api: "127.0.0.1:6"}
          delta: {endpoints: ["127.0.0.1:7"], api: "127.0.0.1:8"}
        links:
          - {from: alpha, to: bravo}
          - {from: bravo, to: alpha}
          - {from: bravo, to: charlie}
          - {from: charlie, to: bravo}
          - {from: charlie, to: delta}
          - {from: delta, to: charlie}
        revocation: {quorum: 2}
        """

    static func millis(_ iso: String) throws -> UInt64 {
        let date = try #require(ISO8601.parse(iso))
        return UInt64((date.timeIntervalSince1970 * 1000).rounded())
    }

    @Test(
        "alpha and charlie revoke delta; bravo and alpha, with no link to delta, apply it and lose delta's items since T; delta never hears of it; re-admitted with new keys, it reconnects"
    )
    func revokeAndReadmit() async throws {
        let fixture = try FederationFixture(yaml: Self.line)
        let all = ["alpha", "bravo", "charlie", "delta"]
        try await fixture.start()
        let alpha = try fixture.client("alpha")
        let bravo = try fixture.client("bravo")
        let charlie = try fixture.client("charlie")
        let delta = try fixture.client("delta")

        // Delta writes before and after T; both reach alpha over three hops.
        let early = try await delta.put(PutItemBody(collection: "reports", relTo: ["ALL"]))
        #expect(try await eventually { try await alpha.item(early.id) != nil })
        let earlyAt = try Self.millis(try #require(try await alpha.item(early.id)).createdAt)
        let since = earlyAt + 2
        let late = try await delta.put(PutItemBody(collection: "reports", relTo: ["ALL"]))
        #expect(try await eventually { try await alpha.item(late.id) != nil })
        try #require(try Self.millis(try #require(try await alpha.item(late.id)).createdAt) > since)
        try await fixture.waitQuiet(all)

        // Alpha endorses: one of two, nothing applies; the statement crosses bravo to charlie.
        let first = try await alpha.endorseRevocation(
            RevocationBody(partner: "delta", since: ISO8601.format(millis: Int64(since)), reason: "key leak"))
        #expect(first.endorsedBy == ["alpha"] && !first.applied)
        #expect(try await eventually { try await charlie.governance().statements.count == 1 })
        #expect(try await alpha.item(late.id) != nil, "one endorsement of two applied")

        // Charlie joins the revocation waiting there (no time given): the quorum is reached.
        let second = try await charlie.endorseRevocation(RevocationBody(partner: "delta", since: nil, reason: nil))
        #expect(second.statement == first.statement, "charlie endorsed another statement")
        #expect(second.applied && Set(second.endorsedBy) == ["alpha", "charlie"])
        for (name, client) in [("alpha", alpha), ("bravo", bravo)] {
            #expect(
                try await eventually { try await client.item(late.id) == nil },
                "\(name), with no link to delta, still holds delta's item since T")
            #expect(try await client.item(early.id) != nil, "\(name) lost delta's item before T")
            let view = try await client.governance()
            #expect(view.statements.first?.appliedAt != nil, "\(name) did not apply the revocation")
            #expect(view.revokedKeys.map(\.partner) == ["delta"])
            #expect(try await client.containment().quarantines.map(\.partner) == ["delta"])
        }
        #expect(try await charlie.item(late.id) == nil)
        #expect(try await delta.governance().statements.isEmpty, "the revocation reached the revoked partner")
        #expect(
            try await eventually { try await charlie.links().first { $0.peer == "delta" }?.state != "up" },
            "charlie's link to delta stayed up")
        for client in [alpha, bravo, charlie] {
            #expect(try await client.containment().strikes.isEmpty, "an honest node was struck")
        }
        do {
            _ = try await alpha.release("delta")
            Issue.record("a revoked partner was released")
        } catch {
            #expect(error.code == .invalidArgument && error.message.contains("new keys"), "\(error)")
        }

        // Delta's operator re-keys it; alpha (through the CLI) and bravo endorse its card.
        fixture.federation.stop("delta")
        let runner = try CommandRunner()
        let rekey = try await runner.run(["rekey", "--dir", fixture.federation.directory("delta").url.path, "--json"])
        try #require(rekey.status == 0, "\(rekey)")
        let card = try JSONDecoder().decode(IdentityCard.self, from: Data(rekey.stdout.utf8))
        let cardFile = fixture.federation.root.appendingPathComponent("delta-card.json")
        try Data(rekey.stdout.utf8).write(to: cardFile)
        let readmit = try await runner.run([
            "readmit", "delta", "--identity", cardFile.path, "--dir", fixture.federation.directory("alpha").url.path,
            "--json",
        ])
        try #require(readmit.status == 0, "\(readmit)")
        #expect(readmit.stdout.contains("\"applied\" : false"), "\(readmit.stdout)")
        let readmitted = try await bravo.endorseReadmission(
            ReadmissionBody(
                partner: "delta", nodeID: card.nodeID, tlsFingerprint: card.tlsFingerprint,
                sealingKey: card.sealingKey, reason: "new keys"))
        #expect(readmitted.applied)
        for (name, client) in [("alpha", alpha), ("charlie", charlie)] {
            #expect(
                try await eventually { try await client.governance().identities.first?.nodeID == card.nodeID },
                "\(name) does not trust delta's new keys")
        }

        // Delta comes back under its new keys: its link reconnects and its new items flow; what
        // its revoked key wrote since T stays out.
        try fixture.federation.start("delta")
        try await fixture.federation.waitUntilHealthy(["delta"])
        #expect(
            try await eventually { try await charlie.links().first { $0.peer == "delta" }?.state == "up" },
            "delta's new certificate was not accepted")
        let renewed = try await delta.put(PutItemBody(collection: "reports", relTo: ["ALL"]))
        #expect(
            try await eventually { try await alpha.item(renewed.id) != nil }, "delta's new item did not reach alpha")
        try await fixture.waitQuiet(all)
        #expect(try await alpha.item(late.id) == nil, "the revoked key's item came back")
        #expect(try await alpha.containment().quarantines.isEmpty)
        for client in [alpha, bravo, charlie] {
            #expect(try await client.containment().strikes.isEmpty, "an honest node was struck")
        }
    }
}
