import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode

struct RevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Endorse the revocation of a partner's keys; a quorum of partners makes every node apply it.",
        discussion: """
            This node signs the statement 'PARTNER's key is no longer trusted from --since on' and \
            gossips it to its neighbours, which pass it on to theirs (never to PARTNER). Once the \
            statement holds the topology's quorum of endorsements (revocation: quorum, default a \
            majority), every node quarantines PARTNER from --since: its ops since then leave every \
            item, its links close. 'liaison release' cannot end it; re-admission needs new keys \
            ('liaison rekey' on PARTNER's node, then 'liaison readmit'). Without --since, this node \
            endorses the one revocation of PARTNER that others endorsed and that waits here.
            """
    )

    @OptionGroup var directory: DirectoryOption

    @Argument(help: "The partner's name.")
    var partner: String

    @Option(help: "From when its ops are left out: ISO 8601 (e.g. 2026-11-29T08:00:00Z), or 'now'.")
    var since: String?

    @Option(help: "Why, for this node's custody log (not part of what is signed).")
    var reason: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrorsAsync {
            let body = RevocationBody(partner: partner, since: since, reason: reason)
            let now = Date()
            let sinceMillis = try body.sinceMillis(now: now)
            let result = try await onNode(
                NodeDirectory(path: directory.dir),
                running: { client throws(LiaisonError) in try await client.endorseRevocation(body) },
                stopped: { node throws(LiaisonError) in
                    EndorsementResult(
                        try node.endorseRevocation(
                            partner, sinceMillis: sinceMillis, reason: body.reasonText,
                            nowMillis: UInt64(now.timeIntervalSince1970 * 1000)))
                })
            try printEndorsement(result, json: json)
        }
    }
}

struct ReadmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "readmit",
        abstract: "Endorse a revoked partner's new keys; a quorum of partners makes every node trust them.",
        discussion: """
            The partner makes new keys with 'liaison rekey --dir ITS-DIR --json > card.json' and \
            hands the card to its partners. Each endorses it here; once the quorum did, every node \
            pins the new certificate, checks the partner's hellos and ops against the new NodeID, \
            seals to the new key, and lifts the revocation's quarantine. The revoked key stays \
            refused: its ops since the revocation's start stay out.
            """
    )

    @OptionGroup var directory: DirectoryOption

    @Argument(help: "The partner's name.")
    var partner: String

    @Option(help: "The identity card printed by 'liaison rekey --json' on the partner's node.")
    var identity: String?

    @Option(name: .customLong("node-id"), help: "Its new NodeID (instead of --identity).")
    var nodeID: String?

    @Option(name: .customLong("cert-fingerprint"), help: "SHA-256 of its new TLS certificate, hex.")
    var certFingerprint: String?

    @Option(name: .customLong("sealing-key"), help: "Its new X25519 sealing public key, base64.")
    var sealingKey: String?

    @Option(help: "Why, for this node's custody log (not part of what is signed).")
    var reason: String?

    @Flag(help: "Print JSON.")
    var json = false

    func card() throws(LiaisonError) -> IdentityCard {
        if let identity {
            guard nodeID == nil, certFingerprint == nil, sealingKey == nil else {
                throw LiaisonError(
                    .invalidArgument, "give --identity, or --node-id, --cert-fingerprint and --sealing-key, not both")
            }
            guard let data = FileManager.default.contents(atPath: identity) else {
                throw LiaisonError(.notFound, "cannot read the identity card \(identity)")
            }
            let card: IdentityCard
            do {
                card = try JSONDecoder().decode(IdentityCard.self, from: data)
            } catch {
                throw LiaisonError(
                    .invalidArgument, "\(identity) is not an identity card ('liaison rekey --json' prints one)",
                    cause: error)
            }
            guard card.name == partner else {
                throw LiaisonError(
                    .invalidArgument, "the identity card in \(identity) is \(card.name)'s, not \(partner)'s")
            }
            return card
        }
        guard let nodeID, let certFingerprint, let sealingKey else {
            throw LiaisonError(
                .invalidArgument,
                "give the new identity: --identity CARD, or --node-id, --cert-fingerprint and --sealing-key")
        }
        return IdentityCard(name: partner, nodeID: nodeID, tlsFingerprint: certFingerprint, sealingKey: sealingKey)
    }

    func run() async throws {
        try await reportingErrorsAsync {
            let card = try card()
            let body = ReadmissionBody(
                partner: partner, nodeID: card.nodeID, tlsFingerprint: card.tlsFingerprint,
                sealingKey: card.sealingKey, reason: reason)
            let identity = try body.identity()
            let result = try await onNode(
                NodeDirectory(path: directory.dir),
                running: { client throws(LiaisonError) in try await client.endorseReadmission(body) },
                stopped: { node throws(LiaisonError) in
                    EndorsementResult(
                        try node.endorseReadmission(
                            partner, identity: identity, reason: body.reasonText,
                            nowMillis: UInt64(Date().timeIntervalSince1970 * 1000)))
                })
            try printEndorsement(result, json: json)
        }
    }
}

