import CLiaisonMemory
import Crypto
public import Foundation
public import LiaisonCore
import LiaisonReplication
public import LiaisonStore
import LiaisonTransport
public import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The daemon's node: the one `NodeInterpreter` of the pure `NodeEngine`, over pinned TLS
/// channels and the node's SQLite store, plus local writes from the API. It runs on a thread
/// of its own (an event loop that does nothing else), so the blocking SQLite commits with
/// fsync never hold up the cooperative thread pool on which the TLS sessions read, write
/// and answer heartbeats.
public actor ReplicationEngine {
    /// The node.
    public let node: LocalNode
    /// The federation as this node knows it.
    public let federation: FederationConfig
    let logger: Logger
    var interpreter: NodeInterpreter<DaemonTransport>
    let transport: DaemonTransport
    /// The neighbours' certificate pins, as rendered and replaced by re-admissions: read by
    /// every TLS handshake, updated when the engine readmits a partner with new keys.
    nonisolated let pins: PinTable
    /// Verifies partners' ops; the channels' readers verify each batch with it ahead of the
    /// engine, while the engine commits the one before (`OpVerifier.verifyAhead`).
    nonisolated let verifier: OpVerifier
    /// Opens envelopes addressed to this node on the channels' readers, so that their ops are
    /// verified there too (`SealedAhead`).
    nonisolated let sealedAhead: SealedAhead
    private var nextChannel = 0
    /// Progress of long catch-ups, logged from the tick.
    private var catchUp = CatchUpProgress()
    private var nextCatchUpReading: UInt64 = 0
    /// Memory handed back once heavy work is over (`IdleMemoryRelease`).
    private var idleMemory = IdleMemoryRelease()
    /// The commit latency observer's view of puts here (`observeCommits`).
    private var localCommitObserved: (@Sendable (Int, Duration) -> Void)?
    private let loop: any EventLoop

    /// One thread for the store work of every engine in the process.
    private static let storeThreads = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// The actor runs on the store thread.
    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.executor.asUnownedSerialExecutor() }

    /// Creates the engine for an opened node and its federation configuration.
    public init(node: LocalNode, federation: FederationConfig, logger: Logger) throws(LiaisonError) {
        guard let me = federation.partner(named: federation.me), me.nodeID == node.config.nodeID else {
            throw LiaisonError(
                .corrupt, "federation.json does not describe this node (\(node.config.name)); render it again")
        }
        self.node = node
        self.federation = federation
        self.logger = logger
        self.loop = Self.storeThreads.next()
        let configuration = try Self.engineConfiguration(node: node, federation: federation, me: me)
        let transport = DaemonTransport()
        self.transport = transport
        let verifier = OpVerifier()
        self.verifier = verifier
        let envelopes = EnvelopeOpener()
        self.sealedAhead = SealedAhead(
            me: configuration.me.nodeID, sealingKey: configuration.sealingKey, opener: envelopes,
            senders: Dictionary(
                configuration.partners.values.map { ($0.recipient.nodeID, $0.sealingKey) },
                uniquingKeysWith: { a, _ in a }
            ))
        self.interpreter = try NodeInterpreter(
            configuration: configuration,
            store: node.store,
            ladder: node.config.classifications,
            maxClockSkewMillis: node.config.maxClockSkewMillis,
            transport: transport,
            nowMillis: Self.nowMillis,
            random: .fromSystem(),
            logger: logger,
            verifier: verifier,
            envelopes: envelopes
        )
        let neighbours = Set(federation.neighbours.map(\.name))
        var pinned = [String: String]()
        for partner in federation.partners where neighbours.contains(partner.name) {
            pinned[partner.name] =
                interpreter.engine.containment.identities[partner.name]?.tlsFingerprint ?? partner.tlsFingerprint
        }
        let pins = PinTable(pinned)
        self.pins = pins
        interpreter.identityChanged = { name, identity in pins.pin(identity.tlsFingerprint, for: name) }
    }

    /// What the engine needs of the federation configuration.
    static func engineConfiguration(
        node: LocalNode,
        federation: FederationConfig,
        me: FederationConfig.Partner
    ) throws(LiaisonError) -> NodeEngine.Configuration {
        var partners = [NodeEngine.Partner]()
        for partner in federation.partners {
            guard let raw = Data(base64Encoded: partner.sealingKey),
                let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw)
            else {
                throw LiaisonError(
                    .corrupt, "federation.json has a malformed sealing key for \(partner.name); render it again")
            }
            partners.append(
                NodeEngine.Partner(
                    recipient: partner.recipient, relay: partner.relay, neighbours: Set(partner.neighbours),
                    sealingKey: key)
            )
        }
        let links = federation.neighbours.compactMap { neighbour in
            federation.partner(named: neighbour.name).map {
                ReplicationNeighbour(partner: $0.recipient, outbound: neighbour.outbound, inbound: neighbour.inbound)
            }
        }
        var configuration = NodeEngine.Configuration(
            me: me.recipient,
            partners: partners,
            links: links,
            isRelay: me.relay,
            channels: federation.channels,
            signingKey: node.identity.signingKey,
            sealingKey: node.identity.sealingKey
        )
        configuration.containment = federation.containment ?? .default
        configuration.federation = federation.federation
        configuration.revocation = federation.revocation
        return configuration
    }

    static var nowMillis: UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }

    // MARK: - Local writes

    /// Where a commit's ops came from, for the commit latency metric.
    public enum CommitSource: String, Sendable {
        /// A partner's batch (or sealed envelope).
        case partner
        /// A put here (one item or a bulk put).
        case local
    }

    /// Tells `observer` how long each commit took in the store and how many ops it held:
    /// partners' batches, and puts here. It observes only.
    public func observeCommits(
        _ observer: @escaping @Sendable (_ source: CommitSource, _ ops: Int, _ duration: Duration) -> Void
    ) {
        localCommitObserved = { observer(.local, $0, $1) }
        interpreter.commitObserved = { observer(.partner, $0, $1) }
    }

    /// Records an entry of this node's own in the custody log (the API's refusals).
    public func audit(_ event: CustodyEvent) throws(LiaisonError) {
        _ = try node.store.appendCustody(event, timeMillis: Int64(Self.nowMillis))
    }

    /// Creates an item here and pushes it to the sessions.
    public func put(_ request: PutRequest) throws(LiaisonError) -> (item: ItemState, op: VerifiedOp) {
        let started = ContinuousClock.now
        let result = try node.put(request, now: Date())
        localCommitObserved?(1, ContinuousClock.now - started)
        interpreter.committedLocally(stamps: [result.op.body.hlc], nowMillis: Self.nowMillis)
        return result
    }

    /// Creates many items here in one transaction (`LocalNode.putMany`) and pushes them to
    /// the sessions. Only reserving the stamps and the commit run on the engine's thread;
    /// checking the requests, making the creates and signing them run on the caller's.
    public nonisolated func putMany(
        _ requests: [PutRequest]
    ) async throws(LiaisonError) -> [(item: ItemState, op: VerifiedOp)] {
        guard !requests.isEmpty else { return [] }
        let now = Date()
        let stamps = try await reserveStamps(requests.count, now: now)
        let signed = try node.signedCreates(requests, stamps: stamps, now: now)
        return try await commitCreates(signed)
    }

    /// Stamps for a bulk put's creates; the interpreter's clock moves past them too.
    private func reserveStamps(_ count: Int, now: Date) throws(LiaisonError) -> [HLCTimestamp] {
        let stamps = try node.reserveStamps(count, now: now)
        if let last = stamps.last { interpreter.reserved(through: last, nowMillis: Self.nowMillis) }
        return stamps
    }

    /// Commits a bulk put's signed creates and pushes them to the sessions.
    private func commitCreates(_ signed: [VerifiedOp]) throws(LiaisonError) -> [(item: ItemState, op: VerifiedOp)] {
        let started = ContinuousClock.now
        let created = try node.commitCreates(signed, now: Date())
        localCommitObserved?(created.count, ContinuousClock.now - started)
        interpreter.committedLocally(stamps: created.map(\.op.body.hlc), nowMillis: Self.nowMillis)
        return created
    }

    /// Takes STIX objects in here (`LocalNode.importSTIX`) and pushes what it wrote to the
    /// sessions: in parts of at most `stixObjectsPerTurn` objects, one turn of the engine
    /// each, so that a large request does not hold the engine (its heartbeats, its links)
    /// for seconds. Every version of one object goes in the same part, with the request's
    /// marking definitions; the outcomes come back one per value, in order.
    public nonisolated func importSTIX(
        _ values: [JSONValue], collection: String, classification: String? = nil, releasableTo: [String]? = nil,
        fromFeed: Bool = false
    ) async throws(LiaisonError) -> [STIXOutcome] {
        let parts = STIXImport.parts(of: values, size: Self.stixObjectsPerTurn)
        // Every part carries the request's definitions: bounded, so that no part is mostly them.
        let shared = values.count { value in
            if case .object(let properties) = value { return properties["type"] == .string("marking-definition") }
            return false
        }
        guard shared <= Self.maxDefinitionsPerRequest else {
            throw LiaisonError(
                .invalidArgument,
                "the request carries \(shared) marking definitions; at most \(Self.maxDefinitionsPerRequest) are taken in one request (send the objects in smaller requests with the definitions they name)"
            )
        }
        var outcomes = [STIXOutcome?](repeating: nil, count: values.count)
        for (number, part) in parts.enumerated() {
            let taken: [STIXOutcome]
            do {
                taken = try await importSTIXPart(
                    part.map { values[$0] }, collection: collection, classification: classification,
                    releasableTo: releasableTo, fromFeed: fromFeed)
            } catch {
                // Parts before this one are written; this part's objects are refused with why
                // (and the parts after it are tried: each part is judged on its own).
                taken = part.map { index in
                    STIXOutcome(
                        id: values[index].stixID ?? "object \(index + 1)", version: nil,
                        status: .refused(STIXRefusal(.refused, "not written: \(error.message)")))
                }
            }
            for (position, index) in part.enumerated() where outcomes[index] == nil || number == 0 {
                outcomes[index] = taken[position]
            }
        }
        return outcomes.map { $0! }
    }

    /// The most marking definitions one STIX import takes (each part of it carries them).
    static let maxDefinitionsPerRequest = 1_000

    /// The most STIX objects one turn of the engine takes in (about 60 ms of work here).
    static let stixObjectsPerTurn = 100

    /// One part of a STIX import, in one turn of the engine.
    private func importSTIXPart(
        _ values: [JSONValue], collection: String, classification: String?, releasableTo: [String]?,
        fromFeed: Bool
    ) throws(LiaisonError) -> [STIXOutcome] {
        let started = ContinuousClock.now
        let (outcomes, ops) = try node.importSTIX(
            values, collection: collection, classification: classification, releasableTo: releasableTo,
            fromFeed: fromFeed, now: Date())
        if !ops.isEmpty {
            localCommitObserved?(ops.count, ContinuousClock.now - started)
            interpreter.committedLocally(stamps: ops.map(\.body.hlc), nowMillis: Self.nowMillis)
        }
        return outcomes
    }

    /// Changes an item here and pushes the change to the sessions.
    public func update(
        _ id: ItemID, fields: [(name: String, value: Data)], addTags: [String], removeTags: [String],
        withheld: [String: [String]] = [:]
    )
        throws(LiaisonError) -> ItemState
    {
        let result = try node.update(
            id, fields: fields, addTags: addTags, removeTags: removeTags, withheld: withheld, now: Date())
        interpreter.committedLocally(stamps: result.ops.map(\.body.hlc), nowMillis: Self.nowMillis)
        return result.item
    }

    /// Deletes an item here (originator only) and pushes the delete to the sessions.
    public func delete(_ id: ItemID) throws(LiaisonError) -> LifecycleResult {
        committed(try node.delete(id, now: Date()))
    }

    /// Changes an item's markings here (originator only), with the recall a narrowing
    /// signs, and pushes them to the sessions.
    public func changeMarkings(_ id: ItemID, _ request: MarkingsChangeRequest) throws(LiaisonError) -> LifecycleResult {
        committed(try node.changeMarkings(id, request, now: Date()))
    }

    /// Recalls an item (originator only) from `audience` (empty: everyone) and pushes the
    /// recall to the sessions.
    public func recall(_ id: ItemID, from audience: [String], reason: String) throws(LiaisonError) -> LifecycleResult {
        committed(try node.recall(id, from: audience, reason: reason, now: Date()))
    }

    private func committed(_ result: LifecycleResult) -> LifecycleResult {
        interpreter.committedLocally(stamps: result.ops.map(\.body.hlc), nowMillis: Self.nowMillis)
        return result
    }

    // MARK: - Channels (called by the sessions)

    /// A TLS channel to `peer` is up: registers its outgoing queue and starts its session.
    func connect(
        peer: String,
        endpoint: Int,
        address: String,
        outgoing: AsyncStream<DaemonTransport.Outgoing>.Continuation,
        heartbeats: HeartbeatRecord,
        close: @escaping @Sendable () -> Void
    ) -> ChannelID {
        nextChannel += 1
        let id = ChannelID(nextChannel)
        transport.register(id, outgoing)
        transport.registerCloser(id, close)
        transport.registerHeartbeats(id, heartbeats)
        interpreter.channelConnected(id, peer: peer, endpoint: endpoint, address: address, nowMillis: Self.nowMillis)
        return id
    }

    /// The transport, for the readers.
    nonisolated var frames: DaemonTransport { transport }

    /// A frame arrived on a channel at `atMillis`.
    func received(_ message: SyncMessage, bytes: Int, atMillis: UInt64, on id: ChannelID) {
        interpreter.handle(.frame(id, message, bytes: bytes, atMillis: atMillis), nowMillis: Self.nowMillis)
        // The reader waited for this frame's work (a commit can take seconds on a loaded
        // machine) and read nothing meanwhile: that time is not the peer's silence.
        transport.arrived(on: id, atMillis: Self.nowMillis)
    }

    /// A frame that does not decode arrived on a channel.
    func malformed(_ reason: String, bytes: Int, on id: ChannelID) {
        interpreter.handle(.malformedFrame(id, reason: reason, bytes: bytes), nowMillis: Self.nowMillis)
    }

    /// The transport lost a channel.
    func lost(_ id: ChannelID, error: String?) {
        interpreter.handle(.channelLost(id, error: error), nowMillis: Self.nowMillis)
        transport.unregister(id)
    }

    /// The node shuts down: every channel closes without counting as a failure.
    func shutdown() {
        interpreter.handle(.shutdown, nowMillis: Self.nowMillis)
    }

    /// Time passed: heartbeats, deadlines, failback, sealing, envelope retries.
    func tick() {
        for (id, queued) in transport.takeOverflowed() {
            interpreter.handle(.overflowed(id, queued: queued), nowMillis: Self.nowMillis)
        }
        takeHeartbeats()
        interpreter.handle(.tick(heard: transport.lastArrivals()), nowMillis: Self.nowMillis)
        readEverySecond()
    }

    /// Once a second, from one read of the log's end: the progress of long catch-ups, and
    /// memory given back after heavy work.
    private func readEverySecond() {
        let now = Self.nowMillis
        guard now >= nextCatchUpReading else { return }
        nextCatchUpReading = now + 1_000
        let stored = try? node.store.highestSequence()
        reportCatchUp(highest: stored ?? 0, nowMillis: now)
        // A failed read is no reading of the work.
        if let stored { releaseMemoryIfIdle(stored: stored) }
    }

    /// Logs the progress of long catch-ups (`CatchUpProgress`), every five seconds while one
    /// runs.
    private func reportCatchUp(highest: UInt64, nowMillis now: UInt64) {
        let readings = federation.neighbours.map { neighbour in
            let counters = interpreter.engine.counters[neighbour.name] ?? NodeEngine.LinkCounters()
            let lag = Self.lag(outbound: neighbour.outbound != nil, highest: highest, acked: counters.ackedThrough)
            return CatchUpProgress.Reading(peer: neighbour.name, lagOps: lag, received: counters.opsReceived)
        }
        for line in catchUp.lines(readings, nowMillis: now) {
            logger.info("\(line)", metadata: ["liaison.component": "catch-up"])
        }
    }

    /// Gives memory back once heavy work is over (`IdleMemoryRelease`). The work is the ops
    /// stored (the log's end: new ops received, put or imported); not a link's acknowledged
    /// sequence, which keeps moving for a while after a catch-up as the node reads past the
    /// echoes of what it received, nor duplicates received. Timed on the monotonic clock: a
    /// wall clock stepped forward would cut the quiet short.
    private func releaseMemoryIfIdle(stored: UInt64) {
        let uptimeMillis = DispatchTime.now().uptimeNanoseconds / 1_000_000
        guard idleMemory.reading(work: stored, nowMillis: uptimeMillis) else { return }
        let store = node.store
        let logger = logger
        // On a thread of its own, one release at a time: the store's release waits for the
        // reads and writes under way and holds new ones meanwhile, and the allocator walks its
        // heap; neither may hold the engine's thread or Swift's shared threads, which carry the
        // channels and the API.
        Self.memoryQueue.async {
            store.releaseCaches()
            _ = liaison_return_free_memory()
            logger.info("idle after heavy work: released the store's caches and returned free memory to the system")
        }
    }

    /// Where idle memory releases run (`IdleMemoryRelease`).
    private static let memoryQueue = DispatchQueue(label: "liaison.memory-release")

    /// Hands the engine the heartbeats the channels' keepalives answered or took since its
    /// last turn, in order, with the times they arrived: it measures round trips and judges
    /// floods on them. A session still waiting for its hello keeps them until it opens.
    private func takeHeartbeats() {
        for (id, record) in transport.heartbeatRecords() where interpreter.engine.isOpen(id) {
            for heartbeat in record.take() {
                interpreter.handle(
                    .frame(id, heartbeat.message, bytes: heartbeat.bytes, atMillis: heartbeat.atMillis),
                    nowMillis: Self.nowMillis)
            }
        }
    }

    /// Records a connection refused before it became a channel (failed handshake, unknown
    /// or wrong certificate).
    func refused(peer: String?, detail: String) {
        interpreter.handle(.connectionRefused(peer: peer, detail: detail), nowMillis: Self.nowMillis)
    }

    // MARK: - Containment (called by the API)

    /// Whether a partner is quarantined (its dialling pauses).
    func isQuarantined(_ peer: String) -> Bool { interpreter.engine.isQuarantined(peer) }

    /// Quarantines a partner from `sinceMillis` on; returns what the rebuild did.
    public func quarantine(_ peer: String, sinceMillis: UInt64, reason: String) throws(LiaisonError) -> RebuildResult {
        try federation.checkQuarantinable(peer)
        guard !interpreter.engine.containment.isRevoked(peer) else { throw LocalNode.revokedError(peer) }
        let report = interpreter.handle(
            .quarantine(peer: peer, sinceMillis: sinceMillis, reason: reason), nowMillis: Self.nowMillis)
        if let failure = report.failures.first { throw LiaisonError(.io, failure) }
        return report.rebuilds.first ?? RebuildResult()
    }

    /// Releases a quarantined partner; returns what the rebuild did.
    public func release(_ peer: String) throws(LiaisonError) -> RebuildResult {
        try federation.checkQuarantinable(peer)
        guard !interpreter.engine.containment.isRevoked(peer) else { throw LocalNode.revokedError(peer) }
        guard interpreter.engine.isQuarantined(peer) else {
            throw LiaisonError(.notFound, "\(peer) is not quarantined; 'liaison quarantines' lists who is")
        }
        let report = interpreter.handle(.release(peer: peer), nowMillis: Self.nowMillis)
        if let failure = report.failures.first { throw LiaisonError(.io, failure) }
        return report.rebuilds.first ?? RebuildResult()
    }

    /// Strikes and quarantines.
    public func containment() -> ContainmentState { interpreter.engine.containment }

    /// How long to wait before dialling again, with full jitter (the engine's seeded
    /// generator).
    func reconnectDelay(capMillis: UInt64) -> UInt64 {
        interpreter.reconnectDelay(capMillis: capMillis)
    }
}

