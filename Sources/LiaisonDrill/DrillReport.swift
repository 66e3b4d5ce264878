import Foundation
public import LiaisonNode

/// What a drill on real processes measured. Times given as `…Millis` offsets count from the
/// moment the drill began writing; latencies are put-to-first-seen, so they include up to one
/// observation interval (about 100 ms).
public struct DrillReport: Codable, Sendable {
    /// `/v1/links` of one node, taken during the fault.
    public struct LinkSnapshot: Codable, Sendable {
        /// When it was taken.
        public var atMillis: Double
        /// The node asked.
        public var node: String
        /// Its rows, or nil when it did not answer.
        public var links: [LinkStatus]?
        /// Why it did not answer.
        public var error: String?
    }

    /// How the partner the fault cut off fared.
    public struct CutOff: Codable, Sendable {
        /// The partner.
        public var partner: String
        /// Only writes by this partner count (link-cut: the other end); nil: writes by anyone.
        public var from: String?
        /// From the fault to the first delivery to `partner` of an op written after the fault
        /// began; nil when none arrived.
        public var firstDeliveryAfterFaultMillis: Double?
        /// Ops written during the fault that `partner` should hold.
        public var expectedFromFault: Int
        /// Of those, how many reached it before the heal.
        public var deliveredDuringFault: Int
        /// The same, by classification of the op.
        public var deliveredDuringFaultByClassification: [String: Int]
        /// Ops written during the fault that `partner` should hold, by classification.
        public var expectedFromFaultByClassification: [String: Int]
        /// From the fault to the first delivery of a post-fault op, by classification. For a
        /// level the relays may not read (SECRET in drill.yaml) this is the time to the
        /// first delivery on the backup channel or through a sealed relay. It includes the
        /// wait for the first such op to be written after the fault.
        public var firstDeliveryAfterFaultByClassification: [String: Double] = [:]
    }

    /// One proxy the fault cut, and what went through it.
    public struct CutProxy: Codable, Sendable {
        /// The node that dials through it.
        public var dialler: String
        /// The partner it leads to, and that partner's endpoint index.
        public var peer: String
        public var endpoint: Int
        /// Bytes forwarded and dropped (blackholed) over the whole drill, both directions.
        public var bytesForwarded: Int
        public var bytesDropped: Int
        /// Connections refused while it was cut.
        public var connectionsRefused: Int
    }

    /// `link-cut`, `endpoint-down` or `partner-down`.
    public var scenario: String
    /// What was broken: `A-B`, `P:i` or `P`.
    public var target: String
    /// The federation's name.
    public var federation: String
    /// Its partners.
    public var partners: [String]
    /// Fault injection and heal, as offsets and as wall-clock times (ISO 8601).
    public var faultStartedAtMillis: Double
    public var healedAtMillis: Double
    public var faultStartedAt: String
    public var healedAt: String
    /// Items written (one create op each), in total and while the fault lasted.
    public var opsWritten: Int
    public var opsWrittenDuringFault: Int
    /// Puts that failed (a put racing a partner's kill may).
    public var putFailures: Int
    /// Deliveries (an item at a partner other than its originator) expected, seen, and seen
    /// while the fault lasted.
    public var deliveriesExpected: Int
    public var deliveriesAchieved: Int
    public var deliveriesDuringFault: Int
    /// The partner the fault cut off (link-cut, endpoint-down).
    public var cutOff: CutOff?
    /// Latency of the deliveries of ops written during the fault, median and worst.
    public var faultLatencyP50Millis: Double?
    public var faultLatencyMaxMillis: Double?
    /// Median latency of ops written before the fault, for comparison.
    public var baselineLatencyP50Millis: Double?
    /// From the heal to the last expected delivery (writing goes on after the heal, so this
    /// includes that); nil when the federation did not converge.
    public var convergedAfterHealMillis: Double?
    /// From the heal until every op written during the fault was everywhere it belongs (0
    /// when all of them arrived before the heal); nil when the federation did not converge.
    public var faultOpsDeliveredAfterHealMillis: Double?
    /// Expected deliveries missing at the end. Must be 0.
    public var lost: Int
    /// Items held (at any observation, or at the end) by a partner that should not hold them.
    /// Must be 0.
    public var leaked: Int
    /// The first few lost and leaked deliveries, readable.
    public var lostDetail: [String]
    public var leakedDetail: [String]
    /// Links of the affected nodes during the fault.
    public var linkSnapshots: [LinkSnapshot]
    /// The proxies the fault cut (link-cut, endpoint-down).
    public var cutProxies: [CutProxy]
    /// Why the drill did not pass (empty when it passed).
    public var problems: [String]
    /// Whether nothing was lost or leaked, the federation converged, and (link-cut,
    /// endpoint-down) the cut-off partner kept receiving during the fault.
    public var passed: Bool
    /// Where the node directories and logs were kept (`--keep`).
    public var directory: String?

