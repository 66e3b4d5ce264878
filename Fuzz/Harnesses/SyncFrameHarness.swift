// Fuzzes `SyncFrameCodec.decode`: what a peer's frames turn into (I7: a hostile peer's bytes
// are refused, never crash or exhaust the node).
//
// Input: one mode byte, then the rest. Even mode: the rest is a frame payload as it comes off
// the wire. Odd mode: the rest is what a compressed batch inflates to; the harness deflates it
// and wraps it in a frame (throughSeq = the mode byte), so mutations reach the inflated-batch
// decoder instead of dying on zlib's checksum.
import CompressNIO
import Foundation
import LiaisonCore
import LiaisonTestSupport
import LiaisonWire
import NIOCore
import SwiftProtobuf

enum Harness {
    static func run(_ input: Data) {
        guard let mode = input.first else { return }
        let rest = input.dropFirst()
        let payload: ByteBuffer
        if mode & 1 == 0 {
            payload = ByteBuffer(bytes: rest)
        } else {
            payload = compressedBatchFrame(inflated: Data(rest), through: UInt64(mode))
        }
        let message: SyncMessage
        do {
            message = try SyncFrameCodec.decode(payload)
        } catch {
            return
        }
        checkRoundTrip(message)
    }

    /// A decoded message encodes and decodes to itself (a goodbye's reason is cut to 512
    /// characters on the way out).
    static func checkRoundTrip(_ message: SyncMessage) {
        var expected = message
        if case .goodbye(let reason) = message { expected = .goodbye(reason: String(reason.prefix(512))) }
        let again: SyncMessage
        do {
            again = try SyncFrameCodec.decode(SyncFrameCodec.encode(message))
        } catch {
            FuzzCheck.fail("a decoded message does not survive encode and decode: \(error)")
        }
        FuzzCheck.expect(again == expected, "round trip changed the message: \(message) became \(again)")
    }

    static func compressedBatchFrame(inflated: Data, through: UInt64) -> ByteBuffer {
        var plain = ByteBuffer(bytes: inflated)
        guard let compressed = try? plain.compress(with: CompressionAlgorithm.zlib()) else {
            FuzzCheck.fail("zlib refused to compress \(inflated.count) bytes")
        }
        var frame = Liaison_V1_Frame()
        frame.batch.throughSeq = through
        frame.batch.compressed = Data(compressed.readableBytesView)
        guard let bytes: Data = try? frame.serializedBytes() else { FuzzCheck.fail("frame does not encode") }
        return ByteBuffer(bytes: bytes)
    }

    static func seeds() throws -> [(String, Data)] {
        var factory = OpFactory(seed: 71)
        let create = try factory.create(
            by: .alice, fields: [(name: "body", value: JSONText.string("convoy at the north gate"))],
            tags: ["convoy"], at: .test(1))
        let item = try ItemState(create: create)
        let ops = try [create.encoded] + factory.batch(of: 3, on: item, by: .alice).map(\.encoded)
        let messages: [(String, SyncMessage)] = [
            ("hello", .hello(SyncHello(nodeID: TestNode.alice.nodeID, hlc: .test(12, logical: 3), checkpoint: 40))),
            ("batch-empty", .batch(ops: [], throughSeq: 17)),
            ("batch-plain", .batch(ops: ops, throughSeq: 4)),
            ("ack", .ack(throughSeq: 123_456)),
            ("ping", .ping(nonce: 7)),
            ("pong", .pong(nonce: 7)),
            ("goodbye", .goodbye(reason: "protocol violation: a second hello")),
            ("envelope", .envelope(Data(repeating: 0xA5, count: 40))),
            ("receipt", .receipt(Data(repeating: 0x5A, count: 40))),
        ]
        var seeds = [(String, Data)]()
        for (name, message) in messages {
            seeds.append(("frame-\(name)", Data([0]) + Data(try SyncFrameCodec.encode(message).readableBytesView)))
        }
        // A batch over the compression threshold, as the encoder sends it (repetitive, so small).
        let big = SyncMessage.batch(ops: Array(repeating: ops[0], count: 80), throughSeq: 80)
        seeds.append(("frame-batch-compressed", Data([0]) + Data(try SyncFrameCodec.encode(big).readableBytesView)))
        // What compressed batches inflate to.
        var list = Liaison_V1_OpList()
        list.ops = ops
        seeds.append(("inflated-ops", Data([1]) + (try list.serializedBytes() as Data)))
        list.ops = []
        seeds.append(("inflated-empty", Data([3])))
        return seeds
    }
}
