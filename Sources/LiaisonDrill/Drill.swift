public import Foundation
import LiaisonAPI
public import LiaisonCore
public import LiaisonNode
import LiaisonReplication
import Synchronization

/// A drill on real processes: a federation of `liaison run` nodes on loopback in which every
/// node dials its neighbours through a `FaultProxy`, a steady stream of writes with mixed
/// markings, one fault (a cut link, a dead endpoint, a killed partner), a heal, and a report
/// of what arrived where and when, what was lost and what leaked.
///
/// Every node and proxy the drill starts is stopped when `run` returns or throws.
public final class Drill: Sendable {
    /// How a drill runs.
    public struct Options: Sendable {
        /// What to break.
        public var scenario: DrillScenario
        /// What exactly (`A-B`, `P:i`, `P`); nil picks a default from the topology.
        public var target: String?
        /// How long the fault lasts.
        public var faultSeconds: Double
        /// At most this much longer the fault may last (link-cut, endpoint-down) while some
        /// classification written for the cut-off partner since the fault began has not
        /// reached it yet: the drill then shows that every kind gets through during the fault
        /// (SECRET only sealed through relays), however slow the machine. Nil: the fault
        /// lasts `faultSeconds`, whatever arrived.
        public var holdFaultSeconds: Double?
        /// Writing before the fault.
        public var warmUpSeconds: Double = 2
        /// Writing after the heal, before writes stop.
        public var afterHealSeconds: Double = 2
        /// How long to wait, once writes stop, for every item to reach its holders.
        public var convergeTimeoutSeconds: Double = 60
        /// Puts per second, spread round robin over the workload's templates.
        public var writesPerSecond: Double = 20
        /// How long to wait for nodes to come up and their links to open.
        public var startTimeoutSeconds: Double = 30
        /// Called once the fault has lasted its time (and any hold), just before the heal,
        /// with the running federation: a look at the nodes while the fault is on (the
        /// dashboard test screenshots one). The drill waits for it.
        public var beforeHeal: (@Sendable (LocalFederation) async -> Void)?

        /// Options with the defaults above.
        public init(scenario: DrillScenario, target: String? = nil, faultSeconds: Double = 5) {
            self.scenario = scenario
            self.target = target
            self.faultSeconds = faultSeconds
        }
    }

    /// One proxy: `dialler` reaches endpoint `index` of `peer` through it.
    struct ProxyKey: Hashable, Sendable {
        var dialler: String
        var peer: String
        var index: Int
    }

    /// The options.
    public let options: Options
    /// What the fault breaks.
    public let target: DrillTarget
    /// The nodes.
    public let federation: LocalFederation
    private let proxies = Mutex<[ProxyKey: FaultProxy]>([:])
    /// Each node's `federation.json` as rendered, put back when the drill stops so that kept
    /// directories run without the proxies.
    private let rendered = Mutex<[String: FederationConfig]>([:])

    /// Renders `topology` (on free loopback ports) under `root`; nothing runs yet.
    public init(topology: Topology, options: Options, root: URL, executable: URL) throws(LiaisonError) {
        guard options.faultSeconds > 0 else {
            throw LiaisonError(.invalidArgument, "the fault must last longer than 0 s")
        }
        guard options.scenario != .hostilePartner else {
            throw LiaisonError(
                .invalidArgument, "hostile-partner is not a fault to inject and heal; run it as a HostileDrill")
        }
        self.options = options
        self.target = try DrillTarget.resolve(options.target, scenario: options.scenario, topology: topology)
        self.federation = try LocalFederation(topology: topology, root: root, executable: executable)
    }

    /// Runs the drill and stops everything it started, also when it fails.
    public func run(progress: @Sendable (String) -> Void = { _ in }) async throws(LiaisonError) -> DrillReport {
        let result: Result<DrillReport, LiaisonError>
        do {
            result = .success(try await exercise(progress: progress))
        } catch {
            result = .failure(error)
        }
        await stop()
        return try result.get()
    }

    /// Stops every proxy and node (gracefully; a node that does not stop within 10 s is killed).
    public func stop() async {
        let open = proxies.withLock { proxies in
            defer { proxies = [:] }
            return Array(proxies.values)
        }
        for proxy in open { await proxy.shutdown() }
        federation.stopAll()
        let originals = rendered.withLock { rendered in
            defer { rendered = [:] }
            return rendered
        }
        for (name, config) in originals { try? config.write(to: federation.directory(name)) }
    }

