public import Crypto
public import Foundation

/// A 32-byte value such as a SHA-256 digest, stored as four words so that hashing,
/// equality and ordering are cheap. Ordering is the lexicographic order of the bytes.
public struct Hash32: Hashable, Comparable, Sendable {
    @usableFromInline let w0: UInt64
    @usableFromInline let w1: UInt64
    @usableFromInline let w2: UInt64
    @usableFromInline let w3: UInt64

    /// All zero bytes; the previous hash of the first entry of a chain.
    public static let zero = Hash32(w0: 0, w1: 0, w2: 0, w3: 0)

    init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0
        self.w1 = w1
        self.w2 = w2
        self.w3 = w3
    }

    /// Reads exactly 32 bytes; returns nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        // Read straight from contiguous storage (Data, arrays): hashing ops spends its time here.
        let fast = bytes.withContiguousStorageIfAvailable { buffer -> Hash32 in
            func word(_ at: Int) -> UInt64 {
                var value: UInt64 = 0
                for index in at..<(at + 8) { value = (value << 8) | UInt64(buffer[index]) }
                return value
            }
            return Hash32(w0: word(0), w1: word(8), w2: word(16), w3: word(24))
        }
        if let fast {
            self = fast
            return
        }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        for (offset, byte) in bytes.enumerated() {
            switch offset / 8 {
            case 0: words.0 = (words.0 << 8) | UInt64(byte)
            case 1: words.1 = (words.1 << 8) | UInt64(byte)
            case 2: words.2 = (words.2 << 8) | UInt64(byte)
            default: words.3 = (words.3 << 8) | UInt64(byte)
            }
        }
        self.init(w0: words.0, w1: words.1, w2: words.2, w3: words.3)
    }

    /// The value of a SHA-256 digest.
    public init(_ digest: SHA256.Digest) {
        var result = Hash32.zero
        digest.withUnsafeBytes { raw in
            result = Hash32(bytes: raw)!
        }
        self = result
    }

    /// SHA-256 of the given bytes.
    public static func sha256(_ data: some DataProtocol) -> Hash32 {
        Hash32(SHA256.hash(data: data))
    }

    /// Calls `body` with the 32 bytes, most significant first, without copying them to the
    /// heap (hashing Merkle nodes and op ids spends its time here).
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let words = (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian)
        return try Swift.withUnsafeBytes(of: words, body)
    }

    /// The 32 bytes, most significant first.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// The 32 bytes as `Data`.
    public var data: Data { withUnsafeBytes { Data($0) } }

    /// Lower-case hexadecimal, 64 characters.
    public var hex: String { Hex.encode(bytes) }

    /// The first eight bytes, most significant first: a compact key a store can index by
    /// (not unique on its own; a lookup compares the whole value too).
    public var leadingWord: UInt64 { w0 }

    /// Parses 64 hexadecimal characters.
    public init?(hex: String) {
        guard let bytes = Hex.decode(hex) else { return nil }
        self.init(bytes: bytes)
    }

    public static func < (lhs: Hash32, rhs: Hash32) -> Bool {
        (lhs.w0, lhs.w1, lhs.w2, lhs.w3) < (rhs.w0, rhs.w1, rhs.w2, rhs.w3)
    }
}

extension Hash32: CustomStringConvertible {
    public var description: String { hex }
}

extension Hash32: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Hash32(hex: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not 64 hex digits"))
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

/// Hexadecimal text for byte strings.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Lower-case hexadecimal of the bytes.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out = [UInt8]()
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Bytes of hexadecimal text (either case); nil when the text is not hexadecimal.
    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