/// The daemon's `PeerTransport`: one queue of outgoing frames per channel, written by the
/// channel's writer task. Registration and writes come from the engine's thread; the
/// writer tasks run on the cooperative pool.
final class DaemonTransport: PeerTransport, Sendable {
    /// What a channel's writer does next.
    enum Outgoing: Sendable {
        case frame(ByteBuffer)
        case close(String)
    }

    /// Most frames queued for one channel. A peer that reads what it asks for never has more
    /// than a window of batches and a few pings' answers waiting; past this it is not reading.
    static let maxQueuedFrames = 1_024

    private let queues = Mutex<[ChannelID: AsyncStream<Outgoing>.Continuation]>([:])
    private let overflowed = Mutex<[ChannelID: Int]>([:])
    private let closers = Mutex<[ChannelID: @Sendable () -> Void]>([:])
    private let arrivals = Mutex<[ChannelID: UInt64]>([:])
    private let heartbeats = Mutex<[ChannelID: HeartbeatRecord]>([:])

    /// A reader read a frame at `atMillis` (before handing it to the engine).
    func arrived(on id: ChannelID, atMillis: UInt64) {
        arrivals.withLock { $0[id] = max($0[id] ?? 0, atMillis) }
    }

    /// When a frame last arrived on each channel: read by its reader, or taken by its
    /// keepalive (which sees every frame as it comes off the socket).
    func lastArrivals() -> [ChannelID: UInt64] {
        var latest = arrivals.withLock { $0 }
        for (id, record) in heartbeatRecords() {
            latest[id] = max(latest[id] ?? 0, record.lastArrivalMillis)
        }
        return latest
    }

