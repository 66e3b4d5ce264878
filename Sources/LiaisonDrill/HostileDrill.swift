public import Foundation
import LiaisonAPI
public import LiaisonCore
public import LiaisonNode
import LiaisonStore
import Synchronization

/// The hostile-partner drill on real processes (issue 10 §3): every partner runs `liaison
/// run`; one of them works honestly for a while, then its node stops and the drill process
/// takes its place with its valid keys and certificate (`HostilePartner`), speaks the sync
/// protocol over pinned TLS to its neighbours and attacks each of them in turn: forged,
/// replayed, non-releasable, future-stamped, non-writer and ORCON re-shared ops, an oversized
/// and a malformed frame, a flood, equivocating creates, and withheld acks. It then keeps
/// forging until every node it attacked has quarantined it on its own (the topology's
/// `containment:` thresholds). Meanwhile the honest nodes keep taking puts through their APIs.
///
/// The report gives, per attack and receiver, whether a strike of the right class counted it
/// (`GET /v1/quarantines`), whether the receiver kept none of it (its store, read after the
/// nodes stopped), and whether custody recorded it (`GET /v1/audit`); when each node
/// quarantined the partner; what honest nodes lost, leaked, and whether their digests agree;
/// and honest put-to-visible latency during the attack.
///
/// Every node the drill starts is stopped when `run` returns or throws.
public final class HostileDrill: Sendable {
    /// How the drill runs.
    public struct Options: Sendable {
        /// The partner that turns (`--target`); nil picks one from the topology.
        public var target: String?
        /// Writing before the partner turns.
        public var honestSeconds: Double = 2
        /// Writing after every attacked node quarantined the partner, before writes stop.
        public var afterSeconds: Double = 2
        /// Puts per second at the honest nodes, round robin over the workload's templates.
        public var writesPerSecond: Double = 20
        /// How long nodes have to come up and open their links, and the partner's neighbours
        /// to open a channel to the hostile partner.
        public var startTimeoutSeconds: Double = 30
        /// How long an attack's strike has to show at its receiver.
        public var evidenceTimeoutSeconds: Double = 10
        /// How long the flood may go on before the drill gives up on it.
        public var floodSeconds: Double = 20
        /// How long the hostile partner keeps forging, after the attacks, for the nodes it
        /// attacked to quarantine it.
        public var quarantineTimeoutSeconds: Double = 30
        /// How long to wait, once writes stop, for every item to reach its honest holders.
        public var convergeTimeoutSeconds: Double = 60

        /// Options with the defaults above.
        public init(target: String? = nil) { self.target = target }
    }

    /// The options.
    public let options: Options
    /// The partner that turns hostile.
    public let hostile: String
    /// The nodes.
    public let federation: LocalFederation
    let partner = Mutex<HostilePartner?>(nil)

    /// Renders `topology` (on free loopback ports) under `root`; nothing runs yet.
    public init(topology: Topology, options: Options, root: URL, executable: URL) throws(LiaisonError) {
        self.options = options
        guard
            case .partner(let name) = try DrillTarget.resolve(
                options.target, scenario: .hostilePartner, topology: topology)
        else {
            throw LiaisonError(.invalidArgument, "hostile-partner needs a partner as --target")
        }
        self.hostile = name
        self.federation = try LocalFederation(topology: topology, root: root, executable: executable)
    }

