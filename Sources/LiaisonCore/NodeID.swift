public import Crypto
public import Foundation

/// The identity of a node: SHA-256 of its Ed25519 signing public key.
///
/// Its text form is the base32 of those 32 bytes in groups of four, e.g.
/// `MFZW-K3TP-…` (13 groups). Parsing accepts either case, with or without dashes.
public struct NodeID: Hashable, Comparable, Sendable {
    /// The SHA-256 of the signing public key.
    public let hash: Hash32

    /// Wraps a hash that is already a NodeID.
    public init(hash: Hash32) { self.hash = hash }

    /// The NodeID of a signing public key.
    public init(signingKey: Curve25519.Signing.PublicKey) {
        self.hash = Hash32.sha256(signingKey.rawRepresentation)
    }

    /// Reads a 32-byte NodeID; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard let hash = Hash32(bytes: bytes) else { return nil }
        self.hash = hash
    }

    /// Parses the grouped base32 text form.
    public init?(_ text: String) {
        let compact = text.filter { $0 != "-" }
        guard compact.count == 52, let bytes = Base32.decode(compact), let hash = Hash32(bytes: bytes) else {
            return nil
        }
        self.hash = hash
    }

    /// The 32 bytes.
    public var bytes: [UInt8] { hash.bytes }

    /// The grouped base32 text form.
    public var text: String {
        let plain = Array(Base32.encode(hash.bytes))
        return stride(from: 0, to: plain.count, by: 4)
            .map { String(plain[$0..<min($0 + 4, plain.count)]) }
            .joined(separator: "-")
    }

    /// The first two groups, for logs and tables.
    public var short: String { String(text.prefix(9)) }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.hash < rhs.hash }
}

extension NodeID: CustomStringConvertible {
    public var description: String { text }
}

extension NodeID: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = NodeID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a NodeID"))
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}

/// The identity of an op: SHA-256 of its signed body bytes.
public struct OpID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The SHA-256 of the body.
    public let hash: Hash32

    /// Wraps a hash that is already an op id.
    public init(hash: Hash32) { self.hash = hash }

    /// The op id of signed body bytes.
    public init(body: some DataProtocol) { self.hash = Hash32.sha256(body) }

    public init(from decoder: any Decoder) throws { hash = try Hash32(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try hash.encode(to: encoder) }

    public var description: String { hash.hex }

    public static func < (lhs: OpID, rhs: OpID) -> Bool { lhs.hash < rhs.hash }
}

/// The identity of an item: 16 bytes, bound to its originator.
///
/// `ItemID = SHA-256("liaison/v1/item" ‖ originator ‖ nonce)[0..<16]`, so nobody but the
/// originator can sign a create op for an id that collides with one of the originator's.
/// Its text form is lower-case hex grouped like a UUID.
public struct ItemID: Hashable, Comparable, Sendable {
    /// Upper and lower halves of the 16 bytes.
    let high: UInt64
    let low: UInt64

    /// Reads exactly 16 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        // Straight from contiguous storage (Data, arrays): every op decoded reads one.
        let fast = bytes.withContiguousStorageIfAvailable { buffer -> (UInt64, UInt64) in
            var high: UInt64 = 0
            var low: UInt64 = 0
            for index in 0..<8 { high = (high << 8) | UInt64(buffer[index]) }
            for index in 8..<16 { low = (low << 8) | UInt64(buffer[index]) }
            return (high, low)
        }
        if let (high, low) = fast {
            self.high = high
            self.low = low
            return
        }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (offset, byte) in bytes.enumerated() {
            if offset < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.high = high
        self.low = low
    }

    /// The id the originator's create op with this nonce defines.
    public init(originator: NodeID, nonce: some DataProtocol) {
        var hasher = SHA256()
        hasher.update(data: Array("liaison/v1/item".utf8))
        hasher.update(data: originator.bytes)
        hasher.update(data: nonce)
        let full = Hash32(hasher.finalize()).bytes
        self.init(bytes: full[0..<16])!
    }

    /// Parses the UUID-like text form (dashes optional).
    public init?(_ text: String) {
        let compact = text.filter { $0 != "-" }
        guard compact.count == 32, let bytes = Hex.decode(compact) else { return nil }
        self.init(bytes: bytes)
    }

    /// The 16 bytes.
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> UInt64(56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * $0)) }
    }

    /// The first eight bytes, most significant first: a compact key a store can index by
    /// (not unique on its own; a lookup compares the whole id too).
    public var leadingWord: UInt64 { high }

    /// UUID-like lower-case text.
    public var text: String {
        let hex = Array(Hex.encode(bytes))
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(hex[$0]) }.joined(separator: "-")
    }

    public static func < (lhs: ItemID, rhs: ItemID) -> Bool { (lhs.high, lhs.low) < (rhs.high, rhs.low) }
}

extension ItemID: CustomStringConvertible {
    public var description: String { text }
}

extension ItemID: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = ItemID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an item id"))
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}
