/// What a partner did wrong, by kind: strikes are counted per partner and per class, and
/// each class has its own threshold for quarantine (DESIGN §6).
public enum StrikeClass: String, Hashable, Sendable, Codable, CodingKeyRepresentable, CaseIterable, Comparable {
    /// An op that does not decode or whose signature does not verify.
    case forged
    /// An op by an author who is no partner of the federation.
    case unknownAuthor = "unknown-author"
    /// An op of an item not releasable to us.
    case notReleasable = "not-releasable"
    /// An op the sender's own link filter excludes (ceiling, collection, ORCON re-share).
    case filteredOut = "filtered-out"
    /// An op its item refuses (a non-writer's change, a non-originator changing markings).
    case nonWriter = "non-writer"
    /// Values of fields the sender's link redacts.
    case unredacted
    /// An op stamped further ahead than the allowed clock skew.
    case futureStamp = "future-stamp"
    /// A malformed or oversized frame, a protocol violation, a TLS failure on a channel.
    case protocolViolation = "protocol"
    /// A sealed envelope or receipt that does not verify or is not the sender's to send.
    case badEnvelope = "bad-envelope"
    /// A peer that sends more than the protocol lets it: it stopped reading while it kept
    /// sending (our queue to it filled), sent heartbeats far faster than the link's interval
    /// or more batches than the window without waiting for acks, or more ops for items we do
    /// not hold than we keep for one partner.
    case flood
    /// Two different signed creates for one item id: only the item's originator can sign
    /// them, so it is proof that the originator equivocated.
    case equivocation
    /// A peer that stays alive on a channel (it answers heartbeats) and leaves our batches
    /// unacknowledged past the link's ack deadline: it takes our log and stalls the link.
    case withholding

    public static func < (lhs: StrikeClass, rhs: StrikeClass) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension StrikeReason {
    /// The class the reason counts under.
    public var strikeClass: StrikeClass {
        switch self {
        case .invalid: .forged
        case .unknownAuthor: .unknownAuthor
        case .futureHLC: .futureStamp
        case .notEntitled(.notReleasable): .notReleasable
        case .notEntitled: .filteredOut
        case .refusedByItem: .nonWriter
        case .unredacted: .unredacted
        case .tooManyPending: .flood
        }
    }
}

/// When strikes quarantine a partner on their own: a class's threshold of strikes within one
/// window. The topology sets them (`containment:`); a class without a threshold never
/// quarantines by itself (its strikes are still counted and audited).
public struct ContainmentPolicy: Sendable, Hashable, Codable {
    /// Strikes of a class within `windowMillis` that quarantine the partner.
    public var thresholds: [StrikeClass: UInt32]
    /// The window over which strikes are counted towards a threshold.
    public var windowMillis: UInt64
    /// How old (by its stamp) an op waiting for its item's create, or for markings that
    /// entitle its author, may be before it is dropped (`ops.expired`): an item that has not
    /// reached this node that long after its ops were written is not coming.
    public var pendingExpiryMillis: UInt64 = Self.defaultPendingExpiryMillis

    /// Thirty days.
    public static let defaultPendingExpiryMillis: UInt64 = 30 * 24 * 3_600_000

    /// The defaults. Forged ops and bad envelopes over an authenticated channel are hard to
    /// produce by accident and quarantine soonest; classes that an honest partner can cause
    /// in a race (markings narrowed while ops were on their way, clock skew) need more.
    public static let `default` = ContainmentPolicy(
        thresholds: [
            .forged: 5, .unknownAuthor: 5, .badEnvelope: 5, .unredacted: 5, .nonWriter: 20,
            .notReleasable: 50, .filteredOut: 50, .futureStamp: 100, .protocolViolation: 20, .flood: 5,
            .equivocation: 1, .withholding: 3,
        ],
        windowMillis: 60 * 60_000
    )

    /// Creates a policy.
    public init(
        thresholds: [StrikeClass: UInt32], windowMillis: UInt64,
        pendingExpiryMillis: UInt64 = Self.defaultPendingExpiryMillis
    ) {
        self.thresholds = thresholds
        self.windowMillis = windowMillis
        self.pendingExpiryMillis = pendingExpiryMillis
    }

    private enum CodingKeys: String, CodingKey {
        case thresholds, windowMillis, pendingExpiryMillis
    }

    /// Decodes a policy; one rendered before the pending expiry existed takes the default.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        thresholds = try container.decode([StrikeClass: UInt32].self, forKey: .thresholds)
        windowMillis = try container.decode(UInt64.self, forKey: .windowMillis)
        pendingExpiryMillis =
            try container.decodeIfPresent(UInt64.self, forKey: .pendingExpiryMillis)
            ?? Self.defaultPendingExpiryMillis
    }
}

/// A partner cut off by this node: its links and its relaying stop, and its ops stamped at
/// or after `sinceMillis` are left out of every item (kept in the log for forensics).
public struct Quarantine: Sendable, Hashable, Codable {
    /// Ops its partner stamped at or after this wall time (milliseconds since the epoch) are
    /// excluded.
    public var sinceMillis: UInt64
    /// When the quarantine started.
    public var atMillis: UInt64
    /// Why.
    public var reason: String
    /// Whether strikes started it rather than an operator.
    public var automatic: Bool
    /// The revocation statement that started it, when a quorum of partners revoked the
    /// partner's keys: only a re-admission with new keys ends it, not a release.
    public var revocation: Hash32?

