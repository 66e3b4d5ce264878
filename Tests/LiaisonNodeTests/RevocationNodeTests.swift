import Crypto
import Foundation
import LiaisonCore
import LiaisonReplication
import LiaisonStore
import LiaisonTestSupport
import LiaisonTransport
import Logging
import NIOCore
import Synchronization
import Testing

@testable import LiaisonNode

/// Revocation and re-admission at a node: the store rebuild, persistence across a restart of
/// the interpreter over SQLite, the revoked key's ops refused for good, the new key trusted,
/// and the offline path (`liaison revoke`, `readmit`, `rekey` on stopped nodes).
@Suite("Revocation at a node")
struct RevocationNodeTests {
    typealias NullTransport = ContainmentNodeTests.NullTransport

    static let since = HLCTimestamp.testEpochMillis + 1_000
    static let fresh = TestNode(name: "mallory", seed: 0x5EC0)
    static let markings = Markings(classification: "UNCLASSIFIED", releasableTo: ["ALL"])

    /// alice, linked to bob and mallory; carol is a partner too; quorum 2.
    static func interpreter(_ store: any Store) throws -> NodeInterpreter<NullTransport> {
        let everyone = [TestNode.alice, .bob, .carol, .mallory]
        let keys = Dictionary(
            uniqueKeysWithValues: everyone.enumerated().map { index, node in
                (
                    node.name,
                    try! Curve25519.KeyAgreement.PrivateKey(
                        rawRepresentation: Data(repeating: UInt8(index + 1), count: 32))
                )
            })
        var configuration = NodeEngine.Configuration(
            me: TestNode.alice.recipient(),
            partners: everyone.map {
                NodeEngine.Partner(
                    recipient: $0.recipient(), relay: false, neighbours: [], sealingKey: keys[$0.name]!.publicKey)
            },
            links: [TestNode.bob, .mallory].map {
                ReplicationNeighbour(partner: $0.recipient(), outbound: .passAll, inbound: .passAll)
            },
            isRelay: false,
            channels: ChannelSettings(),
            signingKey: TestNode.alice.author.signingKey,
            sealingKey: keys["alice"]!
        )
        configuration.federation = "f"
        configuration.revocation = RevocationPolicy(quorum: 2)
        return try NodeInterpreter(
            configuration: configuration, store: store, ladder: .standard, maxClockSkewMillis: 60_000,
            transport: NullTransport(), nowMillis: HLCTimestamp.testEpochMillis, random: SeededRandom(seed: 1),
            logger: nil)
    }

    /// Opens channel `id` to `peer` (saying hello as `nodeID`) at `interpreter`.
    static func open(
        _ id: Int, _ peer: String, as nodeID: NodeID, at interpreter: inout NodeInterpreter<NullTransport>,
        nowMillis: UInt64
    ) {
        interpreter.channelConnected(ChannelID(id), peer: peer, endpoint: 0, address: "test", nowMillis: nowMillis)
        let hello = SyncHello(nodeID: nodeID, hlc: .test(0), checkpoint: 0)
        interpreter.handle(.frame(ChannelID(id), .hello(hello), bytes: 10, atMillis: nowMillis), nowMillis: nowMillis)
    }

    static func endorsed(_ content: GovernanceContent, by nodes: [TestNode]) throws -> GovernanceStatement {
        var statement = try GovernanceStatement(federation: "f", content: content)
        for node in nodes { statement = try statement.endorsed(by: node.author.signingKey) }
        return statement
    }

    static func scratchStore() -> String {
        TestDirectory.path("revoke").appendingPathExtension("sqlite").path
    }

