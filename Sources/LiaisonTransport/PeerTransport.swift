public import LiaisonCore
public import NIOCore

/// What the node interpreter needs of a network: write an encoded frame on a channel, and
/// close a channel. Writes never block the caller; a transport queues them per channel and
/// reports what arrives, and channels it loses, back to the interpreter as events. The
/// daemon's implementation writes on pinned TLS connections (SwiftNIO, swift-nio-ssl); the
/// simulator's is an in-process network with faults.
public protocol PeerTransport {
    /// Queues one encoded frame (a `SyncFrameCodec` payload) for `channel`.
    func send(_ frame: ByteBuffer, on channel: ChannelID)
    /// Closes `channel` once what was queued on it is written.
    func close(_ channel: ChannelID, reason: String)
}
