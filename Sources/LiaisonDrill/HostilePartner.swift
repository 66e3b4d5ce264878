import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonStore
import LiaisonTransport
import NIOCore
import Synchronization

/// A partner that turned hostile, played by the drill process with the partner's own, valid
/// keys and certificate (read from its node directory after its node stopped). Like the node
/// it replaces, it listens on the partner's endpoints and dials the neighbours the partner
/// dials, over pinned mutual TLS; honest nodes cannot tell it from the partner until it
/// misbehaves. What it sends is up to the attacks (`HostileDrill`); by itself it only says
/// hello, answers heartbeats and acknowledges what it is sent.
final class HostilePartner: Sendable {
    /// The partner's name.
    let name: String
    /// Its node directory, opened after its node stopped: keys, store, federation.
    let node: LocalNode
    /// Its `federation.json`.
    let federation: FederationConfig
    private let tls: PinnedTLS
    private let state = Mutex(State())

    struct State {
        var nextChannel = 0
        var channels: [HostileChannel] = []
        var listeners: [NIOAsyncChannel<PeerConnection, Never>] = []
        /// Per neighbour: the highest `through_seq` of our batches so far.
        var through: [String: UInt64] = [:]
        /// Per neighbour: how far we acknowledged its log (the checkpoint our hellos give).
        var checkpoints: [String: UInt64] = [:]
        /// Connections that ended before or right after the hello, by neighbour.
        var refused: [String: Int] = [:]
        var stopped = false
        var errors: [String] = []
    }

    /// Takes over the partner whose node directory is `directory`; its node must have stopped.
    init(directory: NodeDirectory) throws(LiaisonError) {
        let node = try LocalNode.open(directory)
        guard let federation = node.federation else {
            throw LiaisonError(.notFound, "\(directory.url.path) has no federation.json; it is no partner")
        }
        self.node = node
        self.name = node.config.name
        self.federation = federation
        let neighbours = Set(federation.neighbours.map(\.name))
        self.tls = PinnedTLS(
            certificatePEM: node.identity.tlsCertificatePEM,
            privateKeyPEM: node.identity.tlsKeyPEM,
            pins: Set(federation.partners.filter { neighbours.contains($0.name) }.map(\.tlsFingerprint))
        )
        var checkpoints = [String: UInt64]()
        for neighbour in federation.neighbours {
            checkpoints[neighbour.name] = try node.store.checkpoint(
                link: ReplicationStore.receivedLink(neighbour.name))
        }
        state.withLock { $0.checkpoints = checkpoints }
    }

    /// The honest neighbours, by name.
    var neighbours: [String] { federation.neighbours.map(\.name).sorted() }