    @Test(
        "a revocation and a re-admission survive restarts: the old key's ops since T stay out, the new key's come in"
    )
    func survivesRestart() throws {
        let path = Self.scratchStore()
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        var factory = OpFactory(seed: 11)
        let early = try factory.create(by: .mallory, markings: Self.markings, at: .test(10))
        let late = try factory.create(by: .mallory, markings: Self.markings, at: .test(2_000))
        let now = HLCTimestamp.testEpochMillis + 5_000
        let revocation = try Self.endorsed(
            .revocation(Revocation(partner: "mallory", nodeID: TestNode.mallory.nodeID, sinceMillis: Self.since)),
            by: [.bob, .carol])

        do {
            var first = try Self.interpreter(try SQLiteStore(path: path, create: true))
            Self.open(1, "mallory", as: TestNode.mallory.nodeID, at: &first, nowMillis: now)
            first.handle(
                .frame(
                    ChannelID(1), .batch(ops: [early.encoded, late.encoded], throughSeq: 2), bytes: 10, atMillis: now),
                nowMillis: now)
            #expect(try first.store.item(late.body.itemID) != nil)
            Self.open(2, "bob", as: TestNode.bob.nodeID, at: &first, nowMillis: now)
            let report = first.handle(
                .frame(ChannelID(2), .governance(GovernanceFrame.encode([revocation])), bytes: 10, atMillis: now),
                nowMillis: now)
            #expect(report.rebuilds.first?.removed == [late.body.itemID], "mallory's item since T stayed")
            #expect(try first.store.item(early.body.itemID) != nil, "mallory's item before T was left out")
            #expect(try first.store.custody(from: 1, limit: 1000).contains { $0.kind == .partnerQuarantined })
        }

        var second = try Self.interpreter(try SQLiteStore(path: path, create: false))
        #expect(second.engine.containment.isRevoked("mallory"))
        #expect(try second.store.item(late.body.itemID) == nil)
        // Another of mallory's ops since T, passed on by honest bob: refused, bob not struck.
        let later = try factory.create(by: .mallory, markings: Self.markings, at: .test(3_000))
        var replication = second.replicationStore
        let refused = try replication.receive(ops: [later.encoded], through: 1, from: "bob", nowMillis: now)
        #expect(refused.accepted == 0 && refused.strikes.isEmpty)
        let release = second.handle(.release(peer: "mallory"), nowMillis: now)
        #expect(release.rebuilds.isEmpty && second.engine.isQuarantined("mallory"), "a release ended a revocation")

        let identity = PartnerIdentity(
            nodeID: Self.fresh.nodeID, tlsFingerprint: String(repeating: "ef", count: 32),
            sealingKey: Data(repeating: 5, count: 32).base64EncodedString())
        let readmission = try Self.endorsed(
            .readmission(Readmission(partner: "mallory", revocation: revocation.id, identity: identity)),
            by: [.bob, .carol])
        let told = Told()
        second.identityChanged = { name, identity in told.record(name, identity) }
        Self.open(3, "bob", as: TestNode.bob.nodeID, at: &second, nowMillis: now + 1)
        let readmitted = second.handle(
            .frame(ChannelID(3), .governance(GovernanceFrame.encode([readmission])), bytes: 10, atMillis: now + 1),
            nowMillis: now + 1)
        #expect(readmitted.readmissions.map(\.peer) == ["mallory"])
        #expect(told.names == ["mallory"], "the transport was not told to pin the new certificate")
        #expect(try second.store.custody(from: 1, limit: 1000).contains { $0.kind == .partnerReadmitted })

        var third = try Self.interpreter(try SQLiteStore(path: path, create: false))
        #expect(third.engine.configuration.partners["mallory"]?.recipient.nodeID == Self.fresh.nodeID)
        #expect(!third.engine.isQuarantined("mallory"))
        #expect(third.replicationStore.sentLinkName("mallory") != ReplicationStore.sentLink("mallory"))
        // The old key's hello is refused; the new key's ops come in on mallory's link.
        Self.open(4, "mallory", as: TestNode.mallory.nodeID, at: &third, nowMillis: now + 2)
        #expect(!third.engine.isOpen(ChannelID(4)))
        Self.open(5, "mallory", as: Self.fresh.nodeID, at: &third, nowMillis: now + 2)
        #expect(third.engine.isOpen(ChannelID(5)))
        let renewed = try factory.create(by: Self.fresh, markings: Self.markings, at: .test(4_000))
        let accepted = third.handle(
            .frame(
                ChannelID(5), .batch(ops: [renewed.encoded, later.encoded], throughSeq: 1), bytes: 10, atMillis: now + 2
            ),
            nowMillis: now + 2)
        #expect(accepted.commits.first?.outcome.accepted == 1)
        #expect(accepted.commits.first?.outcome.strikes.isEmpty == true, "the new node was struck for its old key's op")
        #expect(try third.store.item(renewed.body.itemID) != nil)
        #expect(try third.store.item(later.body.itemID) == nil, "the revoked key's op since T came in")
        // What the revoked key wrote is not sent to the partner's new node.
        let batch = try third.replicationStore.loadBatch(for: "mallory", after: 0, limit: 100, nowMillis: now + 3)
        #expect(!batch.sent.contains(early.id))
    }

