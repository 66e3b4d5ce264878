import Foundation
import LiaisonTestSupport
import Testing

/// A simulator seed must replay exactly in another process: the command a failing run
/// prints is how a failure is investigated. Each process draws its own hash seed, so a
/// decision that follows a dictionary's order shows as a different trace.
@Suite("Simulator replays across processes")
struct SimulationReplayTests {
    @Test(
        "the same seed gives the same trace in four processes (seed 413151 once resent two sealed envelopes of one size in hash order)"
    )
    func sameTraceInEveryProcess() async throws {
        let cli = try CommandRunner()
        var traces = Set<String>()
        for _ in 0..<4 {
            let outcome = try await cli.run([
                "drill", "--simulate", "--seed", "413151", "--nodes", "4", "--hostile", "--json",
            ])
            try #require(outcome.status == 0, "\(outcome.stderr)")
            let runs = try #require(
                try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [[String: Any]],
                "\(outcome.stdout)")
            traces.insert(try #require(runs.first?["traceHash"] as? String))
        }
        #expect(traces.count == 1, "\(traces)")
    }
}
