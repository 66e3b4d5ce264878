import Foundation

/// How many partners must endorse a revocation or a re-admission (the topology's
/// `revocation: {quorum: K}`).
public struct RevocationPolicy: Sendable, Hashable, Codable {
    /// Endorsements from distinct partners, other than the one named, that make a statement
    /// apply.
    public var quorum: Int

    /// Creates a policy.
    public init(quorum: Int) { self.quorum = quorum }

    /// The default for a federation of `partners` partners: a majority of them, but never
    /// more than the `partners - 1` that may endorse (the named partner's own endorsement
    /// does not count); at least 1.
    public static func defaultQuorum(partners: Int) -> Int {
        max(1, min(partners / 2 + 1, partners - 1))
    }
}

/// A key revoked at this node: its ops stamped from `sinceMillis` on stay out of every item,
/// also after its partner came back with new keys.
public struct RevokedKey: Sendable, Hashable, Codable {
    /// The partner it belonged to.
    public var partner: String
    /// The key's NodeID.
    public var nodeID: NodeID
    /// Its ops stamped from then on are left out.
    public var sinceMillis: UInt64
    /// The revocation statement.
    public var statement: Hash32

    /// Creates a record.
    public init(partner: String, nodeID: NodeID, sinceMillis: UInt64, statement: Hash32) {
        self.partner = partner
        self.nodeID = nodeID
        self.sinceMillis = sinceMillis
        self.statement = statement
    }
}

/// The governance statements a node holds (revocations and re-admissions), with the
/// endorsements it verified, and the ones it applied. Endorsements of one statement form a
/// grow-only set: merging is a union, so partial endorsements gathered at different nodes
/// combine in any order, and every node that holds the same endorsements decides the same.
public struct GovernanceLedger: Sendable, Hashable {
    /// Statements by id.
    public private(set) var statements: [Hash32: GovernanceStatement] = [:]
    /// When each applied statement was applied here.
    public internal(set) var applied: [Hash32: UInt64] = [:]

    /// Most endorsements one endorser may have on statements not applied yet: a partner that
    /// signs statements by the thousand cannot grow every node's ledger without bound.
    public static let maxPendingPerEndorser = 16

    /// An empty ledger.
    public init() {}

    /// What taking in a statement did.
    public struct Merge: Sendable, Hashable {
        /// Endorsers whose endorsement was new here and verified.
        public var added: [NodeID] = []
        /// Endorsers whose endorsement did not verify: forged, a strike against the sender.
        public var forged: [NodeID] = []
        /// Endorsements left out without blame: by the partner the statement names, by a key
        /// that is no partner's here (a re-admission not applied here yet), or past the
        /// endorser's bound of pending statements.
        public var ignored: Int = 0
        /// Whether the sender lacks endorsements this node holds (it should get them back).
        public var senderLacks = false
    }

    /// Takes in a statement's endorsements: those by `endorsers` (NodeID to partner name:
    /// the partners whose endorsements count), other than the partner the statement names,
    /// whose signatures verify. Endorsements already held are not checked again.
    public mutating func merge(_ incoming: GovernanceStatement, endorsers: [NodeID: String]) -> Merge {
        var result = Merge()
        var held = statements[incoming.id]
        let pending = applied[incoming.id] == nil
        for (endorser, endorsement) in incoming.endorsements.sorted(by: { $0.key < $1.key }) {
            if held?.endorsements[endorser] != nil { continue }
            guard let name = endorsers[endorser], name != incoming.content.partner else {
                result.ignored += 1
                continue
            }
            guard incoming.verifies(endorsement) else {
                result.forged.append(endorser)
                continue
            }
            if pending && pendingEndorsements(by: endorser) >= Self.maxPendingPerEndorser {
                result.ignored += 1
                continue
            }
            if held == nil {
                var fresh = incoming
                fresh.endorsements = [:]
                held = fresh
            }
            held?.endorsements[endorser] = endorsement
            statements[incoming.id] = held
            result.added.append(endorser)
        }
        if let held {
            result.senderLacks = held.endorsements.keys.contains { incoming.endorsements[$0] == nil }
        }
        return result
    }

    /// Endorsements by `endorser` on statements not applied yet.
    func pendingEndorsements(by endorser: NodeID) -> Int {
        statements.values.reduce(0) { count, statement in
            count + (applied[statement.id] == nil && statement.endorsements[endorser] != nil ? 1 : 0)
        }
    }

    /// The endorsements of a statement that count: by `endorsers`, other than its partner's.
    public func counted(_ statement: GovernanceStatement, endorsers: [NodeID: String]) -> [String] {
        statement.endorsements.keys.compactMap { endorsers[$0] }.filter { $0 != statement.content.partner }.sorted()
    }

    /// Statements in id order.
    public var ordered: [GovernanceStatement] { statements.values.sorted { $0.id < $1.id } }
}

extension GovernanceLedger: Codable {
    private struct Stored: Codable {
        var body: Data
        var endorsements: [Endorsement]
        var appliedAtMillis: UInt64?
    }

    public init(from decoder: any Decoder) throws {
        let stored = try decoder.singleValueContainer().decode([Stored].self)
        for entry in stored {
            var endorsements = [NodeID: Endorsement]()
            for endorsement in entry.endorsements { endorsements[endorsement.endorser] = endorsement }
            let statement: GovernanceStatement
            do {
                statement = try GovernanceStatement.decode(body: entry.body, endorsements: endorsements)
            } catch {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: decoder.codingPath, debugDescription: "a stored statement: \(error.message)"))
            }
            statements[statement.id] = statement
            if let at = entry.appliedAtMillis { applied[statement.id] = at }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(
            ordered.map { statement in
                Stored(
                    body: statement.body,
                    endorsements: statement.endorsements.sorted { $0.key < $1.key }.map(\.value),
                    appliedAtMillis: applied[statement.id])
            })
    }
}
