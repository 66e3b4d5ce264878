import Foundation
import GRDB
import LiaisonCore

/// The `StoreTransaction` primitives over one GRDB database connection inside a write.
struct SQLiteTransaction: StoreTransaction {
    let db: Database

    static func decodeItem(_ data: Data) throws -> ItemState {
        try ItemState(storageEncoding: data)
    }

    mutating func storedOp(_ id: OpID) throws -> (sequence: UInt64, redactedCount: Int)? {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT seq, redacted FROM ops WHERE op_id = ?"), arguments: [id.hash.data])
        else { return nil }
        let sequence: Int64 = row["seq"]
        let redacted: Int = row["redacted"]
        return (UInt64(sequence), redacted)
    }

    mutating func upgradeOp(_ op: VerifiedOp, sequence: UInt64) throws {
        try db.execute(
            sql: "UPDATE ops SET encoded = ?, redacted = ? WHERE seq = ?",
            arguments: [op.encoded, op.redactedFields.count, Int64(sequence)]
        )
    }

    mutating func insertOp(_ op: VerifiedOp, from peer: NodeID?) throws -> UInt64 {
        try db.cachedStatement(
            sql: """
                INSERT INTO ops(op_id, item_id, author, hlc, redacted, received_from, encoded, reshapes)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(
            arguments: [
                op.id.hash.data, Data(op.body.itemID.bytes), op.body.author.hash.data,
                Int64(bitPattern: op.body.hlc.rawValue), op.redactedFields.count, peer?.hash.data, op.encoded,
                op.body.change.mayChangeEligibility ? 1 : 0,
            ]
        )
        return UInt64(db.lastInsertedRowID)
    }

    mutating func isPending(_ id: OpID) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT 1 FROM pending_ops WHERE op_id = ?"), arguments: [id.hash.data]) ?? false
    }

    mutating func insertPending(_ op: VerifiedOp, from peer: NodeID?) throws {
        try db.execute(
            sql: """
                INSERT INTO pending_ops(op_id, item_id, arrival, received_from, encoded)
                VALUES (?, ?, (SELECT coalesce(max(arrival), 0) + 1 FROM pending_ops), ?, ?)
                """,
            arguments: [op.id.hash.data, Data(op.body.itemID.bytes), peer?.hash.data, op.encoded]
        )
    }

    mutating func takePending(item: ItemID) throws -> [(op: VerifiedOp, peer: NodeID?)] {
        let key = Data(item.bytes)
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql: "SELECT received_from, encoded FROM pending_ops WHERE item_id = ? ORDER BY arrival"),
            arguments: [key]
        )
        if rows.isEmpty { return [] }
        try db.execute(sql: "DELETE FROM pending_ops WHERE item_id = ?", arguments: [key])
        return try rows.map { row in
            let from: Data? = row["received_from"]
            return (try VerifiedOp(storedEncoding: row["encoded"]), from.flatMap { NodeID(bytes: $0) })
        }
    }

    mutating func opsOfItem(_ id: ItemID) throws -> [StoredOp] {
        try Row.fetchAll(
            db,
            sql: "SELECT seq, received_from, encoded FROM ops WHERE item_id = ? ORDER BY seq",
            arguments: [Data(id.bytes)]
        ).map(Self.storedOp)
    }

    mutating func relogItem(_ id: ItemID) throws {
        // AUTOINCREMENT never hands out a sequence twice, so the copies land after every
        // sequence a link may have acknowledged.
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT op_id, item_id, author, hlc, redacted, received_from, encoded, reshapes
                FROM ops WHERE item_id = ? ORDER BY seq
                """,
            arguments: [Data(id.bytes)]
        )
        try db.execute(sql: "DELETE FROM ops WHERE item_id = ?", arguments: [Data(id.bytes)])
        for row in rows {
            try db.cachedStatement(
                sql: """
                    INSERT INTO ops(op_id, item_id, author, hlc, redacted, received_from, encoded, reshapes)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                row["op_id"] as Data, row["item_id"] as Data, row["author"] as Data, row["hlc"] as Int64,
                row["redacted"] as Int64, row["received_from"] as Data?, row["encoded"] as Data,
                row["reshapes"] as Int64,
            ])
        }
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
        for row in try Row.fetchAll(db, sql: "SELECT op_id, encoded FROM pending_ops ORDER BY arrival") {
            let op = try VerifiedOp(storedEncoding: row["encoded"])
            guard excluded(op) else { continue }
            let key: Data = row["op_id"]
            try db.execute(sql: "DELETE FROM pending_ops WHERE op_id = ?", arguments: [key])
            dropped.append(op)
        }
        return dropped
    }

    mutating func setMetadata(_ key: String, _ value: Data) throws {
        try db.execute(
            sql: "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            arguments: [key, value]
        )
    }

    mutating func deleteItem(_ id: ItemID) throws {
        let key = Data(id.bytes)
        try db.execute(sql: "DELETE FROM item_tags WHERE item_id = ?", arguments: [key])
        try db.execute(sql: "DELETE FROM items WHERE id = ?", arguments: [key])
    }

    mutating func loadItem(_ id: ItemID) throws -> ItemState? {
        guard
            let data = try Data.fetchOne(
                db.cachedStatement(sql: "SELECT state FROM items WHERE id = ?"),
                arguments: [Data(id.bytes)]
            )
        else { return nil }
        return try Self.decodeItem(data)
    }

    mutating func saveItem(_ item: ItemState) throws {
        let key = Data(item.id.bytes)
        try db.cachedStatement(
            sql: """
                INSERT INTO items(id, collection, withdrawn, last_change, state) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET withdrawn = excluded.withdrawn, last_change = excluded.last_change,
                    state = excluded.state
                """
        ).execute(
            arguments: [
                key, item.collection, item.isWithdrawn, Int64(bitPattern: item.lastChange.hlc.rawValue),
                try item.storageEncoding(),
            ]
        )
        try db.cachedStatement(sql: "DELETE FROM item_tags WHERE item_id = ?").execute(arguments: [key])
        let insertTag = try db.cachedStatement(sql: "INSERT INTO item_tags(item_id, tag) VALUES (?, ?)")
        for tag in item.tags {
            try insertTag.execute(arguments: [key, tag])
        }
    }

    mutating func custodyHead() throws -> CustodyHead {
        let count = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'custody_head_count'") ?? 0
        let hash = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'custody_head_hash'")
        return CustodyHead(count: UInt64(count), hash: hash.flatMap { Hash32(bytes: $0) } ?? .zero)
    }

    mutating func appendCustody(_ entry: CustodyEntry) throws {
        var ids = Data()
        ids.reserveCapacity(entry.opIDs.count * 32)
        for id in entry.opIDs { ids.append(contentsOf: id.hash.bytes) }
        try db.execute(
            sql: """
                INSERT INTO custody(seq, time_ms, kind, peer, detail, op_ids, prev_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                Int64(entry.sequence), entry.timeMillis, entry.kind.rawValue, entry.peer, entry.detail, ids,
                entry.previousHash.data, entry.hash.data,
            ]
        )
        try db.execute(
            sql: """
                INSERT INTO meta(key, value) VALUES ('custody_head_count', ?), ('custody_head_hash', ?)
                ON CONFLICT(key) DO UPDATE SET value = excluded.value
                """,
            arguments: [Int64(entry.sequence), entry.hash.data]
        )
    }

    mutating func raiseHighestHLC(to stamp: HLCTimestamp) throws {
        guard stamp > (try Self.highestHLC(db)) else { return }
        try db.execute(
            sql:
                "INSERT INTO meta(key, value) VALUES ('highest_hlc', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            arguments: [Int64(bitPattern: stamp.rawValue)]
        )
    }

    static func highestHLC(_ db: Database) throws -> HLCTimestamp {
        let raw = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'highest_hlc'") ?? 0
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