    /// The keepalive's record of a channel.
    func registerHeartbeats(_ id: ChannelID, _ record: HeartbeatRecord) {
        heartbeats.withLock { $0[id] = record }
    }

    /// Every registered channel's keepalive record, by channel.
    func heartbeatRecords() -> [(ChannelID, HeartbeatRecord)] {
        heartbeats.withLock { $0.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
    }

    func register(_ id: ChannelID, _ continuation: AsyncStream<Outgoing>.Continuation) {
        queues.withLock { $0[id] = continuation }
    }

    /// How to close a channel's socket at once (its queue may be full and its writer stuck).
    func registerCloser(_ id: ChannelID, _ close: @escaping @Sendable () -> Void) {
        closers.withLock { $0[id] = close }
    }

    /// Channels whose queue filled since the last call, with how many frames were queued.
    func takeOverflowed() -> [(ChannelID, Int)] {
        overflowed.withLock { current in
            defer { current = [:] }
            return current.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
    }

    func unregister(_ id: ChannelID) {
        queues.withLock { $0.removeValue(forKey: id) }?.finish()
        arrivals.withLock { _ = $0.removeValue(forKey: id) }
        heartbeats.withLock { _ = $0.removeValue(forKey: id) }
        closers.withLock { _ = $0.removeValue(forKey: id) }
    }

    func send(_ frame: ByteBuffer, on channel: ChannelID) {
        guard let continuation = queues.withLock({ $0[channel] }) else { return }
        if case .dropped = continuation.yield(.frame(frame)) {
            // The peer stopped reading: close the socket now (the writer is stuck behind
            // the full queue) and let the engine strike it on the next tick.
            queues.withLock { _ = $0.removeValue(forKey: channel) }
            overflowed.withLock { $0[channel] = Self.maxQueuedFrames }
            closers.withLock { $0.removeValue(forKey: channel) }?()
            continuation.finish()
        }
    }

    /// How long a closing channel's writer has to send what is queued (a goodbye) before the
    /// socket is closed regardless.
    static let closeGrace: Duration = .seconds(2)

    func close(_ channel: ChannelID, reason: String) {
        guard let continuation = queues.withLock({ $0.removeValue(forKey: channel) }) else { return }
        continuation.yield(.close(reason))
        continuation.finish()
        // The writer closes the socket after what is queued. A peer that stopped reading
        // keeps the writer stuck in a write, and the socket open with it (found by the
        // hostile drill's flood): close it regardless once the grace has passed. Closing a
        // closed channel does nothing.
        // A Dispatch timer, not a task: a busy cooperative pool must not delay it.
        if let closer = closers.withLock({ $0[channel] }) {
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(Int(Self.closeGrace.components.seconds))) {
                closer()
            }
        }
    }
}

/// Opens envelopes addressed to this node on the channels' readers (`EnvelopeOpener`), so
/// that the engine gets them opened and their ops verified: it decides what becomes of each
/// envelope, with the results computed here. An envelope the reader cannot open (or whose
/// sender it does not know under the keys it was given) goes to the engine as it came, which
/// judges it on its own thread as before.
///
/// An envelope is opened here once: a relay replaying one (the engine drops replays after
/// checking the header) must not make the reader open it and verify its ops again each time.
/// The envelopes opened are remembered by sender and id, at most `maxRemembered` (then
/// forgotten at once), so a replay older than that costs one more opening, as the engine's
/// own would.
final class SealedAhead: Sendable {
    let me: NodeID
    let sealingKey: Curve25519.KeyAgreement.PrivateKey
    let senders: [NodeID: Curve25519.KeyAgreement.PublicKey]
    let opener: EnvelopeOpener
    private let opened = Mutex(Set<Data>())
    static let maxRemembered = 4_096

    init(
        me: NodeID, sealingKey: Curve25519.KeyAgreement.PrivateKey, opener: EnvelopeOpener,
        senders: [NodeID: Curve25519.KeyAgreement.PublicKey]
    ) {
        self.me = me
        self.sealingKey = sealingKey
        self.opener = opener
        self.senders = senders
    }

    /// Opens `bytes` into the opener, if it is an envelope for this node from a known sender
    /// not opened here before, and verifies its ops into `verifier`. Anything else is left alone.
    func verifyAhead(_ bytes: Data, with verifier: OpVerifier) {
        let ops = opener.openAhead(
            bytes, me: me, sealingKey: sealingKey, senderKey: { senders[$0] },
            isNew: { envelope in
                let key = NodeEngine.openedKey(envelope.header)
                return opened.withLock { opened in
                    if opened.count >= Self.maxRemembered { opened.removeAll(keepingCapacity: true) }
                    return opened.insert(key).inserted
                }
            })
        guard let ops else { return }
        verifier.verifyAhead(ops)
    }
}