    /// Runs the drill and stops everything it started, also when it fails.
    public func run(
        progress: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws(LiaisonError)
        -> HostileDrillReport
    {
        let result: Result<HostileDrillReport, LiaisonError>
        do {
            result = .success(try await exercise(progress: progress))
        } catch {
            result = .failure(error)
        }
        stop()
        return try result.get()
    }

    /// Stops the hostile partner and every node (gracefully; a node that does not stop within
    /// 10 s is killed).
    public func stop() {
        partner.withLock { $0 }?.stop()
        federation.stopAll()
    }

    /// Kills every node at once (for a signal handler).
    public func killNodes() { federation.stopAll(kill: true) }

    // MARK: - Phases

    /// What the drill found out along the way, for the report.
    struct Record {
        var turnedAt: Double = 0
        var turnedWall = Date()
        var attacksEndedAt: Double = 0
        var attacks: [AttackRecord] = []
        var persisted = 0
        var persistedOps: [String: [(OpID, Int64)]] = [:]
        var lateOp: LateOp?
        var refusedAfterQuarantine: [String: Int] = [:]
        var converged = false
        var notConverged: String?
        var problems: [String] = []
    }

    /// One attack against every receiver.
    struct AttackRecord {
        var name: String
        var description: String
        var outcomes: [PendingOutcome]
        /// When it began and ended (offsets).
        var startedAt: Double
        var endedAt: Double
        /// Channels between honest nodes that died while it ran, and why.
        var honestChannelsLost: [String]
    }

    /// A create sent to a node that had not quarantined the partner yet, once another had.
    struct LateOp {
        var id: OpID
        var sentTo: String
        var quarantinedAt: [String]
        var acknowledged: Bool
    }

    private func exercise(
        progress: @escaping @Sendable (String) -> Void
    ) async throws(LiaisonError) -> HostileDrillReport {
        let topology = federation.topology
        let names = topology.partners.map(\.name)
        let honest = names.filter { $0 != hostile }
        try federation.startAll()
        try await federation.waitUntilHealthy(timeout: .seconds(options.startTimeoutSeconds))
        var clients = [String: NodeClient]()
        for name in names { clients[name] = try federation.client(name) }
        try await waitForLinks(clients)
        progress("\(names.count) nodes up in \(federation.root.path), every link up; \(hostile) will turn hostile")

        let workload = try DrillWorkload(topology: topology, nodeIDs: federation.nodeIDs)
        let baits = HostileBaits(topology: topology, hostile: hostile, nodeIDs: federation.nodeIDs)
        let templates = workload.templates + baits.templates
        let ledger = DrillLedger(templates: templates, live: Set(names))
        let clock = ContinuousClock()
        let start = clock.now
        let startWall = Date()
        let offset: @Sendable () -> Double = { (clock.now - start).drillMillis }
        let interval = Duration.seconds(1 / max(options.writesPerSecond, 0.1))
        let rotation = Array(workload.templates.indices)
        let readOnlyClients = clients

        let outcome = await withTaskGroup(of: Void.self, returning: Result<Record, LiaisonError>.self) { group in
            group.addTask {
                await Drill.write(
                    ledger: ledger, clients: readOnlyClients, interval: interval, offset: offset, rotation: rotation)
            }
            group.addTask { await Drill.observe(ledger: ledger, clients: readOnlyClients, offset: offset) }
            var record = Record()
            var result: Result<Record, LiaisonError>
            do throws(LiaisonError) {
                try await honestPhase(
                    ledger: ledger, clients: readOnlyClients, baits: baits, offset: offset, progress: progress)
                let hostilePartner = try await turn(ledger: ledger, record: &record, offset: offset)
                group.addTask { await hostilePartner.run() }
                progress("\(hostile)'s node stopped; the drill speaks for \(hostile) with its own keys")
                var campaign = HostileCampaign(
                    drill: self, partner: hostilePartner, clients: readOnlyClients, ledger: ledger, baits: baits,
                    offset: offset, progress: progress)
                try await campaign.run(record: &record)
                try? await Task.sleep(for: .seconds(options.afterSeconds))
                ledger.stopWriting()
                try await converge(ledger: ledger, honest: Set(honest), record: &record, progress: progress)
                result = .success(record)
            } catch {
                result = .failure(error)
            }
            ledger.stopWriting()
            ledger.stopObserving()
            partner.withLock { $0 }?.stop()
            await group.waitForAll()
            return result
        }
        let record = try outcome.get()
        progress("gathering what every honest node holds, its strikes and its custody log")
        let final = await gather(clients: clients, honest: honest)
        // The stores are read with the nodes stopped.
        federation.stopAll()
        let stores = checkStores(record: record, honest: honest)
        return analyse(
            ledger: ledger, record: record, final: final, stores: stores, honest: honest, startWall: startWall)
    }

    /// Writes for a while with every node honest, puts the baits the attacks need, and waits
    /// until everything written so far is everywhere it belongs, the partner that will turn
    /// included.
    private func honestPhase(
        ledger: DrillLedger,
        clients: [String: NodeClient],
        baits: HostileBaits,
        offset: @Sendable () -> Double,
        progress: @Sendable (String) -> Void
    ) async throws(LiaisonError) {
        let base = ledger.templates.count - baits.templates.count
        for (index, template) in baits.templates.enumerated() {
            guard let client = clients[template.originator] else { continue }
            var body = template.body
            body.fields = ["label": .string(template.label)]
            let at = offset()
            do {
                let result = try await client.put(body)
                ledger.wrote(result.id, template: base + index, at: at, digest: result.digest)
            } catch {
                throw LiaisonError(.io, "the bait \(template.label) could not be put: \(error.message)")
            }
        }
        try? await Task.sleep(for: .seconds(options.honestSeconds))
        // Nothing more is written at the partner; what it wrote must reach everyone first.
        // What is written from now on is owed only to partners the honest ones reach
        // without it (DESIGN I3: while a path of correct nodes connects them).
        ledger.mute(hostile)
        let cutoff = offset()
        ledger.expect(honestReach(ledger.templates), from: cutoff)
        let deadline = ContinuousClock.now + .seconds(options.startTimeoutSeconds)
        while ledger.missing(among: nil, writtenBefore: cutoff) > 0 {
            guard ContinuousClock.now < deadline else {
                throw LiaisonError(
                    .io,
                    "the honest phase did not converge within \(options.startTimeoutSeconds) s "
                        + "(\(ledger.missing(among: nil, writtenBefore: cutoff)) deliveries missing); logs in \(federation.root.path) (use --keep)"
                )
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        progress("honest phase: \(ledger.snapshot.puts.count) items everywhere they belong")
    }

    /// Per template, who should hold its items when the hostile partner carries nothing.
    private func honestReach(_ templates: [DrillWorkload.Template]) -> [Set<String>] {
        var topology = federation.topology
        topology.links.removeAll { $0.from == hostile || $0.to == hostile }
        return templates.map { template in
            let body = template.body
            let markings = Markings(
                classification: body.classification ?? topology.classifications.lowest,
                releasableTo: body.relTo ?? [], orcon: body.orcon ?? false)
            return topology.expectedReach(
                originator: template.originator, markings: markings, collection: body.collection,
                tags: Set(body.tags ?? []), nodeIDs: federation.nodeIDs
            ).holders
        }
    }

    /// Stops the partner's node and takes its place.
    private func turn(
        ledger: DrillLedger, record: inout Record, offset: @Sendable () -> Double
    ) async throws(LiaisonError) -> HostilePartner {
        ledger.setLive(hostile, false)
        federation.stop(hostile)
        let hostilePartner = try HostilePartner(directory: federation.directory(hostile))
        partner.withLock { $0 = hostilePartner }
        try await hostilePartner.listen()
        record.turnedAt = offset()
        record.turnedWall = Date()
        return hostilePartner
    }

    /// Waits until every item written reached every honest node entitled to it.
    private func converge(
        ledger: DrillLedger, honest: Set<String>, record: inout Record, progress: @Sendable (String) -> Void
    ) async throws(LiaisonError) {
        let deadline = ContinuousClock.now + .seconds(options.convergeTimeoutSeconds)
        while ContinuousClock.now < deadline {
            if ledger.writerFinished && ledger.missing(among: honest) == 0 {
                record.converged = true
                break
            }
            if let dead = honest.sorted().first(where: { !federation.isRunning($0) }) {
                record.notConverged = "stopped waiting for convergence: \(dead)'s node is not running"
                break
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        if !record.converged {
            record.notConverged =
                record.notConverged
                ?? "the honest nodes did not converge within \(options.convergeTimeoutSeconds) s of the writes stopping"
        }
        progress(record.converged ? "the honest nodes converged" : record.notConverged!)
    }

    /// Waits until every node's every link row is up.
    private func waitForLinks(_ clients: [String: NodeClient]) async throws(LiaisonError) {
        let deadline = ContinuousClock.now + .seconds(options.startTimeoutSeconds)
        while true {
            var pending = [String]()
            for (name, client) in clients.sorted(by: { $0.key < $1.key }) {
                guard federation.isRunning(name) else {
                    throw LiaisonError(
                        .io, "\(name)'s node exited while its links came up; see \(name).log (use --keep)")
                }
                guard let rows = try? await client.links() else {
                    pending.append("\(name) (no answer)")
                    continue
                }
                for neighbour in DrillTarget.neighbours(of: name, in: federation.topology)
                where rows.first(where: { $0.peer == neighbour })?.state != "up" {
                    pending.append("\(name)-\(neighbour)")
                }
            }
            if pending.isEmpty { return }
            guard ContinuousClock.now < deadline else {
                throw LiaisonError(
                    .io,
                    "links did not come up within \(options.startTimeoutSeconds) s (\(pending.joined(separator: ", "))); "
                        + "node logs are in \(federation.root.path) (use --keep)")
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    // MARK: - The end

    /// What the honest nodes' APIs said at the end.
    struct Final {
        var items: [String: [ItemView]] = [:]
        var containment: [String: ContainmentView] = [:]
        var audit: [String: [CustodyEntry]] = [:]
        var problems: [String] = []
    }

    private func gather(clients: [String: NodeClient], honest: [String]) async -> Final {
        var final = Final()
        for name in honest {
            guard let client = clients[name] else { continue }
            if !federation.isRunning(name) {
                final.problems.append("\(name)'s node exited during the drill; see \(name).log (kept with --keep)")
            }
            do {
                final.items[name] = try await client.items(all: true, limit: 1_000_000)
                final.containment[name] = try await client.containment()
                var entries = [CustodyEntry]()
                while true {
                    let page = try await client.audit(from: UInt64(entries.count + 1), limit: 10_000)
                    entries += page
                    if page.count < 10_000 { break }
                }
                final.audit[name] = entries
            } catch {
                final.problems.append("\(name) did not answer at the end: \(error.message)")
            }
        }
        return final
    }

    /// Per honest node: which of the given ops its store holds (read with the nodes stopped).
    struct StoreCheck {
        var held: [String: Set<OpID>] = [:]
        var pendingFromHostile: [String: Int] = [:]
        var twin = TwinCheck()
        var problems: [String] = []
    }

    /// Each honest node against its twin: its log without what the partner stamped once it
    /// had turned (docs/drills.md, "The twin without the attacker", says what it cannot see).
    struct TwinCheck {
        /// Items compared, over every honest node.
        var items = 0
        /// Items whose state differs from the twin's, or that one side lacks.
        var mismatches: [String] = []
        /// Items the partner created after it turned, which the twin has not (a forked
        /// create is kept as proof; its state is the quarantine's business).
        var attackerItems = 0
    }

    private func checkStores(record: Record, honest: [String]) -> StoreCheck {
        var wanted = Set<OpID>()
        for attack in record.attacks {
            for outcome in attack.outcomes { wanted.formUnion(outcome.opIDs + outcome.mustBeAbsent) }
        }
        for ops in record.persistedOps.values { wanted.formUnion(ops.map(\.0)) }
        if let late = record.lateOp { wanted.insert(late.id) }
        var check = StoreCheck()
        let hostileID = federation.nodeIDs[hostile]
        for name in honest {
            do {
                let node = try LocalNode.open(federation.directory(name))
                var held = Set<OpID>()
                for id in wanted where try node.store.op(id) != nil { held.insert(id) }
                check.held[name] = held
                if let hostileID {
                    check.pendingFromHostile[name] = try node.store.pendingCount(from: hostileID)
                    try Self.twin(
                        of: name, store: node.store, hostileID: hostileID, turned: record.turnedWall, into: &check.twin)
                }
            } catch {
                check.problems.append("\(name)'s store could not be read after the drill: \(error.message)")
            }
        }
        return check
    }

    /// The twin of an honest node: a fresh store given every op of the node's log but those
    /// the partner stamped once it had turned, committed through the same commit code. Had
    /// the attacks changed nothing, each item is the same in both (I1: the order of ops does
    /// not matter; I4: nothing the attacker wrote counts). An item that differs, or that the
    /// node holds and the twin lacks (or the other way round), is a mismatch; the partner's
    /// own items created after it turned are counted apart.
    static func twin(
        of name: String, store: any Store, hostileID: NodeID, turned: Date, into check: inout TwinCheck
    ) throws(LiaisonError) {
        let turn = HLCTimestamp(
            physicalMillis: UInt64(max(0, (turned.timeIntervalSince1970 * 1000).rounded())), logical: 0)
        let attacker = { (op: VerifiedOp) in op.body.author == hostileID && op.body.hlc >= turn }
        var log = [VerifiedOp]()
        var after: UInt64 = 0
        while true {
            let page = try store.ops(after: after, limit: 10_000)
            guard let last = page.last else { break }
            log += page.map(\.op)
            after = last.sequence
        }
        let twin = MemoryStore()
        _ = try twin.commit(
            CommitBatch(
                ops: log.filter { !attacker($0) }, source: .local,
                timeMillis: Int64(Date().timeIntervalSince1970 * 1000)))
        var attackerItems = Set<ItemID>()
        for op in log where attacker(op) {
            if case .create = op.body.change { attackerItems.insert(op.body.itemID) }
        }
        let ids = Set(log.map(\.body.itemID))
        for id in ids.sorted(by: { $0.text < $1.text }) {
            let mine = try store.item(id)
            let theirs = try twin.item(id)
            if theirs == nil, attackerItems.contains(id) {
                check.attackerItems += 1
                continue
            }
            // An item neither holds (its create left out on both sides) is not compared.
            if mine == nil, theirs == nil { continue }
            check.items += 1
            switch (mine, theirs) {
            case (let mine?, let theirs?) where mine.digest == theirs.digest:
                continue
            case (let mine?, let theirs?):
                check.mismatches.append(
                    "\(name): item \(id.text.prefix(12)) is \(mine.digest.hex.prefix(12)), its twin without the attacker "
                        + "\(theirs.digest.hex.prefix(12))")
            case (nil, _?):
                check.mismatches.append(
                    "\(name): item \(id.text.prefix(12)) is missing; its twin without the attacker holds it")
            case (_?, nil), (nil, nil):
                check.mismatches.append("\(name): item \(id.text.prefix(12)) is not in its twin without the attacker")
            }
        }
    }
}

extension DrillLedger {
    /// Expected deliveries of puts written before `cutoff` not seen yet, counting only
    /// holders in `among` (nil: every holder).
    func missing(among: Set<String>?, writtenBefore cutoff: Double) -> Int {
        let state = snapshot
        var count = 0
        for (id, put) in state.puts where put.writtenAt < cutoff {
            let template = templates[put.template]
            let seen = state.firstSeen[id] ?? [:]
            count +=
                Self.expectedHolders(of: put, templates: templates, regime: state.regime).filter {
                    $0 != template.originator && seen[$0] == nil && among?.contains($0) != false
                }.count
        }
        return count
    }
}
