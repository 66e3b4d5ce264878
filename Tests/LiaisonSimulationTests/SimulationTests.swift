import Foundation
import LiaisonSimulation
import Testing

@Suite("Deterministic simulation")
struct SimulationTests {
    /// Seeds per CI run; `LIAISON_SIM_SEEDS` overrides.
    static let sweepSize = Int(ProcessInfo.processInfo.environment["LIAISON_SIM_SEEDS"] ?? "") ?? 1_000

    static func regressionSeeds() throws -> [UInt64] {
        let url = try #require(Bundle.module.url(forResource: "regression-seeds", withExtension: "txt"))
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            .compactMap { UInt64($0) }
    }

    /// Twelve hostile runs (seeds 3, 6, …, 36) with `configure` applied to their options.
    static func hostileRuns(
        _ configure: @escaping @Sendable (inout Simulation.Options) -> Void
    ) async -> [SimulationReport] {
        await onThread {
            (1...UInt64(12)).map { index in
                var options = Simulation.Options(seed: index * 3, hostile: true)
                configure(&options)
                return Simulation.run(options)
            }
        }
    }

    /// Runs CPU-bound work on a thread of its own. The simulator never awaits, so run on the
    /// cooperative pool it would hold both of this machine's pool threads for minutes and
    /// starve every async test beside it.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: work()) }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Runs seeds two at a time (the machines have two cores), each half on its own thread;
    /// returns the failed reports.
    static func sweep(_ seeds: [UInt64]) async -> [SimulationReport] {
        let even = seeds.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let odd = seeds.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        async let first = onThread { even.map { Simulation.run(Simulation.Options(seed: $0)) }.filter { !$0.passed } }
        async let second = onThread { odd.map { Simulation.run(Simulation.Options(seed: $0)) }.filter { !$0.passed } }
        return (await first + second).sorted { $0.seed < $1.seed }
    }

    @Test("the same seed gives the same run: equal trace hashes and reports")
    func deterministic() async {
        let (first, second, other) = await Self.onThread {
            (
                Simulation.run(Simulation.Options(seed: 42)), Simulation.run(Simulation.Options(seed: 42)),
                Simulation.run(Simulation.Options(seed: 43))
            )
        }
        #expect(first == second)
        #expect(first.opsWritten > 0)
        #expect(other.traceHash != first.traceHash)
    }

    @Test("every seed that ever failed passes")
    func regressions() async throws {
        let seeds = try Self.regressionSeeds()
        #expect(!seeds.isEmpty)
        let failed = await Self.sweep(seeds)
        #expect(failed.isEmpty, "\(failed.map { "\($0.replay): \($0.violations.prefix(3))" })")
    }

    @Test("a sweep of seeds: I1, I2, I3, I7 and monotonic checkpoints hold under faults")
    func sweep() async {
        let failed = await Self.sweep((1...UInt64(Self.sweepSize)).map { $0 })
        #expect(failed.isEmpty, "\(failed.map { "\($0.replay): \($0.violations.prefix(3))" })")
    }

    @Test(
        "a hostile partner's forgeries, unauthorized writes, unreleasable items and future stamps are refused, audited, and change nothing for honest nodes"
    )
    func hostilePartner() async {
        let reports = await Self.onThread {
            [UInt64(3), 6, 9].map { Simulation.run(Simulation.Options(seed: $0, hostile: true)) }
        }
        for report in reports {
            let seed = report.seed
            #expect(report.hostile != nil, "seed \(seed)")
            #expect(report.attacks > 0, "seed \(seed)")
            #expect(report.passed, "seed \(seed): \(report.violations.prefix(3))")
        }
    }

    @Test(
        "every honest node quarantines the hostile one partway through, at different times: its links close, I4 holds (each item is the log without its ops since T), and nothing else changes"
    )
    func quarantineHappens() async {
        let reports = await Self.hostileRuns { $0.quarantine = true }
        for report in reports {
            #expect(report.quarantined == report.hostile && report.hostile != nil, "seed \(report.seed)")
            #expect(report.passed, "\(report.replay): \(report.violations.prefix(3))")
        }
    }

