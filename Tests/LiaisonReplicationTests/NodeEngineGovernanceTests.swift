import Crypto
import Foundation
import LiaisonCore
import LiaisonReplication
import LiaisonTestSupport
import Testing

/// Revocation in the engine: endorsements gathered from neighbours, the quorum, gossip to
/// every neighbour but the sender and the revoked partner, the revocation applied as a
/// quarantine no release ends, and re-admission with new keys.
@Suite("Node engine governance")
struct NodeEngineGovernanceTests {
    static let since: UInt64 = 1_699_999_000_000

    /// alice (this node) links to bob, carol and mallory; four partners, quorum 2.
    struct World {
        var engine: NodeEngine
        var now: UInt64 = 1_700_000_000_000

        init(
            quorum: Int = 2, aliceLinks: [TestNode] = [.bob, .carol, .mallory], containment: ContainmentState = .init()
        ) {
            let everyone = [TestNode.alice, .bob, .carol, .mallory]
            let partners = everyone.enumerated().map { index, node in
                NodeEngine.Partner(
                    recipient: node.recipient(), relay: false, neighbours: [],
                    sealingKey: try! Curve25519.KeyAgreement.PrivateKey(
                        rawRepresentation: Data(repeating: UInt8(index + 1), count: 32)
                    ).publicKey)
            }
            var configuration = NodeEngine.Configuration(
                me: TestNode.alice.recipient(),
                partners: partners,
                links: aliceLinks.map {
                    ReplicationNeighbour(partner: $0.recipient(), outbound: .passAll, inbound: .passAll)
                },
                isRelay: false,
                channels: ChannelSettings(),
                signingKey: TestNode.alice.author.signingKey,
                sealingKey: try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(repeating: 1, count: 32))
            )
            configuration.federation = "f"
            configuration.revocation = RevocationPolicy(quorum: quorum)
            engine = NodeEngine(
                configuration: configuration, acked: [:], highest: 10, nowMillis: now, random: SeededRandom(seed: 3),
                containment: containment)
        }

        mutating func handle(_ event: NodeEngine.Event) -> [NodeEngine.Action] {
            engine.handle(event, nowMillis: now)
        }

        /// Connects channel `id` to `peer` and completes its hello (as `nodeID`, by default its own).
        mutating func open(_ id: Int, to peer: TestNode, as nodeID: NodeID? = nil) -> [NodeEngine.Action] {
            let start = NodeEngine.SessionStart(checkpoint: 0, highest: 10, hlc: .zero)
            var actions = handle(
                .channelConnected(ChannelID(id), peer: peer.name, endpoint: 0, address: "test", start: start))
            let hello = SyncHello(nodeID: nodeID ?? peer.nodeID, hlc: .zero, checkpoint: 0)
            actions += handle(.frame(ChannelID(id), .hello(hello), bytes: 64, atMillis: now))
            return actions
        }

