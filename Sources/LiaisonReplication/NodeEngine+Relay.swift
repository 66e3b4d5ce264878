public import Foundation
public import LiaisonCore

/// Sealed relaying (DESIGN §5.8), decided in the engine: the sender seals ops for a partner
/// that no channel reaches and sends them through a relay; a relay carries envelopes it
/// cannot read; the recipient opens, commits and receipts them.
extension NodeEngine {
    /// Relays that can carry envelopes to `destination` now: partners marked as relays that
    /// share a link with it and to which a channel of ours is open. Sorted by name.
    public func relays(for destination: String) -> [String] {
        configuration.links.keys.filter { name in
            guard name != destination, let partner = configuration.partners[name], partner.relay,
                partner.neighbours.contains(destination), !containment.isQuarantined(name)
            else { return false }
            return selectors[name]?.hasOpenChannel == true
        }.sorted()
    }

    /// Starts sealing for every partner no channel reaches, and resends overdue envelopes.
    mutating func relaySealed(now: UInt64) {
        let settings = configuration.channels
        for peer in configuration.links.keys.sorted() where configuration.links[peer]?.outbound != nil {
            guard !containment.isQuarantined(peer), selectors[peer]?.hasOpenChannel == false,
                let since = downSince[peer],
                now >= since + settings.relayAfterMillis
            else { continue }
            let candidates = relays(for: peer)
            guard !candidates.isEmpty else {
                counters[peer]?.relayVia = nil
                continue
            }
            sealNext(for: peer, candidates: candidates)
        }
        let reachable = Dictionary(uniqueKeysWithValues: configuration.links.keys.map { ($0, relays(for: $0)) })
        let overdue = sealed.overdue(nowMillis: now, timeoutMillis: settings.receiptTimeoutMillis) {
            reachable[$0] ?? []
        }
        // In an order that does not depend on the process's hash seed (two envelopes of one
        // size once swapped places between runs of one simulator seed: seed 413151).
        for retry in overdue.sorted(by: {
            if ($0.destination, $0.relay) != ($1.destination, $1.relay) {
                return ($0.destination, $0.relay) < ($1.destination, $1.relay)
            }
            return $0.encoded.lexicographicallyPrecedes($1.encoded)
        }) {
            sendOutOfBand(.envelope(retry.encoded), to: retry.relay, now: now)
            counters[retry.destination]?.relayVia = retry.relay
            log(
                .info, "no receipt in time; envelope sent again", peer: retry.destination,
                ["liaison.relay": retry.relay])
        }
    }

    /// Asks for the next batch to seal for `peer`, if there is room and something to seal.
    private mutating func sealNext(for peer: String, candidates: [String]) {
        guard !sealingLoads.contains(peer), sealed.hasRoom(for: peer) else { return }
        let cursor = sealed.cursor(for: peer, acked: counters[peer]?.ackedThrough ?? 0)
        guard cursor < localHighest else { return }
        // Spread envelopes over the relays in turn.
        let turn = Int(sealed.receipted[peer] ?? 0) + sealed.awaiting(peer)
        let relay = candidates[turn % candidates.count]
        sealingLoads.insert(peer)
        output.append(
            .loadBatch(
                BatchRequest(
                    peer: peer, after: cursor, limit: configuration.maxOpsPerEnvelope, purpose: .seal(relay: relay)))
        )
    }

    /// A batch to seal was read: seal it, send it through the relay, and go on while there
    /// is room.
    mutating func sealLoaded(_ request: BatchRequest, _ batch: LoadedBatch, relay: String, now: UInt64) {
        let peer = request.peer
        sealingLoads.remove(peer)
        // A channel came back meanwhile: the link's own catch-up covers the batch.
        guard selectors[peer]?.hasOpenChannel == false, let destination = configuration.partners[peer] else { return }
        counters[peer]?.opsWithheld += UInt64(batch.withheld)
        counters[peer]?.countWithheld(batch.withheldByReason)
        if !batch.ops.isEmpty {
            let id = Data(random.bytes(16))
            do {
                let envelope = try SealedEnvelope.seal(
                    ops: batch.ops,
                    to: destination.recipient.nodeID,
                    recipientSealingKey: destination.sealingKey,
                    signingKey: configuration.signingKey,
                    sealingKey: configuration.sealingKey,
                    id: id,
                    expiresMillis: now + configuration.envelopeLifetimeMillis
                )
                sealed.sent(envelope, opCount: batch.ops.count, to: peer, via: relay, nowMillis: now)
                sendOutOfBand(.envelope(envelope.encoded()), to: relay, now: now)
                counters[peer]?.opsSent += UInt64(batch.sent)
                counters[peer]?.relayVia = relay
                log(
                    .debug, "sealed envelope sent", peer: peer,
                    ["liaison.relay": relay, "liaison.envelope": envelope.idText])
            } catch {
                log(.error, "could not seal", peer: peer, ["liaison.error": "\(error)"])
                return
            }
        }
        sealed.advance(peer, to: batch.throughSeq)
        guard batch.throughSeq > request.after else { return }
        let candidates = relays(for: peer)
        if !candidates.isEmpty { sealNext(for: peer, candidates: candidates) }
    }

