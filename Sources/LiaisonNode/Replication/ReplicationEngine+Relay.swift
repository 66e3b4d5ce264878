import Foundation
import LiaisonCore
import LiaisonReplication
import LiaisonStore
import Logging

/// Sealed relaying (DESIGN §5.8): the sender seals ops for a partner that no channel
/// reaches and sends them through a relay partner; a relay carries envelopes it cannot
/// read; the recipient opens, commits and receipts them.
extension ReplicationEngine {
    /// How long a relay keeps an envelope before dropping it.
    static let envelopeLifetimeMillis: UInt64 = 10 * 60_000

    /// Relays that can carry envelopes to `destination` now: partners marked as relays that
    /// share a link with it and to which a channel of ours is open. Least loaded first.
    func relays(for destination: String) -> [String] {
        federation.neighbours.map(\.name).filter { name in
            guard name != destination, let partner = federation.partner(named: name), partner.relay,
                partner.neighbours.contains(destination)
            else { return false }
            return selectors[name]?.hasOpenChannel == true
        }.sorted()
    }

    /// Writes an out-of-band message on a channel to `peer` (a carrying one if possible).
    /// Returns false when no channel to it is open.
    @discardableResult
    func sendOutOfBand(_ message: SyncMessage, to peer: String) -> Bool {
        let open = (sessions[peer] ?? [:]).filter(\.value.open)
        let carriers = selectors[peer]?.carriers ?? []
        guard let token = open.keys.sorted().first(where: carriers.contains) ?? open.keys.sorted().first else { return false }
        open[token]?.continuation.yield(.outOfBand(message))
        return true
    }

    /// Seals what is due for every peer no channel reaches, and resends overdue envelopes.
    func relaySealed(nowMillis now: UInt64) {
        let settings = federation.channels
        for neighbour in federation.neighbours where neighbour.outbound != nil {
            let peer = neighbour.name
            guard selectors[peer]?.hasOpenChannel == false, let since = downSince[peer], now >= since + settings.relayAfterMillis,
                let destination = federation.partner(named: peer), let key = sealingKeys[peer]
            else { continue }
            let candidates = relays(for: peer)
            guard !candidates.isEmpty else {
                counters[peer]?.relayVia = nil
                continue
            }
            // Spread envelopes over the relays in turn.
            var turn = Int(sealed.receipted[peer] ?? 0) + sealed.awaiting(peer)
            var cursor = sealed.cursor(for: peer, acked: counters[peer]?.ackedThrough ?? 0)
            while sealed.hasRoom(for: peer) {
                let relay = candidates[turn % candidates.count]
                let batch: OutboxBatch
                do {
                    batch = try logic.loadBatch(for: peer, after: cursor, limit: sealed.maxOpsPerEnvelope, nowMillis: now, sealedVia: relay)
                } catch {
                    logger.error("could not read the log for sealing", metadata: ["liaison.partner": "\(peer)", "liaison.error": "\(error)"])
                    break
                }
                guard batch.throughSeq > cursor else { break }
                if !batch.ops.isEmpty {
                    do {
                        let envelope = try SealedEnvelope.seal(
                            ops: batch.ops,
                            to: destination.nodeID,
                            recipientSealingKey: key,
                            signingKey: node.identity.signingKey,
                            sealingKey: node.identity.sealingKey,
                            id: Self.randomEnvelopeID(),
                            expiresMillis: now + Self.envelopeLifetimeMillis
                        )
                        sealed.sent(envelope, opCount: batch.ops.count, to: peer, via: relay, nowMillis: now)
                        sendOutOfBand(.envelope(envelope.encoded()), to: relay)
                        counters[peer]?.opsSent += UInt64(batch.sent.count)
                        counters[peer]?.relayVia = relay
                        turn += 1
                        logger.debug(
                            "sealed envelope sent",
                            metadata: ["liaison.partner": "\(peer)", "liaison.relay": "\(relay)", "liaison.envelope": "\(envelope.idText)"]
                        )
                    } catch {
                        logger.error("could not seal", metadata: ["liaison.partner": "\(peer)", "liaison.error": "\(error)"])
                        break
                    }
                }
                counters[peer]?.opsWithheld += UInt64(batch.withheld.count)
                sealed.advance(peer, to: batch.throughSeq)
                cursor = batch.throughSeq
            }
        }
        let reachable = Dictionary(uniqueKeysWithValues: federation.neighbours.map { ($0.name, relays(for: $0.name)) })
        for retry in sealed.overdue(nowMillis: now, timeoutMillis: settings.receiptTimeoutMillis, relays: { reachable[$0] ?? [] }) {
            sendOutOfBand(.envelope(retry.encoded), to: retry.relay)
            counters[retry.destination]?.relayVia = retry.relay
            logger.info("no receipt in time; envelope sent again", metadata: ["liaison.partner": "\(retry.destination)", "liaison.relay": "\(retry.relay)"])
        }
    }

