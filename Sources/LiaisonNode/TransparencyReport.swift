public import Crypto
public import Foundation
public import LiaisonCore
import LiaisonStore

/// What a node shared with whom over a period, for oversight bodies (DESIGN §13; docs/
/// operations.md, "Transparency report"): per link, items and ops sent and received, withheld
/// by reason, redacted, refused, recalled and purged, broken down by classification and
/// collection; strikes and quarantines. Counts only: no content and no item or op ids.
///
/// It is computed from the custody log alone (plus each op's markings from the store), names
/// the custody chain head it was computed from (`liaison audit verify` prints the same head),
/// and is signed by the node's signing key, whose hash is the node's NodeID.
public struct TransparencyReport: Codable, Sendable, Equatable {
    /// The format, so a verifier knows what it reads.
    public var format = "liaison-transparency-report/1"
    /// The node's name and NodeID.
    public var node: String
    public var nodeID: String
    /// The node's Ed25519 signing public key (base64); its SHA-256 is `nodeID`.
    public var signingKey: String
    /// The period: custody entries recorded at or after `from` and before `to` (ISO 8601).
    public var from: String
    public var to: String
    /// When the report was made.
    public var generatedAt: String
    /// The custody log's last entry when the report was made: what it was computed from.
    public var custodyHead: Head
    /// Custody entries in the period.
    public var entriesInPeriod: Int
    /// One summary per partner that appears in the period (or is a neighbour).
    public var links: [Link]
    /// Quarantines and releases in the period.
    public var containment: [ContainmentEvent]
    /// Ed25519 signature (base64) over `signedBytes()`; nil before signing.
    public var signature: String?

    /// A position in the custody chain.
    public struct Head: Codable, Sendable, Equatable {
        public var sequence: UInt64
        public var hash: String
    }

    /// A count of ops, the distinct items they belong to, and the split by the markings the
    /// item had when each op was written.
    public struct Flow: Codable, Sendable, Equatable {
        public var ops = 0
        public var items = 0
        public var byClassification: [String: Int] = [:]
        public var byCollection: [String: Int] = [:]
        /// Ops counted by reason (withheld and refused; the custody entry's own reasons).
        public var byReason: [String: Int]?
    }

    /// One partner's row.
    public struct Link: Codable, Sendable, Equatable {
        public var partner: String
        /// Ops sent to it (on channels and sealed), and the items they belong to.
        public var sent = Flow()
        /// Ops received from it and committed.
        public var received = Flow()
        /// Ops the link's filter withheld from it.
        public var withheld = Flow()
        /// Ops sent with some field values withheld.
        public var redacted = Flow()
        /// Ops from it refused here.
        public var refused = Flow()
        /// Recalls and narrowings sent to it (content-free notices to purge).
        public var recalled = Flow()
        /// Ops whose content was purged here on its recall or narrowing.
        public var purged = Flow()
        /// Strikes recorded against it, by class.
        public var strikes: [String: Int] = [:]
    }

    /// A quarantine or a release.
    public struct ContainmentEvent: Codable, Sendable, Equatable {
        public var partner: String
        public var at: String
        /// `quarantined` or `released`.
        public var event: String
        public var detail: String
    }

