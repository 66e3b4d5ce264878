import Foundation
import LiaisonCore
import LiaisonStore
import LiaisonTestSupport
import Testing

@testable import LiaisonDrill

/// The hostile drill's twin check (`HostileDrill.twin`): an honest node's items against a
/// store given the same log without what the partner stamped once it had turned.
@Suite("Hostile drill: the twin without the attacker")
struct HostileTwinTests {
    private static func date(_ stamp: HLCTimestamp) -> Date {
        Date(timeIntervalSince1970: Double(stamp.physicalMillis) / 1000)
    }

    @Test(
        "what the partner wrote before it turned counts in the twin; an op it stamped after that changed an honest item is a mismatch; its own new items are counted apart"
    )
    func twinBites() throws {
        let (alice, bob) = (TestNode.alice, TestNode.bob)
        var factory = OpFactory(seed: 71)
        let create = try factory.create(
            by: alice, fields: [(name: "title", value: JSONText.string("first"))], writePolicy: .annotations,
            at: .test(1))
        let item = try ItemState(create: create)
        let before = try factory.setFields(
            [(name: "note", value: JSONText.string("honest, then"))], of: item, by: bob, at: .test(5))
        let retitle = try factory.setFields(
            [(name: "title", value: JSONText.string("second"))], of: item, by: alice, at: .test(7))
        let store = MemoryStore()
        _ = try store.commit(CommitBatch(ops: [create, before, retitle], source: .local, timeMillis: 1))

        var clean = HostileDrill.TwinCheck()
        try HostileDrill.twin(
            of: "alice", store: store, hostileID: bob.nodeID, turned: Self.date(.test(6)), into: &clean)
        #expect(clean.items == 1 && clean.mismatches.isEmpty && clean.attackerItems == 0, "\(clean)")

        // The same log judged with the turn before bob's note: the node kept an op the
        // attacker wrote, and the twin says so.
        var early = HostileDrill.TwinCheck()
        try HostileDrill.twin(
            of: "alice", store: store, hostileID: bob.nodeID, turned: Self.date(.test(4)), into: &early)
        #expect(early.items == 1)
        #expect(early.mismatches.count == 1, "\(early)")
        #expect(early.mismatches.first?.hasPrefix("alice: item ") == true)

        // An item bob created after the turn is not in the twin: counted apart.
        let own = try factory.create(by: bob, at: .test(9))
        _ = try store.commit(CommitBatch(ops: [own], source: .local, timeMillis: 2))
        var withOwn = HostileDrill.TwinCheck()
        try HostileDrill.twin(
            of: "alice", store: store, hostileID: bob.nodeID, turned: Self.date(.test(6)), into: &withOwn)
        #expect(withOwn.items == 1 && withOwn.mismatches.isEmpty && withOwn.attackerItems == 1, "\(withOwn)")
    }
}
