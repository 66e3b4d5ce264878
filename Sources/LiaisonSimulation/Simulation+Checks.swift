import Crypto
import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonStore
import LiaisonWire
import NIOCore

/// What the world checks after every interpreter call, and the hostile node's behaviour on
/// the wire.
extension Simulation {
    /// Builds a node's interpreter over its memory store: the daemon's engine and
    /// interpreter, with the simulator's timing and a generator drawn from the run's seed.
    func makeInterpreter(
        name: String,
        store: MemoryStore,
        transport: SimulatedTransport,
        partners: [NodeEngine.Partner],
        isRelay: Bool,
        signingKey: Curve25519.Signing.PrivateKey,
        sealingKey: Curve25519.KeyAgreement.PrivateKey
    ) throws -> NodeInterpreter<SimulatedTransport> {
        let me = partners.first { $0.recipient.name == name }!.recipient
        func given(_ filter: LinkFilter?) -> LinkFilter? {
            guard var filter, options.enginesIgnoreTags else { return filter }
            filter.requiredTags = []
            filter.excludedTags = []
            return filter
        }
        let neighbours = partners.compactMap { other -> ReplicationNeighbour? in
            let outbound = given(links[name]?[other.recipient.name])
            let inbound = given(links[other.recipient.name]?[name])
            guard outbound != nil || inbound != nil else { return nil }
            return ReplicationNeighbour(partner: other.recipient, outbound: outbound, inbound: inbound)
        }
        var configuration = NodeEngine.Configuration(
            me: me,
            partners: partners,
            links: neighbours,
            isRelay: isRelay,
            channels: settings,
            signingKey: signingKey,
            sealingKey: sealingKey
        )
        // Strikes are counted but quarantine nobody by themselves here: the twin run without
        // attacks must hold the same items, and the hostile node's honest-looking ops would
        // leave them. An honest node striking or quarantining an honest one is a violation.
        configuration.containment.thresholds = [:]
        configuration.session.maxBatchOps = options.maxBatchOps
        configuration.revocation = revocationQuorum.map { RevocationPolicy(quorum: $0) }
        return try NodeInterpreter(
            configuration: configuration,
            store: store,
            ladder: ladder,
            maxClockSkewMillis: Self.maxClockSkewMillis,
            transport: transport,
            nowMillis: clock(of: name),
            random: SeededRandom(seed: random.next()),
            logger: nil
        )
    }

    /// Checks one interpreter call at `name`: honest nodes never strike honest ones; what
    /// arrived in clear was releasable; the hostile node's bad ops were refused and audited.
    func check(_ report: NodeInterpreter<SimulatedTransport>.Report, at name: String) throws {
        for action in report.actions {
            switch action {
            case .strike(let peer, let strikeClass, let detail) where name != hostile && peer != hostile:
                violations.append("t=\(now - start) \(name) struck honest \(peer) (\(strikeClass.rawValue)): \(detail)")
            case .quarantined(let peer, let quarantine) where name != hostile && peer != hostile:
                violations.append("t=\(now - start) \(name) quarantined honest \(peer): \(quarantine.reason)")
            case .send(_, .envelope(let bytes)):
                countSealed(bytes, from: name)
            default:
                break
            }
        }
        // Custody written since the last look at this node (it includes this call's).
        var fresh = [CustodyEntry]()
        if !report.commits.isEmpty {
            let seen = custodyCounts[name] ?? 0
            fresh = try nodes[name]!.store.custody(from: seen + 1, limit: 1_000_000)
            custodyCounts[name] = fresh.last?.sequence ?? seen
        }
        for (request, outcome) in report.commits {
            let peer = request.peer
            switch request.source {
            case .channel(let id, let through, let part):
                guard ends[id] != nil else { break }
                let expected = "\(peer)>\(name)@\(id)"
                let position = BatchPosition(through: through, part: part)
                if part > 0 { partsCommitted += 1 }
                if let mustRefuse = expectedRefusals[expected]?[position]?.first {
                    expectedRefusals[expected]?[position]?.removeFirst()
                    if expectedRefusals[expected]?[position]?.isEmpty == true {
                        expectedRefusals[expected]?[position] = nil
                    }
                    if outcome.refused < mustRefuse {
                        violations.append(
                            "t=\(now - start) hostile \(peer) sent \(mustRefuse) bad ops to \(name) in a batch through "
                                + "\(through), only \(outcome.refused) were refused"
                        )
                    }
                    if mustRefuse > 0,
                        !fresh.contains(where: { $0.kind == .opsRejected && $0.peer == nodes[peer]!.author.nodeID.text }
                        )
                    {
                        violations.append("I5: \(name) refused ops from hostile \(peer) without a custody entry")
                    }
                } else if peer != hostile {
                    refusals += outcome.refused
                }
                traceString("commit \(name)<\(peer) \(through)\(part > 0 ? " part \(part)" : "") \(outcome.accepted)")
            case .envelope(_, let via):
                if peer != hostile { refusals += outcome.refused }
                envelopesOpened += 1
                traceString("open \(name)<\(peer) via \(via) \(outcome.accepted)")
            }
            // Strikes quarantine: an honest node must never count one against an honest
            // partner, whatever the races of markings, filters and clocks.
            let hostileID = hostile.map { nodes[$0]!.author.nodeID }
            let honestStruck = outcome.strikes.filter { $0.key != hostileID }
            if name != hostile, !honestStruck.isEmpty {
                let classes = honestStruck.sorted { $0.key < $1.key }.flatMap { culprit, classes in
                    classes.sorted { $0.key < $1.key }.map {
                        "\($0.value)× \($0.key.rawValue) against \(culprit.short)"
                    }
                }
                let why = fresh.filter { $0.kind == .opsRejected }.map(\.detail).joined(separator: "; ")
                if ProcessInfo.processInfo.environment["LIAISON_SIM_DEBUG"] != nil {
                    for entry in fresh where entry.kind == .opsRejected {
                        for opID in entry.opIDs { try printItemEverywhere(of: opID, heldBy: peer) }
                    }
                }
                violations.append(
                    "t=\(now - start) \(name) struck honest \(peer): \(classes.joined(separator: ", ")) (\(why))")
            }
            try checkReceived(request.ops, at: name, from: peer, onlyStored: peer == hostile)
        }
    }

