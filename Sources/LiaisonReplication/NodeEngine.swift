public import Crypto
public import Foundation
public import LiaisonCore

/// Everything a node decides about replication, as one pure state machine (DESIGN §3):
/// the sessions of every channel, which channel of a link carries (failover, failback,
/// active-active), catch-up and live push, sealing for partners no channel reaches, relay
/// choice, relay queues, receipts and strikes. Events in, actions out: it reads no store,
/// no clock and no socket, and draws randomness only from its seeded generator.
///
/// One interpreter (`NodeInterpreter` in LiaisonNode) carries the actions out, in the
/// daemon over NIO, pinned TLS and SQLite, and in the simulator over an in-process faulty
/// network and the memory store. Whatever this type decides, the simulator proves.
///
/// Store work comes back as events: a `.loadBatch` action is answered with
/// `.batchLoaded`, a `.commit` with `.committed`. The interpreter feeds those back before
/// anything else happens to the node, so the engine never sees a half-done step.
public struct NodeEngine: Sendable {
    /// What the engine knows of the federation, fixed for the life of the node.
    public struct Configuration: Sendable {
        /// This node.
        public var me: Recipient
        /// Every partner (including this node), by name.
        public var partners: [String: Partner]
        /// The links of this node, one per neighbour.
        public var links: [String: ReplicationNeighbour]
        /// Whether this node carries sealed envelopes between its neighbours.
        public var isRelay: Bool
        /// Heartbeats, deadlines, failover mode, relay timing.
        public var channels: ChannelSettings
        /// Tunables of each channel's session.
        public var session: LinkSessionStateMachine.Configuration
        /// How long a relay keeps an envelope before dropping it.
        public var envelopeLifetimeMillis: UInt64 = 10 * 60_000
        /// Most ops per sealed envelope: as many as a channel's batch (`maxBatchOps`), so that a
        /// relayed catch-up pays for a commit, a receipt and custody entries per 1,024 ops as
        /// a direct one does. The byte budget of an envelope still cuts it shorter
        /// (`ReplicationStore.sealedBatchBytes`).
        public var maxOpsPerEnvelope = 1_024
        /// How often failback, sealing and envelope retries are considered.
        public var maintenanceIntervalMillis: UInt64 = 100
        /// How often waiting ops past the containment policy's expiry are looked for.
        public var expiryCheckIntervalMillis: UInt64 = 10 * 60_000
        /// The node's signing key (envelopes and receipts).
        public var signingKey: Curve25519.Signing.PrivateKey
        /// The node's sealing key (opening envelopes addressed to it).
        public var sealingKey: Curve25519.KeyAgreement.PrivateKey
        /// When strikes quarantine a partner on their own.
        public var containment: ContainmentPolicy = .default
        /// The federation's name: governance statements of another federation are refused.
        public var federation = ""
        /// How many partners must endorse a revocation or a re-admission (nil: a majority,
        /// `RevocationPolicy.defaultQuorum`).
        public var revocation: RevocationPolicy?

        /// Creates a configuration.
        public init(
            me: Recipient,
            partners: [Partner],
            links: [ReplicationNeighbour],
            isRelay: Bool,
            channels: ChannelSettings,
            signingKey: Curve25519.Signing.PrivateKey,
            sealingKey: Curve25519.KeyAgreement.PrivateKey
        ) {
            self.me = me
            self.partners = Dictionary(
                partners.map { ($0.recipient.name, $0) }, uniquingKeysWith: { first, _ in first })
            self.links = Dictionary(links.map { ($0.partner.name, $0) }, uniquingKeysWith: { first, _ in first })
            self.isRelay = isRelay
            self.channels = channels
            self.session = LinkSessionStateMachine.Configuration(channels: channels)
            self.signingKey = signingKey
            self.sealingKey = sealingKey
        }
    }

    /// A partner of the federation as the engine needs it.
    public struct Partner: Sendable {
        /// Name, NodeID, groups.
        public var recipient: Recipient
        /// Whether it carries sealed envelopes.
        public var relay: Bool
        /// The partners it shares a link with (either direction).
        public var neighbours: Set<String>
        /// Its public sealing key.
        public var sealingKey: Curve25519.KeyAgreement.PublicKey

        /// Creates a partner.
        public init(
            recipient: Recipient, relay: Bool, neighbours: Set<String>, sealingKey: Curve25519.KeyAgreement.PublicKey
        ) {
            self.recipient = recipient
            self.relay = relay
            self.neighbours = neighbours
            self.sealingKey = sealingKey
        }
    }

