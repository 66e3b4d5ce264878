import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonStore
import LiaisonWire
import NIOCore

/// One attack against one receiver, as sent; the store and custody evidence is added at the
/// end, once the nodes have stopped.
struct PendingOutcome: Sendable {
    var receiver: String
    var sentAtMillis: Double
    /// The window (wall clock, ms since the epoch) in which the receiver's custody entries
    /// belong to this attack.
    var startWall: Int64
    var endWall: Int64
    var sent: String
    /// Every op the attack carried.
    var opIDs: [OpID] = []
    /// Ops the receiver must not store.
    var mustBeAbsent: [OpID] = []
    /// Ops of which the receiver may store one at most (two creates of one item).
    /// For a forked create: whether every honest receiver ended with one state of the item.
    var converged: Bool?
    /// When the attack on this receiver ended (offset).
    var endedAtMillis: Double = 0
    /// The strike class that must count it.
    var expectedStrike: StrikeClass?
    /// Strikes against the hostile partner at the receiver during the attack, by class.
    var strikes: [String: UInt64] = [:]
    var detectedAfter: Double?
    /// For attacks on the channel: whether the receiver closed it (nil: not such an attack).
    var closedByReceiver: Bool?
    /// For replays: whether the receiver's items were left as they were.
    var unchanged: Bool?
    var notes: [String] = []
    var finding: String?
    /// False when the attack could not be sent (no channel, nothing to abuse).
    var delivered = true
}

/// The hostile partner's attacks, run one after another against every neighbour, then
/// forged ops until every one of them has quarantined the partner.
struct HostileCampaign {
    let drill: HostileDrill
    let partner: HostilePartner
    let clients: [String: NodeClient]
    let ledger: DrillLedger
    let baits: HostileBaits
    let offset: @Sendable () -> Double
    let progress: @Sendable (String) -> Void
    var arsenal: HostileArsenal
    let receivers: [String]
    let hostile: String

    init(
        drill: HostileDrill,
        partner: HostilePartner,
        clients: [String: NodeClient],
        ledger: DrillLedger,
        baits: HostileBaits,
        offset: @escaping @Sendable () -> Double,
        progress: @escaping @Sendable (String) -> Void
    ) {
        self.drill = drill
        self.partner = partner
        self.clients = clients
        self.ledger = ledger
        self.baits = baits
        self.offset = offset
        self.progress = progress
        self.hostile = drill.hostile
        self.receivers = partner.neighbours
        let highest = (try? partner.node.store.highestHLC()) ?? .zero
        self.arsenal = HostileArsenal(author: partner.node.identity.author, highest: highest, seed: 0x5EED_D411)
    }

    var options: HostileDrill.Options { drill.options }
    var topology: Topology { drill.federation.topology }
    static var wallMillis: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: - The campaign

    mutating func run(record: inout HostileDrill.Record) async throws(LiaisonError) {
        for receiver in receivers {
            guard await partner.waitForChannel(to: receiver, timeout: .seconds(options.startTimeoutSeconds)) != nil
            else {
                record.problems.append("\(receiver) opened no channel to the hostile \(hostile)")
                continue
            }
        }
        progress("the hostile \(hostile) has channels to \(receivers.joined(separator: ", ")); attacking")
        let attacks: [(String, String)] = [
            (
                "forged",
                "an op naming an honest partner as its author, signed with the hostile key; an op whose body does not match its signature"
            ),
            ("replayed", "old valid ops sent again in a new batch, then that batch frame again as it was"),
            ("non-releasable", "a new item whose REL TO names only the hostile partner"),
            ("future-stamped", "a new item stamped an hour ahead (the skew allowed is a minute)"),
            ("non-writer", "a write of fields to an honest partner's item that only its originator may write"),
            (
                "orcon-reshare",
                "an honest partner's ORCON item passed on by the hostile partner, which neither originated nor wrote it"
            ),
            ("oversized-frame", "a batch frame over the 4 MiB limit carrying a valid create"),
            ("malformed-frame", "a frame that is not a Liaison frame, with a valid create inside"),
            ("flooding", "batches without waiting for acks, then pings as fast as it can, never reading an answer"),
            ("equivocating", "two different creates of one item, one to each receiver first, then each the other"),
            (
                "withholding",
                "reads the receiver's batches and answers its heartbeats, but never acknowledges and sends no ops"
            ),
        ]
        for (name, description) in attacks {
            var outcomes = [PendingOutcome]()
            let startedAt = offset()
            let channelsBefore = await honestChannelFailures()
            if name == "equivocating" {
                outcomes = await equivocate()
            } else {
                for receiver in receivers {
                    outcomes.append(await attack(name, receiver))
                }
            }
            let channelsAfter = await honestChannelFailures()
            var lost = [String]()
            for (link, count) in channelsAfter.counts.sorted(by: { $0.key < $1.key })
            where count > channelsBefore.counts[link] ?? 0 {
                lost.append(
                    "\(link): \(count - (channelsBefore.counts[link] ?? 0))× (\(channelsAfter.reasons[link] ?? "?"))")
            }
            record.attacks.append(
                HostileDrill.AttackRecord(
                    name: name, description: description, outcomes: outcomes, startedAt: startedAt, endedAt: offset(),
                    honestChannelsLost: lost))
            let summary = outcomes.map { "\($0.receiver) \($0.detectedAfter != nil ? "struck it" : "did not strike")" }
            progress("attack \(name): \(summary.joined(separator: ", "))")
        }
        record.attacksEndedAt = offset()
        try await persist(record: &record)
    }

