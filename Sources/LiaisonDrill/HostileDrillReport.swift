import Foundation

/// What the hostile-partner drill measured. Times given as `…Millis` offsets count from the
/// moment the drill began writing; latencies are put-to-first-seen, so they include up to one
/// observation interval (about 100 ms).
public struct HostileDrillReport: Codable, Sendable {
    /// One attack against one honest receiver.
    public struct Outcome: Codable, Sendable {
        /// The honest node attacked.
        public var receiver: String
        /// When the attack was sent.
        public var sentAtMillis: Double
        /// What exactly went (op kinds, frame sizes, counts).
        public var sent: String
        /// Ids of the ops the attack carried (hex), refused or not.
        public var opIDs: [String]
        /// The strike class that must count the attack against the hostile partner (nil: the
        /// attack has no class of its own).
        public var expectedStrike: String?
        /// Strikes counted against the hostile partner at the receiver while the attack was
        /// running, by class.
        public var strikes: [String: UInt64]
        /// Whether the expected class counted it (read from `GET /v1/quarantines`).
        public var detected: Bool
        /// From sending to the strike showing in the API.
        public var detectedAfterMillis: Double?
        /// Whether the receiver kept none of it: the ops that must not be stored are absent from
        /// its store (read from the store after the nodes stopped), or it closed the channel.
        /// Nil where nothing is to refuse.
        public var refused: Bool?
        /// How `refused` was established.
        public var refusedDetail: String
        /// Whether the receiver's custody log (`GET /v1/audit`) has an entry for the attack.
        public var audited: Bool
        /// The first few such entries, as `kind: detail`.
        public var audit: [String]
        /// What else the drill saw (a channel closed, a goodbye, a link's lag, memory).
        public var notes: [String]
        /// Set when the node under attack did something it must not (or failed to do what it
        /// must): a finding for the node, with the evidence.
        public var finding: String?
    }

    /// One attack and how every receiver met it.
    public struct Attack: Codable, Sendable {
        /// `forged`, `replayed`, … (see docs/drills.md).
        public var name: String
        /// What the hostile partner does.
        public var description: String
        /// Per honest receiver.
        public var outcomes: [Outcome]
        /// When it began and ended.
        public var startedAtMillis: Double
        public var endedAtMillis: Double
        /// Put-to-visible at the other honest nodes for puts written while it ran.
        public var honestLatencyP50Millis: Double?
        public var honestLatencyP99Millis: Double?
        public var honestDeliveries: Int
        /// Channels between honest nodes that died while it ran (`NODE-PEER: count (last
        /// reason)`): a hostile partner may slow its own link, not others (I7).
        public var honestChannelsLost: [String]
    }

    /// The hostile partner's quarantine at one honest node.
    public struct QuarantineSeen: Codable, Sendable {
        /// The honest node.
        public var node: String
        /// Whether it quarantined the hostile partner by the end.
        public var quarantined: Bool
        /// When (offset), and from when its ops are left out (offset: negative is before the
        /// drill began writing).
        public var atMillis: Double?
        public var sinceMillis: Double?
        /// As the API gives them (ISO 8601).
        public var at: String?
        public var since: String?
        /// Why (the strike class and count that crossed its threshold).
        public var reason: String?
        /// Whether its strikes did it rather than an operator.
        public var automatic: Bool?
        /// The attack that was running (or `persisting`: forged ops sent after the attacks).
        public var during: String?
        /// Every strike counted against the hostile partner at this node, by class.
        public var strikes: [String: UInt64]
    }