    /// An envelope or receipt arrived on a channel from `neighbour`.
    mutating func sealedTraffic(_ message: SyncMessage, from neighbour: String, now: UInt64) {
        switch message {
        case .envelope(let bytes):
            let envelope: SealedEnvelope
            do {
                envelope = try envelopes.decode(bytes)
            } catch {
                strike(neighbour, .badEnvelope, "sealed envelope refused: \(error.message)", now: now)
                return
            }
            if envelope.header.to == configuration.me.nodeID {
                openEnvelope(envelope, via: neighbour, now: now)
            } else {
                carry(envelope, encoded: bytes, from: neighbour, now: now)
            }
        case .receipt(let bytes):
            let receipt: EnvelopeReceipt
            do {
                receipt = try EnvelopeReceipt.decode(bytes)
            } catch {
                strike(neighbour, .badEnvelope, "receipt refused: \(error.message)", now: now)
                return
            }
            if receipt.to == configuration.me.nodeID {
                guard let signer = partner(id: receipt.from) else { return }
                let name = signer.recipient.name
                if let settled = sealed.receipt(receipt, from: name) {
                    log(
                        .debug,
                        "sealed envelope receipted",
                        peer: name,
                        ["liaison.ops": "\(settled.opCount)", "liaison.refused": "\(receipt.refused)"]
                    )
                    // Room for another envelope: seal it now rather than on the next beat.
                    let candidates = relays(for: name)
                    if selectors[name]?.hasOpenChannel == false, !candidates.isEmpty {
                        sealNext(for: name, candidates: candidates)
                    }
                }
            } else {
                guard configuration.isRelay, let destination = partner(id: receipt.to),
                    configuration.links[destination.recipient.name] != nil
                else {
                    strike(
                        neighbour, .badEnvelope, "receipt for \(receipt.to.short), whom this node does not relay to",
                        now: now)
                    return
                }
                try? relayQueue.enqueue(
                    receipt: receipt, encoded: bytes, destination: destination.recipient.name, nowMillis: now)
                flushRelayQueue(for: destination.recipient.name, now: now)
            }
        default:
            return
        }
    }

    /// An envelope addressed to us: open it and hand its ops to the store work; the receipt
    /// goes back once they are committed.
    private mutating func openEnvelope(_ envelope: SealedEnvelope, via neighbour: String, now: UInt64) {
        // The header's signature verified (`SealedEnvelope.decode`), so the named sender signed
        // it: what is wrong past this point is the sender's doing, not that of a relay that
        // carried it, and the strike is the sender's. A relay cannot alter a signed envelope
        // undetected, and cannot see inside it to tell a sealed payload that will not open.
        // Whatever a channel's reader opened of it ahead is let go however this ends.
        defer { envelopes.forget(envelope) }
        guard let sender = partner(id: envelope.header.from) else {
            strike(
                neighbour, .badEnvelope, "sealed envelope from \(envelope.header.from.short), who is no partner",
                now: now)
            return
        }
        let name = sender.recipient.name
        guard configuration.links[name]?.inbound != nil else {
            strike(
                name, .badEnvelope,
                "sealed envelope \(envelope.idText) from \(name), who has no link to this node, via \(neighbour)",
                now: now)
            return
        }
        guard !containment.isQuarantined(name) else {
            log(.info, "envelope from a quarantined partner dropped", peer: name, ["liaison.envelope": envelope.idText])
            return
        }
        if let seen = openedEnvelopes[Self.openedKey(envelope.header)] {
            // A replay, or the sender's retry through another relay: nothing is committed
            // twice; the receipt goes again in case the first was lost.
            log(.debug, "envelope seen before; not opened again", peer: name, ["liaison.envelope": envelope.idText])
            if let receipt = seen.receipt, !sendOutOfBand(.receipt(receipt), to: name, now: now) {
                sendOutOfBand(.receipt(receipt), to: neighbour, now: now)
            }
            return
        }
        guard envelope.header.expiresMillis > now else {
            log(.info, "expired envelope dropped", peer: name, ["liaison.envelope": envelope.idText])
            return
        }
        let ops: [Data]
        do {
            ops = try envelopes.open(envelope, with: configuration.sealingKey, senderSealingKey: sender.sealingKey)
        } catch {
            strike(
                name, .badEnvelope,
                "sealed envelope \(envelope.idText) from \(name) via \(neighbour) refused: \(error.message)", now: now)
            return
        }
        remember(envelope, now: now)
        output.append(.commit(CommitRequest(peer: name, ops: ops, source: .envelope(envelope, via: neighbour))))
    }

