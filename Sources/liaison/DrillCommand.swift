import ArgumentParser
import Foundation
import LiaisonCore
import LiaisonSimulation

struct DrillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Break things on purpose and report. --simulate runs whole federations in one process, deterministically.",
        discussion: """
            With --simulate, each seed builds a federation of 3-7 nodes on the real replication state machines \
            with in-memory stores, a virtual clock and a seeded faulty network (broken channels, partitions, \
            crash-restarts), runs a workload, heals, and checks the invariants. A failing seed prints the command \
            that replays it exactly.
            """
    )

    @Flag(help: "Run in the deterministic simulator (the only mode so far).")
    var simulate = false

    @Option(help: "Run this one seed.")
    var seed: UInt64?

    @Option(help: "Run this many seeds, from --first-seed on.")
    var seeds: Int?

    @Option(help: "The first seed of a sweep.")
    var firstSeed: UInt64 = 1

    @Option(help: "Number of nodes (3-7); by default it derives from the seed.")
    var nodes: Int?

    @Flag(inversion: .prefixedNo, help: "Make one node hostile (default: every third seed).")
    var hostile: Bool?

    @Flag(help: "Print JSON (one report per seed).")
    var json = false

    func validate() throws {
        guard simulate else { throw ValidationError("only --simulate drills exist so far; real-process drills come with the redundancy issue") }
        if let nodes, !(3...7).contains(nodes) { throw ValidationError("--nodes must be between 3 and 7") }
        if seed != nil && seeds != nil { throw ValidationError("give --seed or --seeds, not both") }
        if let seeds, seeds < 1 { throw ValidationError("--seeds must be at least 1") }
    }

    func run() throws {
        let list: [UInt64] = seed.map { [$0] } ?? (0..<UInt64(seeds ?? 1)).map { firstSeed + $0 }
        var reports = [SimulationReport]()
        let started = ContinuousClock.now
        for value in list {
            let report = Simulation.run(Simulation.Options(seed: value, nodes: nodes, hostile: hostile))
            reports.append(report)
            if !json {
                if report.passed {
                    if list.count <= 20 {
                        print("seed \(value): ok  nodes \(report.nodes)  hostile \(report.hostile ?? "-") attacks \(report.attacks)  ops \(report.opsWritten)  crashes \(report.crashes)  partitions \(report.partitions)  broken channels \(report.channelsBroken)  converged in \(report.convergeMillis ?? 0) ms (virtual)  trace \(report.traceHash.prefix(16))")
                    }
                } else {
                    print("seed \(value): FAILED")
                    for violation in report.violations.prefix(10) { print("  \(violation)") }
                    print("  replay: \(report.replay)")
                }
            }
        }
        let failed = reports.filter { !$0.passed }
        if json {
            try printJSON(reports)
        } else {
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("\(reports.count - failed.count) passed, \(failed.count) failed (\(String(format: "%.1f", seconds)) s)")
        }
        if !failed.isEmpty { throw ExitCode(1) }
    }
}