    // MARK: - One attack

    private mutating func attack(_ name: String, _ receiver: String) async -> PendingOutcome {
        var outcome = PendingOutcome(
            receiver: receiver, sentAtMillis: offset(), startWall: Self.wallMillis, endWall: 0, sent: "")
        let before = await strikes(at: receiver)
        guard
            let channel = await partner.waitForChannel(to: receiver, timeout: .seconds(options.evidenceTimeoutSeconds))
        else {
            outcome.delivered = false
            outcome.sent = "nothing: no channel to \(receiver)"
            outcome.endWall = Self.wallMillis
            return outcome
        }
        do throws(LiaisonError) {
            switch name {
            case "forged": try await forged(channel, &outcome)
            case "replayed": try await replayed(channel, &outcome)
            case "non-releasable": try await nonReleasable(channel, &outcome)
            case "future-stamped": try await futureStamped(channel, &outcome)
            case "non-writer": try await nonWriter(channel, &outcome)
            case "orcon-reshare": try await orconReshare(channel, &outcome)
            case "oversized-frame": try await oversized(channel, &outcome)
            case "malformed-frame": try await malformed(channel, &outcome)
            case "flooding": try await flood(channel, &outcome, before: before)
            case "withholding": try await withhold(&outcome, before: before)
            default: outcome.delivered = false
            }
        } catch {
            outcome.notes.append("the attack stopped: \(error.message)")
        }
        if let expected = outcome.expectedStrike, outcome.delivered, outcome.detectedAfter == nil {
            outcome.detectedAfter = await waitForStrike(expected, at: receiver, above: before, since: outcome)
        }
        let after = await strikes(at: receiver)
        outcome.strikes = after.reduce(into: [:]) { result, entry in
            if entry.value > before[entry.key] ?? 0 { result[entry.key] = entry.value - (before[entry.key] ?? 0) }
        }
        outcome.endWall = Self.wallMillis
        outcome.endedAtMillis = offset()
        return outcome
    }

    /// Channel failures on links between honest nodes (`/v1/links`), by `NODE-PEER`, and the
    /// last reason each gave.
    private func honestChannelFailures() async -> (counts: [String: Int], reasons: [String: String]) {
        var counts = [String: Int]()
        var reasons = [String: String]()
        for (name, client) in clients.sorted(by: { $0.key < $1.key }) where name != hostile {
            guard let rows = try? await client.links() else { continue }
            for row in rows where row.peer != hostile {
                counts["\(name)-\(row.peer)"] = row.channels.map(\.failures).reduce(0, +)
                reasons["\(name)-\(row.peer)"] = row.lastError
            }
        }
        return (counts, reasons)
    }

    /// Sends ops in a batch and waits for the receiver's ack (or the channel's end).
    @discardableResult
    private func sendBatch(_ ops: [Data], on channel: HostileChannel) async throws(LiaisonError) -> Bool {
        let through = partner.nextThrough(to: channel.peer, after: channel.snapshot.hello?.checkpoint ?? 0)
        try channel.send([.batch(ops: ops, throughSeq: through)])
        return await waitForAck(through, on: channel)
    }

