import Foundation
import GRDB
import LiaisonCore
import LiaisonStore
import LiaisonTestSupport
import Testing

/// `Store.itemsChanged`: a collection's items in the order they changed at this node, after a
/// mark, as a feed (TAXII) pages through them. An item that arrives late with an old stamp
/// still comes after everything a reader has seen.
@Suite("Items in the order they changed here")
struct StoreChangedItemsTests {
    @Test(
        "a collection's items come in the order they changed here, a change moves an item to the end, and pages after a mark miss none and repeat none",
        arguments: StoreKind.allCases)
    func orderAndPaging(kind: StoreKind) throws {
        let store = try kind.make()
        var factory = OpFactory(seed: 41)
        var ids = [ItemID]()
        // Stamps out of order: the fourth item arrives last but carries the oldest stamp.
        for (index, stamp) in [10, 11, 12, 1, 13].enumerated() {
            let op = try factory.create(
                by: .alice, collection: "stix", tags: index.isMultiple(of: 2) ? ["even"] : [], at: .test(UInt64(stamp)))
            ids.append(op.body.itemID)
            _ = try store.commit(CommitBatch(ops: [op], source: .local, timeMillis: 1_700_000_000_000))
        }
        let other = try factory.create(by: .alice, collection: "reports", at: .test(14))
        _ = try store.commit(CommitBatch(ops: [other], source: .local, timeMillis: 1_700_000_000_000))

        let all = try store.itemsChanged(ChangeQuery(collection: "stix", limit: 100))
        #expect(all.map(\.item.id) == ids, "not in the order they changed here")
        #expect(all.map(\.mark) == all.map(\.mark).sorted() && Set(all.map(\.mark)).count == all.count)
        #expect(try store.collections() == ["reports", "stix"])

        // A change of the first item moves it after the others.
        let first = try #require(try store.item(ids[0]))
        let tagged = try factory.addTags(["seen"], to: first, by: .alice, at: .test(20))
        _ = try store.commit(CommitBatch(ops: [tagged], source: .local, timeMillis: 1_700_000_000_001))
        let after = try store.itemsChanged(ChangeQuery(collection: "stix", limit: 100))
        #expect(after.map(\.item.id) == Array(ids[1...]) + [ids[0]])
        #expect(after.last!.mark > all.last!.mark)

        // Pages of two after the last mark seen: every item once.
        var seen = [ItemID]()
        var mark: Int64 = 0
        while true {
            let page = try store.itemsChanged(ChangeQuery(collection: "stix", after: mark, limit: 2))
            guard let last = page.last else { break }
            seen += page.map(\.item.id)
            mark = last.mark
        }
        #expect(seen == after.map(\.item.id))
        #expect(try store.itemsChanged(ChangeQuery(collection: "stix", after: mark, limit: 2)).isEmpty)

        // With a tag.
        let even = try store.itemsChanged(ChangeQuery(collection: "stix", tag: "even", limit: 100))
        #expect(even.map(\.item.id) == [ids[2], ids[4], ids[0]])
    }

    @Test("marks keep growing across a reopen of an SQLite store, even when the clock is behind them")
    func marksSurviveReopen() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        var factory = OpFactory(seed: 42)
        var last: Int64 = 0
        do {
            let store = try SQLiteStore(path: path, create: true)
            for stamp in 0..<3 {
                _ = try store.commit(
                    CommitBatch(
                        ops: [try factory.create(by: .alice, collection: "stix", at: .test(UInt64(stamp)))],
                        source: .local, timeMillis: 1_700_000_000_000))
            }
            last = try #require(try store.itemsChanged(ChangeQuery(collection: "stix", limit: 10)).last).mark
        }
        // A mark far ahead of the clock (as after the clock was set back).
        do {
            let queue = try DatabaseQueue(path: path)
            try queue.write {
                try $0.execute(
                    sql: "UPDATE meta SET value = ? WHERE key = 'items_changed_mark'", arguments: [Int64.max / 2])
            }
            try queue.close()
        }
        let store = try SQLiteStore(path: path, create: false)
        _ = try store.commit(
            CommitBatch(
                ops: [try factory.create(by: .alice, collection: "stix", at: .test(9))], source: .local,
                timeMillis: 1_700_000_000_000))
        let marks = try store.itemsChanged(ChangeQuery(collection: "stix", limit: 10)).map(\.mark)
        #expect(marks.count == 4)
        #expect(marks[2] == last)
        #expect(marks[3] == Int64.max / 2 + 1, "a mark went back with the clock")
    }
}
