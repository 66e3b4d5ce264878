import Foundation
import LiaisonCore
import LiaisonStore
import LiaisonTestSupport
import Testing

/// `liaison delete`, `mark` and `recall` on a node that is not running.
@Suite("liaison delete, mark, recall")
struct LifecycleCLITests {
    let cli: CommandRunner
    let root: URL

    init() throws {
        cli = try CommandRunner()
        root = try TestDirectory.make("lifecycle")
    }

    /// Renders the demo federation; returns the directory of each partner.
    private func renderDemo() async throws -> (alpha: String, bravo: String) {
        let out = root.appendingPathComponent("demo").path
        let outcome = try await cli.run(["topology", "render", CLITests.demoTopology, "--out", out])
        try #require(outcome.status == 0, "\(outcome)")
        return ((out as NSString).appendingPathComponent("alpha"), (out as NSString).appendingPathComponent("bravo"))
    }

    private func put(_ dir: String, relTo: String = "bravo,charlie") async throws -> String {
        let outcome = try await cli.run([
            "put", "--dir", dir, "--collection", "reports", "--rel-to", relTo, "--field", "title=plan",
        ])
        try #require(outcome.status == 0, "\(outcome)")
        return outcome.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func json(_ outcome: CommandRunner.Outcome) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any], "\(outcome)")
    }

    @Test("mark narrows and broadens, keeping what it is not told to change; recall and delete; get shows the result")
    func roundTrip() async throws {
        let (alpha, _) = try await renderDemo()
        let id = try await put(alpha)

        let narrowed = try json(
            try await cli.run(["mark", id, "--rel-to", "bravo", "--orcon", "--dir", alpha, "--json"]))
        #expect(narrowed["recalledFrom"] as? [String] == ["charlie"])
        #expect((narrowed["opIDs"] as? [String])?.count == 2)
        let item = try #require(narrowed["item"] as? [String: Any])
        #expect(item["releasableTo"] as? [String] == ["bravo"])
        #expect(item["orcon"] as? Bool == true)
        #expect(item["classification"] as? String == "UNCLASSIFIED")
        #expect(item["recalledFrom"] as? [String] == ["charlie"])

        let reclassified = try await cli.run(["mark", id, "--classification", "secret", "--no-orcon", "--dir", alpha])
        #expect(reclassified.status == 0, "\(reclassified)")
        #expect(reclassified.stdout == "\(id) marked SECRET, REL TO bravo\n")
        let broadened = try await cli.run(["mark", id, "--rel-to", "bravo", "--rel-to", "charlie", "--dir", alpha])
        #expect(broadened.stdout == "\(id) marked SECRET, REL TO bravo, charlie; recall lifted for charlie\n")

        let recalled = try await cli.run(["recall", id, "--from", "WEST", "--reason", "leak", "--dir", alpha])
        #expect(recalled.status == 0 && recalled.stdout == "\(id) recalled from WEST\n", "\(recalled)")
        let shown = try await cli.run(["get", id, "--dir", alpha])
        #expect(shown.stdout.contains("recalled from  WEST"), "\(shown)")
        #expect(shown.stdout.contains("title = \"plan\""), "the originator lost its values: \(shown)")

        let deleted = try await cli.run(["delete", id, "--dir", alpha])
        #expect(deleted.status == 0 && deleted.stdout == "deleted \(id)\n", "\(deleted)")
        #expect(try json(try await cli.run(["get", id, "--dir", alpha, "--json"]))["deleted"] as? Bool == true)
        let audit = try await cli.run(["audit", "list", "--dir", alpha, "--json"]).stdout
        for note in ["recall from charlie (narrowed)", "recall lifted for charlie", "recall from WEST", "; delete"] {
            #expect(audit.contains(note), "custody lacks '\(note)'")
        }
        let again = try await cli.run(["delete", id, "--dir", alpha])
        #expect(again.status == 64 && again.stderr.contains("already deleted or recalled"), "\(again)")
    }

    @Test("a partner that is not the originator is refused with exit 77 and nothing written")
    func notOriginator() async throws {
        let (alpha, bravo) = try await renderDemo()
        let id = try await put(alpha)
        // Bravo holds alpha's item, as replication would have left it.
        let source = try SQLiteStore(path: alpha + "/store.sqlite", create: false)
        let target = try SQLiteStore(path: bravo + "/store.sqlite", create: false)
        let ops = try source.ops(after: 0, limit: 100).map(\.op)
        _ = try target.commit(CommitBatch(ops: ops, source: .peer(ops[0].body.author), timeMillis: 1))
        let before = try target.custody(from: 1, limit: 1000)
        for arguments in [
            ["delete", id], ["mark", id, "--rel-to", "bravo"], ["recall", id, "--from", "charlie", "--reason", "r"],
        ] {
            let outcome = try await cli.run(arguments + ["--dir", bravo])
            #expect(outcome.status == 77, "\(outcome)")
            #expect(outcome.stderr.hasPrefix("error: only the item's originator"), "\(outcome)")
            #expect(outcome.stderr.split(separator: "\n").count == 1)
        }
        #expect(try target.custody(from: 1, limit: 1000) == before, "a refused command wrote custody")
    }

    @Test(
        "bad input is refused with one error line and changes nothing",
        arguments: [
            (
                ["mark", "ITEM", "--rel-to", "delta"], 64,
                "unknown REL TO 'delta': known partners alpha, bravo, charlie"
            ),
            (["mark", "ITEM"], 64, "nothing to change"),
            (["mark", "ITEM", "--rel-to", "bravo", "--no-rel-to"], 64, "not both"),
            (["mark", "ITEM", "--expires", "tomorrow"], 64, "is not ISO 8601"),
            (["mark", "ITEM", "--expires", "2001-01-01T00:00:00Z"], 64, "is not in the future"),
            (["mark", "ITEM", "--classification", "COSMIC"], 64, "unknown classification 'COSMIC'"),
            (["recall", "ITEM", "--from", "ALL", "--reason", "r"], 64, "name no partner"),
            (["recall", "ITEM", "--from", "delta", "--reason", "r"], 64, "unknown REL TO 'delta'"),
            (["recall", "ITEM", "--reason", " "], 64, "give a reason"),
            (["delete", "not-an-id"], 64, "is not an item id"),
            (["delete", "00000000-0000-0000-0000-000000000000"], 66, "no item 00000000-0000-0000-0000-000000000000"),
        ]
    )
    func badInput(arguments: [String], status: Int32, message: String) async throws {
        let (alpha, _) = try await renderDemo()
        let id = try await put(alpha)
        let before = try await cli.run(["audit", "list", "--dir", alpha, "--json"]).stdout
        let outcome = try await cli.run(arguments.map { $0 == "ITEM" ? id : $0 } + ["--dir", alpha])
        #expect(outcome.status == status, "\(outcome)")
        #expect(outcome.stderr.hasPrefix("error: ") && outcome.stderr.contains(message), "\(outcome)")
        #expect(outcome.stderr.split(separator: "\n").count == 1, "\(outcome)")
        #expect(
            try await cli.run(["audit", "list", "--dir", alpha, "--json"]).stdout == before,
            "a refused command wrote custody"
        )
    }
}