    /// Where a new channel's session starts, read from the store by the interpreter.
    public struct SessionStart: Sendable, Hashable {
        /// How far this node applied the peer's log.
        public var checkpoint: UInt64
        /// The end of this node's log.
        public var highest: UInt64
        /// This node's clock.
        public var hlc: HLCTimestamp

        /// Creates a start.
        public init(checkpoint: UInt64, highest: UInt64, hlc: HLCTimestamp) {
            self.checkpoint = checkpoint
            self.highest = highest
            self.hlc = hlc
        }
    }

    /// A read of our log, filtered for one partner.
    public struct BatchRequest: Sendable, Hashable {
        /// Why the batch is read.
        public enum Purpose: Sendable, Hashable {
            /// For a session on this channel.
            case channel(ChannelID)
            /// To seal for a partner no channel reaches, through this relay.
            case seal(relay: String)
        }

        /// The partner the batch is for.
        public var peer: String
        /// Read after this sequence of our log.
        public var after: UInt64
        /// At most this many ops.
        public var limit: Int
        /// Why.
        public var purpose: Purpose
        /// Whether an entry whose item history passes one batch may be read in parts (the
        /// peer takes them), and where the last part stopped.
        public var parts: Bool
        /// Where the last part of an entry's history stopped (with `parts`).
        public var resume: HistoryCut?

        /// Creates a request.
        public init(
            peer: String, after: UInt64, limit: Int, purpose: Purpose, parts: Bool = false, resume: HistoryCut? = nil
        ) {
            self.peer = peer
            self.after = after
            self.limit = limit
            self.parts = parts
            self.resume = resume
            self.purpose = purpose
        }

        /// The relay, when the batch leaves sealed.
        public var sealedVia: String? {
            if case .seal(let relay) = purpose { return relay }
            return nil
        }
    }

    /// Ops from a partner to verify, admit and commit.
    public struct CommitRequest: Sendable {
        /// How they came.
        public enum Source: Sendable {
            /// A batch on this channel, covering the peer's log up to `through`; or, for a
            /// `part` from 1, that part of the history ahead of the entry `through`, which
            /// covers nothing.
            case channel(ChannelID, through: UInt64, part: UInt32 = 0)
            /// A sealed envelope addressed to this node, handed over by `via`.
            case envelope(SealedEnvelope, via: String)
        }

        /// The partner whose ops they are (the envelope's sender for sealed ops).
        public var peer: String
        /// The encoded ops.
        public var ops: [Data]
        /// How they came.
        public var source: Source

        /// Creates a request.
        public init(peer: String, ops: [Data], source: Source) {
            self.peer = peer
            self.ops = ops
            self.source = source
        }

        /// The peer's log sequence the ops cover (nil for sealed ops: no checkpoint moves).
        public var through: UInt64? {
            if case .channel(_, let through, 0) = source { return through }
            return nil
        }
    }

    /// What the store work of a batch read reports back.
    public struct LoadedBatch: Sendable {
        /// Encoded ops to send.
        public var ops: [Data]
        /// How many ops are sent.
        public var sent: Int
        /// How many ops the filter withheld.
        public var withheld: Int
        /// The ops the filter withheld, by reason (`WithholdReason` raw values).
        public var withheldByReason: [String: Int]
        /// The log sequence the batch covers.
        public var throughSeq: UInt64
        /// Set when the batch is a part of the history ahead of one entry (`HistoryCut`).
        public var cut: HistoryCut?

        /// Creates a report.
        public init(
            ops: [Data], sent: Int, withheld: Int, throughSeq: UInt64, withheldByReason: [String: Int] = [:],
            cut: HistoryCut? = nil
        ) {
            self.ops = ops
            self.sent = sent
            self.withheld = withheld
            self.withheldByReason = withheldByReason
            self.throughSeq = throughSeq
            self.cut = cut
        }
    }

    /// What a commit of a partner's ops reports back.
    public struct CommitOutcome: Sendable, Hashable {
        /// Ops accepted (including duplicates).
        public var accepted: Int
        /// Ops refused (struck against the sender).
        public var refused: Int
        /// The end of our log after the commit.
        public var highest: UInt64
        /// Strikes by culprit (the sender, or an op's author when the op alone proves its
        /// misconduct) and class.
        public var strikes: [NodeID: [StrikeClass: Int]]

        /// Creates an outcome.
        public init(accepted: Int, refused: Int, highest: UInt64, strikes: [NodeID: [StrikeClass: Int]] = [:]) {
            self.accepted = accepted
            self.refused = refused
            self.highest = highest
            self.strikes = strikes
        }
    }

