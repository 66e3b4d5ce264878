import Crypto
import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonStore
import LiaisonTransport
import LiaisonWire
import NIOCore

/// Runs a whole federation in one process on the node's own engine and interpreter
/// (`NodeEngine`, `NodeInterpreter`: the code the daemon runs) with in-memory stores, a
/// virtual clock and a seeded faulty network, and checks the invariants of DESIGN §2. The
/// simulator holds only the world: the network and its faults, the workload, the hostile
/// node's behaviour and the checks. Every frame goes through the real wire codec.
///
/// The network is a set of channels, one or two per neighbour pair (a primary and a backup
/// endpoint), each an ordered stream of encoded frames in each direction (like TCP) with
/// random delay. Faults: a channel breaks (a lost segment kills a TCP connection: everything
/// in flight is lost, both ends close); an endpoint goes down for a while; a link is cut
/// (every channel of a pair, long enough for sealed relaying); partitions (one node
/// isolated, a split into two groups, one direction blocked); crash-restarts (a node loses
/// everything but what its store committed). Some nodes are relays; a seed may make one
/// relay withhold every envelope it should carry.
public final class Simulation {
    /// Tunables of a run.
    public struct Options: Sendable, Hashable {
        /// The seed: everything random in the run derives from it.
        public var seed: UInt64
        /// Number of nodes (3–7).
        public var nodes: Int
        /// Virtual milliseconds of workload with faults.
        public var workloadMillis: UInt64 = 4_000
        /// Virtual milliseconds allowed to converge after healing.
        public var healLimitMillis: UInt64 = 30_000
        /// Whether one node is hostile (valid keys, but it forges, replays, pushes what is
        /// not releasable, writes where it may not, and stamps far-future clocks).
        public var hostile: Bool
        /// Whether one relay withholds every envelope it should carry; nil: the seed decides.
        public var withholdingRelay: Bool?
        /// Whether every honest node quarantines the hostile node partway through the
        /// workload; nil: the seed decides (half the hostile runs).
        public var quarantine: Bool?
        /// Whether, in a run that quarantines the hostile node, the operators revoke it instead:
        /// a random quorum of the honest nodes endorse the revocation and the others learn it
        /// by gossip; nil: the seed decides (half the quarantine runs).
        public var revocation: Bool?
        /// Whether the hostile node's clock runs at the edge of the allowed skew and honest
        /// clocks disagree by up to a second; nil: the seed decides (half the hostile runs).
        public var edgeClocks: Bool?
        /// Whether a share of the links get tag conditions (off to measure what they withhold).
        public var tagFilters = true
        /// Whether the engines are given the links' filters without their tag conditions while
        /// the world checks with them: the planted bug that shows the tag checks bite.
        public var enginesIgnoreTags = false
        /// Whether the hostile node actually attacks (off for the twin run that shows the
        /// honest nodes end up exactly as they would without the attacks).
        var attacks = true
        /// Most ops per batch on every channel. A quarter of the seeds run batches of 4: a
        /// batch then holds at most 8 ops, so an item's history sent with a change of its tags
        /// or markings often passes one batch and goes in parts (docs/protocol.md, "Parts").
        public var maxBatchOps: Int

        /// Options for a seed; the node count, the hostile node and the batch size derive from
        /// the seed when not given.
        public init(seed: UInt64, nodes: Int? = nil, hostile: Bool? = nil, maxBatchOps: Int? = nil) {
            self.seed = seed
            self.nodes = nodes ?? Int(3 + seed % 5)
            self.hostile = hostile ?? (seed % 3 == 0)
            self.maxBatchOps = maxBatchOps ?? (seed % 4 == 2 ? 4 : LinkSessionStateMachine.Configuration().maxBatchOps)
        }
    }

    /// One node of the world: a class, so that looking at it copies nothing.
    final class Node {
        let name: String
        let author: OpAuthor
        let groups: Set<String>
        let store: MemoryStore
        let sealingKey: Curve25519.KeyAgreement.PrivateKey
        let transport: SimulatedTransport
        var interpreter: NodeInterpreter<SimulatedTransport>
        let isRelay: Bool
        let withholds: Bool
        var up = true
        var recipient: Recipient { Recipient(name: name, nodeID: author.nodeID, groups: groups) }
        var engine: NodeEngine { interpreter.engine }

        init(
            name: String,
            author: OpAuthor,
            groups: Set<String>,
            store: MemoryStore,
            sealingKey: Curve25519.KeyAgreement.PrivateKey,
            transport: SimulatedTransport,
            interpreter: NodeInterpreter<SimulatedTransport>,
            isRelay: Bool,
            withholds: Bool
        ) {
            self.name = name
            self.author = author
            self.groups = groups
            self.store = store
            self.sealingKey = sealingKey
            self.transport = transport
            self.interpreter = interpreter
            self.isRelay = isRelay
            self.withholds = withholds
        }
    }

    struct Channel {
        let a: String
        let b: String
        /// The endpoint index this channel reaches.
        let index: Int
        var epoch = 0
        var up = false
        var retryAt: UInt64 = 0
        /// Each end's id while the channel is up.
        var ids: [String: ChannelID] = [:]
        /// In flight per direction (key: receiver), in order: encoded frames.
        var queues: [String: [(at: UInt64, frame: ByteBuffer)]] = [:]
        /// Each end's keepalive, which answers the other end's pings as a daemon's channel
        /// handler does (`ChannelKeepalive`).
        var keepalives: [String: ChannelKeepalive] = [:]
    }

    let options: Options
    var random: SeededRandom
    var now: UInt64 = 1_700_000_000_000
    let start: UInt64 = 1_700_000_000_000
    var nodes: [String: Node] = [:]
    var names: [String] = []
    var links: [String: [String: LinkFilter]] = [:]  // from -> to -> filter
    var channels: [String: Channel] = [:]
    var blocked: Set<String> = []  // "from>to"
    var ladder = ClassificationLadder.standard
    var trace = CanonicalHasher(domain: "liaison/v1/simulation-trace")
    /// `LIAISON_SIM_TRACE=1` prints every step the trace hash takes in, to compare two runs.
    let printsTrace = ProcessInfo.processInfo.environment["LIAISON_SIM_TRACE"] != nil

    func traceString(_ text: String) {
        if printsTrace { print("trace: \(text)") }
        trace.string(text)
    }

    func traceStrings(_ texts: [String]) {
        if printsTrace { print("trace: [\(texts.joined(separator: ", "))]") }
        trace.strings(texts)
    }

