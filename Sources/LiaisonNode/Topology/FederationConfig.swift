import Crypto
public import Foundation
public import LiaisonCore
public import LiaisonReplication

/// `federation.json` in a node directory: what `liaison run` needs to know of the
/// federation, written by `liaison topology render`.
public struct FederationConfig: Codable, Sendable, Equatable {
    /// A partner as this node knows it.
    public struct Partner: Codable, Sendable, Equatable {
        /// Its name.
        public var name: String
        /// Its NodeID (hash of its signing key).
        public var nodeID: NodeID
        /// SHA-256 of its TLS certificate: the pin.
        public var tlsFingerprint: String
        /// Groups it belongs to.
        public var groups: [String]
        /// Where its node listens for peers, best first (index 0 is the primary network).
        public var endpoints: [Endpoint]
        /// Its X25519 sealing public key, base64: sealed envelopes for it are sealed to it.
        public var sealingKey: String
        /// Whether it carries sealed envelopes between its neighbours.
        public var relay: Bool
        /// The partners it shares a link with (in either direction).
        public var neighbours: [String]

        /// As eligibility sees it.
        public var recipient: Recipient { Recipient(name: name, nodeID: nodeID, groups: Set(groups)) }
    }

    /// One neighbour: a partner this node shares a link with, in either direction.
    public struct Neighbour: Codable, Sendable, Equatable {
        /// The partner's name.
        public var name: String
        /// The filter of the link from this node to it; nil when there is none (nothing is sent).
        public var outbound: LinkFilter?
        /// The filter of the link from it to this node; nil when there is none (nothing may come).
        public var inbound: LinkFilter?
        /// Whether this node dials it (otherwise it dials us).
        public var dial: Bool
    }

    /// The federation's name.
    public var federation: String
    /// This node's name.
    public var me: String
    /// Where this node listens for peers: every endpoint of its own, best first.
    public var listen: [Endpoint]
    /// How links run their channels.
    public var channels: ChannelSettings
    /// When strikes quarantine a partner on their own (nil in files rendered before
    /// containment existed: the defaults).
    public var containment: ContainmentPolicy?
    /// How many partners must endorse a revocation or a re-admission (nil in files rendered
    /// before revocation existed: a majority, `RevocationPolicy.defaultQuorum`).
    public var revocation: RevocationPolicy?
    /// Where its API listens.
    public var api: Endpoint
    /// Every partner of the federation, this node included.
    public var partners: [Partner]
    /// Partners with a direct link.
    public var neighbours: [Neighbour]
    /// STIX feeds the daemon pulls (nil in files rendered before feeds existed: none).
    public var feeds: [FeedSource]? = nil
    /// Its TAXII server over HTTPS (nil: none; TAXII is on the loopback API only).
    public var taxii: TAXIIListener? = nil

    /// The partner record of `name`.
    public func partner(named name: String) -> Partner? { partners.first { $0.name == name } }

    /// Checks that `name` is a partner this node may quarantine (not itself).
    public func checkQuarantinable(_ name: String) throws(LiaisonError) {
        guard name != me else { throw LiaisonError(.invalidArgument, "a node cannot quarantine itself") }
        guard partner(named: name) != nil else {
            let known = partners.map(\.name).filter { $0 != me }.sorted().joined(separator: ", ")
            throw LiaisonError(.notFound, "no partner '\(name)' in federation \(federation); known: \(known)")
        }
    }

    /// The partner record of a NodeID.
    public func partner(id: NodeID) -> Partner? { partners.first { $0.nodeID == id } }

    /// Every partner's NodeID as rendered, by name (re-admissions recorded in the store
    /// override them: `ContainmentState.currentNodeIDs`).
    public var renderedNodeIDs: [String: NodeID] {
        Dictionary(partners.map { ($0.name, $0.nodeID) }, uniquingKeysWith: { first, _ in first })
    }

    /// Endorsements a revocation or a re-admission needs.
    public var revocationQuorum: Int {
        revocation?.quorum ?? RevocationPolicy.defaultQuorum(partners: partners.count)
    }

    /// Reads `federation.json` from a node directory.
    public static func load(from directory: NodeDirectory) throws(LiaisonError) -> FederationConfig {
        let url = directory.url.appendingPathComponent("federation.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw LiaisonError(
                .notFound,
                "\(directory.url.path) has no federation.json; render node directories with 'liaison topology render FILE --out DIR'"
            )
        }
        do {
            return try JSONDecoder().decode(FederationConfig.self, from: data)
        } catch {
            throw LiaisonError(.corrupt, "\(url.path) is damaged (\(error)); render it again", cause: error)
        }
    }

    /// Reads `federation.json` from a node directory; nil when the directory has none (a node
    /// made by `liaison init` alone knows no federation).
    public static func loadIfPresent(from directory: NodeDirectory) throws(LiaisonError) -> FederationConfig? {
        let url = directory.url.appendingPathComponent("federation.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try load(from: directory)
    }

    /// Writes `federation.json` into a node directory (mode 0600, replacing it atomically).
    public func write(to directory: NodeDirectory) throws(LiaisonError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let encoded: Data
        do {
            encoded = try encoder.encode(self)
        } catch {
            throw LiaisonError(.io, "could not encode federation.json for \(directory.url.path)", cause: error)
        }
        try OwnerOnlyFiles.write(
            encoded, to: directory.url.appendingPathComponent("federation.json"), replacing: true)
    }
}