    /// What happens to the node.
    public enum Event: Sendable {
        /// A transport connected a channel to `peer`, reaching the listening side's endpoint
        /// `endpoint`. An older channel on the same endpoint is replaced.
        case channelConnected(ChannelID, peer: String, endpoint: Int, address: String, start: SessionStart)
        /// A decoded frame arrived on a channel at `atMillis`.
        case frame(ChannelID, SyncMessage, bytes: Int, atMillis: UInt64)
        /// A frame that does not decode arrived on a channel.
        case malformedFrame(ChannelID, reason: String, bytes: Int)
        /// The transport lost a channel (`error` nil for an orderly close).
        case channelLost(ChannelID, error: String?)
        /// Time passed: heartbeats, deadlines, failback, sealing, envelope retries. `heard`
        /// holds, per channel, when the transport last read a frame that may still wait to
        /// be handed over: a node busy committing does not take a live channel for dead.
        case tick(heard: [ChannelID: UInt64] = [:])
        /// Our log grew to `highest` (a local write).
        case logGrew(highest: UInt64)
        /// The store work for a `.loadBatch` finished.
        case batchLoaded(BatchRequest, LoadedBatch)
        /// The store work for a `.commit` finished: the ops are durable.
        case committed(CommitRequest, CommitOutcome)
        /// The transport refused a connection before it became a channel (failed handshake,
        /// unknown certificate); `peer` when it is known.
        case connectionRefused(peer: String?, detail: String)
        /// The store work for a request failed: a channel that needed it closes (it resumes
        /// from the store's checkpoints when it reconnects); sealing tries again later.
        case storeFailed(peer: String, purpose: BatchRequest.Purpose, reason: String)
        /// The transport's queue of frames to a channel filled: the peer does not read what
        /// it asks for (pings answered, batches). The channel closes; a `flood` strike.
        case overflowed(ChannelID, queued: Int)
        /// The node is shutting down: close every channel, count no failure.
        case shutdown
        /// The operator quarantines a partner: its ops stamped from `sinceMillis` on are
        /// excluded, its links and its relaying stop.
        case quarantine(peer: String, sinceMillis: UInt64, reason: String)
        /// The operator releases a quarantined partner.
        case release(peer: String)
        /// The operator endorses a revocation or a re-admission (signs it with this node's
        /// key); `reason` is for custody only, not part of what is signed.
        case endorse(GovernanceContent, reason: String)
    }

    /// What the interpreter must do.
    public enum Action: Sendable {
        /// Encode and write a message on a channel.
        case send(ChannelID, SyncMessage)
        /// Close a channel (after writing what was queued on it).
        case close(ChannelID, reason: String)
        /// Read and filter a batch of our log; answer with `.batchLoaded`.
        case loadBatch(BatchRequest)
        /// Verify, admit and commit a partner's ops; answer with `.committed`.
        case commit(CommitRequest)
        /// The peer acknowledged our log through this sequence: advance the link's checkpoint.
        case advanceCheckpoint(peer: String, through: UInt64)
        /// Take in a clock reading seen elsewhere (a peer's hello).
        case observeClock(HLCTimestamp)
        /// Append to the custody log.
        case custody(CustodyEvent)
        /// A partner misbehaved: audit it (the engine counted it against the partner).
        case strike(peer: String, strikeClass: StrikeClass, detail: String)
        /// A partner is quarantined (by the operator or by its strikes): persist it, leave
        /// its ops since the quarantine's start out of every item, audit it.
        case quarantined(peer: String, Quarantine)
        /// A partner's quarantine ended: persist it, put its ops back, audit it.
        case released(peer: String)
        /// A revoked partner came back with new keys, endorsed by a quorum: persist the
        /// state, trust `identity` for its channels and future ops (pins, op authors), keep
        /// `revoked` excluded, audit it.
        case readmitted(peer: String, identity: PartnerIdentity, revoked: NodeID)
        /// Drop the ops waiting (for a create, or for markings) stamped before this time, with
        /// an `ops.expired` custody entry listing them.
        case expireWaiting(stampedBeforeMillis: UInt64)
        /// Tell the operator (structured log).
        case log(LogRecord)
    }

    /// One log line for the operator.
    public struct LogRecord: Sendable, Hashable {
        /// How loud.
        public enum Level: Sendable, Hashable { case debug, info, warning, error }

        /// How loud.
        public var level: Level
        /// What happened.
        public var message: String
        /// Namespaced metadata (`liaison.partner`, …).
        public var metadata: [String: String]
    }

