public import Foundation
public import LiaisonCore
import LiaisonNode
public import LiaisonStore

/// The body of `POST /v1/quarantines`.
public struct QuarantineBody: Codable, Sendable {
    /// The partner to quarantine.
    public var partner: String
    /// From when its ops are left out: ISO 8601, or `now`.
    public var since: String
    /// Why (for custody and the operator).
    public var reason: String?

    /// Creates a body.
    public init(partner: String, since: String, reason: String?) {
        self.partner = partner
        self.since = since
        self.reason = reason
    }

    /// `since` in milliseconds since the epoch. Refuses text that is not ISO 8601 or `now`,
    /// and a time more than a minute ahead of `now` (a quarantine starting later would
    /// leave out nothing the partner already sent).
    public func sinceMillis(now: Date) throws(LiaisonError) -> UInt64 {
        let date: Date
        if since == "now" {
            date = now
        } else if let parsed = ISO8601.parse(since) {
            date = parsed
        } else {
            throw LiaisonError(
                .invalidArgument, "since '\(since)' is not ISO 8601 (e.g. 2026-11-29T08:00:00Z) or 'now'")
        }
        guard date.timeIntervalSince(now) <= 60 else {
            throw LiaisonError(.invalidArgument, "since \(since) is in the future; give the time the compromise began")
        }
        return UInt64(max(0, ISO8601.millis(date)))
    }

    /// The reason, or a default naming the operator.
    public var reasonText: String {
        let text = (reason ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "operator decision" : String(text.prefix(500))
    }
}

/// What a quarantine or a release did, in answer to `POST /v1/quarantines` and
/// `DELETE /v1/quarantines/{partner}`.
public struct QuarantineResult: Codable, Sendable {
    /// The partner.
    public var partner: String
    /// Items whose state changed.
    public var itemsRebuilt: Int
    /// Items removed (their create was left out).
    public var itemsRemoved: Int
    /// The partner's ops left out, waiting ones dropped included (0 for a release).
    public var opsLeftOut: Int
    /// The partner's ops put back (0 for a quarantine).
    public var opsPutBack: Int

    /// Summarises the rebuild of a quarantine (`released` false) or a release.
    public init(partner: String, _ result: RebuildResult, released: Bool) {
        self.partner = partner
        itemsRebuilt = result.changed.count
        itemsRemoved = result.removed.count
        opsLeftOut = released ? 0 : result.listed.count
        opsPutBack = released ? result.listed.count : 0
    }
}

/// A node's strikes and quarantines, for `GET /v1/quarantines`.
public struct ContainmentView: Codable, Sendable {
    /// One quarantined partner.
    public struct QuarantineEntry: Codable, Sendable {
        public var partner: String
        /// From when its ops are left out.
        public var since: String
        /// When the quarantine began.
        public var at: String
        public var reason: String
        /// Whether strikes began it rather than an operator.
        public var automatic: Bool
    }

    /// Strikes of one class against one partner.
    public struct StrikeEntry: Codable, Sendable {
        public var partner: String
        /// The strike class (`forged`, `not-releasable`, …).
        public var strikeClass: String
        /// Every strike ever counted.
        public var total: UInt64
        /// Strikes in the current window.
        public var inWindow: UInt32
        /// The threshold that quarantines (nil: never by itself).
        public var threshold: UInt32?
    }

    /// Quarantined partners, by name.
    public var quarantines: [QuarantineEntry]
    /// Strikes, by partner and class.
    public var strikes: [StrikeEntry]
    /// The window strikes are counted in, in milliseconds.
    public var windowMillis: UInt64

    /// The view of a state under a policy.
    public init(_ state: ContainmentState, policy: ContainmentPolicy) {
        quarantines = state.quarantines.sorted { $0.key < $1.key }.map { name, quarantine in
            QuarantineEntry(
                partner: name,
                since: ISO8601.format(millis: Int64(clamping: quarantine.sinceMillis)),
                at: ISO8601.format(millis: Int64(clamping: quarantine.atMillis)),
                reason: quarantine.reason,
                automatic: quarantine.automatic
            )
        }
        strikes = state.strikes.sorted { $0.key < $1.key }.flatMap { name, tallies in
            tallies.sorted { $0.key < $1.key }.map { strikeClass, tally in
                StrikeEntry(
                    partner: name, strikeClass: strikeClass.rawValue, total: tally.total, inWindow: tally.inWindow,
                    threshold: policy.thresholds[strikeClass])
            }
        }
        windowMillis = policy.windowMillis
    }
}
