import Crypto
public import Foundation

/// SHA-256 over a canonical, unambiguous encoding: every variable-length value is
/// preceded by its length, integers are big-endian, and optional values by a presence byte.
/// Used for field digests, item digests and the custody chain.
public struct CanonicalHasher {
    private var sha = SHA256()

    /// Starts an empty hash.
    public init() {}

    /// Starts a hash with a domain separation label.
    public init(domain: String) {
        string(domain)
    }

    /// Bytes as they are, without a length (only where the length is fixed or last).
    public mutating func raw(_ bytes: some DataProtocol) { sha.update(data: bytes) }

    /// A length-prefixed byte string.
    public mutating func bytes(_ bytes: some Collection<UInt8>) {
        uint32(UInt32(bytes.count))
        sha.update(data: Array(bytes))
    }

    /// A length-prefixed byte string, hashed where it lies (a field's value is up to 1 MiB).
    public mutating func bytes(_ bytes: some DataProtocol) {
        uint32(UInt32(bytes.count))
        sha.update(data: bytes)
    }

    /// A length-prefixed UTF-8 string.
    public mutating func string(_ text: String) { bytes(Array(text.utf8)) }

    /// A big-endian 32-bit integer.
    public mutating func uint32(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { sha.update(bufferPointer: $0) }
    }

    /// A big-endian 64-bit integer.
    public mutating func uint64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { sha.update(bufferPointer: $0) }
    }

    /// A big-endian signed 64-bit integer.
    public mutating func int64(_ value: Int64) { uint64(UInt64(bitPattern: value)) }

    /// One byte: 1 for true, 0 for false.
    public mutating func bool(_ value: Bool) {
        withUnsafeBytes(of: UInt8(value ? 1 : 0)) { sha.update(bufferPointer: $0) }
    }

    /// A 32-byte hash.
    public mutating func hash(_ value: Hash32) { value.withUnsafeBytes { sha.update(bufferPointer: $0) } }

    /// A count-prefixed list of strings.
    public mutating func strings(_ values: [String]) {
        uint32(UInt32(values.count))
        for value in values { string(value) }
    }

    /// The digest.
    public func finalize() -> Hash32 { Hash32(sha.finalize()) }
}