    /// One channel and its session.
    public struct Channel: Sendable {
        /// The partner at the other end.
        public var peer: String
        /// The listening side's endpoint it reaches.
        public var endpoint: Int
        /// The remote address, for the operator.
        public var address: String
        /// The session.
        public var session: LinkSessionStateMachine
        /// Whether the hello was exchanged.
        public var open = false
        /// When anything last arrived on it.
        public var lastContactMillis: UInt64?
    }

    /// An envelope this node opened.
    public struct OpenedEnvelope: Sendable, Hashable {
        /// Until when it is remembered (its expiry, at most one envelope lifetime ahead).
        public var untilMillis: UInt64
        /// The signed receipt sent for it, once its ops were committed.
        public var receipt: Data?
    }

    /// Refused connections counted per source (a partner's name, or every outsider as one).
    struct RefusalWindow: Sendable {
        var endsMillis: UInt64
        var suppressed: Int
        var lastDetail: String
    }

    /// The source under which connections from no known partner are counted.
    static let outsiders = "(outsiders)"
    /// How long refused connections from one source are counted before they are audited.
    public static let refusalWindowMillis: UInt64 = 60_000

    /// Most envelopes remembered as opened; past it, those expiring first are forgotten.
    public static let maxOpenedEnvelopes = 65_536

    /// Counters of one link, for link health.
    public struct LinkCounters: Sendable {
        /// When anything last arrived from the peer.
        public var lastContactMillis: UInt64?
        /// Our log acknowledged by the peer.
        public var ackedThrough: UInt64 = 0
        /// When the last ack came.
        public var lastAckMillis: UInt64?
        /// Ops sent (on channels or sealed).
        public var opsSent: UInt64 = 0
        /// Ops received and accepted.
        public var opsReceived: UInt64 = 0
        /// Bytes written.
        public var bytesSent: UInt64 = 0
        /// Bytes read.
        public var bytesReceived: UInt64 = 0
        /// Ops the filter withheld.
        public var opsWithheld: UInt64 = 0
        /// Ops the filter withheld, by reason (`WithholdReason` raw values).
        public var withheldByReason: [String: UInt64] = [:]
        /// Refused ops and strikes.
        public var rejects: UInt64 = 0
        /// The last reason a channel ended or was refused.
        public var lastError: String?
        /// Channel failures per endpoint.
        public var failures: [Int: Int] = [:]
        /// The last error per endpoint.
        public var endpointErrors: [Int: String] = [:]
        /// Envelopes from this partner opened here.
        public var envelopesOpened: UInt64 = 0
        /// The relay our ops for this partner last went through.
        public var relayVia: String?

        /// Zero counters.
        public init() {}

        /// Adds a batch's withheld ops, by reason.
        mutating func countWithheld(_ byReason: [String: Int]) {
            for (reason, count) in byReason { withheldByReason[reason, default: 0] += UInt64(count) }
        }
    }

    /// The configuration: as rendered, with the identities of partners readmitted with new
    /// keys (`NodeEngine+Governance`).
    public internal(set) var configuration: Configuration
    /// Open and opening channels.
    public internal(set) var channels: [ChannelID: Channel] = [:]
    /// Channel choice per link.
    public internal(set) var selectors: [String: ChannelSelector] = [:]
    /// Since when a link has had no open channel.
    public internal(set) var downSince: [String: UInt64] = [:]
    /// Envelopes this node sealed and awaits receipts for.
    public internal(set) var sealed = SealedOutbox()
    /// Envelopes and receipts this node carries for others.
    public internal(set) var relayQueue = RelayQueue()
    /// Per-link counters.
    public internal(set) var counters: [String: LinkCounters] = [:]
    /// Envelopes addressed here that were opened, by sender and id (`openedKey`), kept until
    /// they expire: a replay
    /// is not committed again, and gets the receipt again (the first may have been lost).
    public internal(set) var openedEnvelopes: [Data: OpenedEnvelope] = [:]
    /// The end of our log as far as the engine was told.
    public internal(set) var localHighest: UInt64
    /// Decodes and opens envelopes, handing out those a channel's reader opened ahead
    /// (`EnvelopeOpener`): the same results, computed off the engine's thread.
    public let envelopes: EnvelopeOpener
    /// Strikes and quarantines (persisted by the interpreter; survives restart).
    public internal(set) var containment: ContainmentState
    /// Destinations with a batch read for sealing under way.
    var sealingLoads: Set<String> = []
    var refusalWindows: [String: RefusalWindow] = [:]
    private var nextMaintenanceMillis: UInt64 = 0
    private var nextExpiryCheckMillis: UInt64 = 0
    var random: SeededRandom
    var output: [Action] = []