    @Test(
        "a quorum of honest nodes revokes the hostile one; the other honest nodes apply it by gossip, I4 holds, and no honest node is struck"
    )
    func revocationHappens() async {
        let reports = await Self.hostileRuns {
            $0.quarantine = true
            $0.revocation = true
        }
        for report in reports {
            #expect(report.revocationQuorum != nil, "seed \(report.seed)")
            #expect(report.quarantined == report.hostile && report.hostile != nil, "seed \(report.seed)")
            #expect(report.passed, "\(report.replay) (revocation): \(report.violations.prefix(3))")
        }
        #expect(
            reports.contains { ($0.revocationQuorum ?? .max) < $0.nodes - 1 },
            "no run left an honest node to learn the revocation by gossip alone")
    }

    @Test(
        "a hostile node that withholds its acks past the ack deadline is struck for withholding by the honest node it starves, and nothing else changes"
    )
    func withholdingHappens() async {
        let reports = await Self.hostileRuns { _ in }
        for report in reports {
            #expect(report.passed, "\(report.replay): \(report.violations.prefix(3))")
        }
        #expect(reports.filter { $0.acksWithheld > 0 }.count >= 6, "the hostile node rarely withholds acks")
        #expect(
            reports.filter { $0.withholdingStrikes > 0 }.count >= 3,
            "withheld acks were rarely struck: \(reports.map { ($0.seed, $0.acksWithheld, $0.withholdingStrikes) })")
    }

    @Test(
        "a hostile clock at the edge of the skew, honest clocks a second apart: ops beyond a receiver's skew wait for its clock, none is lost, no honest forwarder is struck"
    )
    func edgeOfTheSkew() async {
        let reports = await Self.hostileRuns { $0.edgeClocks = true }
        for report in reports {
            #expect(report.edgeClocks, "seed \(report.seed)")
            #expect(report.passed, "\(report.replay) (edge clocks): \(report.violations.prefix(3))")
        }
        #expect(reports.reduce(0) { $0 + $1.opsDeferred } > 0, "no op ever came beyond a receiver's skew")
    }

    @Test(
        "tag filters are in the sweep: over seeds 1-50 links require or exclude tags, the workload adds and removes tags and deletes tagged items, senders withhold ops for their tags, and the invariants hold"
    )
    func tagFiltersHappen() async {
        let reports = await Self.onThread { (1...UInt64(50)).map { Simulation.run(Simulation.Options(seed: $0)) } }
        let failed = reports.filter { !$0.passed }
        #expect(failed.isEmpty, "\(failed.map { "\($0.replay): \($0.violations.prefix(3))" })")
        #expect(reports.filter { $0.tagFilters > 0 }.count >= 25, "fewer than half the runs have a tag filter")
        #expect(reports.contains { $0.tagFilters == 0 }, "every run has a tag filter: the share is not drawn")
        #expect(reports.reduce(0) { $0 + $1.tagChanges } > 0)
        #expect(reports.reduce(0) { $0 + $1.taggedDeletes } > 0)
        #expect(reports.filter { $0.opsWithheldForTags > 0 }.count >= 10, "tag filters rarely withhold anything")
        // Tag filters must not starve the runs: the first 20 seeds deliver most of what they
        // deliver without them.
        let without = await Self.onThread {
            (1...UInt64(20)).map { seed in
                var options = Simulation.Options(seed: seed)
                options.tagFilters = false
                return Simulation.run(options)
            }
        }
        #expect(without.allSatisfy { $0.tagFilters == 0 })
        let delivered = reports.prefix(20).reduce(0) { $0 + $1.opsDelivered }
        let delivers = without.reduce(0) { $0 + $1.opsDelivered }
        #expect(
            delivered * 4 >= delivers * 3,
            "tag filters starve the runs: \(delivered) ops delivered, \(delivers) without")
    }

    @Test(
        "histories that pass one batch go in parts: over seeds 2, 6, …, 78 (batches of 4) the changes of tags and markings send item histories in parts, and the invariants hold"
    )
    func historiesGoInParts() async {
        let reports = await Self.onThread {
            stride(from: UInt64(2), through: 78, by: 4).map { Simulation.run(Simulation.Options(seed: $0)) }
        }
        #expect(reports.allSatisfy { $0.maxBatchOps == 4 })
        let failed = reports.filter { !$0.passed }
        #expect(failed.isEmpty, "\(failed.map { "\($0.replay): \($0.violations.prefix(3))" })")
        // Without parts such a history went in one batch past the receiver's bound (4× its
        // batch size), which it refused as a protocol violation, striking the honest sender
        // (seed 146, before parts).
        #expect(reports.reduce(0) { $0 + $1.partsCommitted } > 0, "no history went in parts")
    }

    @Test("the tag check bites: engines that ignore the links' tag conditions are caught sending what they exclude")
    func tagCheckBites() async {
        let reports = await Self.onThread {
            (1...UInt64(10)).map { seed in
                var options = Simulation.Options(seed: seed, hostile: false)
                options.enginesIgnoreTags = true
                return Simulation.run(options)
            }
        }
        let caught = reports.filter { report in
            report.violations.contains { $0.hasPrefix("I2: ") && $0.contains("over a link that requires") }
        }
        #expect(caught.count >= 5, "only \(caught.count) of 10 runs caught")
    }

    @Test(
        "the faults really happen: crashes, partitions and broken channels across a sweep; narrowings and deletes make partners purge"
    )
    func faultsHappen() async {
        let reports = await Self.onThread { (1...UInt64(20)).map { Simulation.run(Simulation.Options(seed: $0)) } }
        #expect(reports.reduce(0) { $0 + $1.itemsPurged } > 0)
        #expect(reports.reduce(0) { $0 + $1.crashes } > 0)
        #expect(reports.reduce(0) { $0 + $1.partitions } > 0)
        #expect(reports.reduce(0) { $0 + $1.channelsBroken } > 0)
        #expect(reports.allSatisfy { $0.convergeMillis != nil })
    }

    @Test(
        "several channels per link, failover, link cuts and sealed relays (withholding relays too) really happen, and the invariants hold"
    )
    func channelsAndRelaysHappen() async {
        let reports = await Self.onThread { (1...UInt64(40)).map { Simulation.run(Simulation.Options(seed: $0)) } }
        let allPassed = reports.allSatisfy { $0.passed }
        #expect(allPassed, "\(reports.filter { !$0.passed }.map { "\($0.replay): \($0.violations.prefix(3))" })")
        let modes = Set(reports.map(\.channelMode))
        #expect(modes == Set(["failover", "active-active"]))
        #expect(reports.reduce(0) { $0 + $1.endpointFaults } > 0)
        #expect(reports.reduce(0) { $0 + $1.linkCuts } > 0)
        #expect(reports.reduce(0) { $0 + $1.failovers } > 0)
        #expect(reports.reduce(0) { $0 + $1.envelopesSealed } > 0)
        #expect(reports.reduce(0) { $0 + $1.envelopesOpened } > 0)
        #expect(
            reports.reduce(0) { $0 + $1.envelopesTakenAhead } > 0,
            "the engines took envelopes as their readers opened them")
        // With a withholding relay wherever there is a relay: envelopes go missing, the
        // senders send them again (through another relay if there is one), and the
        // invariants still hold.
        let withholding = await Self.onThread {
            (1...UInt64(40)).map { seed in
                var options = Simulation.Options(seed: seed)
                options.withholdingRelay = true
                return Simulation.run(options)
            }
        }
        let stillPassed = withholding.allSatisfy { $0.passed }
        #expect(
            stillPassed,
            "\(withholding.filter { !$0.passed }.map { "\($0.replay) (withholding relay): \($0.violations.prefix(3))" })"
        )
        #expect(withholding.contains { $0.envelopesWithheld > 0 }, "no relay withheld an envelope")
        #expect(
            withholding.contains { $0.envelopesWithheld > 0 && $0.envelopeRetries > 0 },
            "withheld envelopes were never sent again")
    }
}
