import CompressNIO
import Foundation
import LiaisonCore
import LiaisonTestSupport
import LiaisonWire
import NIOCore
import SwiftProtobuf
import Testing

/// The sync protocol's frame payloads (`proto/liaison/v1/sync.proto`) and their limits (I7).
@Suite("Sync frame codec")
struct SyncFrameCodecTests {
    static func roundTrip(_ message: SyncMessage) throws -> SyncMessage {
        try SyncFrameCodec.decode(SyncFrameCodec.encode(message))
    }

    /// The frame a payload holds, read with the generated types.
    static func frame(_ payload: ByteBuffer) throws -> Liaison_V1_Frame {
        try Liaison_V1_Frame(serializedBytes: Data(payload.readableBytesView))
    }

    static func payload(_ frame: Liaison_V1_Frame) throws -> ByteBuffer {
        let bytes: Data = try frame.serializedBytes()
        return ByteBuffer(bytes: bytes)
    }

    static func zlib(_ data: Data) throws -> Data {
        var plain = ByteBuffer(bytes: data)
        let compressed = try plain.compress(with: CompressionAlgorithm.zlib())
        return Data(compressed.readableBytesView)
    }

    /// A payload that must be refused with `SyncFrameCodec.DecodingError`.
    static func expectRefused(_ payload: ByteBuffer, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: SyncFrameCodec.DecodingError.self, sourceLocation: sourceLocation) {
            try SyncFrameCodec.decode(payload)
        }
    }

    static func signedOps(_ count: Int) throws -> [Data] {
        var factory = OpFactory(seed: 51)
        let create = try factory.create(by: .alice, markings: .test, at: .test(1))
        let item = try ItemState(create: create)
        return try [create.encoded] + factory.batch(of: count - 1, on: item, by: .alice).map(\.encoded)
    }

    static let messages: [SyncMessage] = [
        .hello(SyncHello(nodeID: TestNode.alice.nodeID, hlc: .test(12, logical: 3), checkpoint: 0)),
        .hello(
            SyncHello(versions: [1, 2, 7], nodeID: TestNode.carol.nodeID, hlc: .test(99), checkpoint: UInt64.max)
        ),
        .batch(ops: [], throughSeq: 17),
        .batch(ops: [Data("one".utf8), Data(), Data([0, 1, 2, 255])], throughSeq: 1 << 40),
        .ack(throughSeq: 0),
        .ack(throughSeq: 123_456_789),
        .batchPart(ops: [Data("history".utf8), Data("entry".utf8)], throughSeq: 9, part: 1),
        .batchPart(ops: [], throughSeq: 1 << 40, part: UInt32.max),
        .partAck(throughSeq: 9, part: 3),
        .ping(nonce: 0),
        .ping(nonce: UInt64.max),
        .pong(nonce: 42),
        .goodbye(reason: "protocol violation: a second hello"),
        .goodbye(reason: ""),
    ]

    @Test("every message round-trips through encode and decode", arguments: messages)
    func roundTrips(message: SyncMessage) throws {
        #expect(try Self.roundTrip(message) == message)
    }

    @Test("each message kind lands in its own frame field")
    func frameKinds() throws {
        #expect(try Self.frame(SyncFrameCodec.encode(.ack(throughSeq: 5))).ack.throughSeq == 5)
        #expect(try Self.frame(SyncFrameCodec.encode(.ping(nonce: 6))).ping.nonce == 6)
        #expect(try Self.frame(SyncFrameCodec.encode(.pong(nonce: 7))).pong.nonce == 7)
        let hello = try Self.frame(
            SyncFrameCodec.encode(.hello(SyncHello(nodeID: TestNode.bob.nodeID, hlc: .test(1), checkpoint: 9)))
        )
        #expect(hello.hello.nodeID == Data(TestNode.bob.nodeID.bytes))
        #expect(hello.hello.checkpoint == 9)
        #expect(hello.hello.versions == SyncProtocol.versions)
    }

    @Test("real signed ops round-trip byte for byte, plain and compressed")
    func signedOpsRoundTrip() throws {
        let few = try Self.signedOps(3)
        #expect(try Self.roundTrip(.batch(ops: few, throughSeq: 3)) == .batch(ops: few, throughSeq: 3))
        #expect(try Self.frame(SyncFrameCodec.encode(.batch(ops: few, throughSeq: 3))).batch.compressed.isEmpty)

        let many = try Self.signedOps(200)
        #expect(many.reduce(0) { $0 + $1.count } > SyncFrameCodec.compressionThreshold)
        let payload = try SyncFrameCodec.encode(.batch(ops: many, throughSeq: 900))
        #expect(try !Self.frame(payload).batch.compressed.isEmpty)
        let decoded = try SyncFrameCodec.decode(payload)
        #expect(decoded == .batch(ops: many, throughSeq: 900))
        if case .batch(let ops, _) = decoded {
            #expect(try OpVerifier().verify(ops[150]).encoded == many[150])
        }
    }

    @Test("a batch larger than the compression threshold is compressed and round-trips")
    func compressesLargeBatches() throws {
        // Repetitive ops: the same signed op over and over, plus repetitive synthetic bytes.
        let op = try Self.signedOps(1)[0]
        let ops = Array(repeating: op, count: 400) + (0..<40).map { Data(repeating: UInt8($0), count: 1_000) }
        let size = ops.reduce(0) { $0 + $1.count }
        #expect(size > SyncFrameCodec.compressionThreshold)

        let payload = try SyncFrameCodec.encode(.batch(ops: ops, throughSeq: 440))
        #expect(
            payload.readableBytes * 10 < size, "\(payload.readableBytes) bytes on the wire for \(size) bytes of ops")
        let frame = try Self.frame(payload)
        #expect(frame.batch.ops.isEmpty)
        #expect(!frame.batch.compressed.isEmpty)
        #expect(frame.batch.throughSeq == 440)
        #expect(try SyncFrameCodec.decode(payload) == .batch(ops: ops, throughSeq: 440))
    }

    @Test("a large batch part is compressed and stays a part; its frame names the part, and a whole batch names none")
    func compressesParts() throws {
        let op = try Self.signedOps(1)[0]
        let ops = Array(repeating: op, count: 400)
        let payload = try SyncFrameCodec.encode(.batchPart(ops: ops, throughSeq: 40, part: 2))
        let frame = try Self.frame(payload)
        #expect(!frame.batch.compressed.isEmpty && frame.batch.part == 2 && frame.batch.throughSeq == 40)
        #expect(try SyncFrameCodec.decode(payload) == .batchPart(ops: ops, throughSeq: 40, part: 2))
        #expect(try Self.frame(SyncFrameCodec.encode(.batch(ops: ops, throughSeq: 40))).batch.part == 0)
        #expect(try Self.frame(SyncFrameCodec.encode(.partAck(throughSeq: 40, part: 2))).ack.part == 2)
    }

    @Test("a batch at the compression threshold travels plain")
    func smallBatchesArePlain() throws {
        let ops = [Data(repeating: 7, count: SyncFrameCodec.compressionThreshold)]
        let payload = try SyncFrameCodec.encode(.batch(ops: ops, throughSeq: 1))
        let frame = try Self.frame(payload)
        #expect(frame.batch.compressed.isEmpty)
        #expect(frame.batch.ops == ops)
        #expect(payload.readableBytes > SyncFrameCodec.compressionThreshold)
    }

    @Test("garbage bytes are refused")
    func refusesGarbage() {
        Self.expectRefused(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]))
        Self.expectRefused(ByteBuffer(bytes: [0x0A, 0x05, 0x01]))  // a field longer than the frame
        var generator = SeededGenerator(seed: 52)
        for _ in 0..<200 {
            Self.expectRefused(ByteBuffer(bytes: generator.bytes(Int(generator.next() % 64) + 1)))
        }
    }

    @Test("an empty frame, or one with no message in it, is refused")
    func refusesEmptyFrame() throws {
        Self.expectRefused(ByteBuffer())
        // Only a field this version does not know.
        Self.expectRefused(ByteBuffer(bytes: [0xF8, 0x07, 0x01]))
    }

    @Test("a hello with a NodeID that is not 32 bytes is refused")
    func refusesBadNodeID() throws {
        var frame = Liaison_V1_Frame()
        var hello = Liaison_V1_Hello()
        hello.versions = [1]
        hello.nodeID = Data(repeating: 1, count: 31)
        frame.hello = hello
        Self.expectRefused(try Self.payload(frame))
    }

    @Test("a frame over maxFrameBytes is refused, even a well-formed one")
    func refusesOversizedFrame() throws {
        var frame = Liaison_V1_Frame()
        var batch = Liaison_V1_OpBatch()
        batch.throughSeq = 1
        batch.ops = [Data(repeating: 0x41, count: SyncFrameCodec.maxFrameBytes)]
        frame.batch = batch
        let payload = try Self.payload(frame)
        #expect(payload.readableBytes > SyncFrameCodec.maxFrameBytes)
        Self.expectRefused(payload)

        // Just under the limit, the same construction decodes.
        batch.ops = [Data(repeating: 0x41, count: SyncFrameCodec.maxFrameBytes - 64)]
        frame.batch = batch
        let fits = try Self.payload(frame)
        #expect(fits.readableBytes <= SyncFrameCodec.maxFrameBytes)
        #expect(try SyncFrameCodec.decode(fits) == .batch(ops: batch.ops, throughSeq: 1))
    }

    /// A frame holding `count` ops of `opBytes` zero bytes as a zlib-compressed batch.
    static func compressedFrame(opBytes: Int, count: Int) throws -> ByteBuffer {
        var list = Liaison_V1_OpList()
        list.ops = Array(repeating: Data(repeating: 0, count: opBytes), count: count)
        var batch = Liaison_V1_OpBatch()
        batch.throughSeq = 5
        batch.compressed = try zlib(list.serializedBytes())
        var frame = Liaison_V1_Frame()
        frame.batch = batch
        return try payload(frame)
    }

    @Test("a compressed batch that would inflate far beyond maxFrameBytes is refused (zip bomb)")
    func refusesZipBomb() throws {
        // The construction is sound: a modest one decodes.
        let modest = try Self.compressedFrame(opBytes: 1 << 16, count: 8)
        #expect(
            try SyncFrameCodec.decode(modest)
                == .batch(ops: Array(repeating: Data(count: 1 << 16), count: 8), throughSeq: 5))

        // 16 MiB of ops in a few KiB.
        let bomb = try Self.compressedFrame(opBytes: 1 << 20, count: 16)
        #expect(bomb.readableBytes < 64 << 10)
        Self.expectRefused(bomb)

        // 64 MiB.
        Self.expectRefused(try Self.compressedFrame(opBytes: 4 << 20, count: 16))
    }

    @Test("a compressed batch that inflates even a little beyond maxFrameBytes is refused")
    func inflateLimitIsExact() throws {
        // Within the limit: an OpList of 4 MiB - 5 bytes (one op of 4 MiB - 10 bytes, 5 bytes of framing).
        let atLimit = try Self.compressedFrame(opBytes: SyncFrameCodec.maxFrameBytes - 10, count: 1)
        #expect(throws: Never.self) { try SyncFrameCodec.decode(atLimit) }
        // Just over: one op of maxFrameBytes bytes, 4 MiB + 5 bytes of OpList.
        Self.expectRefused(try Self.compressedFrame(opBytes: SyncFrameCodec.maxFrameBytes, count: 1))
        // A third over.
        Self.expectRefused(try Self.compressedFrame(opBytes: 5_500_000, count: 1))
    }

    @Test("a compressed batch that is not zlib, or carries plain ops too, is refused")
    func refusesBadCompressedBatch() throws {
        var frame = Liaison_V1_Frame()
        var batch = Liaison_V1_OpBatch()
        batch.throughSeq = 1
        batch.compressed = Data("definitely not zlib".utf8)
        frame.batch = batch
        Self.expectRefused(try Self.payload(frame))

        var list = Liaison_V1_OpList()
        list.ops = [Data("a".utf8)]
        batch.compressed = try Self.zlib(list.serializedBytes())
        batch.ops = [Data("b".utf8)]
        frame.batch = batch
        Self.expectRefused(try Self.payload(frame))
    }

    @Test("a long goodbye reason is cut to 512 characters")
    func goodbyeReasonIsBounded() throws {
        let reason = String(repeating: "x", count: 2_000)
        #expect(try Self.roundTrip(.goodbye(reason: reason)) == .goodbye(reason: String(reason.prefix(512))))
    }
}
