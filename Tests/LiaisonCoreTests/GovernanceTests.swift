import Foundation
import LiaisonCore
import LiaisonTestSupport
import Testing

/// Revocation statements: canonical bodies, endorsements, the grow-only set they form, and
/// the quorum rule every node applies alike.
@Suite("Governance statements")
struct GovernanceTests {
    static let since: UInt64 = 1_700_000_000_000
    static let revocation = GovernanceContent.revocation(
        Revocation(partner: "mallory", nodeID: TestNode.mallory.nodeID, sinceMillis: since))

    static func statement(_ content: GovernanceContent = revocation) throws -> GovernanceStatement {
        try GovernanceStatement(federation: "f", content: content)
    }

    static let rendered: [String: NodeID] = Dictionary(
        uniqueKeysWithValues: [TestNode.alice, .bob, .carol, .mallory].map { ($0.name, $0.nodeID) })

    @Test("two nodes stating the same revocation state the same body, so their endorsements combine")
    func sameBody() throws {
        let a = try Self.statement().endorsed(by: TestNode.alice.author.signingKey)
        let b = try Self.statement().endorsed(by: TestNode.bob.author.signingKey)
        #expect(a.body == b.body && a.id == b.id)
        var ledger = GovernanceLedger()
        let endorsers = ContainmentState().endorsers(current: Self.rendered)
        #expect(ledger.merge(a, endorsers: endorsers).added == [TestNode.alice.nodeID])
        #expect(ledger.merge(b, endorsers: endorsers).added == [TestNode.bob.nodeID])
        #expect(ledger.statements[a.id]?.endorsements.count == 2)
        let other = try GovernanceStatement(federation: "g", content: Self.revocation)
        #expect(other.id != a.id, "a statement of another federation is another statement")
    }

    @Test("merging endorsements is a union: any order, any duplication, the same ledger")
    func mergeIsUnion() throws {
        let signed = try [TestNode.alice, .bob, .carol].map {
            try Self.statement().endorsed(by: $0.author.signingKey)
        }
        let endorsers = ContainmentState().endorsers(current: Self.rendered)
        var forward = GovernanceLedger()
        for statement in signed { _ = forward.merge(statement, endorsers: endorsers) }
        var backward = GovernanceLedger()
        for statement in (signed + signed).reversed() { _ = backward.merge(statement, endorsers: endorsers) }
        var combined = signed[0]
        for other in signed.dropFirst() { combined.endorsements.merge(other.endorsements) { first, _ in first } }
        var once = GovernanceLedger()
        _ = once.merge(combined, endorsers: endorsers)
        #expect(forward == backward && backward == once)
        #expect(forward.statements.values.first?.endorsements.count == 3)
    }

