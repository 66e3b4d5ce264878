/// What a custody entry records (I5).
public enum CustodyKind: String, Hashable, Sendable, Codable, CaseIterable {
    /// The node's identity was created.
    case identityCreated = "identity.created"
    /// Ops authored here were committed.
    case opsCreated = "ops.created"
    /// Ops received from a peer were committed.
    case opsReceived = "ops.received"
    /// Ops were sent to a peer (and acknowledged).
    case opsSent = "ops.sent"
    /// Ops sent with some field values withheld.
    case opsRedacted = "ops.redacted"
    /// Ops received were refused.
    case opsRejected = "ops.rejected"
    /// Ops received were stamped further ahead than the allowed skew: their batch waits for
    /// local time to catch up (a strike against their author, named as the peer).
    case opsDeferred = "ops.deferred"
    /// Sealed envelopes carried for others.
    case opsRelayed = "ops.relayed"
    /// Content purged (expiry, recall, quarantine).
    case opsPurged = "ops.purged"
    /// Waiting ops (for their item's create, or for markings entitling their author) dropped
    /// because they were stamped longer ago than the containment policy's expiry.
    case opsExpired = "ops.expired"
    /// A link filter withheld ops.
    case filterWithheld = "filter.withheld"
    /// An operator acted (quarantine, revoke, configuration).
    case operatorAction = "operator.action"
    /// A peer was refused at the channel level (unpinned certificate, wrong identity,
    /// malformed or oversized frames, protocol violations).
    case peerRefused = "peer.refused"
    /// A partner was quarantined (by the operator or by its strikes); the entry lists the
    /// ops left out of its items.
    case partnerQuarantined = "partner.quarantined"
    /// A partner's quarantine ended; the entry lists the ops put back.
    case partnerReleased = "partner.released"
    /// The operator endorsed (signed) a revocation or a re-admission.
    case statementEndorsed = "statement.endorsed"
    /// A neighbour passed on endorsements of a revocation or a re-admission that were new here.
    case statementReceived = "statement.received"
    /// A revoked partner came back with new keys, endorsed by the quorum.
    case partnerReadmitted = "partner.readmitted"
    /// The API refused a request whose token's role does not allow it (at most one entry per
    /// role and route a minute, counting the refusals since the last).
    case apiRefused = "api.refused"
}

/// Something to record in the custody log.
public struct CustodyEvent: Hashable, Sendable {
    /// What happened.
    public var kind: CustodyKind
    /// The counterpart (a NodeID or partner name), if any.
    public var peer: String?
    /// Details for the auditor: a reason, a filter decision, an action.
    public var detail: String
    /// The ops the entry covers, in order.
    public var opIDs: [OpID]

    /// Creates an event.
    public init(kind: CustodyKind, peer: String? = nil, detail: String = "", opIDs: [OpID] = []) {
        self.kind = kind
        self.peer = peer
        self.detail = detail
        self.opIDs = opIDs
    }
}

/// One entry of a node's append-only, hash-chained custody log.
///
/// `hash = SHA-256(canonical(sequence, time, kind, peer, detail, opCount, opDigest, previousHash))`
/// where `opDigest = SHA-256(op id ‖ op id ‖ …)`. One entry may cover a whole batch, and any
/// single op is traced to its entry through the op ids the entry keeps.
public struct CustodyEntry: Hashable, Sendable, Codable {
    /// Position in the log, from 1, without gaps.
    public var sequence: UInt64
    /// When it was recorded, milliseconds since the Unix epoch.
    public var timeMillis: Int64
    /// What happened.
    public var kind: CustodyKind
    /// The counterpart, if any.
    public var peer: String?
    /// Details.
    public var detail: String
    /// The ops covered.
    public var opIDs: [OpID]
    /// The hash of the previous entry (zero for the first).
    public var previousHash: Hash32
    /// This entry's hash.
    public var hash: Hash32

    /// Makes the entry that follows `previous` (nil for the first entry).
    public init(event: CustodyEvent, timeMillis: Int64, after previous: (sequence: UInt64, hash: Hash32)?) {
        sequence = (previous?.sequence ?? 0) + 1
        self.timeMillis = timeMillis
        kind = event.kind
        peer = event.peer
        detail = event.detail
        opIDs = event.opIDs
        previousHash = previous?.hash ?? .zero
        hash = .zero
        hash = computedHash
    }

