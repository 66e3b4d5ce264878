public import Foundation
public import LiaisonCore

/// Why a session ended.
public enum SessionCloseReason: Hashable, Sendable, CustomStringConvertible {
    /// No frame arrived within the heartbeat deadline.
    case heartbeatTimeout
    /// The peer broke the protocol (wrong order, wrong identity, no common version, …).
    case protocolViolation(String)
    /// The peer said goodbye.
    case peerClosed(String)
    /// This node is shutting the channel.
    case localShutdown

    public var description: String {
        switch self {
        case .heartbeatTimeout: "no heartbeat"
        case .protocolViolation(let what): "protocol violation: \(what)"
        case .peerClosed(let why): "peer closed: \(why)"
        case .localShutdown: "shut down"
        }
    }
}

/// The replication logic of one channel between this node and one peer, as a pure state
/// machine (DESIGN §3, §5): events in, actions out. Both directions of the pair run on the
/// channel: this node sends its log to the peer, and receives the peer's.
///
/// Sending: after the peer's hello says where it stands (its checkpoint of our log), the
/// machine asks the shell for bounded batches of our log (`loadBatch`), sends them, and
/// keeps at most `window` batches unacknowledged; it advances only on acks. New local
/// commits wake it up (live push).
///
/// Receiving: each batch is handed to the shell to verify and commit (`commit`); once the
/// shell reports it durable (`committed`), the machine acknowledges it. Sequence numbers
/// must rise; anything else is a protocol violation.
///
/// Liveness: a ping every `heartbeatIntervalMillis`; a channel silent for
/// `deadAfterMillis` is dead (before the peer's hello: `helloTimeoutMillis`). Time is
/// whatever the caller passes in.
public struct LinkSessionStateMachine: Sendable {
    /// Tunables.
    public struct Configuration: Sendable, Hashable {
        /// Most ops per batch.
        public var maxBatchOps: Int = 512
        /// Most unacknowledged batches.
        public var window: Int = 4
        /// Interval between pings.
        public var heartbeatIntervalMillis: UInt64 = 500
        /// Silence after which the channel is dead.
        public var deadAfterMillis: UInt64 = 2_000
        /// How long the peer has to say hello on a new channel (TLS set-up and a busy peer
        /// can take longer than a heartbeat deadline).
        public var helloTimeoutMillis: UInt64 = 5_000
        /// The longest silence allowed while our batches wait for the peer's ack, as a
        /// multiple of `deadAfterMillis`. A receiver that commits a window of ops writes
        /// nothing until the first commit ends, and on a loaded machine that can take longer
        /// than the idle deadline; the allowance follows the ack times measured on the
        /// channel (twice the decaying worst), between `deadAfterMillis` and this cap.
        public var maxBusyStretch: UInt64 = 10

        /// The defaults.
        public init() {}

        /// Heartbeats as a federation's channel settings set them.
        public init(channels: ChannelSettings) {
            heartbeatIntervalMillis = channels.heartbeatMillis
            deadAfterMillis = channels.deadAfterMillis
        }
    }

    /// What the shell must do.
    public enum Action: Hashable, Sendable {
        /// Write a message on the channel.
        case send(SyncMessage)
        /// Read our log after `after` (at most `limit` ops), filter it for this peer, and
        /// report with `batchReady`.
        case loadBatch(after: UInt64, limit: Int)
        /// Verify and commit ops the peer sent, then report with `committed`.
        case commit(ops: [Data], throughSeq: UInt64)
        /// The peer has acknowledged our log up to this sequence.
        case acknowledged(throughSeq: UInt64)
        /// The session is open: hello exchanged.
        case opened(peerHLC: HLCTimestamp)
        /// Close the channel.
        case close(SessionCloseReason)
        /// A sealed envelope or a receipt arrived: hand it to the relay logic.
        case sealedTraffic(SyncMessage)
        /// Governance statements arrived (encoded `GovernanceStatements`): hand them to the
        /// revocation logic.
        case governance(Data)
    }

    /// Where the session is.
    public enum Phase: Hashable, Sendable {
        /// Our hello is out; waiting for the peer's.
        case awaitingHello
        /// Replicating.
        case open
        /// Finished.
        case closed(SessionCloseReason)
    }

    /// This node.
    public let local: NodeID
    /// The peer this channel must lead to.
    public let peer: NodeID
    /// Tunables.
    public let configuration: Configuration
    /// Where the session is.
    public private(set) var phase: Phase = .awaitingHello

