import Foundation
public import LiaisonCore
public import LiaisonReplication
public import LiaisonStore
public import LiaisonTransport
import LiaisonWire
public import Logging
import NIOCore

/// The one interpreter of the node engine (DESIGN §3): feeds it events, carries out its
/// actions — store work through `ReplicationStore`, frames through the real wire codec and
/// a `PeerTransport`, custody, checkpoints, logs — and feeds the results of store work back
/// as events before anything else happens. The daemon runs it on a thread of its own over
/// pinned TLS and SQLite; the simulator runs it over an in-process faulty network and the
/// memory store, with a virtual clock. Time comes in with each call.
public struct NodeInterpreter<Transport: PeerTransport> {
    /// What one call did, for a shell that wants to look (the simulator checks it).
    public struct Report {
        /// Every action the engine asked for, in order.
        public var actions: [NodeEngine.Action] = []
        /// Every commit of a partner's ops, with what the store work made of it.
        public var commits: [(request: NodeEngine.CommitRequest, outcome: ReceiveOutcome)] = []
        /// Store failures.
        public var failures: [String] = []
        /// Items rebuilt by a quarantine or a release.
        public var rebuilds: [RebuildResult] = []
        /// Partners readmitted with new keys, with their new identity.
        public var readmissions: [(peer: String, identity: PartnerIdentity)] = []
        /// Waiting ops dropped because they were too old.
        public var expired: [OpID] = []
    }

    /// The engine.
    public private(set) var engine: NodeEngine
    /// The store side.
    public private(set) var replicationStore: ReplicationStore
    /// The transport.
    public let transport: Transport
    let logger: Logger?
    /// The containment state as last persisted.
    private var savedContainment: ContainmentState
    /// Told when a partner is readmitted with new keys, after the store recorded it: the
    /// daemon pins its new certificate (the simulator's network needs nothing).
    public var identityChanged: (@Sendable (String, PartnerIdentity) -> Void)?
    /// Told how long each commit of a partner's ops took in the store, and how many ops it
    /// held: the daemon's commit latency metric. It observes only; the simulator sets none.
    public var commitObserved: (@Sendable (_ ops: Int, _ duration: Duration) -> Void)?
    /// Batches that wait, per channel and in arrival order, for local time to reach an op
    /// stamped further ahead than the allowed skew (I6): none of them is committed or
    /// acknowledged before, so if this node stops meanwhile the sender sends them again.
    private var waiting: [ChannelID: (untilMillis: UInt64, requests: [NodeEngine.CommitRequest])] = [:]
    /// At most this many batches wait per channel: an honest sender has at most its window
    /// (4 by default) unacknowledged. Past it, the channel's waiting batches commit at once and
    /// their early ops are refused (charged to their authors).
    static var maxWaitingBatches: Int { 16 }

    /// Batches waiting for local time to reach an op stamped ahead of it.
    public var waitingBatches: Int { waiting.values.reduce(0) { $0 + $1.requests.count } }

    /// Creates the interpreter of a node: the engine starts from the store's checkpoints and
    /// log end; the clock resumes after the store's highest stamp.
    public init(
        configuration: NodeEngine.Configuration,
        store: any Store,
        ladder: ClassificationLadder,
        maxClockSkewMillis: UInt64,
        transport: Transport,
        nowMillis: UInt64,
        random: SeededRandom,
        logger: Logger?,
        verifier: OpVerifier = OpVerifier(),
        envelopes: EnvelopeOpener = EnvelopeOpener()
    ) throws(LiaisonError) {
        var replicationStore = try ReplicationStore(
            me: configuration.me,
            store: store,
            ladder: ladder,
            partners: configuration.partners.values.map(\.recipient).sorted { $0.name < $1.name },
            neighbours: configuration.links.values.sorted { $0.partner.name < $1.partner.name },
            maxClockSkewMillis: maxClockSkewMillis,
            nowMillis: nowMillis,
            verifier: verifier
        )
        let containment = try ReplicationStore.loadContainment(store)
        replicationStore.adopt(containment)
        var acked = [String: UInt64]()
        for name in configuration.links.keys {
            acked[name] = try store.checkpoint(link: replicationStore.sentLinkName(name))
        }
        let current = containment.currentNodeIDs(rendered: configuration.partners.mapValues(\.recipient.nodeID))
        replicationStore.restore(containment.quarantinesByNodeID { current[$0] })
        self.engine = NodeEngine(
            configuration: configuration,
            acked: acked,
            highest: try store.highestSequence(),
            nowMillis: nowMillis,
            random: random,
            containment: containment,
            envelopes: envelopes
        )
        self.savedContainment = containment
        self.replicationStore = replicationStore
        self.transport = transport
        self.logger = logger
    }

