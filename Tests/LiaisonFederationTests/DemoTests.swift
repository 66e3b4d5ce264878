import Foundation
import LiaisonTestSupport
import Testing

@Suite("liaison demo", .serialized, .timeLimit(.minutes(3)))
struct DemoTests {
    @Test("the demo runs three real nodes and every item reaches exactly the partners entitled to it")
    func demoPasses() async throws {
        let outcome = try await CommandRunner().run(["demo", "--json"])
        #expect(outcome.status == 0, "\(outcome)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        #expect(report["passed"] as? Bool == true)
        let items = try #require(report["items"] as? [[String: Any]])
        #expect(items.count == 7)
        #expect(items.allSatisfy { $0["ok"] as? Bool == true })
        // The two-hop item arrived at charlie with the `source` value withheld.
        let twoHop = try #require(items.first { ($0["label"] as? String)?.contains("bravo and charlie") == true })
        #expect(twoHop["received"] as? [String] == ["alpha", "bravo", "charlie"])
        #expect((twoHop["redacted"] as? [String: [String]])?["charlie"] == ["source"])
        // Nothing was left running.
        let leftovers = try CommandRunner.processes(named: "liaison", withArgument: "run")
        #expect(leftovers.isEmpty, "still running: \(leftovers)")
    }

    @Test("the embedded demo topology is topology/demo.yaml")
    func embeddedTopologyMatchesFile() async throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("topology/demo.yaml")
        let outcome = try await CommandRunner().run(["demo", "--print-topology"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout == (try String(contentsOf: file, encoding: .utf8)))
    }
}