    /// Creates the engine. `acked` is, per neighbour, how far it acknowledged our log (the
    /// store's checkpoints); `highest` is the end of our log.
    public init(
        configuration: Configuration,
        acked: [String: UInt64],
        highest: UInt64,
        nowMillis: UInt64,
        random: SeededRandom,
        containment: ContainmentState = ContainmentState(),
        envelopes: EnvelopeOpener = EnvelopeOpener()
    ) {
        var configuration = configuration
        for (name, identity) in containment.identities.sorted(by: { $0.key < $1.key }) {
            configuration.adopt(name, identity)
        }
        self.configuration = configuration
        self.localHighest = highest
        self.random = random
        self.containment = containment
        self.envelopes = envelopes
        sealed.maxOpsPerEnvelope = configuration.maxOpsPerEnvelope
        for name in configuration.links.keys {
            var counter = LinkCounters()
            counter.ackedThrough = acked[name] ?? 0
            counters[name] = counter
            selectors[name] = ChannelSelector(settings: configuration.channels)
            downSince[name] = nowMillis
        }
    }

    /// A partner by NodeID.
    public func partner(id: NodeID) -> Partner? {
        configuration.partners.values.first { $0.recipient.nodeID == id }
    }

    /// Handles one event and returns what to do, in order.
    public mutating func handle(_ event: Event, nowMillis now: UInt64) -> [Action] {
        output = []
        switch event {
        case .channelConnected(let id, let peer, let endpoint, let address, let start):
            connected(id, peer: peer, endpoint: endpoint, address: address, start: start, now: now)
        case .frame(let id, let message, let bytes, let at):
            guard var channel = channels[id] else { break }
            counters[channel.peer]?.bytesReceived += UInt64(bytes)
            counters[channel.peer]?.lastContactMillis = at
            channel.lastContactMillis = at
            let actions = channel.session.received(message, nowMillis: at)
            channels[id] = channel
            perform(actions, on: id, now: now)
        case .malformedFrame(let id, let reason, let bytes):
            guard var channel = channels[id] else { break }
            counters[channel.peer]?.bytesReceived += UInt64(bytes)
            let actions = channel.session.fail(.protocolViolation("malformed frame: \(reason)"))
            channels[id] = channel
            perform(actions, on: id, now: now)
        case .channelLost(let id, let error):
            guard channels[id] != nil else { break }
            // A network error (a reset, a broken pipe) is a fault, not a refusal: logged and
            // counted against the endpoint, not audited. The transport reports what the
            // other end sent (a bad TLS record, an oversized frame) as a refusal itself.
            let reason = error.map { "channel error: \($0)" } ?? "closed by the peer"
            remove(id, reason: reason, failed: true, now: now)
        case .tick(let heard):
            for id in channels.keys.sorted() {
                guard var channel = channels[id] else { continue }
                if let at = heard[id] { channel.session.heard(atMillis: at) }
                let actions = channel.session.tick(nowMillis: now)
                channels[id] = channel
                perform(actions, on: id, now: now)
            }
            if now >= nextMaintenanceMillis {
                nextMaintenanceMillis = now + configuration.maintenanceIntervalMillis
                for peer in selectors.keys.sorted() { reselect(peer, now: now) }
                relaySealed(now: now)
                forgetExpiredEnvelopes(now: now)
                closeRefusalWindows(now: now)
            }
            if now >= nextExpiryCheckMillis {
                nextExpiryCheckMillis = now + configuration.expiryCheckIntervalMillis
                let expiry = configuration.containment.pendingExpiryMillis
                if now > expiry { output.append(.expireWaiting(stampedBeforeMillis: now - expiry)) }
            }
        case .logGrew(let highest):
            logGrew(highest, now: now)
        case .batchLoaded(let request, let batch):
            switch request.purpose {
            case .channel(let id):
                counters[request.peer]?.opsSent += UInt64(batch.sent)
                counters[request.peer]?.opsWithheld += UInt64(batch.withheld)
                counters[request.peer]?.countWithheld(batch.withheldByReason)
                guard var channel = channels[id] else { break }
                let actions =
                    if let cut = batch.cut {
                        channel.session.batchPartReady(ops: batch.ops, cut: cut)
                    } else {
                        channel.session.batchReady(ops: batch.ops, throughSeq: batch.throughSeq)
                    }
                channels[id] = channel
                perform(actions, on: id, now: now)
            case .seal(let relay):
                sealLoaded(request, batch, relay: relay, now: now)
            }
        case .committed(let request, let outcome):
            committed(request, outcome, now: now)
        case .connectionRefused(let peer, let detail):
            connectionRefused(peer, detail, now: now)
        case .storeFailed(let peer, let purpose, let reason):
            log(.error, "store work failed", peer: peer, ["liaison.error": reason])
            switch purpose {
            case .channel(let id):
                guard channels[id] != nil else { break }
                output.append(.close(id, reason: "store: \(reason)"))
                remove(id, reason: "store: \(reason)", failed: false, now: now)
            case .seal:
                sealingLoads.remove(peer)
            }
        case .overflowed(let id, let queued):
            guard let channel = channels[id] else { break }
            let detail = "stopped reading its channel: \(queued) frames queued"
            refused(channel.peer, detail, strikeClass: .flood, now: now)
            output.append(.close(id, reason: detail))
            remove(id, reason: detail, failed: true, now: now)
        case .quarantine(let peer, let since, let reason):
            quarantine(
                peer, Quarantine(sinceMillis: since, atMillis: now, reason: reason, automatic: false), now: now)
        case .release(let peer):
            release(peer, now: now)
        case .endorse(let content, let reason):
            endorse(content, reason: reason, now: now)
        case .shutdown:
            for id in channels.keys.sorted() {
                output.append(.close(id, reason: SessionCloseReason.localShutdown.description))
                remove(
                    id, reason: SessionCloseReason.localShutdown.description, failed: false, expected: true, now: now)
            }
        }
        return output
    }

