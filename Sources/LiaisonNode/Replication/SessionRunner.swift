import Foundation
import LiaisonCore
import LiaisonTransport
import LiaisonWire
import Logging
import NIOCore
import Synchronization

/// Carries one TLS channel for the engine: a reader that decodes frames and hands them to
/// the engine with the time they arrived, and a writer that writes what the engine queued
/// and closes the channel when the engine says so. The channel's keepalive answers the
/// peer's pings at once and keeps heartbeats out of the reader (`ChannelKeepalive`); the
/// engine takes them on its next tick. Every decision — hello, heartbeat deadlines and
/// floods, batches, acks, carrying, sealed traffic — is the engine's.
enum SessionRunner {
    /// A frame for the engine.
    enum Inbound: Sendable {
        case message(SyncMessage, bytes: Int, atMillis: UInt64)
        case malformed(String, bytes: Int)
    }

    /// Most frames the reader queues for the engine ahead of the one it is handling.
    static let maxAhead = 2

    /// Runs until the channel closes. `endpoint` is the index of the listening side's
    /// endpoint the channel reaches. Returns how long the channel lived.
    static func run(
        connection: PeerConnection,
        peer: FederationConfig.Partner,
        endpoint: Int,
        engine: ReplicationEngine,
        logger: Logger
    ) async -> Duration {
        let started = ContinuousClock.now
        let (outgoing, continuation) = AsyncStream<DaemonTransport.Outgoing>.makeStream(
            bufferingPolicy: .bufferingOldest(DaemonTransport.maxQueuedFrames))
        let channel = connection.channel
        let id = await engine.connect(
            peer: peer.name, endpoint: endpoint, address: connection.remoteAddress, outgoing: continuation,
            heartbeats: connection.heartbeats, close: { channel.close(promise: nil) })
        let lostError = LostError()
        // The reader hands decoded frames to the engine through this queue, in order, and
        // verifies each batch's ops (and those of each envelope for this node) before
        // queueing it: while the engine commits one batch,
        // the reader verifies the next on another core. At most `maxAhead` frames wait, so a
        // peer cannot make the node hold more than that (and NIO's buffer) in memory.
        let (inbox, queued) = AsyncStream<Inbound>.makeStream()
        let (room, roomSignal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let waiting = QueuedFrames()
        let verifier = engine.verifier
        let sealedAhead = engine.sealedAhead
        do {
            try await connection.io.executeThenClose { inbound, outbound in
                await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await item in outgoing {
                            switch item {
                            case .frame(let frame):
                                try await outbound.write(frame)
                            case .close:
                                // Closing the socket also ends the reader below.
                                try? await connection.channel.close()
                                return
                            }
                        }
                    }
                    group.addTask {
                        var roomLeft = room.makeAsyncIterator()
                        do {
                            for try await frame in inbound {
                                let at = ReplicationEngine.nowMillis
                                let size = frame.readableBytes + 4
                                engine.frames.arrived(on: id, atMillis: at)
                                let item: Inbound
                                do {
                                    let message = try SyncFrameCodec.decode(frame)
                                    switch message {
                                    case .batch(let ops, _), .batchPart(let ops, _, _): verifier.verifyAhead(ops)
                                    case .envelope(let bytes): sealedAhead.verifyAhead(bytes, with: verifier)
                                    default: break
                                    }
                                    item = .message(message, bytes: size, atMillis: at)
                                } catch {
                                    item = .malformed("\(error)", bytes: size)
                                }
                                while waiting.count >= Self.maxAhead {
                                    guard await roomLeft.next() != nil else { break }
                                }
                                waiting.add(1)
                                queued.yield(item)
                            }
                        } catch {
                            lostError.set("\(error)")
                            // What the peer sent broke the channel (a frame over the size limit, a
                            // bad TLS record): a protocol violation, struck and audited like a frame
                            // that does not decode. Network faults are nobody's doing, and neither
                            // is our own shutdown cancelling the reader.
                            if !TLSTransport.isNetworkFault(error) && !(error is CancellationError) && !Task.isCancelled
                            {
                                queued.yield(.malformed("channel error: \(error)", bytes: 0))
                            }
                        }
                        queued.finish()
                    }
                    // What the reader queued goes to the engine in order, until the reader ends.
                    for await item in inbox {
                        switch item {
                        case .message(let message, let bytes, let at):
                            await engine.received(message, bytes: bytes, atMillis: at, on: id)
                        case .malformed(let reason, let bytes):
                            await engine.malformed(reason, bytes: bytes, on: id)
                        }
                        waiting.add(-1)
                        roomSignal.yield()
                    }
                    roomSignal.finish()
                    group.cancelAll()
                }
            }
        } catch {
            lostError.setIfNone("\(error)")
        }
        if Task.isCancelled {
            await engine.shutdown()
        }
        await engine.lost(id, error: Task.isCancelled ? nil : lostError.value)
        logger.debug("channel ended", metadata: ["liaison.partner": "\(peer.name)", "liaison.endpoint": "\(endpoint)"])
        return ContinuousClock.now - started
    }
}

/// How many frames a channel's reader has queued for the engine.
private final class QueuedFrames: Sendable {
    private let state = Mutex(0)
    var count: Int { state.withLock { $0 } }
    func add(_ delta: Int) { state.withLock { $0 += delta } }
}

/// Why a channel ended, as its reader saw it.
private final class LostError: Sendable {
    private let state = Mutex<String?>(nil)
    var value: String? { state.withLock { $0 } }
    func set(_ error: String) { state.withLock { $0 = error } }
    func setIfNone(_ error: String) { state.withLock { $0 = $0 ?? error } }
}