    /// Highest sequence of our log handed to the peer (sent or skipped by the filter).
    public private(set) var sentThrough: UInt64 = 0
    /// Highest sequence of our log the peer acknowledged.
    public private(set) var ackedThrough: UInt64 = 0
    /// Highest sequence of our log that exists.
    public private(set) var localHighest: UInt64
    /// `throughSeq` of batches sent and not yet acknowledged, oldest first.
    public private(set) var inFlight: [UInt64] = []
    /// When each batch of `inFlight` was handed over (the latest time the session knew).
    private var inFlightSentAt: [UInt64] = []
    /// Decaying worst time from handing a batch over to its ack; starts at the idle deadline.
    public private(set) var ackLatencyMillis: UInt64
    /// The latest time passed in.
    private var latestMillis: UInt64
    private var loading = false
    /// Whether this channel carries our log to the peer. A standby channel (another channel
    /// of the same link carries) says hello, answers and sends heartbeats, and receives, but
    /// sends no batches until the shell makes it carry.
    public private(set) var carrying: Bool

    /// Highest sequence of the peer's log handed to the shell to commit.
    public private(set) var receivedThrough: UInt64
    /// Highest sequence of the peer's log committed here.
    public private(set) var committedThrough: UInt64

    /// When anything last arrived from the peer.
    public private(set) var lastHeardMillis: UInt64
    private var lastPingMillis: UInt64 = 0
    private var pendingPing: (nonce: UInt64, sentAt: UInt64)?
    private var nextNonce: UInt64 = 1
    /// The last measured round-trip time.
    public private(set) var rttMillis: UInt64?

    /// Creates the session of a new channel. `checkpoint` is how far we have applied the
    /// peer's log; `localHighest` is the end of our own log.
    public init(
        local: NodeID,
        peer: NodeID,
        checkpoint: UInt64,
        localHighest: UInt64,
        nowMillis: UInt64,
        carrying: Bool = true,
        configuration: Configuration = Configuration()
    ) {
        self.carrying = carrying
        self.local = local
        self.peer = peer
        self.configuration = configuration
        self.receivedThrough = checkpoint
        self.committedThrough = checkpoint
        self.localHighest = localHighest
        self.lastHeardMillis = nowMillis
        self.lastPingMillis = nowMillis
        self.latestMillis = nowMillis
        self.ackLatencyMillis = configuration.deadAfterMillis
    }

    /// How long the peer may stay silent now: the idle deadline, or while our batches wait
    /// for an ack, twice the measured ack time (capped).
    public var silenceAllowedMillis: UInt64 {
        let idle = configuration.deadAfterMillis
        guard !inFlight.isEmpty else { return idle }
        let cap = idle.multipliedReportingOverflow(by: max(configuration.maxBusyStretch, 1))
        let busy = min(ackLatencyMillis.multipliedReportingOverflow(by: 2).partialValue, cap.partialValue)
        return max(idle, busy)
    }

    /// The first actions on a new channel: say hello.
    public mutating func start(hlc: HLCTimestamp) -> [Action] {
        [.send(.hello(SyncHello(nodeID: local, hlc: hlc, checkpoint: committedThrough)))]
    }

    /// Ops of our log the peer has not acknowledged.
    public var lag: UInt64 { localHighest > ackedThrough ? localHighest - ackedThrough : 0 }

    /// A message arrived from the peer.
    public mutating func received(_ message: SyncMessage, nowMillis: UInt64) -> [Action] {
        guard !isClosed else { return [] }
        lastHeardMillis = max(lastHeardMillis, nowMillis)
        latestMillis = max(latestMillis, nowMillis)
        switch (phase, message) {
        case (.awaitingHello, .hello(let hello)):
            guard hello.nodeID == peer else {
                return close(.protocolViolation("hello from \(hello.nodeID.short), expected \(peer.short)"))
            }
            guard hello.versions.contains(where: SyncProtocol.versions.contains) else {
                return close(.protocolViolation("no common protocol version in \(hello.versions)"))
            }
            guard hello.checkpoint <= localHighest else {
                return close(
                    .protocolViolation("peer claims our log up to \(hello.checkpoint), it ends at \(localHighest)"))
            }
            phase = .open
            sentThrough = hello.checkpoint
            ackedThrough = hello.checkpoint
            return [.opened(peerHLC: hello.hlc), .acknowledged(throughSeq: hello.checkpoint)] + pump()
        case (.awaitingHello, _):
            return close(.protocolViolation("a message before hello"))
        case (.open, .hello):
            return close(.protocolViolation("a second hello"))
        case (.open, .batch(let ops, let through)):
            guard through > receivedThrough else {
                return close(.protocolViolation("batch through \(through) after \(receivedThrough)"))
            }
            guard ops.count <= configuration.maxBatchOps * 4 else {
                return close(.protocolViolation("batch of \(ops.count) ops"))
            }
            receivedThrough = through
            return [.commit(ops: ops, throughSeq: through)]
        case (.open, .ack(let through)):
            guard let first = inFlight.first, through >= first, through <= sentThrough else {
                return close(.protocolViolation("ack through \(through) matches no batch in flight"))
            }
            // The oldest batch acknowledged waited longest: its wait is the sample.
            let waited = latestMillis - min(inFlightSentAt.first ?? latestMillis, latestMillis)
            ackLatencyMillis = max(waited, ackLatencyMillis - ackLatencyMillis / 8)
            let acknowledged = inFlight.prefix { $0 <= through }.count
            inFlight.removeFirst(acknowledged)
            inFlightSentAt.removeFirst(acknowledged)
            ackedThrough = max(ackedThrough, through)
            return [.acknowledged(throughSeq: through)] + pump()
        case (.open, .ping(let nonce)):
            return [.send(.pong(nonce: nonce))]
        case (.open, .pong(let nonce)):
            if let pending = pendingPing, pending.nonce == nonce {
                rttMillis = nowMillis >= pending.sentAt ? nowMillis - pending.sentAt : 0
                pendingPing = nil
            }
            return []
        case (.open, .envelope), (.open, .receipt):
            return [.sealedTraffic(message)]
        case (.open, .governance(let statements)):
            return [.governance(statements)]
        case (_, .goodbye(let reason)):
            phase = .closed(.peerClosed(reason))
            return [.close(.peerClosed(reason))]
        case (.closed, _):
            return []
        }
    }