    /// The bytes the signature covers: a fixed label, then the report without its signature
    /// as JSON with sorted keys.
    public func signedBytes() throws(LiaisonError) -> Data {
        var unsigned = self
        unsigned.signature = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            return Data("liaison transparency report\n".utf8) + (try encoder.encode(unsigned))
        } catch {
            throw LiaisonError(.io, "the report cannot be encoded", cause: error)
        }
    }

    /// Signs the report with the node's key.
    public mutating func sign(with key: Curve25519.Signing.PrivateKey) throws(LiaisonError) {
        let bytes = try signedBytes()
        do {
            signature = try key.signature(for: bytes).base64EncodedString()
        } catch {
            throw LiaisonError(.io, "the report cannot be signed", cause: error)
        }
    }

    /// The form `liaison report --json` prints and `verify(file:)` accepts: pretty JSON with
    /// sorted keys, and a newline.
    public func fileForm() throws(LiaisonError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            return try encoder.encode(self) + Data("\n".utf8)
        } catch {
            throw LiaisonError(.io, "the report cannot be encoded", cause: error)
        }
    }

    /// Reads a report file and checks it: exactly the form `fileForm` gives (so no key was
    /// added, repeated or changed beside the signed content, which a JSON reader other than
    /// this one could read differently), the format, the signature, and that the signing key
    /// is the NodeID's. Throws `.tampered` saying what does not hold.
    public static func verified(file bytes: Data) throws(LiaisonError) -> TransparencyReport {
        let report: TransparencyReport
        do {
            report = try JSONDecoder().decode(TransparencyReport.self, from: bytes)
        } catch {
            throw LiaisonError(
                .invalidArgument, "not a transparency report as 'liaison report --json' prints it", cause: error)
        }
        guard report.format == "liaison-transparency-report/1" else {
            throw LiaisonError(
                .invalidArgument, "a report of another format; this Liaison reads liaison-transparency-report/1")
        }
        guard try report.fileForm() == bytes else {
            throw LiaisonError(
                .tampered,
                "the file is not exactly as 'liaison report --json' printed it (keys added, repeated or reordered, or text changed)"
            )
        }
        try report.verify()
        return report
    }

    /// Checks the signature, and that the signing key is the NodeID's. Throws `.tampered`
    /// saying what does not hold.
    public func verify() throws(LiaisonError) {
        guard let raw = Data(base64Encoded: signingKey),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else { throw LiaisonError(.tampered, "the report's signing key is not an Ed25519 public key") }
        guard NodeID(signingKey: key).text == nodeID else {
            throw LiaisonError(.tampered, "the report's signing key is not node \(nodeID)'s")
        }
        guard let signature, let signatureBytes = Data(base64Encoded: signature) else {
            throw LiaisonError(.tampered, "the report is not signed")
        }
        guard key.isValidSignature(signatureBytes, for: try signedBytes()) else {
            throw LiaisonError(.tampered, "the report's signature does not verify: it was changed after signing")
        }
    }
}

extension TransparencyReport {
    /// Computes the report of `node` for custody entries recorded in [`from`, `to`), naming
    /// partners by `federation` (NodeIDs in entries become partner names), and signs it.
    public static func make(
        node: LocalNode, federation: FederationConfig?, from: Date, to: Date, now: Date
    ) throws(LiaisonError) -> TransparencyReport {
        let fromMillis = ISO8601.millis(from)
        let toMillis = ISO8601.millis(to)
        guard fromMillis < toMillis else {
            throw LiaisonError(.invalidArgument, "--from must be before --to")
        }
        var names = [String: String]()
        for partner in federation?.partners ?? [] {
            names[partner.nodeID.text] = partner.name
        }
        let store = node.store
        var classifier = Classifier(store: store)
        var links = [String: Link]()
        var itemsSeen = [String: Set<ItemID>]()
        var containment = [ContainmentEvent]()
        var inPeriod = 0
        var head = Head(sequence: 0, hash: Hash32.zero.hex)
        var next: UInt64 = 1
        while true {
            let page = try store.custody(from: next, limit: 5_000)
            guard let last = page.last else { break }
            head = Head(sequence: last.sequence, hash: last.hash.hex)
            next = last.sequence + 1
            for entry in page where entry.timeMillis >= fromMillis && entry.timeMillis < toMillis {
                inPeriod += 1
                guard let peer = entry.peer else { continue }
                let partner = names[peer] ?? peer
                var link = links[partner] ?? Link(partner: partner)
                func count(
                    _ flow: WritableKeyPath<Link, Flow>, _ ids: [OpID], reasons: Bool = false
                ) throws(LiaisonError) {
                    for id in ids {
                        link[keyPath: flow].ops += 1
                        guard let found = try classifier.markings(of: id) else {
                            link[keyPath: flow].byClassification["(not held here)", default: 0] += 1
                            continue
                        }
                        link[keyPath: flow].byClassification[found.classification, default: 0] += 1
                        link[keyPath: flow].byCollection[found.collection, default: 0] += 1
                        if itemsSeen["\(partner) \(flow)", default: []].insert(found.item).inserted {
                            link[keyPath: flow].items += 1
                        }
                    }
                    if reasons {
                        var byReason = link[keyPath: flow].byReason ?? [:]
                        for (reason, number) in Self.reasons(entry.detail) { byReason[reason, default: 0] += number }
                        link[keyPath: flow].byReason = byReason
                    }
                }
                switch entry.kind {
                case .opsSent:
                    try count(\.sent, entry.opIDs)
                    // A recall, and the recall a narrowing signs, go content-free to the
                    // partners they name: each sent is a recall of this link.
                    var recalls = [OpID]()
                    for id in entry.opIDs where try classifier.isRecall(id) { recalls.append(id) }
                    try count(\.recalled, recalls)
                case .opsReceived: try count(\.received, entry.opIDs)
                case .filterWithheld: try count(\.withheld, entry.opIDs, reasons: true)
                case .opsRedacted: try count(\.redacted, entry.opIDs)
                case .opsRejected: try count(\.refused, entry.opIDs, reasons: true)
                case .opsPurged: try count(\.purged, entry.opIDs)
                case .peerRefused:
                    let strikeClass = entry.detail.split(separator: ":", maxSplits: 1).first.map(String.init) ?? "?"
                    // Entries the engine's strikes write name their class first; other
                    // channel-level refusals (a closed channel, a missing hello) do not.
                    link.strikes[
                        StrikeClass(rawValue: strikeClass) == nil ? "channel-refusal" : strikeClass, default: 0] += 1
                case .partnerQuarantined, .partnerReleased:
                    containment.append(
                        ContainmentEvent(
                            partner: partner, at: ISO8601.format(millis: entry.timeMillis),
                            event: entry.kind == .partnerQuarantined ? "quarantined" : "released",
                            detail: entry.detail))
                default:
                    continue
                }
                links[partner] = link
            }
        }
        for neighbour in federation?.neighbours ?? [] where links[neighbour.name] == nil {
            links[neighbour.name] = Link(partner: neighbour.name)
        }
        var report = TransparencyReport(
            node: node.config.name,
            nodeID: node.config.nodeID.text,
            signingKey: node.identity.signingKey.publicKey.rawRepresentation.base64EncodedString(),
            from: ISO8601.format(millis: fromMillis),
            to: ISO8601.format(millis: toMillis),
            generatedAt: ISO8601.format(millis: ISO8601.millis(now)),
            custodyHead: head,
            entriesInPeriod: inPeriod,
            links: links.values.sorted { $0.partner < $1.partner },
            containment: containment
        )
        try report.sign(with: node.identity.signingKey)
        return report
    }

