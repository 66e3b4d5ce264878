public import LiaisonCore

/// `node.json`: what a node directory says about its node. Written by `liaison init`.
public struct NodeConfig: Codable, Sendable, Equatable {
    /// Version of this file's format.
    public var format: Int
    /// The partner's name (as REL TO names it).
    public var name: String
    /// The node's identity, derived from its signing key.
    public var nodeID: NodeID
    /// SHA-256 of the TLS certificate's DER, lower-case hex: what peers pin.
    public var tlsFingerprint: String
    /// The federation's classification ladder, lowest first.
    public var classifications: ClassificationLadder
    /// How far in the future a received HLC stamp may be, in milliseconds.
    public var maxClockSkewMillis: UInt64

    /// The format this build writes and reads.
    public static let currentFormat = 1

    /// Creates a configuration.
    public init(
        name: String,
        nodeID: NodeID,
        tlsFingerprint: String,
        classifications: ClassificationLadder = .standard,
        maxClockSkewMillis: UInt64 = 60_000
    ) {
        self.format = Self.currentFormat
        self.name = name
        self.nodeID = nodeID
        self.tlsFingerprint = tlsFingerprint
        self.classifications = classifications
        self.maxClockSkewMillis = maxClockSkewMillis
    }

    /// Whether `name` is acceptable as a partner name: 1–64 letters, digits, `.`, `_` or `-`.
    public static func isValidPartnerName(_ name: String) -> Bool {
        name.utf8.count <= 64 && !name.contains(":") && !name.contains("/") && Names.isValid(name)
    }
}
