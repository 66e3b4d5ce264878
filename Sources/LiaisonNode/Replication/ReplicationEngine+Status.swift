import Foundation
import LiaisonCore
import LiaisonReplication
import LiaisonStore

/// Link health (`liaison links`, `/v1/links`), read from the engine's state.
extension ReplicationEngine {
    /// Ops of our log a neighbour has not acknowledged (0 when the link carries nothing to it).
    static func lag(outbound: Bool, highest: UInt64, acked: UInt64) -> UInt64 {
        outbound && highest > acked ? highest - acked : 0
    }

    /// One row per neighbour.
    public func linkStatus() -> [LinkStatus] {
        let engine = interpreter.engine
        let highest = (try? node.store.highestSequence()) ?? 0
        let now = Self.nowMillis
        return federation.neighbours.map { neighbour in
            let name = neighbour.name
            let c = engine.counters[name] ?? NodeEngine.LinkCounters()
            let selector = engine.selectors[name] ?? ChannelSelector(settings: federation.channels)
            let lag = Self.lag(outbound: neighbour.outbound != nil, highest: highest, acked: c.ackedThrough)
            let lagSeconds = lag == 0 ? 0 : Double(now - min(now, c.lastAckMillis ?? c.lastContactMillis ?? now)) / 1000
            let mine = engine.channels.filter { $0.value.peer == name }
            let open = mine.filter(\.value.open)
            let carriers = selector.carriers.compactMap { raw in open[ChannelID(raw)].map { (raw, $0) } }
                .sorted { $0.1.endpoint < $1.1.endpoint }
            // A link has one channel per endpoint of the listening side.
            let endpointCount =
                neighbour.dial ? (federation.partner(named: name)?.endpoints.count ?? 1) : federation.listen.count
            var channels = [ChannelStatus]()
            for index in 0..<endpointCount {
                let session = mine.filter { $0.value.endpoint == index }.max { $0.key < $1.key }
                let state: String
                if let (id, value) = session {
                    if !value.open {
                        state = "connecting"
                    } else if selector.carriers.contains(id.raw) {
                        state = "carrying"
                    } else {
                        state = selector.heldUntil(endpoint: index) > now ? "held" : "standby"
                    }
                } else {
                    state = "down"
                }
                channels.append(
                    ChannelStatus(
                        endpoint: index,
                        state: state,
                        address: session?.value.address,
                        rttMillis: session?.value.session.rttMillis,
                        lastContact: session?.value.lastContactMillis.map { ISO8601.format(millis: Int64($0)) },
                        failures: c.failures[index] ?? 0,
                        lastError: c.endpointErrors[index]
                    )
                )
            }
            let state: String
            let path: String
            if !carriers.isEmpty {
                state = "up"
                path =
                    carriers.count == 1
                    ? "channel \(carriers[0].1.endpoint) (\(carriers[0].1.address))"
                    : "channels " + carriers.map { "\($0.1.endpoint)" }.joined(separator: ", ")
            } else if let relay = c.relayVia {
                state = "relayed"
                path = "relay via \(relay)"
            } else {
                state = mine.isEmpty ? "down" : "connecting"
                path = "none"
            }
            return LinkStatus(
                peer: name,
                state: state,
                path: path,
                channel: carriers.first?.1.address,
                rttMillis: carriers.first?.1.session.rttMillis,
                lastContact: c.lastContactMillis.map { ISO8601.format(millis: Int64($0)) },
                lagOps: lag,
                lagSeconds: lagSeconds,
                opsSent: c.opsSent,
                opsReceived: c.opsReceived,
                bytesSent: c.bytesSent,
                bytesReceived: c.bytesReceived,
                opsWithheld: c.opsWithheld,
                withheldByReason: c.withheldByReason,
                rejects: c.rejects,
                outbound: neighbour.outbound != nil,
                inbound: neighbour.inbound != nil,
                lastError: c.lastError,
                channels: channels,
                failovers: selector.switches,
                envelopesAwaiting: engine.sealed.awaiting(name),
                envelopesReceipted: engine.sealed.receipted[name] ?? 0,
                sealedOpsReceipted: engine.sealed.opsReceipted[name] ?? 0,
                envelopesOpened: c.envelopesOpened,
                relayHeld: engine.relayQueue.held(for: name)
            )
        }
    }
}
