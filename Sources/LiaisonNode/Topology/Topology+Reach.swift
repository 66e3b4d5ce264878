public import LiaisonCore

extension Topology {
    /// One hop that did not carry an item, and why.
    public struct Refusal: Hashable, Sendable {
        /// The partner that held the item.
        public var from: String
        /// The neighbour it did not go to.
        public var to: String
        /// Why.
        public var reason: WithholdReason
    }

    /// Who should end up holding an item created at `originator`: the partners reachable
    /// along links whose eligibility lets the item through, hop by hop (ORCON items are
    /// passed on by nobody but the originator). Also the hops that refused it.
    public func expectedReach(
        originator: String,
        markings: Markings,
        collection: String,
        tags: Set<String>,
        nodeIDs: [String: NodeID]
    ) -> (holders: Set<String>, refusals: [Refusal]) {
        guard let originatorID = nodeIDs[originator] else { return ([], []) }
        var holders: Set<String> = [originator]
        var frontier = [originator]
        var refusals = [Refusal]()
        while let sender = frontier.first {
            frontier.removeFirst()
            guard let senderID = nodeIDs[sender] else { continue }
            for link in links where link.from == sender {
                guard let recipientID = nodeIDs[link.to], let partner = partner(link.to) else { continue }
                let reason = Eligibility.withholdReason(
                    markings: markings,
                    collection: collection,
                    tags: tags,
                    originator: originatorID,
                    opAuthor: originatorID,
                    sender: senderID,
                    recipient: Recipient(name: partner.name, nodeID: recipientID, groups: Set(partner.groups)),
                    filter: link.filter,
                    ladder: classifications
                )
                if let reason {
                    if !holders.contains(link.to) {
                        refusals.append(Refusal(from: sender, to: link.to, reason: reason))
                    }
                } else if holders.insert(link.to).inserted {
                    frontier.append(link.to)
                }
            }
        }
        return (holders, refusals.filter { !holders.contains($0.to) })
    }
}