    private func waitForAck(_ through: UInt64, on channel: HostileChannel) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(options.evidenceTimeoutSeconds)
        while ContinuousClock.now < deadline {
            let state = channel.snapshot
            if state.ackedByPeer >= through { return true }
            if state.closed { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    private func waitForClose(_ channel: HostileChannel, seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if channel.isClosed { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return channel.isClosed
    }

    /// Whether the link from the hostile partner to `receiver` carries items of `template`
    /// (releasable to the receiver, within the link's ceiling, collections and tags): what the
    /// partner sent the receiver itself while it was honest, rather than through others.
    private func linkCarries(_ template: DrillWorkload.Template, to receiver: String) -> Bool {
        guard let filter = topology.link(from: hostile, to: receiver)?.filter,
            let partner = topology.partner(receiver)
        else { return false }
        let body = template.body
        let markings = Markings(
            classification: template.classification, releasableTo: body.relTo ?? [], orcon: body.orcon ?? false)
        guard markings.isReleasable(toPartner: receiver, groups: Set(partner.groups)) else { return false }
        if let collections = filter.collections, !collections.contains(body.collection) { return false }
        let ladder = topology.classifications
        if let ceiling = filter.maxClassification,
            (ladder.rank(of: template.classification) ?? .max) > (ladder.rank(of: ceiling) ?? -1)
        {
            return false
        }
        let tags = Set(body.tags ?? [])
        return filter.requiredTags.isSubset(of: tags) && filter.excludedTags.isDisjoint(with: tags)
    }

    /// A collection the link from the hostile partner to `receiver` carries.
    private func collection(to receiver: String) -> String {
        guard let collections = topology.link(from: hostile, to: receiver)?.filter.collections else {
            return "indicators"
        }
        return collections.contains("indicators") ? "indicators" : collections.sorted().first ?? "indicators"
    }

    private var lowest: String { topology.classifications.lowest }

    private func everyone() -> Markings { Markings(classification: lowest, releasableTo: [Markings.everyone]) }

    /// A bait's item as the hostile partner holds it, and its create op.
    private func bait(_ index: Int) -> (item: ItemState, create: StoredOp)? {
        let base = ledger.templates.count - baits.templates.count
        guard let id = ledger.snapshot.puts.first(where: { $0.value.template == base + index })?.key,
            let itemID = ItemID(id), let item = try? partner.node.store.item(itemID),
            let create = try? partner.node.store.ops(ofItem: itemID).first(where: {
                if case .create = $0.op.body.change { return true } else { return false }
            })
        else { return nil }
        return (item, create)
    }

    // MARK: - The attacks

    private mutating func forged(_ channel: HostileChannel, _ outcome: inout PendingOutcome) async throws(LiaisonError)
    {
        outcome.expectedStrike = .forged
        var ops = [Data]()
        var parts = [String]()
        if let index = baits.pick(.plain, for: channel.peer), let (item, _) = bait(index),
            let victim = drill.federation.nodeIDs[baits.baits[index].template.originator]
        {
            let (bytes, id) = try arsenal.forgedAuthor(of: item, claiming: victim)
            ops.append(bytes)
            outcome.opIDs.append(id)
            parts.append(
                "a set-fields on \(baits.baits[index].template.originator)'s item \(item.id.text.prefix(8)) naming "
                    + "\(baits.baits[index].template.originator) as author, signed by \(hostile)")
        }
        let (bytes, id) = try arsenal.badSignature(collection: collection(to: channel.peer), markings: everyone())
        ops.append(bytes)
        outcome.opIDs.append(id)
        parts.append("a create by \(hostile) carrying the signature of another of its ops")
        outcome.mustBeAbsent = outcome.opIDs
        outcome.sent = parts.joined(separator: "; ")
        if !(try await sendBatch(ops, on: channel)) { outcome.notes.append("no ack for the batch") }
    }

    private mutating func replayed(
        _ channel: HostileChannel, _ outcome: inout PendingOutcome
    ) async throws(LiaisonError) {
        outcome.expectedStrike = .protocolViolation
        let receiver = channel.peer
        // The partner's own honest puts that it sent the receiver itself: it sends them again.
        var replays = [VerifiedOp]()
        for (id, put) in ledger.snapshot.puts.sorted(by: { $0.value.writtenAt < $1.value.writtenAt }) {
            let template = ledger.templates[put.template]
            guard template.originator == hostile, linkCarries(template, to: receiver), let itemID = ItemID(id),
                let ops = try? partner.node.store.ops(ofItem: itemID)
            else { continue }
            replays += ops.map(\.op).filter { $0.body.author == partner.node.config.nodeID }
            if replays.count >= 8 { break }
        }
        guard !replays.isEmpty else {
            outcome.delivered = false
            outcome.sent = "nothing: \(hostile) wrote nothing for \(receiver) while it was honest"
            return
        }
        let items = Set(replays.map(\.body.itemID))
        let before = await digests(items, at: receiver)
        outcome.opIDs = replays.map(\.id)
        let through = partner.nextThrough(to: receiver, after: channel.snapshot.hello?.checkpoint ?? 0)
        let frame = try SyncFrameCodec.encode(.batch(ops: replays.map(\.encoded), throughSeq: through))
        channel.sendPayloads([frame])
        let acked = await waitForAck(through, on: channel)
        let after = await digests(items, at: receiver)
        outcome.unchanged = !before.isEmpty && before == after
        outcome.notes.append(
            "\(replays.count) ops \(hostile) had sent before, again in a new batch (through \(through)): "
                + "\(acked ? "acknowledged" : "not acknowledged"), "
                + "\(outcome.unchanged == true ? "the \(items.count) items they touch unchanged" : "items changed: \(before) -> \(after)")"
        )
        // The same frame again, byte for byte: its sequence does not rise.
        channel.sendPayloads([frame])
        outcome.closedByReceiver = await waitForClose(channel, seconds: options.evidenceTimeoutSeconds)
        outcome.sent =
            "\(replays.count) old ops of \(hostile)'s in a new batch, then that batch frame again (through \(through))"
        if let goodbye = channel.snapshot.goodbye { outcome.notes.append("\(receiver) said goodbye: \(goodbye)") }
    }

    private mutating func nonReleasable(
        _ channel: HostileChannel, _ outcome: inout PendingOutcome
    ) async throws(LiaisonError) {
        outcome.expectedStrike = .notReleasable
        let markings = Markings(classification: lowest, releasableTo: [hostile])
        let op = try arsenal.create(
            collection: collection(to: channel.peer), markings: markings, note: "for \(hostile)'s eyes only")
        outcome.opIDs = [op.id]
        outcome.mustBeAbsent = [op.id]
        outcome.sent = "a create REL TO \(hostile) (\(lowest))"
        if !(try await sendBatch([op.encoded], on: channel)) { outcome.notes.append("no ack for the batch") }
    }

    private mutating func futureStamped(
        _ channel: HostileChannel, _ outcome: inout PendingOutcome
    ) async throws(LiaisonError) {
        outcome.expectedStrike = .futureStamp
        let ahead: UInt64 = 3_600_000
        let stamp = HLCTimestamp(physicalMillis: HostileArsenal.wallMillis + ahead, logical: 0)
        let op = try arsenal.create(
            collection: collection(to: channel.peer), markings: everyone(), note: "from the future", hlc: stamp)
        outcome.opIDs = [op.id]
        outcome.mustBeAbsent = [op.id]
        outcome.sent = "a create REL TO ALL stamped \(ahead / 60_000) min ahead"
        if !(try await sendBatch([op.encoded], on: channel)) { outcome.notes.append("no ack for the batch") }
    }

    private mutating func nonWriter(
        _ channel: HostileChannel, _ outcome: inout PendingOutcome
    ) async throws(LiaisonError) {
        outcome.expectedStrike = .nonWriter
        guard let index = baits.pick(.plain, for: channel.peer, ownFirst: true), let (item, _) = bait(index) else {
            outcome.delivered = false
            outcome.sent = "nothing: no originator-only item that both \(hostile) and \(channel.peer) hold"
            return
        }
        let op = try arsenal.setFields(of: item, note: "defaced by \(hostile)")
        outcome.opIDs = [op.id]
        outcome.mustBeAbsent = [op.id]
        outcome.sent =
            "a set-fields by \(hostile) on \(baits.baits[index].template.originator)'s originator-only item \(item.id.text.prefix(8))"
        if !(try await sendBatch([op.encoded], on: channel)) { outcome.notes.append("no ack for the batch") }
    }

    private mutating func orconReshare(
        _ channel: HostileChannel, _ outcome: inout PendingOutcome
    ) async throws(LiaisonError) {
        outcome.expectedStrike = .filteredOut
        guard let index = baits.pick(.orcon, for: channel.peer), let (item, create) = bait(index) else {
            outcome.delivered = false
            outcome.sent = "nothing: \(hostile) holds no honest ORCON item"
            return
        }
        let template = baits.baits[index].template
        outcome.opIDs = [create.op.id]
        if template.holders.contains(channel.peer) {
            outcome.notes.append(
                "\(channel.peer) is entitled to hold this item from its originator, so only the strike and the custody entry can show the refusal"
            )
        } else {
            outcome.mustBeAbsent = [create.op.id]
        }
        outcome.sent =
            "\(template.originator)'s ORCON create of item \(item.id.text.prefix(8)) (\(template.body.collection)), passed on by \(hostile)"
        if !(try await sendBatch([create.op.encoded], on: channel)) { outcome.notes.append("no ack for the batch") }
    }

    private mutating func oversized(
        _ channel: HostileChannel, _ outcome: inout PendingOutcome
    ) async throws(LiaisonError) {
        outcome.expectedStrike = .protocolViolation
        let op = try arsenal.create(
            collection: collection(to: channel.peer), markings: everyone(), note: "inside an oversized frame")
        // Incompressible padding, so the zlib batch stays over the limit.
        var random = SeededRandom(seed: 0x0BAD_F00D)
        let padding = (0..<5).map { _ in Data(Self.noise(1 << 20, &random)) }
        let through = partner.nextThrough(to: channel.peer, after: channel.snapshot.hello?.checkpoint ?? 0)
        let frame = try SyncFrameCodec.encode(.batch(ops: [op.encoded] + padding, throughSeq: through))
        outcome.opIDs = [op.id]
        outcome.mustBeAbsent = [op.id]
        outcome.sent =
            "a batch frame of \(frame.readableBytes) bytes (limit \(SyncFrameCodec.maxFrameBytes)): a valid create and 5 MiB of noise"
        channel.sendPayloads([frame])
        outcome.closedByReceiver = await waitForClose(channel, seconds: options.evidenceTimeoutSeconds)
        if let goodbye = channel.snapshot.goodbye { outcome.notes.append("\(channel.peer) said goodbye: \(goodbye)") }
    }

    private mutating func malformed(
        _ channel: HostileChannel, _ outcome: inout PendingOutcome
    ) async throws(LiaisonError) {
        outcome.expectedStrike = .protocolViolation
        let op = try arsenal.create(
            collection: collection(to: channel.peer), markings: everyone(), note: "inside a malformed frame")
        let through = partner.nextThrough(to: channel.peer, after: channel.snapshot.hello?.checkpoint ?? 0)
        var frame = ByteBuffer(bytes: [0x0F, 0xFF])
        var batch = try SyncFrameCodec.encode(.batch(ops: [op.encoded], throughSeq: through))
        frame.writeBuffer(&batch)
        outcome.opIDs = [op.id]
        outcome.mustBeAbsent = [op.id]
        outcome.sent =
            "a \(frame.readableBytes)-byte frame: 2 bytes of an invalid field, then a batch with a valid create"
        channel.sendPayloads([frame])
        outcome.closedByReceiver = await waitForClose(channel, seconds: options.evidenceTimeoutSeconds)
        if let goodbye = channel.snapshot.goodbye { outcome.notes.append("\(channel.peer) said goodbye: \(goodbye)") }
    }

    private mutating func flood(
        _ channel: HostileChannel, _ outcome: inout PendingOutcome, before: [String: UInt64]
    ) async throws(LiaisonError) {
        outcome.expectedStrike = .flood
        let receiver = channel.peer
        let memoryBefore = drill.federation.memory(of: receiver)
        let failuresBefore = await channelFailures(at: receiver)
        await channel.stopReading()
        let writtenBefore = channel.written
        let started = ContinuousClock.now
        let readBefore = await bytesReceived(at: receiver)
        // Batches without waiting for acks: the partner's own old ops (duplicates, harmless).
        let replay = ledger.snapshot.puts.compactMap { id, put -> Data? in
            guard ledger.templates[put.template].originator == hostile,
                linkCarries(ledger.templates[put.template], to: receiver), let itemID = ItemID(id)
            else { return nil }
            return try? partner.node.store.ops(ofItem: itemID).first?.op.encoded
        }.first
        var batches = 0
        var sentBytes = 0
        if let replay {
            var frames = [SyncMessage]()
            for _ in 0..<8 {
                frames.append(
                    .batch(
                        ops: [replay],
                        throughSeq: partner.nextThrough(to: receiver, after: channel.snapshot.hello?.checkpoint ?? 0)))
            }
            try channel.send(frames)
            batches = frames.count
            sentBytes += frames.count * (replay.count + 16)
        }
        // Then pings, never more than `ahead` bytes beyond what the receiver has taken in (its
        // link counters), so that what it has not read yet cannot keep it busy long after the
        // flood: the receiver answers every ping it reads, and its answers back up.
        let pingBytes = try SyncFrameCodec.encode(.ping(nonce: 1 << 40)).readableBytes + 4
        let ahead = 256 << 10
        var pings = 0
        var nonce: UInt64 = 1 << 40
        var taken = 0
        let deadline = started + .seconds(options.floodSeconds)
        while ContinuousClock.now < deadline, !channel.isClosed {
            if sentBytes - taken < ahead && channel.queued < 4 {
                var chunk = [SyncMessage]()
                for _ in 0..<512 {
                    nonce += 1
                    chunk.append(.ping(nonce: nonce))
                }
                try channel.send(chunk)
                pings += chunk.count
                sentBytes += chunk.count * pingBytes
                continue
            }
            try? await Task.sleep(for: .milliseconds(100))
            if let count = await strikes(at: receiver)[StrikeClass.flood.rawValue],
                count > before[StrikeClass.flood.rawValue] ?? 0
            {
                outcome.detectedAfter = offset() - outcome.sentAtMillis
                break
            }
            if let read = await bytesReceived(at: receiver), let readBefore { taken = Int(read - readBefore) }
        }
        let elapsed = (ContinuousClock.now - started).drillMillis
        let written = channel.written - writtenBefore
        // Whether the receiver's engine dropped a channel meanwhile: if ours is still open, the
        // engine forgot it while its socket stayed open (its writer stuck behind answers
        // nobody reads), and the receiver goes on reading the flood.
        let failuresAfter = await channelFailures(at: receiver)
        // The receiver closes the channel when it strikes. Read again to see it: a socket that
        // neither reads nor writes never learns that its peer closed.
        channel.configure { $0.reading = true }
        // (A receiver closes a channel it can no longer write to 2 s after saying goodbye; a
        // loaded machine may take a few seconds more.)
        let socketClosed = await waitForClose(channel, seconds: 10)
        // The refusal is the receiver's engine dropping the channel for the flood (it takes in
        // nothing more from it and writes nothing to it), as its links show; the socket's close
        // follows from the transport's grace and is reported when the hostile side saw it.
        var engineDropped = false
        if let after = await channelFailures(at: receiver), after.count > failuresBefore?.count ?? after.count,
            after.reason?.contains("flood") == true
        {
            engineDropped = true
        }
        outcome.closedByReceiver = socketClosed || engineDropped
        if !socketClosed, engineDropped {
            outcome.notes.append(
                "\(receiver)'s engine dropped the channel (\(failuresAfter?.reason ?? "flood")), but the hostile side "
                    + "did not see the socket close within 10 s")
        }
        channel.close()
        let memoryAfter = drill.federation.memory(of: receiver)
        outcome.sent =
            "\(batches) batches without waiting for acks, then \(pings) pings (\(written) frames written to the socket), "
            + "reading nothing"
        outcome.notes.append(
            "flooded for \(Int(elapsed)) ms; \(receiver) took in \(taken / 1024) KiB of it "
                + "(\(elapsed > 0 ? Int(Double(taken) / Double(pingBytes) / elapsed * 1000) : 0) pings/s); "
                + "memory \(memoryBefore.map { "\($0.rssKiB / 1024) MiB resident (peak \($0.peakKiB / 1024) MiB)" } ?? "?") before, "
                + "\(memoryAfter.map { "\($0.rssKiB / 1024) MiB (peak \($0.peakKiB / 1024) MiB)" } ?? "?") after")
    }

    /// Channel failures on `node`'s link to the hostile partner, and the last reason
    /// (`/v1/links`).
    private func channelFailures(at node: String) async -> (count: Int, reason: String?)? {
        guard let row = try? await clients[node]?.links().first(where: { $0.peer == hostile }) else { return nil }
        return (row.channels.map(\.failures).reduce(0, +), row.lastError)
    }

    /// Frame bytes `node` has taken in from the hostile partner (`/v1/links`).
    private func bytesReceived(at node: String) async -> UInt64? {
        guard let rows = try? await clients[node]?.links() else { return nil }
        return rows.first { $0.peer == hostile }?.bytesReceived
    }

    /// Reads the receiver's batches and answers its heartbeats but acknowledges nothing, until
    /// the receiver strikes it for withholding (its link's ack deadline) or the evidence
    /// timeout passes the deadline.
    private mutating func withhold(
        _ outcome: inout PendingOutcome, before: [String: UInt64]
    ) async throws(LiaisonError) {
        outcome.expectedStrike = .withholding
        let receiver = outcome.receiver
        let channels = partner.openChannels(to: receiver)
        for channel in channels { channel.configure { $0.acking = false } }
        let linkBefore = try? await clients[receiver]?.links().first { $0.peer == hostile }
        let ackDeadline = Double(topology.channels.ackDeadlineMillis) / 1000
        let started = ContinuousClock.now
        let deadline = started + .seconds(ackDeadline + options.evidenceTimeoutSeconds)
        while ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(100))
            if let count = await strikes(at: receiver)[StrikeClass.withholding.rawValue],
                count > before[StrikeClass.withholding.rawValue] ?? 0
            {
                outcome.detectedAfter = offset() - outcome.sentAtMillis
                break
            }
        }
        let elapsed = (ContinuousClock.now - started).drillMillis
        let linkAfter = try? await clients[receiver]?.links().first { $0.peer == hostile }
        let withheld = channels.map { $0.snapshot.batchesWithheld }.reduce(0, +)
        outcome.closedByReceiver = channels.contains { $0.isClosed }
        for channel in channels { channel.configure { $0.acking = true } }
        outcome.sent =
            "\(Int(elapsed)) ms of reading \(receiver)'s batches without acknowledging any "
            + "(its ack deadline: \(topology.channels.ackDeadlineMillis) ms)"
        outcome.notes.append(
            "\(withheld) batches of \(receiver) read and not acknowledged; \(receiver)'s link to \(hostile): "
                + "\(linkBefore.map { "state \($0.state), lag \($0.lagOps) ops" } ?? "?") before, "
                + "\(linkAfter.map { "state \($0.state), lag \($0.lagOps) ops" } ?? "?") after"
        )
        if withheld == 0 {
            outcome.notes.append("\(receiver) sent no batch to withhold while the attack ran")
        }
    }

    /// Two creates of one item: each receiver gets one first (alternating), then the other.
    private mutating func equivocate() async -> [PendingOutcome] {
        var outcomes = [PendingOutcome]()
        var before = [String: [String: UInt64]]()
        var channels = [String: HostileChannel]()
        for receiver in receivers {
            outcomes.append(
                PendingOutcome(
                    receiver: receiver, sentAtMillis: offset(), startWall: Self.wallMillis, endWall: 0, sent: "",
                    expectedStrike: .equivocation))
            before[receiver] = await strikes(at: receiver)
            channels[receiver] = await partner.waitForChannel(
                to: receiver, timeout: .seconds(options.evidenceTimeoutSeconds))
        }
        let collection = receivers.map(collection(to:)).first ?? "indicators"
        let pair: (VerifiedOp, VerifiedOp)
        do {
            pair = try arsenal.equivocatingCreates(collection: collection, markings: everyone())
        } catch {
            return outcomes.map {
                var outcome = $0
                outcome.delivered = false
                outcome.sent = "nothing: \(error.message)"
                return outcome
            }
        }
        let (a, b) = pair
        let itemID = a.body.itemID
        for round in 0..<2 {
            for (index, receiver) in receivers.enumerated() {
                guard let channel = channels[receiver], !channel.isClosed else { continue }
                let op = (index + round) % 2 == 0 ? a : b
                do {
                    if !(try await sendBatch([op.encoded], on: channel)) {
                        outcomes[index].notes.append("no ack for create \(op == a ? "A" : "B")")
                    }
                } catch {
                    outcomes[index].notes.append("could not send: \(error.message)")
                }
            }
        }
        for (index, receiver) in receivers.enumerated() {
            let first = index % 2 == 0 ? a : b
            let second = index % 2 == 0 ? b : a
            // Both creates are kept (the proof) and passed on; the least one defines the item.
            outcomes[index].opIDs = [a.id, b.id]
            outcomes[index].delivered = channels[receiver] != nil
            outcomes[index].sent =
                "create \(first == a ? "A" : "B") of item \(itemID.text.prefix(8)), then create \(second == a ? "A" : "B") of the same item"
            outcomes[index].detectedAfter = await waitForStrike(
                .equivocation, at: receiver, above: before[receiver] ?? [:], since: outcomes[index])
        }
        // Every honest receiver ends with one state of the item, whichever create it saw first.
        var held = [String: String]()
        let deadline = ContinuousClock.now + .seconds(options.evidenceTimeoutSeconds)
        repeat {
            held = [:]
            for receiver in receivers {
                if let view = try? await clients[receiver]?.item(itemID.text) { held[receiver] = view.digest }
            }
            if held.count == receivers.count, Set(held.values).count == 1 { break }
            try? await Task.sleep(for: .milliseconds(200))
        } while ContinuousClock.now < deadline
        let converged = held.count == receivers.count && Set(held.values).count == 1
        for index in outcomes.indices {
            outcomes[index].converged = converged
            if !converged {
                let detail = held.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.prefix(8))" }
                outcomes[index].notes.append(
                    "the honest nodes hold different states of the forked item: \(detail.joined(separator: ", "))")
            }
        }
        for (index, receiver) in receivers.enumerated() {
            let after = await strikes(at: receiver)
            let earlier = before[receiver] ?? [:]
            outcomes[index].strikes = after.reduce(into: [:]) { result, entry in
                if entry.value > earlier[entry.key] ?? 0 { result[entry.key] = entry.value - (earlier[entry.key] ?? 0) }
            }
            outcomes[index].endWall = Self.wallMillis
            outcomes[index].endedAtMillis = offset()
        }
        return outcomes
    }

