import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode

extension HostileDrill {
    /// Turns what the drill saw, the honest nodes' APIs at the end and their stores into the
    /// report.
    func analyse(
        ledger: DrillLedger, record: Record, final: Final, stores: StoreCheck, honest: [String], startWall: Date
    ) -> HostileDrillReport {
        var problems = record.problems + final.problems + stores.problems
        var findings = [String]()
        var disruptions = [String]()
        let hostileText = federation.nodeIDs[hostile]?.text ?? hostile
        let attacked = Set(DrillTarget.neighbours(of: hostile, in: federation.topology))
        func offset(ofISO text: String?) -> Double? {
            guard let text, let date = ISO8601.parse(text) else { return nil }
            return date.timeIntervalSince(startWall) * 1000
        }

        // Quarantines, and strikes against anyone else.
        var quarantines = [HostileDrillReport.QuarantineSeen]()
        var quarantinedAtWall = [String: Int64]()
        var sinceWall = [String: Int64]()
        var honestStrikes = [String]()
        for name in honest {
            let view = final.containment[name]
            var strikes = [String: UInt64]()
            for entry in view?.strikes ?? [] {
                if entry.partner == hostile {
                    strikes[entry.strikeClass] = entry.total
                } else {
                    honestStrikes.append(
                        "\(name) struck honest \(entry.partner): \(entry.total) \(entry.strikeClass)")
                }
            }
            guard let entry = view?.quarantines.first(where: { $0.partner == hostile }) else {
                quarantines.append(HostileDrillReport.QuarantineSeen(node: name, quarantined: false, strikes: strikes))
                if attacked.contains(name) { problems.append("\(name) did not quarantine \(hostile)") }
                continue
            }
            let at = offset(ofISO: entry.at)
            if let date = ISO8601.parse(entry.at) { quarantinedAtWall[name] = ISO8601.millis(date) }
            if let date = ISO8601.parse(entry.since) { sinceWall[name] = ISO8601.millis(date) }
            var during = "after the attacks"
            if let wall = quarantinedAtWall[name] {
                for attack in record.attacks {
                    for outcome in attack.outcomes where outcome.receiver == name {
                        if wall >= outcome.startWall && wall <= outcome.endWall { during = attack.name }
                    }
                }
                if during == "after the attacks", let at, at >= record.attacksEndedAt { during = "persisting" }
            }
            if !entry.automatic && attacked.contains(name) {
                problems.append("\(name)'s quarantine of \(hostile) was not automatic")
            }
            quarantines.append(
                HostileDrillReport.QuarantineSeen(
                    node: name, quarantined: true, atMillis: at, sinceMillis: offset(ofISO: entry.since),
                    at: entry.at, since: entry.since, reason: entry.reason, automatic: entry.automatic,
                    during: during, strikes: strikes))
        }
        problems += honestStrikes
        let attackedQuarantines = quarantines.filter { attacked.contains($0.node) }
        let containedAt =
            attackedQuarantines.allSatisfy(\.quarantined) ? attackedQuarantines.compactMap(\.atMillis).max() : nil

        // The attacks.
        let state = ledger.snapshot
        let honestSet = Set(honest)
        var attacks = [HostileDrillReport.Attack]()
        for attack in record.attacks {
            var outcomes = [HostileDrillReport.Outcome]()
            for pending in attack.outcomes {
                let receiver = pending.receiver
                let ids = Set(pending.opIDs)
                let entries = (final.audit[receiver] ?? []).filter { entry in
                    guard entry.timeMillis >= pending.startWall - 5, entry.timeMillis <= pending.endWall + 5 else {
                        return false
                    }
                    if !ids.isDisjoint(with: entry.opIDs) { return true }
                    return (entry.peer == hostile || entry.peer == hostileText)
                        && [.opsRejected, .peerRefused, .opsDeferred].contains(entry.kind)
                }
                let audit = entries.prefix(4).map { "\($0.kind.rawValue): \($0.detail.prefix(200))" }
                let detected = pending.expectedStrike != nil && pending.detectedAfter != nil
                var refused: Bool?
                var detail = [String]()
                if !pending.delivered {
                    detail.append("not sent")
                } else {
                    var checks = [Bool]()
                    if !pending.mustBeAbsent.isEmpty {
                        if let held = stores.held[receiver] {
                            let kept = pending.mustBeAbsent.filter(held.contains)
                            checks.append(kept.isEmpty)
                            detail.append(
                                kept.isEmpty
                                    ? "\(pending.mustBeAbsent.count) op(s) absent from \(receiver)'s store"
                                    : "\(kept.count) of \(pending.mustBeAbsent.count) op(s) in \(receiver)'s store: "
                                        + kept.map { String($0.hash.hex.prefix(12)) }.joined(separator: ", "))
                        } else {
                            detail.append("\(receiver)'s store could not be read")
                            checks.append(false)
                        }
                    }
                    if let converged = pending.converged {
                        checks.append(converged)
                        detail.append(
                            converged
                                ? "both creates kept, one state of the item at every honest node"
                                : "honest nodes hold different states of the item")
                    }
                    if let unchanged = pending.unchanged {
                        checks.append(unchanged)
                        detail.append(unchanged ? "items unchanged" : "items changed")
                    }
                    if let closed = pending.closedByReceiver {
                        checks.append(closed)
                        detail.append(closed ? "channel closed by \(receiver)" : "channel left open")
                    }
                    if checks.isEmpty {
                        detail.append(
                            pending.expectedStrike == nil ? "nothing was sent to refuse" : "nothing it may not hold")
                    } else {
                        refused = !checks.contains(false)
                    }
                }
                var finding = pending.finding
                if pending.delivered, finding == nil {
                    var missing = [String]()
                    if !detected {
                        let seen = pending.strikes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                        missing.append(
                            "not detected: no \(pending.expectedStrike?.rawValue ?? "?") strike "
                                + "(strikes seen: \(seen.isEmpty ? "none" : seen.joined(separator: ", ")))")
                    }
                    if refused == false { missing.append("not refused: \(detail.joined(separator: "; "))") }
                    if entries.isEmpty { missing.append("no custody entry") }
                    if !missing.isEmpty { finding = missing.joined(separator: "; ") }
                }
                if let finding { findings.append("\(attack.name) -> \(receiver): \(finding)") }
                if !pending.delivered {
                    problems.append("\(attack.name) -> \(receiver) was not sent: \(pending.sent)")
                }
                outcomes.append(
                    HostileDrillReport.Outcome(
                        receiver: receiver,
                        sentAtMillis: pending.sentAtMillis,
                        sent: pending.sent,
                        opIDs: pending.opIDs.map(\.hash.hex),
                        expectedStrike: pending.expectedStrike?.rawValue,
                        strikes: pending.strikes,
                        detected: detected,
                        detectedAfterMillis: pending.detectedAfter,
                        refused: refused,
                        refusedDetail: detail.joined(separator: "; "),
                        audited: !entries.isEmpty,
                        audit: Array(audit),
                        notes: pending.notes,
                        finding: finding
                    ))
            }
            let window = attack.startedAt..<attack.endedAt
            var latencies = [Double]()
            for (id, put) in state.puts where window.contains(put.writtenAt) {
                let template = ledger.templates[put.template]
                let seen = state.firstSeen[id] ?? [:]
                for holder in DrillLedger.expectedHolders(of: put, templates: ledger.templates, regime: state.regime)
                where holder != template.originator && honestSet.contains(holder) {
                    if let at = seen[holder] { latencies.append(at - put.writtenAt) }
                }
            }
            attacks.append(
                HostileDrillReport.Attack(
                    name: attack.name, description: attack.description, outcomes: outcomes,
                    startedAtMillis: attack.startedAt, endedAtMillis: attack.endedAt,
                    honestLatencyP50Millis: Self.percentile(latencies, 0.5),
                    honestLatencyP99Millis: Self.percentile(latencies, 0.99),
                    honestDeliveries: latencies.count,
                    honestChannelsLost: attack.honestChannelsLost))
            for lost in attack.honestChannelsLost {
                disruptions.append("\(attack.name): a channel between honest nodes died while it ran: \(lost)")
            }
        }
        problems += findings

        // Hostile ops that must not be in an honest store.
        var leaked = Set<String>()
        for (receiver, ops) in record.persistedOps {
            for (id, _) in ops where stores.held[receiver]?.contains(id) == true {
                leaked.insert("forged op \(id.hash.hex.prefix(12)) in \(receiver)'s store")
            }
        }
        var lateOp: String?
        if let late = record.lateOp {
            var parts = [
                "create \(late.id.hash.hex.prefix(12)) sent to \(late.sentTo) after \(late.quarantinedAt.joined(separator: ", ")) "
                    + "quarantined \(hostile) (\(late.acknowledged ? "acknowledged" : "not acknowledged"))"
            ]
            for name in honest where name != late.sentTo {
                let entries = (final.audit[name] ?? []).filter { $0.opIDs.contains(late.id) }
                let held = stores.held[name]?.contains(late.id) == true
                // Received before this node's own quarantine, it stays in the log for forensics
                // and out of the items; received after, it is a leak.
                let receivedAt = entries.first { $0.kind == .opsReceived }?.timeMillis
                let quarantinedAt = quarantinedAtWall[name] ?? .max
                let afterQuarantine = receivedAt.map { $0 >= quarantinedAt } ?? late.quarantinedAt.contains(name)
                if held && afterQuarantine {
                    leaked.insert(
                        "\(name) stored \(hostile)'s create \(late.id.hash.hex.prefix(12)) after quarantining it")
                }
                let refusal = entries.first { $0.kind == .opsRejected }.map { "refused: \($0.detail.prefix(80))" }
                let state =
                    held
                    ? "in its log, received before it quarantined \(hostile) (its quarantine left it out of its items)"
                    : "not in its store" + (refusal.map { ", \($0)" } ?? ", never offered")
                parts.append("at \(name): \(held && afterQuarantine ? "STORED after its quarantine" : state)")
            }
            lateOp = parts.joined(separator: "; ")
        }
        // Every op the partner sent after a node quarantined it stays out of that node's store.
        for (name, wall) in quarantinedAtWall {
            var sentAfter = Set<OpID>()
            for (_, ops) in record.persistedOps { for (id, at) in ops where at > wall { sentAfter.insert(id) } }
            for attack in record.attacks {
                for outcome in attack.outcomes where outcome.startWall > wall { sentAfter.formUnion(outcome.opIDs) }
            }
            for id in sentAfter where stores.held[name]?.contains(id) == true {
                leaked.insert(
                    "\(name) stored op \(id.hash.hex.prefix(12)) the hostile \(hostile) sent after the quarantine")
            }
            if let pending = stores.pendingFromHostile[name], pending > 0 {
                leaked.insert("\(name) keeps \(pending) ops of \(hostile) waiting for their items after the quarantine")
            }
        }

        // Honest puts: lost, leaked, digests.
        var lost = [String]()
        var expected = 0
        var achieved = 0
        var attackLatencies = [Double]()
        var baselineLatencies = [Double]()
        let attackWindow = record.turnedAt..<(containedAt ?? record.attacksEndedAt)
        var held = [String: [String: ItemView]]()
        for (name, items) in final.items {
            held[name] = Dictionary(items.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        }
        for (id, put) in state.puts.sorted(by: { $0.value.writtenAt < $1.value.writtenAt }) {
            let template = ledger.templates[put.template]
            let seen = state.firstSeen[id] ?? [:]
            let expectedHolders = DrillLedger.expectedHolders(
                of: put, templates: ledger.templates, regime: state.regime)
            for holder in expectedHolders.sorted() where holder != template.originator && honestSet.contains(holder) {
                expected += 1
                if let view = held[holder]?[id] {
                    if let digest = put.digest, view.digest != digest {
                        lost.append(
                            "\(id.prefix(12)) [\(template.label)] at \(holder) has digest \(view.digest.prefix(12)), "
                                + "its originator put \(digest.prefix(12))")
                    } else {
                        achieved += 1
                    }
                } else {
                    lost.append("\(id.prefix(12)) [\(template.label)] missing at \(holder)")
                }
                if let at = seen[holder], honestSet.contains(template.originator) || put.writtenAt < record.turnedAt {
                    if attackWindow.contains(put.writtenAt) { attackLatencies.append(at - put.writtenAt) }
                    if put.writtenAt < record.turnedAt { baselineLatencies.append(at - put.writtenAt) }
                }
            }
            for partner in seen.keys where !template.holders.contains(partner) {
                leaked.insert("\(id.prefix(12)) [\(template.label)] held by \(partner)")
            }
            for name in honest where held[name]?[id] != nil && !template.holders.contains(name) {
                leaked.insert("\(id.prefix(12)) [\(template.label)] held by \(name)")
            }
        }
        // Items no put made: the hostile partner's, which a node that quarantined it must not show.
        for name in honest {
            guard let sinceWall = sinceWall[name] else { continue }
            for view in final.items[name] ?? [] where state.puts[view.id] == nil {
                let created = ISO8601.parse(view.createdAt).map { ISO8601.millis($0) } ?? 0
                if view.originator == hostileText && created < sinceWall { continue }
                leaked.insert(
                    "\(name) shows item \(view.id.prefix(12)) by \(view.originator == hostileText ? hostile : view.originator.prefix(9) + "…") "
                        + "that no honest put made, after quarantining \(hostile)")
            }
        }
        // Honest nodes agree on what they share.
        var shared = 0
        var mismatches = [String]()
        var ids = Set<String>()
        for items in held.values { ids.formUnion(items.keys) }
        for id in ids.sorted() {
            let views = honest.compactMap { name in held[name]?[id].map { (name, $0.digest) } }
            guard views.count > 1 else { continue }
            shared += 1
            if Set(views.map(\.1)).count > 1 {
                mismatches.append(
                    "\(id.prefix(12)): " + views.map { "\($0.0) \($0.1.prefix(12))" }.joined(separator: ", "))
            }
        }

        if !record.converged, let why = record.notConverged { problems.append(why) }
        if !lost.isEmpty { problems.append("\(lost.count) honest deliveries are missing or differ") }
        if !leaked.isEmpty { problems.append("\(leaked.count) leaks") }
        if !mismatches.isEmpty { problems.append("\(mismatches.count) items differ between honest nodes") }
        if !stores.twin.mismatches.isEmpty {
            problems.append(
                "\(stores.twin.mismatches.count) items differ from the honest nodes' twins without the attacker")
        }
        if let error = state.lastPutError { problems.append("last failed put: \(error)") }
        let failing = problems.filter { !$0.hasPrefix("last failed put") }
        let percentile = Self.percentile
        return HostileDrillReport(
            scenario: DrillScenario.hostilePartner.rawValue,
            hostile: hostile,
            federation: federation.topology.federation,
            partners: federation.topology.partners.map(\.name),
            honest: honest,
            turnedAtMillis: record.turnedAt,
            turnedAt: ISO8601.format(millis: Int64(record.turnedWall.timeIntervalSince1970 * 1000)),
            attacksEndedAtMillis: record.attacksEndedAt,
            containedAtMillis: containedAt,
            attacks: attacks,
            persistedForgedOps: record.persisted,
            quarantines: quarantines,
            lateOp: lateOp,
            connectionsRefusedAfterQuarantine: record.refusedAfterQuarantine,
            opsWritten: state.puts.count,
            putFailures: state.putFailures,
            deliveriesExpected: expected,
            deliveriesAchieved: achieved,
            baselineLatencyP50Millis: percentile(baselineLatencies, 0.5),
            baselineLatencyP99Millis: percentile(baselineLatencies, 0.99),
            attackLatencyP50Millis: percentile(attackLatencies, 0.5),
            attackLatencyP99Millis: percentile(attackLatencies, 0.99),
            attackLatencyMaxMillis: attackLatencies.max(),
            attackDeliveries: attackLatencies.count,
            lost: lost.count,
            leaked: leaked.count,
            lostDetail: Array(lost.prefix(10)),
            leakedDetail: Array(leaked.sorted().prefix(10)),
            sharedItems: shared,
            digestMismatches: mismatches.count,
            digestDetail: Array(mismatches.prefix(10)),
            twinItems: stores.twin.items,
            twinMismatches: stores.twin.mismatches.count,
            twinDetail: Array(stores.twin.mismatches.prefix(10)),
            attackerItemsOutsideTwin: stores.twin.attackerItems,
            honestStrikes: honestStrikes,
            findings: findings,
            disruptions: disruptions,
            problems: problems,
            passed: failing.isEmpty,
            directory: nil
        )
    }

    /// The `p` quantile (nearest rank) of `values`.
    static func percentile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, max(0, Int((Double(sorted.count) * p).rounded(.up)) - 1))]
    }
}
