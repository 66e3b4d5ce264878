extension Eligibility {
    /// The recall rules of `decide`, checked before the others; nil when they do not apply.
    ///
    /// - A recall whose audience names `recipient` (by name, group or `ALL`) goes to it when
    ///   the item's current markings or `earlierMarkings` released the item to it, and the
    ///   rest of the rules (ORCON, the classification ceiling, the collection, tags) let the
    ///   item over the link: the content-free, originator-signed notice of DESIGN §5.7, which
    ///   the recipient needs to purge.
    /// - While a recall is in force for `recipient` (`ItemState.recallInForce(for:)`), the
    ///   item's content ops (create, set fields, tags) are withheld from it (`recalled`);
    ///   notices (changes of markings, recalls, deletes) follow the other rules.
    static func recallDecision(
        op: VerifiedOp,
        item: ItemSummary,
        earlierMarkings: [Markings],
        sender: NodeID,
        recipient: Recipient,
        filter: LinkFilter,
        ladder: ClassificationLadder
    ) -> Eligibility? {
        guard recipient.nodeID != item.originator else { return nil }
        if case .recall(let audience, _) = op.body.change, !audience.isEmpty, recipient.isNamed(in: audience) {
            let released = ([item.markings] + earlierMarkings).contains {
                $0.isReleasable(toPartner: recipient.name, groups: recipient.groups)
            }
            guard released else { return .withhold(.notReleasable) }
            let reason = withholdReason(
                markings: item.markings,
                collection: item.collection,
                tags: item.tags,
                originator: item.originator,
                opAuthor: op.body.author,
                sender: sender,
                recipient: recipient,
                filter: filter,
                ladder: ladder,
                wasReleased: true
            )
            return reason.map(Eligibility.withhold) ?? .send
        }
        if op.carriesContent, item.recallInForce(for: recipient) != nil {
            return .withhold(.recalled)
        }
        return nil
    }
}
