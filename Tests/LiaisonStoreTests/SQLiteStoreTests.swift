import Foundation
import GRDB
import LiaisonCore
import LiaisonTestSupport
import Synchronization
import Testing

@testable import LiaisonStore

@Suite("SQLite store files")
struct SQLiteStoreTests {
    private func populatedStore() throws -> (path: String, store: SQLiteStore, ops: [VerifiedOp]) {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        let store = try SQLiteStore(path: path, create: true)
        var factory = OpFactory(seed: 11)
        var ops = [VerifiedOp]()
        for index in 0..<5 {
            let op = try factory.create(by: .alice, tags: ["t\(index)"], at: .test(UInt64(index)))
            ops.append(op)
            _ = try store.commit(CommitBatch(ops: [op], source: .local, timeMillis: 1_700_000_000_000 + Int64(index)))
        }
        return (path, store, ops)
    }

    /// Runs raw SQL against a store file, as an attacker with file access could.
    private func tamper(_ path: String, _ sql: String) throws {
        let queue = try DatabaseQueue(path: path, configuration: .waitingForLocks)
        try queue.write { try $0.execute(sql: sql) }
        try queue.close()
    }

    @Test("what was committed is there after reopening")
    func durableAcrossReopen() throws {
        let (path, store, ops) = try populatedStore()
        try store.advanceCheckpoint(link: "alice->bob", to: 3)
        let before = try StoreFingerprint(store)
        let reopened = try SQLiteStore(path: path, create: false)
        #expect(try StoreFingerprint(reopened) == before)
        #expect(try reopened.checkpoint(link: "alice->bob") == 3)
        #expect(try reopened.op(ops[2].id)?.op == ops[2])
    }

    @Test(
        "releasing the caches of an idle store empties the writer's page cache and changes nothing it holds; reads and commits go on after it"
    )
    func releasingCachesKeepsEverything() throws {
        let (_, store, ops) = try populatedStore()
        let before = try StoreFingerprint(store)
        let warm = try store.writerCacheBytes()
        #expect(warm > 0, "the commits left pages in the writer's cache")
        store.releaseCaches()
        #expect(try store.writerCacheBytes() < warm / 4, "the writer's page cache was not released")
        #expect(try StoreFingerprint(store) == before)
        #expect(try store.op(ops[4].id)?.op == ops[4])
        var factory = OpFactory(seed: 12)
        let next = try factory.create(by: .alice, at: .test(9))
        let result = try store.commit(CommitBatch(ops: [next], source: .local, timeMillis: 1_700_000_000_009))
        #expect(result.rejected.isEmpty)
        #expect(try store.item(next.body.itemID) != nil)
        #expect(try store.highestSequence() == 6)
        store.releaseCaches()
        #expect(try store.verifyCustody() == .intact(entries: 6))
    }