    // MARK: - Until quarantined

    /// Keeps forging at each attacked node in turn until it quarantines the partner; once one
    /// has, sends a create to one that has not yet (it may reach the first through honest
    /// partners, which must not let it in).
    private mutating func persist(record: inout HostileDrill.Record) async throws(LiaisonError) {
        var quarantined = [String]()
        let deadline = ContinuousClock.now + .seconds(options.quarantineTimeoutSeconds)
        for receiver in receivers {
            while ContinuousClock.now < deadline, !(await isQuarantined(receiver)) {
                guard let channel = await partner.waitForChannel(to: receiver, timeout: .seconds(2)) else { continue }
                let (bytes, id) = try arsenal.badSignature(collection: collection(to: receiver), markings: everyone())
                record.persistedOps[receiver, default: []].append((id, Self.wallMillis))
                record.persisted += 1
                try await sendBatch([bytes], on: channel)
            }
            guard await isQuarantined(receiver) else {
                record.problems.append(
                    "\(receiver) did not quarantine \(hostile) within \(options.quarantineTimeoutSeconds) s of forged ops"
                )
                continue
            }
            quarantined.append(receiver)
            progress("\(receiver) quarantined \(hostile)")
            if record.lateOp == nil, let next = receivers.first(where: { !quarantined.contains($0) }),
                let channel = await partner.waitForChannel(to: next, timeout: .seconds(2))
            {
                let op = try arsenal.create(
                    collection: collection(to: next), markings: everyone(), note: "sent after the quarantine")
                let acknowledged = try await sendBatch([op.encoded], on: channel)
                record.lateOp = HostileDrill.LateOp(
                    id: op.id, sentTo: next, quarantinedAt: quarantined, acknowledged: acknowledged)
            }
        }
        // Every quarantined node refuses the partner's connections.
        for receiver in quarantined {
            var refused = 0
            for _ in 0..<3 {
                if !(await partner.probe(receiver)) { refused += 1 }
            }
            record.refusedAfterQuarantine[receiver] = refused
        }
    }

