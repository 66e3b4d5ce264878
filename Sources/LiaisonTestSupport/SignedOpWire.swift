public import Foundation

/// A hand-written reader and writer of the `SignedOp` wire format (proto/liaison/v1/op.proto),
/// independent of the generated code, so tests can take a signed op apart, tamper with its
/// proof or openings, and put it back together in canonical (deterministic) encoding.
public struct SignedOpWire: Hashable, Sendable {
    /// One `FieldOpening`: a field's name, salt and value.
    public struct Opening: Hashable, Sendable {
        /// The field's name.
        public var name: String
        /// The salt.
        public var salt: Data
        /// The UTF-8 JSON value.
        public var value: Data

        /// Creates an opening.
        public init(name: String, salt: Data, value: Data) {
            self.name = name
            self.salt = salt
            self.value = value
        }
    }

    /// A message that this reader does not understand.
    public struct DecodingError: Error, Sendable, CustomStringConvertible {
        /// What was wrong.
        public var description: String
    }

    /// The signed body bytes.
    public var body: Data
    /// Whether the `proof` field is present.
    public var hasProof: Bool
    /// `BatchProof.signer_key`.
    public var signerKey: Data
    /// `BatchProof.signature`.
    public var signature: Data
    /// `BatchProof.leaf_index`.
    public var leafIndex: UInt32
    /// `BatchProof.leaf_count`.
    public var leafCount: UInt32
    /// `BatchProof.siblings`, from the leaf up.
    public var siblings: [Data]
    /// The field openings, in order.
    public var openings: [Opening]

    /// Takes an encoded `SignedOp` apart.
    public init(decoding data: Data) throws(DecodingError) {
        body = Data()
        hasProof = false
        signerKey = Data()
        signature = Data()
        leafIndex = 0
        leafCount = 0
        siblings = []
        openings = []
        var reader = Reader(Array(data))
        while let (field, value) = try reader.nextField() {
            switch (field, value) {
            case (1, .bytes(let bytes)): body = Data(bytes)
            case (2, .bytes(let bytes)):
                hasProof = true
                var proof = Reader(bytes)
                while let (field, value) = try proof.nextField() {
                    switch (field, value) {
                    case (1, .bytes(let bytes)): signerKey = Data(bytes)
                    case (2, .bytes(let bytes)): signature = Data(bytes)
                    case (3, .varint(let v)): leafIndex = UInt32(truncatingIfNeeded: v)
                    case (4, .varint(let v)): leafCount = UInt32(truncatingIfNeeded: v)
                    case (5, .bytes(let bytes)): siblings.append(Data(bytes))
                    default: throw DecodingError(description: "unexpected proof field \(field)")
                    }
                }
            case (3, .bytes(let bytes)):
                var opening = Opening(name: "", salt: Data(), value: Data())
                var inner = Reader(bytes)
                while let (field, value) = try inner.nextField() {
                    switch (field, value) {
                    case (1, .bytes(let bytes)): opening.name = String(decoding: bytes, as: UTF8.self)
                    case (2, .bytes(let bytes)): opening.salt = Data(bytes)
                    case (3, .bytes(let bytes)): opening.value = Data(bytes)
                    default: throw DecodingError(description: "unexpected opening field \(field)")
                    }
                }
                openings.append(opening)
            default: throw DecodingError(description: "unexpected signed-op field \(field)")
            }
        }
    }

    /// The canonical encoding: fields in number order, proto3 defaults left out.
    public var encoded: Data {
        var out = Writer()
        out.bytes(1, Array(body))
        if hasProof {
            var proof = Writer()
            proof.bytes(1, Array(signerKey))
            proof.bytes(2, Array(signature))
            proof.varint(3, UInt64(leafIndex))
            proof.varint(4, UInt64(leafCount))
            for sibling in siblings { proof.bytes(5, Array(sibling), always: true) }
            out.bytes(2, proof.out, always: true)
        }
        for opening in openings {
            var inner = Writer()
            inner.bytes(1, Array(opening.name.utf8))
            inner.bytes(2, Array(opening.salt))
            inner.bytes(3, Array(opening.value))
            out.bytes(3, inner.out, always: true)
        }
        return Data(out.out)
    }

    private enum Value {
        case varint(UInt64)
        case bytes([UInt8])
    }

    private struct Reader {
        let bytes: [UInt8]
        var at = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        mutating func varint() throws(DecodingError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard at < bytes.count, shift < 64 else { throw DecodingError(description: "truncated varint") }
                let byte = bytes[at]
                at += 1
                result |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
        }

        mutating func nextField() throws(DecodingError) -> (UInt64, Value)? {
            guard at < bytes.count else { return nil }
            let key = try varint()
            switch key & 7 {
            case 0: return (key >> 3, .varint(try varint()))
            case 2:
                let length = Int(try varint())
                guard length <= bytes.count - at else { throw DecodingError(description: "truncated field") }
                defer { at += length }
                return (key >> 3, .bytes(Array(bytes[at..<at + length])))
            default: throw DecodingError(description: "unsupported wire type \(key & 7)")
            }
        }
    }

    private struct Writer {
        var out: [UInt8] = []

        mutating func rawVarint(_ value: UInt64) {
            var v = value
            while v >= 0x80 {
                out.append(UInt8(v & 0x7f) | 0x80)
                v >>= 7
            }
            out.append(UInt8(v))
        }

        mutating func varint(_ field: UInt64, _ value: UInt64) {
            guard value != 0 else { return }
            rawVarint(field << 3)
            rawVarint(value)
        }

        mutating func bytes(_ field: UInt64, _ value: [UInt8], always: Bool = false) {
            guard always || !value.isEmpty else { return }
            rawVarint(field << 3 | 2)
            rawVarint(UInt64(value.count))
            out += value
        }
    }
}
