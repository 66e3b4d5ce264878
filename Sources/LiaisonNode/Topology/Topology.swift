import Foundation
public import LiaisonCore
public import LiaisonReplication
import Yams

/// A host and port.
public struct Endpoint: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Host name or address.
    public var host: String
    /// TCP port.
    public var port: Int

    /// Creates an endpoint.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port), colon != text.startIndex
        else { return nil }
        self.host = String(text[..<colon])
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// A federation described in `topology/*.yaml` (schema: docs/topology.md).
public struct Topology: Sendable {
    /// One partner.
    public struct Partner: Sendable, Hashable {
        /// Its name (REL TO names it).
        public var name: String
        /// Addresses its node listens on for peers, best first.
        public var endpoints: [Endpoint]
        /// Where its HTTP API listens (loopback).
        public var api: Endpoint
        /// Groups it belongs to (REL TO may name them).
        public var groups: [String]
        /// Whether it carries sealed envelopes between its neighbours (DESIGN §5.8).
        public var relay: Bool = false
        /// STIX feeds its daemon pulls from other TAXII servers.
        public var feeds: [FeedSource] = []
        /// Its TAXII server over HTTPS, if it has one.
        public var taxii: TAXIIListener? = nil
    }

    /// One directed link.
    public struct Link: Sendable, Hashable {
        /// Sending partner.
        public var from: String
        /// Receiving partner.
        public var to: String
        /// What the link lets through.
        public var filter: LinkFilter
    }

    /// The federation's name.
    public var federation: String
    /// Classification levels, lowest first.
    public var classifications: ClassificationLadder
    /// Partners, in file order.
    public var partners: [Partner]
    /// Directed links, in file order.
    public var links: [Link]
    /// How links run their channels: failover or active-active, heartbeats, relaying.
    public var channels = ChannelSettings()
    /// When strikes quarantine a partner on their own.
    public var containment = ContainmentPolicy.default
    /// How many partners must endorse a revocation or a re-admission (nil: a majority).
    public var revocation: RevocationPolicy?

    /// The partner named `name`.
    public func partner(_ name: String) -> Partner? { partners.first { $0.name == name } }

    /// The link from one partner to another, if any.
    public func link(from: String, to: String) -> Link? { links.first { $0.from == from && $0.to == to } }

    /// Loads and checks a topology file. Every inconsistency is reported with the file and
    /// line at fault.
    public static func load(path: String) throws(LiaisonError) -> Topology {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw LiaisonError(.notFound, "cannot read topology file \(path)")
        }
        return try parse(text, file: path)
    }

    /// Parses and checks topology YAML text.
    public static func parse(_ text: String, file: String = "topology") throws(LiaisonError) -> Topology {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw LiaisonError(.invalidArgument, "\(file): the file is empty")
            }
            root = node
        } catch let error as LiaisonError {
            throw error
        } catch {
            let first = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
            throw LiaisonError(.invalidArgument, "\(file): not valid YAML: \(first)", cause: error)
        }
        return try TopologyReader(file: file).read(root)
    }
}

/// Reads the YAML node tree, keeping line numbers for errors.
private struct TopologyReader {
    let file: String

    func fail(_ node: Node?, _ message: String) -> LiaisonError {
        let line = node?.mark.map { ":\($0.line)" } ?? ""
        return LiaisonError(.invalidArgument, "\(file)\(line): \(message)")
    }

    func mapping(_ node: Node, _ what: String, allowed: Set<String>) throws(LiaisonError) -> [String: Node] {
        guard let mapping = node.mapping else { throw fail(node, "\(what) must be a mapping") }
        var out = [String: Node]()
        for (key, value) in mapping {
            guard let name = key.string else { throw fail(key, "keys of \(what) must be text") }
            guard allowed.contains(name) else {
                throw fail(
                    key,
                    "unknown key '\(name)' in \(what); expected one of: \(allowed.sorted().joined(separator: ", "))")
            }
            out[name] = value
        }
        return out
    }

