import Foundation
import LiaisonCore
import LiaisonReplication
import LiaisonTestSupport
import Testing

/// Containment in the engine: strikes past a threshold quarantine a partner; a quarantine
/// closes its channels, refuses new ones and stops relaying; a release lets it back.
@Suite("Node engine containment")
struct NodeEngineContainmentTests {
    typealias World = NodeEngineTests.World

    static func quarantined(_ actions: [NodeEngine.Action]) -> [(String, Quarantine)] {
        actions.compactMap {
            if case .quarantined(let peer, let quarantine) = $0 { return (peer, quarantine) }
            return nil
        }
    }

    static func closes(_ actions: [NodeEngine.Action]) -> [ChannelID] {
        actions.compactMap {
            if case .close(let id, _) = $0 { return id }
            return nil
        }
    }

    /// A commit of one batch from bob on channel 1 that came back with `strikes`.
    static func committed(
        _ world: inout World, through: UInt64, strikes: [NodeID: [StrikeClass: Int]]
    )
        -> [NodeEngine.Action]
    {
        let request = NodeEngine.CommitRequest(peer: "bob", ops: [], source: .channel(ChannelID(1), through: through))
        return world.handle(
            .committed(request, NodeEngine.CommitOutcome(accepted: 0, refused: 1, highest: 10, strikes: strikes)))
    }

    @Test(
        "forged ops past the threshold quarantine the sender on its own: its channels close, it is audited, it cannot reconnect"
    )
    func strikesQuarantine() {
        var world = World()
        _ = world.open(1, to: .bob)
        _ = world.open(2, to: .carol)
        let threshold = Int(world.engine.configuration.containment.thresholds[.forged]!)
        let start = world.now
        for index in 1..<threshold {
            world.now += 1_000
            let actions = Self.committed(&world, through: UInt64(index), strikes: [TestNode.bob.nodeID: [.forged: 1]])
            #expect(Self.quarantined(actions).isEmpty, "quarantined after \(index) strikes")
        }
        world.now += 1_000
        let actions = Self.committed(
            &world, through: UInt64(threshold), strikes: [TestNode.bob.nodeID: [.forged: 1]])
        let quarantine = Self.quarantined(actions)
        #expect(quarantine.map(\.0) == ["bob"])
        #expect(quarantine.first?.1.automatic == true)
        #expect(quarantine.first?.1.sinceMillis == start + 1_000, "the window's first strike starts the quarantine")
        #expect(Self.closes(actions) == [ChannelID(1)], "bob's channel stays open, or carol's was closed")
        #expect(world.engine.isQuarantined("bob") && !world.engine.isQuarantined("carol"))
        #expect(world.engine.containment.strikes["bob"]?[.forged]?.total == UInt64(threshold))

        // Bob dials again: refused at once, audited (once a minute).
        let start2 = NodeEngine.SessionStart(checkpoint: 0, highest: 10, hlc: .zero)
        let again = world.handle(
            .channelConnected(ChannelID(3), peer: "bob", endpoint: 0, address: "test", start: start2))
        #expect(Self.closes(again) == [ChannelID(3)])
        #expect(
            again.contains {
                if case .custody(let event) = $0 { return event.kind == .peerRefused } else { return false }
            })
        #expect(world.engine.channels[ChannelID(3)] == nil)
    }

    @Test("an author's op its item refuses strikes the author, not the honest partner that carried it")
    func authorAnswers() {
        var world = World()
        _ = world.open(1, to: .bob)
        let threshold = Int(world.engine.configuration.containment.thresholds[.nonWriter]!)
        let actions = Self.committed(
            &world, through: 1, strikes: [TestNode.carol.nodeID: [.nonWriter: threshold]])
        #expect(Self.quarantined(actions).map(\.0) == ["carol"])
        #expect(world.engine.containment.strikes["bob"] == nil)
        #expect(!world.engine.isQuarantined("bob"))
    }

    @Test("an operator's quarantine stops relaying through the partner; a release lets its channels back")
    func operatorQuarantineAndRelease() {
        var world = World()
        _ = world.open(2, to: .carol)
        #expect(world.engine.relays(for: "bob") == ["carol"])
        let actions = world.handle(.quarantine(peer: "carol", sinceMillis: world.now - 60_000, reason: "drill"))
        #expect(Self.quarantined(actions).first?.1.automatic == false)
        #expect(Self.closes(actions) == [ChannelID(2)])
        #expect(world.engine.relays(for: "bob").isEmpty, "a quarantined partner still relays")

        let released = world.handle(.release(peer: "carol"))
        #expect(released.contains { if case .released("carol") = $0 { return true } else { return false } })
        #expect(!world.engine.isQuarantined("carol"))
        let reopened = world.open(4, to: .carol)
        #expect(Self.closes(reopened).isEmpty)
        #expect(world.engine.relays(for: "bob") == ["carol"])
    }

    @Test("a channel whose queue filled (the peer stopped reading) closes, is audited and counts a flood strike")
    func overflow() {
        var world = World()
        _ = world.open(1, to: .bob)
        let actions = world.handle(.overflowed(ChannelID(1), queued: 1_024))
        #expect(Self.closes(actions) == [ChannelID(1)])
        #expect(
            actions.contains {
                if case .custody(let event) = $0 { return event.kind == .peerRefused } else { return false }
            })
        #expect(world.engine.channels[ChannelID(1)] == nil)
        #expect(world.engine.containment.strikes["bob"]?[.flood]?.total == 1)
    }

    @Test("protocol violations on a channel count as strikes of their class")
    func protocolStrikes() {
        var world = World()
        _ = world.open(1, to: .bob)
        _ = world.handle(.malformedFrame(ChannelID(1), reason: "garbage", bytes: 5))
        #expect(world.engine.containment.strikes["bob"]?[.protocolViolation]?.total == 1)
    }

    @Test(
        "the engine asks for waiting ops past the containment policy's expiry to be dropped at its first tick and then once per check interval"
    )
    func expiryChecks() {
        var world = World()
        func expiries(_ actions: [NodeEngine.Action]) -> [UInt64] {
            actions.compactMap {
                if case .expireWaiting(let before) = $0 { return before }
                return nil
            }
        }
        let expiry = world.engine.configuration.containment.pendingExpiryMillis
        let interval = world.engine.configuration.expiryCheckIntervalMillis
        #expect(expiries(world.handle(.tick(heard: [:]))) == [world.now - expiry])
        world.now += interval - 1
        #expect(expiries(world.handle(.tick(heard: [:]))).isEmpty, "checked again before the interval")
        world.now += 1
        #expect(expiries(world.handle(.tick(heard: [:]))) == [world.now - expiry])
    }
}
