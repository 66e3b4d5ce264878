import Foundation
import LiaisonCore

/// How a federation runs the channels of its links (topology key `channels:`).
public struct ChannelSettings: Codable, Sendable, Hashable {
    /// Which channels of a link carry ops.
    public enum Mode: String, Codable, Sendable, Hashable, CaseIterable {
        /// The best healthy channel carries; the others stand by, connected and heartbeating.
        case failover
        /// Every healthy channel carries; the receiver drops the duplicates (I1, I3).
        case activeActive = "active-active"
    }

    /// Which channels carry.
    public var mode: Mode = .failover
    /// Interval between heartbeats on every channel.
    public var heartbeatMillis: UInt64 = 200
    /// Silence after which a channel is dead.
    public var deadAfterMillis: UInt64 = 600
    /// How long a link must be without any open channel before its ops go by sealed relays.
    public var relayAfterMillis: UInt64 = 1_000
    /// How long the sender waits for a sealed envelope's receipt before trying another relay.
    public var receiptTimeoutMillis: UInt64 = 3_000
    /// How long a better channel must stay up before the link moves back to it.
    public var failbackAfterMillis: UInt64 = 2_000
    /// How long our oldest batch may wait for the peer's ack while the peer is otherwise
    /// alive (it answers heartbeats). Past it the channel closes and the peer gets a
    /// `withholding` strike. An honest receiver holds a batch unacknowledged while it commits
    /// and while an op in it is stamped ahead of its clock (at most the allowed clock skew,
    /// a minute by default), so the default is well above both.
    public var ackDeadlineMillis: UInt64 = 150_000

    /// The defaults.
    public init() {}

    private enum CodingKeys: String, CodingKey {
        case mode, heartbeatMillis, deadAfterMillis, relayAfterMillis, receiptTimeoutMillis, failbackAfterMillis
        case ackDeadlineMillis
    }

    /// Decodes settings; a field missing (a file rendered before it existed) takes its default.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = ChannelSettings()
        mode = try container.decodeIfPresent(Mode.self, forKey: .mode) ?? defaults.mode
        heartbeatMillis =
            try container.decodeIfPresent(UInt64.self, forKey: .heartbeatMillis) ?? defaults.heartbeatMillis
        deadAfterMillis =
            try container.decodeIfPresent(UInt64.self, forKey: .deadAfterMillis) ?? defaults.deadAfterMillis
        relayAfterMillis =
            try container.decodeIfPresent(UInt64.self, forKey: .relayAfterMillis) ?? defaults.relayAfterMillis
        receiptTimeoutMillis =
            try container.decodeIfPresent(UInt64.self, forKey: .receiptTimeoutMillis) ?? defaults.receiptTimeoutMillis
        failbackAfterMillis =
            try container.decodeIfPresent(UInt64.self, forKey: .failbackAfterMillis) ?? defaults.failbackAfterMillis
        ackDeadlineMillis =
            try container.decodeIfPresent(UInt64.self, forKey: .ackDeadlineMillis) ?? defaults.ackDeadlineMillis
    }
}

/// Chooses which of a link's open channels carry our log (DESIGN §6): the pure policy the
/// daemon's engine and the simulator share. Channels are named by the index of the
/// listening endpoint they reach (0 is the primary network).
///
/// - In failover mode the carrier is the open channel with the lowest endpoint index. When
///   the carrier dies the next open channel carries at once (it is already connected and
///   heartbeating). When a better channel comes back, the link moves back to it only after
///   it has stayed up for `failbackAfterMillis`.
/// - Flap damping: an endpoint whose channel died twice or more within a minute is held
///   down (1 s, doubling per further death, at most 30 s) and carries only when no other
///   channel can.
/// - In active-active mode every open channel that is not held down carries.
public struct ChannelSelector: Sendable {
    struct Channel: Sendable {
        var endpoint: Int
        var openedAt: UInt64
    }

