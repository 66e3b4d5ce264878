public import LiaisonCore
public import LiaisonNode

/// What a drill on real processes breaks.
public enum DrillScenario: String, Sendable, Codable, CaseIterable {
    /// Every proxy between two partners (both directions of dialling, every endpoint) is cut.
    case linkCut = "link-cut"
    /// Every proxy in front of one endpoint of one partner (say its primary network) is cut.
    case endpointDown = "endpoint-down"
    /// One partner's node is killed (SIGKILL); the heal restarts it from its directory.
    case partnerDown = "partner-down"
    /// One partner runs honestly, then its node stops and the drill process takes its place
    /// with its valid keys and attacks the others over the sync protocol (`HostileDrill`).
    case hostilePartner = "hostile-partner"

    /// The scenario named `name`, or an error listing the scenarios.
    public static func named(_ name: String) throws(LiaisonError) -> DrillScenario {
        guard let scenario = DrillScenario(rawValue: name) else {
            throw LiaisonError(
                .invalidArgument,
                "unknown scenario '\(name)'; use one of: \(allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        return scenario
    }
}

/// The thing a scenario breaks.
public enum DrillTarget: Sendable, Equatable, CustomStringConvertible {
    /// The link between two partners; the second is the one cut off from the first's writes.
    case link(String, String)
    /// Endpoint `index` (0: primary) of a partner.
    case endpoint(String, index: Int)
    /// A partner's node (partner-down: the one killed; hostile-partner: the one that turns).
    case partner(String)

    public var description: String {
        switch self {
        case .link(let a, let b): "\(a)-\(b)"
        case .endpoint(let partner, let index): "\(partner):\(index)"
        case .partner(let partner): partner
        }
    }

    /// Parses `--target` for `scenario` against `topology`: `A-B` for link-cut (partner names
    /// may hold '-', so every split is tried), `P:i` for endpoint-down, `P` for partner-down and
    /// hostile-partner.
    /// Without text, picks a default from the topology.
    public static func resolve(
        _ text: String?,
        scenario: DrillScenario,
        topology: Topology
    ) throws(LiaisonError) -> DrillTarget {
        guard let text else { return try defaultTarget(scenario: scenario, topology: topology) }
        let known = Set(topology.partners.map(\.name))
        switch scenario {
        case .linkCut:
            var candidates = [(String, String)]()
            for index in text.indices where text[index] == "-" {
                let a = String(text[..<index])
                let b = String(text[text.index(after: index)...])
                if known.contains(a), known.contains(b) { candidates.append((a, b)) }
            }
            guard candidates.count == 1, let (a, b) = candidates.first else {
                throw LiaisonError(
                    .invalidArgument,
                    candidates.isEmpty
                        ? "--target '\(text)' for link-cut must be two partners as A-B; partners: \(known.sorted().joined(separator: ", "))"
                        : "--target '\(text)' can be read more than one way; rename a partner or pick another pair"
                )
            }
            guard a != b else { throw LiaisonError(.invalidArgument, "--target '\(text)' names one partner twice") }
            guard topology.link(from: a, to: b) != nil || topology.link(from: b, to: a) != nil else {
                throw LiaisonError(
                    .invalidArgument, "--target '\(text)': \(a) and \(b) share no link, so there is nothing to cut")
            }
            return .link(a, b)
        case .endpointDown:
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let index = Int(parts[1]), index >= 0 else {
                throw LiaisonError(
                    .invalidArgument, "--target '\(text)' for endpoint-down must be PARTNER:INDEX, e.g. bravo:0")
            }
            let name = String(parts[0])
            guard let partner = topology.partner(name) else {
                throw LiaisonError(
                    .invalidArgument,
                    "--target '\(text)': no partner '\(name)'; partners: \(known.sorted().joined(separator: ", "))")
            }
            guard index < partner.endpoints.count else {
                throw LiaisonError(
                    .invalidArgument,
                    "--target '\(text)': \(name) has \(partner.endpoints.count) endpoint(s), numbered from 0"
                )
            }
            guard !diallers(of: name, in: topology).isEmpty else {
                throw LiaisonError(
                    .invalidArgument, "--target '\(text)': no partner dials \(name), so there is nothing to cut")
            }
            return .endpoint(name, index: index)
        case .partnerDown:
            guard known.contains(text) else {
                throw LiaisonError(
                    .invalidArgument,
                    "--target '\(text)': no such partner; partners: \(known.sorted().joined(separator: ", "))")
            }
            return .partner(text)
        case .hostilePartner:
            guard known.contains(text) else {
                throw LiaisonError(
                    .invalidArgument,
                    "--target '\(text)': no such partner; partners: \(known.sorted().joined(separator: ", "))")
            }
            guard !neighbours(of: text, in: topology).isEmpty else {
                throw LiaisonError(
                    .invalidArgument, "--target '\(text)' shares no link with anyone, so it has no one to attack")
            }
            return .partner(text)
        }
    }

    /// Partners that dial `name` (the one with the smaller name dials, as rendered).
    static func diallers(of name: String, in topology: Topology) -> [String] {
        neighbours(of: name, in: topology).filter { $0 < name }
    }

    /// Partners sharing a link with `name`, in either direction.
    static func neighbours(of name: String, in topology: Topology) -> [String] {
        topology.partners.map(\.name).filter { other in
            other != name
                && (topology.link(from: name, to: other) != nil || topology.link(from: other, to: name) != nil)
        }
    }

    /// Defaults, among partners that are not relays when there are any: link-cut takes the
    /// pair linked both ways whose weaker direction carries the highest classification (the
    /// link that matters most); endpoint-down takes endpoint 0 of the partner with the most
    /// neighbours among those with a backup endpoint and a dialler; partner-down kills the
    /// partner with the most neighbours (the hub); hostile-partner turns the partner with the
    /// most neighbours too, the last by name among equals (in a federation of equals, a partner
    /// the others dial, so the hostile side serves as well as it dials).
    static func defaultTarget(scenario: DrillScenario, topology: Topology) throws(LiaisonError) -> DrillTarget {
        let ladder = topology.classifications
        let principals = topology.partners.filter { !$0.relay }.map(\.name)
        let names = principals.isEmpty ? topology.partners.map(\.name) : principals
        func ceiling(_ link: Topology.Link) -> Int {
            link.filter.maxClassification.flatMap(ladder.rank(of:)) ?? ladder.levels.count
        }
        func byNeighbours(_ candidates: [String]) -> String? {
            candidates.max { lhs, rhs in
                let (l, r) = (neighbours(of: lhs, in: topology).count, neighbours(of: rhs, in: topology).count)
                return l != r ? l < r : lhs > rhs
            }
        }
        switch scenario {
        case .linkCut:
            var best: (String, String, Int)?
            for a in names {
                for b in names where a < b {
                    guard let there = topology.link(from: a, to: b), let back = topology.link(from: b, to: a) else {
                        continue
                    }
                    let score = min(ceiling(there), ceiling(back))
                    if best == nil || score > best!.2 { best = (a, b, score) }
                }
            }
            guard let best else {
                throw LiaisonError(
                    .invalidArgument, "the topology has no pair of partners linked both ways; give --target A-B")
            }
            return .link(best.0, best.1)
        case .endpointDown:
            let candidates = names.filter { name in
                (topology.partner(name)?.endpoints.count ?? 0) > 1 && !diallers(of: name, in: topology).isEmpty
            }
            guard
                let pick = byNeighbours(candidates)
                    ?? byNeighbours(names.filter { !diallers(of: $0, in: topology).isEmpty })
            else {
                throw LiaisonError(.invalidArgument, "no partner is dialled by another; give --target PARTNER:INDEX")
            }
            return .endpoint(pick, index: 0)
        case .partnerDown:
            guard let pick = byNeighbours(names) else {
                throw LiaisonError(.invalidArgument, "the topology has no partners")
            }
            return .partner(pick)
        case .hostilePartner:
            let linked = names.filter { !neighbours(of: $0, in: topology).isEmpty }
            guard
                let pick = linked.max(by: { lhs, rhs in
                    let (l, r) = (neighbours(of: lhs, in: topology).count, neighbours(of: rhs, in: topology).count)
                    return l != r ? l < r : lhs < rhs
                })
            else {
                throw LiaisonError(.invalidArgument, "no partner shares a link with another; give --target PARTNER")
            }
            return .partner(pick)
        }
    }
}