    /// Restores a stored entry as it was stored (for verification).
    public init(
        sequence: UInt64,
        timeMillis: Int64,
        kind: CustodyKind,
        peer: String?,
        detail: String,
        opIDs: [OpID],
        previousHash: Hash32,
        hash: Hash32
    ) {
        self.sequence = sequence
        self.timeMillis = timeMillis
        self.kind = kind
        self.peer = peer
        self.detail = detail
        self.opIDs = opIDs
        self.previousHash = previousHash
        self.hash = hash
    }

    /// `SHA-256` of the concatenated op ids.
    public static func opDigest(_ ids: [OpID]) -> Hash32 {
        var h = CanonicalHasher()
        for id in ids { h.hash(id.hash) }
        return h.finalize()
    }

    /// The hash this entry's content calls for.
    public var computedHash: Hash32 {
        var h = CanonicalHasher(domain: "liaison/v1/custody")
        h.uint64(sequence)
        h.int64(timeMillis)
        h.string(kind.rawValue)
        h.bool(peer != nil)
        if let peer { h.string(peer) }
        h.string(detail)
        h.uint32(UInt32(opIDs.count))
        h.hash(CustodyEntry.opDigest(opIDs))
        h.hash(previousHash)
        return h.finalize()
    }
}

/// The newest entry's position and hash, kept beside the log so that a cut-off tail is
/// noticed too.
public struct CustodyHead: Hashable, Sendable, Codable {
    /// Number of entries.
    public var count: UInt64
    /// Hash of the last entry (zero when empty).
    public var hash: Hash32

    /// Creates a head.
    public init(count: UInt64, hash: Hash32) {
        self.count = count
        self.hash = hash
    }
}

/// A defect found in a custody log.
public struct CustodyDefect: Hashable, Sendable, Error, CustomStringConvertible {
    /// The sequence number of the first bad entry (or where one is missing).
    public var sequence: UInt64
    /// What is wrong.
    public var problem: String

    /// Creates a defect report.
    public init(sequence: UInt64, problem: String) {
        self.sequence = sequence
        self.problem = problem
    }

    public var description: String { "entry \(sequence): \(problem)" }
}

/// Verifies a custody log entry by entry, in sequence order, in constant memory.
public struct CustodyChainVerifier: Sendable {
    private var expectedSequence: UInt64 = 1
    private var previousHash: Hash32 = .zero
    /// The first defect found, if any; later entries are not examined.
    public private(set) var defect: CustodyDefect?

    /// Starts at the beginning of a log.
    public init() {}

    /// Number of entries checked and found intact.
    public var verifiedCount: UInt64 { expectedSequence - 1 }

    /// Checks the next entry.
    public mutating func check(_ entry: CustodyEntry) {
        guard defect == nil else { return }
        if entry.sequence != expectedSequence {
            defect = CustodyDefect(
                sequence: expectedSequence,
                problem: entry.sequence > expectedSequence
                    ? "missing: the log jumps from \(expectedSequence - 1) to \(entry.sequence) (deleted entries)"
                    : "out of order: entry \(entry.sequence) appears where \(expectedSequence) belongs"
            )
            return
        }
        if entry.previousHash != previousHash {
            defect = CustodyDefect(
                sequence: entry.sequence,
                problem: "does not follow its predecessor (entries deleted, inserted or reordered)"
            )
            return
        }
        if entry.computedHash != entry.hash {
            defect = CustodyDefect(sequence: entry.sequence, problem: "content does not match its hash (edited)")
            return
        }
        previousHash = entry.hash
        expectedSequence += 1
    }

    /// Checks the end of the log against the recorded head.
    public mutating func finish(head: CustodyHead) {
        guard defect == nil else { return }
        if head.count != verifiedCount || head.hash != previousHash {
            defect = CustodyDefect(
                sequence: min(head.count, verifiedCount) + 1,
                problem: head.count > verifiedCount
                    ? "missing: the log ends at \(verifiedCount) but \(head.count) entries were written (tail deleted)"
                    : "the log does not end where its recorded head says (\(head.count) entries)"
            )
        }
    }
}
