import LiaisonCore

/// Containing a partner (DESIGN §6), decided in the engine: strikes are counted per partner
/// and class; past a class's threshold the partner is quarantined on its own, as it is by
/// the operator. A quarantined partner's channels close and stay closed, nothing is relayed
/// to, from or through it, and the interpreter leaves its ops since the quarantine's start
/// out of every item.
extension NodeEngine {
    /// Whether `peer` is quarantined.
    public func isQuarantined(_ peer: String) -> Bool { containment.isQuarantined(peer) }

    /// Counts strikes against `peer`; quarantines it when a threshold is crossed.
    mutating func countStrikes(_ peer: String, _ strikeClass: StrikeClass, _ number: Int, now: UInt64) {
        guard configuration.partners[peer] != nil, peer != configuration.me.name else { return }
        guard
            let quarantine = containment.strike(
                peer, strikeClass, count: number, nowMillis: now, policy: configuration.containment)
        else { return }
        self.quarantine(peer, quarantine, now: now)
    }

    /// Quarantines `peer` (again, with a new start, if it already is).
    mutating func quarantine(_ peer: String, _ quarantine: Quarantine, now: UInt64) {
        guard configuration.partners[peer] != nil, peer != configuration.me.name else {
            log(.error, "cannot quarantine: no such partner", peer: peer)
            return
        }
        guard quarantine.revocation != nil || !containment.isRevoked(peer) else {
            log(.info, "quarantine: the partner is revoked already", peer: peer)
            return
        }
        containment.quarantines[peer] = quarantine
        output.append(.quarantined(peer: peer, quarantine))
        log(
            .warning,
            quarantine.revocation != nil
                ? "partner revoked by a quorum of partners"
                : quarantine.automatic ? "partner quarantined by its strikes" : "partner quarantined by the operator",
            peer: peer,
            ["liaison.reason": quarantine.reason, "liaison.since_ms": "\(quarantine.sinceMillis)"]
        )
        for id in channels.keys.sorted() where channels[id]?.peer == peer {
            output.append(.close(id, reason: "\(peer) is quarantined"))
            guard let channel = channels.removeValue(forKey: id) else { continue }
            selectors[peer]?.closed(id.raw, failed: false, nowMillis: now)
            log(
                .info, "channel down", peer: peer,
                ["liaison.endpoint": "\(channel.endpoint)", "liaison.reason": "quarantined"])
        }
        downSince[peer] = downSince[peer] ?? now
        // Nothing sealed for it, nothing carried to it.
        sealed.linkRestored(peer)
        sealingLoads.remove(peer)
        _ = relayQueue.drain(peer, nowMillis: now)
        counters[peer]?.relayVia = nil
        counters[peer]?.lastError = "quarantined: \(quarantine.reason)"
    }

    /// Ends `peer`'s quarantine: its channels may connect again and its ops count again.
    mutating func release(_ peer: String, now: UInt64) {
        guard !containment.isRevoked(peer) else {
            log(.warning, "release refused: the partner is revoked; it comes back only with new keys", peer: peer)
            return
        }
        guard containment.release(peer) != nil else {
            log(.info, "release: the partner was not quarantined", peer: peer)
            return
        }
        output.append(.released(peer: peer))
        log(.warning, "partner released from quarantine", peer: peer)
    }
}