    func string(_ node: Node?, _ what: String) throws(LiaisonError) -> String {
        guard let node, let value = node.scalar?.string, !value.isEmpty else {
            throw fail(node, "\(what) must be text")
        }
        return value
    }

    func strings(_ node: Node?, _ what: String) throws(LiaisonError) -> [String] {
        guard let node else { return [] }
        guard let sequence = node.sequence else { throw fail(node, "\(what) must be a list") }
        var out = [String]()
        for item in sequence { out.append(try string(item, "an entry of \(what)")) }
        return out
    }

    func endpoint(_ node: Node?, _ what: String) throws(LiaisonError) -> Endpoint {
        let text = try string(node, what)
        guard let endpoint = Endpoint(text) else { throw fail(node, "\(what) '\(text)' must look like host:port") }
        return endpoint
    }

    func read(_ root: Node) throws(LiaisonError) -> Topology {
        let top = try mapping(
            root,
            "the topology",
            allowed: [
                "federation", "classifications", "partners", "links", "channels", "containment", "revocation", "drills",
            ]
        )
        let federation = try string(top["federation"], "federation")
        var ladder = ClassificationLadder.standard
        if let levels = top["classifications"] {
            do {
                ladder = try ClassificationLadder(levels: try strings(levels, "classifications"))
            } catch {
                throw fail(levels, error.message)
            }
        }
        guard let partnersNode = top["partners"], let partnerMapping = partnersNode.mapping, !partnerMapping.isEmpty
        else {
            throw fail(top["partners"] ?? root, "partners must be a mapping of partner names to their settings")
        }
        var partners = [Topology.Partner]()
        var seenEndpoints = [Endpoint: String]()
        for (key, value) in partnerMapping {
            let name = try string(key, "a partner name")
            guard NodeConfig.isValidPartnerName(name) else {
                throw fail(key, "invalid partner name '\(name)': use 1-64 letters, digits, '.', '_' or '-'")
            }
            guard !partners.contains(where: { $0.name == name }) else {
                throw fail(key, "partner '\(name)' appears twice")
            }
            let fields = try mapping(
                value, "partner '\(name)'", allowed: ["endpoints", "api", "groups", "relay", "feeds", "taxii"])
            guard let endpointsNode = fields["endpoints"], let list = endpointsNode.sequence, !list.isEmpty else {
                throw fail(fields["endpoints"] ?? value, "partner '\(name)' needs at least one endpoint (host:port)")
            }
            var endpoints = [Endpoint]()
            for item in list {
                let endpoint = try endpoint(item, "an endpoint of '\(name)'")
                if let other = seenEndpoints[endpoint] {
                    throw fail(item, "endpoint \(endpoint) is used by both '\(other)' and '\(name)'")
                }
                seenEndpoints[endpoint] = name
                endpoints.append(endpoint)
            }
            let api = try endpoint(fields["api"], "the api address of '\(name)'")
            if let other = seenEndpoints[api] {
                throw fail(fields["api"], "endpoint \(api) is used by both '\(other)' and '\(name)'")
            }
            seenEndpoints[api] = name
            var relay = false
            if let node = fields["relay"] {
                guard let value = node.scalar.flatMap({ Bool.construct(from: $0) }) else {
                    throw fail(node, "relay of '\(name)' must be true or false")
                }
                relay = value
            }
            var taxii: TAXIIListener?
            if let node = fields["taxii"] {
                let listener = try self.taxii(node, of: name)
                if let other = seenEndpoints[listener.listen] {
                    throw fail(
                        node,
                        "the taxii listener of '\(name)' is on \(listener.listen), an address '\(other)' already uses")
                }
                seenEndpoints[listener.listen] = name
                taxii = listener
            }
            partners.append(
                Topology.Partner(
                    name: name, endpoints: endpoints, api: api, groups: try strings(fields["groups"], "groups"),
                    relay: relay, feeds: try feeds(fields["feeds"], of: name, ladder: ladder), taxii: taxii)
            )
        }
        // A feed's REL TO names partners or groups of the federation.
        let known = Set(partners.map(\.name)).union(partners.flatMap(\.groups)).union([Markings.everyone])
        for (key, value) in partnerMapping {
            guard
                let feedsNode =
                    (try? mapping(value, "", allowed: ["endpoints", "api", "groups", "relay", "feeds", "taxii"]))?[
                        "feeds"], let list = feedsNode.sequence
            else { continue }
            for item in list {
                guard let relTo = item.mapping?["rel-to"] else { continue }
                for name in try strings(relTo, "rel-to") where !known.contains(name) {
                    throw fail(
                        relTo, "feed of '\(key.string ?? "")' names unknown partner or group '\(name)' in rel-to")
                }
            }
        }
        var links = [Topology.Link]()
        if let linksNode = top["links"] {
            guard let list = linksNode.sequence else { throw fail(linksNode, "links must be a list") }
            for item in list {
                let fields = try mapping(item, "a link", allowed: ["from", "to", "filter"])
                let from = try string(fields["from"], "from")
                let to = try string(fields["to"], "to")
                for (name, node) in [(from, fields["from"]), (to, fields["to"])]
                where !partners.contains(where: { $0.name == name }) {
                    throw fail(node, "link names unknown partner '\(name)'")
                }
                guard from != to else { throw fail(item, "a link from '\(from)' to itself") }
                guard !links.contains(where: { $0.from == from && $0.to == to }) else {
                    throw fail(item, "link \(from) -> \(to) appears twice")
                }
                links.append(Topology.Link(from: from, to: to, filter: try filter(fields["filter"], ladder: ladder)))
            }
        }
        var topology = Topology(federation: federation, classifications: ladder, partners: partners, links: links)
        if let node = top["channels"] { topology.channels = try channels(node) }
        if let node = top["containment"] { topology.containment = try containment(node) }
        if let node = top["revocation"] { topology.revocation = try revocation(node, partners: partners.count) }
        return topology
    }