    /// Counts bytes the interpreter wrote on a channel.
    public mutating func wrote(bytes: Int, on id: ChannelID) {
        guard let peer = channels[id]?.peer else { return }
        counters[peer]?.bytesSent += UInt64(bytes)
    }

    /// The next wait before dialling an endpoint again: full jitter up to `capMillis`.
    public mutating func reconnectDelay(capMillis: UInt64) -> UInt64 {
        UInt64.random(in: 0...max(capMillis, 1), using: &random)
    }

    // MARK: - Channels

    private mutating func connected(
        _ id: ChannelID, peer: String, endpoint: Int, address: String, start: SessionStart, now: UInt64
    ) {
        guard let partner = configuration.partners[peer], configuration.links[peer] != nil else {
            output.append(.close(id, reason: "no link with \(peer)"))
            return
        }
        guard !containment.isQuarantined(peer) else {
            output.append(.close(id, reason: "\(peer) is quarantined"))
            connectionRefused(peer, "\(peer) is quarantined; its channel was closed", now: now)
            return
        }
        for other in channels.keys.sorted() where channels[other]?.peer == peer && channels[other]?.endpoint == endpoint
        {
            output.append(.close(other, reason: "replaced by a newer channel"))
            remove(other, reason: "replaced by a newer channel", failed: false, expected: true, now: now)
        }
        localHighest = max(localHighest, start.highest)
        var session = LinkSessionStateMachine(
            local: configuration.me.nodeID,
            peer: partner.recipient.nodeID,
            checkpoint: start.checkpoint,
            localHighest: localHighest,
            nowMillis: now,
            carrying: false,
            configuration: configuration.session
        )
        let actions = session.start(hlc: start.hlc)
        channels[id] = Channel(peer: peer, endpoint: endpoint, address: address, session: session)
        perform(actions, on: id, now: now)
    }

    /// Carries out what a channel's session asked for.
    mutating func perform(_ actions: [LinkSessionStateMachine.Action], on id: ChannelID, now: UInt64) {
        for action in actions {
            guard let channel = channels[id] else { return }
            let peer = channel.peer
            switch action {
            case .send(let message):
                output.append(.send(id, message))
            case .loadBatch(let after, let limit, let parts, let resume):
                output.append(
                    .loadBatch(
                        BatchRequest(
                            peer: peer, after: after, limit: limit, purpose: .channel(id), parts: parts, resume: resume)
                    ))
            case .commit(let ops, let through, let part):
                output.append(
                    .commit(CommitRequest(peer: peer, ops: ops, source: .channel(id, through: through, part: part))))
            case .acknowledged(let through):
                let acked = max(counters[peer]?.ackedThrough ?? 0, through)
                counters[peer]?.ackedThrough = acked
                counters[peer]?.lastAckMillis = now
                output.append(.advanceCheckpoint(peer: peer, through: through))
            case .opened(let peerHLC):
                output.append(.observeClock(peerHLC))
                opened(id, now: now)
            case .close(let reason):
                switch reason {
                case .protocolViolation: refused(peer, reason.description, strikeClass: .protocolViolation, now: now)
                case .flood: refused(peer, reason.description, strikeClass: .flood, now: now)
                case .withholding: refused(peer, reason.description, strikeClass: .withholding, now: now)
                default: break
                }
                // A pinned peer that connects and never says hello is refused and audited too.
                if case .heartbeatTimeout = reason, !channel.open {
                    refused(peer, "no hello within \(configuration.session.helloTimeoutMillis) ms", now: now)
                }
                output.append(.close(id, reason: reason.description))
                remove(id, reason: reason.description, failed: true, now: now)
                return
            case .sealedTraffic(let message):
                sealedTraffic(message, from: peer, now: now)
            case .governance(let statements):
                receivedGovernance(statements, from: peer, on: id, now: now)
            }
        }
    }