    /// For `LIAISON_SIM_DEBUG`: the op `holder` holds, then its item at every node (markings,
    /// tags, links' tag conditions) with the item's log there.
    func printItemEverywhere(of opID: OpID, heldBy holder: String) throws {
        guard let stored = try nodes[holder]!.store.op(opID) else { return }
        let body = stored.op.body
        print(
            "refused op \(opID.hash.hex.prefix(8)): \(body.change.kindName) by \(body.author.short), "
                + "item \(body.itemID.text.prefix(8))")
        for name in names {
            let state = try nodes[name]!.store.item(body.itemID)
            let held =
                state.map {
                    "REL TO \($0.markings.releasableTo) orcon \($0.markings.orcon) tags \($0.tags) \($0.writePolicy)"
                } ?? "not held"
            let conditions = (links[name] ?? [:]).sorted { $0.key < $1.key }.map {
                "\($0.key): requires \($0.value.requiredTags.sorted()) excludes \($0.value.excludedTags.sorted())"
            }
            print("  \(name) (\(nodes[name]!.author.nodeID.short)): \(held); links \(conditions)")
            for entry in try nodes[name]!.store.ops(ofItem: body.itemID) {
                let markings = entry.op.body.change.markings.map { " REL TO \($0.releasableTo)" } ?? ""
                print(
                    "    \(entry.sequence) \(entry.op.body.change.kindName) by \(entry.op.body.author.short)\(markings) "
                        + "from \(entry.receivedFrom?.short ?? "local")")
            }
        }
    }

    /// The hostile node's conduct on the channel: now and then, while faults run, it withholds
    /// its acks from a peer for longer than the ack deadline, reading and answering heartbeats
    /// all the while (nil: the frame is dropped). It does so in the twin run too (its own
    /// random stream), since it changes the channels' timing, not what the ops are: the twin
    /// comparison isolates the bad ops.
    func withholdAck(_ frame: ByteBuffer, by name: String, against peer: String) throws -> ByteBuffer? {
        switch try SyncFrameCodec.decode(frame) {
        case .ack, .partAck: break
        default: return frame
        }
        if now < ackWithholding[peer, default: 0] {
            acksWithheld += 1
            return nil
        }
        if faultsOn, withholdRandom.chance(0.01) {
            ackWithholding[peer] = now + Self.ackWithholdingMillis
            acksWithheld += 1
            traceString("withhold acks \(name)>\(peer)")
            return nil
        }
        return frame
    }

