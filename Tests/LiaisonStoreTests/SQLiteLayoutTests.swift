import Foundation
import GRDB
import LiaisonCore
import LiaisonTestSupport
import Testing

@testable import LiaisonStore

@Suite("SQLite store migrations")
struct SQLiteMigrationTests {
    /// A history with tags, a second op on an item, an op from a peer and an item a rebuild
    /// removed (its ops stay in the log without an item row), committed to a memory store.
    private func history() throws -> (store: MemoryStore, removed: ItemID, bob: NodeID) {
        let store = MemoryStore()
        var factory = OpFactory(seed: 23)
        var creates = [VerifiedOp]()
        for index in 0..<6 {
            let op = try factory.create(
                by: .alice, tags: index.isMultiple(of: 2) ? ["even"] : [], at: .test(UInt64(index)))
            creates.append(op)
            _ = try store.commit(CommitBatch(ops: [op], source: .local, timeMillis: 1_700_000_000_000))
        }
        let first = try #require(try store.item(creates[0].body.itemID))
        let tagged = try factory.addTags(["late"], to: first, by: .alice, at: .test(10))
        _ = try store.commit(
            CommitBatch(ops: [tagged], source: .peer(TestNode.bob.nodeID), timeMillis: 1_700_000_000_001))
        let removed = creates[3].body.itemID
        _ = try store.rebuild(
            items: [removed], excluding: { $0.id == creates[3].id }, listing: { _ in false },
            custody: CustodyEvent(kind: .partnerQuarantined, detail: "test"), metadata: nil,
            timeMillis: 1_700_000_000_002)
        return (store, removed, TestNode.bob.nodeID)
    }

