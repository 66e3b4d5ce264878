public import Foundation

/// The protocol versions this build speaks.
public enum SyncProtocol {
    /// Versions, lowest first. Version 2 adds batch parts (`SyncMessage.batchPart`).
    public static let versions: [UInt32] = [1, 2]
    /// The first version that takes batch parts.
    public static let batchParts: UInt32 = 2
}

/// What a node says first on a channel.
public struct SyncHello: Hashable, Sendable {
    /// Protocol versions the sender speaks.
    public var versions: [UInt32]
    /// The sender's NodeID.
    public var nodeID: NodeID
    /// The sender's clock.
    public var hlc: HLCTimestamp
    /// The highest sequence of the receiver's log the sender has durably applied.
    public var checkpoint: UInt64

    /// Creates a hello.
    public init(versions: [UInt32] = SyncProtocol.versions, nodeID: NodeID, hlc: HLCTimestamp, checkpoint: UInt64) {
        self.versions = versions
        self.nodeID = nodeID
        self.hlc = hlc
        self.checkpoint = checkpoint
    }
}

/// One message of the sync protocol (`proto/liaison/v1/sync.proto`), as the pure session
/// logic sees it; LiaisonWire turns it into frames.
public enum SyncMessage: Hashable, Sendable {
    /// Opens the session.
    case hello(SyncHello)
    /// Encoded signed ops from the sender's log, covering it up to `throughSeq`.
    case batch(ops: [Data], throughSeq: UInt64)
    /// The receiver committed the sender's log up to `throughSeq`.
    case ack(throughSeq: UInt64)
    /// Part `part` (1, 2, …) of the item history sent ahead of the sender's log entry
    /// `throughSeq`, then that entry's own op (protocol version 2). It covers nothing: the
    /// entry's last piece comes as a whole `batch` through `throughSeq`.
    case batchPart(ops: [Data], throughSeq: UInt64, part: UInt32)
    /// The receiver committed part `part` of the history ahead of `throughSeq`.
    case partAck(throughSeq: UInt64, part: UInt32)
    /// Heartbeat.
    case ping(nonce: UInt64)
    /// Heartbeat answer.
    case pong(nonce: UInt64)
    /// The sender closes the channel.
    case goodbye(reason: String)
    /// An encoded `SealedEnvelope`: for us, or for a relay to carry on.
    case envelope(Data)
    /// An encoded `EnvelopeReceipt` travelling back to an envelope's sender.
    case receipt(Data)
    /// An encoded `GovernanceStatements`: revocations and re-admissions with their
    /// endorsements (`GovernanceFrame`).
    case governance(Data)
}