    /// `hostile-partner`.
    public var scenario: String
    /// The partner that turned.
    public var hostile: String
    /// The federation's name and partners; the honest ones.
    public var federation: String
    public var partners: [String]
    public var honest: [String]
    /// When the partner's node stopped and the hostile partner took its place.
    public var turnedAtMillis: Double
    public var turnedAt: String
    /// When the last attack ended, and when every attacked node had quarantined the partner.
    public var attacksEndedAtMillis: Double
    public var containedAtMillis: Double?
    /// The attacks, in the order sent.
    public var attacks: [Attack]
    /// Forged ops the hostile partner kept sending after the attacks until every attacked
    /// node quarantined it.
    public var persistedForgedOps: Int
    /// The hostile partner's quarantine at every honest node.
    public var quarantines: [QuarantineSeen]
    /// A create the hostile partner sent, once one node had quarantined it, to a node that had
    /// not yet: what became of it where (it may reach the first only through honest partners).
    public var lateOp: String?
    /// Connections the hostile partner tried after it was quarantined that the honest nodes
    /// closed before their hello, by node.
    public var connectionsRefusedAfterQuarantine: [String: Int]
    /// Items written (through the honest nodes' APIs; the hostile partner's own only before it
    /// turned), and puts that failed.
    public var opsWritten: Int
    public var putFailures: Int
    /// Deliveries to honest nodes (an item at an honest holder other than its originator).
    public var deliveriesExpected: Int
    public var deliveriesAchieved: Int
    /// Put-to-visible at the other honest nodes before the partner turned, and from the turn
    /// until it was contained (or the attacks ended).
    public var baselineLatencyP50Millis: Double?
    public var baselineLatencyP99Millis: Double?
    public var attackLatencyP50Millis: Double?
    public var attackLatencyP99Millis: Double?
    public var attackLatencyMaxMillis: Double?
    /// Deliveries the attack-time figures are made of.
    public var attackDeliveries: Int
    /// Honest puts missing at an honest node entitled to them, or held there with another
    /// digest than the originator's. Must be 0.
    public var lost: Int
    /// Items held by an honest node not entitled to them, items of the hostile partner left in
    /// an honest node's items after it quarantined the partner, and hostile ops in an honest
    /// store that must not be there. Must be 0.
    public var leaked: Int
    public var lostDetail: [String]
    public var leakedDetail: [String]
    /// Items held by two or more honest nodes, and those whose digests differ. Must be 0.
    public var sharedItems: Int
    public var digestMismatches: Int
    public var digestDetail: [String]
    /// Each honest node against its twin: a store given the same log without the ops the
    /// partner stamped once it had turned. Items compared, and those that differ (must be 0);
    /// the partner's own items created after it turned are counted apart.
    public var twinItems: Int
    public var twinMismatches: Int
    public var twinDetail: [String]
    public var attackerItemsOutsideTwin: Int
    /// Strikes an honest node counted against another honest partner. Must be empty.
    public var honestStrikes: [String]
    /// What the attacks found in the nodes: an attack not detected or not refused, with the
    /// evidence. The drill fails on any.
    public var findings: [String]
    /// Channels between honest nodes that died during an attack: a hostile partner may slow
    /// its own link but not stall others (I7). Reported, not failed on: on a loaded machine a
    /// channel can also die of load alone.
    public var disruptions: [String]
    /// Why the drill did not pass (findings included).
    public var problems: [String]
    /// Whether every attack was detected, refused where there was something to refuse, and
    /// audited; the partner was quarantined by every node it attacked; nothing was lost or
    /// leaked; honest digests agree with each other and with their twins; no honest partner
    /// was struck.
    public var passed: Bool
    /// Where the node directories and logs were kept (`--keep`).
    public var directory: String?