    /// `feeds: [{url, collection, into, every, user, password-file, token-file,
    /// classification, rel-to}, …]` of a partner (docs/topology.md, "Feeds").
    func feeds(_ node: Node?, of partner: String, ladder: ClassificationLadder) throws(LiaisonError) -> [FeedSource] {
        guard let node else { return [] }
        guard let list = node.sequence else { throw fail(node, "feeds of '\(partner)' must be a list") }
        var out = [FeedSource]()
        for item in list {
            let fields = try mapping(
                item, "a feed of '\(partner)'",
                allowed: [
                    "url", "collection", "into", "every", "user", "password-file", "token-file", "classification",
                    "rel-to",
                ])
            var feed = FeedSource(
                url: try string(fields["url"], "a feed's url"),
                collection: try string(fields["collection"], "a feed's collection"))
            if let into = fields["into"] { feed.into = try string(into, "a feed's into") }
            if let every = fields["every"] {
                guard let seconds = every.scalar.flatMap({ Int($0.string) }) else {
                    throw fail(every, "a feed's every must be a whole number of seconds")
                }
                feed.everySeconds = seconds
            }
            feed.user = try fields["user"].map { node throws(LiaisonError) in try string(node, "a feed's user") }
            feed.passwordFile = try fields["password-file"].map { node throws(LiaisonError) in
                try string(node, "a feed's password-file")
            }
            feed.tokenFile = try fields["token-file"].map { node throws(LiaisonError) in
                try string(node, "a feed's token-file")
            }
            if let node = fields["classification"] {
                let level = try string(node, "a feed's classification")
                do throws(LiaisonError) {
                    feed.classification = try ladder.level(named: level)
                } catch {
                    throw fail(node, "a feed's classification: \(error.message)")
                }
            }
            if let node = fields["rel-to"] { feed.relTo = try strings(node, "rel-to") }
            do throws(LiaisonError) {
                try feed.validate()
            } catch {
                throw fail(item, error.message)
            }
            guard !out.contains(where: { $0.key == feed.key }) else {
                throw fail(item, "feed \(feed.key) appears twice for '\(partner)'")
            }
            out.append(feed)
        }
        return out
    }