    @Test("a body is read strictly: a flipped byte, a non-canonical encoding or an unknown field is refused")
    func strictBodies() throws {
        let body = try Self.statement().body
        #expect(try GovernanceStatement.decode(body: body, endorsements: [:]).content == Self.revocation)
        var trailing = body
        trailing.append(contentsOf: [0x28, 0x01])  // field 5, varint 1: unknown
        #expect(throws: LiaisonError.self) { try GovernanceStatement.decode(body: trailing, endorsements: [:]) }
        var padded = body
        padded.insert(contentsOf: [0x08, 0x81, 0x00], at: 0)  // format 1 as a two-byte varint, first
        #expect(throws: LiaisonError.self) { try GovernanceStatement.decode(body: padded, endorsements: [:]) }
        #expect(throws: LiaisonError.self) {
            try GovernanceStatement.decode(body: Data([0xFF, 0xFF]), endorsements: [:])
        }
    }

    @Test("an endorsement verifies only over its own body and with its own key")
    func verification() throws {
        let statement = try Self.statement().endorsed(by: TestNode.alice.author.signingKey)
        let endorsement = try #require(statement.endorsements[TestNode.alice.nodeID])
        #expect(statement.verifies(endorsement))
        let other = try GovernanceStatement(
            federation: "f",
            content: .revocation(
                Revocation(partner: "mallory", nodeID: TestNode.mallory.nodeID, sinceMillis: Self.since + 1)))
        #expect(!other.verifies(endorsement), "a signature moved to another body verifies")
        var forged = endorsement
        forged.signerKey = TestNode.bob.publicKeyBytes
        #expect(!statement.verifies(forged), "a signature under another partner's key verifies")
    }

    @Test(
        "the quorum counts distinct partners other than the one revoked; the revocation applies once, as a quarantine")
    func quorum() throws {
        var state = ContainmentState()
        let endorsers = state.endorsers(current: Self.rendered)
        for node in [TestNode.mallory, .alice] {
            _ = state.governance.merge(try Self.statement().endorsed(by: node.author.signingKey), endorsers: endorsers)
        }
        #expect(state.decide(rendered: Self.rendered, me: "bob", quorum: 2, nowMillis: 1).isEmpty)
        _ = state.governance.merge(
            try Self.statement().endorsed(by: TestNode.carol.author.signingKey), endorsers: endorsers)
        let decisions = state.decide(rendered: Self.rendered, me: "bob", quorum: 2, nowMillis: 5)
        guard case .revoke(let partner, let quarantine)? = decisions.first, decisions.count == 1 else {
            Issue.record("expected one revocation, got \(decisions)")
            return
        }
        #expect(partner == "mallory" && quarantine.sinceMillis == Self.since && quarantine.revocation != nil)
        #expect(state.isRevoked("mallory"))
        #expect(state.revokedKeys.map(\.nodeID) == [TestNode.mallory.nodeID])
        #expect(state.decide(rendered: Self.rendered, me: "bob", quorum: 2, nowMillis: 6).isEmpty, "applied twice")
        #expect(
            state.decide(rendered: Self.rendered, me: "mallory", quorum: 1, nowMillis: 6).isEmpty,
            "the revoked node applies its own revocation")
    }

    @Test("a re-admission needs the quorum, ends the revocation's quarantine, and the revoked key stays excluded")
    func readmission() throws {
        var state = ContainmentState()
        var endorsers = state.endorsers(current: Self.rendered)
        for node in [TestNode.alice, .bob] {
            _ = state.governance.merge(try Self.statement().endorsed(by: node.author.signingKey), endorsers: endorsers)
        }
        _ = state.decide(rendered: Self.rendered, me: "carol", quorum: 2, nowMillis: 5)
        let revocationID = try Self.statement().id
        let fresh = TestNode(name: "mallory", seed: 0x5EC0)
        let identity = PartnerIdentity(
            nodeID: fresh.nodeID, tlsFingerprint: String(repeating: "ab", count: 32),
            sealingKey: Data(repeating: 9, count: 32).base64EncodedString())
        let readmission = try Self.statement(
            .readmission(Readmission(partner: "mallory", revocation: revocationID, identity: identity)))
        endorsers = state.endorsers(current: state.currentNodeIDs(rendered: Self.rendered))
        #expect(endorsers[TestNode.mallory.nodeID] == nil, "a revoked key still endorses")
        _ = state.governance.merge(
            try readmission.endorsed(by: TestNode.alice.author.signingKey), endorsers: endorsers)
        #expect(state.decide(rendered: Self.rendered, me: "carol", quorum: 2, nowMillis: 6).isEmpty)
        _ = state.governance.merge(try readmission.endorsed(by: TestNode.bob.author.signingKey), endorsers: endorsers)
        let decisions = state.decide(rendered: Self.rendered, me: "carol", quorum: 2, nowMillis: 7)
        #expect(decisions == [.readmit(partner: "mallory", identity: identity, revoked: TestNode.mallory.nodeID)])
        #expect(!state.isQuarantined("mallory"))
        #expect(state.currentNodeIDs(rendered: Self.rendered)["mallory"] == fresh.nodeID)
        let excluded = state.quarantinesByNodeID { state.currentNodeIDs(rendered: Self.rendered)[$0] }
        #expect(excluded[TestNode.mallory.nodeID]?.sinceMillis == Self.since, "the revoked key is back")
        #expect(excluded[fresh.nodeID] == nil)
        #expect(state.endorsers(current: state.currentNodeIDs(rendered: Self.rendered))[fresh.nodeID] == "mallory")
    }

    @Test("the state persists as JSON and an older store without governance still reads")
    func codable() throws {
        var state = ContainmentState()
        _ = state.governance.merge(
            try Self.statement().endorsed(by: TestNode.alice.author.signingKey),
            endorsers: state.endorsers(current: Self.rendered))
        _ = state.decide(rendered: Self.rendered, me: "bob", quorum: 1, nowMillis: 3)
        let data = try JSONEncoder().encode(state)
        #expect(try JSONDecoder().decode(ContainmentState.self, from: data) == state)
        let old = Data(
            #"{"strikes":{},"quarantines":{"bob":{"sinceMillis":1,"atMillis":2,"reason":"r","automatic":false}}}"#.utf8)
        let decoded = try JSONDecoder().decode(ContainmentState.self, from: old)
        #expect(decoded.quarantines["bob"]?.revocation == nil && decoded.governance.statements.isEmpty)
    }

    @Test("the default quorum is a majority, at most the partners other than the one revoked")
    func defaultQuorum() {
        #expect(RevocationPolicy.defaultQuorum(partners: 2) == 1)
        #expect(RevocationPolicy.defaultQuorum(partners: 3) == 2)
        #expect(RevocationPolicy.defaultQuorum(partners: 4) == 3)
        #expect(RevocationPolicy.defaultQuorum(partners: 5) == 3)
        #expect(RevocationPolicy.defaultQuorum(partners: 7) == 4)
    }
}