extension Topology {
    /// Writes one ready-to-run node directory per partner under `out` (named after the
    /// partner): identity, store, `federation.json` with pins and filters, and an API token.
    /// Refuses an `out` that already holds any of them.
    public func render(into out: URL, now: Date) throws(LiaisonError) -> [String: (NodeConfig, NodeDirectory)] {
        for partner in partners {
            let path = out.appendingPathComponent(partner.name).path
            if FileManager.default.fileExists(atPath: path) {
                throw LiaisonError(.alreadyExists, "\(path) exists; render into an empty directory")
            }
        }
        var made = [String: (NodeConfig, NodeIdentity, NodeDirectory)]()
        for partner in partners {
            let directory = NodeDirectory(path: out.appendingPathComponent(partner.name).path)
            let (config, identity) = try directory.initialize(
                name: partner.name, classifications: classifications, now: now)
            try directory.writeAPITokens()
            made[partner.name] = (config, identity, directory)
        }
        let records = partners.map { partner in
            FederationConfig.Partner(
                name: partner.name,
                nodeID: made[partner.name]!.0.nodeID,
                tlsFingerprint: made[partner.name]!.0.tlsFingerprint,
                groups: partner.groups,
                endpoints: partner.endpoints,
                sealingKey: made[partner.name]!.1.sealingKey.publicKey.rawRepresentation.base64EncodedString(),
                relay: partner.relay,
                neighbours: partners.map(\.name).filter { other in
                    other != partner.name
                        && (link(from: partner.name, to: other) != nil || link(from: other, to: partner.name) != nil)
                }
            )
        }
        for partner in partners {
            var neighbours = [FederationConfig.Neighbour]()
            for other in partners where other.name != partner.name {
                let outbound = link(from: partner.name, to: other.name)?.filter
                let inbound = link(from: other.name, to: partner.name)?.filter
                guard outbound != nil || inbound != nil else { continue }
                neighbours.append(
                    FederationConfig.Neighbour(
                        name: other.name, outbound: outbound, inbound: inbound, dial: partner.name < other.name)
                )
            }
            let config = FederationConfig(
                federation: federation,
                me: partner.name,
                listen: partner.endpoints,
                channels: channels,
                containment: containment,
                revocation: revocation,
                api: partner.api,
                partners: records,
                neighbours: neighbours,
                feeds: partner.feeds.isEmpty ? nil : partner.feeds,
                taxii: partner.taxii
            )
            try config.write(to: made[partner.name]!.2)
        }
        return made.mapValues { ($0.0, $0.2) }
    }
}

/// The bearer tokens of a node's API, one per role, each in a file of the node directory
/// (mode 0600): `api.token` is the operator's (the CLI uses it), `api-reader.token`,
/// `api-writer.token` and `api-auditor.token` the others'.
public enum ApiToken {
    /// 32 random bytes as hex.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        return Hex.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }
}

extension NodeDirectory {
    var apiTokenURL: URL { url.appendingPathComponent(APIRole.operator.tokenFile) }

    /// Writes the operator's API token (mode 0600).
    public func writeAPIToken(_ token: String) throws(LiaisonError) {
        try OwnerOnlyFiles.write(Data(token.utf8), to: apiTokenURL, replacing: true)
    }

    /// Writes a new token for every role (mode 0600), replacing any there.
    public func writeAPITokens() throws(LiaisonError) {
        for role in APIRole.allCases {
            try OwnerOnlyFiles.write(
                Data(ApiToken.generate().utf8), to: url.appendingPathComponent(role.tokenFile), replacing: true)
        }
    }

    /// Reads the operator's API token.
    public func readAPIToken() throws(LiaisonError) -> String {
        guard let token = readAPIToken(.operator) else {
            throw LiaisonError(
                .notFound, "\(apiTokenURL.path) is missing; render the node with 'liaison topology render'")
        }
        return token
    }

    /// Reads one role's token; nil when its file is missing or empty (a node rendered before
    /// roles existed has the operator's only).
    public func readAPIToken(_ role: APIRole) -> String? {
        guard let data = FileManager.default.contents(atPath: url.appendingPathComponent(role.tokenFile).path)
        else { return nil }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return token.isEmpty ? nil : token
    }

    /// Every role's token this node has; refuses short tokens and one token for two roles.
    public func readAPITokens() throws(LiaisonError) -> [APIRole: String] {
        var tokens = [APIRole.operator: try readAPIToken()]
        for role in APIRole.allCases where role != .operator {
            if let token = readAPIToken(role) { tokens[role] = token }
        }
        // A short token is guessable; one token for two roles gives the lesser role the
        // greater one's rights.
        for (role, token) in tokens.sorted(by: { $0.key < $1.key }) {
            guard token.count >= 32 else {
                throw LiaisonError(
                    .invalidArgument,
                    "\(role.tokenFile) holds a token of \(token.count) characters; use at least 32 random ones (liaison topology render writes 64)"
                )
            }
            if let other = tokens.first(where: { $0.key < role && $0.value == token }) {
                throw LiaisonError(
                    .invalidArgument,
                    "\(other.key.tokenFile) and \(role.tokenFile) hold the same token; give each role its own")
            }
        }
        return tokens
    }
}