    /// A short readable account, one line each.
    public var summary: [String] {
        func ms(_ value: Double?) -> String { value.map { String(format: "%.0f ms", $0) } ?? "-" }
        var lines = [
            "drill hostile-partner \(hostile) on \(federation) (\(partners.joined(separator: ", "))); "
                + "honest: \(honest.joined(separator: ", "))",
            "\(hostile) turned hostile at \(ms(turnedAtMillis)) (\(turnedAt)); attacks ended at \(ms(attacksEndedAtMillis)); "
                + "contained at \(ms(containedAtMillis))",
        ]
        for attack in attacks {
            lines.append(
                "\(attack.name) (\(ms(attack.startedAtMillis)) .. \(ms(attack.endedAtMillis))): honest put -> visible "
                    + "p50 \(ms(attack.honestLatencyP50Millis)) p99 \(ms(attack.honestLatencyP99Millis)) "
                    + "(\(attack.honestDeliveries) deliveries)"
                    + (attack.honestChannelsLost.isEmpty
                        ? "" : "; honest channels lost: \(attack.honestChannelsLost.joined(separator: ", "))"))
            for outcome in attack.outcomes {
                let detected =
                    outcome.detected
                    ? "detected (\(outcome.expectedStrike ?? "?")) after \(ms(outcome.detectedAfterMillis))"
                    : "NOT detected\(outcome.expectedStrike.map { " (\($0))" } ?? "")"
                let refused =
                    switch outcome.refused {
                    case true?: "refused"
                    case false?: "NOT refused"
                    case nil: "nothing to refuse"
                    }
                let audited = outcome.audited ? "audited" : "NOT audited"
                lines.append(
                    "  \(attack.name) -> \(outcome.receiver): \(detected), \(refused) (\(outcome.refusedDetail)), \(audited)"
                )
                lines.append("      sent: \(outcome.sent)")
                for note in outcome.notes { lines.append("      \(note)") }
                if let finding = outcome.finding { lines.append("      FINDING: \(finding)") }
            }
        }
        if persistedForgedOps > 0 {
            lines.append("then \(persistedForgedOps) forged ops more until every attacked node quarantined \(hostile)")
        }
        for seen in quarantines {
            if seen.quarantined {
                lines.append(
                    "\(seen.node) quarantined \(hostile) at \(ms(seen.atMillis)) during \(seen.during ?? "-") "
                        + "(\(seen.automatic == true ? "automatic" : "by the operator"): \(seen.reason ?? "-")); "
                        + "its ops left out since \(ms(seen.sinceMillis))")
            } else {
                lines.append("\(seen.node) did NOT quarantine \(hostile)")
            }
            let strikes = seen.strikes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            lines.append("  strikes against \(hostile) at \(seen.node): \(strikes.joined(separator: ", "))")
        }
        if let lateOp { lines.append("late op: \(lateOp)") }
        for (node, count) in connectionsRefusedAfterQuarantine.sorted(by: { $0.key < $1.key }) {
            lines.append("\(node) closed \(count) connections of \(hostile) after the quarantine")
        }
        lines.append(
            "ops written \(opsWritten), failed puts \(putFailures); deliveries to honest nodes \(deliveriesAchieved)/\(deliveriesExpected)"
        )
        lines.append(
            "honest put -> visible: before p50 \(ms(baselineLatencyP50Millis)) p99 \(ms(baselineLatencyP99Millis)); "
                + "during the attack p50 \(ms(attackLatencyP50Millis)) p99 \(ms(attackLatencyP99Millis)) "
                + "max \(ms(attackLatencyMaxMillis)) (\(attackDeliveries) deliveries)")
        lines.append(
            "lost \(lost), leaked \(leaked); honest digests: \(sharedItems) shared items, \(digestMismatches) differ; "
                + "honest partners struck: \(honestStrikes.count)")
        lines.append(
            "twin without the attacker: \(twinItems) items compared over the honest nodes, \(twinMismatches) differ"
                + (attackerItemsOutsideTwin > 0
                    ? "; \(attackerItemsOutsideTwin) items the attacker created are not in it" : ""))
        for line in lostDetail + leakedDetail + digestDetail + twinDetail + honestStrikes { lines.append("  \(line)") }
        for disruption in disruptions { lines.append("disruption: \(disruption)") }
        for finding in findings { lines.append("finding: \(finding)") }
        for problem in problems where !findings.contains(problem) { lines.append("problem: \(problem)") }
        if let directory { lines.append("node directories and logs kept in \(directory)") }
        lines.append(passed ? "drill passed" : "drill FAILED")
        return lines
    }
}
