import Foundation
import LiaisonCore
import LiaisonStore
import LiaisonTestSupport
import Testing

/// The SQLite store's layout (local item numbers, id prefixes as keys) against the memory
/// store, which keeps everything in dictionaries: the same history gives the same answers.
@Suite("SQLite store against the memory store")
struct StoreDifferentialTests {
    @Test(
        "random histories over several items, in random batches and orders, then a rebuild and the whole history again: both stores answer alike",
        arguments: 0..<16 as Range<UInt64>
    )
    func sameAnswers(seed: UInt64) throws {
        var rng = SeededGenerator(seed: 91_000 + seed)
        let collections = ["reports", "weather", "indicators"]
        let sets = try (0..<6).map {
            try RandomOpSet(seed: seed * 100 + UInt64($0), opCount: 3...20, collection: collections[$0 % 3])
        }
        let memory = MemoryStore()
        let sqlite = try StoreKind.sqlite.make()
        var time: Int64 = 1_700_000_000_000

        func commitBoth(_ ops: [VerifiedOp]) throws {
            var remaining = ops
            while !remaining.isEmpty {
                let batch = Array(remaining.prefix(Int.random(in: 1...8, using: &rng)))
                remaining.removeFirst(batch.count)
                let source: OpSource = Bool.random(using: &rng) ? .local : .peer(TestNode.bob.nodeID)
                let expected = try memory.commit(CommitBatch(ops: batch, source: source, timeMillis: time))
                let got = try sqlite.commit(CommitBatch(ops: batch, source: source, timeMillis: time))
                #expect(got == expected, "seed \(seed): a batch of \(batch.count) committed differently")
                time += 1
            }
        }
        func compare(_ when: String) throws {
            // Items listed newest first; the stores break ties of the same stamp differently
            // (both orders are newest first), so lists are compared as sets.
            func sorted(_ items: [ItemState]) -> [ItemState] { items.sorted { $0.id < $1.id } }
            var expected = try StoreFingerprint(memory)
            var got = try StoreFingerprint(sqlite)
            expected.items = sorted(expected.items)
            got.items = sorted(got.items)
            #expect(got == expected, "seed \(seed) \(when): stores differ")
            for set in sets {
                let id = set.create.body.itemID
                #expect(try sqlite.item(id) == memory.item(id), "seed \(seed) \(when): item \(id.text)")
                #expect(try sqlite.ops(ofItem: id) == memory.ops(ofItem: id), "seed \(seed) \(when): ops of \(id.text)")
            }
            for op in sets.flatMap(\.all) {
                #expect(
                    try sqlite.op(op.id) == memory.op(op.id), "seed \(seed) \(when): op \(op.id.hash.hex.prefix(8))")
            }
            let ids = Set(sets.map(\.create.body.itemID))
            #expect(try sqlite.items(ids) == memory.items(ids))
            // What a sender judges eligibility by: the summaries the SQLite store keeps beside
            // its states, written by the same commits, are those of its states.
            let states = try sqlite.items(ids)
            #expect(try sqlite.itemSummaries(ids) == states.mapValues(\.summary), "seed \(seed) \(when): summaries")
            #expect(try sqlite.itemSummaries(ids) == memory.itemSummaries(ids), "seed \(seed) \(when): summaries")
            for tag in RandomOpSet.tagNames {
                for withdrawn in [false, true] {
                    let query = ItemQuery(tag: tag, includeWithdrawn: withdrawn)
                    #expect(
                        try sorted(sqlite.items(query)) == sorted(memory.items(query)),
                        "seed \(seed) \(when): tag \(tag)")
                }
            }
            for author in [TestNode.alice, .bob, .carol] {
                #expect(
                    try sqlite.items(authoredBy: author.nodeID, since: .zero)
                        == memory.items(authoredBy: author.nodeID, since: .zero))
            }
            #expect(try sqlite.waitingOps().map(\.op.id) == memory.waitingOps().map(\.op.id))
            // What a link's session reads, for links carrying every collection, none, or some:
            // the same ops whole, the same ops without their bytes, the same coverage.
            let highest = try memory.highestSequence()
            for peer in [TestNode.alice, .bob, .carol] {
                for carrying in [nil, [], ["reports"], ["weather", "indicators"]] as [Set<String>?] {
                    var after: UInt64 = 0
                    while after < highest {
                        let limit = Int.random(in: 1...12, using: &rng)
                        let scan = UInt64.random(in: 1...40, using: &rng)
                        let expected = try memory.outboxRead(
                            after: after, limit: limit, echoesOf: peer.nodeID, scan: scan, carrying: carrying)
                        let got = try sqlite.outboxRead(
                            after: after, limit: limit, echoesOf: peer.nodeID, scan: scan, carrying: carrying)
                        let what =
                            "seed \(seed) \(when): read for \(peer.name) carrying \(carrying ?? ["all"]) after \(after)"
                        #expect(got.ops == expected.ops, "\(what): ops")
                        #expect(got.outside == expected.outside, "\(what): outside")
                        #expect(got.coveredThrough == expected.coveredThrough, "\(what): coverage")
                        if carrying == nil { #expect(got.outside.isEmpty) }
                        after = max(expected.coveredThrough, after + 1)
                    }
                }
            }
        }

        try commitBoth(sets.flatMap(\.all).shuffled(using: &rng))
        try compare("after the history")

        // Leave out carol's ops on some items, and one item's create (the item goes, its ops stay).
        let chosen = Set(sets.map(\.create.body.itemID).filter { _ in Bool.random(using: &rng) })
            .union([sets[0].create.body.itemID])
        let removedCreate = sets[0].create.id
        let excluded: @Sendable (VerifiedOp) -> Bool = {
            $0.body.author == TestNode.carol.nodeID || $0.id == removedCreate
        }
        let event = CustodyEvent(kind: .partnerQuarantined, peer: "carol", detail: "test")
        let expected = try memory.rebuild(
            items: chosen, excluding: excluded, listing: excluded, custody: event, metadata: nil, timeMillis: time)
        let got = try sqlite.rebuild(
            items: chosen, excluding: excluded, listing: excluded, custody: event, metadata: nil, timeMillis: time)
        #expect(got == expected, "seed \(seed): the rebuild differs")
        #expect(try sqlite.item(sets[0].create.body.itemID) == nil)
        time += 1
        try compare("after the rebuild")

        // Everything again: duplicates, and nothing changes alike.
        try commitBoth(sets.flatMap(\.all).shuffled(using: &rng))
        try compare("after the history again")
    }
}
