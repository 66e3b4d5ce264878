import Foundation
import LiaisonCore
import LiaisonTransport
import LiaisonWire
import Logging
import NIOCore

/// Carries one TLS channel for the engine: a reader that decodes frames and hands them to
/// the engine with the time they arrived, and a writer that writes what the engine queued
/// and closes the channel when the engine says so. The channel's keepalive answers the
/// peer's pings at once and keeps heartbeats out of the reader (`ChannelKeepalive`); the
/// engine takes them on its next tick. Every decision — hello, heartbeat deadlines and
/// floods, batches, acks, carrying, sealed traffic — is the engine's.
enum SessionRunner {
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
        var lostError: String?
        do {
            try await connection.io.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: Void.self) { group in
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
                    do {
                        for try await frame in inbound {
                            let at = ReplicationEngine.nowMillis
                            let size = frame.readableBytes + 4
                            engine.frames.arrived(on: id, atMillis: at)
                            do {
                                let message = try SyncFrameCodec.decode(frame)
                                await engine.received(message, bytes: size, atMillis: at, on: id)
                            } catch {
                                await engine.malformed("\(error)", bytes: size, on: id)
                            }
                        }
                    } catch {
                        lostError = "\(error)"
                        // What the peer sent broke the channel (a frame over the size limit, a
                        // bad TLS record): a protocol violation, struck and audited like a frame
                        // that does not decode. Network faults are nobody's doing, and neither
                        // is our own shutdown cancelling the reader.
                        if !TLSTransport.isNetworkFault(error) && !(error is CancellationError) && !Task.isCancelled {
                            await engine.malformed("channel error: \(error)", bytes: 0, on: id)
                        }
                    }
                    group.cancelAll()
                }
            }
        } catch {
            lostError = lostError ?? "\(error)"
        }
        if Task.isCancelled {
            await engine.shutdown()
        }
        await engine.lost(id, error: Task.isCancelled ? nil : lostError)
        logger.debug("channel ended", metadata: ["liaison.partner": "\(peer.name)", "liaison.endpoint": "\(endpoint)"])
        return ContinuousClock.now - started
    }
}