    @Test("on stopped nodes: revoke applies at the quorum, release is refused, rekey and readmit trust the new keys")
    func offline() async throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let yaml = """
            federation: f
            partners:
              alpha: {endpoints: ["127.0.0.1:1"], api: "127.0.0.1:2"}
              bravo: {endpoints: ["127.0.0.1:3"], api: "127.0.0.1:4"}
              charlie: {endpoints: ["127.0.0.1:5"], api: "127.0.0.1:6"}
            links:
              - {from: alpha, to: bravo}
              - {from: bravo, to: alpha}
              - {from: bravo, to: charlie}
              - {from: charlie, to: bravo}
            revocation: {quorum: 1}

            """
        _ = try Topology.parse(yaml).render(into: root, now: Date())
        let alpha = try LocalNode.open(NodeDirectory(path: root.appendingPathComponent("alpha").path))
        #expect(alpha.federation?.revocationQuorum == 1)
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let outcome = try alpha.endorseRevocation("charlie", sinceMillis: now - 60_000, reason: "test", nowMillis: now)
        #expect(outcome.applied && outcome.endorsedBy == ["alpha"])
        #expect(try alpha.containment().isRevoked("charlie"))
        do {
            _ = try alpha.release("charlie", nowMillis: now)
            Issue.record("a revoked partner was released")
        } catch {
            #expect(error.message.contains("new keys"), "\(error.message)")
        }
        do {
            _ = try alpha.endorseRevocation("charlie", sinceMillis: now, reason: "again", nowMillis: now)
            Issue.record("a revoked key was revoked again")
        } catch {
            #expect(error.message.contains("revoked already"), "\(error.message)")
        }

        let charlieDirectory = NodeDirectory(path: root.appendingPathComponent("charlie").path)
        let oldID = try charlieDirectory.loadConfig().nodeID
        let (config, identity, previous) = try charlieDirectory.rekey(now: Date())
        #expect(previous == oldID && config.nodeID != oldID)
        let charlie = try LocalNode.open(charlieDirectory)
        #expect(charlie.config.nodeID == identity.nodeID)
        #expect(charlie.federation?.partner(named: "charlie")?.nodeID == identity.nodeID)
        let card = PartnerIdentity(
            nodeID: identity.nodeID, tlsFingerprint: identity.tlsFingerprint,
            sealingKey: identity.sealingKey.publicKey.rawRepresentation.base64EncodedString())
        do {
            _ = try alpha.endorseReadmission(
                "charlie",
                identity: PartnerIdentity(
                    nodeID: oldID, tlsFingerprint: card.tlsFingerprint, sealingKey: card.sealingKey),
                reason: "old", nowMillis: now)
            Issue.record("a re-admission under the revoked key was endorsed")
        } catch {
            #expect(error.message.contains("new keys"), "\(error.message)")
        }
        let readmitted = try alpha.endorseReadmission("charlie", identity: card, reason: "new keys", nowMillis: now + 1)
        #expect(readmitted.applied)
        let state = try alpha.containment()
        #expect(!state.isQuarantined("charlie") && state.identities["charlie"]?.nodeID == identity.nodeID)

        // The daemon's engine starts with the new pin and NodeID.
        let engine = try ReplicationEngine(
            node: try LocalNode.open(NodeDirectory(path: root.appendingPathComponent("bravo").path)),
            federation: try FederationConfig.load(
                from: NodeDirectory(path: root.appendingPathComponent("bravo").path)),
            logger: Logger(label: "test"))
        #expect(engine.pins.fingerprint(of: "charlie") != identity.tlsFingerprint, "bravo trusted it unendorsed")
        let alphaEngine = try ReplicationEngine(
            node: try LocalNode.open(NodeDirectory(path: root.appendingPathComponent("alpha").path)),
            federation: try FederationConfig.load(
                from: NodeDirectory(path: root.appendingPathComponent("alpha").path)),
            logger: Logger(label: "test"))
        #expect(await alphaEngine.governance().current["charlie"] == identity.nodeID)
    }

    @Test(
        "revocation quorums outside 1 ... partners - 1 are refused with the line at fault",
        arguments: [
            ("revocation: {quorum: 0}", "from 1 to 1"),
            ("revocation: {quorum: 2}", "from 1 to 1"),
            ("revocation: {quorum: two}", "whole number"),
            ("revocation: {k: 1}", "unknown key 'k'"),
        ]
    )
    func badQuorum(yaml: String, message: String) {
        do {
            _ = try Topology.parse(ContainmentNodeTests.base + yaml + "\n", file: "t.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.message.contains("t.yaml:8"), "\(error.message)")
            #expect(error.message.contains(message), "\(error.message)")
        }
    }
}

/// What a re-admission told the transport.
final class Told: Sendable {
    private let recorded = Mutex<[String]>([])
    func record(_ name: String, _ identity: PartnerIdentity) { recorded.withLock { $0.append(name) } }
    var names: [String] { recorded.withLock { $0 } }
}
