/// What one simulated run found.
public struct SimulationReport: Sendable, Codable, Equatable {
    /// The seed.
    public var seed: UInt64
    /// Number of nodes.
    public var nodes: Int
    /// The hostile node, if the run had one.
    public var hostile: String?
    /// Bad ops the hostile node sent.
    public var attacks: Int
    /// Invariant violations (empty when the run passed).
    public var violations: [String]
    /// Hash of the run's event trace: the same seed and commit give the same hash.
    public var traceHash: String
    /// Ops authored (and acknowledged) during the run.
    public var opsWritten: Int
    /// Ops refused by receivers from honest senders (races with markings changes).
    public var refusals: Int
    /// Crash-restarts injected.
    public var crashes: Int
    /// Partitions injected.
    public var partitions: Int
    /// Channels broken by injected loss.
    public var channelsBroken: Int
    /// Virtual milliseconds from heal to convergence (nil if it never converged).
    public var convergeMillis: UInt64?
    /// `failover` or `active-active`.
    public var channelMode: String
    /// Nodes that relay sealed envelopes.
    public var relays: [String]
    /// A relay that withholds every envelope it should carry, if the run had one.
    public var withholdingRelay: String?
    /// Endpoint outages injected.
    public var endpointFaults: Int
    /// Links cut (every channel of a pair down for 0.5-2.5 s).
    public var linkCuts: Int
    /// Times a link's carrying channel changed while another was carrying.
    public var failovers: Int
    /// Envelopes sealed, opened by their recipients, withheld by a relay, and sent again.
    public var envelopesSealed: Int
    public var envelopesOpened: Int
    /// Decodings and openings of envelopes the engines took from their channel's reader
    /// (`EnvelopeOpener`) instead of computing them.
    public var envelopesTakenAhead: Int
    public var envelopesWithheld: Int
    public var envelopeRetries: Int
    /// The hostile node every honest node quarantined partway through, if it was.
    public var quarantined: String?
    /// Whether the hostile node's clock ran at the edge of the skew, honest clocks apart.
    public var edgeClocks: Bool
    /// Custody entries of ops that came stamped beyond a receiver's skew and waited for its clock.
    public var opsDeferred: Int
    /// Custody entries of items whose content a node purged (recalled from it, narrowed away
    /// from it, deleted).
    public var itemsPurged: Int
    /// The command that replays this run.
    public var replay: String
    /// In a run whose honest nodes revoked the hostile one rather than each quarantining it:
    /// how many endorsed (the quorum); the others applied the revocation by gossip.
    public var revocationQuorum: Int? = nil
    /// Directed links whose filter requires or excludes tags.
    public var tagFilters: Int = 0
    /// Tag changes (added, removed) the workload wrote.
    public var tagChanges: Int = 0
    /// Deletes the workload wrote of items that carried tags.
    public var taggedDeletes: Int = 0
    /// Ops the senders' link filters withheld for their tags (custody).
    public var opsWithheldForTags: Int = 0
    /// Acks the hostile node withheld (spells longer than the ack deadline).
    public var acksWithheld: Int = 0
    /// `withholding` strikes honest nodes counted (against the hostile node only: a strike
    /// against an honest partner fails the run).
    public var withholdingStrikes: Int = 0
    /// Ops the nodes hold at the end that others wrote (what replication delivered).
    public var opsDelivered: Int = 0
    /// Most ops per batch on the run's channels.
    public var maxBatchOps: Int = 1_024
    /// Batch parts committed: item histories that passed one batch and went in parts.
    public var partsCommitted: Int = 0

    /// Whether every invariant held.
    public var passed: Bool { violations.isEmpty }
}
