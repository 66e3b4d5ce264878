import Foundation
import LiaisonTestSupport
import Testing

/// `liaison revoke`, `readmit`, `revocations` and `rekey` on nodes that are not running.
@Suite("liaison revoke")
struct RevocationCLITests {
    let cli: CommandRunner
    let root: URL

    init() throws {
        cli = try CommandRunner()
        root = try TestDirectory.make("revoke")
    }

    /// The demo federation (alpha, bravo, charlie: the default quorum is 2); returns its root.
    private func renderDemo() async throws -> String {
        let out = root.appendingPathComponent("demo").path
        let outcome = try await cli.run(["topology", "render", CLITests.demoTopology, "--out", out])
        try #require(outcome.status == 0, "\(outcome)")
        return out
    }

    private func json(_ outcome: CommandRunner.Outcome) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any], "\(outcome)")
    }

    /// Three partners with a quorum of 1: one operator's endorsement applies at its node.
    private func renderQuorumOfOne() async throws -> String {
        let topology = root.appendingPathComponent("one.yaml")
        try Data(
            """
            federation: one
            partners:
              alpha: {endpoints: ["127.0.0.1:1"], api: "127.0.0.1:2"}
              bravo: {endpoints: ["127.0.0.1:3"], api: "127.0.0.1:4"}
              charlie: {endpoints: ["127.0.0.1:5"], api: "127.0.0.1:6"}
            links:
              - {from: alpha, to: bravo}
              - {from: bravo, to: alpha}
            revocation: {quorum: 1}

            """.utf8
        ).write(to: topology)
        let out = root.appendingPathComponent("one").path
        let outcome = try await cli.run(["topology", "render", topology.path, "--out", out])
        try #require(outcome.status == 0, "\(outcome)")
        return out
    }

    @Test("on the demo's default quorum of 2, one endorsement waits and is listed; the same content is one statement")
    func waits() async throws {
        let demo = try await renderDemo()
        let alpha = (demo as NSString).appendingPathComponent("alpha")
        let charlie = (demo as NSString).appendingPathComponent("charlie")
        let first = try json(
            try await cli.run([
                "revoke", "bravo", "--since", "2026-01-01T00:00:00Z", "--reason", "key leak", "--dir", alpha, "--json",
            ]))
        #expect(first["applied"] as? Bool == false && first["quorum"] as? Int == 2)
        #expect(first["endorsedBy"] as? [String] == ["alpha"])
        let listed = try json(try await cli.run(["revocations", "--dir", alpha, "--json"]))
        let statements = try #require(listed["statements"] as? [[String: Any]])
        #expect(statements.count == 1 && statements.first?["appliedAt"] == nil)
        let audit = try await cli.run(["audit", "list", "--dir", alpha, "--json"]).stdout
        #expect(audit.contains("statement.endorsed") && audit.contains("key leak"))
        let second = try json(
            try await cli.run(["revoke", "bravo", "--since", "2026-01-01T00:00:00Z", "--dir", charlie, "--json"]))
        #expect(second["statement"] as? String == first["statement"] as? String, "the same content, another statement")
        let quarantines = try json(try await cli.run(["quarantines", "--dir", alpha, "--json"]))
        #expect((quarantines["quarantines"] as? [Any])?.isEmpty == true, "one endorsement of two applied")
    }

    @Test("at the quorum the revocation applies; release and a second revocation are refused; rekey and readmit")
    func appliesAndReadmits() async throws {
        let out = try await renderQuorumOfOne()
        let alpha = (out as NSString).appendingPathComponent("alpha")
        let bravo = (out as NSString).appendingPathComponent("bravo")
        let revoked = try json(
            try await cli.run(["revoke", "bravo", "--since", "2026-01-01T00:00:00Z", "--dir", alpha, "--json"]))
        #expect(revoked["applied"] as? Bool == true)
        let listed = try json(try await cli.run(["revocations", "--dir", alpha, "--json"]))
        #expect((listed["revokedKeys"] as? [[String: Any]])?.first?["partner"] as? String == "bravo")
        let release = try await cli.run(["release", "bravo", "--dir", alpha])
        #expect(release.status == 64 && release.stderr.contains("new keys"), "\(release)")
        let again = try await cli.run(["revoke", "bravo", "--since", "now", "--dir", alpha])
        #expect(again.status == 64 && again.stderr.contains("revoked already"), "\(again)")

        let rekey = try await cli.run(["rekey", "--dir", bravo, "--json"])
        #expect(rekey.status == 0, "\(rekey)")
        let card = try json(rekey)
        #expect(card["name"] as? String == "bravo" && (card["nodeID"] as? String)?.count == 64)
        #expect(try await cli.run(["list", "--dir", bravo]).status == 0, "the re-keyed node does not open")
        let cardFile = root.appendingPathComponent("card.json")
        try Data(rekey.stdout.utf8).write(to: cardFile)
        let readmitted = try json(
            try await cli.run(["readmit", "bravo", "--identity", cardFile.path, "--dir", alpha, "--json"]))
        #expect(readmitted["applied"] as? Bool == true, "\(readmitted)")
        let after = try json(try await cli.run(["revocations", "--dir", alpha, "--json"]))
        #expect((after["identities"] as? [[String: Any]])?.first?["nodeID"] as? String == card["nodeID"] as? String)
        let quarantines = try json(try await cli.run(["quarantines", "--dir", alpha, "--json"]))
        #expect((quarantines["quarantines"] as? [Any])?.isEmpty == true, "the re-admission left bravo quarantined")
        #expect(try await cli.run(["audit", "list", "--dir", alpha, "--json"]).stdout.contains("partner.readmitted"))
    }

    @Test(
        "bad revocation input is refused with one error line and changes nothing",
        arguments: [
            (["revoke", "delta", "--since", "now"], 66, "no partner 'delta'"),
            (["revoke", "alpha", "--since", "now"], 64, "a node cannot revoke its own keys"),
            (["revoke", "bravo"], 64, "give --since"),
            (["revoke", "bravo", "--since", "2999-01-01T00:00:00Z"], 64, "is in the future"),
            (
                ["readmit", "bravo", "--node-id", "X", "--cert-fingerprint", "ab", "--sealing-key", "AA=="], 64,
                "is not a NodeID"
            ),
            (["readmit", "bravo"], 64, "give the new identity"),
            (["readmit", "bravo", "--identity", "/nonexistent/card.json"], 66, "cannot read the identity card"),
        ]
    )
    func badInput(arguments: [String], status: Int32, message: String) async throws {
        let alpha = await (try renderDemo() as NSString).appendingPathComponent("alpha")
        let before = try await cli.run(["audit", "list", "--dir", alpha, "--json"]).stdout
        let outcome = try await cli.run(arguments + ["--dir", alpha])
        #expect(outcome.status == status, "\(outcome)")
        #expect(outcome.stderr.hasPrefix("error: ") && outcome.stderr.contains(message), "\(outcome)")
        #expect(outcome.stderr.split(separator: "\n").count == 1, "\(outcome)")
        #expect(
            try await cli.run(["audit", "list", "--dir", alpha, "--json"]).stdout == before,
            "a refused command wrote custody"
        )
    }
}
