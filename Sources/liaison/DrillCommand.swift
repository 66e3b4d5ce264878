import ArgumentParser
import Dispatch
import Foundation
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonSimulation

struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract:
            "Break things on purpose and report: real nodes behind fault proxies, or (--simulate) whole federations in one process.",
        discussion: """
            liaison drill TOPOLOGY --scenario link-cut|endpoint-down|partner-down renders the topology into a \
            temporary directory, starts one 'liaison run' per partner with a TCP proxy in front of every endpoint \
            a node dials, writes items with mixed markings at a steady rate, injects the fault (cut proxies, or \
            SIGKILL a node), heals it, and reports deliveries during the fault, latencies, time to converge, and \
            items lost or leaked. Exit 0 only if nothing was lost or leaked, everything converged, and the \
            partner a link-cut or endpoint-down cut off kept receiving during the fault. See docs/drills.md.

            --scenario hostile-partner runs every partner honestly, then stops one (--target, or the partner with \
            the most neighbours) and speaks for it with its own keys: forged, replayed, non-releasable, \
            future-stamped, non-writer and ORCON re-shared ops, an oversized and a malformed frame, a flood, \
            equivocating creates, withheld acks, then forged ops until its neighbours quarantine it. It reports, \
            per attack and receiver, whether a strike of the right class counted it, whether the receiver kept \
            none of it, and whether custody recorded it; when each node quarantined the partner; what the honest \
            nodes lost or leaked and whether their digests agree. Exit 0 only if every attack was detected, \
            refused and audited and nothing was lost or leaked.

            With --simulate, each seed builds a federation of 3-7 nodes on the real replication state machines \
            with in-memory stores, a virtual clock and a seeded faulty network (broken channels, partitions, \
            crash-restarts), runs a workload, heals, and checks the invariants. A failing seed prints the command \
            that replays it exactly.
            """
    )

    @Argument(help: "A topology file: run a drill on real processes (see docs/drills.md).")
    var topology: String?

    @Option(help: "What to break: link-cut, endpoint-down, partner-down or hostile-partner.")
    var scenario: String?

    @Option(
        help:
            "What exactly: A-B (link-cut), PARTNER:INDEX (endpoint-down), PARTNER (partner-down; hostile-partner: the partner that turns). Default: chosen from the topology."
    )
    var target: String?

    @Option(help: "How long the fault lasts, in seconds (1-600).")
    var faultSeconds: Int?

    @Option(
        help:
            "Keep the fault up to this many seconds longer (1-600) while some classification written for the cut-off partner has not reached it (link-cut, endpoint-down)."
    )
    var holdFault: Int?

    @Flag(help: "Keep the node directories and logs (their path is printed).")
    var keep = false

    @Flag(help: "Run in the deterministic simulator instead of on real processes.")
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

    @Flag(
        inversion: .prefixedNo,
        help: "Make one relay withhold every envelope it should carry (default: the seed decides).")
    var withholdingRelay: Bool?

    @Flag(
        inversion: .prefixedNo,
        help: "Have every honest node quarantine the hostile node partway through (default: half the hostile seeds).")
    var quarantine: Bool?

    @Flag(help: "Print JSON (the drill report; with --simulate, one report per seed).")
    var json = false

    func validate() throws {
        if simulate && topology != nil { throw ValidationError("give a TOPOLOGY file or --simulate, not both") }
        guard simulate else {
            guard topology != nil else {
                throw ValidationError(
                    "give a TOPOLOGY file for a drill on real processes, or --simulate for the simulator")
            }
            if seed != nil || seeds != nil || nodes != nil || hostile != nil || withholdingRelay != nil
                || quarantine != nil
            {
                throw ValidationError(
                    "--seed, --seeds, --nodes, --hostile, --withholding-relay and --quarantine belong to --simulate")
            }
            guard let scenario else {
                throw ValidationError(
                    "--scenario is required: \(DrillScenario.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard DrillScenario(rawValue: scenario) != nil else {
                throw ValidationError(
                    "unknown scenario '\(scenario)'; use one of: \(DrillScenario.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            if let faultSeconds, !(1...600).contains(faultSeconds) {
                throw ValidationError("--fault-seconds must be between 1 and 600")
            }
            if faultSeconds != nil, scenario == DrillScenario.hostilePartner.rawValue {
                throw ValidationError(
                    "--fault-seconds does not apply to hostile-partner: its attacks set their own pace")
            }
            if let holdFault, !(1...600).contains(holdFault) {
                throw ValidationError("--hold-fault must be between 1 and 600")
            }
            if holdFault != nil,
                ![DrillScenario.linkCut.rawValue, DrillScenario.endpointDown.rawValue].contains(scenario)
            {
                throw ValidationError("--hold-fault applies to link-cut and endpoint-down, which cut a partner off")
            }
            if let target, target.isEmpty {
                throw ValidationError("--target is empty; leave it out to use the default")
            }
            return
        }
        if scenario != nil || target != nil || faultSeconds != nil || holdFault != nil || keep {
            throw ValidationError(
                "--scenario, --target, --fault-seconds, --hold-fault and --keep belong to drills on real processes (a TOPOLOGY file)"
            )
        }
        if let nodes, !(3...7).contains(nodes) { throw ValidationError("--nodes must be between 3 and 7") }
        if seed != nil && seeds != nil { throw ValidationError("give --seed or --seeds, not both") }
        if let seeds, seeds < 1 { throw ValidationError("--seeds must be at least 1") }
    }

    func run() async throws {
        if simulate {
            try runSimulation()
        } else {
            try await runDrill()
        }
    }

    private func runSimulation() throws {
        let list: [UInt64] = seed.map { [$0] } ?? (0..<UInt64(seeds ?? 1)).map { firstSeed + $0 }
        var reports = [SimulationReport]()
        let started = ContinuousClock.now
        for value in list {
            var options = Simulation.Options(seed: value, nodes: nodes, hostile: hostile)
            options.withholdingRelay = withholdingRelay
            options.quarantine = quarantine
            let report = Simulation.run(options)
            reports.append(report)
            if !json {
                if report.passed {
                    if list.count <= 20 {
                        print(
                            "seed \(value): ok  nodes \(report.nodes)  hostile \(report.hostile ?? "-") attacks \(report.attacks)  ops \(report.opsWritten)  crashes \(report.crashes)  partitions \(report.partitions)  broken channels \(report.channelsBroken)  endpoint faults \(report.endpointFaults)  link cuts \(report.linkCuts)  \(report.channelMode)  failovers \(report.failovers)  envelopes \(report.envelopesSealed) sealed \(report.envelopesOpened) opened \(report.envelopesWithheld) withheld \(report.envelopeRetries) resent  \(report.quarantined.map { "quarantined \($0)  " } ?? "")converged in \(report.convergeMillis ?? 0) ms (virtual)  trace \(report.traceHash.prefix(16))"
                        )
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
            let seconds = elapsed.seconds
            print(
                "\(reports.count - failed.count) passed, \(failed.count) failed (\(String(format: "%.1f", seconds)) s)")
        }
        if !failed.isEmpty { throw ExitCode(1) }
    }

    private func runDrill() async throws {
        if scenario == DrillScenario.hostilePartner.rawValue {
            try await runHostileDrill()
            return
        }
        guard let scenario else { return }
        try await runRealDrill { topology, root, executable throws(LiaisonError) in
            var options = Drill.Options(scenario: try DrillScenario.named(scenario), target: target)
            if let faultSeconds { options.faultSeconds = Double(faultSeconds) }
            options.holdFaultSeconds = holdFault.map(Double.init)
            return try Drill(topology: topology, options: options, root: root, executable: executable)
        }
    }

    /// The hostile-partner drill: real nodes, one of them replaced by a hostile partner.
    private func runHostileDrill() async throws {
        try await runRealDrill { topology, root, executable throws(LiaisonError) in
            try HostileDrill(
                topology: topology, options: HostileDrill.Options(target: target), root: root, executable: executable)
        }
    }

    /// Runs a drill of real processes in a fresh directory (kept with --keep), killing its
    /// nodes on Ctrl-C; prints the report (or its JSON) and fails when the drill did.
    private func runRealDrill<D: RealProcessDrill>(
        _ make: (Topology, URL, URL) throws(LiaisonError) -> D
    ) async throws {
        try await reportingErrorsAsync {
            guard let topology else { return }
            let model = try Topology.load(path: topology)
            guard let executable = Bundle.main.executableURL else {
                throw LiaisonError(.io, "cannot find the liaison executable to start nodes")
            }
            let root = FileManager.default.temporaryDirectory.appendingPathComponent(
                "liaison-drill-\(UUID().uuidString.prefix(8))")
            let drill: D
            do {
                drill = try make(model, root, executable)
            } catch {
                if !keep { try? FileManager.default.removeItem(at: root) }
                throw error
            }
            let interrupt = Self.stopOnInterrupt({ drill.killNodes() }, root: keep ? nil : root)
            defer {
                interrupt.cancel()
                if !keep { try? FileManager.default.removeItem(at: root) }
            }
            let quiet = json
            var report: D.Report
            do {
                report = try await drill.run { line in
                    if !quiet { FileHandle.standardError.write(Data("• \(line)\n".utf8)) }
                }
            } catch let error as LiaisonError where !keep && error.message.contains(root.path) {
                // The directory named in the message is removed on the way out.
                throw LiaisonError(
                    error.code, "\(error.message); run again with --keep to keep the logs", cause: error.cause)
            }
            if keep { report.directory = root.path }
            if json {
                try printJSON(report)
            } else {
                for line in report.summary { print(line) }
            }
            if !report.passed { throw ExitCode(ExitStatus.failure) }
        }
    }

    /// On Ctrl-C: kill every node the drill started, remove its directory, exit.
    private static func stopOnInterrupt(
        _ stopNodes: @escaping @Sendable () -> Void, root: URL?
    ) -> any DispatchSourceSignal {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            stopNodes()
            if let root { try? FileManager.default.removeItem(at: root) }
            FileHandle.standardError.write(Data("interrupted: stopped every node the drill started\n".utf8))
            Foundation.exit(130)
        }
        source.resume()
        return source
    }
}

/// What `liaison drill TOPOLOGY --scenario …` needs of a drill of real processes.
protocol RealProcessDrill: Sendable {
    associatedtype Report: RealProcessDrillReport
    func run(progress: @escaping @Sendable (String) -> Void) async throws(LiaisonError) -> Report
    func killNodes()
}

/// What it prints of the drill's report.
protocol RealProcessDrillReport: Encodable {
    var directory: String? { get set }
    var summary: [String] { get }
    var passed: Bool { get }
}

extension Drill: RealProcessDrill {}
extension HostileDrill: RealProcessDrill {}
extension DrillReport: RealProcessDrillReport {}
extension HostileDrillReport: RealProcessDrillReport {}