    /// `taxii: {listen, certificate, key, clients: [{name, sha256, role}, …]}` of a partner
    /// (docs/topology.md, "TAXII over HTTPS").
    func taxii(_ node: Node, of partner: String) throws(LiaisonError) -> TAXIIListener {
        let fields = try mapping(node, "taxii of '\(partner)'", allowed: ["listen", "certificate", "key", "clients"])
        var listener = TAXIIListener(listen: try endpoint(fields["listen"], "the taxii listen address of '\(partner)'"))
        listener.certificate = try fields["certificate"].map { node throws(LiaisonError) in
            try string(node, "taxii's certificate")
        }
        listener.key = try fields["key"].map { node throws(LiaisonError) in try string(node, "taxii's key") }
        if let clients = fields["clients"] {
            guard let list = clients.sequence else {
                throw fail(clients, "taxii clients of '\(partner)' must be a list")
            }
            for item in list {
                let entry = try mapping(item, "a taxii client of '\(partner)'", allowed: ["name", "sha256", "role"])
                listener.clients.append(
                    TAXIIListener.Client(
                        name: try string(entry["name"], "a taxii client's name"),
                        sha256: try string(entry["sha256"], "a taxii client's sha256"),
                        role: try string(entry["role"], "a taxii client's role")))
                // Each client at its own line.
                do throws(LiaisonError) {
                    try TAXIIListener(listen: listener.listen, clients: listener.clients).validate()
                } catch {
                    throw fail(item, error.message)
                }
            }
        }
        do throws(LiaisonError) {
            try listener.validate()
        } catch {
            throw fail(node, error.message)
        }
        return listener
    }

    /// `revocation: {quorum: K}`: K endorsements by distinct partners, other than the one
    /// named, make a revocation or a re-admission apply; 1 <= K <= partners - 1.
    func revocation(_ node: Node, partners: Int) throws(LiaisonError) -> RevocationPolicy {
        let fields = try mapping(node, "revocation", allowed: ["quorum"])
        guard let quorum = fields["quorum"] else {
            throw fail(node, "revocation needs a quorum (leave revocation out for a majority of the partners)")
        }
        guard partners >= 2 else { throw fail(quorum, "revocation needs at least two partners") }
        guard let value = quorum.scalar.flatMap({ Int($0.string) }), (1...(partners - 1)).contains(value) else {
            throw fail(
                quorum,
                "quorum must be a whole number from 1 to \(partners - 1) (the partners other than the one revoked)")
        }
        return RevocationPolicy(quorum: value)
    }

    /// `containment: {window-ms: N, thresholds: {CLASS: N, …}}`: a class's threshold of
    /// strikes within the window quarantines the partner; 0 turns a class's off. Classes
    /// left out keep their defaults.
    func containment(_ node: Node) throws(LiaisonError) -> ContainmentPolicy {
        let fields = try mapping(node, "containment", allowed: ["window-ms", "thresholds", "pending-expiry-ms"])
        var policy = ContainmentPolicy.default
        if let window = fields["window-ms"] {
            guard let value = window.scalar.flatMap({ UInt64($0.string) }), (1_000...2_592_000_000).contains(value)
            else {
                throw fail(window, "window-ms must be a whole number of milliseconds from 1000 to 2592000000 (30 days)")
            }
            policy.windowMillis = value
        }
        if let expiry = fields["pending-expiry-ms"] {
            guard let value = expiry.scalar.flatMap({ UInt64($0.string) }),
                (60_000...31_536_000_000).contains(value)
            else {
                throw fail(
                    expiry,
                    "pending-expiry-ms must be a whole number of milliseconds from 60000 to 31536000000 (a year)")
            }
            policy.pendingExpiryMillis = value
        }
        if let thresholds = fields["thresholds"] {
            let known = StrikeClass.allCases.map(\.rawValue)
            let entries = try mapping(thresholds, "containment thresholds", allowed: Set(known))
            for (key, value) in entries {
                guard let strikeClass = StrikeClass(rawValue: key),
                    let number = value.scalar.flatMap({ UInt32($0.string) }), number <= 1_000_000
                else {
                    throw fail(value, "the threshold of \(key) must be a whole number from 0 (never) to 1000000")
                }
                policy.thresholds[strikeClass] = number == 0 ? nil : number
            }
        }
        return policy
    }