/// What `revoke` and `readmit` print.
private func printEndorsement(_ result: EndorsementResult, json: Bool) throws {
    if json {
        try printJSON(result)
        return
    }
    let what = result.kind == "revocation" ? "revocation of \(result.partner)" : "re-admission of \(result.partner)"
    print(
        "endorsed the \(what) (statement \(result.statement.prefix(12))): \(result.endorsedBy.count) of "
            + "\(result.quorum) endorsements (\(result.endorsedBy.joined(separator: ", ")))")
    if result.applied {
        if result.kind == "revocation" {
            print(
                "applied here: \(result.partner) quarantined as revoked; \(result.opsLeftOut) ops left out, "
                    + "\(result.itemsRebuilt) items rebuilt (\(result.itemsRemoved) removed)")
        } else {
            print("applied here: \(result.partner) trusted under its new keys")
        }
    } else {
        print("waits for \(result.quorum - result.endorsedBy.count) more endorsements by other partners")
    }
}

struct RevocationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revocations",
        abstract: "Show revocations and re-admissions held here, their endorsements, and revoked keys."
    )

    @OptionGroup var directory: DirectoryOption

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrorsAsync {
            let nodeDirectory = NodeDirectory(path: directory.dir)
            let view = try await onNode(
                nodeDirectory,
                running: { client throws(LiaisonError) in try await client.governance() },
                stopped: { node throws(LiaisonError) in
                    guard let federation = node.federation else {
                        throw LiaisonError(
                            .notFound,
                            "\(nodeDirectory.url.path) belongs to no federation; render it with 'liaison topology render'"
                        )
                    }
                    let state = try node.containment()
                    return GovernanceView(
                        state, quorum: federation.revocationQuorum,
                        current: state.currentNodeIDs(rendered: federation.renderedNodeIDs))
                })
            if json {
                try printJSON(view)
                return
            }
            printTable(
                header: ["STATEMENT", "KIND", "PARTNER", "NODEID", "SINCE", "ENDORSED BY", "APPLIED"],
                rows: view.statements.map {
                    [
                        String($0.id.prefix(12)), $0.kind, $0.partner, String($0.nodeID.prefix(9)), $0.since ?? "-",
                        "\($0.endorsedBy.count)/\($0.quorum) \($0.endorsedBy.joined(separator: ","))",
                        $0.appliedAt ?? "waiting",
                    ]
                }
            )
            if !view.revokedKeys.isEmpty {
                print("")
                printTable(
                    header: ["REVOKED KEY", "PARTNER", "SINCE"],
                    rows: view.revokedKeys.map { [$0.nodeID, $0.partner, $0.since] })
            }
            if !view.identities.isEmpty {
                print("")
                printTable(
                    header: ["READMITTED", "NODEID", "TLS PIN"],
                    rows: view.identities.map { [$0.partner, $0.nodeID, $0.tlsFingerprint] })
            }
        }
    }
}

struct RekeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rekey",
        abstract: "Give a revoked node new keys and print the identity card its partners readmit it with.",
        discussion: """
            Run on the node whose keys were revoked, while it is stopped. Its store, name and \
            federation stay; node.json and its own record in federation.json name the new keys; the \
            old key files move to keys/retired/. Hand the card (--json) to the partners: each runs \
            'liaison readmit NAME --identity CARD --dir ITS-DIR'. Until a quorum did, they refuse the \
            new certificate.
            """
    )

    @OptionGroup var directory: DirectoryOption

    @Flag(help: "Print the identity card as JSON.")
    var json = false

    func run() throws {
        try reportingErrors {
            let nodeDirectory = NodeDirectory(path: directory.dir)
            if let pid = RunningNode.runningPID(nodeDirectory) {
                throw LiaisonError(.invalidArgument, "the node runs (process \(pid)); stop it before 'liaison rekey'")
            }
            _ = try LocalNode.openForCommand(nodeDirectory)
            let (config, identity, previous) = try nodeDirectory.rekey(now: Date())
            let card = IdentityCard(
                name: config.name, nodeID: config.nodeID.text, tlsFingerprint: config.tlsFingerprint,
                sealingKey: identity.sealingPublicKey)
            if json {
                try printJSON(card)
            } else {
                print("node        \(card.name)")
                print("NodeID      \(card.nodeID)  (was \(previous.text))")
                print("TLS pin     sha256:\(card.tlsFingerprint)")
                print("sealing key \(card.sealingKey)")
                print("partners readmit it with: liaison readmit \(card.name) --node-id \(card.nodeID) ")
                print("  --cert-fingerprint \(card.tlsFingerprint) --sealing-key \(card.sealingKey) --dir THEIR-DIR")
            }
        }
    }
}