    /// Kills every node at once (for a signal handler; proxies die with the process).
    public func killNodes() { federation.stopAll(kill: true) }

    // MARK: - Phases

    private func exercise(progress: @Sendable (String) -> Void) async throws(LiaisonError) -> DrillReport {
        let topology = federation.topology
        let names = topology.partners.map(\.name)
        try await rewire()
        let faulty = faultProxies()
        if options.scenario != .partnerDown && faulty.isEmpty {
            throw LiaisonError(
                .invalidArgument, "no node dials through \(target), so \(options.scenario.rawValue) would cut nothing")
        }
        progress(
            "rendered \(names.count) partners into \(federation.root.path); \(proxies.withLock { $0.count }) proxies in front of the dialled endpoints"
        )

        try federation.startAll()
        try await federation.waitUntilHealthy(timeout: .seconds(options.startTimeoutSeconds))
        var clients = [String: NodeClient]()
        for name in names { clients[name] = try federation.client(name) }
        try await waitForLinks(clients)
        progress("every link is up")

        let workload = try DrillWorkload(topology: topology, nodeIDs: federation.nodeIDs)
        let ledger = DrillLedger(templates: workload.templates, live: Set(names))
        let clock = ContinuousClock()
        let start = clock.now
        let offset: @Sendable () -> Double = { (clock.now - start).drillMillis }
        let interval = Duration.seconds(1 / max(options.writesPerSecond, 0.1))

        let outcome = await withTaskGroup(of: Void.self, returning: Result<Timing, LiaisonError>.self) { group in
            let readOnlyClients = clients
            group.addTask {
                await Self.write(ledger: ledger, clients: readOnlyClients, interval: interval, offset: offset)
            }
            group.addTask { await Self.observe(ledger: ledger, clients: readOnlyClients, offset: offset) }
            let result: Result<Timing, LiaisonError>
            do throws(LiaisonError) {
                result = .success(
                    try await phases(ledger: ledger, clients: readOnlyClients, offset: offset, progress: progress))
            } catch {
                result = .failure(error)
            }
            ledger.stopWriting()
            ledger.stopObserving()
            await group.waitForAll()
            return result
        }
        let timing = try outcome.get()

        // What every node holds at the end.
        var held = [String: Set<String>]()
        var problems = [String]()
        for name in names where !federation.isRunning(name) {
            problems.append("\(name)'s node exited during the drill; see its log, \(name).log (kept with --keep)")
        }
        for name in names {
            do {
                held[name] = Set(try await clients[name]!.items(all: true, limit: 1_000_000).map(\.id))
            } catch {
                problems.append("\(name) did not answer at the end: \(error.message)")
            }
        }
        return analyse(ledger: ledger, timing: timing, held: held, problems: problems)
    }

    /// What the phases left: when the fault began and ended, and what the links looked like.
    struct Timing: Sendable {
        var faultAt: Double
        var healAt: Double
        var faultWall: Date
        var healWall: Date
        var snapshots: [DrillReport.LinkSnapshot]
        var converged: Bool
        /// Why it did not converge.
        var notConverged: String?
    }

