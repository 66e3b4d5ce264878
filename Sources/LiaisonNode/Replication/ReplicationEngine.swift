public import Foundation
public import LiaisonCore
import Crypto
import LiaisonReplication
import LiaisonStore
public import Logging

/// The node's replication shell: owns the store writes, the clock, the channels of every
/// link and the per-peer counters, and carries out what the pure `LinkSessionStateMachine`s
/// ask for (load and filter batches, verify, admit and commit received ops, record
/// custody). It chooses which channel of a link carries (`ChannelSelector`), seals ops for
/// partners no channel reaches and sends them through relays (`SealedOutbox`), and relays
/// other partners' envelopes (`RelayQueue`).
public actor ReplicationEngine {
    /// The node.
    public let node: LocalNode
    /// The federation as this node knows it.
    public let federation: FederationConfig
    let logger: Logger
    var logic: ReplicationLogic
    var sessions: [String: [Int: Session]] = [:]
    var nextToken = 0
    var counters: [String: LinkCounters] = [:]
    var selectors: [String: ChannelSelector] = [:]
    /// Since when a peer has had no open channel.
    var downSince: [String: UInt64] = [:]
    var sealed = SealedOutbox()
    var relayQueue = RelayQueue()
    let isRelay: Bool
    /// Sealing public keys by partner name.
    let sealingKeys: [String: Curve25519.KeyAgreement.PublicKey]

    struct Session {
        var endpoint: Int
        var address: String
        var continuation: AsyncStream<SessionEvent>.Continuation
        var open = false
        var rttMillis: UInt64?
        var lastContactMillis: UInt64?
    }

    struct LinkCounters {
        var lastContactMillis: UInt64?
        var ackedThrough: UInt64 = 0
        var lastAckMillis: UInt64?
        var opsSent: UInt64 = 0
        var opsReceived: UInt64 = 0
        var bytesSent: UInt64 = 0
        var bytesReceived: UInt64 = 0
        var opsWithheld: UInt64 = 0
        var rejects: UInt64 = 0
        var lastError: String?
        var failures: [Int: Int] = [:]
        var endpointErrors: [Int: String] = [:]
        var envelopesOpened: UInt64 = 0
        var relayVia: String?
    }

    /// Creates the engine for an opened node and its federation configuration.
    public init(node: LocalNode, federation: FederationConfig, logger: Logger) throws(LiaisonError) {
        guard let me = federation.partner(named: federation.me), me.nodeID == node.config.nodeID else {
            throw LiaisonError(.corrupt, "federation.json does not describe this node (\(node.config.name)); render it again")
        }
        self.node = node
        self.federation = federation
        self.logger = logger
        self.isRelay = me.relay
        var keys = [String: Curve25519.KeyAgreement.PublicKey]()
        for partner in federation.partners {
            guard let raw = Data(base64Encoded: partner.sealingKey),
                let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw)
            else {
                throw LiaisonError(.corrupt, "federation.json has a malformed sealing key for \(partner.name); render it again")
            }
            keys[partner.name] = key
        }
        self.sealingKeys = keys
        self.logic = try ReplicationLogic(
            me: me.recipient,
            store: node.store,
            ladder: node.config.classifications,
            knownAuthors: Set(federation.partners.map(\.nodeID)),
            neighbours: federation.neighbours.compactMap { neighbour in
                federation.partner(named: neighbour.name).map {
                    ReplicationNeighbour(partner: $0.recipient, outbound: neighbour.outbound, inbound: neighbour.inbound)
                }
            },
            maxClockSkewMillis: node.config.maxClockSkewMillis
        )
        let now = Self.nowMillis
        for neighbour in federation.neighbours {
            var counter = LinkCounters()
            counter.ackedThrough = (try? node.store.checkpoint(link: ReplicationLogic.sentLink(neighbour.name))) ?? 0
            counters[neighbour.name] = counter
            selectors[neighbour.name] = ChannelSelector(settings: federation.channels)
            downSince[neighbour.name] = now
        }
    }

    static var nowMillis: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    // MARK: - Local writes

    /// Creates an item here and pushes it to the sessions.
    public func put(_ request: PutRequest) throws(LiaisonError) -> (item: ItemState, op: VerifiedOp) {
        let result = try node.put(request, now: Date())
        logic.observe(result.op.body.hlc, nowMillis: Self.nowMillis)
        notifyLogGrew()
        return result
    }

    /// Changes an item here and pushes the change to the sessions.
    public func update(_ id: ItemID, fields: [(name: String, value: Data)], addTags: [String], removeTags: [String])
        throws(LiaisonError) -> ItemState
    {
        let result = try node.update(id, fields: fields, addTags: addTags, removeTags: removeTags, now: Date())
        notifyLogGrew()
        return result.item
    }

    func notifyLogGrew() {
        guard let highest = try? node.store.highestSequence() else { return }
        for peer in sessions.values {
            for session in peer.values { session.continuation.yield(.logGrew(highest)) }
        }
    }

    // MARK: - Channels

    /// Adds a channel to a peer's link, reaching the peer's endpoint `endpoint` (or, on the
    /// accepting side, our endpoint `endpoint`). An older channel on the same endpoint is
    /// told to close. Returns the token the other calls need.
    func register(peer: String, endpoint: Int, address: String, continuation: AsyncStream<SessionEvent>.Continuation) -> Int {
        for (token, session) in sessions[peer] ?? [:] where session.endpoint == endpoint {
            session.continuation.yield(.replaced)
            sessions[peer]?[token] = nil
            closeChannel(peer: peer, token: token, failed: false)
        }
        nextToken += 1
        sessions[peer, default: [:]][nextToken] = Session(endpoint: endpoint, address: address, continuation: continuation)
        return nextToken
    }

    /// A channel ended. `failed` unless it was replaced or shut down on purpose.
    func unregister(peer: String, token: Int, reason: String?, failed: Bool) {
        guard let session = sessions[peer]?.removeValue(forKey: token) else { return }
        session.continuation.finish()
        counters[peer]?.lastError = reason
        counters[peer]?.endpointErrors[session.endpoint] = reason
        if failed && session.open { counters[peer]?.failures[session.endpoint, default: 0] += 1 }
        closeChannel(peer: peer, token: token, failed: failed && session.open)
    }

    private func closeChannel(peer: String, token: Int, failed: Bool) {
        let now = Self.nowMillis
        selectors[peer]?.closed(token, failed: failed, nowMillis: now)
        reselect(peer, nowMillis: now)
        if selectors[peer]?.hasOpenChannel == false && downSince[peer] == nil {
            downSince[peer] = now
            logger.warning("link lost every channel", metadata: ["liaison.partner": "\(peer)"])
        }
    }

    /// A channel finished its hello. Returns whether it carries our log and where it resumes.
    func opened(peer: String, token: Int, peerHLC: HLCTimestamp) -> (carrying: Bool, resumeAfter: UInt64) {
        let now = Self.nowMillis
        logic.observe(peerHLC, nowMillis: now)
        guard let session = sessions[peer]?[token] else { return (false, 0) }
        sessions[peer]?[token]?.open = true
        selectors[peer]?.opened(token, endpoint: session.endpoint, nowMillis: now)
        if downSince.removeValue(forKey: peer) != nil, sealed.awaiting(peer) > 0 || sealed.cursors[peer] != nil {
            logger.info("link back; sealed relaying stops", metadata: ["liaison.partner": "\(peer)"])
        }
        sealed.linkRestored(peer)
        counters[peer]?.relayVia = nil
        reselect(peer, nowMillis: now, except: token)
        flushRelayQueue(for: peer, nowMillis: now)
        let carrying = selectors[peer]?.carriers.contains(token) ?? false
        return (carrying, counters[peer]?.ackedThrough ?? 0)
    }

    /// Re-chooses a peer's carriers and tells the channels that start or stop carrying.
    private func reselect(_ peer: String, nowMillis: UInt64, except skipped: Int? = nil) {
        guard var selector = selectors[peer] else { return }
        let before = selector.carriers
        let (start, stop) = selector.select(nowMillis: nowMillis)
        selectors[peer] = selector
        let acked = counters[peer]?.ackedThrough ?? 0
        for token in stop where token != skipped {
            sessions[peer]?[token]?.continuation.yield(.carrying(false, resumeAfter: acked))
        }
        for token in start where token != skipped {
            sessions[peer]?[token]?.continuation.yield(.carrying(true, resumeAfter: acked))
        }
        if !start.isEmpty, !before.isEmpty || !stop.isEmpty {
            let endpoints = start.compactMap { selector.endpoint(of: $0) }
            logger.info("link moved to another channel", metadata: ["liaison.partner": "\(peer)", "liaison.endpoints": "\(endpoints)"])
        }
    }

    func heard(peer: String, token: Int, bytes: Int, rttMillis: UInt64?) {
        let now = Self.nowMillis
        counters[peer]?.lastContactMillis = now
        counters[peer]?.bytesReceived += UInt64(bytes)
        sessions[peer]?[token]?.lastContactMillis = now
        if let rttMillis { sessions[peer]?[token]?.rttMillis = rttMillis }
    }

    func sentBytes(peer: String, bytes: Int) {
        counters[peer]?.bytesSent += UInt64(bytes)
    }

    /// The session start values: how far we applied the peer's log, and our log's end.
    func sessionStart(peer: String) throws(LiaisonError) -> (checkpoint: UInt64, highest: UInt64, hlc: HLCTimestamp) {
        try logic.sessionStart(peer: peer)
    }

    /// Records a channel-level refusal (unpinned certificate, malformed frames, violations).
    func refused(peer: String?, detail: String) {
        if let peer { counters[peer]?.lastError = detail }
        _ = try? node.store.appendCustody(
            CustodyEvent(kind: .peerRefused, peer: peer, detail: detail),
            timeMillis: Int64(Self.nowMillis)
        )
        logger.warning("refused peer", metadata: ["liaison.partner": "\(peer ?? "unknown")", "liaison.reason": "\(detail)"])
    }

    /// Periodic work: fail back to better channels once they settled, seal ops for peers no
    /// channel reaches, and send overdue envelopes again.
    func maintain() {
        let now = Self.nowMillis
        for peer in selectors.keys { reselect(peer, nowMillis: now) }
        relaySealed(nowMillis: now)
    }

    // MARK: - Sending

    /// Reads our log after `after`, filters it for `peer`, and records custody of what goes
    /// and what is withheld.
    func loadBatch(for peer: String, after: UInt64, limit: Int) throws(LiaisonError) -> OutboxBatch {
        let batch = try logic.loadBatch(for: peer, after: after, limit: limit, nowMillis: Self.nowMillis)
        counters[peer]?.opsSent += UInt64(batch.sent.count)
        counters[peer]?.opsWithheld += UInt64(batch.withheld.count)
        return batch
    }

    /// The peer acknowledged our log up to `through`.
    func acknowledged(peer: String, through: UInt64) {
        try? logic.acknowledged(peer: peer, through: through)
        let acked = max(counters[peer]?.ackedThrough ?? 0, through)
        counters[peer]?.ackedThrough = acked
        counters[peer]?.lastAckMillis = Self.nowMillis
    }

    // MARK: - Receiving

    /// Verifies, admits and commits ops from `peer` covering its log up to `through`; then
    /// records the checkpoint. Refused ops are audited and counted against the peer; the
    /// rest still commit (the peer's other traffic keeps flowing).
    func receive(ops encoded: [Data], through: UInt64?, from peer: String) throws(LiaisonError) -> ReceiveOutcome {
        let outcome = try logic.receive(ops: encoded, through: through, from: peer, nowMillis: Self.nowMillis)
        counters[peer]?.rejects += UInt64(outcome.refused)
        counters[peer]?.opsReceived += UInt64(outcome.accepted)
        if outcome.refused > 0 {
            logger.warning("refused ops", metadata: ["liaison.partner": "\(peer)", "liaison.count": "\(outcome.refused)"])
        }
        if outcome.logGrew { notifyLogGrew() }
        return outcome
    }

    // MARK: - Status

    /// One row per neighbour.
    public func linkStatus() -> [LinkStatus] {
        let highest = (try? node.store.highestSequence()) ?? 0
        let now = Self.nowMillis
        return federation.neighbours.map { neighbour in
            let name = neighbour.name
            let c = counters[name] ?? LinkCounters()
            let selector = selectors[name] ?? ChannelSelector(settings: federation.channels)
            let lag = neighbour.outbound == nil ? 0 : (highest > c.ackedThrough ? highest - c.ackedThrough : 0)
            let lagSeconds = lag == 0 ? 0 : Double(now - (c.lastAckMillis ?? c.lastContactMillis ?? now)) / 1000
            let open = (sessions[name] ?? [:]).filter(\.value.open)
            let carriers = selector.carriers.compactMap { token in open[token].map { (token, $0) } }.sorted { $0.1.endpoint < $1.1.endpoint }
            // A link has one channel per endpoint of the listening side.
            let endpointCount = neighbour.dial ? (federation.partner(named: name)?.endpoints.count ?? 1) : federation.listen.count
            var channels = [ChannelStatus]()
            for index in 0..<endpointCount {
                let session = (sessions[name] ?? [:]).filter { $0.value.endpoint == index }.max { $0.key < $1.key }
                let state: String
                if let (token, value) = session {
                    if !value.open {
                        state = "connecting"
                    } else if selector.carriers.contains(token) {
                        state = "carrying"
                    } else {
                        state = selector.heldUntil(endpoint: index) > now ? "held" : "standby"
                    }
                } else {
                    state = "down"
                }
                channels.append(
                    ChannelStatus(
                        endpoint: index,
                        state: state,
                        address: session?.value.address,
                        rttMillis: session?.value.rttMillis,
                        lastContact: session?.value.lastContactMillis.map { ISO8601.format(millis: Int64($0)) },
                        failures: c.failures[index] ?? 0,
                        lastError: c.endpointErrors[index]
                    )
                )
            }
            let state: String
            let path: String
            if !carriers.isEmpty {
                state = "up"
                path = carriers.count == 1
                    ? "channel \(carriers[0].1.endpoint) (\(carriers[0].1.address))"
                    : "channels " + carriers.map { "\($0.1.endpoint)" }.joined(separator: ", ")
            } else if let relay = c.relayVia {
                state = "relayed"
                path = "relay via \(relay)"
            } else {
                state = sessions[name]?.isEmpty == false ? "connecting" : "down"
                path = "none"
            }
            return LinkStatus(
                peer: name,
                state: state,
                path: path,
                channel: carriers.first?.1.address,
                rttMillis: carriers.first?.1.rttMillis,
                lastContact: c.lastContactMillis.map { ISO8601.format(millis: Int64($0)) },
                lagOps: lag,
                lagSeconds: lagSeconds,
                opsSent: c.opsSent,
                opsReceived: c.opsReceived,
                bytesSent: c.bytesSent,
                bytesReceived: c.bytesReceived,
                opsWithheld: c.opsWithheld,
                rejects: c.rejects,
                outbound: neighbour.outbound != nil,
                inbound: neighbour.inbound != nil,
                lastError: c.lastError,
                channels: channels,
                failovers: selector.switches,
                envelopesAwaiting: sealed.awaiting(name),
                envelopesReceipted: sealed.receipted[name] ?? 0,
                sealedOpsReceipted: sealed.opsReceipted[name] ?? 0,
                envelopesOpened: c.envelopesOpened,
                relayHeld: relayQueue.held(for: name)
            )
        }
    }
}