    func traceNow(_ now: UInt64) {
        if printsTrace { print("trace: t=\(now)") }
        trace.uint64(now)
    }
    var violations: [String] = []
    var checkpoints: [String: UInt64] = [:]
    var groundTruth: [OpID: VerifiedOp] = [:]
    var opsWritten = 0
    var refusals = 0
    var crashes = 0
    var partitions = 0
    var channelsBroken = 0
    var faultsOn = true
    var downUntil: [String: UInt64] = [:]
    var partitionUntil: UInt64 = 0
    var hostile: String?
    var attackRandom: SeededRandom
    /// Draws for the hostile node's withheld acks (the same in the twin run).
    var withholdRandom: SeededRandom
    /// Until when the hostile node withholds its acks from each peer.
    var ackWithholding: [String: UInt64] = [:]
    /// Acks the hostile node withheld.
    var acksWithheld = 0
    /// How long one spell of withheld acks lasts: past the federation's ack deadline.
    static let ackWithholdingMillis: UInt64 = 8_000
    /// Attack ops that must be refused, by "sender>receiver@receiving channel" and batch
    /// `through`, in the order the batch frames went (0 for a clean one).
    var expectedRefusals: [String: [BatchPosition: [Int]]] = [:]
    var attacksSent = 0
    /// Batch parts committed (histories sent ahead of an entry in parts).
    var partsCommitted = 0
    var settings = ChannelSettings()
    var endpointDown: [String: UInt64] = [:]
    var endpointFaults = 0
    /// Neighbour pairs whose every channel is cut, until when.
    var cuts: [String: UInt64] = [:]
    var linkCuts = 0
    var envelopesSealed = 0
    var envelopesOpened = 0
    var envelopesTakenAhead = 0
    var envelopesWithheld = 0
    var relayedOps: [String: Set<OpID>] = [:]
    var sealedEnvelopes: Set<Data> = []
    var envelopeRetries = 0
    var nextChannelID = 0
    /// The channel each end's id belongs to.
    var ends: [ChannelID: String] = [:]
    var partners: [NodeEngine.Partner] = []
    /// When every honest node's operator quarantines the hostile node, and from when its ops
    /// are left out (decided from the seed by a generator of its own, so that the rest of
    /// the run is what it was without it).
    var quarantinePlan: (atMillis: UInt64, sinceMillis: UInt64)?
    /// When each honest node's operator acts (they do not act at once: a node that has not
    /// yet quarantined passes the hostile node's ops on to one that has).
    var quarantineAt: [String: UInt64] = [:]
    var quarantineApplied = false
    /// In a revocation run, the quorum: only that many honest operators (those left in
    /// `quarantineAt`) endorse; the other honest nodes apply what reaches them.
    var revocationQuorum: Int?
    /// Each node's clock, in milliseconds ahead of the world's (negative: behind).
    var clockOffsets: [String: Int64] = [:]
    /// The skew every node allows.
    static let maxClockSkewMillis: UInt64 = 60_000
    /// The tags the workload puts on items and link filters require or exclude.
    static let tagVocabulary = ["internal", "red"]
    /// Tag changes (add, remove) and deletes of items that carried tags, written by the workload.
    var tagChanges = 0
    var taggedDeletes = 0
    /// Each node's log end when the simulator last looked (after its last interpreter call, or
    /// its last local write): what its engine held before the next call.
    var settledThrough: [String: UInt64] = [:]
    /// Final tags of items at each node, for the I3 check (computed once).
    var finalTags: [String: [ItemID: Set<String>]] = [:]

    /// A node's clock: the world's time plus its offset.
    func clock(of name: String) -> UInt64 { UInt64(Int64(now) + (clockOffsets[name] ?? 0)) }

    /// Prepares a run.
    public init(options: Options) {
        self.options = options
        self.random = SeededRandom(seed: options.seed)
        self.attackRandom = SeededRandom(seed: options.seed ^ 0xA77A_C4ED_0BAD_F00D)
        self.withholdRandom = SeededRandom(seed: options.seed ^ 0x0ACC_5EED_3A11_7EA5)
    }

    /// Runs one seed and reports what it found.
    public static func run(_ options: Options) -> SimulationReport {
        let simulation = Simulation(options: options)
        return simulation.execute()
    }

    func execute() -> SimulationReport {
        var convergeMillis: UInt64?
        do {
            try buildFederation()
            let workloadEnd = now + options.workloadMillis
            while now < workloadEnd {
                try step(workload: true)
            }
            // Heal: no new faults, every node up, no partitions.
            faultsOn = false
            blocked = []
            endpointDown = [:]
            cuts = [:]
            for name in names where !(nodes[name]!.up) { try restart(name) }
            let healedAt = now
            while now - healedAt < options.healLimitMillis {
                try step(workload: false)
                if try quiet() {
                    convergeMillis = now - healedAt
                    break
                }
            }
            if convergeMillis == nil {
                var stuck = [String]()
                for key in channels.keys.sorted() {
                    let channel = channels[key]!
                    if !channel.up { stuck.append("\(key) down") }
                    for (to, queue) in channel.queues where !queue.isEmpty {
                        stuck.append("\(queue.count) frames to \(to) on \(key)")
                    }
                }
                for name in names {
                    let highest = (try? nodes[name]!.store.highestSequence()) ?? 0
                    let engine = nodes[name]!.engine
                    for (id, channel) in engine.channels.sorted(by: { $0.key < $1.key }) {
                        let machine = channel.session
                        guard machine.carrying && (machine.ackedThrough != highest || !machine.inFlight.isEmpty) else {
                            continue
                        }
                        stuck.append(
                            "\(name) on \(ends[id] ?? "?") \(machine.phase) acked \(machine.ackedThrough)/\(highest) "
                                + "sent \(machine.sentThrough) inflight \(machine.inFlight)"
                        )
                    }
                    for peer in engine.selectors.keys.sorted() where engine.selectors[peer]!.carriers.isEmpty {
                        stuck.append("\(name)->\(peer) has no carrier")
                    }
                }
                violations.append(
                    "did not converge within \(options.healLimitMillis) ms after heal: \(stuck.prefix(6).joined(separator: "; "))"
                )
            }
            try checkFinalInvariants()
            try checkQuarantine()
            try checkRelaysHoldNoSealedContent()
            if let hostile, options.attacks {
                try checkAttacksChangedNothing(hostile: hostile)
            }
        } catch {
            violations.append("simulation error: \(error)")
        }
        return SimulationReport(
            seed: options.seed,
            nodes: options.nodes,
            hostile: hostile,
            attacks: attacksSent,
            violations: violations,
            traceHash: trace.finalize().hex,
            opsWritten: opsWritten,
            refusals: refusals,
            crashes: crashes,
            partitions: partitions,
            channelsBroken: channelsBroken,
            convergeMillis: convergeMillis,
            channelMode: settings.mode.rawValue,
            relays: names.filter { nodes[$0]?.isRelay == true },
            withholdingRelay: names.first { nodes[$0]?.withholds == true },
            endpointFaults: endpointFaults,
            linkCuts: linkCuts,
            failovers: names.reduce(0) { total, name in
                total + (nodes[name]?.engine.selectors.values.reduce(0) { $0 + $1.switches } ?? 0)
            },
            envelopesSealed: envelopesSealed,
            envelopesOpened: envelopesOpened,
            envelopesTakenAhead: envelopesTakenAhead,
            envelopesWithheld: envelopesWithheld,
            envelopeRetries: envelopeRetries,
            quarantined: quarantineApplied ? hostile : nil,
            edgeClocks: !clockOffsets.isEmpty,
            opsDeferred: names.reduce(0) { total, name in
                let entries = (try? nodes[name]?.store.custody(from: 1, limit: 1_000_000)) ?? []
                return total + entries.filter { $0.kind == .opsDeferred }.count
            },
            itemsPurged: names.reduce(0) { total, name in
                let entries = (try? nodes[name]?.store.custody(from: 1, limit: 1_000_000)) ?? []
                return total + entries.filter { $0.kind == .opsPurged }.count
            },
            replay:
                "liaison drill --simulate --seed \(options.seed) --nodes \(options.nodes)\(options.hostile ? " --hostile" : " --no-hostile")"
                + (options.withholdingRelay.map { $0 ? " --withholding-relay" : " --no-withholding-relay" } ?? "")
                + (options.quarantine.map { $0 ? " --quarantine" : " --no-quarantine" } ?? ""),
            revocationQuorum: revocationQuorum,
            tagFilters: links.values.reduce(0) { total, filters in
                total + filters.values.count { !($0.requiredTags.isEmpty && $0.excludedTags.isEmpty) }
            },
            tagChanges: tagChanges,
            taggedDeletes: taggedDeletes,
            opsWithheldForTags: opsWithheldForTags(),
            acksWithheld: acksWithheld,
            withholdingStrikes: names.filter { $0 != hostile }.reduce(0) { total, name in
                let entries = (try? nodes[name]?.store.custody(from: 1, limit: 1_000_000)) ?? []
                return total + entries.count { $0.kind == .peerRefused && $0.detail.hasPrefix("withholding") }
            },
            opsDelivered: names.reduce(0) { total, name in
                let held = (try? nodes[name]!.store.ops(after: 0, limit: 1_000_000)) ?? []
                return total + held.count { $0.op.body.author != nodes[name]!.author.nodeID }
            },
            maxBatchOps: options.maxBatchOps,
            partsCommitted: partsCommitted
        )
    }