    /// Binds the partner's endpoints (its node must have let them go). `FreePort` picks ports
    /// below the kernel's ephemeral range, so no outgoing connection takes one as its source
    /// port between the node's exit and this bind (seen under a full test run when ports came
    /// from that range); a port still in use is tried again for up to five seconds.
    func listen() async throws(LiaisonError) {
        for endpoint in federation.listen {
            let deadline = ContinuousClock.now + .seconds(5)
            while true {
                do {
                    let listener = try await TLSTransport.listen(host: endpoint.host, port: endpoint.port, tls: tls)
                    state.withLock { $0.listeners.append(listener) }
                    break
                } catch {
                    guard ContinuousClock.now < deadline else {
                        throw LiaisonError(.io, "the hostile \(name) cannot listen on \(endpoint)", cause: error)
                    }
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
        }
    }

    /// Serves the listeners bound by `listen` and dials the neighbours the partner dials, each
    /// endpoint in its own loop, until `stop`.
    func run() async {
        let listeners = state.withLock { $0.listeners }
        await withDiscardingTaskGroup { group in
            for (index, listener) in listeners.enumerated() {
                group.addTask {
                    try? await listener.executeThenClose { connections in
                        try await withThrowingDiscardingTaskGroup { sessions in
                            for try await connection in connections {
                                sessions.addTask { await self.serve(connection, endpoint: index) }
                            }
                        }
                    }
                }
            }
            for neighbour in federation.neighbours where neighbour.dial {
                guard let peer = federation.partner(named: neighbour.name) else { continue }
                for index in peer.endpoints.indices {
                    group.addTask { await self.dialLoop(peer, endpoint: index) }
                }
            }
        }
    }

    /// Stops listening and dialling and closes every channel.
    func stop() {
        let (listeners, channels) = state.withLock { state in
            state.stopped = true
            return (state.listeners, state.channels)
        }
        for listener in listeners { listener.channel.close(promise: nil) }
        for channel in channels { channel.close() }
    }

    /// The newest open channel to `peer`.
    func channel(to peer: String) -> HostileChannel? {
        state.withLock { $0.channels.last { $0.peer == peer && $0.isOpen } }
    }

    /// Every channel to `peer` that is open.
    func openChannels(to peer: String) -> [HostileChannel] {
        state.withLock { $0.channels.filter { $0.peer == peer && $0.isOpen } }
    }

    /// Waits until a channel to `peer` is open; nil at the deadline.
    func waitForChannel(to peer: String, timeout: Duration) async -> HostileChannel? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let channel = channel(to: peer) { return channel }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return channel(to: peer)
    }

    /// The next `through_seq` for a batch to `peer`: above anything it holds of our log.
    func nextThrough(to peer: String, after floor: UInt64) -> UInt64 {
        state.withLock { state in
            let next = max(state.through[peer] ?? 0, floor) + 1
            state.through[peer] = next
            return next
        }
    }

    /// Dials `peer` once, outside the channels the attacks use, and reports whether it said
    /// hello within 3 s (a node that quarantined the partner closes the channel first).
    func probe(_ peer: String) async -> Bool {
        guard let record = federation.partner(named: peer), let endpoint = record.endpoints.first,
            let connection = try? await TLSTransport.dial(host: endpoint.host, port: endpoint.port, tls: tls)
        else { return false }
        guard (try? await connection.peerFingerprint()) == record.tlsFingerprint else {
            await connection.reject()
            return false
        }
        let channel = HostileChannel(id: 0, peer: peer, endpoint: 0, dialled: true, channel: connection.channel)
        let hello = SyncHello(
            nodeID: node.config.nodeID,
            hlc: HLCTimestamp(physicalMillis: UInt64(Date().timeIntervalSince1970 * 1000), logical: 0),
            checkpoint: state.withLock { $0.checkpoints[peer] ?? 0 }
        )
        return await withTaskGroup(of: Void.self) { group in
            group.addTask { await channel.run(connection, hello: hello) }
            let deadline = ContinuousClock.now + .seconds(3)
            var answered = false
            while ContinuousClock.now < deadline {
                if channel.snapshot.hello != nil {
                    answered = true
                    break
                }
                if channel.isClosed { break }
                try? await Task.sleep(for: .milliseconds(20))
            }
            channel.close()
            await group.waitForAll()
            return answered
        }
    }

    /// Connections to `peer` that ended before its hello came (refused, or closed at once).
    func refusedConnections(from peer: String) -> Int { state.withLock { $0.refused[peer] ?? 0 } }

    /// Problems of the transport itself (binding, dialling), for the report.
    var errors: [String] { state.withLock { $0.errors } }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    // MARK: - Channels

    private func serve(_ connection: PeerConnection, endpoint: Int) async {
        guard !isStopped, let fingerprint = try? await connection.peerFingerprint(),
            let peer = federation.partners.first(where: { $0.tlsFingerprint == fingerprint }),
            federation.neighbours.contains(where: { $0.name == peer.name })
        else {
            await connection.reject()
            return
        }
        await session(connection, peer: peer.name, endpoint: endpoint, dialled: false)
    }

    private func dialLoop(_ peer: FederationConfig.Partner, endpoint index: Int) async {
        let endpoint = peer.endpoints[index]
        var backoff: UInt64 = 100
        while !Task.isCancelled && !isStopped {
            do {
                let connection = try await TLSTransport.dial(host: endpoint.host, port: endpoint.port, tls: tls)
                guard (try? await connection.peerFingerprint()) == peer.tlsFingerprint else {
                    await connection.reject()
                    throw LiaisonError(.io, "\(endpoint) is not \(peer.name)")
                }
                let lasted = await session(connection, peer: peer.name, endpoint: index, dialled: true)
                if lasted { backoff = 100 }
            } catch {
                backoff = min(backoff * 2, 1_000)
            }
            try? await Task.sleep(for: .milliseconds(backoff))
        }
    }

    /// Runs one channel; returns whether the neighbour said hello on it.
    @discardableResult
    private func session(_ connection: PeerConnection, peer: String, endpoint: Int, dialled: Bool) async -> Bool {
        let channel = state.withLock { state -> HostileChannel? in
            guard !state.stopped else { return nil }
            state.nextChannel += 1
            let channel = HostileChannel(
                id: state.nextChannel, peer: peer, endpoint: endpoint, dialled: dialled, channel: connection.channel)
            state.channels.append(channel)
            return channel
        }
        guard let channel else {
            await connection.reject()
            return false
        }
        let checkpoint = state.withLock { $0.checkpoints[peer] ?? 0 }
        let hello = SyncHello(
            nodeID: node.config.nodeID,
            hlc: HLCTimestamp(physicalMillis: UInt64(Date().timeIntervalSince1970 * 1000), logical: 0),
            checkpoint: checkpoint
        )
        await channel.run(connection, hello: hello)
        let seen = channel.snapshot
        state.withLock { state in
            state.channels.removeAll { $0 === channel }
            // The next hello tells the neighbour how far we acknowledged its log.
            state.checkpoints[peer] = max(state.checkpoints[peer] ?? 0, seen.ackedToPeer)
            if seen.hello == nil { state.refused[peer, default: 0] += 1 }
        }
        return seen.hello != nil
    }
}
