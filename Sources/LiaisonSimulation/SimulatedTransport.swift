import LiaisonCore
import LiaisonTransport
import NIOCore

/// The simulator's `PeerTransport`: what a node's interpreter wrote or closed, in order,
/// for the world to put on its simulated network after each call.
final class SimulatedTransport: PeerTransport {
    /// One thing the interpreter asked of the network.
    struct Item {
        enum Kind {
            case frame(ByteBuffer)
            case close(String)
        }

        var channel: ChannelID
        var kind: Kind
    }

    /// Not yet taken by the world.
    var outbox: [Item] = []

    func send(_ frame: ByteBuffer, on channel: ChannelID) {
        outbox.append(Item(channel: channel, kind: .frame(frame)))
    }

    func close(_ channel: ChannelID, reason: String) {
        outbox.append(Item(channel: channel, kind: .close(reason)))
    }
}