    /// The hostile node's behaviour: now and then it slips bad ops into a batch it sends.
    func attack(_ frame: ByteBuffer, by name: String, against peer: String, channel key: String) throws -> ByteBuffer {
        let batch: (ops: [Data], position: BatchPosition)
        switch try SyncFrameCodec.decode(frame) {
        case .batch(let ops, let through): batch = (ops, BatchPosition(through: through, part: 0))
        case .batchPart(let ops, let through, let part): batch = (ops, BatchPosition(through: through, part: part))
        default: return frame
        }
        guard let receiving = channels[key]?.ids[peer] else { return frame }
        // What the receiver must refuse of each batch frame, by the receiving end's channel
        // (a batch that waited for local time commits after its channel broke) and in the
        // order the frames go (a batch may go again with the same `through`, clean or not).
        // Seed 578376: a clean batch waited at the receiver, its channel broke, and the batch
        // went again with attacks on the next channel; both committed in one call, and the
        // check, keyed by the endpoints' pair and `through` alone, took the clean one's
        // outcome for the attacked one's.
        let expected = "\(name)>\(peer)@\(receiving)"
        guard attackRandom.chance(0.5) else {
            expectedRefusals[expected, default: [:]][batch.position, default: []].append(0)
            return frame
        }
        let (extra, mustRefuse) = try makeAttacks(by: name, against: peer)
        attacksSent += extra.count
        expectedRefusals[expected, default: [:]][batch.position, default: []].append(mustRefuse)
        let position = batch.position
        return try SyncFrameCodec.encode(
            position.part == 0
                ? .batch(ops: batch.ops + extra, throughSeq: position.through)
                : .batchPart(ops: batch.ops + extra, throughSeq: position.through, part: position.part))
    }

    /// Counts envelopes as their senders first send them, and again when they retry.
    func countSealed(_ bytes: Data, from name: String) {
        guard let envelope = try? SealedEnvelope.decode(bytes), envelope.header.from == nodes[name]!.author.nodeID
        else {
            return
        }
        if sealedEnvelopes.insert(envelope.header.id).inserted {
            // Sealed in this call: judged by the sender's link to the recipient (a retry
            // carries what was sealed then, so only the first send is checked).
            if let recipient = names.first(where: { nodes[$0]!.author.nodeID == envelope.header.to }),
                let ops = try? envelope.open(
                    with: nodes[recipient]!.sealingKey, senderSealingKey: nodes[name]!.sealingKey.publicKey)
            {
                checkTagConditions(ops, from: name, to: recipient, sealed: true)
            }
            envelopesSealed += 1
            traceString("seal \(name) \(envelope.idText)")
        } else {
            // The same envelope from its sender again: a retry after a missing receipt. Counted
            // by the world, so a sender's crash does not lose the count.
            envelopeRetries += 1
            traceString("reseal \(name) \(envelope.idText)")
        }
    }

    /// Remembers which ops a relay carried sealed (the world can open any envelope).
    func recordRelayed(_ envelope: SealedEnvelope, at relay: String) {
        guard let recipient = names.first(where: { nodes[$0]!.author.nodeID == envelope.header.to }),
            let sender = names.first(where: { nodes[$0]!.author.nodeID == envelope.header.from }),
            let ops = try? envelope.open(
                with: nodes[recipient]!.sealingKey, senderSealingKey: nodes[sender]!.sealingKey.publicKey)
        else { return }
        for bytes in ops {
            if let op = try? VerifiedOp(storedEncoding: bytes) { relayedOps[relay, default: []].insert(op.id) }
        }
    }

    /// I2 for relays: an op that went sealed through a relay is never held by that relay
    /// unless its markings released it there.
    func checkRelaysHoldNoSealedContent() throws {
        for (relay, ids) in relayedOps.sorted(by: { $0.key < $1.key }) {
            for id in ids.sorted() {
                guard let stored = try nodes[relay]!.store.op(id) else { continue }
                let own = nodes[relay]!.author.nodeID
                guard stored.op.body.originator != own, stored.op.body.author != own else { continue }
                let versions = markingsVersions(of: stored.op.body.itemID)
                if !versions.contains(where: { $0.isReleasable(toPartner: relay, groups: nodes[relay]!.groups) }) {
                    violations.append(
                        "I2: relay \(relay) holds op \(id.hash.hex.prefix(8)) it carried sealed and was never entitled to"
                    )
                }
            }
        }
    }

    // MARK: - Tag conditions

    /// I2 for tag conditions, on what leaves a sender: no op of a batch it writes to `peer`
    /// belongs to an item whose tags, as the sender holds the item, the link's filter
    /// excludes (or lacks a tag it requires). Receivers do not re-check tags (they are the
    /// sender's to judge), so the world checks every sender, the hostile node's engine too
    /// (before its attacks are slipped in).
    func checkSentTags(_ frame: ByteBuffer, from name: String, to peer: String) throws {
        guard let filter = links[name]?[peer], !(filter.requiredTags.isEmpty && filter.excludedTags.isEmpty),
            case .batch(let ops, _) = try SyncFrameCodec.decode(frame)
        else { return }
        checkTagConditions(ops, from: name, to: peer, sealed: false)
    }

