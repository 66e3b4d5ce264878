public import Foundation
import SwiftProtobuf

extension ItemState {
    /// The compact storage form of the state (`proto/liaison/v1/state.proto`).
    public func storageEncoding() throws(LiaisonError) -> Data {
        var record = Liaison_V1_ItemStateRecord()
        record.id = Data(id.bytes)
        record.originator = originator.hash.data
        record.collection = collection
        record.writePolicy = writePolicy == .annotations ? .annotations : .originatorOnly
        record.created = created.record
        record.markings = markings.proto
        record.markingsStamp = markingsStamp.record
        record.fields = fields.keys.sorted().map { name in
            let register = fields[name]!
            var field = Liaison_V1_FieldRecord()
            field.name = name
            field.stamp = register.stamp.record
            field.digest = register.digest.data
            if let value = register.value { field.value = value }
            return field
        }
        record.tagsAdded = Self.records(tagsAdded)
        record.tagsRemoved = Self.records(tagsRemoved)
        if let tombstone { record.tombstone = tombstone.record }
        if let recalledFromAll { record.recalledFromAll = recalledFromAll.record }
        record.recalledFrom = Liaison_V1_AudienceRecallRecord.records(recalledFrom)
        record.lastChange = lastChange.record
        do {
            return try record.serializedBytes()
        } catch {
            throw LiaisonError(.io, "encoding an item state failed", cause: error)
        }
    }

    /// Restores a state from its storage form.
    public init(storageEncoding data: Data) throws(LiaisonError) {
        let damaged = LiaisonError(.corrupt, "a stored item state cannot be decoded; the store is damaged")
        let record: Liaison_V1_ItemStateRecord
        do {
            record = try Liaison_V1_ItemStateRecord(serializedBytes: data)
        } catch {
            throw LiaisonError(.corrupt, "a stored item state cannot be decoded; the store is damaged", cause: error)
        }
        guard let id = ItemID(bytes: record.id), let originator = NodeID(bytes: record.originator),
            let created = OpStamp(record: record.created), let markingsStamp = OpStamp(record: record.markingsStamp),
            let lastChange = OpStamp(record: record.lastChange)
        else { throw damaged }
        let markings: Markings
        do {
            markings = try Markings(proto: record.markings)
        } catch {
            throw damaged
        }
        var fields = [String: FieldRegister]()
        for field in record.fields {
            guard let stamp = OpStamp(record: field.stamp), let digest = Hash32(bytes: field.digest) else {
                throw damaged
            }
            fields[field.name] = FieldRegister(stamp: stamp, digest: digest, value: field.hasValue ? field.value : nil)
        }
        guard let recalledFrom = Liaison_V1_AudienceRecallRecord.recalls(record.recalledFrom) else { throw damaged }
        guard let tagsAdded = Self.tags(record.tagsAdded), let tagsRemoved = Self.tags(record.tagsRemoved) else {
            throw damaged
        }
        let tombstone = record.hasTombstone ? OpStamp(record: record.tombstone) : nil
        let recalledFromAll = record.hasRecalledFromAll ? OpStamp(record: record.recalledFromAll) : nil
        if (record.hasTombstone && tombstone == nil) || (record.hasRecalledFromAll && recalledFromAll == nil) {
            throw damaged
        }
        self.init(
            id: id,
            originator: originator,
            collection: record.collection,
            writePolicy: record.writePolicy == .annotations ? .annotations : .originatorOnly,
            created: created,
            markings: markings,
            markingsStamp: markingsStamp,
            fields: fields,
            tagsAdded: tagsAdded,
            tagsRemoved: tagsRemoved,
            tombstone: tombstone,
            recalledFromAll: recalledFromAll,
            recalledFrom: recalledFrom,
            lastChange: lastChange
        )
    }

    private static func records(_ tags: [String: Set<OpID>]) -> [Liaison_V1_TagInstancesRecord] {
        tags.keys.sorted().map { tag in
            var record = Liaison_V1_TagInstancesRecord()
            record.tag = tag
            record.opIds = tags[tag]!.sorted().map(\.hash.data)
            return record
        }
    }

    private static func tags(_ records: [Liaison_V1_TagInstancesRecord]) -> [String: Set<OpID>]? {
        var out = [String: Set<OpID>]()
        for record in records {
            var ids = Set<OpID>()
            for bytes in record.opIds {
                guard let hash = Hash32(bytes: bytes) else { return nil }
                ids.insert(OpID(hash: hash))
            }
            out[record.tag] = ids
        }
        return out
    }
}

extension ItemSummary {
    /// The storage form of the summary (`ItemSummaryRecord` in `proto/liaison/v1/state.proto`).
    public func storageEncoding() throws(LiaisonError) -> Data {
        var record = Liaison_V1_ItemSummaryRecord()
        record.id = Data(id.bytes)
        record.originator = originator.hash.data
        record.collection = collection
        record.created = created.hash.data
        record.markings = markings.proto
        record.markingsStamp = markingsStamp.record
        record.tags = tags.sorted()
        record.recalledFrom = Liaison_V1_AudienceRecallRecord.records(recalledFrom)
        do {
            return try record.serializedBytes()
        } catch {
            throw LiaisonError(.io, "encoding an item summary failed", cause: error)
        }
    }

    /// Restores a summary from its storage form.
    public init(storageEncoding data: Data) throws(LiaisonError) {
        let damaged = LiaisonError(.corrupt, "a stored item summary cannot be decoded; the store is damaged")
        let record: Liaison_V1_ItemSummaryRecord
        let markings: Markings
        do {
            record = try Liaison_V1_ItemSummaryRecord(serializedBytes: data)
            markings = try Markings(proto: record.markings)
        } catch {
            throw damaged
        }
        guard let id = ItemID(bytes: record.id), let originator = NodeID(bytes: record.originator),
            let created = Hash32(bytes: record.created), let markingsStamp = OpStamp(record: record.markingsStamp)
        else { throw damaged }
        guard let recalledFrom = Liaison_V1_AudienceRecallRecord.recalls(record.recalledFrom) else { throw damaged }
        self.init(
            id: id, originator: originator, collection: record.collection, created: OpID(hash: created),
            markings: markings, markingsStamp: markingsStamp, tags: Set(record.tags), recalledFrom: recalledFrom)
    }
}

extension Liaison_V1_AudienceRecallRecord {
    /// The latest recall per audience name, as records sorted by name (states and summaries).
    static func records(_ recalledFrom: [String: OpStamp]) -> [Self] {
        recalledFrom.keys.sorted().map { name in
            var recall = Self()
            recall.name = name
            recall.stamp = recalledFrom[name]!.record
            return recall
        }
    }

    /// The recalls `records` wrote; nil when a stamp is damaged.
    static func recalls(_ records: [Self]) -> [String: OpStamp]? {
        var recalledFrom = [String: OpStamp]()
        for recall in records {
            guard let stamp = OpStamp(record: recall.stamp) else { return nil }
            recalledFrom[recall.name] = stamp
        }
        return recalledFrom
    }
}

extension OpStamp {
    var record: Liaison_V1_StampRecord {
        var record = Liaison_V1_StampRecord()
        record.hlc = hlc.rawValue
        record.author = author.hash.data
        record.opID = opID.hash.data
        return record
    }

    init?(record: Liaison_V1_StampRecord) {
        guard let author = NodeID(bytes: record.author), let op = Hash32(bytes: record.opID) else { return nil }
        self.init(hlc: HLCTimestamp(rawValue: record.hlc), author: author, opID: OpID(hash: op))
    }
}
