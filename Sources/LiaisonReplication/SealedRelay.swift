public import Foundation
public import LiaisonCore

/// The sender's side of sealed relaying (DESIGN §5.8): for each partner whose link has no
/// open channel, the envelopes sent through relays and not yet receipted. Pure bookkeeping;
/// the shell seals, sends and feeds time in.
///
/// - A destination's cursor starts at what the partner acknowledged on the link, and moves
///   as batches of our log are sealed. It is forgotten when a channel opens again: the
///   link then resumes from its own checkpoint, which sealed delivery never moves, so the
///   partner may receive those ops twice (harmless by I1 and I3) but never misses one.
/// - Every envelope is kept until the recipient's signed receipt comes back. When none comes
///   within the receipt timeout it goes again, through a relay not yet tried if there is one.
public struct SealedOutbox: Sendable {
    /// One envelope awaiting its receipt.
    public struct Pending: Sendable {
        /// The envelope.
        public var envelope: SealedEnvelope
        /// Its wire bytes.
        public var encoded: Data
        /// Number of ops inside.
        public var opCount: Int
        /// The relay it last went through.
        public var relay: String
        /// Relays tried so far.
        public var tried: Set<String>
        /// When it last went.
        public var sentAtMillis: UInt64
        /// How many times it went.
        public var attempts: Int
    }

    /// Most envelopes awaiting receipts per destination; sealing pauses beyond it.
    public var maxPendingPerDestination = 8
    /// Most ops per envelope.
    public var maxOpsPerEnvelope = 256
    /// Where sealing resumes, per destination.
    public private(set) var cursors: [String: UInt64] = [:]
    /// Envelopes awaiting receipts, per destination, by id.
    public private(set) var pending: [String: [Data: Pending]] = [:]
    /// Receipts received, per destination.
    public private(set) var receipted: [String: UInt64] = [:]
    /// Ops receipted, per destination.
    public private(set) var opsReceipted: [String: UInt64] = [:]
    /// Envelopes sent again after a receipt timeout.
    public private(set) var retries: UInt64 = 0

    /// Empty.
    public init() {}

    /// The cursor for a destination, started at `acked` if sealing had not begun.
    public mutating func cursor(for destination: String, acked: UInt64) -> UInt64 {
        if let cursor = cursors[destination] { return cursor }
        cursors[destination] = acked
        return acked
    }

    /// Whether another envelope may go to `destination` now.
    public func hasRoom(for destination: String) -> Bool {
        (pending[destination]?.count ?? 0) < maxPendingPerDestination
    }

    /// Our log up to `throughSeq` is sealed (or had nothing for the destination).
    public mutating func advance(_ destination: String, to throughSeq: UInt64) {
        cursors[destination] = max(cursors[destination] ?? 0, throughSeq)
    }

    /// An envelope went out.
    public mutating func sent(
        _ envelope: SealedEnvelope, opCount: Int, to destination: String, via relay: String, nowMillis: UInt64
    ) {
        pending[destination, default: [:]][envelope.header.id] = Pending(
            envelope: envelope,
            encoded: envelope.encoded(),
            opCount: opCount,
            relay: relay,
            tried: [relay],
            sentAtMillis: nowMillis,
            attempts: 1
        )
    }

    /// A verified receipt came back from `destination`. Returns the envelope it settles,
    /// nil when it names none awaiting (a duplicate, or one that was given up).
    public mutating func receipt(_ receipt: EnvelopeReceipt, from destination: String) -> Pending? {
        guard let entry = pending[destination]?[receipt.envelopeID], entry.envelope.digest == receipt.envelopeDigest
        else { return nil }
        pending[destination]?[receipt.envelopeID] = nil
        receipted[destination, default: 0] += 1
        opsReceipted[destination, default: 0] += UInt64(entry.opCount)
        return entry
    }

    /// Envelopes whose receipt is overdue, each with the relay to send it through now:
    /// one not yet tried among `relays` if any, else the least recently used. Marks them
    /// sent again.
    public mutating func overdue(
        nowMillis: UInt64,
        timeoutMillis: UInt64,
        relays: (String) -> [String]
    ) -> [(destination: String, relay: String, encoded: Data)] {
        var out = [(destination: String, relay: String, encoded: Data)]()
        for (destination, entries) in pending {
            let candidates = relays(destination)
            guard !candidates.isEmpty else { continue }
            for (id, entry) in entries where nowMillis >= entry.sentAtMillis + timeoutMillis {
                let relay =
                    candidates.first { !entry.tried.contains($0) } ?? candidates.first { $0 != entry.relay }
                    ?? candidates[0]
                var next = entry
                next.relay = relay
                next.tried.insert(relay)
                next.sentAtMillis = nowMillis
                next.attempts += 1
                pending[destination]?[id] = next
                retries += 1
                out.append((destination, relay, entry.encoded))
            }
        }
        return out
    }

