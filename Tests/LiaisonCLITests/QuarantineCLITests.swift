import Foundation
import LiaisonTestSupport
import Testing

/// `liaison quarantine`, `release` and `quarantines` on a node that is not running.
@Suite("liaison quarantine")
struct QuarantineCLITests {
    let cli: CommandRunner
    let root: URL

    init() throws {
        cli = try CommandRunner()
        root = try TestDirectory.make("quarantine")
    }

    private func renderDemo() async throws -> String {
        let out = root.appendingPathComponent("demo").path
        let outcome = try await cli.run(["topology", "render", CLITests.demoTopology, "--out", out])
        try #require(outcome.status == 0, "\(outcome)")
        return (out as NSString).appendingPathComponent("alpha")
    }

    private func json(_ outcome: CommandRunner.Outcome) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any], "\(outcome)")
    }

    @Test("quarantine, list and release a partner of a stopped node; the state and custody persist")
    func roundTrip() async throws {
        let alpha = try await renderDemo()
        let put = try await cli.run([
            "quarantine", "bravo", "--since", "2026-01-01T00:00:00Z", "--reason", "drill", "--dir", alpha, "--json",
        ])
        #expect(put.status == 0, "\(put)")
        #expect(try json(put)["partner"] as? String == "bravo")

        let listed = try json(try await cli.run(["quarantines", "--dir", alpha, "--json"]))
        let quarantines = try #require(listed["quarantines"] as? [[String: Any]])
        #expect(quarantines.count == 1)
        #expect(quarantines.first?["partner"] as? String == "bravo")
        #expect(quarantines.first?["reason"] as? String == "drill")
        #expect(quarantines.first?["automatic"] as? Bool == false)
        #expect((quarantines.first?["since"] as? String)?.hasPrefix("2026-01-01T00:00:00") == true)

        let audit = try await cli.run(["audit", "list", "--dir", alpha, "--json"])
        #expect(audit.stdout.contains("partner.quarantined"), "\(audit)")

        let release = try await cli.run(["release", "bravo", "--dir", alpha])
        #expect(release.status == 0, "\(release)")
        let after = try json(try await cli.run(["quarantines", "--dir", alpha, "--json"]))
        #expect((after["quarantines"] as? [Any])?.isEmpty == true)
        #expect(try await cli.run(["audit", "list", "--dir", alpha, "--json"]).stdout.contains("partner.released"))
    }

    @Test(
        "bad quarantine input is refused with one error line and changes nothing",
        arguments: [
            (
                ["quarantine", "delta", "--since", "now"], 66,
                "no partner 'delta' in federation demo; known: bravo, charlie"
            ),
            (["quarantine", "alpha", "--since", "now"], 64, "a node cannot quarantine itself"),
            (["quarantine", "bravo", "--since", "yesterday"], 64, "is not ISO 8601"),
            (["quarantine", "bravo", "--since", "2999-01-01T00:00:00Z"], 64, "is in the future"),
            (["release", "bravo"], 66, "bravo is not quarantined"),
        ]
    )
    func badInput(arguments: [String], status: Int32, message: String) async throws {
        let alpha = try await renderDemo()
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