    /// Remembers an opened envelope until it expires (at most one lifetime ahead); past the
    /// bound, the tenth expiring first is forgotten.
    private mutating func remember(_ envelope: SealedEnvelope, now: UInt64) {
        let until = min(envelope.header.expiresMillis, now + configuration.envelopeLifetimeMillis)
        openedEnvelopes[Self.openedKey(envelope.header)] = OpenedEnvelope(untilMillis: until, receipt: nil)
        guard openedEnvelopes.count > Self.maxOpenedEnvelopes else { return }
        // Forget a tenth at once, so a partner flooding envelopes costs one sort per
        // thousands of them, not one per envelope.
        let excess = openedEnvelopes.count - Self.maxOpenedEnvelopes + Self.maxOpenedEnvelopes / 10
        let first = openedEnvelopes.sorted {
            $0.value.untilMillis != $1.value.untilMillis
                ? $0.value.untilMillis < $1.value.untilMillis : $0.key.lexicographicallyPrecedes($1.key)
        }
        for (id, _) in first.prefix(excess) { openedEnvelopes[id] = nil }
    }

    /// An opened envelope's key in `openedEnvelopes`: its sender's NodeID, then its id. The id
    /// alone would let anyone who reads routing headers (any relay) claim an honest sender's
    /// envelope id first with an envelope of its own, so that the honest one is dropped as a
    /// replay, through every relay, until it expires.
    public static func openedKey(_ header: SealedEnvelope.Header) -> Data { Data(header.from.bytes) + header.id }

    /// Forgets opened envelopes past their expiry (a relay drops them by then too).
    mutating func forgetExpiredEnvelopes(now: UInt64) {
        guard openedEnvelopes.values.contains(where: { $0.untilMillis <= now }) else { return }
        openedEnvelopes = openedEnvelopes.filter { $0.value.untilMillis > now }
    }

    /// The ops of an envelope are committed: sign a receipt and send it straight back if a
    /// channel to the sender is open, else the way the envelope came.
    mutating func receiptEnvelope(
        _ envelope: SealedEnvelope, from sender: String, via neighbour: String, outcome: CommitOutcome, now: UInt64
    ) {
        do {
            let receipt = try EnvelopeReceipt.sign(
                for: envelope,
                applied: outcome.accepted,
                refused: outcome.refused,
                signingKey: configuration.signingKey
            )
            let message = SyncMessage.receipt(receipt.encoded())
            openedEnvelopes[Self.openedKey(envelope.header)]?.receipt = receipt.encoded()
            if !sendOutOfBand(message, to: sender, now: now) { sendOutOfBand(message, to: neighbour, now: now) }
        } catch {
            log(.error, "could not sign a receipt", peer: sender, ["liaison.error": "\(error)"])
        }
    }

    /// An envelope for another partner: carry it if this node relays and the destination is
    /// a neighbour. Custody records the envelope's header, never its content.
    private mutating func carry(_ envelope: SealedEnvelope, encoded: Data, from neighbour: String, now: UInt64) {
        let fromNeighbour = configuration.partners[neighbour]?.recipient.nodeID == envelope.header.from
        guard let destination = partner(id: envelope.header.to), configuration.links[destination.recipient.name] != nil,
            fromNeighbour
        else {
            let refusal: RelayQueue.Refusal = fromNeighbour ? .unknownDestination : .senderMismatch
            strike(neighbour, .badEnvelope, "sealed envelope \(envelope.idText) refused: \(refusal)", now: now)
            return
        }
        guard configuration.isRelay else {
            strike(
                neighbour, .badEnvelope, "sealed envelope \(envelope.idText) refused: \(RelayQueue.Refusal.notARelay)",
                now: now)
            return
        }
        let name = destination.recipient.name
        guard !containment.isQuarantined(name) else {
            log(.info, "envelope for a quarantined partner dropped", peer: name, ["liaison.envelope": envelope.idText])
            return
        }
        do {
            try relayQueue.enqueue(envelope: envelope, encoded: encoded, destination: name, nowMillis: now)
        } catch {
            log(.warning, "sealed envelope dropped", peer: neighbour, ["liaison.reason": "\(error)"])
            return
        }
        output.append(
            .custody(
                CustodyEvent(
                    kind: .opsRelayed,
                    peer: name,
                    detail:
                        "sealed envelope \(envelope.idText) from \(neighbour), \(encoded.count) bytes, content not readable here"
                )
            )
        )
        flushRelayQueue(for: name, now: now)
    }

    /// Hands what the relay queue holds for `peer` to an open channel to it.
    mutating func flushRelayQueue(for peer: String, now: UInt64) {
        guard relayQueue.held(for: peer) > 0, channels.values.contains(where: { $0.peer == peer && $0.open }) else {
            return
        }
        for message in relayQueue.drain(peer, nowMillis: now) { sendOutOfBand(message, to: peer, now: now) }
    }
}