    /// A channel to `destination` is open again: sealing stops and what awaits receipts is
    /// dropped (the link's own catch-up covers it).
    public mutating func linkRestored(_ destination: String) {
        cursors[destination] = nil
        pending[destination] = nil
    }

    /// Envelopes awaiting receipts for a destination.
    public func awaiting(_ destination: String) -> Int { pending[destination]?.count ?? 0 }
}

/// The relay's side (DESIGN §5.8): envelopes and receipts held for partners it will hand
/// them to, in bounded first-in first-out queues. It reads routing headers only.
public struct RelayQueue: Sendable {
    /// Why an envelope was not taken.
    public enum Refusal: Error, Hashable, Sendable, CustomStringConvertible {
        /// This node does not relay for others.
        case notARelay
        /// The envelope's sender is not the neighbour that handed it over.
        case senderMismatch
        /// The destination is not a neighbour of this node.
        case unknownDestination
        /// Its expiry has passed.
        case expired
        /// The destination's queue is full.
        case full

        public var description: String {
            switch self {
            case .notARelay: "this node does not relay"
            case .senderMismatch: "envelope sender is not the partner that handed it over"
            case .unknownDestination: "destination is not a neighbour of this relay"
            case .expired: "envelope expired"
            case .full: "relay queue full"
            }
        }
    }

    struct Held: Sendable {
        var id: Data
        var message: SyncMessage
        var bytes: Int
        var expiresMillis: UInt64
    }

    /// Most messages held per destination.
    public var maxMessagesPerDestination = 512
    /// Most bytes held per destination.
    public var maxBytesPerDestination = 32 * 1024 * 1024
    private var queues: [String: [Held]] = [:]
    private var bytes: [String: Int] = [:]
    /// Envelopes taken in, handed on, and dropped (expired or refused), in total.
    public private(set) var accepted: UInt64 = 0
    /// Envelopes and receipts handed on.
    public private(set) var forwarded: UInt64 = 0
    /// Envelopes dropped because they expired in the queue.
    public private(set) var expired: UInt64 = 0

    /// Empty.
    public init() {}

    /// Messages waiting for a destination.
    public func held(for destination: String) -> Int { queues[destination]?.count ?? 0 }

    /// Takes in an envelope for `destination` (already decoded and signature-checked).
    public mutating func enqueue(
        envelope: SealedEnvelope,
        encoded: Data,
        destination: String,
        nowMillis: UInt64
    ) throws(Refusal) {
        guard nowMillis < envelope.header.expiresMillis else { throw .expired }
        guard !(queues[destination]?.contains { $0.id == envelope.header.id } ?? false) else { return }
        try hold(
            Held(
                id: envelope.header.id, message: .envelope(encoded), bytes: encoded.count,
                expiresMillis: envelope.header.expiresMillis),
            for: destination
        )
        accepted += 1
    }

    /// Takes in a receipt travelling back to `destination`.
    public mutating func enqueue(
        receipt: EnvelopeReceipt, encoded: Data, destination: String, nowMillis: UInt64
    ) throws(Refusal) {
        try hold(
            Held(
                id: receipt.envelopeID, message: .receipt(encoded), bytes: encoded.count,
                expiresMillis: nowMillis + 10 * 60_000),
            for: destination
        )
    }

    private mutating func hold(_ held: Held, for destination: String) throws(Refusal) {
        guard (queues[destination]?.count ?? 0) < maxMessagesPerDestination,
            (bytes[destination] ?? 0) + held.bytes <= maxBytesPerDestination
        else { throw .full }
        queues[destination, default: []].append(held)
        bytes[destination, default: 0] += held.bytes
    }

    /// Everything held for `destination` that has not expired, oldest first; the queue is
    /// emptied (a channel to it is open and takes them).
    public mutating func drain(_ destination: String, nowMillis: UInt64) -> [SyncMessage] {
        guard let held = queues.removeValue(forKey: destination) else { return [] }
        bytes[destination] = 0
        let live = held.filter { nowMillis < $0.expiresMillis }
        expired += UInt64(held.count - live.count)
        forwarded += UInt64(live.count)
        return live.map(\.message)
    }
}