    /// The "N× reason" parts of a custody entry's detail.
    static func reasons(_ detail: String) -> [(String, Int)] {
        detail.split(separator: ";").compactMap { part in
            let pieces = part.trimmingCharacters(in: .whitespaces).split(separator: "× ", maxSplits: 1)
            guard pieces.count == 2, let number = Int(pieces[0]) else { return nil }
            return (Self.reasonName(String(pieces[1])), number)
        }
    }

    /// A short name for a reason as custody words it: a filter's reason is one word already
    /// ("not-releasable"); a refusal's is a sentence (`StrikeReason.description`).
    static func reasonName(_ text: String) -> String {
        let prefixes: [(String, String)] = [
            ("author quarantined", "author-quarantined"), ("invalid op", "invalid"),
            ("future stamp", "future-stamp"), ("sent though not entitled", "not-entitled"),
            ("refused by the item", "refused-by-item"), ("values of redacted fields", "unredacted"),
            ("more than", "too-many-pending"),
        ]
        if let (_, name) = prefixes.first(where: { text.hasPrefix($0.0) }) { return name }
        if text.hasPrefix("author "), text.contains("is not a partner") { return "unknown-author" }
        return text.split(separator: " ").first.map(String.init) ?? text
    }

    /// The markings an op's item had when the op was written, read from the store with one
    /// read of each item's history.
    struct Classifier {
        let store: any Store
        var histories: [ItemID: [StoredOp]] = [:]
        var ops: [OpID: StoredOp?] = [:]

        struct Found {
            var item: ItemID
            var classification: String
            var collection: String
        }

        mutating func stored(_ id: OpID) throws(LiaisonError) -> StoredOp? {
            if let known = ops[id] { return known }
            let found = try store.op(id)
            ops[id] = found
            return found
        }

        mutating func isRecall(_ id: OpID) throws(LiaisonError) -> Bool {
            guard let op = try stored(id)?.op else { return false }
            if case .recall = op.body.change { return true }
            return false
        }

        mutating func markings(of id: OpID) throws(LiaisonError) -> Found? {
            guard let op = try stored(id)?.op else { return nil }
            let itemID = op.body.itemID
            if histories[itemID] == nil {
                histories[itemID] = try store.ops(ofItem: itemID).sorted { $0.op.stamp < $1.op.stamp }
            }
            let history = histories[itemID] ?? []
            var collection = "?"
            var classification = "?"
            for entry in history {
                if case .create(let create) = entry.op.body.change, collection == "?" { collection = create.collection }
                if entry.op.stamp <= op.stamp, let markings = entry.op.body.change.markings {
                    classification = markings.classification
                }
            }
            return Found(item: itemID, classification: classification, collection: collection)
        }
    }
}