    private func phases(
        ledger: DrillLedger,
        clients: [String: NodeClient],
        offset: @Sendable () -> Double,
        progress: @Sendable (String) -> Void
    ) async throws(LiaisonError) -> Timing {
        let clock = ContinuousClock()
        try? await Task.sleep(for: .seconds(options.warmUpSeconds))

        let faultInstant = clock.now
        let faultAt = offset()
        let faultWall = Date()
        try inject(ledger: ledger)
        progress("fault: \(options.scenario.rawValue) \(target) for \(options.faultSeconds) s")
        // One item of every kind right at the fault, so that the time to the first delivery
        // of each kind measures failover or relaying rather than the gap between writes.
        await Self.burst(ledger: ledger, clients: clients, offset: offset)

        // Links of the affected nodes early in the fault (once failover had a chance) and
        // just before the heal.
        var snapshots = [DrillReport.LinkSnapshot]()
        let early = min(1.5, options.faultSeconds / 2)
        try? await Task.sleep(until: faultInstant + .seconds(early), clock: clock)
        snapshots += await snapshotLinks(clients: clients, live: ledger.live, offset: offset)
        let late = options.faultSeconds - 0.3
        if late > early + 0.5 {
            try? await Task.sleep(until: faultInstant + .seconds(late), clock: clock)
            snapshots += await snapshotLinks(clients: clients, live: ledger.live, offset: offset)
        }
        try? await Task.sleep(until: faultInstant + .seconds(options.faultSeconds), clock: clock)
        if let hold = options.holdFaultSeconds {
            let until = faultInstant + .seconds(options.faultSeconds + hold)
            var waiting = undelivered(ledger: ledger, faultAt: faultAt)
            if !waiting.isEmpty {
                progress(
                    "holding the fault until \(waiting.sorted().joined(separator: ", ")) arrives (at most \(hold) s)")
            }
            while !waiting.isEmpty, clock.now < until {
                try? await Task.sleep(for: .milliseconds(100))
                waiting = undelivered(ledger: ledger, faultAt: faultAt)
            }
        }

        if let beforeHeal = options.beforeHeal { await beforeHeal(federation) }
        let healAt = offset()
        let healWall = Date()
        try await heal(ledger: ledger)
        progress("healed; writing \(options.afterHealSeconds) s more")
        try? await Task.sleep(for: .seconds(options.afterHealSeconds))
        ledger.stopWriting()

        let deadline = clock.now + .seconds(options.convergeTimeoutSeconds)
        var converged = false
        var abandoned: String?
        while clock.now < deadline {
            if ledger.writerFinished && ledger.missing == 0 {
                converged = true
                break
            }
            // A node that died on its own will not deliver anything more.
            if let dead = federation.topology.partners.first(where: { !federation.isRunning($0.name) }) {
                abandoned = "stopped waiting for convergence: \(dead.name)'s node is not running"
                break
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        let notConverged =
            abandoned
            ?? "the federation did not converge within \(options.convergeTimeoutSeconds) s of the writes stopping"
        progress(converged ? "converged" : notConverged)
        return Timing(
            faultAt: faultAt,
            healAt: healAt,
            faultWall: faultWall,
            healWall: healWall,
            snapshots: snapshots,
            converged: converged,
            notConverged: converged ? nil : notConverged
        )
    }

    /// The classifications of items written since the fault began for the partner it cut
    /// off (from the cut link's other end, for link-cut) of which none has reached it yet.
    private func undelivered(ledger: DrillLedger, faultAt: Double) -> Set<String> {
        let (partner, from): (String, String?)
        switch target {
        case .link(let a, let b): (partner, from) = (b, a)
        case .endpoint(let name, _): (partner, from) = (name, nil)
        case .partner: return []
        }
        let state = ledger.snapshot
        var written = Set<String>()
        var arrived = Set<String>()
        for (id, put) in state.puts where put.writtenAt >= faultAt {
            let template = ledger.templates[put.template]
            guard template.holders.contains(partner), template.originator != partner,
                from == nil || from == template.originator
            else { continue }
            written.insert(template.classification)
            if state.firstSeen[id]?[partner] != nil { arrived.insert(template.classification) }
        }
        return written.subtracting(arrived)
    }

    // MARK: - Faults

    /// Puts a proxy in front of every endpoint every node dials, and points the dialling
    /// side's `federation.json` at the proxies (same order). Nodes keep listening where they did.
    private func rewire() async throws(LiaisonError) {
        for partner in federation.topology.partners {
            let directory = federation.directory(partner.name)
            var config = try FederationConfig.load(from: directory)
            let original = config
            rendered.withLock { $0[partner.name] = original }
            for neighbour in config.neighbours where neighbour.dial {
                guard let record = config.partners.firstIndex(where: { $0.name == neighbour.name }) else { continue }
                var rewired = [Endpoint]()
                for (index, endpoint) in config.partners[record].endpoints.enumerated() {
                    let proxy = try await FaultProxy.start(forwardingTo: endpoint)
                    proxies.withLock { $0[ProxyKey(dialler: partner.name, peer: neighbour.name, index: index)] = proxy }
                    rewired.append(proxy.endpoint)
                }
                config.partners[record].endpoints = rewired
            }
            try config.write(to: directory)
        }
    }

    /// The proxies the fault cuts.
    private func faultProxies() -> [FaultProxy] { faultProxyKeys().map(\.1) }

    private func faultProxyKeys() -> [(ProxyKey, FaultProxy)] {
        proxies.withLock { proxies in
            proxies.filter { key, _ in
                switch target {
                case .link(let a, let b): Set([key.dialler, key.peer]) == Set([a, b])
                case .endpoint(let partner, let index): key.peer == partner && key.index == index
                case .partner: false
                }
            }
            .sorted { ($0.key.dialler, $0.key.peer, $0.key.index) < ($1.key.dialler, $1.key.peer, $1.key.index) }
            .map { ($0.key, $0.value) }
        }
    }

    private func inject(ledger: DrillLedger) throws(LiaisonError) {
        switch target {
        case .link, .endpoint:
            for proxy in faultProxies() { proxy.cut() }
        case .partner(let name):
            ledger.setLive(name, false)
            federation.stop(name, kill: true)
        }
    }

    private func heal(ledger: DrillLedger) async throws(LiaisonError) {
        switch target {
        case .link, .endpoint:
            for proxy in faultProxies() { proxy.heal() }
        case .partner(let name):
            try federation.start(name)
            try await federation.waitUntilHealthy([name], timeout: .seconds(options.startTimeoutSeconds))
            ledger.setLive(name, true)
        }
    }

    /// The nodes whose links the fault touches.
    private var affected: [String] {
        let topology = federation.topology
        switch target {
        case .link(let a, let b):
            return [a, b]
        case .endpoint(let partner, let index):
            let diallers = proxies.withLock { proxies in
                proxies.keys.filter { $0.peer == partner && $0.index == index }.map(\.dialler)
            }
            return [partner] + Set(diallers).sorted()
        case .partner(let name):
            return DrillTarget.neighbours(of: name, in: topology)
        }
    }

    private func snapshotLinks(
        clients: [String: NodeClient],
        live: Set<String>,
        offset: @Sendable () -> Double
    ) async -> [DrillReport.LinkSnapshot] {
        var snapshots = [DrillReport.LinkSnapshot]()
        for name in affected where live.contains(name) {
            guard let client = clients[name] else { continue }
            let at = offset()
            do {
                snapshots.append(
                    DrillReport.LinkSnapshot(atMillis: at, node: name, links: try await client.links(), error: nil))
            } catch {
                snapshots.append(DrillReport.LinkSnapshot(atMillis: at, node: name, links: nil, error: error.message))
            }
        }
        return snapshots
    }

    /// Waits until every node's every link row is up.
    private func waitForLinks(_ clients: [String: NodeClient]) async throws(LiaisonError) {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(options.startTimeoutSeconds)
        var pending = [String]()
        while true {
            pending = []
            for (name, client) in clients.sorted(by: { $0.key < $1.key }) {
                let neighbours = DrillTarget.neighbours(of: name, in: federation.topology)
                guard federation.isRunning(name) else {
                    throw LiaisonError(
                        .io,
                        "\(name)'s node exited while its links came up; see \(federation.root.appendingPathComponent("\(name).log").path) (use --keep)"
                    )
                }
                guard let rows = try? await client.links() else {
                    pending.append("\(name) (no answer)")
                    continue
                }
                for neighbour in neighbours {
                    guard let row = rows.first(where: { $0.peer == neighbour }), row.state == "up" else {
                        pending.append("\(name)-\(neighbour)")
                        continue
                    }
                    // Every channel open, and in failover mode the primary carrying (a channel
                    // that flapped while the proxies came up may still be held down): the
                    // fault must hit a settled link.
                    let settled =
                        row.channels.allSatisfy { $0.state == "carrying" || $0.state == "standby" }
                        && (federation.topology.channels.mode == .activeActive
                            || row.channels.first?.state == "carrying")
                    if !settled { pending.append("\(name)-\(neighbour) (channels settling)") }
                }
            }
            if pending.isEmpty { return }
            guard clock.now < deadline else {
                throw LiaisonError(
                    .io,
                    "links did not come up within \(options.startTimeoutSeconds) s (\(pending.joined(separator: ", "))); "
                        + "node logs are in \(federation.root.path) (use --keep)"
                )
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    // MARK: - Writer and observer

    /// Puts items at a steady rate, round robin over the templates whose originator is up
    /// (`rotation`: only these templates, by index; nil: all of them).
    static func write(
        ledger: DrillLedger,
        clients: [String: NodeClient],
        interval: Duration,
        offset: @Sendable () -> Double,
        rotation: [Int]? = nil
    ) async {
        let clock = ContinuousClock()
        let templates = ledger.templates
        let rotation = rotation ?? Array(templates.indices)
        var next = clock.now
        var cursor = 0
        var sequence: Int64 = 0
        while ledger.isWriting {
            let live = ledger.writable
            if let position = (0..<rotation.count).lazy.map({ (cursor + $0) % rotation.count })
                .first(where: { live.contains(templates[rotation[$0]].originator) }),
                let client = clients[templates[rotation[position]].originator]
            {
                let chosen = rotation[position]
                cursor = position + 1
                sequence += 1
                var body = templates[chosen].body
                body.fields = ["drill": .integer(sequence), "label": .string(templates[chosen].label)]
                let at = offset()
                do {
                    let result = try await client.put(body)
                    ledger.wrote(result.id, template: chosen, at: at, digest: result.digest)
                } catch {
                    ledger.putFailed("\(templates[chosen].originator): \(error.message)")
                }
            }
            next += interval
            let now = clock.now
            if next > now {
                try? await Task.sleep(until: next, clock: clock)
            } else {
                next = now
            }
        }
        ledger.writerDidFinish()
    }

    /// Puts one item of every template whose originator is up, at once.
    private static func burst(ledger: DrillLedger, clients: [String: NodeClient], offset: @Sendable () -> Double) async
    {
        let live = ledger.live
        for (index, template) in ledger.templates.enumerated() where live.contains(template.originator) {
            guard let client = clients[template.originator] else { continue }
            var body = template.body
            body.fields = ["drill": .integer(Int64(-1 - index)), "label": .string(template.label + " (at the fault)")]
            let at = offset()
            do {
                let result = try await client.put(body)
                ledger.wrote(result.id, template: index, at: at, digest: result.digest)
            } catch {
                ledger.putFailed("\(template.originator): \(error.message)")
            }
        }
    }

    /// Lists every live node's items about every 100 ms and notes where each item first shows.
    static func observe(
        ledger: DrillLedger, clients: [String: NodeClient], offset: @Sendable () -> Double
    ) async {
        let clock = ContinuousClock()
        while ledger.isObserving {
            let round = clock.now
            for name in ledger.live.sorted() {
                guard let client = clients[name], let items = try? await client.items(all: true, limit: 1_000_000)
                else { continue }
                ledger.saw(items.map(\.id), at: name, offset: offset())
            }
            try? await Task.sleep(until: round + .milliseconds(100), clock: clock)
        }
    }

    // MARK: - Report

    private func analyse(
        ledger: DrillLedger, timing: Timing, held: [String: Set<String>], problems initial: [String]
    ) -> DrillReport {
        let state = ledger.snapshot
        let templates = ledger.templates
        var problems = initial
        let during = timing.faultAt..<timing.healAt

        var cutOff: DrillReport.CutOff?
        switch target {
        case .link(let a, let b):
            cutOff = DrillReport.CutOff(
                partner: b, from: a, expectedFromFault: 0, deliveredDuringFault: 0,
                deliveredDuringFaultByClassification: [:], expectedFromFaultByClassification: [:]
            )
        case .endpoint(let partner, _):
            cutOff = DrillReport.CutOff(
                partner: partner, from: nil, expectedFromFault: 0, deliveredDuringFault: 0,
                deliveredDuringFaultByClassification: [:], expectedFromFaultByClassification: [:]
            )
        case .partner:
            cutOff = nil
        }

        var expected = 0
        var achieved = 0
        var deliveredDuringFault = 0
        var faultLatencies = [Double]()
        var baselineLatencies = [Double]()
        var lost = [String]()
        var leaked = Set<String>()
        var lastDelivery = 0.0
        var lastFaultOpDelivery: Double?
        for (id, put) in state.puts.sorted(by: { $0.value.writtenAt < $1.value.writtenAt }) {
            let template = templates[put.template]
            let seen = state.firstSeen[id] ?? [:]
            for holder in template.holders.sorted() where holder != template.originator {
                expected += 1
                if let at = seen[holder] {
                    achieved += 1
                    lastDelivery = max(lastDelivery, at)
                    if during.contains(at) { deliveredDuringFault += 1 }
                    if during.contains(put.writtenAt) {
                        faultLatencies.append(at - put.writtenAt)
                        lastFaultOpDelivery = max(lastFaultOpDelivery ?? at, at)
                    }
                    if put.writtenAt < timing.faultAt { baselineLatencies.append(at - put.writtenAt) }
                }
                if held[holder]?.contains(id) != true {
                    lost.append("\(id.prefix(12)) [\(template.label)] missing at \(holder)")
                }
            }
            for partner in seen.keys where !template.holders.contains(partner) {
                leaked.insert("\(id.prefix(12)) [\(template.label)] held by \(partner)")
            }
            for (partner, ids) in held where ids.contains(id) && !template.holders.contains(partner) {
                leaked.insert("\(id.prefix(12)) [\(template.label)] held by \(partner)")
            }
            if var report = cutOff, template.holders.contains(report.partner), template.originator != report.partner,
                report.from == nil || report.from == template.originator, put.writtenAt >= timing.faultAt
            {
                if let at = seen[report.partner] {
                    let after = at - timing.faultAt
                    report.firstDeliveryAfterFaultMillis = min(report.firstDeliveryAfterFaultMillis ?? after, after)
                    report.firstDeliveryAfterFaultByClassification[template.classification] = min(
                        report.firstDeliveryAfterFaultByClassification[template.classification] ?? after,
                        after
                    )
                }
                if during.contains(put.writtenAt) {
                    report.expectedFromFault += 1
                    report.expectedFromFaultByClassification[template.classification, default: 0] += 1
                    if let at = seen[report.partner], during.contains(at) {
                        report.deliveredDuringFault += 1
                        report.deliveredDuringFaultByClassification[template.classification, default: 0] += 1
                    }
                }
                cutOff = report
            }
        }

        let opsDuringFault = state.puts.values.filter { during.contains($0.writtenAt) }.count
        if state.puts.isEmpty { problems.append("no item was written") }
        if let why = timing.notConverged { problems.append(why) }
        if !lost.isEmpty { problems.append("\(lost.count) expected deliveries are missing") }
        if !leaked.isEmpty { problems.append("\(leaked.count) items are held by partners that may not hold them") }
        if let cutOff {
            if cutOff.expectedFromFault == 0 {
                problems.append(
                    "no op written during the fault was meant for \(cutOff.partner), so continuity was not tested")
            } else if cutOff.deliveredDuringFault == 0 {
                problems.append(
                    "\(cutOff.partner) received none of the \(cutOff.expectedFromFault) ops written for it during the fault before the heal"
                )
            }
        }
        if let error = state.lastPutError { problems.append("last failed put: \(error)") }
        // Failed puts alone do not fail a drill (a put can race a kill); they are reported.
        let failing = problems.filter { !$0.hasPrefix("last failed put") }

        return DrillReport(
            scenario: options.scenario.rawValue,
            target: target.description,
            federation: federation.topology.federation,
            partners: federation.topology.partners.map(\.name),
            faultStartedAtMillis: timing.faultAt,
            healedAtMillis: timing.healAt,
            faultStartedAt: ISO8601.format(millis: Int64(timing.faultWall.timeIntervalSince1970 * 1000)),
            healedAt: ISO8601.format(millis: Int64(timing.healWall.timeIntervalSince1970 * 1000)),
            opsWritten: state.puts.count,
            opsWrittenDuringFault: opsDuringFault,
            putFailures: state.putFailures,
            deliveriesExpected: expected,
            deliveriesAchieved: achieved,
            deliveriesDuringFault: deliveredDuringFault,
            cutOff: cutOff,
            faultLatencyP50Millis: Self.median(faultLatencies),
            faultLatencyMaxMillis: faultLatencies.max(),
            baselineLatencyP50Millis: Self.median(baselineLatencies),
            convergedAfterHealMillis: timing.converged && lost.isEmpty ? max(0, lastDelivery - timing.healAt) : nil,
            faultOpsDeliveredAfterHealMillis: timing.converged && lost.isEmpty
                ? lastFaultOpDelivery.map { max(0, $0 - timing.healAt) } : nil,
            lost: lost.count,
            leaked: leaked.count,
            lostDetail: Array(lost.prefix(10)),
            leakedDetail: Array(leaked.sorted().prefix(10)),
            linkSnapshots: timing.snapshots,
            cutProxies: faultProxyKeys().map { key, proxy in
                DrillReport.CutProxy(
                    dialler: key.dialler,
                    peer: key.peer,
                    endpoint: key.index,
                    bytesForwarded: proxy.bytesForwarded,
                    bytesDropped: proxy.bytesDropped,
                    connectionsRefused: proxy.connectionsRefused
                )
            },
            problems: problems,
            passed: failing.isEmpty,
            directory: nil
        )
    }

    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }
}

extension Duration {
    /// The duration in milliseconds.
    var drillMillis: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}
