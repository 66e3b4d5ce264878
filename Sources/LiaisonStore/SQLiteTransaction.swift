import Foundation
import GRDB
import LiaisonCore

/// The `StoreTransaction` primitives over one GRDB database connection inside a write.
///
/// Layout (schema v3, docs/store.md): an item has a local number (`items.local`, the
/// row id) given when the store first meets it, and its ops name it by that number, so the
/// rows and index entries a catch-up adds follow the log instead of landing on random pages.
/// Items and ops are found by id through an index of the id's first eight bytes (`key`,
/// `op_key`), the whole id compared in the row.
struct SQLiteTransaction: StoreTransaction {
    let db: Database
    /// Local numbers of the items this transaction met; nil for an id it found unknown.
    private var locals: [ItemID: Int64?] = [:]
    /// Local numbers given in this transaction to items that have no row yet: the row is
    /// written whole when the item is saved (`saveItem`), or without state by `finish`.
    private var unsaved: [ItemID: Int64] = [:]
    /// The next local number to give, once read.
    private var nextLocal: Int64?
    /// The last change mark given (`ChangedItem.mark`), once read; written back by `finish`.
    private var lastMark: Int64?
    private var marked = false
    /// What `prefetch` read: stored ops among the batch's (by id, for the ids it covered),
    /// and the states of the batch's items, each handed out once by `loadItem`.
    private var prefetchedOps: [OpID: (sequence: UInt64, redactedCount: Int)] = [:]
    private var opsCovered: Set<OpID> = []
    private var prefetchedStates: [ItemID: Data?] = [:]
    /// No op waited in the store at `prefetch`: only those this transaction added may.
    private var pendingKnownEmpty = false
    private var pendingAdded: Set<OpID> = []
    private var pendingAddedItems: Set<ItemID> = []

    /// Keys bound per statement when reading many at once (`rows(keys:in:_:)`).
    static let keysPerStatement = 500

    init(db: Database) {
        self.db = db
    }

    static func decodeItem(_ data: Data) throws -> ItemState {
        try ItemState(storageEncoding: data)
    }

    /// The indexed key of an item id.
    static func key(_ id: ItemID) -> Int64 { Int64(bitPattern: id.leadingWord) }
    /// The indexed key of an op id.
    static func key(_ id: OpID) -> Int64 { Int64(bitPattern: id.hash.leadingWord) }

