import Foundation
import LiaisonTestSupport
import Testing

/// `liaison import FILE` on a node that is not running (the running node's path, the API's
/// bulk put, is tested in LiaisonFederationTests).
@Suite("liaison import")
struct ImportCLITests {
    let cli: CommandRunner
    let root: URL

    init() throws {
        cli = try CommandRunner()
        root = try TestDirectory.make("import")
    }

    private func alpha() async throws -> String {
        let out = root.appendingPathComponent("demo").path
        let outcome = try await cli.run(["topology", "render", CLITests.demoTopology, "--out", out])
        try #require(outcome.status == 0, "\(outcome)")
        return (out as NSString).appendingPathComponent("alpha")
    }

    private func file(_ name: String, _ lines: [String]) throws -> String {
        let url = root.appendingPathComponent(name)
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        return url.path
    }

    private func count(_ dir: String) async throws -> Int {
        let listed = try await cli.run(["list", "--dir", dir, "--json", "--limit", "10000"])
        try #require(listed.status == 0, "\(listed)")
        return try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [Any]).count
    }

    @Test("bad lines are reported by number and nothing is imported; a good file is imported in batches")
    func importsOrRefuses() async throws {
        let dir = try await alpha()
        let good = (0..<25).map { #"{"collection": "reports", "relTo": ["bravo"], "fields": {"n": \#($0)}}"# }
        let bad = try file(
            "bad.jsonl",
            [
                good[0], #"{"collection": "reports", "relTo": ["nobody"]}"#, "", "{not json", good[1],
                #"{"tags": ["x"]}"#,
            ])
        let refused = try await cli.run(["import", "--dir", dir, bad])
        #expect(refused.status == 64, "\(refused)")
        #expect(refused.stderr.contains("line 2: unknown REL TO 'nobody'"), "\(refused.stderr)")
        #expect(refused.stderr.contains("line 4: not an item"), "\(refused.stderr)")
        #expect(refused.stderr.contains("line 6: not an item: missing \"collection\""), "\(refused.stderr)")
        #expect(refused.stderr.contains("3 of 5 lines refused; nothing imported"), "\(refused.stderr)")
        await #expect(try count(dir) == 0, "a refused file wrote items")

        let imported = try await cli.run(["import", "--dir", dir, try file("good.jsonl", good + [""]), "--batch", "10"])
        #expect(imported.status == 0, "\(imported)")
        #expect(imported.stdout.hasPrefix("imported 25 items in 3 batches"), "\(imported.stdout)")
        await #expect(try count(dir) == 25)

        let summary = try await cli.run(["import", "--dir", dir, try file("one.jsonl", [good[2]]), "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(summary.stdout.utf8)) as? [String: Any])
        #expect(object["imported"] as? Int == 1 && object["batches"] as? Int == 1, "\(summary)")
        await #expect(try count(dir) == 26)
    }

    @Test(
        "a batch size out of range or a missing file is refused with a clear error",
        arguments: [
            (["--batch", "0"], "--batch 0: use 1 to 10000"),
            (["--batch", "10001"], "--batch 10001: use 1 to 10000"),
        ])
    func badArguments(extra: [String], message: String) async throws {
        let dir = try await alpha()
        let outcome = try await cli.run(["import", "--dir", dir, try file("x.jsonl", ["{}"])] + extra)
        #expect(outcome.status == 64 && outcome.stderr.contains(message), "\(outcome)")
        let missing = try await cli.run(["import", "--dir", dir, root.appendingPathComponent("absent.jsonl").path])
        #expect(missing.status == 66 && missing.stderr.contains("cannot read"), "\(missing)")
    }
}
