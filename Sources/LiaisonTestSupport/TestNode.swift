import Crypto
public import Foundation
public import LiaisonCore

/// A test identity: a partner name and a deterministic Ed25519 signing key.
public struct TestNode: Sendable, Hashable, CustomStringConvertible {
    /// The partner's name, as REL TO lists and link filters name it.
    public let name: String
    /// The node's authority to author and sign ops.
    public let author: OpAuthor

    /// A node whose private key is 32 bytes drawn from `SeededGenerator(seed:)`.
    public init(name: String, seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let raw = generator.bytes(32)
        // 32 bytes are always a valid Ed25519 private key.
        let key = try! Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        self.name = name
        self.author = OpAuthor(signingKey: key)
    }

    /// The node's identity.
    public var nodeID: NodeID { author.nodeID }

    /// The raw 32-byte Ed25519 public key, as a batch proof carries it.
    public var publicKeyBytes: Data { author.signingKey.publicKey.rawRepresentation }

    /// An Ed25519 signature of `message` with this node's key.
    public func signature(for message: Data) throws -> Data {
        try author.signingKey.signature(for: message)
    }

    /// This node as the receiving end of a link.
    public func recipient(groups: Set<String> = []) -> Recipient {
        Recipient(name: name, nodeID: nodeID, groups: groups)
    }

    /// The originator in most tests.
    public static let alice = TestNode(name: "alice", seed: 0xA11CE)
    /// A partner.
    public static let bob = TestNode(name: "bob", seed: 0xB0B)
    /// Another partner.
    public static let carol = TestNode(name: "carol", seed: 0xCA801)
    /// A hostile partner.
    public static let mallory = TestNode(name: "mallory", seed: 0x3A110E7)

    public static func == (lhs: TestNode, rhs: TestNode) -> Bool { lhs.nodeID == rhs.nodeID }
    public func hash(into hasher: inout Hasher) { hasher.combine(nodeID) }
    public var description: String { name }
}