    // MARK: - Evidence

    /// Strikes against the hostile partner at `node`, by class (empty when it does not answer).
    private func strikes(at node: String) async -> [String: UInt64] {
        guard let view = try? await clients[node]?.containment() else { return [:] }
        var out = [String: UInt64]()
        for entry in view.strikes where entry.partner == hostile { out[entry.strikeClass] = entry.total }
        return out
    }

    private func isQuarantined(_ node: String) async -> Bool {
        guard let view = try? await clients[node]?.containment() else { return false }
        return view.quarantines.contains { $0.partner == hostile }
    }

    /// Waits for a strike of `strikeClass` beyond `above` at `node`; returns the time from the
    /// attack to it, nil at the deadline.
    private func waitForStrike(
        _ strikeClass: StrikeClass, at node: String, above: [String: UInt64], since outcome: PendingOutcome
    ) async -> Double? {
        let deadline = ContinuousClock.now + .seconds(options.evidenceTimeoutSeconds)
        while true {
            if let count = await strikes(at: node)[strikeClass.rawValue], count > above[strikeClass.rawValue] ?? 0 {
                return offset() - outcome.sentAtMillis
            }
            guard ContinuousClock.now < deadline else { return nil }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The digests of items at `node`.
    private func digests(_ items: Set<ItemID>, at node: String) async -> [String: String] {
        var out = [String: String]()
        for id in items {
            if let view = try? await clients[node]?.item(id.text) { out[id.text] = view.digest }
        }
        return out
    }

    static func noise(_ count: Int, _ random: inout SeededRandom) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count)
        while out.count < count {
            var word = random.next()
            for _ in 0..<8 {
                out.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return out
    }
}