    static func randomEnvelopeID() -> Data {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// An envelope or receipt arrived on a channel from `neighbour`.
    func sealedTraffic(_ message: SyncMessage, from neighbour: String) {
        let now = Self.nowMillis
        switch message {
        case .envelope(let bytes):
            let envelope: SealedEnvelope
            do {
                envelope = try SealedEnvelope.decode(bytes)
            } catch {
                strike(neighbour, "sealed envelope refused: \(error.message)")
                return
            }
            if envelope.header.to == node.config.nodeID {
                openEnvelope(envelope, via: neighbour, nowMillis: now)
            } else {
                carry(envelope, encoded: bytes, from: neighbour, nowMillis: now)
            }
        case .receipt(let bytes):
            let receipt: EnvelopeReceipt
            do {
                receipt = try EnvelopeReceipt.decode(bytes)
            } catch {
                strike(neighbour, "receipt refused: \(error.message)")
                return
            }
            if receipt.to == node.config.nodeID {
                guard let signer = federation.partner(id: receipt.from) else { return }
                if let settled = sealed.receipt(receipt, from: signer.name) {
                    // Room for another envelope: seal it now rather than on the next beat.
                    relaySealed(nowMillis: now)
                    logger.debug(
                        "sealed envelope receipted",
                        metadata: ["liaison.partner": "\(signer.name)", "liaison.ops": "\(settled.opCount)", "liaison.refused": "\(receipt.refused)"]
                    )
                }
            } else {
                guard isRelay, let destination = federation.partner(id: receipt.to), counters[destination.name] != nil else {
                    strike(neighbour, "receipt for \(receipt.to.short), whom this node does not relay to")
                    return
                }
                try? relayQueue.enqueue(receipt: receipt, encoded: bytes, destination: destination.name, nowMillis: now)
                flushRelayQueue(for: destination.name, nowMillis: now)
            }
        default:
            return
        }
    }

    private func strike(_ neighbour: String, _ detail: String) {
        counters[neighbour]?.rejects += 1
        refused(peer: neighbour, detail: detail)
    }

    /// An envelope addressed to us: open, commit, receipt back along the way it came.
    private func openEnvelope(_ envelope: SealedEnvelope, via neighbour: String, nowMillis now: UInt64) {
        guard let sender = federation.partner(id: envelope.header.from), let key = sealingKeys[sender.name],
            federation.neighbours.contains(where: { $0.name == sender.name && $0.inbound != nil })
        else {
            strike(neighbour, "sealed envelope from \(envelope.header.from.short), who has no link to this node")
            return
        }
        let ops: [Data]
        do {
            ops = try envelope.open(with: node.identity.sealingKey, senderSealingKey: key)
        } catch {
            strike(neighbour, "sealed envelope \(envelope.idText) from \(sender.name) refused: \(error.message)")
            return
        }
        let outcome: ReceiveOutcome
        do {
            outcome = try receive(ops: ops, through: nil, from: sender.name)
        } catch {
            logger.error("could not commit a sealed envelope", metadata: ["liaison.partner": "\(sender.name)", "liaison.error": "\(error)"])
            return
        }
        counters[sender.name]?.envelopesOpened += 1
        do {
            let receipt = try EnvelopeReceipt.sign(
                for: envelope,
                applied: outcome.accepted,
                refused: outcome.refused,
                signingKey: node.identity.signingKey
            )
            let message = SyncMessage.receipt(receipt.encoded())
            // Straight back if a channel to the sender is open, else the way it came.
            if !sendOutOfBand(message, to: sender.name) { sendOutOfBand(message, to: neighbour) }
        } catch {
            logger.error("could not sign a receipt", metadata: ["liaison.error": "\(error)"])
        }
    }

    /// An envelope for another partner: carry it if this node relays and the destination is
    /// a neighbour. The custody log records the envelope's header, never its content.
    private func carry(_ envelope: SealedEnvelope, encoded: Data, from neighbour: String, nowMillis now: UInt64) {
        guard let destination = federation.partner(id: envelope.header.to), counters[destination.name] != nil,
            federation.partner(named: neighbour)?.nodeID == envelope.header.from
        else {
            let refusal: RelayQueue.Refusal =
                federation.partner(named: neighbour)?.nodeID == envelope.header.from ? .unknownDestination : .senderMismatch
            strike(neighbour, "sealed envelope \(envelope.idText) refused: \(refusal)")
            return
        }
        guard isRelay else {
            strike(neighbour, "sealed envelope \(envelope.idText) refused: \(RelayQueue.Refusal.notARelay)")
            return
        }
        do {
            try relayQueue.enqueue(envelope: envelope, encoded: encoded, destination: destination.name, nowMillis: now)
        } catch {
            logger.warning("sealed envelope dropped", metadata: ["liaison.partner": "\(neighbour)", "liaison.reason": "\(error)"])
            return
        }
        _ = try? node.store.appendCustody(
            CustodyEvent(
                kind: .opsRelayed,
                peer: destination.name,
                detail: "sealed envelope \(envelope.idText) from \(neighbour), \(encoded.count) bytes, content not readable here"
            ),
            timeMillis: Int64(now)
        )
        flushRelayQueue(for: destination.name, nowMillis: now)
    }

    /// Hands what the relay queue holds for `peer` to an open channel to it.
    func flushRelayQueue(for peer: String, nowMillis now: UInt64) {
        guard relayQueue.held(for: peer) > 0, (sessions[peer] ?? [:]).contains(where: \.value.open) else { return }
        for message in relayQueue.drain(peer, nowMillis: now) { sendOutOfBand(message, to: peer) }
    }
}
