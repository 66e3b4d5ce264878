import Foundation
import LiaisonCore
import LiaisonTransport
import LiaisonWire
import NIOCore
import Synchronization

/// One pinned TLS channel between the hostile partner and an honest neighbour. It speaks the
/// sync protocol as far as the drill wants it to: it says hello with the partner's own NodeID,
/// answers heartbeats, acknowledges what the neighbour sends (or withholds the acks), and
/// writes whatever frames an attack hands it — well-formed or not. Its reader can be stopped,
/// so that the neighbour's answers pile up (a peer that never reads).
final class HostileChannel: Sendable {
    /// What the writer does next.
    enum Command: Sendable {
        case frames([ByteBuffer])
        case close
    }

    /// What the channel saw and how it behaves.
    struct State: Sendable {
        /// The neighbour's hello.
        var hello: SyncHello?
        /// The highest of our batches the neighbour acknowledged.
        var ackedByPeer: UInt64 = 0
        /// The highest `through_seq` of the neighbour's batches read.
        var peerThrough: UInt64 = 0
        /// The highest of the neighbour's batches we acknowledged.
        var ackedToPeer: UInt64 = 0
        /// The neighbour's batches and ops read.
        var batchesRead = 0
        var opsRead = 0
        /// Batches of the neighbour read and deliberately not acknowledged.
        var batchesWithheld = 0
        /// The neighbour's goodbye, if it said one.
        var goodbye: String?
        /// Whether the channel ended, and how.
        var closed = false
        var closeError: String?
        /// Whether the neighbour's batches are acknowledged.
        var acking = true
        /// Whether frames are read at all.
        var reading = true
        /// Writer commands queued and not written yet.
        var queued = 0
        /// Frames written to the socket (handed to TLS).
        var written = 0
    }

    /// A number of its own, for logs.
    let id: Int
    /// The honest neighbour at the other end.
    let peer: String
    /// The listening side's endpoint index the channel reaches.
    let endpoint: Int
    /// Whether the hostile side dialled it.
    let dialled: Bool
    private let channel: any Channel
    private let state: Mutex<State>
    private let commands: AsyncStream<Command>.Continuation
    private let stream: AsyncStream<Command>

    init(id: Int, peer: String, endpoint: Int, dialled: Bool, channel: any Channel) {
        self.id = id
        self.peer = peer
        self.endpoint = endpoint
        self.dialled = dialled
        self.channel = channel
        self.state = Mutex(State())
        (stream, commands) = AsyncStream<Command>.makeStream()
    }

    /// A copy of the state.
    var snapshot: State { state.withLock { $0 } }

    /// Whether the neighbour said hello and the channel is still up.
    var isOpen: Bool { state.withLock { $0.hello != nil && !$0.closed } }

    /// Whether the channel ended.
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Changes how the channel behaves.
    func configure(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }

    /// Queues messages, encoded by the real codec.
    func send(_ messages: [SyncMessage]) throws(LiaisonError) {
        var frames = [ByteBuffer]()
        for message in messages { frames.append(try SyncFrameCodec.encode(message)) }
        sendPayloads(frames)
    }

    /// Queues frame payloads as they are (the length prefix is added on the way out).
    func sendPayloads(_ payloads: [ByteBuffer]) {
        guard !payloads.isEmpty else { return }
        state.withLock { $0.queued += 1 }
        if case .terminated = commands.yield(.frames(payloads)) {
            state.withLock { $0.queued -= 1 }
        }
    }

    /// Writer commands not written yet.
    var queued: Int { state.withLock { $0.queued } }

    /// Stops reading and keeps as little room as the kernel allows for what the neighbour
    /// sends (a receive buffer of 4 KiB, no autotuning): its answers back up at its end.
    func stopReading() async {
        state.withLock { $0.reading = false }
        try? await channel.setOption(ChannelOptions.socketOption(.so_rcvbuf), value: 4096).get()
    }

    /// Frames written to the socket so far.
    var written: Int { state.withLock { $0.written } }

    /// Closes the channel.
    func close() {
        commands.yield(.close)
        channel.close(promise: nil)
    }

    /// Runs the channel until it ends: says `hello`, then reads and writes.
    func run(_ connection: PeerConnection, hello: SyncHello) async {
        do {
            let greeting = try SyncFrameCodec.encode(.hello(hello))
            try await connection.io.executeThenClose { inbound, outbound in
                try await outbound.write(greeting)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { [stream, channel] in
                        for await command in stream {
                            switch command {
                            case .frames(let frames):
                                defer { self.state.withLock { $0.queued -= 1 } }
                                try await outbound.write(contentsOf: frames)
                                self.state.withLock { $0.written += frames.count }
                            case .close:
                                channel.close(promise: nil)
                                return
                            }
                        }
                    }
                    group.addTask {
                        var iterator = inbound.makeAsyncIterator()
                        while true {
                            // A reader told to stop reads nothing more: NIO stops reading the
                            // socket, the kernel's buffers fill, and the neighbour's writes back up.
                            while !self.state.withLock({ $0.reading }) {
                                try await Task.sleep(for: .milliseconds(20))
                            }
                            guard let frame = try await iterator.next() else { return }
                            // The channel's keepalive answered the neighbour's pings; the
                            // hostile side keeps no record of them (its record would fill and
                            // the keepalive stop answering).
                            _ = connection.heartbeats.take()
                            self.read(frame)
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        } catch {
            state.withLock { $0.closeError = "\(error)" }
        }
        state.withLock { $0.closed = true }
        commands.finish()
    }

    private func read(_ frame: ByteBuffer) {
        guard let message = try? SyncFrameCodec.decode(frame) else { return }
        var answers = [SyncMessage]()
        state.withLock { state in
            switch message {
            case .hello(let hello):
                state.hello = hello
            case .batch(let ops, let through):
                state.batchesRead += 1
                state.opsRead += ops.count
                state.peerThrough = max(state.peerThrough, through)
                if state.acking {
                    state.ackedToPeer = max(state.ackedToPeer, through)
                    answers.append(.ack(throughSeq: through))
                } else {
                    state.batchesWithheld += 1
                }
            case .batchPart(let ops, let through, let part):
                state.batchesRead += 1
                state.opsRead += ops.count
                if state.acking {
                    answers.append(.partAck(throughSeq: through, part: part))
                } else {
                    state.batchesWithheld += 1
                }
            case .ack(let through):
                state.ackedByPeer = max(state.ackedByPeer, through)
            case .goodbye(let reason):
                state.goodbye = reason
            default:
                // Sealed traffic the hostile partner neither opens nor relays. Pings never get
                // here: the channel's keepalive answers them, as on every node.
                break
            }
        }
        if !answers.isEmpty { try? send(answers) }
    }
}
