import Dispatch
import LiaisonCore
import NIOCore
import Synchronization
import Testing

@testable import LiaisonNode

/// The daemon's per-channel queue of outgoing frames: bounded; a peer that stops reading is
/// cut off at once and reported to the engine.
@Suite("Daemon transport")
struct DaemonTransportTests {
    @Test(
        "past 1,024 queued frames the channel's socket is closed once, the overflow is reported once, and later frames go nowhere"
    )
    func overflow() {
        let transport = DaemonTransport()
        let id = ChannelID(7)
        let (stream, continuation) = AsyncStream<DaemonTransport.Outgoing>.makeStream(
            bufferingPolicy: .bufferingOldest(DaemonTransport.maxQueuedFrames))
        let closes = Mutex(0)
        transport.register(id, continuation)
        transport.registerCloser(id) { closes.withLock { $0 += 1 } }
        let frame = ByteBuffer(bytes: [1, 2, 3])
        for _ in 0..<DaemonTransport.maxQueuedFrames { transport.send(frame, on: id) }
        #expect(closes.withLock { $0 } == 0, "closed while the queue still had room")
        #expect(transport.takeOverflowed().isEmpty)
        transport.send(frame, on: id)
        transport.send(frame, on: id)
        #expect(closes.withLock { $0 } == 1)
        #expect(transport.takeOverflowed().map(\.0) == [id])
        #expect(transport.takeOverflowed().isEmpty, "the overflow was reported twice")
        withExtendedLifetime(stream) {}  // the writer's end stays alive, as in SessionRunner
    }

    @Test("closing a channel whose writer is stuck (its peer stopped reading) closes the socket after the grace")
    func closeWithAStuckWriter() {
        let transport = DaemonTransport()
        let id = ChannelID(8)
        // Nobody consumes the stream: the writer is stuck, as behind a peer that never reads.
        let (stream, continuation) = AsyncStream<DaemonTransport.Outgoing>.makeStream(
            bufferingPolicy: .bufferingOldest(DaemonTransport.maxQueuedFrames))
        let closes = Mutex(0)
        let closed = DispatchSemaphore(value: 0)
        transport.register(id, continuation)
        transport.registerCloser(id) {
            closes.withLock { $0 += 1 }
            closed.signal()
        }
        transport.send(ByteBuffer(bytes: [1]), on: id)
        transport.close(id, reason: "no heartbeat")
        #expect(closes.withLock { $0 } == 0, "closed before the writer had its grace to send what is queued")
        #expect(closed.wait(timeout: .now() + 30) == .success, "the socket stayed open behind a stuck writer")
        #expect(closes.withLock { $0 } == 1)
        withExtendedLifetime(stream) {}
    }
}