    /// Whether `tags` pass the tag conditions of `filter`.
    static func tagsPass(_ tags: Set<String>, _ filter: LinkFilter) -> Bool {
        filter.requiredTags.isSubset(of: tags) && filter.excludedTags.isDisjoint(with: tags)
    }

    /// The check of `checkSentTags` for ops `name` just read from its log for `peer` (on a
    /// channel, or sealed for it). The sender judged them on its item's state when it read
    /// them, within the interpreter call that just ended. One call can commit several batches
    /// and read between them (batches that waited for the clock are committed together, each
    /// followed by the reads it wakes: seed 488529), so that state is the one after the call,
    /// the one before it, or the one after any commit of the item's ops within it; an op
    /// passes if one of them lets it through.
    func checkTagConditions(_ encoded: [Data], from name: String, to peer: String, sealed: Bool) {
        guard let filter = links[name]?[peer], !(filter.requiredTags.isEmpty && filter.excludedTags.isEmpty) else {
            return
        }
        let store = nodes[name]!.store
        let settled = settledThrough[name] ?? 0
        for bytes in encoded {
            guard let op = try? VerifiedOp(storedEncoding: bytes),
                let item = try? store.item(op.body.itemID),
                !Self.tagsPass(Set(item.tags), filter)
            else { continue }
            let committedInCall = ((try? store.ops(ofItem: op.body.itemID)) ?? []).map(\.sequence).filter {
                $0 > settled
            }
            let passedOnce = ([settled] + committedInCall.sorted()).contains { sequence in
                tagsReplayed(op.body.itemID, at: name, through: sequence).map { Self.tagsPass($0, filter) } ?? false
            }
            if passedOnce { continue }
            violations.append(
                "I2: \(name) sent\(sealed ? " sealed" : "") op \(op.id.hash.hex.prefix(8)) (\(op.body.change.kindName)) of item "
                    + "\(op.body.itemID.text.prefix(8)) tagged \(item.tags.sorted()) to \(peer) over a link that "
                    + "requires \(filter.requiredTags.sorted()) and excludes \(filter.excludedTags.sorted())"
            )
        }
    }

    /// The tags of an item at `name` from the ops of it that its log held through `sequence`:
    /// the least create by stamp, then the rest in log order (tags are an add-wins set, so the
    /// order does not matter). Nil when no create was held then.
    func tagsReplayed(_ id: ItemID, at name: String, through sequence: UInt64) -> Set<String>? {
        guard let stored = try? nodes[name]!.store.ops(ofItem: id) else { return nil }
        let held = stored.filter { $0.sequence <= sequence }.sorted { $0.sequence < $1.sequence }.map(\.op)
        let creates = held.filter {
            if case .create = $0.body.change { return true } else { return false }
        }
        guard let least = creates.min(by: { $0.stamp < $1.stamp }), var state = try? ItemState(create: least) else {
            return nil
        }
        for op in held where op.id != least.id {
            if case .create = op.body.change { continue }
            _ = try? state.apply(op)
        }
        return Set(state.tags)
    }

    /// The tags `name` ends with for `item` (the originator's final state of it): those it
    /// holds, or the originator's when it does not hold the item (the I3 check then reports it
    /// missing anyway).
    func finalTags(of item: ItemState, at name: String) throws -> Set<String> {
        if let known = finalTags[name]?[item.id] { return known }
        let tags = Set(try nodes[name]!.store.item(item.id)?.tags ?? item.tags)
        finalTags[name, default: [:]][item.id] = tags
        return tags
    }

    /// Ops the link filters withheld for their tags (custody of every node: "N× reason" details).
    func opsWithheldForTags() -> Int {
        let reasons: Set<String> = [WithholdReason.excludedTag.rawValue, WithholdReason.missingRequiredTag.rawValue]
        var total = 0
        for name in names {
            let entries = (try? nodes[name]!.store.custody(from: 1, limit: 1_000_000)) ?? []
            for entry in entries where entry.kind == .filterWithheld {
                for part in entry.detail.split(separator: "; ") {
                    let pieces = part.split(separator: "× ", maxSplits: 1)
                    if pieces.count == 2, reasons.contains(String(pieces[1])), let count = Int(pieces[0]) {
                        total += count
                    }
                }
            }
        }
        return total
    }
}