    /// The shell loaded and filtered a batch of our log after `sentThrough`: `ops` to send
    /// (possibly none, when the filter withheld them all), covering the log up to `throughSeq`.
    public mutating func batchReady(ops: [Data], throughSeq: UInt64) -> [Action] {
        loading = false
        guard case .open = phase else { return [] }
        guard throughSeq > sentThrough else { return pump() }
        sentThrough = throughSeq
        inFlight.append(throughSeq)
        inFlightSentAt.append(latestMillis)
        return [.send(.batch(ops: ops, throughSeq: throughSeq))] + pump()
    }

    /// The shell chose whether this channel carries our log. A channel that starts carrying
    /// resumes after `resumeAfter` (what the peer acknowledged on any channel of the link)
    /// or after what it already handed over itself, whichever is further.
    public mutating func setCarrying(_ on: Bool, resumeAfter: UInt64) -> [Action] {
        carrying = on
        guard on, case .open = phase else { return [] }
        let resume = min(max(sentThrough, resumeAfter), localHighest)
        sentThrough = resume
        ackedThrough = max(ackedThrough, min(resumeAfter, localHighest))
        return pump()
    }

    /// A message that is not part of the log exchange (a sealed envelope or a receipt) to
    /// write on this channel, if it is open.
    public func outOfBand(_ message: SyncMessage) -> [Action] {
        guard case .open = phase else { return [] }
        return [.send(message)]
    }

    /// The shell committed the peer's ops up to `throughSeq`.
    public mutating func committed(throughSeq: UInt64) -> [Action] {
        guard !isClosed, throughSeq > committedThrough else { return [] }
        committedThrough = throughSeq
        return [.send(.ack(throughSeq: throughSeq))]
    }

    /// Our log grew to `highest` (a local put, or ops received from any peer).
    public mutating func logGrew(to highest: UInt64) -> [Action] {
        localHighest = max(localHighest, highest)
        return pump()
    }

    /// Frames arrived at `atMillis` that the shell has not handed over yet (it was busy): the
    /// channel is alive, whatever they hold.
    public mutating func heard(atMillis: UInt64) {
        guard !isClosed else { return }
        lastHeardMillis = max(lastHeardMillis, atMillis)
    }

    /// Time passed: send a heartbeat when due, or declare the channel dead.
    public mutating func tick(nowMillis: UInt64) -> [Action] {
        guard !isClosed else { return [] }
        latestMillis = max(latestMillis, nowMillis)
        let deadline: UInt64
        if case .awaitingHello = phase {
            deadline = max(configuration.deadAfterMillis, configuration.helloTimeoutMillis)
        } else {
            deadline = silenceAllowedMillis
        }
        if nowMillis > lastHeardMillis && nowMillis - lastHeardMillis >= deadline {
            return close(.heartbeatTimeout)
        }
        guard case .open = phase, nowMillis >= lastPingMillis + configuration.heartbeatIntervalMillis else { return [] }
        lastPingMillis = nowMillis
        let nonce = nextNonce
        nextNonce += 1
        pendingPing = (nonce, nowMillis)
        return [.send(.ping(nonce: nonce))]
    }

    /// The shell found the peer's frames or ops unacceptable.
    public mutating func fail(_ reason: SessionCloseReason) -> [Action] {
        guard !isClosed else { return [] }
        return close(reason)
    }

    /// Whether the session ended.
    public var isClosed: Bool {
        if case .closed = phase { return true }
        return false
    }

    private mutating func close(_ reason: SessionCloseReason) -> [Action] {
        phase = .closed(reason)
        var actions = [Action]()
        if case .protocolViolation(let what) = reason { actions.append(.send(.goodbye(reason: what))) }
        actions.append(.close(reason))
        return actions
    }

    private mutating func pump() -> [Action] {
        guard case .open = phase, carrying, !loading, inFlight.count < configuration.window, sentThrough < localHighest
        else {
            return []
        }
        loading = true
        return [.loadBatch(after: sentThrough, limit: configuration.maxBatchOps)]
    }
}
