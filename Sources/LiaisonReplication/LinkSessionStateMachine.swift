public import Foundation
public import LiaisonCore

/// Why a session ended.
public enum SessionCloseReason: Hashable, Sendable, CustomStringConvertible {
    /// No frame arrived within the heartbeat deadline.
    case heartbeatTimeout
    /// The peer broke the protocol (wrong order, wrong identity, no common version, …).
    case protocolViolation(String)
    /// The peer sent more than the protocol lets it (heartbeats far faster than the
    /// interval, batches beyond the window without waiting for acks).
    case flood(String)
    /// The peer stayed alive and left our oldest batch unacknowledged past the ack deadline.
    case withholding(String)
    /// The peer said goodbye.
    case peerClosed(String)
    /// This node is shutting the channel.
    case localShutdown

    public var description: String {
        switch self {
        case .heartbeatTimeout: "no heartbeat"
        case .protocolViolation(let what): "protocol violation: \(what)"
        case .flood(let what): "flood: \(what)"
        case .withholding(let what): "withholding: \(what)"
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
/// Liveness: a ping every `heartbeatIntervalMillis`; a channel on which a ping has gone
/// unanswered (nothing heard since it went out) for `deadAfterMillis` is dead (before the
/// peer's hello: silent for `helloTimeoutMillis`). The transport answers the peer's pings
/// itself (`ChannelKeepalive`), so a node busy with its store still answers; the machine
/// only counts them. Time is whatever the caller passes in.
///
/// Abuse (DESIGN §6, docs/operations.md "Strikes"): a peer that is alive but leaves our
/// oldest batch unacknowledged for `ackDeadlineMillis` is withholding; a peer that sends
/// heartbeats far faster than the interval, or more unacknowledged batches than twice the
/// window, is flooding. Either closes the channel with a reason the engine strikes.
public struct LinkSessionStateMachine: Sendable {
    /// Tunables.
    public struct Configuration: Sendable, Hashable {
        /// Most ops per batch.
        public var maxBatchOps: Int = 1024
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
        /// How long our oldest batch may wait for its ack while the peer is heard from.
        public var ackDeadlineMillis: UInt64 = 150_000
        /// Heartbeats (pings, and pongs beyond one per ping of ours) the peer may send in one
        /// burst. An honest peer sends one per interval; after a stall of ours the ones that
        /// waited arrive together, and the allowance grows by two per interval of the gap.
        public var heartbeatBurst: UInt64 = 208

        /// The defaults.
        public init() {}

        /// Heartbeats and the ack deadline as a federation's channel settings set them.
        public init(channels: ChannelSettings) {
            heartbeatIntervalMillis = channels.heartbeatMillis
            deadAfterMillis = channels.deadAfterMillis
            ackDeadlineMillis = channels.ackDeadlineMillis
        }

    }

    /// What the shell must do.
    public enum Action: Hashable, Sendable {
        /// Write a message on the channel.
        case send(SyncMessage)
        /// Read our log after `after` (at most `limit` ops), filter it for this peer, and
        /// report with `batchReady`. With `parts` (the peer takes them), an entry whose item
        /// history passes one batch may be read in parts (report with `batchPartReady`);
        /// `resume` says where the last part stopped.
        case loadBatch(after: UInt64, limit: Int, parts: Bool = false, resume: HistoryCut? = nil)
        /// Verify and commit ops the peer sent, then report with `committed`. A `part` (from
        /// 1) covers nothing: commit it without moving the checkpoint.
        case commit(ops: [Data], throughSeq: UInt64, part: UInt32 = 0)
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
    /// `throughSeq` of batches sent and not yet acknowledged, oldest first (for a part, the
    /// entry it goes ahead of).
    public var inFlight: [UInt64] { inFlightPositions.map(\.through) }
    /// Batches sent and not yet acknowledged, oldest first.
    private var inFlightPositions: [BatchPosition] = []
    /// The last part sent of the entry whose history goes in parts, if one is under way.
    public private(set) var sentPart: (cut: HistoryCut, part: UInt32)?
    /// The number of the last part sent on this channel: parts are numbered up for the
    /// channel's life, so that a history started again (after a change of carrying channel)
    /// never repeats a number the peer's session has seen.
    private var lastPartNumber: UInt32 = 0
    /// Whether the peer takes batch parts (its hello lists `SyncProtocol.batchParts`).
    public private(set) var peerTakesParts = false
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
    /// When the oldest ping we sent after last hearing from the peer went out: nil while
    /// everything we sent has been answered (the peer spoke since).
    private var unansweredSinceMillis: UInt64?
    private var nextNonce: UInt64 = 1
    /// The last measured round-trip time.
    public private(set) var rttMillis: UInt64?
    /// The peer's heartbeat allowance, in milliseconds of heartbeat interval: each heartbeat
    /// costs one interval, and time refills two milliseconds per millisecond (a token bucket
    /// of `heartbeatBurst` intervals, topped up beyond that by the gap before a burst).
    private var heartbeatTokens: UInt64
    private var lastHeartbeatMillis: UInt64
    /// Heartbeats since the allowance was last full, and since when.
    private var heartbeatsSinceFull: UInt64 = 0
    /// Pings we sent and pongs the peer sent: a pong beyond one per ping answers nothing.
    private var pingsSent: UInt64 = 0
    private var pongsReceived: UInt64 = 0
    private var fullSinceMillis: UInt64
    /// The batches handed to the shell to commit, not yet committed.
    private var uncommitted: [BatchPosition] = []
    /// The last part of the peer's log handed to the shell, while the entry it goes ahead of
    /// has not come whole.
    public private(set) var receivedPart: BatchPosition?

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
        self.heartbeatTokens = configuration.heartbeatBurst * max(configuration.heartbeatIntervalMillis, 1)
        self.lastHeartbeatMillis = nowMillis
        self.fullSinceMillis = nowMillis
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
        hear(atMillis: nowMillis)
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
            peerTakesParts = hello.versions.contains(SyncProtocol.batchParts)
            sentThrough = hello.checkpoint
            ackedThrough = hello.checkpoint
            return [.opened(peerHLC: hello.hlc), .acknowledged(throughSeq: hello.checkpoint)] + pump()
        case (.awaitingHello, _):
            return close(.protocolViolation("a message before hello"))
        case (.open, .hello):
            return close(.protocolViolation("a second hello"))
        case (.open, .batch(let ops, let through)):
            guard through > receivedThrough, through >= receivedPart?.through ?? 0 else {
                let last = receivedPart.map { "part \($0.part) ahead of \($0.through)" } ?? "\(receivedThrough)"
                return close(.protocolViolation("batch through \(through) after \(last)"))
            }
            if let refusal = admit(ops, BatchPosition(through: through, part: 0)) { return refusal }
            receivedThrough = through
            receivedPart = nil
            return [.commit(ops: ops, throughSeq: through)]
        case (.open, .batchPart(let ops, let through, let part)):
            let position = BatchPosition(through: through, part: part)
            guard part > 0, through > receivedThrough, receivedPart.map({ position > $0 }) ?? true else {
                let last = receivedPart.map { "part \($0.part) ahead of \($0.through)" } ?? "\(receivedThrough)"
                return close(.protocolViolation("part \(part) ahead of \(through) after \(last)"))
            }
            if let refusal = admit(ops, position) { return refusal }
            receivedPart = position
            return [.commit(ops: ops, throughSeq: through, part: part)]
        case (.open, .ack(let through)):
            return acknowledged(BatchPosition(through: through, part: 0))
        case (.open, .partAck(let through, let part)):
            guard part > 0 else { return close(.protocolViolation("an ack of part 0")) }
            return acknowledged(BatchPosition(through: through, part: part))
        case (.open, .ping):
            // The transport answered it already (`ChannelKeepalive`); here it only counts.
            if let flood = countHeartbeat(nowMillis: nowMillis) { return close(flood) }
            return []
        case (.open, .pong(let nonce)):
            pongsReceived += 1
            if let pending = pendingPing, pending.nonce == nonce {
                rttMillis = nowMillis >= pending.sentAt ? nowMillis - pending.sentAt : 0
                pendingPing = nil
            }
            // A late pong answers an earlier ping of ours (on a loaded machine the round trip
            // can outlast the interval); only pongs beyond one per ping count as heartbeats.
            if pongsReceived > pingsSent, let flood = countHeartbeat(nowMillis: nowMillis) {
                return close(flood)
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
        sentPart = nil
        inFlightPositions.append(BatchPosition(through: throughSeq, part: 0))
        inFlightSentAt.append(latestMillis)
        return [.send(.batch(ops: ops, throughSeq: throughSeq))] + pump()
    }

    /// The shell loaded a part of the item history ahead of the log entry `cut.entry` (asked
    /// with `parts`): `ops` to send, which cover nothing; the next read resumes at `cut`.
    public mutating func batchPartReady(ops: [Data], cut: HistoryCut) -> [Action] {
        loading = false
        guard case .open = phase else { return [] }
        guard peerTakesParts, cut.entry > sentThrough, lastPartNumber < UInt32.max else { return pump() }
        // Each part reads past the last: a part that did not is stale.
        if let last = sentPart, last.cut.entry == cut.entry, cut.historyThrough <= last.cut.historyThrough {
            return pump()
        }
        lastPartNumber += 1
        let part = lastPartNumber
        sentPart = (cut, part)
        inFlightPositions.append(BatchPosition(through: cut.entry, part: part))
        inFlightSentAt.append(latestMillis)
        return [.send(.batchPart(ops: ops, throughSeq: cut.entry, part: part))] + pump()
    }

    /// The shell chose whether this channel carries our log. A channel that starts carrying
    /// resumes after `resumeAfter` (what the peer acknowledged on any channel of the link)
    /// or after what it already handed over itself, whichever is further.
    public mutating func setCarrying(_ on: Bool, resumeAfter: UInt64) -> [Action] {
        carrying = on
        guard on, case .open = phase else { return [] }
        let resume = min(max(sentThrough, resumeAfter), localHighest)
        // A history under way in parts goes on from where this channel left it while its
        // entry is still ahead (this channel delivered the parts before, in order).
        if let part = sentPart, resume >= part.cut.entry { sentPart = nil }
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

    /// The shell committed the peer's ops up to `throughSeq` (or, for a `part` from 1, that
    /// part of the history ahead of it).
    public mutating func committed(throughSeq: UInt64, part: UInt32 = 0) -> [Action] {
        let position = BatchPosition(through: throughSeq, part: part)
        uncommitted.removeAll { $0 <= position }
        if part > 0 {
            guard !isClosed else { return [] }
            return [.send(.partAck(throughSeq: throughSeq, part: part))]
        }
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
        hear(atMillis: atMillis)
    }

    private mutating func hear(atMillis: UInt64) {
        lastHeardMillis = max(lastHeardMillis, atMillis)
        if let since = unansweredSinceMillis, atMillis >= since { unansweredSinceMillis = nil }
    }

    /// Time passed: send a heartbeat when due, or declare the channel dead.
    public mutating func tick(nowMillis: UInt64) -> [Action] {
        guard !isClosed else { return [] }
        latestMillis = max(latestMillis, nowMillis)
        if case .awaitingHello = phase {
            let deadline = max(configuration.deadAfterMillis, configuration.helloTimeoutMillis)
            if nowMillis > lastHeardMillis && nowMillis - lastHeardMillis >= deadline {
                return close(.heartbeatTimeout)
            }
        } else if let since = unansweredSinceMillis {
            // A ping of ours is unanswered and nothing else came since. The silence counts
            // from when we last heard the peer, but from no earlier than one interval before
            // that ping: while this node was busy and sent no pings, the peer's silence says
            // nothing (its channel answers pings at once, whatever its engine is doing).
            let from = max(
                lastHeardMillis,
                since > configuration.heartbeatIntervalMillis
                    ? since - configuration.heartbeatIntervalMillis : 0)
            if nowMillis > from && nowMillis - from >= silenceAllowedMillis {
                return close(.heartbeatTimeout)
            }
        }
        // Alive (heard within the deadline) and still sitting on our oldest batch.
        if case .open = phase, let sentAt = inFlightSentAt.first, nowMillis > sentAt,
            nowMillis - sentAt >= configuration.ackDeadlineMillis, lastHeardMillis > sentAt
        {
            return close(
                .withholding(
                    "batch through \(inFlightPositions.first?.through ?? 0) unacknowledged for \(nowMillis - sentAt) ms "
                        + "(deadline \(configuration.ackDeadlineMillis) ms) while the peer answered heartbeats"))
        }
        guard case .open = phase, nowMillis >= lastPingMillis + configuration.heartbeatIntervalMillis else { return [] }
        lastPingMillis = nowMillis
        let nonce = nextNonce
        nextNonce += 1
        pendingPing = (nonce, nowMillis)
        pingsSent += 1
        if unansweredSinceMillis == nil { unansweredSinceMillis = nowMillis }
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

    /// Counts a heartbeat from the peer; the reason to close when it sends too many.
    private mutating func countHeartbeat(nowMillis: UInt64) -> SessionCloseReason? {
        let interval = max(configuration.heartbeatIntervalMillis, 1)
        let capacity = configuration.heartbeatBurst * interval
        let gap = nowMillis > lastHeartbeatMillis ? nowMillis - lastHeartbeatMillis : 0
        lastHeartbeatMillis = max(lastHeartbeatMillis, nowMillis)
        if gap > 0 {
            // Credit left over from an earlier gap lapses; this gap's credit stands in full.
            let refill = gap.multipliedReportingOverflow(by: 2).partialValue
            heartbeatTokens = min(heartbeatTokens, capacity).addingReportingOverflow(refill).partialValue
        }
        if heartbeatTokens >= capacity {
            heartbeatsSinceFull = 0
            fullSinceMillis = nowMillis
        }
        heartbeatsSinceFull += 1
        guard heartbeatTokens >= interval else {
            return .flood(
                "\(heartbeatsSinceFull) heartbeats in \(nowMillis - fullSinceMillis) ms "
                    + "(one per \(interval) ms expected)")
        }
        heartbeatTokens -= interval
        return nil
    }

    private mutating func close(_ reason: SessionCloseReason) -> [Action] {
        phase = .closed(reason)
        var actions = [Action]()
        switch reason {
        case .protocolViolation(let what), .flood(let what), .withholding(let what):
            actions.append(.send(.goodbye(reason: what)))
        default: break
        }
        actions.append(.close(reason))
        return actions
    }

    private mutating func pump() -> [Action] {
        guard case .open = phase, carrying, !loading, inFlightPositions.count < configuration.window,
            sentThrough < localHighest
        else {
            return []
        }
        loading = true
        return [
            .loadBatch(
                after: sentThrough, limit: configuration.maxBatchOps, parts: peerTakesParts,
                resume: peerTakesParts ? sentPart?.cut : nil)
        ]
    }

    /// Bounds a batch or part from the peer before it goes to the shell: nil when admitted.
    private mutating func admit(_ ops: [Data], _ position: BatchPosition) -> [Action]? {
        guard ops.count <= configuration.maxBatchOps * 4 else {
            return close(.protocolViolation("batch of \(ops.count) ops"))
        }
        // An honest sender has at most a window of batches unacknowledged; we ack each
        // batch once it commits, so more than twice that waiting here did not wait.
        guard uncommitted.count < 2 * max(configuration.window, 1) else {
            return close(
                .flood("\(uncommitted.count + 1) batches without waiting for acks (window \(configuration.window))")
            )
        }
        uncommitted.append(position)
        return nil
    }

    /// The peer acknowledged our batches up to `position`, which must be one in flight.
    private mutating func acknowledged(_ position: BatchPosition) -> [Action] {
        guard inFlightPositions.contains(position) else {
            let what =
                position.part == 0
                ? "through \(position.through)" : "of part \(position.part) ahead of \(position.through)"
            return close(.protocolViolation("ack \(what) matches no batch in flight"))
        }
        // The oldest batch acknowledged waited longest: its wait is the sample.
        let waited = latestMillis - min(inFlightSentAt.first ?? latestMillis, latestMillis)
        ackLatencyMillis = max(waited, ackLatencyMillis - ackLatencyMillis / 8)
        let acknowledged = inFlightPositions.prefix { $0 <= position }.count
        inFlightPositions.removeFirst(acknowledged)
        inFlightSentAt.removeFirst(acknowledged)
        guard position.part == 0 else { return pump() }
        ackedThrough = max(ackedThrough, position.through)
        return [.acknowledged(throughSeq: position.through)] + pump()
    }
}

/// Where a batch stands in its sender's log: whole through `through` (`part` 0), or part
/// `part` of the history ahead of the entry `through`, which comes before the entry's whole
/// batch.
public struct BatchPosition: Hashable, Comparable, Sendable {
    /// The log entry.
    public var through: UInt64
    /// 0 for a whole batch; from 1 for the parts ahead of it.
    public var part: UInt32

    /// Creates a position.
    public init(through: UInt64, part: UInt32) {
        self.through = through
        self.part = part
    }

    private var rank: UInt64 { part == 0 ? UInt64(UInt32.max) + 1 : UInt64(part) }

    public static func < (a: BatchPosition, b: BatchPosition) -> Bool {
        (a.through, a.rank) < (b.through, b.rank)
    }
}