    /// A channel finished its hello: it joins the link's selection.
    private mutating func opened(_ id: ChannelID, now: UInt64) {
        guard let channel = channels[id] else { return }
        let peer = channel.peer
        channels[id]?.open = true
        selectors[peer]?.opened(id.raw, endpoint: channel.endpoint, nowMillis: now)
        if downSince.removeValue(forKey: peer) != nil, sealed.awaiting(peer) > 0 || sealed.cursors[peer] != nil {
            log(.info, "link back; sealed relaying stops", peer: peer)
        }
        sealed.linkRestored(peer)
        counters[peer]?.relayVia = nil
        reselect(peer, now: now, except: id)
        flushRelayQueue(for: peer, now: now)
        let carrying = selectors[peer]?.carriers.contains(id.raw) ?? false
        log(
            .info,
            "channel up",
            peer: peer,
            [
                "liaison.channel": channel.address, "liaison.endpoint": "\(channel.endpoint)",
                "liaison.carrying": "\(carrying)",
            ]
        )
        setCarrying(id, carrying, now: now)
        gossipOnOpen(id, now: now)
    }

    private mutating func setCarrying(_ id: ChannelID, _ on: Bool, now: UInt64) {
        guard var channel = channels[id] else { return }
        let acked = counters[channel.peer]?.ackedThrough ?? 0
        let actions = channel.session.setCarrying(on, resumeAfter: acked)
        channels[id] = channel
        perform(actions, on: id, now: now)
    }

    /// Re-chooses a link's carriers and tells the channels that start or stop carrying.
    private mutating func reselect(_ peer: String, now: UInt64, except skipped: ChannelID? = nil) {
        guard var selector = selectors[peer] else { return }
        let before = selector.carriers
        let (start, stop) = selector.select(nowMillis: now)
        selectors[peer] = selector
        for raw in stop where raw != skipped?.raw { setCarrying(ChannelID(raw), false, now: now) }
        for raw in start where raw != skipped?.raw { setCarrying(ChannelID(raw), true, now: now) }
        if !start.isEmpty, !before.isEmpty || !stop.isEmpty {
            let endpoints = start.compactMap { selector.endpoint(of: $0) }.sorted()
            log(.info, "link moved to another channel", peer: peer, ["liaison.endpoints": "\(endpoints)"])
        }
    }

    /// A channel ended: it leaves the link's selection at once. An `expected` end (a shutdown,
    /// a reconnect replacing the channel) does not mark the link down.
    mutating func remove(_ id: ChannelID, reason: String, failed: Bool, expected: Bool = false, now: UInt64) {
        guard let channel = channels.removeValue(forKey: id) else { return }
        let peer = channel.peer
        counters[peer]?.lastError = reason
        counters[peer]?.endpointErrors[channel.endpoint] = reason
        let counted = failed && channel.open
        if counted { counters[peer]?.failures[channel.endpoint, default: 0] += 1 }
        selectors[peer]?.closed(id.raw, failed: counted, nowMillis: now)
        reselect(peer, now: now)
        if !expected && selectors[peer]?.hasOpenChannel == false && downSince[peer] == nil {
            downSince[peer] = now
            log(.warning, "link lost every channel", peer: peer)
        }
        log(.info, "channel down", peer: peer, ["liaison.endpoint": "\(channel.endpoint)", "liaison.reason": reason])
    }

    private mutating func logGrew(_ highest: UInt64, now: UInt64) {
        guard highest > localHighest else { return }
        localHighest = highest
        for id in channels.keys.sorted() {
            guard var channel = channels[id] else { continue }
            let actions = channel.session.logGrew(to: highest)
            channels[id] = channel
            perform(actions, on: id, now: now)
        }
    }