        /// `statements` arrive on channel `id`.
        mutating func receive(_ statements: [GovernanceStatement], on id: Int) -> [NodeEngine.Action] {
            handle(.frame(ChannelID(id), .governance(GovernanceFrame.encode(statements)), bytes: 100, atMillis: now))
        }
    }

    static let revocation = GovernanceContent.revocation(
        Revocation(partner: "mallory", nodeID: TestNode.mallory.nodeID, sinceMillis: since))

    static func endorsed(_ content: GovernanceContent = revocation, by nodes: [TestNode]) throws -> GovernanceStatement
    {
        var statement = try GovernanceStatement(federation: "f", content: content)
        for node in nodes { statement = try statement.endorsed(by: node.author.signingKey) }
        return statement
    }

    /// The governance frames sent, by channel, decoded.
    static func gossip(_ actions: [NodeEngine.Action]) -> [ChannelID: [GovernanceStatement]] {
        var out = [ChannelID: [GovernanceStatement]]()
        for action in actions {
            guard case .send(let id, .governance(let bytes)) = action,
                let received = try? GovernanceFrame.decode(bytes)
            else { continue }
            out[id, default: []] += received.compactMap { try? $0.statement.get() }
        }
        return out
    }

    static func quarantined(_ actions: [NodeEngine.Action]) -> [(String, Quarantine)] {
        NodeEngineContainmentTests.quarantined(actions)
    }

    static func custody(_ actions: [NodeEngine.Action], _ kind: CustodyKind) -> [CustodyEvent] {
        actions.compactMap {
            if case .custody(let event) = $0, event.kind == kind { return event }
            return nil
        }
    }

    @Test(
        "a revocation applies when the quorum of distinct partners endorsed it, not before, and as a quarantine from T")
    func threshold() throws {
        var world = World()
        _ = world.open(1, to: .bob)
        _ = world.open(2, to: .carol)
        _ = world.open(3, to: .mallory)
        let first = world.receive([try Self.endorsed(by: [.bob])], on: 1)
        #expect(Self.quarantined(first).isEmpty, "one endorsement of two applied")
        #expect(!world.engine.isQuarantined("mallory"))
        let second = world.receive([try Self.endorsed(by: [.carol])], on: 2)
        let applied = Self.quarantined(second)
        #expect(applied.map(\.0) == ["mallory"])
        #expect(applied.first?.1.sinceMillis == Self.since && applied.first?.1.revocation != nil)
        #expect(NodeEngineContainmentTests.closes(second) == [ChannelID(3)], "mallory's channel stays open")
        #expect(world.engine.containment.revokedKeys.map(\.nodeID) == [TestNode.mallory.nodeID])
    }

    @Test("the revoked partner's own endorsement and a second copy of one endorsement do not count")
    func selfAndDuplicates() throws {
        var world = World()
        _ = world.open(1, to: .bob)
        _ = world.open(3, to: .mallory)
        let actions =
            world.receive([try Self.endorsed(by: [.bob, .mallory])], on: 1)
            + world.receive([try Self.endorsed(by: [.bob])], on: 1)
        #expect(Self.quarantined(actions).isEmpty)
        let held = try #require(world.engine.containment.governance.statements.values.first)
        #expect(Set(held.endorsements.keys) == [TestNode.bob.nodeID], "the revoked partner's endorsement was kept")
        #expect(world.engine.containment.strikes["bob"] == nil, "an honest forwarder was struck")
    }

    @Test("an endorsement that does not verify is a forged strike against the sender, audited, and not kept")
    func badEndorsement() throws {
        var world = World()
        _ = world.open(1, to: .bob)
        let good = try Self.endorsed(by: [.carol])
        var forged = good
        var endorsement = forged.endorsements[TestNode.carol.nodeID]!
        endorsement.signature = Data(repeating: 7, count: 64)
        forged.endorsements[TestNode.carol.nodeID] = endorsement
        let actions = world.receive([forged], on: 1)
        #expect(world.engine.containment.strikes["bob"]?[.forged]?.total == 1)
        #expect(
            actions.contains {
                if case .strike("bob", .forged, let detail) = $0 { return detail.contains("do not verify") }
                return false
            })
        #expect(world.engine.containment.governance.statements.isEmpty)
        #expect(Self.gossip(actions).isEmpty, "a forged endorsement was passed on")
        let otherFederation = try GovernanceStatement(federation: "g", content: Self.revocation)
            .endorsed(by: TestNode.carol.author.signingKey)
        _ = world.receive([otherFederation], on: 1)
        #expect(world.engine.containment.strikes["bob"]?[.forged]?.total == 2)
        _ = world.handle(.frame(ChannelID(1), .governance(Data([0xFF, 0x01])), bytes: 10, atMillis: world.now))
        #expect(world.engine.containment.strikes["bob"]?[.forged]?.total == 3)
    }

    @Test(
        "a new endorsement goes on to every other neighbour at once, never back to its sender nor to the revoked partner"
    )
    func gossipOnLearning() throws {
        var world = World()
        _ = world.open(1, to: .bob)
        _ = world.open(2, to: .carol)
        _ = world.open(3, to: .mallory)
        let actions = world.receive([try Self.endorsed(by: [.bob])], on: 1)
        let sent = Self.gossip(actions)
        #expect(Set(sent.keys) == [ChannelID(2)], "sent on \(sent.keys.sorted())")
        #expect(sent[ChannelID(2)]?.first?.endorsements.keys.contains(TestNode.bob.nodeID) == true)
        #expect(Self.custody(actions, .statementReceived).count == 1)
        // The same again teaches nothing: nothing goes out.
        #expect(Self.gossip(world.receive([try Self.endorsed(by: [.bob])], on: 2)).isEmpty)
    }

    @Test("a sender that lacks endorsements this node holds gets them back on the same channel")
    func senderGetsWhatItLacks() throws {
        var world = World(quorum: 3)
        _ = world.open(1, to: .bob)
        _ = world.open(2, to: .carol)
        _ = world.receive([try Self.endorsed(by: [.bob])], on: 1)
        let actions = world.receive([try Self.endorsed(by: [.carol])], on: 2)
        let sent = Self.gossip(actions)
        let toCarol = Set(sent[ChannelID(2)]?.first?.endorsements.keys.map { $0 } ?? [])
        #expect(toCarol == [TestNode.bob.nodeID, TestNode.carol.nodeID], "carol did not get bob's endorsement back")
        let toBob = Set(sent[ChannelID(1)]?.first?.endorsements.keys.map { $0 } ?? [])
        #expect(toBob.contains(TestNode.carol.nodeID), "bob did not get carol's endorsement")
    }

    @Test("every statement held goes out on each new channel's hello, except to the partner it names")
    func gossipOnHello() throws {
        var world = World()
        _ = world.handle(.endorse(Self.revocation, reason: "key leak"))
        let toCarol = Self.gossip(world.open(2, to: .carol))
        #expect(toCarol[ChannelID(2)]?.count == 1)
        #expect(toCarol[ChannelID(2)]?.first?.endorsements.keys.contains(TestNode.alice.nodeID) == true)
        #expect(Self.gossip(world.open(3, to: .mallory)).isEmpty, "the revocation went to the revoked partner")
    }

    @Test("the operator's endorsement is signed by this node, audited with its reason, and sent to the neighbours")
    func endorse() throws {
        var world = World()
        _ = world.open(1, to: .bob)
        _ = world.open(3, to: .mallory)
        let actions = world.handle(.endorse(Self.revocation, reason: "key leak"))
        #expect(Self.custody(actions, .statementEndorsed).first?.detail.contains("key leak") == true)
        let sent = Self.gossip(actions)
        #expect(Set(sent.keys) == [ChannelID(1)])
        let statement = try #require(sent[ChannelID(1)]?.first)
        #expect(statement.endorsements[TestNode.alice.nodeID].map(statement.verifies) == true)
        #expect(!world.engine.isQuarantined("mallory"), "one endorsement of two applied")
        // A second operator's endorsement, arriving, makes the quorum.
        let applied = world.receive([try Self.endorsed(by: [.carol])], on: 1)
        #expect(Self.quarantined(applied).map(\.0) == ["mallory"])
    }

    @Test("a node with no link to the revoked partner applies the revocation its neighbours endorsed")
    func noLinkToRevoked() throws {
        var world = World(aliceLinks: [.bob, .carol])
        _ = world.open(1, to: .bob)
        let actions = world.receive([try Self.endorsed(by: [.bob, .carol])], on: 1)
        #expect(Self.quarantined(actions).map(\.0) == ["mallory"])
        #expect(world.engine.isQuarantined("mallory"))
    }

    @Test("a revoked partner is not released by the operator, and its old key cannot come back")
    func releaseRefused() throws {
        var world = World()
        _ = world.open(1, to: .bob)
        _ = world.receive([try Self.endorsed(by: [.bob, .carol])], on: 1)
        let release = world.handle(.release(peer: "mallory"))
        #expect(!release.contains { if case .released = $0 { return true } else { return false } })
        #expect(world.engine.isQuarantined("mallory"))
        let operatorAgain = world.handle(.quarantine(peer: "mallory", sinceMillis: world.now, reason: "again"))
        #expect(Self.quarantined(operatorAgain).isEmpty, "an operator's quarantine replaced the revocation")
        let reopened = world.open(4, to: .mallory)
        #expect(NodeEngineContainmentTests.closes(reopened).contains(ChannelID(4)))
    }

    @Test(
        "a re-admission endorsed by the quorum trusts the new NodeID, lifts the quarantine, and the old key stays refused"
    )
    func readmission() throws {
        var world = World()
        _ = world.open(1, to: .bob)
        let revocation = try Self.endorsed(by: [.bob, .carol])
        _ = world.receive([revocation], on: 1)
        let fresh = TestNode(name: "mallory", seed: 0x5EC0)
        let identity = PartnerIdentity(
            nodeID: fresh.nodeID, tlsFingerprint: String(repeating: "cd", count: 32),
            sealingKey: Data(repeating: 9, count: 32).base64EncodedString())
        let readmission = GovernanceContent.readmission(
            Readmission(partner: "mallory", revocation: revocation.id, identity: identity))
        let one = world.receive([try Self.endorsed(readmission, by: [.bob, .mallory])], on: 1)
        #expect(!one.contains { if case .readmitted = $0 { return true } else { return false } })
        let actions = world.receive([try Self.endorsed(readmission, by: [.carol])], on: 1)
        #expect(
            actions.contains {
                if case .readmitted("mallory", identity, TestNode.mallory.nodeID) = $0 { return true }
                return false
            })
        #expect(!world.engine.isQuarantined("mallory"))
        #expect(world.engine.configuration.partners["mallory"]?.recipient.nodeID == fresh.nodeID)
        #expect(world.engine.configuration.links["mallory"]?.partner.nodeID == fresh.nodeID)
        // The old key's hello is refused; the new one's is taken.
        let old = world.open(5, to: .mallory)
        #expect(NodeEngineContainmentTests.closes(old).contains(ChannelID(5)))
        let new = world.open(6, to: .mallory, as: fresh.nodeID)
        #expect(!NodeEngineContainmentTests.closes(new).contains(ChannelID(6)))
        #expect(world.engine.isOpen(ChannelID(6)))
        // The new key endorses from now on; the revoked key does not.
        let later = GovernanceContent.revocation(
            Revocation(partner: "carol", nodeID: TestNode.carol.nodeID, sinceMillis: Self.since))
        _ = world.receive([try Self.endorsed(later, by: [.mallory])], on: 1)
        #expect(world.engine.containment.governance.statements.values.allSatisfy { $0.content != later })
        _ = world.receive([try Self.endorsed(later, by: [fresh])], on: 1)
        #expect(world.engine.containment.governance.statements.values.contains { $0.content == later })
    }

    @Test("an engine restarted from the stored state holds the revocation and the new identity")
    func restart() throws {
        var world = World()
        _ = world.open(1, to: .bob)
        let revocation = try Self.endorsed(by: [.bob, .carol])
        _ = world.receive([revocation], on: 1)
        let fresh = TestNode(name: "mallory", seed: 0x5EC0)
        let identity = PartnerIdentity(
            nodeID: fresh.nodeID, tlsFingerprint: String(repeating: "cd", count: 32),
            sealingKey: Data(repeating: 9, count: 32).base64EncodedString())
        let readmission = GovernanceContent.readmission(
            Readmission(partner: "mallory", revocation: revocation.id, identity: identity))
        _ = world.receive([try Self.endorsed(readmission, by: [.bob, .carol])], on: 1)
        let stored = try JSONDecoder().decode(
            ContainmentState.self, from: try JSONEncoder().encode(world.engine.containment))
        let restarted = World(containment: stored)
        #expect(restarted.engine.configuration.partners["mallory"]?.recipient.nodeID == fresh.nodeID)
        #expect(restarted.engine.containment.governance.applied.count == 2)
        #expect(!restarted.engine.isQuarantined("mallory"))
    }
}