    /// Creates a quarantine.
    public init(sinceMillis: UInt64, atMillis: UInt64, reason: String, automatic: Bool, revocation: Hash32? = nil) {
        self.sinceMillis = sinceMillis
        self.atMillis = atMillis
        self.reason = reason
        self.automatic = automatic
        self.revocation = revocation
    }

    /// Whether an op stamped `hlc` by the quarantined partner is excluded.
    public func excludes(_ hlc: HLCTimestamp) -> Bool { hlc.physicalMillis >= sinceMillis }
}

/// Strikes of one class against one partner.
public struct StrikeTally: Sendable, Hashable, Codable {
    /// Every strike ever counted.
    public var total: UInt64 = 0
    /// When the current window opened (its first strike).
    public var windowStartMillis: UInt64 = 0
    /// Strikes in the current window.
    public var inWindow: UInt32 = 0

    /// An empty tally.
    public init() {}
}

/// What a node holds against its partners: strikes per class and quarantines, and the
/// federation's governance as far as this node knows it (revocation and re-admission
/// statements, revoked keys, partners' identities after re-admission). Persisted, so it
/// survives a restart.
public struct ContainmentState: Sendable, Hashable, Codable {
    /// Strikes per partner name and class.
    public var strikes: [String: [StrikeClass: StrikeTally]] = [:]
    /// Quarantined partners by name.
    public var quarantines: [String: Quarantine] = [:]
    /// Revocation and re-admission statements with their endorsements.
    public var governance = GovernanceLedger()
    /// Keys revoked here: their ops stamped since the revocation's start stay out of every
    /// item for good, also after their partner came back with new keys.
    public var revokedKeys: [RevokedKey] = []
    /// Partners' identities that replace the rendered federation configuration's, by name
    /// (set by re-admissions).
    public var identities: [String: PartnerIdentity] = [:]

    /// Nothing held against anyone.
    public init() {}

    private enum CodingKeys: String, CodingKey {
        case strikes, quarantines, governance, revokedKeys, identities
    }

    /// Reads a stored state; keys written by later builds may be missing from older stores.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        strikes = try container.decodeIfPresent([String: [StrikeClass: StrikeTally]].self, forKey: .strikes) ?? [:]
        quarantines = try container.decodeIfPresent([String: Quarantine].self, forKey: .quarantines) ?? [:]
        governance = try container.decodeIfPresent(GovernanceLedger.self, forKey: .governance) ?? GovernanceLedger()
        revokedKeys = try container.decodeIfPresent([RevokedKey].self, forKey: .revokedKeys) ?? []
        identities = try container.decodeIfPresent([String: PartnerIdentity].self, forKey: .identities) ?? [:]
    }

    /// Counts `count` strikes of `strikeClass` against `peer` at `nowMillis`. Returns the
    /// quarantine the strikes call for when they cross the class's threshold within the
    /// window (the partner is not quarantined yet); nil otherwise. The quarantine excludes
    /// the partner's ops from the window's first strike on.
    public mutating func strike(
        _ peer: String, _ strikeClass: StrikeClass, count: Int, nowMillis: UInt64, policy: ContainmentPolicy
    ) -> Quarantine? {
        guard count > 0 else { return nil }
        var tally = strikes[peer, default: [:]][strikeClass, default: StrikeTally()]
        tally.total += UInt64(count)
        let windowEnds = tally.windowStartMillis.addingReportingOverflow(policy.windowMillis)
        if tally.inWindow == 0 || (!windowEnds.overflow && nowMillis >= windowEnds.partialValue)
            || nowMillis < tally.windowStartMillis
        {
            tally.windowStartMillis = nowMillis
            tally.inWindow = 0
        }
        tally.inWindow = UInt32(clamping: UInt64(tally.inWindow) + UInt64(count))
        strikes[peer, default: [:]][strikeClass] = tally
        guard quarantines[peer] == nil, let threshold = policy.thresholds[strikeClass], threshold > 0,
            tally.inWindow >= threshold
        else { return nil }
        return Quarantine(
            sinceMillis: tally.windowStartMillis,
            atMillis: nowMillis,
            reason: "\(tally.inWindow) \(strikeClass.rawValue) strikes within \(policy.windowMillis / 1000) s",
            automatic: true
        )
    }

    /// Whether `peer` is quarantined.
    public func isQuarantined(_ peer: String) -> Bool { quarantines[peer] != nil }

    /// Ends `peer`'s quarantine and forgives the strikes of its current windows (they led to
    /// it). Returns the quarantine that ended; nil when there was none.
    public mutating func release(_ peer: String) -> Quarantine? {
        guard let quarantine = quarantines.removeValue(forKey: peer) else { return nil }
        if var tallies = strikes[peer] {
            for key in tallies.keys { tallies[key]?.inWindow = 0 }
            strikes[peer] = tallies
        }
        return quarantine
    }

    /// The quarantines by the quarantined partners' NodeIDs (names `nodeID` cannot resolve
    /// are left out), and the revoked keys, which stay excluded from their revocation's start
    /// after their partner came back with new keys.
    public func quarantinesByNodeID(_ nodeID: (String) -> NodeID?) -> [NodeID: Quarantine] {
        var out = [NodeID: Quarantine]()
        for (name, quarantine) in quarantines {
            if let id = nodeID(name) { out[id] = quarantine }
        }
        for key in revokedKeys where out[key.nodeID] == nil {
            out[key.nodeID] = Quarantine(
                sinceMillis: key.sinceMillis, atMillis: governance.applied[key.statement] ?? 0,
                reason: "key revoked", automatic: false, revocation: key.statement)
        }
        return out
    }
}