    /// The store.
    public var store: any Store { replicationStore.store }

    /// A transport connected a channel to `peer`: the session starts where the store says.
    @discardableResult
    public mutating func channelConnected(
        _ id: ChannelID,
        peer: String,
        endpoint: Int,
        address: String,
        nowMillis: UInt64
    ) -> Report {
        let start: NodeEngine.SessionStart
        do {
            let values = try replicationStore.sessionStart(peer: peer)
            start = NodeEngine.SessionStart(checkpoint: values.checkpoint, highest: values.highest, hlc: values.hlc)
        } catch {
            transport.close(id, reason: "store: \(error.message)")
            var report = Report()
            report.failures.append("session start for \(peer): \(error.message)")
            return report
        }
        return handle(
            .channelConnected(id, peer: peer, endpoint: endpoint, address: address, start: start), nowMillis: nowMillis)
    }

    /// Ops were committed here (a local write): the clock observes their stamps and the
    /// sessions push them.
    @discardableResult
    public mutating func committedLocally(stamps: [HLCTimestamp], nowMillis: UInt64) -> Report {
        for stamp in stamps { replicationStore.observe(stamp, nowMillis: nowMillis) }
        guard let highest = try? replicationStore.store.highestSequence() else { return Report() }
        return handle(.logGrew(highest: highest), nowMillis: nowMillis)
    }

    /// Stamps up to `stamp` were handed out for ops of this node not committed yet: the
    /// engine's own stamps come after them.
    public mutating func reserved(through stamp: HLCTimestamp, nowMillis: UInt64) {
        replicationStore.observe(stamp, nowMillis: nowMillis)
    }

    /// How long to wait before dialling an endpoint again (full jitter up to `capMillis`,
    /// from the engine's seeded generator).
    public mutating func reconnectDelay(capMillis: UInt64) -> UInt64 {
        engine.reconnectDelay(capMillis: capMillis)
    }

    /// A stamp for an op authored here now.
    public mutating func tick(nowMillis: UInt64) -> HLCTimestamp {
        replicationStore.tick(nowMillis: nowMillis)
    }

    /// Feeds one event to the engine and carries out everything it leads to.
    @discardableResult
    public mutating func handle(_ event: NodeEngine.Event, nowMillis now: UInt64) -> Report {
        var report = Report()
        var events = releaseWaiting(nowMillis: now, report: &report) + [event]
        var next = 0
        while next < events.count {
            let actions = engine.handle(events[next], nowMillis: now)
            next += 1
            report.actions += actions
            for action in actions {
                if case .commit(let request) = action, case .channel(let id, _, _) = request.source,
                    let queued = waiting[id]
                {
                    // Behind a waiting batch of the same channel: batches commit in order. A
                    // sender that overruns its window makes the whole queue commit now, its
                    // early ops refused (against their authors), so memory stays bounded.
                    waiting[id]?.requests.append(request)
                    if queued.requests.count + 1 > Self.maxWaitingBatches {
                        events += flushWaiting(id, nowMillis: now, report: &report)
                    }
                    continue
                }
                if let followUp = carryOut(action, nowMillis: now, report: &report) { events.append(followUp) }
            }
        }
        if engine.containment != savedContainment {
            do {
                try replicationStore.saveContainment(engine.containment)
                savedContainment = engine.containment
            } catch {
                report.failures.append("containment: \(error.message)")
                logger?.error(
                    "could not persist strikes and quarantines", metadata: ["liaison.error": "\(error.message)"])
            }
        }
        return report
    }

    /// After a rebuild that moved items' ops to the log's end (`RebuildResult.relogged`),
    /// the event that makes every session read them: the log's new end.
    private func relogged(_ result: RebuildResult) -> NodeEngine.Event? {
        guard !result.relogged.isEmpty, let highest = try? replicationStore.store.highestSequence() else { return nil }
        return .logGrew(highest: highest)
    }