    /// Writes `source`'s items, ops and tags into a new file in the v2 layout, as a store
    /// written before v3 holds them, with the log's next sequence past its last op.
    private func v2File(from source: MemoryStore, nextSequence: Int64) throws -> String {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        let queue = try DatabaseQueue(path: path, configuration: .waitingForLocks)
        try SQLiteStore.migrator.migrate(queue, upTo: "v2")
        try queue.write { db in
            for item in try source.items(ItemQuery(includeWithdrawn: true, limit: 100)) {
                try db.execute(
                    sql: "INSERT INTO items(id, collection, withdrawn, last_change, state) VALUES (?, ?, ?, ?, ?)",
                    arguments: [
                        Data(item.id.bytes), item.collection, item.isWithdrawn,
                        Int64(bitPattern: item.lastChange.hlc.rawValue), try item.storageEncoding(),
                    ])
                for tag in item.tags {
                    try db.execute(
                        sql: "INSERT INTO item_tags(item_id, tag) VALUES (?, ?)", arguments: [Data(item.id.bytes), tag])
                }
            }
            for stored in try source.ops(after: 0, limit: 100) {
                let op = stored.op
                try db.execute(
                    sql: """
                        INSERT INTO ops(seq, op_id, item_id, author, hlc, redacted, received_from, encoded, reshapes)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        Int64(stored.sequence), op.id.hash.data, Data(op.body.itemID.bytes), op.body.author.hash.data,
                        Int64(bitPattern: op.body.hlc.rawValue), op.redactedFields.count,
                        stored.receivedFrom?.hash.data, op.encoded, op.body.change.mayChangeEligibility ? 1 : 0,
                    ])
            }
            try db.execute(
                sql: "UPDATE sqlite_sequence SET seq = ? WHERE name = 'ops'", arguments: [nextSequence])
        }
        try queue.close()
        return path
    }

    @Test(
        "a v2 store opens as v3 with every item, op, sequence, tag and lookup as before, and new ops after every old sequence"
    )
    func v2Migrates() throws {
        let (source, removed, bob) = try history()
        let highest = try source.highestSequence()
        // Ops relogged or dropped at the log's end leave sequences that were handed out.
        let path = try v2File(from: source, nextSequence: Int64(highest) + 5)

        let store = try SQLiteStore(path: path, create: false)
        let all = ItemQuery(includeWithdrawn: true, limit: 100)
        #expect(try store.items(all) == source.items(all))
        // v5 gave every item held its summary, from its state.
        let ids = Set(try source.items(all).map(\.id))
        #expect(try store.itemSummaries(ids) == source.items(ids).mapValues(\.summary))
        #expect(try store.itemSummaries(ids).count == ids.count)
        #expect(try store.ops(after: 0, limit: 100) == source.ops(after: 0, limit: 100))
        #expect(try store.item(removed) == nil)
        #expect(try store.ops(ofItem: removed) == source.ops(ofItem: removed))
        #expect(try !store.ops(ofItem: removed).isEmpty)
        for stored in try source.ops(after: 0, limit: 100) {
            #expect(try store.op(stored.op.id) == stored)
            #expect(try store.ops(ofItem: stored.op.body.itemID) == source.ops(ofItem: stored.op.body.itemID))
        }
        #expect(try store.items(ItemQuery(tag: "even")) == source.items(ItemQuery(tag: "even")))
        #expect(try store.items(ItemQuery(tag: "late")).count == 1)
        #expect(
            try store.items(authoredBy: TestNode.alice.nodeID, since: .zero)
                == source.items(authoredBy: TestNode.alice.nodeID, since: .zero))
        #expect(try store.items(authoredBy: bob, since: .zero).isEmpty)

        var factory = OpFactory(seed: 99)
        let next = try factory.create(by: .alice, at: .test(50))
        let result = try store.commit(CommitBatch(ops: [next], source: .local, timeMillis: 1_700_000_000_003))
        #expect(result.applied.map(\.sequence) == [highest + 6])
    }

    @Test(
        "a missing, damaged or another item's summary is made again from the item's state; with the state damaged too, the read fails as corrupt and names the item"
    )
    func summariesFallBackToStates() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        let store = try SQLiteStore(path: path, create: true)
        var factory = OpFactory(seed: 31)
        var ids = [ItemID]()
        for index in 0..<3 {
            let op = try factory.create(by: .alice, tags: ["t\(index)"], at: .test(UInt64(index)))
            ids.append(op.body.itemID)
            _ = try store.commit(CommitBatch(ops: [op], source: .local, timeMillis: 1_700_000_000_000))
        }
        let states = try store.items(Set(ids))
        #expect(states.count == 3)
        let queue = try DatabaseQueue(path: path, configuration: .waitingForLocks)
        defer { try? queue.close() }
        try queue.write { db in
            // The third item's row holds the first's summary, well formed but another item's.
            try db.execute(
                sql: "UPDATE items SET summary = (SELECT summary FROM items WHERE id = ?) WHERE id = ?",
                arguments: [Data(ids[0].bytes), Data(ids[2].bytes)])
            try db.execute(sql: "UPDATE items SET summary = NULL WHERE id = ?", arguments: [Data(ids[0].bytes)])
            try db.execute(sql: "UPDATE items SET summary = x'FFFF' WHERE id = ?", arguments: [Data(ids[1].bytes)])
        }
        #expect(try store.itemSummaries(Set(ids)) == states.mapValues(\.summary))

        try queue.write { db in
            try db.execute(sql: "UPDATE items SET state = x'FFFF' WHERE id = ?", arguments: [Data(ids[0].bytes)])
        }
        #expect {
            try store.itemSummaries(Set(ids))
        } throws: { error in
            guard let error = error as? LiaisonError else { return false }
            return error.code == .corrupt && error.message.contains(ids[0].text)
        }
        // Items whose summaries are sound are read as before.
        #expect(try store.itemSummaries([ids[2]]) == [ids[2]: states[ids[2]]!.summary])
    }

    @Test("a store whose item state cannot be decoded still opens at v5; that item's summary read fails as corrupt")
    func v5MigratesPastADamagedState() throws {
        let (source, _, _) = try history()
        let path = try v2File(from: source, nextSequence: Int64(try source.highestSequence()))
        let all = try source.items(ItemQuery(includeWithdrawn: true, limit: 100))
        let damaged = all[0].id
        let queue = try DatabaseQueue(path: path, configuration: .waitingForLocks)
        try queue.write { db in
            try db.execute(sql: "UPDATE items SET state = x'FFFF' WHERE id = ?", arguments: [Data(damaged.bytes)])
        }
        try queue.close()

        let store = try SQLiteStore(path: path, create: false)
        let others = Set(all.dropFirst().map(\.id))
        #expect(try store.itemSummaries(others) == source.items(others).mapValues(\.summary))
        #expect {
            try store.itemSummaries([damaged])
        } throws: { ($0 as? LiaisonError)?.code == .corrupt }
    }
}

@Suite("SQLite checkpoints")
struct SQLiteCheckpointTests {
    @Test("every commit is synced: the writer runs with synchronous = FULL, not the NORMAL GRDB sets for WAL")
    func writerSyncsEveryCommit() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        #expect(try SQLiteStore(path: path, create: true).writerSynchronous() == 2)
        #expect(try SQLiteStore(path: path, create: false).writerSynchronous() == 2)
    }

    @Test(
        "a link checkpoint's advance, written without a sync of its own, is kept and leaves the writer syncing every commit, also when it fails"
    )
    func checkpointAdvanceLeavesCommitsSynced() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        do {
            let store = try SQLiteStore(path: path, create: true)
            try store.advanceCheckpoint(link: "sent:bravo", to: 7)
            try store.advanceCheckpoint(link: "sent:bravo", to: 5)
            #expect(try store.checkpoint(link: "sent:bravo") == 7)
            #expect(try store.writerSynchronous() == 2)
        }
        // Another connection makes the next advance fail: the writer must still sync after it.
        let other = try DatabaseQueue(path: path)
        try other.write { db in
            try db.execute(
                sql: """
                    CREATE TRIGGER refuse BEFORE INSERT ON checkpoints
                    BEGIN SELECT RAISE(ABORT, 'refused by the test'); END
                    """)
        }
        let store = try SQLiteStore(path: path, create: false)
        #expect(try store.checkpoint(link: "sent:bravo") == 7)
        #expect(throws: LiaisonError.self) { try store.advanceCheckpoint(link: "received:bravo", to: 3) }
        #expect(try store.writerSynchronous() == 2)
        #expect(try store.checkpoint(link: "received:bravo") == 0)
    }

    @Test("an unsynced write runs with synchronous = NORMAL, and a synced write after it is FULL whatever was left")
    func unsyncedWritesAreNormalAndSyncedWritesFull() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        let store = try SQLiteStore(path: path, create: true)
        let during = try store.write("probing", synced: false) { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
        #expect(during == 1)
        // Whatever state the writer was left in, a synced write begins by setting FULL.
        try store.onWriter { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        _ = try store.appendCustody(
            CustodyEvent(kind: .opsRejected, peer: "bravo", detail: "a synced write"), timeMillis: 1)
        #expect(try store.writerSynchronous() == 2)
    }

    @Test(
        "the WAL is copied back off the writer: a settled checkpoint copies every frame, and later writes start the WAL again instead of growing it"
    )
    func checkpointsOffTheWriter() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        let store = try SQLiteStore(path: path, create: true)
        var factory = OpFactory(seed: 5)
        let value = JSONText.string(String(repeating: "x", count: 2_000))
        var stamp: UInt64 = 0
        func commitSome() throws {
            var ops = [VerifiedOp]()
            for _ in 0..<20 {
                stamp += 1
                ops.append(try factory.create(by: .alice, fields: [(name: "body", value: value)], at: .test(stamp)))
            }
            _ = try store.commit(CommitBatch(ops: ops, source: .local, timeMillis: 1_700_000_000_000))
        }
        func walBytes() throws -> Int {
            try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int ?? 0
        }
        try commitSome()
        let first = try #require(store.checkpointer.settle())
        #expect(first.walFrameCount > 0)
        #expect(first.checkpointedFrameCount == first.walFrameCount)
        let afterFirst = try walBytes()
        for _ in 0..<10 {
            try commitSome()
            let settled = try #require(store.checkpointer.settle())
            #expect(settled.checkpointedFrameCount == settled.walFrameCount)
        }
        // Ten more commits of about 50 KB each: without checkpoints the WAL would hold them all.
        #expect(try walBytes() <= afterFirst + 100_000)
        #expect(store.checkpointer.failures == 0)
        let reopened = try SQLiteStore(path: path, create: false)
        #expect(try reopened.highestSequence() == 220)
    }

    @Test(
        "a store released closes its checkpointer's connection with its own: SQLite removes the WAL on return, and the checkpointer opens none again"
    )
    func releasedStoreIsClosedOnDisk() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        var factory = OpFactory(seed: 6)
        var store: SQLiteStore? = try SQLiteStore(path: path, create: true)
        let op = try factory.create(by: .alice, fields: [(name: "body", value: JSONText.string("x"))], at: .test(1))
        _ = try store?.commit(CommitBatch(ops: [op], source: .local, timeMillis: 1_700_000_000_000))
        // A checkpoint has run, so the checkpointer holds a connection of its own; held here
        // too, as a checkpoint in flight holds it when the store goes.
        let checkpointer = try #require(store?.checkpointer)
        _ = try #require(checkpointer.settle())
        #expect(FileManager.default.fileExists(atPath: path + "-wal"))
        store = nil
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"), "the WAL outlived the store")
        #expect(!FileManager.default.fileExists(atPath: path + "-shm"))
        #expect(checkpointer.settle() == nil, "a closed checkpointer opened a connection again")
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
    }
}

extension Configuration {
    /// A raw connection to a store a node's checkpointer may be copying back at that moment:
    /// it waits for the lock, as the store's own connections do.
    fileprivate static var waitingForLocks: Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        return configuration
    }
}

@Suite("SQLite id keys")
struct SQLiteKeyTests {
    @Test(
        "ids that share their first eight bytes (as a partner grinding its own ids could make) are still told apart: every lookup answers for the whole id"
    )
    func sharedPrefixes() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        let store = try SQLiteStore(path: path, create: true)
        var factory = OpFactory(seed: 31)
        var creates = [VerifiedOp]()
        for index in 0..<4 {
            creates.append(try factory.create(by: .alice, tags: ["t\(index)"], at: .test(UInt64(index))))
        }
        _ = try store.commit(CommitBatch(ops: creates, source: .local, timeMillis: 1_700_000_000_000))
        // The last item and an op not stored yet own the keys every row will carry: a lookup
        // that took the first row under a key would find another item, or a stored op.
        let last = try #require(try store.item(creates[3].body.itemID))
        let more = try factory.addTags(["more"], to: last, by: .alice, at: .test(11))
        let queue = try DatabaseQueue(path: path, configuration: .waitingForLocks)
        try queue.write { db in
            try db.execute(sql: "UPDATE items SET key = ?", arguments: [SQLiteTransaction.key(last.id)])
            try db.execute(sql: "UPDATE ops SET op_key = ?", arguments: [SQLiteTransaction.key(more.id)])
        }
        try queue.close()

        #expect(try store.item(last.id) == last)
        #expect(try store.items([last.id]) == [last.id: last])
        #expect(try store.ops(ofItem: last.id).map(\.op.id) == [creates[3].id])
        #expect(try store.op(more.id) == nil)
        let applied = try store.commit(CommitBatch(ops: [more], source: .local, timeMillis: 1_700_000_000_001))
        #expect(applied.applied.map(\.id) == [more.id], "a new op whose key other ops carry is not a duplicate")
        #expect(try store.op(more.id)?.op == more)
        #expect(try store.items(ItemQuery(tag: "more")).map(\.id) == [last.id])
        #expect(try store.ops(ofItem: last.id).map(\.op.id) == [creates[3].id, more.id])
        let again = try store.commit(CommitBatch(ops: [more], source: .local, timeMillis: 1_700_000_000_002))
        #expect(again.duplicates == [more.id] && again.applied.isEmpty)
        #expect(try store.items(ItemQuery(limit: 10)).count == 4)
    }
}
