import LiaisonAPI
import LiaisonCore
import LiaisonNode

/// Items the honest partners put before the hostile partner turns, for the attacks to abuse:
/// per honest originator, a plain item (UNCLASSIFIED, REL TO ALL, originator-only) that the
/// partner and as many of its neighbours as possible hold — someone else's item to write to,
/// or to forge a write of — and an ORCON item the partner holds but, where the links allow,
/// its neighbours do not (ORCON: nobody but the originator passes it on, so a copy of it from
/// the partner is a re-share). They are ordinary puts: the drill checks their delivery too.
struct HostileBaits: Sendable {
    /// What a bait is for.
    enum Kind: Sendable, Equatable {
        case plain
        case orcon
    }

    /// One bait.
    struct Bait: Sendable {
        var kind: Kind
        var template: DrillWorkload.Template
    }

    /// The baits, in the order they are put.
    let baits: [Bait]
    /// The hostile partner's neighbours: who will be attacked.
    let attacked: Set<String>
    let hostile: String

    /// Their templates.
    var templates: [DrillWorkload.Template] { baits.map(\.template) }

    /// Chooses the baits for `hostile` in `topology`.
    init(topology: Topology, hostile: String, nodeIDs: [String: NodeID]) {
        self.hostile = hostile
        let attacked = Set(DrillTarget.neighbours(of: hostile, in: topology))
        self.attacked = attacked
        var collections = Set(["indicators", "reports"])
        for link in topology.links { collections.formUnion(link.filter.collections ?? []) }
        let candidates = collections.sorted()
        let lowest = topology.classifications.lowest
        var baits = [Bait]()
        for originator in topology.partners.map(\.name) where originator != hostile {
            for kind in [Kind.plain, .orcon] {
                let markings = Markings(
                    classification: lowest, releasableTo: [Markings.everyone], orcon: kind == .orcon)
                var best: (collection: String, holders: Set<String>, score: Int)?
                for collection in candidates {
                    let holders = topology.expectedReach(
                        originator: originator, markings: markings, collection: collection, tags: [],
                        nodeIDs: nodeIDs
                    ).holders
                    guard holders.contains(hostile) else { continue }
                    let reached = holders.intersection(attacked).subtracting([originator]).count
                    // Plain: reach as many of the attacked as possible; ORCON: as few.
                    let score = kind == .plain ? reached : -reached
                    if best == nil || score > best!.score { best = (collection, holders, score) }
                }
                guard let best else { continue }
                let label =
                    "bait: \(originator) \(lowest) REL TO ALL\(kind == .orcon ? " ORCON" : "") (\(best.collection))"
                baits.append(
                    Bait(
                        kind: kind,
                        template: DrillWorkload.Template(
                            label: label,
                            originator: originator,
                            body: PutItemBody(
                                collection: best.collection, classification: lowest, relTo: [Markings.everyone],
                                orcon: kind == .orcon ? true : nil),
                            classification: lowest,
                            holders: best.holders
                        )
                    ))
            }
        }
        self.baits = baits
    }

    /// The bait of `kind` to use against `receiver`: the hostile partner holds it; for a plain
    /// bait the receiver holds it too (prefer one the receiver originated when `ownFirst`,
    /// another's otherwise); for an ORCON bait, prefer one the receiver did not originate and
    /// does not hold. Returns its index among the baits.
    func pick(_ kind: Kind, for receiver: String, ownFirst: Bool = false) -> Int? {
        let indices = baits.indices.filter { baits[$0].kind == kind }
        func rank(_ index: Int) -> Int {
            let template = baits[index].template
            let own = template.originator == receiver
            switch kind {
            case .plain:
                guard template.holders.contains(receiver) else { return -1 }
                return own == ownFirst ? 2 : 1
            case .orcon:
                if own { return 1 }
                return template.holders.contains(receiver) ? 2 : 3
            }
        }
        return indices.filter { rank($0) > 0 }.max { rank($0) < rank($1) || (rank($0) == rank($1) && $0 > $1) }
    }
}
