import Foundation
public import LiaisonCore
public import LiaisonNode
import LiaisonStore
import Metrics
import Prometheus
import Synchronization

/// The node's Prometheus metrics, served at `/metrics` (DESIGN §7; docs/operations.md lists
/// them). Instruments are swift-metrics types (`Counter`, `Gauge`, `Timer`) whose handlers
/// are swift-prometheus metrics of one registry per node, made with their help text:
/// swift-prometheus' `MetricsFactory` makes handlers without one, and `promtool check
/// metrics` refuses a metric without help. The exposition is swift-prometheus' own.
///
/// Commit latency is observed as commits happen. Everything else is read at each scrape from
/// what the node already keeps (link health, containment, the store), so the engine carries
/// no metrics code: gauges are set, and counters advance by what the engine's counters grew
/// since the last scrape. Labels are partner names, endpoints and fixed vocabularies
/// (directions, states, reasons, classes): never item ids or anything per op.
public final class NodeMetrics: Sendable {
    /// The registry every instrument lives in.
    let registry = PrometheusCollectorRegistry()
    /// What each mirrored counter stood at when last exposed, by series.
    private let mirrored = Mutex([String: UInt64]())
    /// Swift-metrics instruments by series, made once.
    private let instruments = Mutex(Instruments())
    private let node: LocalNode
    /// The commit latency histograms, by source.
    private let commitTimers: [ReplicationEngine.CommitSource: Metrics.Timer]

    private struct Instruments {
        var counters: [String: Metrics.Counter] = [:]
        var gauges: [String: Metrics.Gauge] = [:]
    }

    /// The buckets of the commit latency histogram: a single op's fsync on a quiet disk up to
    /// a bulk put of thousands of items.
    static let commitBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    /// Metrics of `node`; its name is in `liaison_node_info`.
    public init(node: LocalNode) {
        self.node = node
        var timers = [ReplicationEngine.CommitSource: Metrics.Timer]()
        for source in [ReplicationEngine.CommitSource.partner, .local] {
            let histogram = registry.makeDurationHistogram(
                descriptor: Self.descriptor(
                    "liaison_store_commit_duration_seconds",
                    help:
                        "Time the store took to commit a batch of ops: a partner's batch or a put here (one item or a bulk put)."
                ),
                labels: [("source", source.rawValue)],
                buckets: Self.commitBuckets
            )
            timers[source] = Metrics.Timer(
                label: "liaison_store_commit_duration_seconds", dimensions: [("source", source.rawValue)],
                handler: histogram)
        }
        commitTimers = timers
        gauge("liaison_node_info", [("node", node.config.name)], help: "This node, by name; always 1.").record(1)
    }

    /// Records one commit (`ReplicationEngine.observeCommits`).
    public func observeCommit(_ source: ReplicationEngine.CommitSource, ops: Int, duration: Duration) {
        commitTimers[source]?.record(duration: duration)
    }

