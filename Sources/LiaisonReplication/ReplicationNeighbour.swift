public import LiaisonCore

/// A neighbour as replication needs to know it.
public struct ReplicationNeighbour: Sendable, Hashable {
    /// The partner (name, NodeID, groups).
    public var partner: Recipient
    /// The filter of the link from this node to the neighbour; nil: nothing is sent.
    public var outbound: LinkFilter?
    /// The filter of the link from the neighbour to this node; nil: nothing may come.
    public var inbound: LinkFilter?

    /// Creates a neighbour.
    public init(partner: Recipient, outbound: LinkFilter?, inbound: LinkFilter?) {
        self.partner = partner
        self.outbound = outbound
        self.inbound = inbound
    }
}
