import Foundation
import LiaisonDrill
import LiaisonTestSupport
import Testing

/// `liaison drill topology/hostile.yaml --scenario hostile-partner`: alpha, bravo and charlie
/// run honestly; then charlie's node stops and the drill speaks for charlie with its own keys,
/// attacks alpha and bravo, and keeps forging until both quarantine it. In the drill suite, so
/// that it never runs beside another drill.
extension DrillTests {
    static let hostileTopology = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("topology/hostile.yaml").path

    /// The attacks whose outcome does not depend on the machine: each must be detected with
    /// this strike class, refused and audited at both receivers.
    static let deterministicAttacks: [(String, String)] = [
        ("forged", "forged"), ("replayed", "protocol"), ("non-releasable", "not-releasable"),
        ("future-stamped", "future-stamp"), ("non-writer", "non-writer"), ("orcon-reshare", "filtered-out"),
        ("oversized-frame", "protocol"), ("malformed-frame", "protocol"), ("flooding", "flood"),
        ("equivocating", "equivocation"), ("withholding", "withholding"),
    ]

    @Test(
        "hostile-partner: charlie turns with its own keys; every attack is struck with its class, refused and audited; alpha and bravo quarantine it on their own; nothing lost or leaked; the drill passes",
        .timeLimit(.minutes(3))
    )
    func hostilePartner() async throws {
        let outcome = try await CommandRunner().run([
            "drill", Self.hostileTopology, "--scenario", "hostile-partner", "--json",
        ])
        let report = try #require(
            try? JSONDecoder().decode(HostileDrillReport.self, from: Data(outcome.stdout.utf8)), "no report: \(outcome)"
        )
        #expect(try leftoverNodes().isEmpty, "nodes still running after the drill")
        #expect(report.hostile == "charlie")
        #expect(report.honest == ["alpha", "bravo"])
        #expect(
            report.attacks.map(\.name) == [
                "forged", "replayed", "non-releasable", "future-stamped", "non-writer", "orcon-reshare",
                "oversized-frame", "malformed-frame", "flooding", "equivocating", "withholding",
            ])
        let attacks = Dictionary(report.attacks.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for (name, strikeClass) in Self.deterministicAttacks {
            let attack = try #require(attacks[name])
            #expect(attack.outcomes.map(\.receiver) == ["alpha", "bravo"], "\(name)")
            for result in attack.outcomes {
                #expect(result.expectedStrike == strikeClass, "\(name) -> \(result.receiver)")
                #expect(result.detected, "\(name) -> \(result.receiver) not struck: \(result.strikes)")
                #expect((result.strikes[strikeClass] ?? 0) > 0, "\(name) -> \(result.receiver): \(result.strikes)")
                #expect(result.refused == true, "\(name) -> \(result.receiver): \(result.refusedDetail)")
                #expect(result.audited, "\(name) -> \(result.receiver) has no custody entry")
                #expect(result.finding == nil, "\(name) -> \(result.receiver): \(result.finding ?? "")")
            }
        }
        #expect(report.findings.isEmpty, "\(report.findings)")

        // Both honest nodes quarantined charlie on their own, from its first strike on.
        for seen in report.quarantines {
            #expect(seen.quarantined && seen.automatic == true, "\(seen.node): \(seen)")
            #expect(seen.reason?.contains("forged") == true, "\(seen.node): \(seen.reason ?? "-")")
            #expect(seen.sinceMillis.map { $0 >= report.turnedAtMillis - 1_000 } == true, "\(seen)")
        }
        #expect(report.containedAtMillis != nil)
        #expect(report.persistedForgedOps > 0)
        #expect(report.connectionsRefusedAfterQuarantine.values.allSatisfy { $0 > 0 })
        #expect(report.lateOp?.contains("at alpha: not in its store") == true, "\(report.lateOp ?? "-")")

        #expect(report.lost == 0, "lost: \(report.lostDetail)")
        #expect(report.leaked == 0, "leaked: \(report.leakedDetail)")
        #expect(report.sharedItems > 0)
        #expect(report.digestMismatches == 0, "\(report.digestDetail)")
        #expect(report.twinItems > 0)
        #expect(report.twinMismatches == 0, "\(report.twinDetail)")
        #expect(report.honestStrikes.isEmpty, "\(report.honestStrikes)")
        #expect(report.deliveriesAchieved == report.deliveriesExpected)
        #expect(report.attackDeliveries > 0 && report.attackLatencyP99Millis != nil)
        #expect(report.passed, "\(report.problems)")
        #expect(outcome.status == 0, "\(outcome.stderr)")
    }

    @Test(
        "hostile-partner: a bad target or a fault duration gives one clear error line and exit 64",
        arguments: [
            (["--target", "zulu"], "no such partner"),
            (["--fault-seconds", "5"], "does not apply to hostile-partner"),
        ])
    func hostileBadFlags(extra: [String], message: String) async throws {
        let outcome = try await CommandRunner().run(
            ["drill", Self.hostileTopology, "--scenario", "hostile-partner"] + extra)
        #expect(outcome.status == 64, "\(outcome)")
        #expect(outcome.stderr.contains(message), "\(outcome)")
        #expect(outcome.stdout.isEmpty)
        #expect(try leftoverNodes().isEmpty)
    }
}