    // MARK: - Federation

    func buildFederation() throws {
        let count = max(3, min(7, options.nodes))
        names = (0..<count).map { "p\($0)" }
        let groupNames = ["EAST", "WEST"]
        var authors = [String: OpAuthor]()
        var sealingKeys = [String: Curve25519.KeyAgreement.PrivateKey]()
        for name in names {
            let key = try Curve25519.Signing.PrivateKey(rawRepresentation: random.bytes(32))
            authors[name] = OpAuthor(signingKey: key)
            sealingKeys[name] = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: random.bytes(32))
        }
        settings.mode = random.chance(0.25) ? .activeActive : .failover
        // Shorter than the daemon's defaults so that relaying and retries happen within a
        // few virtual seconds of workload.
        settings.relayAfterMillis = 300
        settings.receiptTimeoutMillis = 800
        // An honest receiver here holds a batch unacknowledged for at most about two seconds
        // (an op stamped ahead of its clock under edge clocks; commits take no virtual time),
        // so a withholding strike between honest nodes within this deadline fails the run.
        settings.ackDeadlineMillis = 5_000
        // A ring plus random chords: every node reachable, some pairs without a link.
        var pairs = Set<[String]>()
        for index in 0..<count { pairs.insert([names[index], names[(index + 1) % count]].sorted()) }
        for _ in 0..<(count / 2) {
            let a = names[Int(random.next() % UInt64(count))]
            let b = names[Int(random.next() % UInt64(count))]
            if a != b { pairs.insert([a, b].sorted()) }
        }
        // Tag conditions come from a generator of their own, so that the federation the seed
        // gave before (links, channels, groups, relays) stays the same.
        var tagRandom = SeededRandom(seed: options.seed ^ 0x7A65_F117_E125_0DD5)
        for pair in pairs.sorted(by: { $0.joined() < $1.joined() }) {
            for (from, to) in [(pair[0], pair[1]), (pair[1], pair[0])] {
                var filter = LinkFilter()
                if random.chance(0.3) {
                    filter.collections = random.chance(0.5) ? ["reports"] : ["indicators", "reports"]
                }
                if random.chance(0.3) { filter.maxClassification = ladder.levels[1 + Int(random.next() % 3)] }
                if random.chance(0.2) { filter.redactFields = ["source"] }
                if options.tagFilters { Self.drawTagConditions(&filter, using: &tagRandom) }
                links[from, default: [:]][to] = filter
            }
            let count = random.chance(0.5) ? 2 : 1
            for index in 0..<count {
                channels[channelKey(pair[0], pair[1], index)] = Channel(a: pair[0], b: pair[1], index: index)
            }
        }
        let partners = names.map { name in
            Recipient(
                name: name,
                nodeID: authors[name]!.nodeID,
                groups: random.chance(0.5) ? [groupNames[Int(random.next() % 2)]] : []
            )
        }
        if options.hostile {
            hostile = names.last
            var plan = SeededRandom(seed: options.seed ^ 0x0C0A_2A27_14E0_5EED)
            if options.quarantine ?? plan.chance(0.5) {
                let at = now + options.workloadMillis * (40 + plan.next() % 40) / 100
                quarantinePlan = (at, at - plan.next() % 1_500)
                for name in names where name != hostile { quarantineAt[name] = at + plan.next() % 600 }
                if options.revocation ?? plan.chance(0.5) {
                    var pool = names.filter { $0 != hostile }
                    let quorum = 1 + Int(plan.next() % UInt64(pool.count))
                    var endorsers = Set<String>()
                    for _ in 0..<quorum { endorsers.insert(pool.remove(at: Int(plan.next() % UInt64(pool.count)))) }
                    quarantineAt = quarantineAt.filter { endorsers.contains($0.key) }
                    revocationQuorum = quorum
                }
            }
        }
        // The edge of the skew, in half the hostile runs (drawn apart from the run's other
        // choices): the hostile node's clock runs 800 ms short of the allowed skew ahead and
        // honest clocks disagree by up to a second each way, so its stamps, and those of
        // honest nodes that take them in, reach some partners beyond their skew.
        var clockRandom = SeededRandom(seed: options.seed ^ 0x5EED_0C10_CC5E_D6E5)
        if let hostile, options.edgeClocks ?? clockRandom.chance(0.5) {
            for name in names {
                clockOffsets[name] =
                    name == hostile ? Int64(Self.maxClockSkewMillis) - 800 : Int64(clockRandom.next() % 2_001) - 1_000
            }
        }
        var relaySet = Set<String>()
        for name in names where name != hostile && random.chance(0.35) { relaySet.insert(name) }
        let relays = names.filter(relaySet.contains)
        var withholder: String?
        let withhold = random.chance(0.3)
        if !relays.isEmpty && (options.withholdingRelay ?? withhold) {
            withholder = relays[Int(random.next() % UInt64(relays.count))]
        }
        self.partners = partners.map { partner in
            let neighbours = names.filter { links[partner.name]?[$0] != nil || links[$0]?[partner.name] != nil }
            return NodeEngine.Partner(
                recipient: partner,
                relay: relaySet.contains(partner.name),
                neighbours: Set(neighbours),
                sealingKey: sealingKeys[partner.name]!.publicKey
            )
        }
        for partner in partners {
            let store = MemoryStore()
            let transport = SimulatedTransport()
            nodes[partner.name] = Node(
                name: partner.name,
                author: authors[partner.name]!,
                groups: partner.groups,
                store: store,
                sealingKey: sealingKeys[partner.name]!,
                transport: transport,
                interpreter: try makeInterpreter(
                    name: partner.name,
                    store: store,
                    transport: transport,
                    partners: self.partners,
                    isRelay: relaySet.contains(partner.name),
                    signingKey: authors[partner.name]!.signingKey,
                    sealingKey: sealingKeys[partner.name]!
                ),
                isRelay: relaySet.contains(partner.name),
                withholds: partner.name == withholder
            )
        }
        traceStrings(names)
        traceStrings(relays)
    }

    /// Gives a seeded share of links (three in ten) tag conditions drawn from the workload's
    /// vocabulary: mostly an excluded tag (or both), now and then a required one (which keeps
    /// every untagged item off the link, so it is rarer, lest it starve the run).
    static func drawTagConditions(_ filter: inout LinkFilter, using random: inout SeededRandom) {
        guard random.chance(0.3) else { return }
        let first = tagVocabulary[Int(random.next() % UInt64(tagVocabulary.count))]
        let other = tagVocabulary.first { $0 != first }!
        switch random.next() % 10 {
        case 0..<6: filter.excludedTags = [first]
        case 6..<8: filter.excludedTags = Set(tagVocabulary)
        case 8: filter.requiredTags = [first]
        default:
            filter.requiredTags = [first]
            filter.excludedTags = [other]
        }
    }

    // MARK: - Time steps

    func step(workload: Bool) throws {
        now += 5
        traceNow(now)
        if let plan = quarantinePlan {
            for name in names where (quarantineAt[name] ?? .max) <= now {
                quarantineAt[name] = nil
                try applyQuarantine(at: name, sinceMillis: plan.sinceMillis)
            }
        }
        // Deliver what is due, channel by channel, in order.
        for key in channels.keys.sorted() {
            for receiver in [channels[key]!.a, channels[key]!.b] {
                let sender = receiver == channels[key]!.a ? channels[key]!.b : channels[key]!.a
                if blocked.contains("\(sender)>\(receiver)") { continue }
                while let first = channels[key]?.queues[receiver]?.first, first.at <= now, channels[key]!.up {
                    channels[key]!.queues[receiver]!.removeFirst()
                    try deliver(first.frame, from: sender, to: receiver, channel: key)
                }
            }
        }
        if (now - start) % 50 == 0 {
            for name in names where nodes[name]!.up {
                let report = nodes[name]!.interpreter.handle(.tick(), nowMillis: clock(of: name))
                try settle(name, report)
            }
        }
        try connectChannels()
        if workload {
            if faultsOn { try injectFaults() }
            if random.chance(0.25) { try workloadStep() }
        }
        checkAlwaysInvariants()
    }

    func channelKey(_ a: String, _ b: String, _ index: Int) -> String {
        [a, b].sorted().joined(separator: "|") + "#\(index)"
    }

    /// The other end of a channel.
    func peer(on key: String, of name: String) -> String {
        let channel = channels[key]!
        return channel.a == name ? channel.b : channel.a
    }

    func connectChannels() throws {
        for key in channels.keys.sorted() {
            var channel = channels[key]!
            guard !channel.up, now >= channel.retryAt else { continue }
            let (a, b) = (channel.a, channel.b)
            guard nodes[a]!.up, nodes[b]!.up, !blocked.contains("\(a)>\(b)"), !blocked.contains("\(b)>\(a)"),
                now >= endpointDown[key] ?? 0, now >= cuts[[a, b].joined(separator: "|")] ?? 0
            else {
                channel.retryAt = now + 100 + random.next() % 400
                channels[key] = channel
                continue
            }
            channel.up = true
            channel.epoch += 1
            channel.queues = [a: [], b: []]
            channel.keepalives = [a: ChannelKeepalive(), b: ChannelKeepalive()]
            for name in [a, b] {
                nextChannelID += 1
                channel.ids[name] = ChannelID(nextChannelID)
                ends[ChannelID(nextChannelID)] = key
            }
            channels[key] = channel
            traceString("up \(key) \(channel.epoch)")
            for (me, peer) in [(a, b), (b, a)] {
                guard channels[key]?.up == true, let id = channels[key]?.ids[me] else { continue }
                let report = nodes[me]!.interpreter.channelConnected(
                    id, peer: peer, endpoint: channel.index, address: key, nowMillis: clock(of: me))
                try settle(me, report)
            }
        }
    }

    /// The channel breaks: everything in flight is lost and both ends learn it.
    func breakChannel(_ key: String, why: String) throws {
        guard var channel = channels[key], channel.up else { return }
        let ids = channel.ids
        channel.up = false
        channel.queues = [:]
        channel.ids = [:]
        channel.retryAt = now + 50 + random.next() % 450
        channels[key] = channel
        traceString("down \(key) \(why)")
        for name in [channel.a, channel.b] {
            guard let id = ids[name], nodes[name]?.up == true else { continue }
            let report = nodes[name]!.interpreter.handle(.channelLost(id, error: nil), nowMillis: clock(of: name))
            try settle(name, report)
        }
    }

    /// A frame reaches `receiver`: decoded by the real codec, handed to its interpreter.
    func deliver(_ frame: ByteBuffer, from sender: String, to receiver: String, channel key: String) throws {
        guard let id = channels[key]?.ids[receiver] else { return }
        let message: SyncMessage
        do {
            message = try SyncFrameCodec.decode(frame)
        } catch {
            violations.append("a frame from \(sender) to \(receiver) does not decode: \(error)")
            return
        }
        if case .envelope(let bytes) = message, let envelope = try? SealedEnvelope.decode(bytes),
            envelope.header.to != nodes[receiver]!.author.nodeID
        {
            // The hostile relay's behaviour: it takes envelopes and never hands them on.
            if nodes[receiver]!.withholds {
                envelopesWithheld += 1
                traceString("withhold \(receiver) \(sender)")
                return
            }
            recordRelayed(envelope, at: receiver)
        }
        // The receiver's channel reader opens an envelope addressed to it ahead of its engine,
        // as the daemon's does (`SealedAhead`), and the engine takes the results from its
        // `EnvelopeOpener` (with the keys the engine holds now: one opened with others is
        // opened again by the engine, which the opener's tests cover).
        let engine = nodes[receiver]!.interpreter.engine
        let handedBefore = engine.envelopes.handedOut
        if case .envelope(let bytes) = message {
            _ = engine.envelopes.openAhead(
                bytes, me: engine.configuration.me.nodeID, sealingKey: engine.configuration.sealingKey,
                senderKey: { engine.partner(id: $0)?.sealingKey }, isNew: { _ in true })
        }
        // The receiver's channel answers a ping before its engine sees it, as the daemon's
        // does. Its engine never stalls here, so it takes the heartbeat at once.
        var keepalive = channels[key]?.keepalives[receiver] ?? ChannelKeepalive()
        let disposition = keepalive.inbound(message)
        channels[key]?.keepalives[receiver] = keepalive
        if case .heartbeat(let reply?) = disposition {
            nodes[receiver]!.transport.send(try SyncFrameCodec.encode(reply), on: id)
        }
        let report = nodes[receiver]!.interpreter.handle(
            .frame(id, message, bytes: frame.readableBytes + 4, atMillis: clock(of: receiver)),
            nowMillis: clock(of: receiver)
        )
        envelopesTakenAhead += engine.envelopes.handedOut - handedBefore
        try settle(receiver, report)
    }

    /// After an interpreter call at `name`: check what it did, and put what it wrote on the
    /// network (or close what it closed).
    func settle(_ name: String, _ report: NodeInterpreter<SimulatedTransport>.Report) throws {
        for failure in report.failures { violations.append("\(name): store work failed: \(failure)") }
        try check(report, at: name)
        let transport = nodes[name]!.transport
        while !transport.outbox.isEmpty {
            let item = transport.outbox.removeFirst()
            guard let key = ends[item.channel], let channel = channels[key], channel.up,
                channel.ids[name] == item.channel
            else { continue }
            let peer = channel.a == name ? channel.b : channel.a
            switch item.kind {
            case .frame(var frame):
                try checkSentTags(frame, from: name, to: peer)
                if faultsOn && random.chance(0.002) {
                    channelsBroken += 1
                    try breakChannel(key, why: "loss")
                    continue
                }
                if name == hostile {
                    guard let kept = try withholdAck(frame, by: name, against: peer) else { continue }
                    frame = kept
                    if options.attacks { frame = try attack(frame, by: name, against: peer, channel: key) }
                }
                // A blocked direction holds frames back (as TCP would keep retransmitting); if
                // the block outlasts the heartbeat deadline, the receiver closes the channel.
                let delay = 1 + random.next() % 20
                let last = channels[key]!.queues[peer]?.last?.at ?? 0
                channels[key]!.queues[peer, default: []].append((max(last, now + delay), frame))
            case .close(let reason):
                if name != hostile, peer != hostile, reason.hasPrefix("protocol violation") {
                    violations.append("t=\(now - start) \(name) closed its channel with honest \(peer): \(reason)")
                }
                try breakChannel(key, why: reason)
            }
        }
        settledThrough[name] = try nodes[name]!.store.highestSequence()
    }

    // MARK: - Faults

    func injectFaults() throws {
        // Crash one node now and then; bring it back later with what it committed.
        if random.chance(0.004) {
            let name = names[Int(random.next() % UInt64(names.count))]
            if nodes[name]!.up {
                crashes += 1
                nodes[name]!.up = false
                nodes[name]!.transport.outbox = []
                for key in channels.keys.sorted() where channels[key]!.a == name || channels[key]!.b == name {
                    try breakChannel(key, why: "crash \(name)")
                }
                downUntil[name] = now + 100 + random.next() % 900
                traceString("crash \(name)")
            }
        }
        for name in names where !nodes[name]!.up {
            if let until = downUntil[name], now >= until { try? restart(name) }
        }
        // An endpoint goes down: its channel breaks and cannot reconnect for a while.
        if random.chance(0.003) {
            let keys = channels.keys.sorted()
            let key = keys[Int(random.next() % UInt64(keys.count))]
            endpointFaults += 1
            endpointDown[key] = now + 200 + random.next() % 1300
            try breakChannel(key, why: "endpoint down")
            traceString("endpoint down \(key)")
        }
        // A link is cut: every channel of one neighbour pair breaks and stays down for a while
        // (long enough for sealed relaying to start).
        if random.chance(0.002) {
            let keys = channels.keys.sorted()
            let channel = channels[keys[Int(random.next() % UInt64(keys.count))]]!
            let pair = [channel.a, channel.b].joined(separator: "|")
            linkCuts += 1
            cuts[pair] = now + 500 + random.next() % 2000
            for key in keys where channels[key]!.a == channel.a && channels[key]!.b == channel.b {
                try breakChannel(key, why: "link cut")
            }
            traceString("cut \(pair)")
        }
        // Partitions: isolate one node, split in two, or block one direction.
        if now >= partitionUntil && !blocked.isEmpty {
            blocked = []
            traceString("heal partition")
        }
        if blocked.isEmpty && random.chance(0.003) {
            partitions += 1
            partitionUntil = now + 200 + random.next() % 1300
            switch random.next() % 3 {
            case 0:
                let isolated = names[Int(random.next() % UInt64(names.count))]
                for other in names where other != isolated {
                    blocked.insert("\(isolated)>\(other)")
                    blocked.insert("\(other)>\(isolated)")
                }
            case 1:
                let side = Set(names.filter { _ in random.chance(0.5) })
                for a in names where side.contains(a) {
                    for b in names where !side.contains(b) {
                        blocked.insert("\(a)>\(b)")
                        blocked.insert("\(b)>\(a)")
                    }
                }
            default:
                let a = names[Int(random.next() % UInt64(names.count))]
                let b = names[Int(random.next() % UInt64(names.count))]
                if a != b { blocked.insert("\(a)>\(b)") }
            }
            traceStrings(blocked.sorted())
        }
    }

    /// The node comes back with what its store committed and nothing else: a new engine
    /// and interpreter, as a restarted daemon has.
    func restart(_ name: String) throws {
        let node = nodes[name]!
        node.transport.outbox = []
        node.interpreter = try makeInterpreter(
            name: name,
            store: node.store,
            transport: node.transport,
            partners: partners,
            isRelay: node.isRelay,
            signingKey: node.author.signingKey,
            sealingKey: node.sealingKey
        )
        node.up = true
        downUntil[name] = nil
        traceString("restart \(name)")
    }

    // MARK: - Workload

    func workloadStep() throws {
        let name = names[Int(random.next() % UInt64(names.count))]
        guard nodes[name]!.up else { return }
        let author = nodes[name]!.author
        let held = try nodes[name]!.store.items(ItemQuery(limit: 50))
        var unsigned = [UnsignedOp]()
        let hlc = nodes[name]!.interpreter.tick(nowMillis: clock(of: name))
        let roll = random.next() % 100
        if roll < 35 || held.isEmpty {
            var relTo = names.filter { $0 != name && random.chance(0.5) }
            if random.chance(0.15) { relTo = [Markings.everyone] }
            if random.chance(0.1) { relTo.append(random.chance(0.5) ? "EAST" : "WEST") }
            let markings = Markings(
                classification: ladder.levels[Int(random.next() % UInt64(ladder.levels.count))],
                releasableTo: relTo,
                orcon: random.chance(0.1)
            )
            var fields: [(name: String, value: Data)] = [("title", Data("\"t\(random.next() % 1000)\"".utf8))]
            if random.chance(0.3) { fields.append(("source", Data("\"s\(random.next() % 100)\"".utf8))) }
            unsigned.append(
                try author.create(
                    collection: random.chance(0.5) ? "reports" : "indicators",
                    markings: markings,
                    fields: fields,
                    tags: random.chance(0.3) ? [Self.tagVocabulary[Int(random.next() % 2)]] : [],
                    writePolicy: random.chance(0.5) ? .annotations : .originatorOnly,
                    withheld: FieldReleasability.withheld(
                        fields: fields.map(\.name), outbound: links[name] ?? [:]),
                    hlc: hlc,
                    using: &random
                )
            )
        } else {
            // A small hot set: the first few items this node holds.
            let item = held[Int(random.next() % UInt64(min(held.count, 4)))]
            guard case .success = item.permits(writer: nodes[name]!.recipient, change: .setFields([])),
                !item.isWithdrawn
            else {
                return
            }
            switch roll {
            case 35..<70:
                unsigned.append(
                    try author.setFields(
                        [("title", Data("\"v\(random.next() % 1000)\"".utf8))], of: item,
                        withheld: FieldReleasability.withheld(fields: ["title"], outbound: links[name] ?? [:]),
                        hlc: hlc, using: &random))
            case 70..<80:
                unsigned.append(try author.change(item, .addTags([random.chance(0.5) ? "red" : "internal"]), hlc: hlc))
            case 80..<88:
                let tag = random.chance(0.5) ? "red" : "internal"
                let live = item.liveInstances(of: tag)
                guard !live.isEmpty else { return }
                unsigned.append(try author.change(item, .removeTags([TagRemoval(tag: tag, observed: live)]), hlc: hlc))
            case 88..<97:
                guard item.originator == author.nodeID else { return }
                // Broaden or narrow releasability.
                var relTo = Set(item.markings.releasableTo)
                let other = names[Int(random.next() % UInt64(names.count))]
                if relTo.contains(other) && random.chance(0.4) { relTo.remove(other) } else { relTo.insert(other) }
                var markings = item.markings
                markings.releasableTo = relTo.sorted()
                // As the originator's node does it: a narrowing also recalls the partners it
                // removes (LocalNode.changeMarkings, DESIGN §5.7).
                let plan = item.planMarkingsChange(
                    to: markings, among: names.map { nodes[$0]!.recipient }, restatesAudience: true)
                for (index, change) in plan.changes.enumerated() {
                    let stamp = index == 0 ? hlc : nodes[name]!.interpreter.tick(nowMillis: clock(of: name))
                    unsigned.append(try author.change(item, change, hlc: stamp))
                }
            default:
                guard item.originator == author.nodeID else { return }
                unsigned.append(try author.change(item, .delete, hlc: hlc))
            }
        }
        let signed = try author.sign(unsigned)
        let result = try nodes[name]!.store.commit(
            CommitBatch(ops: signed, source: .local, timeMillis: Int64(clock(of: name))))
        guard result.rejected.isEmpty else {
            violations.append("a local op by \(name) was refused by its own store: \(result.rejected.map(\.reason))")
            return
        }
        for op in signed {
            groundTruth[op.id] = op
            switch op.body.change {
            case .addTags, .removeTags: tagChanges += 1
            case .delete:
                // A tombstone keeps its tags.
                if try !(nodes[name]!.store.item(op.body.itemID)?.tags.isEmpty ?? true) { taggedDeletes += 1 }
            default: break
            }
        }
        opsWritten += signed.count
        // What the node held when its engine next loads a batch: the local ops are in it.
        settledThrough[name] = try nodes[name]!.store.highestSequence()
        traceString("put \(name) \(signed.map(\.id.hash.hex).joined())")
        let report = nodes[name]!.interpreter.committedLocally(
            stamps: signed.map(\.body.hlc), nowMillis: clock(of: name))
        try settle(name, report)
    }

    // MARK: - Hostile node

    var custodyCounts: [String: UInt64] = [:]

    /// Bad ops for one batch: forged (another partner's op with its body altered), a write
    /// where the hostile node may not write, an item not releasable to the receiver, a
    /// far-future stamp, and a replay of an old op. Returns them and how many must be refused
    /// (all but the replay). Draws only from its own generator and never touches the
    /// hostile node's clock or store, so the honest run is unchanged.
    func makeAttacks(by name: String, against peer: String) throws -> ([Data], Int) {
        let author = nodes[name]!.author
        let held = try nodes[name]!.store.ops(after: 0, limit: 100_000)
        var attack = [Data]()
        var mustRefuse = 0
        if let victim = held.filter({ $0.op.body.author != author.nodeID }).randomElement(using: &attackRandom) {
            var forged = victim.op.encoded
            let index = forged.startIndex + 6 + Int(attackRandom.next() % UInt64(max(1, min(40, forged.count - 6))))
            forged[index] ^= 0x20
            attack.append(forged)
            mustRefuse += 1
            if let item = try nodes[name]!.store.item(victim.op.body.itemID), item.originator != author.nodeID {
                let hlc = HLCTimestamp(physicalMillis: now, logical: 900)
                attack.append(try author.sign([try author.change(item, .delete, hlc: hlc)])[0].encoded)
                // A receiver that does not hold the item yet keeps the op pending; the item
                // refuses it (and custody records it) when the create arrives.
                if try nodes[peer]!.store.item(item.id) != nil { mustRefuse += 1 }
            }
        }
        let secret = try author.create(
            collection: "reports",
            markings: Markings(classification: "UNCLASSIFIED", releasableTo: []),
            fields: [("title", Data("\"not for you\"".utf8))],
            hlc: HLCTimestamp(physicalMillis: now, logical: 901),
            using: &attackRandom
        )
        let future = try author.create(
            collection: "reports",
            markings: Markings(classification: "UNCLASSIFIED", releasableTo: [Markings.everyone]),
            hlc: HLCTimestamp(physicalMillis: now + 3_600_000, logical: 0),
            using: &attackRandom
        )
        attack += try author.sign([secret, future]).map(\.encoded)
        mustRefuse += 2
        // No forked create here: an accepted op (a fork is kept as proof) changes every
        // honest log after it and so the whole run, which the twin run cannot compare. Forks
        // are proven by the store's tests and the real-process hostile drill.
        // A replay of an op the receiver already holds (and whose stamp its clock admits: a
        // batch with an op beyond the receiver's skew would wait, which the run without attacks
        // would not do).
        let receiverHolds = try held.filter {
            try nodes[peer]!.store.op($0.op.id) != nil
                && $0.op.body.hlc.physicalMillis <= clock(of: peer) + Self.maxClockSkewMillis
        }
        if let replay = receiverHolds.randomElement(using: &attackRandom) { attack.append(replay.op.encoded) }
        return (attack, mustRefuse)
    }

    /// Runs the same seed without the attacks and requires every honest node to end with
    /// exactly the same items.
    func checkAttacksChangedNothing(hostile: String) throws {
        var twinOptions = options
        twinOptions.attacks = false
        let twin = Simulation(options: twinOptions)
        _ = twin.execute()
        for name in names where name != hostile {
            let mine = try nodes[name]!.store.items(ItemQuery(includeWithdrawn: true, limit: 100_000))
            let theirs = try twin.nodes[name]!.store.items(ItemQuery(includeWithdrawn: true, limit: 100_000))
            let a = Dictionary(uniqueKeysWithValues: mine.map { ($0.id, $0.digest) })
            let b = Dictionary(uniqueKeysWithValues: theirs.map { ($0.id, $0.digest) })
            if a != b {
                violations.append(
                    "hostile \(hostile)'s attacks changed what honest \(name) holds (\(a.count) items vs \(b.count) without attacks)"
                )
            }
        }
    }

    // MARK: - Invariants

    /// I2 at receipt: every op a node accepted in clear was releasable to it under some markings
    /// its originator issued; ORCON items come only from their originator or an op's author.
    func checkReceived(_ encoded: [Data], at name: String, from peer: String, onlyStored: Bool) throws {
        let node = nodes[name]!
        for bytes in encoded {
            // From an honest sender whatever arrived counts, accepted or not: receiving it in
            // clear is the violation. A hostile sender can send anything; what counts is
            // that nothing of it is kept.
            guard var op = try? VerifiedOp(storedEncoding: bytes) else { continue }
            if onlyStored {
                guard let stored = try node.store.op(op.id), stored.receivedFrom == nodes[peer]!.author.nodeID else {
                    continue
                }
                op = stored.op
            }
            let versions = markingsVersions(of: op.body.itemID)
            guard op.body.originator != node.author.nodeID else { continue }
            if !versions.contains(where: { $0.isReleasable(toPartner: name, groups: node.groups) }) {
                violations.append(
                    "I2: \(name) holds op \(op.id.hash.hex.prefix(8)) of an item never releasable to it (from \(peer))")
            }
            if !versions.isEmpty, versions.allSatisfy(\.orcon), nodes[peer]!.author.nodeID != op.body.originator,
                nodes[peer]!.author.nodeID != op.body.author
            {
                violations.append("I2: \(peer) passed on ORCON op \(op.id.hash.hex.prefix(8)) to \(name)")
            }
            // Values of fields the author withheld from this node never arrive in clear,
            // whatever the path (field-level releasability, signed in the op).
            let withheldHere = op.body.change.fieldCommitments.filter {
                $0.isWithheld(from: node.recipient) && op.openings[$0.name] != nil
            }
            if !withheldHere.isEmpty {
                violations.append(
                    "I2: \(name) \(onlyStored ? "holds" : "was sent by \(peer)") values of \(withheldHere.map(\.name)) of op \(op.id.hash.hex.prefix(8)), withheld from it by its author"
                )
            }
            // Values of fields the sender's link redacts never arrive in clear.
            // (From a hostile sender they are refused on receipt; the stored copy's values may
            // have come from another path, so only honest senders are checked here.)
            if !onlyStored, let filter = links[peer]?[name],
                !Set(op.openings.keys).isDisjoint(with: filter.redactFields)
            {
                violations.append("I2: \(peer) sent redacted field values of \(op.id.hash.hex.prefix(8)) to \(name)")
            }
        }
    }

    func markingsVersions(of item: ItemID) -> [Markings] {
        groundTruth.values.compactMap { op in
            guard op.body.itemID == item else { return nil }
            switch op.body.change {
            case .create(let create): return create.markings
            case .changeMarkings(let markings): return markings
            default: return nil
            }
        }
    }

    func checkAlwaysInvariants() {
        for name in names where nodes[name]!.up {
            for (id, channel) in nodes[name]!.engine.channels
            where channel.session.inFlight.count > channel.session.configuration.window {
                violations.append(
                    "I7: \(name) on \(ends[id] ?? "?") has \(channel.session.inFlight.count) batches in flight")
            }
            for peer in nodes[name]!.engine.configuration.links.keys {
                for link in [ReplicationStore.sentLink(peer), ReplicationStore.receivedLink(peer)] {
                    let value = (try? nodes[name]!.store.checkpoint(link: link)) ?? 0
                    let key = "\(name)/\(link)"
                    if value < checkpoints[key] ?? 0 {
                        violations.append("checkpoint \(key) went back from \(checkpoints[key]!) to \(value)")
                    }
                    checkpoints[key] = value
                }
            }
        }
        for key in channels.keys {
            for queue in channels[key]!.queues.values where queue.count > 512 {
                violations.append("I7: \(queue.count) frames queued on \(key)")
            }
        }
    }

    /// Whether nothing is on its way: every channel up, every session open and acknowledged
    /// to the end of its node's log, nothing in flight.
    func quiet() throws -> Bool {
        // A quarantined hostile node is cut off: its links, and what it holds, do not count.
        let cutOff = quarantineApplied ? hostile : nil
        for channel in channels.values where channel.a != cutOff && channel.b != cutOff {
            guard channel.up, channel.queues.values.allSatisfy(\.isEmpty) else { return false }
        }
        for name in names where name != cutOff {
            let highest = try nodes[name]!.store.highestSequence()
            let engine = nodes[name]!.engine
            for channel in engine.channels.values where channel.peer != cutOff {
                let machine = channel.session
                guard case .open = machine.phase else { return false }
                guard !machine.carrying || (machine.ackedThrough == highest && machine.inFlight.isEmpty) else {
                    return false
                }
            }
            for peer in engine.configuration.links.keys
            where peer != cutOff && engine.selectors[peer]?.carriers.isEmpty != false {
                return false
            }
            for peer in names
            where peer != cutOff && (engine.relayQueue.held(for: peer) > 0 || engine.sealed.awaiting(peer) > 0) {
                return false
            }
            if nodes[name]!.interpreter.waitingBatches > 0 { return false }
        }
        return true
    }

    /// After heal: I3 (every acknowledged op is at every entitled node) and I1 (equal digests).
    func checkFinalInvariants() throws {
        var finalItems = [ItemID: ItemState]()
        for name in names {
            for item in try nodes[name]!.store.items(ItemQuery(includeWithdrawn: true, limit: 100_000)) {
                if item.originator == nodes[name]!.author.nodeID { finalItems[item.id] = item }
            }
        }
        let byNodeID = Dictionary(uniqueKeysWithValues: names.map { (nodes[$0]!.author.nodeID, $0) })
        let cutOff = quarantineApplied ? hostile : nil
        for op in groundTruth.values.sorted(by: { $0.id < $1.id }) {
            guard let item = finalItems[op.body.itemID], let authorName = byNodeID[op.body.author],
                let originatorName = byNodeID[item.originator]
            else { continue }
            // Once quarantined, what the hostile node wrote or originated is owed to no one.
            if authorName == cutOff || originatorName == cutOff { continue }
            // An op is owed whoever wrote it: an author the item was narrowed away from gets
            // the narrowing (docs/merge-rules.md, "Annotations and narrowing") and passes its
            // annotations on under the final markings. (Seed 102486 once excused such an
            // author here; the narrowing did not reach it then.)
            // A node must hold an op when the op can reach it from its author and the item
            // itself (its create) can reach it from the originator.
            let mustHold = try entitled(op: op, item: item, from: authorName).intersection(
                entitled(item: item, from: originatorName))
            for holder in mustHold.sorted() where holder != cutOff {
                if try nodes[holder]!.store.op(op.id) == nil {
                    let holds = try nodes[holder]!.store.item(op.body.itemID) != nil
                    var custody = [String]()
                    for name in names {
                        for entry in try nodes[name]!.store.custody(from: 1, limit: 100_000)
                        where entry.opIDs.contains(op.id) {
                            custody.append(
                                "\(name):\(entry.kind.rawValue)>\(entry.peer?.prefix(4) ?? "-") \(entry.detail)")
                        }
                    }
                    if ProcessInfo.processInfo.environment["LIAISON_SIM_DEBUG"] != nil {
                        print(
                            "missing \(op.id.hash.hex.prefix(8)) at \(holder):\n    "
                                + custody.joined(separator: "\n    "))
                        for (from, filters) in links.sorted(by: { $0.key < $1.key }) {
                            guard let filter = filters[holder],
                                let neighbourItem = try nodes[from]!.store.item(op.body.itemID)
                            else { continue }
                            let has = try nodes[from]!.store.op(op.id)
                            let reason = Eligibility.withholdReason(
                                markings: neighbourItem.markings, collection: neighbourItem.collection,
                                tags: Set(neighbourItem.tags),
                                originator: neighbourItem.originator,
                                opAuthor: op.body.author, sender: nodes[from]!.author.nodeID,
                                recipient: nodes[holder]!.recipient,
                                filter: filter, ladder: ladder
                            )
                            print(
                                "    neighbour \(from): has op \(has != nil) seq \(has?.sequence ?? 0) from \(has?.receivedFrom?.short ?? "-") decision \(reason?.rawValue ?? "send") tags \(neighbourItem.tags) checkpoint to:\(holder)=\((try? nodes[from]!.store.checkpoint(link: ReplicationStore.sentLink(holder))) ?? 0)/\((try? nodes[from]!.store.highestSequence()) ?? 0)"
                            )
                            for stored in try nodes[from]!.store.ops(ofItem: op.body.itemID) {
                                print(
                                    "        seq \(stored.sequence) \(stored.op.body.change.kindName) by \(stored.op.body.author.short) from \(stored.receivedFrom?.short ?? "local")"
                                )
                            }
                        }
                    }
                    violations.append(
                        "I3: \(holder) lacks op \(op.id.hash.hex.prefix(8)) (\(op.body.change.kindName) by \(authorName)) of item "
                            + "\(op.body.itemID.text.prefix(8)) [\(item.collection) \(item.markings.classification) REL TO \(item.markings.releasableTo) "
                            + "orcon \(item.markings.orcon) tags \(item.tags) withdrawn \(item.isWithdrawn)]; holds item: \(holds)"
                    )
                }
            }
        }
        // I1: nodes that hold the same set of ops of an item hold the same state.
        for (id, _) in finalItems.sorted(by: { $0.key < $1.key }) {
            var digestsByOpSet = [Set<OpID>: (holder: String, digest: Hash32)]()
            // The quarantined node does not quarantine itself: its states are not compared.
            for name in names where name != cutOff {
                guard let state = try nodes[name]!.store.item(id) else { continue }
                let opSet = Set(try nodes[name]!.store.ops(ofItem: id).map(\.op.id))
                if let first = digestsByOpSet[opSet] {
                    if first.digest != state.digest {
                        violations.append(
                            "I1: \(name) and \(first.holder) hold the same ops of \(id.text.prefix(8)) but different states"
                        )
                    }
                } else {
                    digestsByOpSet[opSet] = (name, state.digest)
                }
            }
        }
        try checkPurged()
        traceStrings(violations)
    }

    /// Purge (DESIGN §5.7, I2): no honest node holds values, in an item or in its log, of an
    /// item it may keep the content of no more (recalled from it, narrowed away from it,
    /// deleted), but the values it wrote itself.
    func checkPurged() throws {
        for name in names where name != hostile {
            let me = nodes[name]!.recipient
            for item in try nodes[name]!.store.items(ItemQuery(includeWithdrawn: true, limit: 100_000)) {
                guard let cause = item.purgeCause(at: me) else { continue }
                let fields = item.fields.filter { $0.value.value != nil && $0.value.stamp.author != me.nodeID }
                let ops = try nodes[name]!.store.ops(ofItem: item.id).filter {
                    !$0.op.openings.isEmpty && $0.op.body.author != me.nodeID
                }
                if !fields.isEmpty || !ops.isEmpty {
                    violations.append(
                        "purge: \(name) holds values of item \(item.id.text.prefix(8)) (\(cause)): "
                            + "fields \(fields.keys.sorted()), \(ops.count) ops with values")
                }
            }
        }
    }

    /// Nodes an op must reach: flooding from its author along links whose eligibility lets it
    /// through, judged on the item's final markings and collection (its originator's) and on
    /// the tags the *sending* node ends with (`finalTags(of:at:)`, docs/filter-rules.md "Tag
    /// conditions over time").
    func entitled(op: VerifiedOp, item: ItemState, from author: String) throws -> Set<String> {
        try flood(item: item, opAuthor: op.body.author, from: author)
    }

    func entitled(item: ItemState, from originator: String) throws -> Set<String> {
        try flood(item: item, opAuthor: item.originator, from: originator)
    }

    func flood(item: ItemState, opAuthor: NodeID, from start: String) throws -> Set<String> {
        var reached: Set<String> = [start]
        var frontier = [start]
        let cutOff = quarantineApplied ? hostile : nil
        while !frontier.isEmpty {
            let sender = frontier.removeFirst()
            for (to, filter) in (links[sender] ?? [:]).sorted(by: { $0.key < $1.key })
            where !reached.contains(to) && to != cutOff {
                // A hop carries the op when the sender's own copy passes the link (its markings
                // may lag the originator's where tag conditions withheld a change of markings:
                // seed 368405) and the item's final markings pass it too (a receiver whose
                // markings are current refuses what stale markings let through: seed 72).
                guard let held = try nodes[sender]!.store.item(item.id) else { continue }
                let tags = try finalTags(of: item, at: sender)
                var reason: WithholdReason? = nil
                for markings in [held.markings, item.markings] where reason == nil {
                    reason = Eligibility.withholdReason(
                        markings: markings,
                        collection: item.collection,
                        tags: tags,
                        originator: item.originator,
                        opAuthor: opAuthor,
                        sender: nodes[sender]!.author.nodeID,
                        recipient: nodes[to]!.recipient,
                        filter: filter,
                        ladder: ladder
                    )
                }
                if reason == nil {
                    reached.insert(to)
                    frontier.append(to)
                }
            }
        }
        return reached
    }

    // MARK: - Quarantine

    /// `name`'s operator quarantines the hostile node from `sinceMillis` on: a
    /// running node through its engine, a stopped one in its store (as `liaison quarantine`
    /// does on a stopped node; the restarted engine finds it there).
    func applyQuarantine(at name: String, sinceMillis: UInt64) throws {
        guard let hostile else { return }
        quarantineApplied = quarantineAt.isEmpty
        traceString("quarantine \(hostile) at \(name) since \(sinceMillis)")
        let event: NodeEngine.Event
        if revocationQuorum != nil {
            // One of the quorum endorses the revocation; the quorum's last endorsement makes
            // it apply, and gossip takes it to every honest node.
            let revocation = Revocation(
                partner: hostile, nodeID: nodes[hostile]!.author.nodeID, sinceMillis: sinceMillis)
            event = .endorse(.revocation(revocation), reason: "simulated operator")
        } else {
            event = .quarantine(peer: hostile, sinceMillis: sinceMillis, reason: "simulated operator")
        }
        let report = nodes[name]!.interpreter.handle(event, nowMillis: clock(of: name))
        if nodes[name]!.up {
            try settle(name, report)
        } else {
            nodes[name]!.transport.outbox = []
        }
    }

    /// I4: after a quarantine, every honest node's items equal the items recomputed from its
    /// log without the hostile node's ops since the quarantine's start (an item whose create
    /// is left out is absent), and every honest node holds the quarantine.
    func checkQuarantine() throws {
        guard quarantineApplied, let hostile, let plan = quarantinePlan else { return }
        let hostileID = nodes[hostile]!.author.nodeID
        let quarantine = Quarantine(sinceMillis: plan.sinceMillis, atMillis: 0, reason: "", automatic: false)
        for name in names where name != hostile {
            let node = nodes[name]!
            if !node.engine.isQuarantined(hostile) {
                violations.append("I4: \(name) does not hold the quarantine of \(hostile)")
            }
            if revocationQuorum != nil && !node.engine.containment.isRevoked(hostile) {
                violations.append("I4: \(name) does not hold the revocation of \(hostile)")
            }
            var ids = Set(try node.store.items(ItemQuery(includeWithdrawn: true, limit: 100_000)).map(\.id))
            ids.formUnion(try node.store.items(authoredBy: hostileID, since: .zero))
            for id in ids.sorted() {
                // The least create by stamp defines the item (a forked create is left out);
                // the other ops apply in log order.
                let kept = try node.store.ops(ofItem: id).map(\.op).filter {
                    !($0.body.author == hostileID && quarantine.excludes($0.body.hlc))
                }
                let least = kept.filter {
                    if case .create = $0.body.change { return true } else { return false }
                }.min { $0.stamp < $1.stamp }
                var expected = least.flatMap { try? ItemState(create: $0) }
                for op in kept where op.id != least?.id {
                    if case .create = op.body.change { continue }
                    if var state = expected, (try? state.apply(op)) != nil { expected = state }
                }
                let held = try node.store.item(id)
                if held?.digest != expected?.digest {
                    violations.append(
                        "I4: \(name)'s item \(id.text.prefix(8)) is not its log without \(hostile)'s ops since the quarantine "
                            + "(holds \(held == nil ? "none" : "a state"), expected \(expected == nil ? "none" : "another"))"
                    )
                }
            }
        }
    }
}
