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

    /// Creates the service.
    public init(engine: ReplicationEngine, identity: NodeIdentity, federation: FederationConfig, logger: Logger) {
        self.engine = engine
        self.federation = federation
        let neighbours = Set(federation.neighbours.map(\.name))
        self.tls = PinnedTLS(
            certificatePEM: identity.tlsCertificatePEM,
            privateKeyPEM: identity.tlsKeyPEM,
            pins: Set(federation.partners.filter { neighbours.contains($0.name) }.map(\.tlsFingerprint))
        )
        self.logger = logger
    }

    public func run() async throws {
        let listener = try await PeerTransport.listen(host: federation.listen.host, port: federation.listen.port, tls: tls)
        logger.info("listening for peers", metadata: ["liaison.address": "\(federation.listen)"])
        // On graceful shutdown (SIGTERM, SIGINT) every dial loop and session is cancelled:
        // channels close, nothing half-committed is acknowledged.
        try await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                for neighbour in federation.neighbours where neighbour.dial {
                    guard let peer = federation.partner(named: neighbour.name) else { continue }
                    group.addTask { await dialLoop(peer) }
                }
                try await listener.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { await accept(connection) }
                    }
                }
            }
        }
        logger.info("replication stopped")
    }

    private func accept(_ connection: PeerConnection) async {
        let fingerprint: String
        do {
            fingerprint = try await connection.peerFingerprint()
        } catch {
            await engine.refused(peer: nil, detail: "TLS handshake from \(connection.remoteAddress) failed: \(error)")
            await connection.reject()
            return
        }
        guard let peer = federation.partners.first(where: { $0.tlsFingerprint == fingerprint }),
            federation.neighbours.contains(where: { $0.name == peer.name })
        else {
            await engine.refused(peer: nil, detail: "certificate \(fingerprint.prefix(16)) from \(connection.remoteAddress) is no neighbour's")
            await connection.reject()
            return
        }
        _ = await SessionRunner.run(connection: connection, peer: peer, engine: engine, logger: logger)
    }

    /// Dials a neighbour's endpoints in order until one answers; after a channel ends, dials
    /// again with exponential backoff (100 ms to 5 s, full jitter), reset after a session
    /// that stayed open.
    private func dialLoop(_ peer: FederationConfig.Partner) async {
        var backoffMillis: UInt64 = 100
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            var connected = false
            for endpoint in peer.endpoints {
                do {
                    let connection = try await PeerTransport.dial(host: endpoint.host, port: endpoint.port, tls: tls)
                    let fingerprint = try await connection.peerFingerprint()
                    guard fingerprint == peer.tlsFingerprint else {
                        await engine.refused(peer: peer.name, detail: "\(endpoint) presented certificate \(fingerprint.prefix(16)), not \(peer.name)'s")
                        await connection.reject()
                        continue
                    }
                    connected = true
                    let open = await SessionRunner.run(connection: connection, peer: peer, engine: engine, logger: logger)
                    if open > .seconds(2) { backoffMillis = 100 }
                    break
                } catch {
                    logger.debug("dial failed", metadata: ["liaison.partner": "\(peer.name)", "liaison.address": "\(endpoint)", "liaison.error": "\(error)"])
                }
            }
            let wait = UInt64.random(in: 0...backoffMillis)
            backoffMillis = min(backoffMillis * 2, connected ? 1_000 : 5_000)
            try? await Task.sleep(for: .milliseconds(wait))
        }
    }
}