    private mutating func committed(_ request: CommitRequest, _ outcome: CommitOutcome, now: UInt64) {
        let peer = request.peer
        for (culprit, classes) in outcome.strikes.sorted(by: { $0.key < $1.key }) {
            guard let name = partner(id: culprit)?.recipient.name else { continue }
            for (strikeClass, number) in classes.sorted(by: { $0.key < $1.key }) {
                countStrikes(name, strikeClass, number, now: now)
            }
        }
        counters[peer]?.rejects += UInt64(outcome.refused)
        counters[peer]?.opsReceived += UInt64(outcome.accepted)
        if outcome.refused > 0 {
            log(.warning, "refused ops", peer: peer, ["liaison.count": "\(outcome.refused)"])
        }
        switch request.source {
        case .channel(let id, let through, let part):
            if var channel = channels[id] {
                let actions = channel.session.committed(throughSeq: through, part: part)
                channels[id] = channel
                perform(actions, on: id, now: now)
            }
        case .envelope(let envelope, let via):
            counters[peer]?.envelopesOpened += 1
            receiptEnvelope(envelope, from: peer, via: via, outcome: outcome, now: now)
        }
        logGrew(outcome.highest, now: now)
    }

    // MARK: - Refusals

    /// A channel-level refusal (unpinned certificate, malformed frames, violations): audited,
    /// not counted as a refused op.
    private mutating func refused(
        _ peer: String?, _ detail: String, strikeClass: StrikeClass? = nil, now: UInt64
    ) {
        if let peer { counters[peer]?.lastError = detail }
        if let peer, let strikeClass { countStrikes(peer, strikeClass, 1, now: now) }
        output.append(.custody(CustodyEvent(kind: .peerRefused, peer: peer, detail: detail)))
        log(.warning, "refused peer", peer: peer ?? "unknown", ["liaison.reason": detail])
    }

    /// A connection refused before it became a channel. The first from a source in a window
    /// is audited at once; the rest are counted and audited as one entry when the window
    /// closes, so a connect loop cannot grow the custody log (or the log) without bound.
    private mutating func connectionRefused(_ peer: String?, _ detail: String, now: UInt64) {
        let source = peer ?? Self.outsiders
        if var window = refusalWindows[source], now < window.endsMillis {
            window.suppressed += 1
            window.lastDetail = detail
            refusalWindows[source] = window
            return
        }
        flushRefusals(source)
        refusalWindows[source] = RefusalWindow(
            endsMillis: now + Self.refusalWindowMillis, suppressed: 0, lastDetail: detail)
        refused(peer, detail, now: now)
    }

    /// Audits what a closed refusal window counted.
    mutating func flushRefusals(_ source: String) {
        guard let window = refusalWindows.removeValue(forKey: source), window.suppressed > 0 else { return }
        let peer = source == Self.outsiders ? nil : source
        let detail =
            "\(window.suppressed) more refused connections in \(Self.refusalWindowMillis / 1000) s; last: \(window.lastDetail)"
        output.append(.custody(CustodyEvent(kind: .peerRefused, peer: peer, detail: detail)))
        log(.warning, "refused connections", peer: source, ["liaison.count": "\(window.suppressed)"])
    }

    /// Closes the refusal windows that ended.
    mutating func closeRefusalWindows(now: UInt64) {
        for source in refusalWindows.keys.sorted() where refusalWindows[source]!.endsMillis <= now {
            flushRefusals(source)
        }
    }

    /// A partner sent something it must not: audited and counted against it.
    mutating func strike(_ peer: String, _ strikeClass: StrikeClass, _ detail: String, now: UInt64) {
        counters[peer]?.rejects += 1
        counters[peer]?.lastError = detail
        output.append(.strike(peer: peer, strikeClass: strikeClass, detail: detail))
        countStrikes(peer, strikeClass, 1, now: now)
    }

    mutating func log(_ level: LogRecord.Level, _ message: String, peer: String, _ metadata: [String: String] = [:]) {
        var metadata = metadata
        metadata["liaison.partner"] = peer
        output.append(.log(LogRecord(level: level, message: message, metadata: metadata)))
    }

    // MARK: - Writing on a channel

    /// Writes an out-of-band message on a channel to `peer`, a carrying one if possible.
    /// Returns false when no channel to it is open.
    @discardableResult
    mutating func sendOutOfBand(_ message: SyncMessage, to peer: String, now: UInt64) -> Bool {
        let carriers = selectors[peer]?.carriers ?? []
        let open = channels.filter { $0.value.peer == peer && $0.value.open }.keys.sorted()
        guard let id = open.first(where: { carriers.contains($0.raw) }) ?? open.first, let channel = channels[id] else {
            return false
        }
        perform(channel.session.outOfBand(message), on: id, now: now)
        return true
    }
}

extension NodeEngine {
    /// Whether a channel is open.
    public func isOpen(_ id: ChannelID) -> Bool { channels[id]?.open ?? false }
}