    /// Carries out one action; returns the event that reports store work back.
    private mutating func carryOut(
        _ action: NodeEngine.Action, nowMillis now: UInt64, report: inout Report
    ) -> NodeEngine.Event? {
        switch action {
        case .send(let id, let message):
            do {
                let frame = try SyncFrameCodec.encode(message)
                engine.wrote(bytes: frame.readableBytes + 4, on: id)
                transport.send(frame, on: id)
            } catch {
                report.failures.append("encode: \(error.message)")
                logger?.error("could not encode a frame", metadata: ["liaison.error": "\(error.message)"])
                transport.close(id, reason: "could not encode a frame")
            }
            return nil
        case .close(let id, let reason):
            transport.close(id, reason: reason)
            return nil
        case .loadBatch(let request):
            do {
                let batch = try replicationStore.loadBatch(
                    for: request.peer,
                    after: request.after,
                    limit: request.limit,
                    nowMillis: now,
                    sealedVia: request.sealedVia,
                    parts: request.parts,
                    resume: request.resume
                )
                let loaded = NodeEngine.LoadedBatch(
                    ops: batch.ops,
                    sent: batch.sent.count,
                    withheld: batch.withheld.count,
                    throughSeq: batch.throughSeq,
                    withheldByReason: Dictionary(grouping: batch.withheld, by: \.reason.rawValue).mapValues(\.count),
                    cut: batch.cut
                )
                return .batchLoaded(request, loaded)
            } catch {
                return storeFailed(peer: request.peer, purpose: request.purpose, error, report: &report)
            }
        case .commit(let request):
            return commit(request, nowMillis: now, report: &report, mayWait: true)
        case .advanceCheckpoint(let peer, let through):
            do {
                try replicationStore.acknowledged(peer: peer, through: through)
            } catch {
                report.failures.append("checkpoint to \(peer): \(error.message)")
            }
            return nil
        case .observeClock(let stamp):
            replicationStore.observe(stamp, nowMillis: now)
            return nil
        case .custody(let event):
            appendCustody(event, nowMillis: now, report: &report)
            return nil
        case .strike(let peer, let strikeClass, let detail):
            appendCustody(
                CustodyEvent(kind: .peerRefused, peer: peer, detail: "\(strikeClass.rawValue): \(detail)"),
                nowMillis: now, report: &report)
            logger?.warning(
                "strike",
                metadata: [
                    "liaison.partner": "\(peer)", "liaison.class": "\(strikeClass.rawValue)",
                    "liaison.reason": "\(detail)",
                ])
            return nil
        case .quarantined(let peer, let quarantine):
            guard let author = engine.configuration.partners[peer]?.recipient.nodeID else { return nil }
            do {
                let result = try replicationStore.quarantine(
                    peer, author: author, quarantine, containment: engine.containment, nowMillis: now)
                savedContainment = engine.containment
                report.rebuilds.append(result)
                logger?.warning(
                    "quarantine applied",
                    metadata: [
                        "liaison.partner": "\(peer)", "liaison.items": "\(result.changed.count)",
                        "liaison.ops_left_out": "\(result.listed.count)",
                    ])
                return relogged(result)
            } catch {
                report.failures.append("quarantine of \(peer): \(error.message)")
                logger?.error(
                    "could not apply a quarantine",
                    metadata: ["liaison.partner": "\(peer)", "liaison.error": "\(error.message)"])
            }
            return nil
        case .released(let peer):
            guard let author = engine.configuration.partners[peer]?.recipient.nodeID else { return nil }
            do {
                let result = try replicationStore.release(
                    peer, author: author, containment: engine.containment, nowMillis: now)
                savedContainment = engine.containment
                report.rebuilds.append(result)
                return relogged(result)
            } catch {
                report.failures.append("release of \(peer): \(error.message)")
                logger?.error(
                    "could not apply a release",
                    metadata: ["liaison.partner": "\(peer)", "liaison.error": "\(error.message)"])
            }
            return nil
        case .expireWaiting(let before):
            do {
                let dropped = try replicationStore.expireWaiting(stampedBeforeMillis: before, nowMillis: now)
                if !dropped.isEmpty {
                    report.expired += dropped
                    logger?.warning(
                        "waiting ops expired",
                        metadata: ["liaison.ops": "\(dropped.count)", "liaison.stamped_before": "\(before)"])
                }
            } catch {
                report.failures.append("expiring waiting ops: \(error.message)")
                logger?.error("could not expire waiting ops", metadata: ["liaison.error": "\(error.message)"])
            }
            return nil
        case .readmitted(let peer, let identity, let revoked):
            do {
                let result = try replicationStore.readmit(
                    peer, identity: identity, revoked: revoked, containment: engine.containment, nowMillis: now)
                savedContainment = engine.containment
                report.rebuilds.append(result)
                report.readmissions.append((peer, identity))
                identityChanged?(peer, identity)
                logger?.warning(
                    "re-admission applied",
                    metadata: ["liaison.partner": "\(peer)", "liaison.node_id": "\(identity.nodeID.text)"])
                return relogged(result)
            } catch {
                report.failures.append("re-admission of \(peer): \(error.message)")
                logger?.error(
                    "could not apply a re-admission",
                    metadata: ["liaison.partner": "\(peer)", "liaison.error": "\(error.message)"])
            }
            return nil
        case .log(let record):
            guard let logger else { return nil }
            let metadata = record.metadata.mapValues { Logger.MetadataValue.string($0) }
            switch record.level {
            case .debug: logger.debug("\(record.message)", metadata: metadata)
            case .info: logger.info("\(record.message)", metadata: metadata)
            case .warning: logger.warning("\(record.message)", metadata: metadata)
            case .error: logger.error("\(record.message)", metadata: metadata)
            }
            return nil
        }
    }