    func channels(_ node: Node) throws(LiaisonError) -> ChannelSettings {
        let fields = try mapping(
            node,
            "channels",
            allowed: [
                "mode", "heartbeat-ms", "dead-after-ms", "relay-after-ms", "receipt-timeout-ms", "failback-after-ms",
                "ack-deadline-ms",
            ]
        )
        var settings = ChannelSettings()
        if let mode = fields["mode"] {
            let text = try string(mode, "mode")
            guard let value = ChannelSettings.Mode(rawValue: text) else {
                throw fail(mode, "unknown channel mode '\(text)'; use failover or active-active")
            }
            settings.mode = value
        }
        func millis(_ key: String, _ range: ClosedRange<UInt64>) throws(LiaisonError) -> UInt64? {
            guard let node = fields[key] else { return nil }
            guard let value = node.scalar.flatMap({ UInt64($0.string) }), range.contains(value) else {
                throw fail(
                    node,
                    "\(key) must be a whole number of milliseconds from \(range.lowerBound) to \(range.upperBound)")
            }
            return value
        }
        settings.heartbeatMillis = try millis("heartbeat-ms", 20...60_000) ?? settings.heartbeatMillis
        settings.deadAfterMillis = try millis("dead-after-ms", 60...600_000) ?? settings.deadAfterMillis
        settings.relayAfterMillis = try millis("relay-after-ms", 0...3_600_000) ?? settings.relayAfterMillis
        settings.receiptTimeoutMillis =
            try millis("receipt-timeout-ms", 100...3_600_000) ?? settings.receiptTimeoutMillis
        settings.failbackAfterMillis = try millis("failback-after-ms", 0...3_600_000) ?? settings.failbackAfterMillis
        settings.ackDeadlineMillis = try millis("ack-deadline-ms", 1_000...86_400_000) ?? settings.ackDeadlineMillis
        guard settings.deadAfterMillis >= 2 * settings.heartbeatMillis else {
            throw fail(
                fields["dead-after-ms"] ?? node,
                "dead-after-ms must be at least twice heartbeat-ms, or healthy channels are declared dead")
        }
        guard settings.ackDeadlineMillis >= 2 * settings.deadAfterMillis else {
            throw fail(
                fields["ack-deadline-ms"] ?? node,
                "ack-deadline-ms must be at least twice dead-after-ms, or partners that are only busy are struck "
                    + "for withholding")
        }
        return settings
    }

    func filter(_ node: Node?, ladder: ClassificationLadder) throws(LiaisonError) -> LinkFilter {
        guard let node else { return .passAll }
        let fields = try mapping(
            node,
            "a filter",
            allowed: ["collections", "max-classification", "require-tags", "exclude-tags", "redact"]
        )
        var filter = LinkFilter()
        if let collections = fields["collections"] {
            let names = try strings(collections, "collections")
            guard !names.isEmpty else {
                throw fail(collections, "collections names nothing; leave it out to share every collection")
            }
            for name in names where !Names.isValid(name) {
                throw fail(collections, "invalid collection name '\(name)'")
            }
            filter.collections = Set(names)
        }
        if let ceiling = fields["max-classification"] {
            do {
                filter.maxClassification = try ladder.level(named: try string(ceiling, "max-classification"))
            } catch {
                throw fail(ceiling, error.message)
            }
        }
        for (key, keyPath) in [
            ("require-tags", \LinkFilter.requiredTags), ("exclude-tags", \.excludedTags), ("redact", \.redactFields),
        ] {
            guard let list = fields[key] else { continue }
            let names = try strings(list, key)
            guard !names.isEmpty else { throw fail(list, "\(key) names nothing; leave it out instead") }
            for name in names where !Names.isValid(name) { throw fail(list, "invalid name '\(name)' in \(key)") }
            filter[keyPath: keyPath] = Set(names)
        }
        return filter
    }
}
