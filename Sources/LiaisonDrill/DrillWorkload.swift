import Foundation
public import LiaisonAPI
public import LiaisonCore
public import LiaisonNode

/// The items a drill writes: one template per kind of item, derived from the topology's
/// links so that items go to different sets of partners. Each template knows who should end
/// up holding its items.
public struct DrillWorkload: Sendable {
    /// One kind of item.
    public struct Template: Sendable {
        /// Readable, e.g. `alpha SECRET REL TO bravo (reports)`.
        public var label: String
        /// Where it is written.
        public var originator: String
        /// What is put (fields are added per item).
        public var body: PutItemBody
        /// Its classification, as the ladder spells it.
        public var classification: String
        /// Who should hold it: the originator and every partner reachable by eligible hops.
        public var holders: Set<String>
    }

    /// The templates, in the order they are written (round robin).
    public var templates: [Template]

    /// For every link X -> Y: an item at the link's ceiling released to Y only (relay
    /// partners with a lower clearance may carry it sealed but never read it), the same
    /// released to Y's first group, and an item at the lowest level released to ALL.
    public init(topology: Topology, nodeIDs: [String: NodeID]) throws(LiaisonError) {
        let ladder = topology.classifications
        var seen = Set<String>()
        var templates = [Template]()
        func add(
            _ originator: String, _ collection: String, _ level: String, _ relTo: [String], tags: [String]
        ) throws(LiaisonError) {
            let key =
                "\(originator)|\(collection)|\(level)|\(relTo.joined(separator: ","))|\(tags.joined(separator: ","))"
            guard seen.insert(key).inserted else { return }
            let markings = Markings(classification: try ladder.level(named: level), releasableTo: relTo)
            let reach = topology.expectedReach(
                originator: originator,
                markings: markings,
                collection: collection,
                tags: Set(tags),
                nodeIDs: nodeIDs
            )
            templates.append(
                Template(
                    label:
                        "\(originator) \(markings.classification) REL TO \(relTo.joined(separator: ",")) (\(collection))",
                    originator: originator,
                    body: PutItemBody(
                        collection: collection,
                        classification: markings.classification,
                        relTo: relTo,
                        tags: tags.isEmpty ? nil : tags
                    ),
                    classification: markings.classification,
                    holders: reach.holders
                )
            )
        }
        for link in topology.links {
            let collection = link.filter.collections?.sorted().first ?? "reports"
            let ceiling = link.filter.maxClassification ?? ladder.levels[max(0, ladder.levels.count - 2)]
            let tags = link.filter.requiredTags.sorted()
            try add(link.from, collection, ceiling, [link.to], tags: tags)
            if let group = topology.partner(link.to)?.groups.first {
                try add(link.from, collection, ceiling, [group], tags: tags)
            }
            try add(link.from, collection, ladder.lowest, [Markings.everyone], tags: tags)
        }
        guard !templates.isEmpty else {
            throw LiaisonError(.invalidArgument, "the topology has no links, so a drill has nothing to replicate")
        }
        self.templates = templates
    }
}
