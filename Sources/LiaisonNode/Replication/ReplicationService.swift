import Foundation
import LiaisonCore
import LiaisonTransport
public import Logging
import NIOCore
public import ServiceLifecycle

/// Listens for and dials the node's neighbours over pinned mutual TLS and runs a session on
/// each channel, until graceful shutdown.
public struct ReplicationService: Service {
    let engine: ReplicationEngine
    let federation: FederationConfig
    let tls: PinnedTLS
    let logger: Logger
    /// Connections open per remote address: a connect loop holds at most this many sockets.
    let perAddress = ConnectionLimiter(limit: ReplicationService.maxConnectionsPerAddress)

    /// Most connections accepted at once from one address (a partner's channels to every
    /// endpoint, from every endpoint of its own, fit well within it).
    public static let maxConnectionsPerAddress = 64

    /// Creates the service.
    public init(engine: ReplicationEngine, identity: NodeIdentity, federation: FederationConfig, logger: Logger) {
        self.engine = engine
        self.federation = federation
        // The engine's pins: rendered, with re-admitted partners' new certificates.
        self.tls = PinnedTLS(
            certificatePEM: identity.tlsCertificatePEM, privateKeyPEM: identity.tlsKeyPEM, table: engine.pins)
        self.logger = logger
    }

    public func run() async throws {
        var bound = [(index: Int, listener: NIOAsyncChannel<PeerConnection, Never>)]()
        for (index, endpoint) in federation.listen.enumerated() {
            bound.append((index, try await TLSTransport.listen(host: endpoint.host, port: endpoint.port, tls: tls)))
            logger.info(
                "listening for peers", metadata: ["liaison.address": "\(endpoint)", "liaison.endpoint": "\(index)"])
        }
        let listeners = bound
        // On graceful shutdown (SIGTERM, SIGINT) every dial loop and session is cancelled:
        // channels close, nothing half-committed is acknowledged. A listener is closed rather
        // than cancelled: the connections it accepted and not yet handed out still come out of
        // it and are closed, as NIO requires of every accepted channel (dropping them from a
        // cancelled iteration traps the process: swift-nio #2637, #3481).
        try await withThrowingDiscardingTaskGroup { outer in
            outer.addTask {
                try await cancelWhenGracefulShutdown {
                    try await withThrowingDiscardingTaskGroup { group in
                        for neighbour in federation.neighbours where neighbour.dial {
                            guard let peer = federation.partner(named: neighbour.name) else { continue }
                            for index in peer.endpoints.indices {
                                group.addTask { await dialLoop(peer, endpoint: index) }
                            }
                        }
                        group.addTask {
                            // The engine's clock: heartbeats and their deadlines, failback, sealed
                            // relaying and envelope retries are all judged on this beat.
                            while !Task.isCancelled {
                                try await Task.sleep(for: .milliseconds(50))
                                await engine.tick()
                            }
                        }
                    }
                }
            }
            for (index, listener) in listeners {
                outer.addTask {
                    do {
                        try await withGracefulShutdownHandler {
                            try await listener.executeThenClose { connections in
                                try await withThrowingDiscardingTaskGroup { sessions in
                                    for try await connection in connections {
                                        guard !Task.isShuttingDownGracefully else {
                                            sessions.addTask { await connection.reject() }
                                            continue
                                        }
                                        sessions.addTask {
                                            await cancelWhenGracefulShutdown {
                                                await accept(connection, endpoint: index)
                                            }
                                        }
                                    }
                                }
                            }
                        } onGracefulShutdown: {
                            listener.channel.close(promise: nil)
                        }
                    } catch  where Task.isShuttingDownGracefully {
                        // The listener's channel closed under its iteration: the shutdown.
                    }
                }
            }
        }
        logger.info("replication stopped")
    }

    private func accept(_ connection: PeerConnection, endpoint: Int) async {
        let address = connection.channel.remoteAddress?.ipAddress ?? "unknown"
        guard perAddress.enter(address) else {
            await engine.refused(
                peer: nil,
                detail: "\(address) already holds \(perAddress.limit) connections; one more refused")
            await connection.reject()
            return
        }
        defer { perAddress.leave(address) }
        let fingerprint: String
        do {
            fingerprint = try await connection.peerFingerprint()
        } catch {
            await engine.refused(peer: nil, detail: "TLS handshake from \(connection.remoteAddress) failed: \(error)")
            await connection.reject()
            return
        }
        guard let name = tls.table.partner(withFingerprint: fingerprint), let peer = federation.partner(named: name),
            federation.neighbours.contains(where: { $0.name == peer.name })
        else {
            await engine.refused(
                peer: nil,
                detail: "certificate \(fingerprint.prefix(16)) from \(connection.remoteAddress) is no neighbour's")
            await connection.reject()
            return
        }
        _ = await SessionRunner.run(
            connection: connection, peer: peer, endpoint: endpoint, engine: engine, logger: logger)
    }

    /// Keeps one channel to one of a neighbour's endpoints: dials it; after the channel ends,
    /// dials again with exponential backoff (100 ms to 5 s, full jitter), reset after a
    /// session that stayed open. Each endpoint has its own loop, so a backup channel is
    /// already connected when the primary dies.
    private func dialLoop(_ peer: FederationConfig.Partner, endpoint index: Int) async {
        let endpoint = peer.endpoints[index]
        var backoffMillis: UInt64 = 100
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            // A quarantined partner is not dialled (the engine would close the channel).
            if await engine.isQuarantined(peer.name) {
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            var connected = false
            do {
                let connection = try await TLSTransport.dial(host: endpoint.host, port: endpoint.port, tls: tls)
                let fingerprint: String
                do {
                    fingerprint = try await connection.peerFingerprint()
                } catch {
                    // Closed before the handshake finished (peer down, a firewall, a cut
                    // path): close our side too before trying again.
                    await connection.reject()
                    throw error
                }
                if fingerprint == tls.table.fingerprint(of: peer.name) {
                    connected = true
                    let open = await SessionRunner.run(
                        connection: connection, peer: peer, endpoint: index, engine: engine, logger: logger)
                    if open > .seconds(2) { backoffMillis = 100 }
                } else {
                    await engine.refused(
                        peer: peer.name,
                        detail: "\(endpoint) presented certificate \(fingerprint.prefix(16)), not \(peer.name)'s")
                    await connection.reject()
                }
            } catch {
                logger.debug(
                    "dial failed",
                    metadata: [
                        "liaison.partner": "\(peer.name)", "liaison.address": "\(endpoint)",
                        "liaison.error": "\(error)",
                    ])
            }
            let wait = await engine.reconnectDelay(capMillis: backoffMillis)
            backoffMillis = min(backoffMillis * 2, connected ? 1_000 : 5_000)
            try? await Task.sleep(for: .milliseconds(wait))
        }
    }
}