    @Test(
        "a release while commits and reads run on other threads waits for them: every commit is kept, every read answers"
    )
    func releasingCachesBesideWork() throws {
        let (_, store, ops) = try populatedStore()
        var factory = OpFactory(seed: 13)
        let more = try (0..<40).map { try factory.create(by: .alice, at: .test(100 + UInt64($0))) }
        let failures = Mutex([String]())
        DispatchQueue.concurrentPerform(iterations: 3) { lane in
            do {
                switch lane {
                case 0:
                    for (index, op) in more.enumerated() {
                        let result = try store.commit(
                            CommitBatch(ops: [op], source: .local, timeMillis: 1_700_000_001_000 + Int64(index)))
                        if !result.rejected.isEmpty { failures.withLock { $0.append("commit \(index) refused") } }
                    }
                case 1:
                    for _ in 0..<40 where try store.op(ops[0].id)?.op != ops[0] {
                        failures.withLock { $0.append("a read lost an op") }
                    }
                default:
                    for _ in 0..<10 { store.releaseCaches() }
                }
            } catch {
                failures.withLock { $0.append("lane \(lane): \(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(try store.highestSequence() == UInt64(ops.count + more.count))
        for op in more { #expect(try store.op(op.id)?.op == op) }
        #expect(try store.verifyCustody() == .intact(entries: UInt64(ops.count + more.count)))
    }

    @Test("an intact custody log verifies")
    func intactLog() throws {
        let (_, store, _) = try populatedStore()
        #expect(try store.verifyCustody() == .intact(entries: 5))
    }

    @Test(
        "custody tampering is detected at the first bad entry",
        arguments: [
            ("edited detail", "UPDATE custody SET detail = 'nothing happened' WHERE seq = 3", UInt64(3)),
            ("edited time", "UPDATE custody SET time_ms = time_ms + 1 WHERE seq = 2", UInt64(2)),
            ("edited op list", "UPDATE custody SET op_ids = zeroblob(32) WHERE seq = 4", UInt64(4)),
            ("deleted middle", "DELETE FROM custody WHERE seq = 2", UInt64(2)),
            ("deleted tail", "DELETE FROM custody WHERE seq = 5", UInt64(5)),
            (
                "swapped entries",
                """
                UPDATE custody SET seq = -1 WHERE seq = 2;
                UPDATE custody SET seq = 2 WHERE seq = 3;
                UPDATE custody SET seq = 3 WHERE seq = -1;
                """,
                UInt64(2)
            ),
            (
                "swapped content",
                """
                CREATE TEMP TABLE c AS SELECT * FROM custody WHERE seq IN (2, 3);
                UPDATE custody SET time_ms = (SELECT time_ms FROM c WHERE seq = 3),
                    op_ids = (SELECT op_ids FROM c WHERE seq = 3), hash = (SELECT hash FROM c WHERE seq = 3),
                    prev_hash = (SELECT prev_hash FROM c WHERE seq = 3) WHERE seq = 2;
                UPDATE custody SET time_ms = (SELECT time_ms FROM c WHERE seq = 2),
                    op_ids = (SELECT op_ids FROM c WHERE seq = 2), hash = (SELECT hash FROM c WHERE seq = 2),
                    prev_hash = (SELECT prev_hash FROM c WHERE seq = 2) WHERE seq = 3;
                """,
                UInt64(2)
            ),
        ]
    )
    func tamperDetected(what: String, sql: String, firstBad: UInt64) throws {
        let (path, _, _) = try populatedStore()
        try tamper(path, sql)
        let reopened = try SQLiteStore(path: path, create: false)
        guard case .broken(let defect) = try reopened.verifyCustody() else {
            Issue.record("\(what) was not detected")
            return
        }
        #expect(defect.sequence == firstBad, "\(what): \(defect)")
    }

    @Test("a missing store is not created when opening an existing node")
    func missingNotCreated() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        #expect {
            try SQLiteStore(path: path, create: false)
        } throws: { ($0 as? LiaisonError)?.code == .notFound }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("a file that is not SQLite is refused and left untouched")
    func garbageRefused() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        let garbage = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try garbage.write(to: URL(fileURLWithPath: path))
        #expect {
            try SQLiteStore(path: path, create: false)
        } throws: { ($0 as? LiaisonError)?.code == .corrupt }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == garbage)
    }

    @Test("another application's SQLite database is refused")
    func foreignDatabaseRefused() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("other.sqlite").path
        try tamper(path, "CREATE TABLE accounts(id INTEGER PRIMARY KEY)")
        #expect {
            try SQLiteStore(path: path, create: true)
        } throws: { ($0 as? LiaisonError)?.code == .corrupt }
    }

    @Test("a store from a newer schema is refused rather than misread")
    func newerSchemaRefused() throws {
        let (path, _, _) = try populatedStore()
        try tamper(path, "INSERT INTO grdb_migrations(identifier) VALUES ('v999-from-the-future')")
        #expect {
            try SQLiteStore(path: path, create: false)
        } throws: { ($0 as? LiaisonError)?.code == .corrupt }
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
