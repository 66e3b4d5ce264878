import LiaisonCore
import LiaisonTestSupport
import LiaisonWire
import NIOCore
import NIOEmbedded
import Testing

@testable import LiaisonTransport

/// The channel handler that answers the peer's pings whatever the node's engine is doing
/// (`ChannelKeepalive`, docs/protocol.md "Heartbeats").
@Suite("Channel keepalive")
struct KeepaliveHandlerTests {
    private static func frame(_ message: SyncMessage) throws -> ByteBuffer { try SyncFrameCodec.encode(message) }

    @Test(
        "after the hello, a ping is answered at once with a pong of its nonce and kept out of the reader; pongs are recorded; other frames pass on"
    )
    func answersPings() throws {
        let record = HeartbeatRecord()
        let channel = EmbeddedChannel(handler: KeepaliveHandler(record: record))
        let hello = SyncHello(nodeID: TestNode.alice.nodeID, hlc: .test(1), checkpoint: 0)
        // The first frame goes to the reader even when it is a heartbeat: the session needs
        // its hello first, and a ping before it is the engine's to refuse.
        try channel.writeInbound(try Self.frame(.ping(nonce: 1)))
        #expect(try channel.readInbound(as: ByteBuffer.self) == (try Self.frame(.ping(nonce: 1))))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "answered before the hello went in")

        try channel.writeInbound(try Self.frame(.hello(hello)))
        #expect(try channel.readInbound(as: ByteBuffer.self) == (try Self.frame(.hello(hello))))

        try channel.writeInbound(try Self.frame(.ping(nonce: UInt64.max)))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil, "a ping reached the reader")
        let answer = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(try SyncFrameCodec.decode(answer) == .pong(nonce: UInt64.max))

        try channel.writeInbound(try Self.frame(.pong(nonce: 9)))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil, "a pong reached the reader")
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "a pong was answered")

        let ack = try Self.frame(.ack(throughSeq: 5))
        try channel.writeInbound(ack)
        #expect(try channel.readInbound(as: ByteBuffer.self) == ack)

        let taken = record.take()
        #expect(taken.map(\.message) == [.ping(nonce: UInt64.max), .pong(nonce: 9)])
        #expect(taken.allSatisfy { $0.atMillis > 0 && $0.atMillis <= record.lastArrivalMillis })
        #expect(record.take().isEmpty, "taken twice")
        _ = try channel.finish()
    }

    @Test("a ping with the largest nonce fits the size the keepalive decodes")
    func pingsAreSmall() throws {
        #expect(try Self.frame(.ping(nonce: UInt64.max)).readableBytes <= ChannelKeepalive.maxHeartbeatFrameBytes)
        #expect(try Self.frame(.pong(nonce: UInt64.max)).readableBytes <= ChannelKeepalive.maxHeartbeatFrameBytes)
    }

    @Test("past 1,024 heartbeats not yet taken by the engine, pings are neither answered nor recorded")
    func floodIsBounded() throws {
        let record = HeartbeatRecord()
        let channel = EmbeddedChannel(handler: KeepaliveHandler(record: record))
        try channel.writeInbound(try Self.frame(.ack(throughSeq: 1)))
        _ = try channel.readInbound(as: ByteBuffer.self)
        for nonce in 0..<UInt64(ChannelKeepalive.maxRecordedHeartbeats + 100) {
            try channel.writeInbound(try Self.frame(.ping(nonce: nonce)))
        }
        var answered = 0
        while try channel.readOutbound(as: ByteBuffer.self) != nil { answered += 1 }
        #expect(answered == ChannelKeepalive.maxRecordedHeartbeats)
        #expect(record.take().count == ChannelKeepalive.maxRecordedHeartbeats)
        // Once the engine has taken them, the next ping is answered again.
        try channel.writeInbound(try Self.frame(.ping(nonce: 7)))
        #expect(try channel.readOutbound(as: ByteBuffer.self) != nil)
    }
}