    /// Verifies, admits and commits a partner's ops; returns the event that reports it. A
    /// channel's batch holding an op stamped too far ahead waits instead (returns nil).
    private mutating func commit(
        _ request: NodeEngine.CommitRequest, nowMillis now: UInt64, report: inout Report, mayWait: Bool
    ) -> NodeEngine.Event? {
        var channel: ChannelID?
        if case .channel(let id, _, _) = request.source { channel = id }
        do {
            let started = ContinuousClock.now
            let outcome = try replicationStore.receive(
                ops: request.ops, through: request.through, from: request.peer, nowMillis: now,
                mayWait: mayWait && channel != nil)
            if outcome.waitUntilMillis == nil, !request.ops.isEmpty, let commitObserved {
                commitObserved(request.ops.count, ContinuousClock.now - started)
            }
            if let until = outcome.waitUntilMillis, let channel {
                waiting[channel, default: (until, [])].untilMillis = until
                waiting[channel]?.requests.insert(request, at: 0)
                logger?.info(
                    "a batch waits for local time to reach ops stamped ahead of it",
                    metadata: [
                        "liaison.partner": "\(request.peer)", "liaison.ops": "\(outcome.early)",
                        "liaison.waitMillis": "\(until - now)",
                    ])
                return nil
            }
            report.commits.append((request, outcome))
            let summary = NodeEngine.CommitOutcome(
                accepted: outcome.accepted, refused: outcome.refused, highest: outcome.highest,
                strikes: outcome.strikes)
            return .committed(request, summary)
        } catch {
            if let channel {
                waiting[channel] = nil
                return storeFailed(peer: request.peer, purpose: .channel(channel), error, report: &report)
            }
            report.failures.append("commit of sealed ops from \(request.peer): \(error.message)")
            logger?.error(
                "could not commit a sealed envelope",
                metadata: ["liaison.partner": "\(request.peer)", "liaison.error": "\(error.message)"])
            return nil
        }
    }

    /// Commits, in order, the waiting batches whose time has come; returns what they report.
    private mutating func releaseWaiting(nowMillis now: UInt64, report: inout Report) -> [NodeEngine.Event] {
        var events = [NodeEngine.Event]()
        for id in waiting.keys.sorted() {
            guard let entry = waiting[id], entry.untilMillis <= now else { continue }
            waiting[id] = nil
            var requests = entry.requests[...]
            while let request = requests.popFirst() {
                let event = commit(request, nowMillis: now, report: &report, mayWait: true)
                if let event { events.append(event) }
                if waiting[id] != nil {
                    // It waits again (a later batch is stamped further ahead): the rest behind it.
                    waiting[id]?.requests += requests
                    break
                }
                if case .storeFailed = event { break }
            }
        }
        return events
    }

    /// Commits every batch waiting on a channel now, in order, refusing their early ops.
    private mutating func flushWaiting(
        _ id: ChannelID, nowMillis now: UInt64, report: inout Report
    ) -> [NodeEngine.Event] {
        guard let entry = waiting.removeValue(forKey: id) else { return [] }
        var events = [NodeEngine.Event]()
        for request in entry.requests {
            let event = commit(request, nowMillis: now, report: &report, mayWait: false)
            if let event { events.append(event) }
            if case .storeFailed = event { break }
        }
        return events
    }

    private func appendCustody(_ event: CustodyEvent, nowMillis: UInt64, report: inout Report) {
        do {
            _ = try replicationStore.store.appendCustody(event, timeMillis: Int64(nowMillis))
        } catch {
            report.failures.append("custody: \(error.message)")
            logger?.error("could not append to the custody log", metadata: ["liaison.error": "\(error.message)"])
        }
    }

    private func storeFailed(
        peer: String,
        purpose: NodeEngine.BatchRequest.Purpose,
        _ error: LiaisonError,
        report: inout Report
    ) -> NodeEngine.Event {
        report.failures.append("store work for \(peer): \(error.message)")
        logger?.error(
            "store work failed", metadata: ["liaison.partner": "\(peer)", "liaison.error": "\(error.message)"])
        return .storeFailed(peer: peer, purpose: purpose, reason: error.message)
    }
}