    /// The text exposition, after reading the node's state: `links` and `containment` as the
    /// engine reports them now.
    public func exposition(links: [LinkStatus], containment: ContainmentState) -> String {
        update(links: links, containment: containment)
        var buffer = [UInt8]()
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    // MARK: - Reading the node's state

    /// The states a link and a channel can be in (`LinkStatus.state`, `ChannelStatus.state`).
    static let linkStates = ["up", "relayed", "connecting", "down"]
    static let channelStates = ["carrying", "standby", "held", "connecting", "down"]

    private func update(links: [LinkStatus], containment: ContainmentState) {
        for link in links {
            let partner = [("partner", link.peer)]
            gauge("liaison_link_lag_ops", partner, help: "Ops of this node's log the partner has not acknowledged.")
                .record(link.lagOps)
            gauge(
                "liaison_link_lag_seconds", partner,
                help: "Seconds since the partner last acknowledged while ops were unacknowledged (0 when caught up)."
            ).record(link.lagSeconds)
            for (direction, ops, bytes) in [
                ("sent", link.opsSent, link.bytesSent), ("received", link.opsReceived, link.bytesReceived),
            ] {
                let labels = partner + [("direction", direction)]
                mirror("liaison_link_ops_total", labels, to: ops, help: "Ops sent to and accepted from the partner.")
                mirror(
                    "liaison_link_bytes_total", labels, to: bytes,
                    help: "Frame bytes written to and read from the partner's channels.")
            }
            for reason in WithholdReason.allCases.map(\.rawValue) {
                mirror(
                    "liaison_link_ops_withheld_total", partner + [("reason", reason)],
                    to: link.withheldByReason?[reason] ?? 0,
                    help: "Ops the link's filter withheld from the partner, by reason.")
            }
            mirror(
                "liaison_link_ops_refused_total", partner, to: link.rejects,
                help: "Ops and frames from the partner refused here (each also a strike against its culprit).")
            mirror(
                "liaison_link_failovers_total", partner, to: UInt64(link.failovers),
                help: "Times the channel carrying the partner's link changed (failover or failback).")
            for state in Self.linkStates {
                gauge(
                    "liaison_link_state", partner + [("state", state)],
                    help: "The link's state: 1 for the state it is in, 0 for the others."
                ).record(link.state == state ? 1 : 0)
            }
            if let rtt = link.rttMillis {
                gauge(
                    "liaison_link_rtt_seconds", partner,
                    help: "Last measured heartbeat round trip on the carrying channel."
                ).record(Double(rtt) / 1000)
            }
            gauge(
                "liaison_link_envelopes_awaiting_receipt", partner,
                help: "Sealed envelopes for the partner sent through relays and not yet receipted."
            ).record(link.envelopesAwaiting)
            gauge(
                "liaison_link_relay_held", partner,
                help: "Envelopes and receipts this node holds as a relay for the partner, waiting for a channel."
            ).record(link.relayHeld)
            for channel in link.channels {
                for state in Self.channelStates {
                    gauge(
                        "liaison_channel_state",
                        partner + [("endpoint", "\(channel.endpoint)"), ("state", state)],
                        help:
                            "Each channel of a link (one per endpoint of the listening side): 1 for its state, 0 for the others."
                    ).record(channel.state == state ? 1 : 0)
                }
            }
        }
        let partners = Set(links.map(\.peer)).union(containment.strikes.keys).union(containment.quarantines.keys)
        for partner in partners.sorted() {
            for strikeClass in StrikeClass.allCases {
                mirror(
                    "liaison_partner_strikes_total", [("partner", partner), ("class", strikeClass.rawValue)],
                    to: containment.strikes[partner]?[strikeClass]?.total ?? 0,
                    help: "Strikes counted against the partner, by class (kept across restarts).")
            }
            gauge(
                "liaison_partner_quarantined", [("partner", partner)],
                help: "1 while the partner is quarantined (by an operator, by its strikes or by a revocation)."
            ).record(containment.quarantines[partner] == nil ? 0 : 1)
        }
        if let highest = try? node.store.highestSequence() {
            gauge("liaison_store_log_ops", [], help: "Ops in this node's log (its highest sequence).").record(highest)
        }
        let storePath = node.directory.storePath
        let bytes = ["", "-wal", "-shm"].reduce(UInt64(0)) { sum, suffix in
            let size = (try? FileManager.default.attributesOfItem(atPath: storePath + suffix)[.size]) as? NSNumber
            return sum + (size?.uint64Value ?? 0)
        }
        gauge(
            "liaison_store_size_bytes", [], help: "Bytes of the store on disk: the database, its WAL and shared memory."
        ).record(bytes)
    }

    // MARK: - Instruments

    /// The series key of a metric and its labels.
    private static func key(_ name: String, _ labels: [(String, String)]) -> String {
        name + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    /// A metric's name as Prometheus's registry takes it: the whole name, already ending in its
    /// unit where it has one (`_seconds`, `_total`), so no unit is appended.
    private static func descriptor(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private func gauge(_ name: String, _ labels: [(String, String)], help: String) -> Metrics.Gauge {
        let key = Self.key(name, labels)
        return instruments.withLock { made in
            if let gauge = made.gauges[key] { return gauge }
            let handler =
                labels.isEmpty
                ? registry.makeGauge(descriptor: Self.descriptor(name, help: help))
                : registry.makeGauge(descriptor: Self.descriptor(name, help: help), labels: labels)
            let gauge = Metrics.Gauge(label: name, dimensions: labels, aggregate: false, handler: handler)
            made.gauges[key] = gauge
            return gauge
        }
    }

    /// Advances a counter by what `value`, a count the node keeps since it started (or, for
    /// strikes, across restarts), grew since the last scrape. A count that went down (a
    /// partner readmitted with new keys starts its strikes again) is not taken back; the
    /// counter goes on from there, so what comes after still shows.
    private func mirror(_ name: String, _ labels: [(String, String)], to value: UInt64, help: String) {
        let key = Self.key(name, labels)
        let counter = instruments.withLock { made in
            if let counter = made.counters[key] { return counter }
            let handler = registry.makeCounter(descriptor: Self.descriptor(name, help: help), labels: labels)
            let counter = Metrics.Counter(label: name, dimensions: labels, handler: handler)
            made.counters[key] = counter
            return counter
        }
        let grew = mirrored.withLock { seen -> UInt64 in
            let before = seen[key] ?? 0
            seen[key] = value
            return value > before ? value - before : 0
        }
        if grew > 0 { counter.increment(by: Int64(clamping: grew)) }
    }
}
