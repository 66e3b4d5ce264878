import LiaisonCore
import LiaisonTestSupport
import Testing

@Suite("Containment: strikes and thresholds")
struct ContainmentTests {
    static let policy = ContainmentPolicy(thresholds: [.forged: 3, .notReleasable: 10], windowMillis: 60_000)

    @Test("the threshold's strike within the window calls for a quarantine from the window's first strike")
    func crossing() {
        var state = ContainmentState()
        #expect(state.strike("eve", .forged, count: 1, nowMillis: 1_000, policy: Self.policy) == nil)
        #expect(state.strike("eve", .forged, count: 1, nowMillis: 2_000, policy: Self.policy) == nil)
        let quarantine = state.strike("eve", .forged, count: 1, nowMillis: 3_000, policy: Self.policy)
        #expect(quarantine?.sinceMillis == 1_000)
        #expect(quarantine?.atMillis == 3_000)
        #expect(quarantine?.automatic == true)
        #expect(state.strikes["eve"]?[.forged]?.total == 3)
    }

    @Test("strikes spread wider than the window never cross; a class without a threshold never quarantines")
    func window() {
        var state = ContainmentState()
        for minute in 0..<10 {
            let quarantine = state.strike(
                "eve", .forged, count: 2, nowMillis: UInt64(minute) * 61_000, policy: Self.policy)
            #expect(quarantine == nil, "minute \(minute)")
        }
        #expect(state.strikes["eve"]?[.forged]?.total == 20)
        #expect(state.strike("eve", .futureStamp, count: 1_000, nowMillis: 1, policy: Self.policy) == nil)
    }

    @Test("several strikes at once count as many; an already quarantined partner is not quarantined again")
    func bulk() {
        var state = ContainmentState()
        let quarantine = state.strike("eve", .notReleasable, count: 12, nowMillis: 5, policy: Self.policy)
        #expect(quarantine?.sinceMillis == 5)
        state.quarantines["eve"] = quarantine
        #expect(state.strike("eve", .notReleasable, count: 12, nowMillis: 6, policy: Self.policy) == nil)
        #expect(state.isQuarantined("eve") && !state.isQuarantined("bob"))
    }

    @Test("a release ends the quarantine and forgives the current windows, keeping the totals")
    func release() {
        var state = ContainmentState()
        state.quarantines["eve"] = state.strike("eve", .forged, count: 3, nowMillis: 5, policy: Self.policy)
        #expect(state.release("eve") != nil)
        #expect(!state.isQuarantined("eve"))
        #expect(state.strikes["eve"]?[.forged]?.inWindow == 0 && state.strikes["eve"]?[.forged]?.total == 3)
        #expect(state.release("eve") == nil, "released twice")
        #expect(state.strike("eve", .forged, count: 2, nowMillis: 6, policy: Self.policy) == nil)
        let ids = ["bob": TestNode.bob.nodeID]
        state.quarantines["bob"] = Quarantine(sinceMillis: 1, atMillis: 2, reason: "", automatic: false)
        state.quarantines["ghost"] = Quarantine(sinceMillis: 1, atMillis: 2, reason: "", automatic: false)
        #expect(Array(state.quarantinesByNodeID { ids[$0] }.keys) == [TestNode.bob.nodeID], "an unknown name resolved")
    }

    @Test("a quarantine excludes the partner's ops stamped at or after its start")
    func excludes() {
        let quarantine = Quarantine(sinceMillis: 1_000, atMillis: 2_000, reason: "test", automatic: false)
        #expect(!quarantine.excludes(HLCTimestamp(physicalMillis: 999, logical: 65_535)))
        #expect(quarantine.excludes(HLCTimestamp(physicalMillis: 1_000, logical: 0)))
    }

    @Test("every strike reason has its class")
    func classes() {
        #expect(StrikeReason.unknownAuthor(TestNode.carol.nodeID).strikeClass == .unknownAuthor)
        #expect(StrikeReason.notEntitled(.notReleasable).strikeClass == .notReleasable)
        #expect(StrikeReason.notEntitled(.orcon).strikeClass == .filteredOut)
        #expect(StrikeReason.unredacted(["source"]).strikeClass == .unredacted)
    }
}
