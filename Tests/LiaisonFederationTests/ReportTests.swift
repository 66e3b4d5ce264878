import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonTestSupport
import Testing

@testable import liaison

/// `liaison report` on live nodes (docs/operations.md, "Transparency report"): counts that
/// follow what the nodes did, no content and no ids, the custody head `audit verify` prints,
/// and a signature that catches any change.
@Suite("Transparency report", .serialized, .timeLimit(.minutes(3)))
struct ReportTests {
    @Test(
        "the report counts what was sent, withheld, recalled and purged by classification and collection, without content or ids; it is signed and names the custody head"
    )
    func reportOnLiveNodes() async throws {
        let fixture = try FederationFixture.demo()
        try fixture.federation.start("alpha")
        try fixture.federation.start("bravo")
        try await fixture.federation.waitUntilHealthy(["alpha", "bravo"])
        let alpha = try fixture.client("alpha")
        let bravo = try fixture.client("bravo")
        let secret = try await alpha.put(
            PutItemBody(
                collection: "reports", classification: "SECRET", relTo: ["bravo"],
                fields: ["title": .string("ferry timetable")]))
        let indicator = try await alpha.put(
            PutItemBody(collection: "indicators", relTo: ["bravo"], fields: ["value": .string("198.51.100.7")]))
        let kept = try await alpha.put(
            PutItemBody(collection: "reports", fields: ["title": .string("kept at home")]))
        let recalled = try await alpha.put(
            PutItemBody(collection: "reports", relTo: ["bravo"], fields: ["title": .string("soon recalled")]))
        let atBravo = try await eventually {
            let last = try await bravo.item(recalled.id)
            let first = try await bravo.item(secret.id)
            return last != nil && first != nil
        }
        #expect(atBravo)
        _ = try await alpha.recall(recalled.id, RecallBody(reason: "wrong partner"))
        let purged = try await eventually { try await bravo.item(recalled.id)?.purged == true }
        #expect(purged)

        let runner = try CommandRunner()
        let alphaDir = fixture.federation.directory("alpha").url.path
        let bravoDir = fixture.federation.directory("bravo").url.path
        let made = try await runner.run(["report", "--dir", alphaDir, "--from", "2020-01-01", "--json"])
        #expect(made.status == 0, "\(made)")
        let report = try JSONDecoder().decode(TransparencyReport.self, from: Data(made.stdout.utf8))
        let link = try #require(report.links.first { $0.partner == "bravo" })
        // Four creates and one recall went to bravo; the item kept at home was withheld.
        #expect(link.sent.ops == 4 && link.sent.items == 3, "\(link.sent)")
        #expect(link.sent.byClassification == ["SECRET": 1, "UNCLASSIFIED": 3], "\(link.sent)")
        #expect(link.sent.byCollection == ["reports": 3, "indicators": 1], "\(link.sent)")
        #expect(link.withheld.ops == 1 && link.withheld.byReason == ["not-releasable": 1], "\(link.withheld)")
        #expect(link.recalled.ops == 1 && link.recalled.items == 1, "\(link.recalled)")
        #expect(link.received.ops == 0)
        #expect(report.node == "alpha" && report.containment.isEmpty)
        #expect(!report.links.contains { $0.partner == "charlie" }, "alpha has no link to charlie")

        let atBravoReport = try await runner.run(["report", "--dir", bravoDir, "--from", "2020-01-01", "--json"])
        let bravoReport = try JSONDecoder().decode(TransparencyReport.self, from: Data(atBravoReport.stdout.utf8))
        let fromAlpha = try #require(bravoReport.links.first { $0.partner == "alpha" })
        #expect(fromAlpha.received.ops == 4, "\(fromAlpha.received)")
        #expect(fromAlpha.purged.items == 1, "\(fromAlpha.purged)")

        // The head is the one `audit verify` prints.
        let verified = try await runner.run(["audit", "verify", "--dir", alphaDir])
        #expect(
            verified.stdout.contains("head \(report.custodyHead.sequence) \(report.custodyHead.hash)"), "\(verified)")

