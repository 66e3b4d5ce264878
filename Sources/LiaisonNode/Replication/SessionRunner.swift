import Foundation
import LiaisonCore
import LiaisonTransport
import LiaisonWire
import Logging
import NIOCore
import Synchronization

/// When a channel's reader last saw a frame (shared with the watchdog).
final class LastFrame: Sendable {
    let time = Mutex(ContinuousClock.now)
}

/// What wakes a session loop. Frames and ticks carry the time they happened, so a loop
/// that was busy (committing a batch) judges silence by when frames arrived, not by when it
/// got round to them.
enum SessionEvent: Sendable {
    /// A decoded frame; `answered` when the reader already sent the pong for a ping.
    case message(SyncMessage, bytes: Int, atMillis: UInt64, answered: Bool)
    case malformed(String, bytes: Int, atMillis: UInt64)
    case inboundEnded(String?)
    case tick(atMillis: UInt64)
    case logGrew(UInt64)
    case replaced
    /// The engine chose whether this channel carries our log.
    case carrying(Bool, resumeAfter: UInt64)
    /// A sealed envelope or receipt to write on this channel.
    case outOfBand(SyncMessage)
}

/// Runs one channel with a peer: feeds frames, ticks and log growth into the pure
/// `LinkSessionStateMachine` and carries out its actions through the engine. A channel
/// starts as a standby; the engine tells it when it carries the link.
enum SessionRunner {
    /// Runs until the channel closes. `endpoint` is the index of the listening side's
    /// endpoint the channel reaches. Returns how long the session stayed open.
    static func run(
        connection: PeerConnection,
        peer: FederationConfig.Partner,
        endpoint: Int,
        engine: ReplicationEngine,
        logger: Logger,
        tickInterval: Duration = .milliseconds(50)
    ) async -> Duration {
        let started = ContinuousClock.now
        var openedAt: ContinuousClock.Instant?
        let (events, continuation) = AsyncStream<SessionEvent>.makeStream()
        let token = await engine.register(peer: peer.name, endpoint: endpoint, address: connection.remoteAddress, continuation: continuation)
        var closeReason: String?
        var failed = true
        let lastFrame = LastFrame()
        // Well past the heartbeat deadline: it only has to unblock a stuck loop, and a large
        // frame on a slow path must not trip it.
        let watchdog = Duration.milliseconds(Int64(engine.federation.channels.deadAfterMillis) * 3) + tickInterval * 4
        do {
            let start = try await engine.sessionStart(peer: peer.name)
            var machine = LinkSessionStateMachine(
                local: engine.node.config.nodeID,
                peer: peer.nodeID,
                checkpoint: start.checkpoint,
                localHighest: start.highest,
                nowMillis: ReplicationEngine.nowMillis,
                carrying: false,
                configuration: LinkSessionStateMachine.Configuration(channels: engine.federation.channels)
            )
            try await connection.io.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        do {
                            for try await frame in inbound {
                                let at = ReplicationEngine.nowMillis
                                let size = frame.readableBytes + 4
                                lastFrame.time.withLock { $0 = ContinuousClock.now }
                                let message: SyncMessage
                                do {
                                    message = try SyncFrameCodec.decode(frame)
                                } catch {
                                    continuation.yield(.malformed("\(error)", bytes: size, atMillis: at))
                                    continue
                                }
                                // Pings are answered here, at once: a session loop busy
                                // committing a long batch must not look dead to its peer.
                                var answered = false
                                if case .ping(let nonce) = message {
                                    let pong = try SyncFrameCodec.encode(.pong(nonce: nonce))
                                    try await outbound.write(pong)
                                    answered = true
                                }
                                continuation.yield(.message(message, bytes: size, atMillis: at, answered: answered))
                            }
                            continuation.yield(.inboundEnded(nil))
                        } catch {
                            continuation.yield(.inboundEnded("\(error)"))
                        }
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            try await Task.sleep(for: tickInterval)
                            continuation.yield(.tick(atMillis: ReplicationEngine.nowMillis))
                            // Watchdog: the session loop declares a silent channel dead on a
                            // tick, but a loop stuck in a write to a path that takes no more
                            // bytes never sees the tick. Closing the socket unblocks it.
                            if ContinuousClock.now - lastFrame.time.withLock({ $0 }) > watchdog {
                                continuation.yield(.inboundEnded("no frame for \(watchdog), closed by the watchdog"))
                                connection.channel.close(promise: nil)
                                return
                            }
                        }
                    }
                    var iterator = events.makeAsyncIterator()
                    var queue = machine.start(hlc: start.hlc)
                    loop: while true {
                        while !queue.isEmpty {
                            let action = queue.removeFirst()
                            switch action {
                            case .send(let message):
                                let frame = try SyncFrameCodec.encode(message)
                                await engine.sentBytes(peer: peer.name, bytes: frame.readableBytes + 4)
                                try await outbound.write(frame)
                            case .loadBatch(let after, let limit):
                                let batch = try await engine.loadBatch(for: peer.name, after: after, limit: limit)
                                queue += machine.batchReady(ops: batch.ops, throughSeq: batch.throughSeq)
                            case .commit(let ops, let through):
                                _ = try await engine.receive(ops: ops, through: through, from: peer.name)
                                queue += machine.committed(throughSeq: through)
                            case .acknowledged(let through):
                                await engine.acknowledged(peer: peer.name, through: through)
                            case .opened(let peerHLC):
                                openedAt = .now
                                let decision = await engine.opened(peer: peer.name, token: token, peerHLC: peerHLC)
                                queue += machine.setCarrying(decision.carrying, resumeAfter: decision.resumeAfter)
                                logger.info(
                                    "channel up",
                                    metadata: [
                                        "liaison.partner": "\(peer.name)", "liaison.channel": "\(connection.remoteAddress)",
                                        "liaison.endpoint": "\(endpoint)", "liaison.carrying": "\(decision.carrying)",
                                    ]
                                )
                            case .sealedTraffic(let message):
                                await engine.sealedTraffic(message, from: peer.name)
                            case .close(let reason):
                                closeReason = reason.description
                                if case .protocolViolation = reason {
                                    await engine.refused(peer: peer.name, detail: reason.description)
                                }
                                break loop
                            }
                        }
                        guard let event = await iterator.next() else { break loop }
                        switch event {
                        case .message(let message, let size, let at, let answered):
                            queue = machine.received(message, nowMillis: at)
                            if answered {
                                queue.removeAll {
                                    if case .send(.pong) = $0 { return true }
                                    return false
                                }
                            }
                            await engine.heard(peer: peer.name, token: token, bytes: size, rttMillis: machine.rttMillis)
                        case .malformed(let why, let size, _):
                            queue = machine.fail(.protocolViolation("malformed frame: \(why)"))
                            await engine.heard(peer: peer.name, token: token, bytes: size, rttMillis: machine.rttMillis)
                        case .inboundEnded(let error):
                            if let error, !machine.isClosed {
                                closeReason = "channel error: \(error)"
                                await engine.refused(peer: peer.name, detail: "channel error: \(error)")
                            }
                            break loop
                        case .tick(let at):
                            queue = machine.tick(nowMillis: at)
                        case .logGrew(let highest):
                            queue = machine.logGrew(to: highest)
                        case .replaced:
                            closeReason = "replaced by a newer channel"
                            failed = false
                            break loop
                        case .carrying(let on, let resumeAfter):
                            queue = machine.setCarrying(on, resumeAfter: resumeAfter)
                        case .outOfBand(let message):
                            queue = machine.outOfBand(message)
                        }
                    }
                    // Leave the link at once: closing a TLS channel may wait for the peer's
                    // close_notify, which a dead path never sends, and the link must move to
                    // another channel now, not after the teardown.
                    await engine.unregister(peer: peer.name, token: token, reason: closeReason, failed: failed && !Task.isCancelled)
                    group.cancelAll()
                }
            }
        } catch {
            closeReason = closeReason ?? "\(error)"
        }
        if Task.isCancelled { failed = false }
        await engine.unregister(peer: peer.name, token: token, reason: closeReason, failed: failed)
        logger.info(
            "channel down",
            metadata: ["liaison.partner": "\(peer.name)", "liaison.endpoint": "\(endpoint)", "liaison.reason": "\(closeReason ?? "closed")"]
        )
        guard let openedAt else { return .zero }
        return ContinuousClock.now - max(openedAt, started)
    }
}