    /// An item's local number, or nil when this store has never met the item.
    static func local(of id: ItemID, in db: Database) throws -> Int64? {
        try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT local FROM items WHERE key = ? AND id = ?"),
            arguments: [key(id), Data(id.bytes)])
    }

    private mutating func local(of id: ItemID) throws -> Int64? {
        if let known = locals[id] { return known }
        let found = try Self.local(of: id, in: db)
        locals[id] = .some(found)
        return found
    }

    /// The item's local number, given now when it has none (its row is written by
    /// `saveItem` or `finish`, so a new item's row is inserted once, whole).
    private mutating func ensureLocal(_ id: ItemID) throws -> Int64 {
        if let known = try local(of: id) { return known }
        let next = try nextLocal ?? (Int64.fetchOne(db.cachedStatement(sql: "SELECT max(local) FROM items")) ?? 0) + 1
        nextLocal = next + 1
        locals[id] = .some(next)
        unsaved[id] = next
        return next
    }

    /// Writes a row without state for every item given a local number in this transaction
    /// and not saved (its ops name it); call once, at the end of the transaction.
    mutating func finish() throws {
        if marked, let lastMark {
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('items_changed_mark', ?)")
                .execute(arguments: [lastMark])
            marked = false
        }
        for (id, local) in unsaved.sorted(by: { $0.value < $1.value }) {
            try db.cachedStatement(
                sql: """
                    INSERT INTO items(local, key, id, collection, withdrawn, last_change, state)
                    VALUES (?, ?, ?, '', 0, 0, NULL)
                    """
            ).execute(arguments: [local, Self.key(id), Data(id.bytes)])
        }
        unsaved = [:]
    }

    mutating func prefetch(_ ops: [VerifiedOp]) throws {
        let items = Set(ops.map(\.body.itemID)).filter { locals[$0] == nil && unsaved[$0] == nil }
        for id in items { locals[id] = .some(nil) }
        try Self.forEachRow(
            keys: items.map(Self.key), in: db, { "SELECT local, id, state FROM items WHERE key IN (\($0))" }
        ) {
            row in
            // The key is the id's first eight bytes: compare the whole id.
            guard let id = ItemID(bytes: row["id"] as Data), items.contains(id) else { return }
            locals[id] = .some(row["local"] as Int64)
            prefetchedStates[id] = .some(row["state"] as Data?)
        }
        let opIDs = Set(ops.map(\.id)).subtracting(opsCovered)
        opsCovered.formUnion(opIDs)
        try Self.forEachRow(
            keys: opIDs.map(Self.key), in: db, { "SELECT op_id, seq, redacted FROM ops WHERE op_key IN (\($0))" }
        ) {
            row in
            guard let hash = Hash32(bytes: row["op_id"] as Data), opIDs.contains(OpID(hash: hash)) else { return }
            let sequence: Int64 = row["seq"]
            prefetchedOps[OpID(hash: hash)] = (UInt64(sequence), row["redacted"] as Int)
        }
        pendingKnownEmpty = try
            !(Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM pending_ops)")) ?? false)
        pendingAdded = []
        pendingAddedItems = []
    }

    /// Calls `body` with each row a statement finds for many keys, one at a time (a row is
    /// valid only inside `body`): `sql` is given the parameter list (`?, ?, …`) to put in its
    /// `IN (…)`, and runs once per `keysPerStatement` keys (SQLite allows 32,766 parameters).
    static func forEachRow(
        keys: [Int64], in db: Database, _ sql: (String) -> String, _ body: (Row) throws -> Void
    ) throws {
        for start in stride(from: 0, to: keys.count, by: keysPerStatement) {
            let chunk = keys[start..<min(start + keysPerStatement, keys.count)]
            let parameters = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
            // Prepared once per connection for the sizes that recur (a few keys, a full
            // chunk); parsing the statement anew cost more than running it for small reads.
            let statement =
                chunk.count <= 16 || chunk.count == keysPerStatement
                ? try db.cachedStatement(sql: sql(parameters)) : try db.makeStatement(sql: sql(parameters))
            let rows = try Row.fetchCursor(statement, arguments: StatementArguments(Array(chunk)))
            while let row = try rows.next() { try body(row) }
        }
    }

    mutating func storedOp(_ id: OpID) throws -> (sequence: UInt64, redactedCount: Int)? {
        if opsCovered.contains(id) { return prefetchedOps[id] }
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT seq, redacted FROM ops WHERE op_key = ? AND op_id = ?"),
                arguments: [Self.key(id), id.hash.data])
        else { return nil }
        let sequence: Int64 = row["seq"]
        let redacted: Int = row["redacted"]
        return (UInt64(sequence), redacted)
    }

    mutating func upgradeOp(_ op: VerifiedOp, sequence: UInt64) throws {
        try db.cachedStatement(sql: "UPDATE ops SET encoded = ?, redacted = ? WHERE seq = ?").execute(arguments: [
            op.encoded, op.redactedFields.count, Int64(sequence),
        ]
        )
        if prefetchedOps[op.id] != nil { prefetchedOps[op.id] = (sequence, op.redactedFields.count) }
    }

    mutating func insertOp(_ op: VerifiedOp, from peer: NodeID?) throws -> UInt64 {
        let item = try ensureLocal(op.body.itemID)
        try db.cachedStatement(
            sql: """
                INSERT INTO ops(op_key, op_id, item_local, author, hlc, redacted, received_from, encoded, reshapes)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(
            arguments: [
                Self.key(op.id), op.id.hash.data, item, op.body.author.hash.data,
                Int64(bitPattern: op.body.hlc.rawValue), op.redactedFields.count, peer?.hash.data, op.encoded,
                op.body.change.mayChangeEligibility ? 1 : 0,
            ]
        )
        let sequence = UInt64(db.lastInsertedRowID)
        if opsCovered.contains(op.id) { prefetchedOps[op.id] = (sequence, op.redactedFields.count) }
        return sequence
    }

    mutating func isPending(_ id: OpID) throws -> Bool {
        if pendingKnownEmpty && !pendingAdded.contains(id) { return false }
        return try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT 1 FROM pending_ops WHERE op_id = ?"), arguments: [id.hash.data]) ?? false
    }

    mutating func insertPending(_ op: VerifiedOp, from peer: NodeID?) throws {
        pendingAdded.insert(op.id)
        pendingAddedItems.insert(op.body.itemID)
        try db.cachedStatement(
            sql: """
                INSERT INTO pending_ops(op_id, item_id, arrival, received_from, encoded)
                VALUES (?, ?, (SELECT coalesce(max(arrival), 0) + 1 FROM pending_ops), ?, ?)
                """
        ).execute(arguments: [op.id.hash.data, Data(op.body.itemID.bytes), peer?.hash.data, op.encoded]
        )
    }

    mutating func takePending(item: ItemID) throws -> [(op: VerifiedOp, peer: NodeID?)] {
        if pendingKnownEmpty && !pendingAddedItems.contains(item) { return [] }
        let key = Data(item.bytes)
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql: "SELECT received_from, encoded FROM pending_ops WHERE item_id = ? ORDER BY arrival"),
            arguments: [key]
        )
        if rows.isEmpty { return [] }
        try db.cachedStatement(sql: "DELETE FROM pending_ops WHERE item_id = ?").execute(arguments: [key])
        return try rows.map { row in
            let from: Data? = row["received_from"]
            return (try VerifiedOp(storedEncoding: row["encoded"]), from.flatMap { NodeID(bytes: $0) })
        }
    }

    mutating func opsOfItem(_ id: ItemID) throws -> [StoredOp] {
        guard let item = try local(of: id) else { return [] }
        return try Self.opsOfItem(local: item, in: db)
    }

    static func opsOfItem(local item: Int64, in db: Database) throws -> [StoredOp] {
        try Row.fetchAll(
            db.cachedStatement(sql: "SELECT seq, received_from, encoded FROM ops WHERE item_local = ? ORDER BY seq"),
            arguments: [item]
        ).map(Self.storedOp)
    }

    mutating func relogItem(_ id: ItemID) throws {
        guard let item = try local(of: id) else { return }
        // The item's ops change sequence: forget what was read ahead of them.
        prefetchedOps = [:]
        opsCovered = []
        // AUTOINCREMENT never hands out a sequence twice, so the copies land after every
        // sequence a link may have acknowledged.
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT op_key, op_id, author, hlc, redacted, received_from, encoded, reshapes
                    FROM ops WHERE item_local = ? ORDER BY seq
                    """),
            arguments: [item]
        )
        try db.cachedStatement(sql: "DELETE FROM ops WHERE item_local = ?").execute(arguments: [item])
        for row in rows {
            try db.cachedStatement(
                sql: """
                    INSERT INTO ops(op_key, op_id, item_local, author, hlc, redacted, received_from, encoded, reshapes)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                row["op_key"] as Int64, row["op_id"] as Data, item, row["author"] as Data, row["hlc"] as Int64,
                row["redacted"] as Int64, row["received_from"] as Data?, row["encoded"] as Data,
                row["reshapes"] as Int64,
            ])
        }
    }

    /// An op read without its bytes (`Store.outboxRead`'s `outside`).
    static func outsideOp(_ row: Row) throws -> OutsideOp {
        let sequence: Int64 = row["seq"]
        let from: Data? = row["received_from"]
        guard let id = Hash32(bytes: row["op_id"] as Data), let author = NodeID(bytes: row["author"] as Data) else {
            throw LiaisonError(.corrupt, "an op row has a malformed id or author; the store is damaged")
        }
        return OutsideOp(
            sequence: UInt64(sequence), id: OpID(hash: id), author: author,
            hlc: HLCTimestamp(rawValue: UInt64(bitPattern: row["hlc"] as Int64)),
            receivedFrom: from.flatMap { NodeID(bytes: $0) })
    }

    static func storedOp(_ row: Row) throws -> StoredOp {
        let sequence: Int64 = row["seq"]
        let from: Data? = row["received_from"]
        return StoredOp(
            sequence: UInt64(sequence),
            op: try VerifiedOp(storedEncoding: row["encoded"]),
            receivedFrom: from.flatMap { NodeID(bytes: $0) }
        )
    }

    mutating func dropPending(where excluded: (VerifiedOp) -> Bool) throws -> [VerifiedOp] {
        var dropped = [VerifiedOp]()
        for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT op_id, encoded FROM pending_ops ORDER BY arrival"))
        {
            let op = try VerifiedOp(storedEncoding: row["encoded"])
            guard excluded(op) else { continue }
            let key: Data = row["op_id"]
            try db.cachedStatement(sql: "DELETE FROM pending_ops WHERE op_id = ?").execute(arguments: [key])
            dropped.append(op)
        }
        return dropped
    }

    mutating func setMetadata(_ key: String, _ value: Data) throws {
        try db.cachedStatement(
            sql: "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        ).execute(arguments: [key, value]
        )
    }

    mutating func deleteItem(_ id: ItemID) throws {
        prefetchedStates[id] = nil
        guard let item = try local(of: id) else { return }
        // The row stays without a state: the item's stored ops still name its local number.
        try db.cachedStatement(sql: "DELETE FROM item_tags WHERE item_local = ?").execute(arguments: [item])
        try db.cachedStatement(sql: "UPDATE items SET state = NULL, summary = NULL, withdrawn = 0 WHERE local = ?")
            .execute(arguments: [
                item
            ])
    }

    mutating func loadItem(_ id: ItemID) throws -> ItemState? {
        if unsaved[id] != nil { return nil }
        if let read = prefetchedStates.removeValue(forKey: id) { return try read.map(Self.decodeItem) }
        // Known to have no row (a read ahead or an earlier lookup found none; a row written
        // since would have given it a local number).
        if case .some(.none) = locals[id] { return nil }
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT local, state FROM items WHERE key = ? AND id = ?"),
                arguments: [Self.key(id), Data(id.bytes)]
            )
        else {
            locals[id] = .some(nil)
            return nil
        }
        locals[id] = .some(row["local"] as Int64)
        let state: Data? = row["state"]
        return try state.map(Self.decodeItem)
    }

    /// The next change mark (`ChangedItem.nextMark`).
    private mutating func nextMark() throws -> Int64 {
        let last =
            try lastMark
            ?? Int64.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'items_changed_mark'")) ?? 0
        let mark = ChangedItem.nextMark(after: last, nowMicros: ChangedItem.nowMicros)
        lastMark = mark
        marked = true
        return mark
    }

    mutating func saveItem(_ item: ItemState) throws {
        prefetchedStates[item.id] = nil
        let local = try ensureLocal(item.id)
        let hlc = Int64(bitPattern: item.lastChange.hlc.rawValue)
        let state = try item.storageEncoding()
        let summary = try item.summary.storageEncoding()
        let mark = try nextMark()
        if unsaved.removeValue(forKey: item.id) != nil {
            // New here: one whole row, and no tags to clear.
            try db.cachedStatement(
                sql: """
                    INSERT INTO items(local, key, id, collection, withdrawn, last_change, state, changed, summary)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                local, Self.key(item.id), Data(item.id.bytes), item.collection, item.isWithdrawn, hlc, state, mark,
                summary,
            ])
        } else {
            try db.cachedStatement(
                sql: """
                    UPDATE items SET collection = ?, withdrawn = ?, last_change = ?, state = ?, changed = ?,
                        summary = ?
                    WHERE local = ?
                    """
            ).execute(arguments: [item.collection, item.isWithdrawn, hlc, state, mark, summary, local])
            try db.cachedStatement(sql: "DELETE FROM item_tags WHERE item_local = ?").execute(arguments: [local])
        }
        let insertTag = try db.cachedStatement(sql: "INSERT INTO item_tags(item_local, tag) VALUES (?, ?)")
        for tag in item.tags {
            try insertTag.execute(arguments: [local, tag])
        }
    }

    mutating func custodyHead() throws -> CustodyHead {
        let count =
            try Int64.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'custody_head_count'")) ?? 0
        let hash = try Data.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'custody_head_hash'"))
        return CustodyHead(count: UInt64(count), hash: hash.flatMap { Hash32(bytes: $0) } ?? .zero)
    }

    mutating func appendCustody(_ entry: CustodyEntry) throws {
        var ids = Data()
        ids.reserveCapacity(entry.opIDs.count * 32)
        for id in entry.opIDs { ids.append(contentsOf: id.hash.bytes) }
        try db.cachedStatement(
            sql: """
                INSERT INTO custody(seq, time_ms, kind, peer, detail, op_ids, prev_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            Int64(entry.sequence), entry.timeMillis, entry.kind.rawValue, entry.peer, entry.detail, ids,
            entry.previousHash.data, entry.hash.data,
        ]
        )
        try db.cachedStatement(
            sql: """
                INSERT INTO meta(key, value) VALUES ('custody_head_count', ?), ('custody_head_hash', ?)
                ON CONFLICT(key) DO UPDATE SET value = excluded.value
                """
        ).execute(arguments: [Int64(entry.sequence), entry.hash.data]
        )
    }

    mutating func raiseHighestHLC(to stamp: HLCTimestamp) throws {
        guard stamp > (try Self.highestHLC(db)) else { return }
        try db.cachedStatement(
            sql:
                "INSERT INTO meta(key, value) VALUES ('highest_hlc', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        ).execute(arguments: [Int64(bitPattern: stamp.rawValue)]
        )
    }

    static func highestHLC(_ db: Database) throws -> HLCTimestamp {
        let raw = try Int64.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'highest_hlc'")) ?? 0
        return HLCTimestamp(rawValue: UInt64(bitPattern: raw))
    }

    static func custodyEntry(_ row: Row) throws -> CustodyEntry {
        let sequence: Int64 = row["seq"]
        let kindText: String = row["kind"]
        guard let kind = CustodyKind(rawValue: kindText) else {
            throw LiaisonError(.tampered, "custody entry \(sequence) has an unknown kind '\(kindText)'")
        }
        let ids: Data = row["op_ids"]
        guard ids.count % 32 == 0 else {
            throw LiaisonError(.tampered, "custody entry \(sequence) has a damaged op id list")
        }
        let opIDs = stride(from: 0, to: ids.count, by: 32).map { offset in
            OpID(hash: Hash32(bytes: ids[ids.startIndex + offset..<ids.startIndex + offset + 32])!)
        }
        let previous: Data = row["prev_hash"]
        let hash: Data = row["hash"]
        guard let previousHash = Hash32(bytes: previous), let entryHash = Hash32(bytes: hash) else {
            throw LiaisonError(.tampered, "custody entry \(sequence) has a damaged hash")
        }
        return CustodyEntry(
            sequence: UInt64(sequence),
            timeMillis: row["time_ms"],
            kind: kind,
            peer: row["peer"],
            detail: row["detail"],
            opIDs: opIDs,
            previousHash: previousHash,
            hash: entryHash
        )
    }
}
