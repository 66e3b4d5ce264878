import Foundation
import LiaisonCore
import LiaisonTestSupport
import Testing

/// I1 Convergence: item state is a join-semilattice over the set of its ops.
@Suite("Merge laws over random op sets")
struct MergeLawTests {
    /// Seeded cases per law.
    static let cases: UInt64 = 300

    @Test("apply order does not matter")
    func applyOrderDoesNotMatter() throws {
        for seed in 0..<Self.cases {
            let set = try RandomOpSet(seed: seed)
            let reference = try ItemState.build(set.create, set.ops)
            var rng = SeededGenerator(seed: seed &+ 0x5EED)
            var orders = [Array(set.ops.reversed())]
            for _ in 0..<3 { orders.append(set.ops.shuffled(using: &rng)) }
            for order in orders {
                let state = try ItemState.build(set.create, order)
                #expect(state.digest == reference.digest, "seed \(seed)")
                #expect(state == reference, "seed \(seed)")
            }
        }
    }

    @Test("applying ops again changes nothing")
    func duplicationDoesNotMatter() throws {
        for seed in 1_000..<1_000 + Self.cases {
            let set = try RandomOpSet(seed: seed)
            let reference = try ItemState.build(set.create, set.ops)
            var rng = SeededGenerator(seed: seed)
            // Every op (the create too) delivered two or three times, in a random order.
            var deliveries = set.all + set.all + set.all.filter { _ in Bool.random(using: &rng) }
            deliveries.shuffle(using: &rng)
            let duplicated = try ItemState.build(set.create, deliveries)
            #expect(duplicated == reference, "seed \(seed)")
            #expect(duplicated.digest == reference.digest, "seed \(seed)")
            for op in set.all {
                var again = reference
                let changed = try again.apply(op)
                #expect(!changed, "seed \(seed): re-applying \(op.body.change.kindName) reported a change")
                #expect(again == reference, "seed \(seed)")
            }
        }
    }

    @Test("merged(with:) is commutative, associative, idempotent and equals applying all ops")
    func mergeIsAJoin() throws {
        for seed in 2_000..<2_000 + Self.cases {
            let set = try RandomOpSet(seed: seed)
            let reference = try ItemState.build(set.create, set.ops)
            var rng = SeededGenerator(seed: seed)
            // Each op lands in one of three replicas, and sometimes in a second one as well.
            var parts: [[VerifiedOp]] = [[], [], []]
            for op in set.ops {
                let home = Int.random(in: 0..<3, using: &rng)
                parts[home].append(op)
                if Int.random(in: 0..<5, using: &rng) == 0 { parts[(home + 1) % 3].append(op) }
            }
            let a = try ItemState.build(set.create, parts[0].shuffled(using: &rng))
            let b = try ItemState.build(set.create, parts[1].shuffled(using: &rng))
            let c = try ItemState.build(set.create, parts[2].shuffled(using: &rng))

            #expect(a.merged(with: b) == b.merged(with: a), "seed \(seed): not commutative")
            #expect(a.merged(with: c) == c.merged(with: a), "seed \(seed): not commutative")
            #expect(
                a.merged(with: b).merged(with: c) == a.merged(with: b.merged(with: c)),
                "seed \(seed): not associative"
            )
            #expect(a.merged(with: a) == a, "seed \(seed): not idempotent")
            let ab = a.merged(with: b)
            #expect(ab.merged(with: b) == ab, "seed \(seed): merging a part again changed the join")
            let all = c.merged(with: a).merged(with: b)
            #expect(all == reference, "seed \(seed): join differs from applying all ops")
            #expect(all.digest == reference.digest, "seed \(seed)")
            // A replica that holds everything absorbs any part.
            #expect(reference.merged(with: b) == reference, "seed \(seed)")
        }
    }

    @Test("holding some field values redacted changes no digest, and merging restores the values")
    func redactedCopiesConverge() throws {
        for seed in 3_000..<3_000 + Self.cases {
            let set = try RandomOpSet(seed: seed)
            let reference = try ItemState.build(set.create, set.ops)
            var rng = SeededGenerator(seed: seed)
            let redacted = try set.all.map { op in
                try op.redacting(RandomOpSet.fieldNames.filter { _ in Bool.random(using: &rng) })
            }
            let partial = try ItemState.build(redacted[0], redacted.dropFirst().shuffled(using: &rng))
            #expect(partial.digest == reference.digest, "seed \(seed)")
            #expect(partial.merged(with: reference) == reference, "seed \(seed)")
            #expect(reference.merged(with: partial) == reference, "seed \(seed)")
            var healed = partial
            for op in set.all { try healed.apply(op) }
            #expect(healed == reference, "seed \(seed)")
        }
    }

    /// The laws above only mean something if the generated sets exercise the rules.
    @Test("the random op sets exercise every kind of op and the tricky cases")
    func generatorCoverage() throws {
        var kinds = [String: Int]()
        var annotated = 0
        var sameStampDifferentAuthors = 0
        var withdrawn = 0
        var addSurvivedRemove = 0
        var redactableStates = 0
        for seed in 0..<Self.cases {
            let set = try RandomOpSet(seed: seed)
            #expect((5...40).contains(set.ops.count), "seed \(seed)")
            for op in set.all { kinds[op.body.change.kindName, default: 0] += 1 }
            if set.ops.contains(where: { $0.body.author != set.create.body.author }) { annotated += 1 }
            let byStamp = Dictionary(grouping: set.all, by: \.body.hlc)
            if byStamp.values.contains(where: { Set($0.map(\.body.author)).count > 1 }) {
                sameStampDifferentAuthors += 1
            }
            let state = try ItemState.build(set.create, set.ops)
            if state.isWithdrawn { withdrawn += 1 }
            if !state.fields.isEmpty { redactableStates += 1 }
            // A tag that some removal named yet is still present: an add the removal had not seen.
            let removed = set.ops.flatMap { op -> [String] in
                if case .removeTags(let removals) = op.body.change {
                    return removals.filter { !$0.observed.isEmpty }.map(\.tag)
                }
                return []
            }
            if Set(removed).intersection(state.tags).isEmpty == false { addSurvivedRemove += 1 }
        }
        for kind in ["create", "set-fields", "add-tags", "remove-tags", "delete", "change-markings", "recall"] {
            #expect(kinds[kind, default: 0] > 20, "kind \(kind) appears only \(kinds[kind, default: 0]) times")
        }
        #expect(annotated > 100)
        #expect(sameStampDifferentAuthors > 30)
        #expect(withdrawn > 20 && withdrawn < 200)
        #expect(addSurvivedRemove > 30)
        #expect(redactableStates > 100)
    }
}
