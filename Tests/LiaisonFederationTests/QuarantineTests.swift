import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode
import LiaisonTestSupport
import Testing

/// Quarantine and release through the API of running nodes (DESIGN §6).
@Suite("Quarantine of a partner between real nodes", .serialized, .timeLimit(.minutes(3)))
struct QuarantineTests {
    /// Every pair linked both ways: what bravo writes reaches alpha directly and through charlie.
    static let triangle = """
        federation: triangle
        partners:
          alpha: {endpoints: ["127.0.0.1:1"], api: "127.0.0.1:2"}
          bravo: {endpoints: ["127.0.0.1:3"], api: "127.0.0.1:4"}
          charlie: {endpoints: ["127.0.0.1:5"], api: "127.0.0.1:6"}
        links:
          - {from: alpha, to: bravo}
          - {from: bravo, to: alpha}
          - {from: alpha, to: charlie}
          - {from: charlie, to: alpha}
          - {from: bravo, to: charlie}
          - {from: charlie, to: bravo}
        """

    @Test(
        "a quarantined partner's link stays down and its new items reach the node through no one; what it wrote before stays; a release lets them in"
    )
    func quarantineAndRelease() async throws {
        let fixture = try FederationFixture(yaml: Self.triangle)
        let all = ["alpha", "bravo", "charlie"]
        try await fixture.start()
        let alpha = try fixture.client("alpha")
        let bravo = try fixture.client("bravo")
        let charlie = try fixture.client("charlie")
        let before = try await bravo.put(PutItemBody(collection: "reports", relTo: ["ALL"]))
        #expect(try await eventually { try await alpha.item(before.id) != nil })
        try await fixture.waitQuiet(all)

        let result = try await alpha.quarantine(QuarantineBody(partner: "bravo", since: "now", reason: "test"))
        #expect(result.opsLeftOut == 0 && result.itemsRemoved == 0)
        let view = try await alpha.containment()
        #expect(view.quarantines.map(\.partner) == ["bravo"])
        let linkDown = try await eventually {
            try await alpha.links().first { $0.peer == "bravo" }?.state != "up"
        }
        #expect(linkDown)

        // Bravo writes on: charlie takes it and passes it to alpha, which refuses it.
        let during = try await bravo.put(PutItemBody(collection: "reports", relTo: ["ALL"]))
        #expect(try await eventually { try await charlie.item(during.id) != nil })
        let passedOn = try await eventually {
            try await charlie.links().first { $0.peer == "alpha" && $0.outbound }?.lagOps == 0
        }
        #expect(passedOn)
        #expect(try await alpha.item(during.id) == nil, "a quarantined partner's new item reached alpha")
        #expect(try await alpha.item(before.id) != nil, "what bravo wrote before the quarantine was lost")
        let refused = try await alpha.audit(limit: 10_000).filter {
            $0.kind == .opsRejected && $0.detail.contains("author quarantined")
        }
        #expect(!refused.isEmpty, "alpha did not audit the refused op")
        #expect(
            try await alpha.containment().strikes.filter { $0.partner == "charlie" }.isEmpty, "the forwarder was struck"
        )

        // Bad requests change nothing.
        // Bad requests are refused with their status and change nothing.
        let auditBefore = try await alpha.audit(limit: 10_000).count
        for (body, code) in [
            (QuarantineBody(partner: "alpha", since: "now", reason: nil), LiaisonError.Code.invalidArgument),
            (QuarantineBody(partner: "delta", since: "now", reason: nil), .notFound),
            (QuarantineBody(partner: "charlie", since: "tomorrow", reason: nil), .invalidArgument),
        ] {
            do {
                _ = try await alpha.quarantine(body)
                Issue.record("accepted \(body.partner) since \(body.since)")
            } catch {
                #expect(error.code == code, "\(body.partner) since \(body.since): \(error)")
            }
        }
        do {
            _ = try await alpha.release("charlie")
            Issue.record("released charlie, who was not quarantined")
        } catch {
            #expect(error.code == .notFound, "\(error)")
        }
        #expect(try await alpha.containment().quarantines.map(\.partner) == ["bravo"])
        #expect(try await alpha.audit(limit: 10_000).count == auditBefore, "a refused request wrote custody")

        let released = try await alpha.release("bravo")
        #expect(released.opsLeftOut == 0)
        #expect(try await alpha.containment().quarantines.isEmpty)
        #expect(
            try await eventually { try await alpha.item(during.id) != nil },
            "bravo's item did not arrive after the release")
        try await fixture.waitQuiet(all)
    }
}
