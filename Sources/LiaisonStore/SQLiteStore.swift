public import Foundation
import GRDB
import GRDBSQLite
public import LiaisonCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The durable store: SQLite through GRDB, in WAL mode with `synchronous = FULL`, so a
/// committed batch survives `kill -9` and power loss (link checkpoints alone are committed
/// without a sync of their own: `advanceCheckpoint`). The schema is versioned with GRDB
/// migrations; a store written by a newer Liaison is refused rather than misread.
public final class SQLiteStore: Store {
    /// SQLite `application_id` of a Liaison store ("LIAN").
    static let applicationID: Int32 = 0x4C49_414E

    private let pool: DatabasePool
    /// Copies the WAL back into the database file off the writer (docs/store.md, "Checkpoints").
    let checkpointer: SQLiteCheckpointer
    private let fault: (@Sendable (CommitFaultPoint) throws -> Void)?
    /// The database file.
    public let path: String

    /// Opens the store at `path`. With `create: false` a missing file is an error and
    /// nothing is created; an existing file that is not a Liaison store is refused.
    public init(
        path: String,
        create: Bool,
        fault: (@Sendable (CommitFaultPoint) throws -> Void)? = nil
    ) throws(LiaisonError) {
        self.path = path
        self.fault = fault
        self.checkpointer = SQLiteCheckpointer(path: path)
        let exists = FileManager.default.fileExists(atPath: path)
        if !exists && !create {
            throw LiaisonError(.notFound, "no store at \(path); is this a node directory made by 'liaison init'?")
        }
        if exists {
            try Self.checkHeader(path)
        } else {
            try Self.createOwnerOnly(path)
        }
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // 64 MiB of page cache. The WAL is copied back by `SQLiteCheckpointer` on its own
            // thread soon after each write; the writer checkpoints itself only when the WAL
            // passes 128 MiB (the checkpointer fell behind or failed), so it stays bounded.
            try db.execute(sql: "PRAGMA cache_size = -65536")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 32768")
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
            // GRDB puts the writer in `synchronous = NORMAL` when it sets up WAL mode, after
            // `prepareDatabase`: in WAL mode that syncs only at checkpoints, so a commit that
            // was acknowledged could be lost to a power cut. Every commit is synced instead.
            try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        } catch {
            throw LiaisonError(
                .corrupt, "cannot open the store \(path): \(error); restore it from a backup", cause: error)
        }
        do {
            try pool.write { db in
                let appID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                let tableCount = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0
                if appID != Self.applicationID && tableCount > 0 {
                    throw LiaisonError(.corrupt, "\(path) is an SQLite file but not a Liaison store")
                }
                if try Self.migrator.hasBeenSuperseded(db) {
                    throw LiaisonError(
                        .corrupt, "the store \(path) was written by a newer Liaison; upgrade this binary")
                }
            }
            try Self.migrator.migrate(pool)
        } catch let error as LiaisonError {
            throw error
        } catch {
            throw LiaisonError(
                .corrupt, "the store \(path) is damaged (\(error)); restore it from a backup", cause: error)
        }
    }

    deinit {
        // The checkpointer's connection first, so the pool's, closing after this body, is
        // the last one and SQLite removes the -wal and -shm files there and then.
        checkpointer.close()
    }

    /// Creates the empty database file with mode 0600 before SQLite opens it: the store holds
    /// every item in clear, and SQLite creates its `-wal` and `-shm` files with the mode of
    /// the database file, so all three stay owner-only whatever the process umask.
    private static func createOwnerOnly(_ path: String) throws(LiaisonError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw LiaisonError(.io, "cannot create the store \(path): \(String(cString: strerror(errno)))")
        }
        close(descriptor)
    }

    /// Refuses a file that does not start like an SQLite database, before SQLite touches it.
    private static func checkHeader(_ path: String) throws(LiaisonError) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw LiaisonError(.io, "cannot read \(path); check its permissions")
        }
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 16)) ?? Data()
        if !header.isEmpty && header != Data("SQLite format 3\0".utf8) {
            throw LiaisonError(
                .corrupt, "\(path) is not a Liaison store (not an SQLite file); restore it from a backup")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: "PRAGMA application_id = \(applicationID)")
            try db.execute(
                sql: """
                    CREATE TABLE ops (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        op_id BLOB NOT NULL UNIQUE,
                        item_id BLOB NOT NULL,
                        author BLOB NOT NULL,
                        hlc INTEGER NOT NULL,
                        redacted INTEGER NOT NULL,
                        received_from BLOB,
                        encoded BLOB NOT NULL
                    );
                    CREATE INDEX ops_item ON ops(item_id);
                    CREATE TABLE pending_ops (
                        op_id BLOB PRIMARY KEY,
                        item_id BLOB NOT NULL,
                        arrival INTEGER NOT NULL,
                        received_from BLOB,
                        encoded BLOB NOT NULL
                    );
                    CREATE INDEX pending_item ON pending_ops(item_id, arrival);
                    CREATE TABLE items (
                        id BLOB PRIMARY KEY,
                        collection TEXT NOT NULL,
                        withdrawn INTEGER NOT NULL,
                        last_change INTEGER NOT NULL,
                        state BLOB NOT NULL
                    );
                    CREATE INDEX items_collection ON items(collection, last_change);
                    CREATE INDEX items_recent ON items(last_change);
                    CREATE TABLE item_tags (
                        item_id BLOB NOT NULL,
                        tag TEXT NOT NULL,
                        PRIMARY KEY (item_id, tag)
                    ) WITHOUT ROWID;
                    CREATE INDEX item_tags_tag ON item_tags(tag);
                    CREATE TABLE checkpoints (
                        link TEXT PRIMARY KEY,
                        seq INTEGER NOT NULL
                    );
                    CREATE TABLE custody (
                        seq INTEGER PRIMARY KEY,
                        time_ms INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        peer TEXT,
                        detail TEXT NOT NULL,
                        op_ids BLOB NOT NULL,
                        prev_hash BLOB NOT NULL,
                        hash BLOB NOT NULL
                    );
                    CREATE TABLE meta (
                        key TEXT PRIMARY KEY,
                        value BLOB NOT NULL
                    );
                    """
            )
        }
        // v2: whether an op may change its item's eligibility (a change of markings or tags),
        // so a session's read can skip the peer's echoes in SQL (`outboxRead`). Ops stored
        // before it count as such: they are always read, as they were.
        migrator.registerMigration("v2") { db in
            try db.execute(sql: "ALTER TABLE ops ADD COLUMN reshapes INTEGER NOT NULL DEFAULT 1")
        }
        // v3: items get local numbers, and ops and tags name their item by it; items and ops
        // are found by the first eight bytes of their ids. The rows and index entries a
        // catch-up adds then follow the log (docs/store.md, "Schema").
        migrator.registerMigration("v3", migrate: migrateToV3)
        // v4: when each item last changed here (`ChangedItem.mark`), for feeds of a collection.
        // Items held before it are marked by their local number, in the order the store met
        // them (their times here were not kept).
        migrator.registerMigration("v4") { db in
            try db.execute(
                sql: """
                    ALTER TABLE items ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
                    UPDATE items SET changed = local;
                    CREATE INDEX items_changed ON items(collection, changed);
                    INSERT OR REPLACE INTO meta(key, value)
                        SELECT 'items_changed_mark', coalesce(max(local), 0) FROM items;
                    """)
        }
        // v5: each item's summary (`ItemSummary`) beside its state, written by every commit
        // that saves the item, so a sender filters a batch without decoding states. Items held
        // before it get theirs from their states here.
        migrator.registerMigration("v5", migrate: migrateToV5)
        return migrator
    }

    /// Adds the summary column and fills it from the states held. A state that cannot be
    /// decoded gets no summary: the store still opens, as it did before v5, and a read of the
    /// item reports the damage (`itemSummaries` falls back to the state).
    private static func migrateToV5(_ db: Database) throws {
        try db.execute(sql: "ALTER TABLE items ADD COLUMN summary BLOB")
        let rows = try Row.fetchCursor(db, sql: "SELECT local, state FROM items WHERE state IS NOT NULL")
        let update = try db.makeStatement(sql: "UPDATE items SET summary = ? WHERE local = ?")
        while let row = try rows.next() {
            guard let state = try? ItemState(storageEncoding: row["state"]) else { continue }
            try update.execute(arguments: [try state.summary.storageEncoding(), row["local"] as Int64])
        }
    }

    /// Rebuilds the v2 tables in the v3 layout, keeping every sequence number (links'
    /// checkpoints name them) and the log's next sequence.
    private static func migrateToV3(_ db: Database) throws {
        db.add(
            function: DatabaseFunction("liaison_key", argumentCount: 1, pure: true) { values in
                // The keys the store computes (`SQLiteTransaction.key`) of an item id (16 bytes)
                // or an op id (32 bytes).
                guard let data = Data.fromDatabaseValue(values[0]) else { return nil }
                if let item = ItemID(bytes: data) { return SQLiteTransaction.key(item) }
                if let hash = Hash32(bytes: data) { return SQLiteTransaction.key(OpID(hash: hash)) }
                return nil
            })
        let nextSequence = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'ops'") ?? 0
        try db.execute(
            sql: """
                CREATE TABLE items_v3 (
                    local INTEGER PRIMARY KEY,
                    key INTEGER NOT NULL,
                    id BLOB NOT NULL,
                    collection TEXT NOT NULL,
                    withdrawn INTEGER NOT NULL,
                    last_change INTEGER NOT NULL,
                    state BLOB
                );
                INSERT INTO items_v3(key, id, collection, withdrawn, last_change, state)
                    SELECT liaison_key(id), id, collection, withdrawn, last_change, state FROM items
                    ORDER BY last_change, id;
                INSERT INTO items_v3(key, id, collection, withdrawn, last_change, state)
                    SELECT liaison_key(item_id), item_id, '', 0, 0, NULL FROM ops
                    WHERE item_id NOT IN (SELECT id FROM items) GROUP BY item_id ORDER BY min(seq);
                CREATE INDEX migrating_items_id ON items_v3(id);
                CREATE TABLE ops_v3 (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    op_key INTEGER NOT NULL,
                    op_id BLOB NOT NULL,
                    item_local INTEGER NOT NULL,
                    author BLOB NOT NULL,
                    hlc INTEGER NOT NULL,
                    redacted INTEGER NOT NULL,
                    received_from BLOB,
                    encoded BLOB NOT NULL,
                    reshapes INTEGER NOT NULL
                );
                INSERT INTO ops_v3(seq, op_key, op_id, item_local, author, hlc, redacted, received_from, encoded, reshapes)
                    SELECT o.seq, liaison_key(o.op_id), o.op_id, i.local, o.author, o.hlc, o.redacted,
                        o.received_from, o.encoded, o.reshapes
                    FROM ops o JOIN items_v3 i ON i.id = o.item_id ORDER BY o.seq;
                CREATE TABLE item_tags_v3 (
                    item_local INTEGER NOT NULL,
                    tag TEXT NOT NULL,
                    PRIMARY KEY (item_local, tag)
                ) WITHOUT ROWID;
                INSERT INTO item_tags_v3(item_local, tag)
                    SELECT i.local, t.tag FROM item_tags t JOIN items_v3 i ON i.id = t.item_id;
                DROP INDEX migrating_items_id;
                DROP TABLE ops;
                DROP TABLE items;
                DROP TABLE item_tags;
                ALTER TABLE items_v3 RENAME TO items;
                ALTER TABLE ops_v3 RENAME TO ops;
                ALTER TABLE item_tags_v3 RENAME TO item_tags;
                CREATE INDEX items_key ON items(key);
                CREATE INDEX items_collection ON items(collection, last_change);
                CREATE INDEX items_recent ON items(last_change);
                CREATE INDEX ops_key ON ops(op_key);
                CREATE INDEX ops_item ON ops(item_local);
                CREATE INDEX item_tags_tag ON item_tags(tag);
                """
        )
        // The next sequence stays past every one handed out before, as AUTOINCREMENT promises.
        try db.execute(
            sql: "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'ops'", arguments: [nextSequence])
        if try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_sequence WHERE name = 'ops'") == 0,
            nextSequence > 0
        {
            try db.execute(sql: "INSERT INTO sqlite_sequence(name, seq) VALUES ('ops', ?)", arguments: [nextSequence])
        }
    }

    /// A write transaction. Synced (`synchronous = FULL`, set before it begins whatever an
    /// earlier write left) unless `synced` is false: then it commits under `NORMAL`, without
    /// a sync of its own, and puts `FULL` back after it, failed or not. Unsynced is for what
    /// may be lost to a power cut or an OS crash without harm: in WAL mode a later synced
    /// commit syncs the frames before it too, recovery keeps the WAL only up to its first
    /// invalid frame, and a checkpoint syncs the WAL before it copies frames back.
    func write<T>(
        _ what: String, synced: Bool = true, _ body: (Database) throws -> T
    ) throws(LiaisonError) -> T {
        do {
            let result = try pool.writeWithoutTransaction { db in
                // Not through the statement cache: SQLite applies a PRAGMA when it prepares it,
                // so a cached one may not apply again (docs/decisions.md, "The store's SQL is
                // prepared once per connection": PRAGMAs stay uncached).
                try db.execute(sql: synced ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
                var result: T?
                do {
                    try db.inTransaction {
                        result = try body(db)
                        return .commit
                    }
                } catch {
                    if !synced { try db.execute(sql: "PRAGMA synchronous = FULL") }
                    throw error
                }
                if !synced { try db.execute(sql: "PRAGMA synchronous = FULL") }
                return result!
            }
            checkpointer.wrote()
            return result
        } catch let error as LiaisonError {
            throw error
        } catch {
            throw LiaisonError(.io, "\(what) failed; nothing was stored (\(error))", cause: error)
        }
    }

    private func read<T>(_ what: String, _ body: (Database) throws -> T) throws(LiaisonError) -> T {
        do {
            return try pool.read(body)
        } catch let error as LiaisonError {
            throw error
        } catch {
            throw LiaisonError(.corrupt, "\(what) failed; the store may be damaged (\(error))", cause: error)
        }
    }

    /// Frees the writer's page cache and prepared statements and closes the reading
    /// connections, after the work in hand (GRDB's `releaseMemory`): a catch-up fills the
    /// caches to `cache_size` per connection; a node at rest needs none. The next reads and
    /// writes open and prepare again.
    public func releaseCaches() {
        pool.releaseMemory()
    }

    /// Bytes of page cache the writer connection holds (`SQLITE_DBSTATUS_CACHE_USED`), for
    /// tests of `releaseCaches`.
    func writerCacheBytes() throws -> Int {
        pool.writeWithoutTransaction { db in
            var current: Int32 = 0
            var highest: Int32 = 0
            _ = sqlite3_db_status(db.sqliteConnection, SQLITE_DBSTATUS_CACHE_USED, &current, &highest, 0)
            return Int(current)
        }
    }

    /// Runs `body` on the writer connection outside a transaction, for tests.
    func onWriter<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.writeWithoutTransaction(body)
    }

    /// The writer connection's `PRAGMA synchronous` (2 is FULL), for tests.
    func writerSynchronous() throws -> Int {
        try pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") ?? -1 }
    }

    public func commit(_ batch: CommitBatch) throws(LiaisonError) -> CommitResult {
        try write("commit") { db in
            var tx = SQLiteTransaction(db: db)
            let result = try CommitEngine.commit(batch, in: &tx, fault: { [fault] in try fault?($0) })
            try tx.finish()
            return result
        }
    }

    public func appendCustody(_ event: CustodyEvent, timeMillis: Int64) throws(LiaisonError) -> CustodyEntry {
        try write("recording custody") { db in
            var tx = SQLiteTransaction(db: db)
            return try CommitEngine.append(event, timeMillis: timeMillis, in: &tx)
        }
    }

    public func item(_ id: ItemID) throws(LiaisonError) -> ItemState? {
        try read("reading an item") { db in
            var tx = SQLiteTransaction(db: db)
            return try tx.loadItem(id)
        }
    }

    public func items(_ ids: Set<ItemID>) throws(LiaisonError) -> [ItemID: ItemState] {
        guard !ids.isEmpty else { return [:] }
        return try read("reading items") { db in
            var found = [ItemID: ItemState]()
            let keys = Set(ids.map(SQLiteTransaction.key)).sorted()
            try SQLiteTransaction.forEachRow(
                keys: keys, in: db, { "SELECT id, state FROM items WHERE key IN (\($0)) AND state IS NOT NULL" }
            ) { row in
                // Keys are id prefixes: another item may share one.
                guard let id = ItemID(bytes: row["id"] as Data), ids.contains(id) else { return }
                found[id] = try SQLiteTransaction.decodeItem(row["state"])
            }
            return found
        }
    }

    public func itemSummaries(_ ids: Set<ItemID>) throws(LiaisonError) -> [ItemID: ItemSummary] {
        guard !ids.isEmpty else { return [:] }
        return try read("reading item summaries") { db in
            var found = [ItemID: ItemSummary]()
            var fromStates = [ItemID]()
            let keys = Set(ids.map(SQLiteTransaction.key)).sorted()
            try SQLiteTransaction.forEachRow(
                keys: keys, in: db, { "SELECT id, summary FROM items WHERE key IN (\($0)) AND state IS NOT NULL" }
            ) { row in
                // Keys are id prefixes: another item may share one.
                guard let id = ItemID(bytes: row["id"] as Data), ids.contains(id) else { return }
                // A summary is derived data: one missing (a state migration v5 could not
                // decode), damaged or another item's is made again from the state, which is what says whether
                // the item can be read at all. An item is never left out for want of one.
                if let bytes = row["summary"] as Data?, let summary = try? ItemSummary(storageEncoding: bytes),
                    summary.id == id
                {
                    found[id] = summary
                } else {
                    fromStates.append(id)
                }
            }
            var tx = SQLiteTransaction(db: db)
            for id in fromStates {
                do {
                    if let state = try tx.loadItem(id) { found[id] = state.summary }
                } catch {
                    throw LiaisonError(
                        .corrupt,
                        "the stored state of item \(id.text) cannot be decoded; the store is damaged: restore it from a backup",
                        cause: error)
                }
            }
            return found
        }
    }

    public func items(_ query: ItemQuery) throws(LiaisonError) -> [ItemState] {
        try read("listing items") { db in
            var conditions = ["state IS NOT NULL"]
            var arguments = StatementArguments()
            if let collection = query.collection {
                conditions.append("collection = ?")
                _ = arguments.append(contentsOf: [collection])
            }
            if let tag = query.tag {
                conditions.append("local IN (SELECT item_local FROM item_tags WHERE tag = ?)")
                _ = arguments.append(contentsOf: [tag])
            }
            if !query.includeWithdrawn { conditions.append("withdrawn = 0") }
            let whereClause = "WHERE " + conditions.joined(separator: " AND ")
            _ = arguments.append(contentsOf: [query.limit])
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT state FROM items \(whereClause) ORDER BY last_change DESC, id DESC LIMIT ?",
                arguments: arguments
            )
            return try rows.map { try SQLiteTransaction.decodeItem($0["state"]) }
        }
    }

    public func itemsChanged(_ query: ChangeQuery) throws(LiaisonError) -> [ChangedItem] {
        try read("listing changed items") { db in
            var sql = "SELECT state, changed FROM items WHERE collection = ? AND changed > ? AND state IS NOT NULL"
            var arguments: StatementArguments = [query.collection, query.after]
            if let tag = query.tag {
                sql += " AND local IN (SELECT item_local FROM item_tags WHERE tag = ?)"
                _ = arguments.append(contentsOf: [tag])
            }
            sql += " ORDER BY changed LIMIT ?"
            _ = arguments.append(contentsOf: [max(0, query.limit)])
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map {
                ChangedItem(item: try SQLiteTransaction.decodeItem($0["state"]), mark: $0["changed"])
            }
        }
    }

    public func collections() throws(LiaisonError) -> [String] {
        try read("listing collections") { db in
            try String.fetchAll(
                db.cachedStatement(
                    sql: "SELECT DISTINCT collection FROM items WHERE state IS NOT NULL ORDER BY collection"))
        }
    }

    public func op(_ id: OpID) throws(LiaisonError) -> StoredOp? {
        try read("reading an op") { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT seq, received_from, encoded FROM ops WHERE op_key = ? AND op_id = ?"),
                arguments: [SQLiteTransaction.key(id), id.hash.data]
            ).map(SQLiteTransaction.storedOp)
        }
    }

    public func ops(after sequence: UInt64, limit: Int) throws(LiaisonError) -> [StoredOp] {
        try read("reading ops") { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: "SELECT seq, received_from, encoded FROM ops WHERE seq > ? ORDER BY seq LIMIT ?"),
                arguments: [Int64(sequence), limit]
            ).map(SQLiteTransaction.storedOp)
        }
    }

    public func outboxRead(
        after sequence: UInt64, limit: Int, echoesOf peer: NodeID, scan: UInt64, carrying collections: Set<String>?
    ) throws(LiaisonError) -> OutboxRead {
        try read("reading ops for a link") { db in
            let bound = sequence &+ max(scan, 1)
            // An op of an item held here in a collection the link does not carry: its bytes stay
            // on disk (the test reads the item row's collection and whether it has a state,
            // both before the state's overflow pages). The test appears twice in the statement,
            // and arguments bind in the order of their marks.
            // A link naming more collections than a statement takes marks for (the topology
            // sets no bound) is read whole, as a link carrying every collection is: the
            // sender judges each op, and withholds the same ones.
            var outsideTest = "0"
            var join = ""
            var collectionArguments = StatementArguments()
            if let collections, collections.count <= Self.maxCarriedCollections {
                join = "LEFT JOIN items i ON i.local = o.item_local"
                let sorted = collections.sorted()
                let marks = Array(repeating: "?", count: sorted.count).joined(separator: ",")
                outsideTest =
                    sorted.isEmpty ? "i.state IS NOT NULL" : "i.state IS NOT NULL AND i.collection NOT IN (\(marks))"
                collectionArguments = StatementArguments(sorted)
            }
            let arguments =
                collectionArguments + collectionArguments
                + [Int64(sequence), Int64(clamping: bound), peer.hash.data, peer.hash.data, limit]
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT o.seq, o.op_id, o.author, o.hlc, o.received_from, (\(outsideTest)) AS outside,
                           CASE WHEN (\(outsideTest)) THEN NULL ELSE o.encoded END AS encoded
                    FROM ops o \(join)
                    WHERE o.seq > ? AND o.seq <= ?
                      AND (o.reshapes = 1 OR ((o.received_from IS NULL OR o.received_from != ?) AND o.author != ?))
                    ORDER BY o.seq LIMIT ?
                    """,
                arguments: arguments
            )
            var read = OutboxRead(ops: [], coveredThrough: sequence)
            for row in rows {
                if row["outside"] as Bool {
                    read.outside.append(try SQLiteTransaction.outsideOp(row))
                } else {
                    read.ops.append(try SQLiteTransaction.storedOp(row))
                }
            }
            if rows.count >= limit, let last = rows.last {
                read.coveredThrough = UInt64(last["seq"] as Int64)
                return read
            }
            let highest = UInt64(try Int64.fetchOne(db.cachedStatement(sql: "SELECT max(seq) FROM ops")) ?? 0)
            read.coveredThrough = max(sequence, min(bound, highest))
            return read
        }
    }

    /// Most collections `outboxRead` names in its statement (twice each, well under SQLite's
    /// bound on parameters).
    static let maxCarriedCollections = 1_000

    public func ops(ofItem id: ItemID) throws(LiaisonError) -> [StoredOp] {
        try read("reading an item's ops") { db in
            var tx = SQLiteTransaction(db: db)
            return try tx.opsOfItem(id)
        }
    }

    public func pendingCount(from peer: NodeID) throws(LiaisonError) -> Int {
        try read("counting pending ops") { db in
            try Int.fetchOne(
                db.cachedStatement(sql: "SELECT count(*) FROM pending_ops WHERE received_from = ?"),
                arguments: [peer.hash.data]) ?? 0
        }
    }

    public func waitingOps() throws(LiaisonError) -> [(op: VerifiedOp, receivedFrom: NodeID?)] {
        try read("reading waiting ops") { db in
            try Row.fetchAll(db.cachedStatement(sql: "SELECT received_from, encoded FROM pending_ops ORDER BY arrival"))
                .map { row in
                    let from: Data? = row["received_from"]
                    return (try VerifiedOp(storedEncoding: row["encoded"]), from.flatMap { NodeID(bytes: $0) })
                }
        }
    }

    public func metadata(_ key: String) throws(LiaisonError) -> Data? {
        try read("reading node metadata") { db in
            try Data.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = ?"), arguments: [key])
        }
    }

    public func setMetadata(_ key: String, _ value: Data) throws(LiaisonError) {
        try write("writing node metadata") { db in
            var tx = SQLiteTransaction(db: db)
            try tx.setMetadata(key, value)
        }
    }

    public func items(authoredBy author: NodeID, since: HLCTimestamp) throws(LiaisonError) -> Set<ItemID> {
        try read("finding a partner's items") { db in
            let rows = try Data.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT DISTINCT items.id FROM ops JOIN items ON items.local = ops.item_local
                        WHERE ops.author = ? AND ops.hlc >= ?
                        """),
                arguments: [author.hash.data, Int64(bitPattern: since.rawValue)]
            )
            return Set(rows.compactMap { ItemID(bytes: $0) })
        }
    }

    public func rebuild(
        items: Set<ItemID>,
        excluding excluded: (VerifiedOp) -> Bool,
        listing listed: (VerifiedOp) -> Bool,
        custody: CustodyEvent,
        metadata: (key: String, value: Data)?,
        timeMillis: Int64,
        purgingFor holder: Recipient?,
        admitting partners: [NodeID: Recipient]?
    ) throws(LiaisonError) -> RebuildResult {
        try write("rebuilding items") { db in
            var tx = SQLiteTransaction(db: db)
            let result = try CommitEngine.rebuild(
                items, excluding: excluded, listing: listed, custody: custody, metadata: metadata,
                timeMillis: timeMillis, purgingFor: holder, admitting: partners, in: &tx)
            try tx.finish()
            return result
        }
    }

    public func highestSequence() throws(LiaisonError) -> UInt64 {
        try read("reading the log") { db in
            UInt64(try Int64.fetchOne(db.cachedStatement(sql: "SELECT max(seq) FROM ops")) ?? 0)
        }
    }

    public func highestHLC() throws(LiaisonError) -> HLCTimestamp {
        try read("reading the clock") { db in try SQLiteTransaction.highestHLC(db) }
    }

    public func checkpoint(link: String) throws(LiaisonError) -> UInt64 {
        try read("reading a checkpoint") { db in
            UInt64(
                try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT seq FROM checkpoints WHERE link = ?"), arguments: [link]) ?? 0)
        }
    }

    /// Not synced on its own (docs/decisions.md, "A checkpoint's advance waits for the next
    /// sync"): the next synced commit makes it durable (a sync of the WAL covers every frame
    /// before it), and one lost to a power cut only has the peer send ops again, which merge
    /// as no-ops.
    public func advanceCheckpoint(link: String, to sequence: UInt64) throws(LiaisonError) {
        try write("advancing a checkpoint", synced: false) { db in
            try db.cachedStatement(
                sql: """
                    INSERT INTO checkpoints(link, seq) VALUES (?, ?)
                    ON CONFLICT(link) DO UPDATE SET seq = max(seq, excluded.seq)
                    """
            ).execute(arguments: [link, Int64(sequence)]
            )
        }
    }

    public func custody(from sequence: UInt64, limit: Int) throws(LiaisonError) -> [CustodyEntry] {
        try read("reading custody") { db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT * FROM custody WHERE seq >= ? ORDER BY seq LIMIT ?"),
                arguments: [Int64(sequence), limit]
            ).map(SQLiteTransaction.custodyEntry)
        }
    }

    public func verifyCustody() throws(LiaisonError) -> CustodyVerification {
        try read("verifying custody") { db in
            var verifier = CustodyChainVerifier()
            let cursor = try Row.fetchCursor(db.cachedStatement(sql: "SELECT * FROM custody ORDER BY rowid"))
            while let row = try cursor.next() {
                do {
                    verifier.check(try SQLiteTransaction.custodyEntry(row))
                } catch {
                    let sequence: Int64 = row["seq"] ?? 0
                    return .broken(CustodyDefect(sequence: UInt64(max(sequence, 0)), problem: "unreadable (\(error))"))
                }
                if verifier.defect != nil { break }
            }
            var tx = SQLiteTransaction(db: db)
            verifier.finish(head: try tx.custodyHead())
            return verifier.defect.map(CustodyVerification.broken) ?? .intact(entries: verifier.verifiedCount)
        }
    }
}
