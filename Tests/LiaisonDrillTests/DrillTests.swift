import Foundation
import LiaisonDrill
import LiaisonNode
import LiaisonTestSupport
import Testing

/// `liaison drill TOPOLOGY --scenario …` on topology/drill.yaml: five real nodes behind fault
/// proxies, a steady write load, one fault for four seconds, a heal. Each drill bounds itself
/// (links up within 30 s, convergence within 60 s of the writes stopping).
@Suite("liaison drill on real processes", .serialized, .timeLimit(.minutes(5)))
struct DrillTests {
    static let topology = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("topology/drill.yaml").path

    /// Runs one drill and decodes its report; fails the test with the drill's output if it
    /// printed none.
    /// The fault lasts 4 s, and up to 60 s longer until every classification written for the
    /// cut-off partner has reached it (`--hold-fault`): on a loaded machine relaying can take
    /// longer than 4 s to start, and what is tested is that it happens, not how fast.
    private func drill(
        _ scenario: String, hold: Bool = true, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (CommandRunner.Outcome, DrillReport) {
        let outcome = try await CommandRunner().run(
            ["drill", Self.topology, "--scenario", scenario, "--json", "--fault-seconds", "4"]
                + (hold ? ["--hold-fault", "60"] : []))
        let report = try #require(
            try? JSONDecoder().decode(DrillReport.self, from: Data(outcome.stdout.utf8)),
            "no report: \(outcome)",
            sourceLocation: sourceLocation
        )
        // Nothing the drill started is left running.
        #expect(try leftoverNodes().isEmpty, "nodes still running after the drill", sourceLocation: sourceLocation)
        return (outcome, report)
    }

    /// The checks every scenario must pass.
    private func expectHealthy(
        _ outcome: CommandRunner.Outcome, _ report: DrillReport, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(report.lost == 0, "lost: \(report.lostDetail)", sourceLocation: sourceLocation)
        #expect(report.leaked == 0, "leaked: \(report.leakedDetail)", sourceLocation: sourceLocation)
        let passed = report.passed
        #expect(passed, "problems: \(report.problems)", sourceLocation: sourceLocation)
        #expect(outcome.status == 0, "\(outcome.stderr)", sourceLocation: sourceLocation)
        #expect(report.opsWrittenDuringFault > 0, sourceLocation: sourceLocation)
        #expect(report.deliveriesDuringFault > 0, sourceLocation: sourceLocation)
        #expect(report.deliveriesAchieved == report.deliveriesExpected, sourceLocation: sourceLocation)
        #expect(report.convergedAfterHealMillis != nil, sourceLocation: sourceLocation)
    }

    @Test(
        "link-cut alpha-bravo: bravo keeps receiving alpha's writes, SECRET ones sealed through a relay; nothing lost or leaked"
    )
    func linkCut() async throws {
        let (outcome, report) = try await drill("link-cut")
        #expect(report.target == "alpha-bravo")
        expectHealthy(outcome, report)
        let cutOff = try #require(report.cutOff)
        #expect(cutOff.partner == "bravo" && cutOff.from == "alpha")
        #expect(cutOff.deliveredDuringFault > 0)
        // delta and echo may not read SECRET, so these crossed them sealed.
        #expect((cutOff.deliveredDuringFaultByClassification["SECRET"] ?? 0) > 0, "\(cutOff)")
        expectHoldEndedByDelivery(report)
        // The drill looked at both ends of the cut link while it was cut.
        #expect(Set(report.linkSnapshots.map(\.node)) == ["alpha", "bravo"])
    }

    @Test("endpoint-down bravo:0: alpha fails over to bravo's backup endpoint; nothing lost or leaked")
    func endpointDown() async throws {
        let (outcome, report) = try await drill("endpoint-down")
        #expect(report.target == "bravo:0")
        expectHealthy(outcome, report)
        let cutOff = try #require(report.cutOff)
        #expect(cutOff.partner == "bravo")
        #expect(cutOff.deliveredDuringFault > 0)
        #expect((cutOff.deliveredDuringFaultByClassification["SECRET"] ?? 0) > 0, "\(cutOff)")
        expectHoldEndedByDelivery(report)
    }

    /// `--hold-fault 60` ends the fault once every classification arrived: well before the
    /// hold's bound, which a hold that never saw the deliveries would reach.
    private func expectHoldEndedByDelivery(_ report: DrillReport, sourceLocation: SourceLocation = #_sourceLocation) {
        let lasted = report.healedAtMillis - report.faultStartedAtMillis
        #expect(
            lasted >= 4_000 && lasted < 60_000, "the fault lasted \(Int(lasted)) ms", sourceLocation: sourceLocation)
    }

    @Test("partner-down bravo: the others keep exchanging, bravo catches up after its restart; nothing lost or leaked")
    func partnerDown() async throws {
        let (outcome, report) = try await drill("partner-down", hold: false)
        #expect(report.target == "bravo")
        expectHealthy(outcome, report)
        #expect(report.cutOff == nil)
    }

    @Test(
        "bad drill flags give one clear error line and exit 64",
        arguments: [
            (["drill", "--scenario", "link-cut"], "TOPOLOGY"),
            (["drill", DrillTests.topology, "--scenario", "flood"], "unknown scenario 'flood'"),
            (["drill", DrillTests.topology], "--scenario is required"),
            (["drill", DrillTests.topology, "--scenario", "link-cut", "--fault-seconds", "0"], "--fault-seconds"),
            (["drill", DrillTests.topology, "--scenario", "link-cut", "--hold-fault", "601"], "--hold-fault"),
            (["drill", DrillTests.topology, "--scenario", "partner-down", "--hold-fault", "10"], "cut a partner off"),
            (["drill", DrillTests.topology, "--simulate"], "not both"),
            (["drill", DrillTests.topology, "--scenario", "link-cut", "--target", "alpha-zulu"], "A-B"),
            (["drill", DrillTests.topology, "--scenario", "endpoint-down", "--target", "bravo:7"], "endpoint(s)"),
        ])
    func badFlags(arguments: [String], message: String) async throws {
        let outcome = try await CommandRunner().run(arguments)
        #expect(outcome.status == 64, "\(outcome)")
        #expect(outcome.stderr.contains(message), "\(outcome)")
        #expect(outcome.stdout.isEmpty)
        #expect(try leftoverNodes().isEmpty)
    }

    /// Pids of `liaison run` processes on a drill's directory.
    func leftoverNodes() throws -> [Int32] {
        var found = [Int32]()
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc") {
            guard let pid = Int32(entry), let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
            else { continue }
            let arguments = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if arguments.contains("run"), arguments.contains(where: { $0.contains("liaison-drill-") }) {
                found.append(pid)
            }
        }
        return found
    }
}