    /// A short readable account, one line each.
    public var summary: [String] {
        func ms(_ value: Double?) -> String { value.map { String(format: "%.0f ms", $0) } ?? "-" }
        var lines = [
            "drill \(scenario) \(target) on \(federation) (\(partners.joined(separator: ", ")))",
            "fault at \(ms(faultStartedAtMillis)), healed at \(ms(healedAtMillis)) (\(faultStartedAt) .. \(healedAt))",
            "ops written \(opsWritten), during the fault \(opsWrittenDuringFault), failed puts \(putFailures)",
            "deliveries \(deliveriesAchieved)/\(deliveriesExpected), during the fault \(deliveriesDuringFault)",
        ]
        if let cutOff {
            let from = cutOff.from.map { " from \($0)" } ?? ""
            lines.append(
                "cut-off partner \(cutOff.partner): first post-fault op\(from) after \(ms(cutOff.firstDeliveryAfterFaultMillis)); "
                    + "received \(cutOff.deliveredDuringFault)/\(cutOff.expectedFromFault) fault-time ops before the heal"
            )
            for (level, expected) in cutOff.expectedFromFaultByClassification.sorted(by: { $0.key < $1.key }) {
                lines.append(
                    "  \(level): \(cutOff.deliveredDuringFaultByClassification[level] ?? 0)/\(expected), "
                        + "first after \(ms(cutOff.firstDeliveryAfterFaultByClassification[level]))"
                )
            }
        }
        lines.append(
            "latency of fault-time ops p50 \(ms(faultLatencyP50Millis)) max \(ms(faultLatencyMaxMillis)) "
                + "(before the fault p50 \(ms(baselineLatencyP50Millis)))"
        )
        lines.append(
            "ops written during the fault all delivered \(ms(faultOpsDeliveredAfterHealMillis)) after the heal; "
                + "converged \(ms(convergedAfterHealMillis)) after the heal (writing went on after it)"
        )
        lines.append("lost \(lost), leaked \(leaked)")
        for line in lostDetail + leakedDetail { lines.append("  \(line)") }
        for snapshot in linkSnapshots {
            let rows =
                snapshot.links.map { rows in
                    rows.map { row in
                        let channels = row.channels.map { channel in
                            "\(channel.endpoint) \(channel.state)\(channel.lastContact.map { " last heard \($0.suffix(13))" } ?? "")"
                        }
                        return "\(row.peer) \(row.state), path \(row.path) [\(channels.joined(separator: "; "))]"
                    }.joined(separator: ", ")
                } ?? "no answer (\(snapshot.error ?? "?"))"
            lines.append("links at \(snapshot.node) +\(ms(snapshot.atMillis)): \(rows)")
        }
        for proxy in cutProxies {
            lines.append(
                "proxy \(proxy.dialler) -> \(proxy.peer):\(proxy.endpoint): \(proxy.bytesForwarded) bytes forwarded, "
                    + "\(proxy.bytesDropped) dropped, \(proxy.connectionsRefused) connections refused"
            )
        }
        for problem in problems { lines.append("problem: \(problem)") }
        if let directory { lines.append("node directories and logs kept in \(directory)") }
        lines.append(passed ? "drill passed" : "drill FAILED")
        return lines
    }
}