    struct Penalty: Sendable {
        var deaths: [UInt64] = []
        var holdUntil: UInt64 = 0
    }

    /// The policy.
    public let settings: ChannelSettings
    private var channels: [Int: Channel] = [:]
    private var penalties: [Int: Penalty] = [:]
    /// Channels (by id) that carry now.
    public private(set) var carriers: Set<Int> = []
    /// Carrier changes so far (failovers and failbacks).
    public private(set) var switches: Int = 0

    static let flapWindowMillis: UInt64 = 60_000
    static let maxHoldMillis: UInt64 = 30_000

    /// A selector with no channels.
    public init(settings: ChannelSettings) {
        self.settings = settings
    }

    /// Whether any channel is open.
    public var hasOpenChannel: Bool { !channels.isEmpty }

    /// The endpoint index of an open channel.
    public func endpoint(of id: Int) -> Int? { channels[id]?.endpoint }

    /// Until when an endpoint is held down (0 when it is not).
    public func heldUntil(endpoint: Int) -> UInt64 { penalties[endpoint]?.holdUntil ?? 0 }

    /// A channel finished its hello.
    public mutating func opened(_ id: Int, endpoint: Int, nowMillis: UInt64) {
        channels[id] = Channel(endpoint: endpoint, openedAt: nowMillis)
    }

    /// A channel closed; `failed` when it died rather than being shut on purpose.
    public mutating func closed(_ id: Int, failed: Bool, nowMillis: UInt64) {
        guard let channel = channels.removeValue(forKey: id) else { return }
        carriers.remove(id)
        guard failed else { return }
        var penalty = penalties[channel.endpoint] ?? Penalty()
        penalty.deaths = penalty.deaths.filter { nowMillis < $0 + Self.flapWindowMillis } + [nowMillis]
        if penalty.deaths.count >= 2 {
            let hold = min(Self.maxHoldMillis, 1_000 << UInt64(min(penalty.deaths.count - 2, 5)))
            penalty.holdUntil = nowMillis + hold
        }
        penalties[channel.endpoint] = penalty
    }

    /// Chooses the carriers now. Returns the channels that start and stop carrying.
    public mutating func select(nowMillis: UInt64) -> (start: [Int], stop: [Int]) {
        let chosen = choose(nowMillis: nowMillis)
        let start = chosen.subtracting(carriers).sorted()
        let stop = carriers.subtracting(chosen).sorted()
        if !carriers.isEmpty && !start.isEmpty { switches += 1 }
        carriers = chosen
        return (start, stop)
    }

    private func choose(nowMillis: UInt64) -> Set<Int> {
        guard !channels.isEmpty else { return [] }
        let free = channels.filter { nowMillis >= heldUntil(endpoint: $0.value.endpoint) }
        // Best first: lowest endpoint index, then the longest open, then the id.
        func best(_ candidates: [Int: Channel]) -> Int? {
            candidates.min { a, b in
                (a.value.endpoint, a.value.openedAt, a.key) < (b.value.endpoint, b.value.openedAt, b.key)
            }?.key
        }
        if free.isEmpty {
            // Every channel is held down: the one released soonest carries rather than none.
            let soonest = channels.min { a, b in
                (heldUntil(endpoint: a.value.endpoint), a.key) < (heldUntil(endpoint: b.value.endpoint), b.key)
            }
            return soonest.map { [$0.key] } ?? []
        }
        switch settings.mode {
        case .activeActive:
            return Set(free.keys)
        case .failover:
            let current = carriers.filter { free[$0] != nil }
            guard let carrier = current.first, let carrying = free[carrier] else {
                return best(free).map { [$0] } ?? []
            }
            // Move back to a better channel only once it has proven itself.
            let settled = free.filter {
                $0.value.endpoint < carrying.endpoint && nowMillis >= $0.value.openedAt + settings.failbackAfterMillis
            }
            return [best(settled) ?? carrier]
        }
    }
}
