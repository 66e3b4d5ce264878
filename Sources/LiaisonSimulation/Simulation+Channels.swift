import Crypto
import Foundation
import LiaisonCore
import LiaisonReplication
import LiaisonStore

/// Channels of a link and sealed relays in the simulator: the same `ChannelSelector`,
/// `SealedOutbox`, `RelayQueue` and envelopes as the daemon's engine, driven by the virtual
/// clock.
extension Simulation {
    // MARK: - Channels

    /// A channel to `peer` finished its hello at `name`.
    func channelOpened(at name: String, peer: String, index: Int) throws {
        var selector = nodes[name]!.selectors[peer] ?? ChannelSelector(settings: settings)
        selector.opened(index, endpoint: index, nowMillis: now)
        nodes[name]!.selectors[peer] = selector
        nodes[name]!.downSince[peer] = nil
        nodes[name]!.sealed.linkRestored(peer)
        try reselect(name, peer)
        try flushRelay(at: name, to: peer)
    }

    /// Re-chooses which channels to `peer` carry and tells their sessions.
    func reselect(_ name: String, _ peer: String) throws {
        guard var selector = nodes[name]!.selectors[peer] else { return }
        let (start, stop) = selector.select(nowMillis: now)
        nodes[name]!.selectors[peer] = selector
        guard !start.isEmpty || !stop.isEmpty else { return }
        let acked = try nodes[name]!.store.checkpoint(link: ReplicationLogic.sentLink(peer))
        trace.string("carriers \(name)>\(peer) +\(start) -\(stop)")
        for index in stop + start {
            let key = channelKey(name, peer, index)
            guard var machine = nodes[name]!.sessions[key] else { continue }
            let actions = machine.setCarrying(start.contains(index), resumeAfter: acked)
            nodes[name]!.sessions[key] = machine
            try perform(actions, at: name, channel: key)
        }
    }

    /// The node's periodic work, as the daemon's engine does it: failback, sealing for
    /// partners no channel reaches, and overdue envelopes.
    func maintain(_ name: String) throws {
        for peer in nodes[name]!.selectors.keys.sorted() { try reselect(name, peer) }
        try relaySealed(at: name)
    }

    // MARK: - Sealed relays

    /// Relays `name` can reach that share a link with `destination`.
    func relays(at name: String, for destination: String) -> [String] {
        names.filter { relay in
            relay != destination && relay != name && nodes[relay]!.isRelay
                && (links[relay]?[destination] != nil || links[destination]?[relay] != nil)
                && nodes[name]!.selectors[relay]?.hasOpenChannel == true
        }
    }

    /// Writes an envelope or receipt on an open channel from `name` to `peer`.
    @discardableResult
    func sendOutOfBand(_ message: SyncMessage, from name: String, to peer: String) throws -> Bool {
        let carriers = nodes[name]!.selectors[peer]?.carriers ?? []
        let open = (0..<2).map { channelKey(name, peer, $0) }.filter { key in
            guard let machine = nodes[name]!.sessions[key], case .open = machine.phase else { return false }
            return true
        }
        guard let key = open.first(where: { carriers.contains(channels[$0]!.index) }) ?? open.first else { return false }
        let actions = nodes[name]!.sessions[key]!.outOfBand(message)
        try perform(actions, at: name, channel: key)
        return true
    }

    func relaySealed(at name: String) throws {
        for peer in nodes[name]!.logic.neighbours.keys.sorted() where links[name]?[peer] != nil {
            guard nodes[name]!.selectors[peer]?.hasOpenChannel != true, let since = nodes[name]!.downSince[peer],
                now >= since + settings.relayAfterMillis
            else { continue }
            let candidates = relays(at: name, for: peer)
            guard !candidates.isEmpty else { continue }
            var cursor = nodes[name]!.sealed.cursor(
                for: peer,
                acked: try nodes[name]!.store.checkpoint(link: ReplicationLogic.sentLink(peer))
            )
            var turn = nodes[name]!.sealed.awaiting(peer)
            while nodes[name]!.sealed.hasRoom(for: peer) {
                let relay = candidates[turn % candidates.count]
                let batch = try nodes[name]!.logic.loadBatch(for: peer, after: cursor, limit: 64, nowMillis: now, sealedVia: relay)
                guard batch.throughSeq > cursor else { break }
                if !batch.ops.isEmpty {
                    let envelope = try SealedEnvelope.seal(
                        ops: batch.ops,
                        to: nodes[peer]!.author.nodeID,
                        recipientSealingKey: nodes[peer]!.sealingKey.publicKey,
                        signingKey: nodes[name]!.author.signingKey,
                        sealingKey: nodes[name]!.sealingKey,
                        id: Data(random.bytes(16)),
                        expiresMillis: now + 600_000
                    )
                    nodes[name]!.sealed.sent(envelope, opCount: batch.ops.count, to: peer, via: relay, nowMillis: now)
                    relayedOps[relay, default: []].formUnion(batch.sent)
                    envelopesSealed += 1
                    turn += 1
                    trace.string("seal \(name)>\(peer) via \(relay) \(batch.throughSeq) \(batch.ops.count)")
                    try sendOutOfBand(.envelope(envelope.encoded()), from: name, to: relay)
                }
                nodes[name]!.sealed.advance(peer, to: batch.throughSeq)
                cursor = batch.throughSeq
            }
        }
        var outbox = nodes[name]!.sealed
        let reachable = Dictionary(uniqueKeysWithValues: names.map { ($0, relays(at: name, for: $0)) })
        let overdue = outbox.overdue(nowMillis: now, timeoutMillis: settings.receiptTimeoutMillis) { reachable[$0] ?? [] }
        nodes[name]!.sealed = outbox
        for retry in overdue.sorted(by: { ($0.destination, $0.relay, $0.encoded.count) < ($1.destination, $1.relay, $1.encoded.count) }) {
            trace.string("reseal \(name)>\(retry.destination) via \(retry.relay)")
            try sendOutOfBand(.envelope(retry.encoded), from: name, to: retry.relay)
        }
    }