        // No content and no ids, in any form.
        let text = try await runner.run(["report", "--dir", alphaDir, "--from", "2020-01-01"])
        let html = try await runner.run(["report", "--dir", alphaDir, "--from", "2020-01-01", "--html"])
        #expect(text.status == 0 && html.status == 0 && html.stdout.hasPrefix("<!doctype html>"))
        for output in [made.stdout, text.stdout, html.stdout, atBravoReport.stdout] {
            for put in [secret, indicator, kept, recalled] {
                #expect(!output.contains(put.id) && !output.contains(put.opID.prefix(16)))
            }
            for value in ["ferry timetable", "198.51.100.7", "kept at home", "soon recalled"] {
                #expect(!output.contains(value))
            }
        }

        // The signature holds, and any change breaks it; the signer must be the partner named.
        let file = fixture.federation.root.appendingPathComponent("report.json")
        let bravoFederation = fixture.federation.directory("bravo").url.appendingPathComponent("federation.json").path
        try Data(made.stdout.utf8).write(to: file)
        let good = try await runner.run(["report", "verify", file.path, "--federation", bravoFederation])
        #expect(
            good.status == 0 && good.stdout.contains("report verified: signed by \(report.nodeID) (alpha)"), "\(good)")
        let byID = try await runner.run(["report", "verify", file.path, "--node-id", report.nodeID])
        #expect(byID.status == 0, "\(byID)")
        // A federation file that is not one: one error line, exit 64.
        let noFederation = try await runner.run(["report", "verify", file.path, "--federation", file.path])
        #expect(
            noFederation.status == 64 && noFederation.stderr.contains("is not a federation.json"), "\(noFederation)")
        let wrongID = try await runner.run(["report", "verify", file.path, "--node-id", bravoReport.nodeID])
        #expect(wrongID.status == 65 && wrongID.stderr.contains("not by \(bravoReport.nodeID)"), "\(wrongID)")
        let unanchored = try await runner.run(["report", "verify", file.path])
        #expect(unanchored.status == 64, "a signature alone proves nothing about who: \(unanchored)")

        var tampered = report
        tampered.links[0].withheld.ops = 0
        try tampered.fileForm().write(to: file)
        let bad = try await runner.run(["report", "verify", file.path, "--node-id", report.nodeID])
        #expect(bad.status == 65 && bad.stderr.contains("does not verify"), "\(bad)")
        // Bravo's report renamed alpha's: signed by bravo's key, which is not alpha's in the federation.
        var renamed = bravoReport
        renamed.node = "alpha"
        try renamed.fileForm().write(to: file)
        let impostor = try await runner.run(["report", "verify", file.path, "--federation", bravoFederation])
        #expect(impostor.status == 65, "\(impostor)")
        // A key repeated at the end, which other JSON readers take instead of the first.
        var doubled = made.stdout
        doubled.removeLast(2)
        doubled += ",\n  \"entriesInPeriod\" : 999\n}\n"
        try Data(doubled.utf8).write(to: file)
        let repeated = try await runner.run(["report", "verify", file.path, "--node-id", report.nodeID])
        #expect(repeated.status == 65 && repeated.stderr.contains("not exactly as"), "\(repeated)")
        // Control characters in a name cannot rewrite the terminal's line.
        var sneaky = report
        sneaky.node = "alpha\u{1b}[8m"
        #expect(ReportCommand.Verify.printable(sneaky.node) == "alpha?[8m")
    }

    @Test("bad periods and flags are one error line and exit 64")
    func badInput() async throws {
        let fixture = try FederationFixture.demo()
        let runner = try CommandRunner()
        let dir = fixture.federation.directory("alpha").url.path
        for arguments in [
            ["--from", "yesterday"], ["--from", "2026-11-02", "--to", "2026-11-01"],
            ["--from", "2026-11-01", "--to", "soon"], ["--from", "2026-11-01", "--json", "--html"],
        ] {
            let outcome = try await runner.run(["report", "--dir", dir] + arguments)
            #expect(outcome.status == 64, "\(arguments): \(outcome)")
            #expect(
                outcome.stderr.hasPrefix("error: ") && outcome.stderr.split(separator: "\n").count == 1, "\(outcome)")
        }
        let notAReport = fixture.federation.root.appendingPathComponent("not.json")
        try Data("{}".utf8).write(to: notAReport)
        let refused = try await runner.run(["report", "verify", notAReport.path, "--node-id", "x"])
        #expect(refused.status == 64, "\(refused)")
        let both = try await runner.run(["report", "verify", notAReport.path, "--node-id", "x", "--federation", "y"])
        #expect(both.status == 64 && both.stderr.contains("one of them"), "\(both)")
    }
}
