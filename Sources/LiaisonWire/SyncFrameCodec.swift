import CompressNIO
import Foundation
public import LiaisonCore
public import NIOCore
import SwiftProtobuf

/// Turns `SyncMessage`s into frame payloads and back (`proto/liaison/v1/sync.proto`).
///
/// Batches whose ops exceed `compressionThreshold` bytes travel zlib-compressed; a
/// compressed batch that would inflate beyond `maxFrameBytes` is refused (no zip bombs).
public enum SyncFrameCodec {
    /// Largest frame payload a node accepts, in bytes.
    public static let maxFrameBytes = 4 << 20
    /// Batches with more op bytes than this are compressed.
    public static let compressionThreshold = 16 << 10
    /// zlib's fastest level: on ops of JSON field values it compresses 0.91 as well as the
    /// default level in 0.59 of the time (docs/decisions.md, "Batches are deflated at zlib's
    /// fastest level"). Receivers inflate any level.
    static let compression = CompressionAlgorithm.zlib(configuration: .init(compressionLevel: 1))

    /// Why a frame was refused.
    public struct DecodingError: Error, Hashable, Sendable, CustomStringConvertible {
        /// What is wrong.
        public var reason: String
        public var description: String { reason }
    }

    /// The payload of one frame.
    public static func encode(_ message: SyncMessage) throws(LiaisonError) -> ByteBuffer {
        var frame = Liaison_V1_Frame()
        switch message {
        case .hello(let hello):
            var h = Liaison_V1_Hello()
            h.versions = hello.versions
            h.nodeID = hello.nodeID.hash.data
            h.hlc = hello.hlc.rawValue
            h.checkpoint = hello.checkpoint
            frame.hello = h
        case .batch(let ops, let through):
            frame.batch = try batch(ops, through: through, part: 0)
        case .batchPart(let ops, let through, let part):
            frame.batch = try batch(ops, through: through, part: part)
        case .ack(let through):
            var a = Liaison_V1_Ack()
            a.throughSeq = through
            frame.ack = a
        case .partAck(let through, let part):
            var a = Liaison_V1_Ack()
            a.throughSeq = through
            a.part = part
            frame.ack = a
        case .ping(let nonce):
            var p = Liaison_V1_Ping()
            p.nonce = nonce
            frame.ping = p
        case .pong(let nonce):
            var p = Liaison_V1_Pong()
            p.nonce = nonce
            frame.pong = p
        case .goodbye(let reason):
            var g = Liaison_V1_Goodbye()
            g.reason = String(reason.prefix(512))
            frame.goodbye = g
        case .envelope(let bytes):
            frame.envelope = bytes
        case .receipt(let bytes):
            frame.receipt = bytes
        case .governance(let bytes):
            frame.governance = bytes
        }
        do {
            let serialized: Data = try frame.serializedBytes()
            return ByteBuffer(bytes: serialized)
        } catch {
            throw LiaisonError(.io, "encoding a frame failed", cause: error)
        }
    }

    /// A batch's frame body: compressed past `compressionThreshold`.
    private static func batch(_ ops: [Data], through: UInt64, part: UInt32) throws(LiaisonError) -> Liaison_V1_OpBatch {
        var b = Liaison_V1_OpBatch()
        b.throughSeq = through
        b.part = part
        let size = ops.reduce(0) { $0 + $1.count }
        if size > compressionThreshold {
            var list = Liaison_V1_OpList()
            list.ops = ops
            do {
                let serialized: Data = try list.serializedBytes()
                var plain = ByteBuffer(bytes: serialized)
                let compressed = try plain.compress(with: compression)
                b.compressed = Data(compressed.readableBytesView)
            } catch {
                throw LiaisonError(.io, "compressing a batch failed", cause: error)
            }
        } else {
            b.ops = ops
        }
        return b
    }

    /// The message in one frame payload.
    public static func decode(_ payload: ByteBuffer) throws(DecodingError) -> SyncMessage {
        guard payload.readableBytes <= maxFrameBytes else {
            throw DecodingError(reason: "frame of \(payload.readableBytes) bytes exceeds \(maxFrameBytes)")
        }
        let frame: Liaison_V1_Frame
        do {
            frame = try Liaison_V1_Frame(serializedBytes: Data(payload.readableBytesView))
        } catch {
            throw DecodingError(reason: "not a Liaison frame: \(error)")
        }
        switch frame.kind {
        case .none:
            throw DecodingError(reason: "empty frame")
        case .hello(let h):
            guard let node = NodeID(bytes: h.nodeID) else { throw DecodingError(reason: "hello with a bad NodeID") }
            return .hello(
                SyncHello(
                    versions: h.versions, nodeID: node, hlc: HLCTimestamp(rawValue: h.hlc), checkpoint: h.checkpoint))
        case .batch(let b):
            func message(_ ops: [Data]) -> SyncMessage {
                b.part == 0
                    ? .batch(ops: ops, throughSeq: b.throughSeq)
                    : .batchPart(ops: ops, throughSeq: b.throughSeq, part: b.part)
            }
            if b.compressed.isEmpty { return message(b.ops) }
            guard b.ops.isEmpty else { throw DecodingError(reason: "batch with both plain and compressed ops") }
            do {
                var compressed = ByteBuffer(bytes: b.compressed)
                let plain = try compressed.decompress(with: CompressionAlgorithm.zlib(), maxSize: maxFrameBytes)
                // The decompressor's limit is on buffer sizes, which round up; check the result.
                guard plain.readableBytes <= maxFrameBytes else {
                    throw DecodingError(reason: "compressed batch inflates to \(plain.readableBytes) bytes")
                }
                let list = try Liaison_V1_OpList(serializedBytes: Data(plain.readableBytesView))
                return message(list.ops)
            } catch {
                throw DecodingError(
                    reason: "compressed batch does not inflate to at most \(maxFrameBytes) bytes of ops: \(error)")
            }
        case .ack(let a):
            return a.part == 0 ? .ack(throughSeq: a.throughSeq) : .partAck(throughSeq: a.throughSeq, part: a.part)
        case .ping(let p):
            return .ping(nonce: p.nonce)
        case .pong(let p):
            return .pong(nonce: p.nonce)
        case .goodbye(let g):
            return .goodbye(reason: g.reason)
        case .envelope(let bytes):
            guard !bytes.isEmpty else { throw DecodingError(reason: "empty envelope") }
            return .envelope(bytes)
        case .receipt(let bytes):
            guard !bytes.isEmpty else { throw DecodingError(reason: "empty receipt") }
            return .receipt(bytes)
        case .governance(let bytes):
            guard !bytes.isEmpty else { throw DecodingError(reason: "empty governance statements") }
            return .governance(bytes)
        }
    }
}