    /// An envelope or receipt arrived at `name` from its neighbour `neighbour`.
    func sealedTraffic(_ message: SyncMessage, at name: String, from neighbour: String) throws {
        let byNodeID = Dictionary(uniqueKeysWithValues: names.map { (nodes[$0]!.author.nodeID, $0) })
        switch message {
        case .envelope(let bytes):
            guard let envelope = try? SealedEnvelope.decode(bytes), let destination = byNodeID[envelope.header.to],
                let sender = byNodeID[envelope.header.from]
            else {
                violations.append("\(neighbour) handed \(name) an envelope that does not decode")
                return
            }
            if destination == name {
                let ops: [Data]
                do {
                    ops = try envelope.open(with: nodes[name]!.sealingKey, senderSealingKey: nodes[sender]!.sealingKey.publicKey)
                } catch {
                    violations.append("\(name) could not open an envelope from \(sender): \(error)")
                    return
                }
                guard links[sender]?[name] != nil else {
                    violations.append("\(sender) sealed ops for \(name) without a link to it")
                    return
                }
                let outcome = try nodes[name]!.logic.receive(ops: ops, through: nil, from: sender, nowMillis: now)
                if sender != hostile { refusals += outcome.refused }
                try checkReceived(ops, at: name, from: sender, onlyStored: sender == hostile)
                envelopesOpened += 1
                trace.string("open \(name)<\(sender) via \(neighbour) \(outcome.accepted)")
                let receipt = try EnvelopeReceipt.sign(
                    for: envelope,
                    applied: outcome.accepted,
                    refused: outcome.refused,
                    signingKey: nodes[name]!.author.signingKey
                )
                if try !sendOutOfBand(.receipt(receipt.encoded()), from: name, to: sender) {
                    try sendOutOfBand(.receipt(receipt.encoded()), from: name, to: neighbour)
                }
                if outcome.logGrew { try logGrew(at: name) }
                return
            }
            guard nodes[name]!.isRelay, sender == neighbour else {
                violations.append("\(neighbour) asked \(name), no relay of its, to carry an envelope")
                return
            }
            if nodes[name]!.withholds {
                envelopesWithheld += 1
                trace.string("withhold \(name) \(sender)>\(destination)")
                return
            }
            try? nodes[name]!.relayQueue.enqueue(envelope: envelope, encoded: bytes, destination: destination, nowMillis: now)
            try flushRelay(at: name, to: destination)
        case .receipt(let bytes):
            guard let receipt = try? EnvelopeReceipt.decode(bytes), let signer = byNodeID[receipt.from],
                let destination = byNodeID[receipt.to]
            else {
                violations.append("\(neighbour) handed \(name) a receipt that does not decode")
                return
            }
            if destination == name {
                _ = nodes[name]!.sealed.receipt(receipt, from: signer)
                trace.string("receipt \(name)<\(signer)")
            } else if nodes[name]!.isRelay {
                try? nodes[name]!.relayQueue.enqueue(receipt: receipt, encoded: bytes, destination: destination, nowMillis: now)
                try flushRelay(at: name, to: destination)
            }
        default:
            return
        }
    }

    /// Hands what `name` holds as a relay for `peer` to an open channel to it.
    func flushRelay(at name: String, to peer: String) throws {
        guard nodes[name]!.relayQueue.held(for: peer) > 0, nodes[name]!.selectors[peer]?.hasOpenChannel == true else { return }
        for message in nodes[name]!.relayQueue.drain(peer, nowMillis: now) {
            try sendOutOfBand(message, from: name, to: peer)
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
                    violations.append("I2: relay \(relay) holds op \(id.hash.hex.prefix(8)) it carried sealed and was never entitled to")
                }
            }
        }
    }
}
