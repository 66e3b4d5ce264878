import Foundation
import LiaisonCore
import LiaisonStore

/// The ops a hostile partner makes with its own, valid signing key: genuine ops where the
/// attack is in what they say (an item not releasable to the receiver, a stamp far ahead, a
/// write to someone else's item, two creates for one item), and altered ones where it is in
/// the bytes (another partner named as author, a body that no longer matches its signature).
struct HostileArsenal {
    /// The partner's authority to sign.
    let author: OpAuthor
    private var clock: HybridLogicalClock
    private var random: SeededRandom

    /// Signs as `author`; stamps continue after `highest` (the partner's greatest stamp).
    init(author: OpAuthor, highest: HLCTimestamp, seed: UInt64) {
        self.author = author
        self.clock = HybridLogicalClock(
            maxSkewMillis: 60_000, resumingAfter: highest, physicalMillis: Self.wallMillis)
        self.random = SeededRandom(seed: seed)
    }

    static var wallMillis: UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }

    /// A stamp for now.
    mutating func now() -> HLCTimestamp { clock.tick(physicalMillis: Self.wallMillis) }

    /// A new item of the partner's, signed alone.
    mutating func create(
        collection: String,
        markings: Markings,
        note: String,
        hlc: HLCTimestamp? = nil
    ) throws(LiaisonError) -> VerifiedOp {
        let stamp = hlc ?? now()
        let op = try author.create(
            collection: collection, markings: markings, fields: [("note", Self.json(note))], hlc: stamp,
            using: &random)
        return try author.sign([op])[0]
    }

    /// Two different creates of one item (the same nonce: the same item id), signed separately.
    mutating func equivocatingCreates(
        collection: String, markings: Markings
    ) throws(LiaisonError) -> (VerifiedOp, VerifiedOp) {
        let seed = random.next()
        var first = SeededRandom(seed: seed)
        var second = SeededRandom(seed: seed)
        let a = try author.create(
            collection: collection, markings: markings, fields: [("variant", Self.json("A"))], hlc: now(),
            using: &first)
        let b = try author.create(
            collection: collection, markings: markings, fields: [("variant", Self.json("B"))], hlc: now(),
            using: &second)
        let signedA = try author.sign([a])[0]
        let signedB = try author.sign([b])[0]
        guard signedA.body.itemID == signedB.body.itemID, signedA.id != signedB.id else {
            throw LiaisonError(.invalidOp, "the two creates do not share an item id")
        }
        return (signedA, signedB)
    }

    /// A write of fields to `item` by the partner (refused when the item lets only its
    /// originator write).
    mutating func setFields(of item: ItemState, note: String) throws(LiaisonError) -> VerifiedOp {
        let op = try author.setFields([("note", Self.json(note))], of: item, hlc: now(), using: &random)
        return try author.sign([op])[0]
    }

    /// A write to `item` that names `victim` as its author but is signed with the partner's
    /// key: the partner's own write with the author's NodeID in the body replaced. Returns the
    /// bytes and the id the op claims.
    mutating func forgedAuthor(of item: ItemState, claiming victim: NodeID) throws(LiaisonError) -> (Data, OpID) {
        let genuine = try setFields(of: item, note: "written by \(victim.short), says the hostile partner")
        let mine = Data(author.nodeID.bytes)
        guard var parts = SignedOpParts(genuine.encoded), let body = parts.field(1),
            let range = body.range(of: mine)
        else {
            throw LiaisonError(.invalidOp, "cannot find the author in the partner's own op")
        }
        var forged = body
        forged.replaceSubrange(range, with: victim.bytes)
        parts.replace(1, with: forged)
        return (parts.encoded, OpID(body: forged))
    }

    /// A new item of the partner's whose signature does not cover its body: the body of one op
    /// with the signature proof of another. Returns the bytes and the id of the body sent.
    mutating func badSignature(collection: String, markings: Markings) throws(LiaisonError) -> (Data, OpID) {
        let one = try create(collection: collection, markings: markings, note: "one")
        let other = try create(collection: collection, markings: markings, note: "other")
        guard var parts = SignedOpParts(one.encoded), let proof = SignedOpParts(other.encoded)?.field(2) else {
            throw LiaisonError(.invalidOp, "cannot take the partner's own ops apart")
        }
        parts.replace(2, with: proof)
        return (parts.encoded, one.id)
    }

    static func json(_ text: String) -> Data {
        (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
    }
}

/// The top-level fields of an encoded `SignedOp` (proto/liaison/v1/op.proto: 1 body, 2 proof,
/// 3 openings; all length-delimited), to splice parts of genuine ops into a forgery. Writes
/// them back in the order read, as the deterministic encoding has them.
struct SignedOpParts {
    private(set) var fields: [(number: UInt64, bytes: Data)] = []

    init?(_ data: Data) {
        let bytes = [UInt8](data)
        var index = 0
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while index < bytes.count, shift < 64 {
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }
        while index < bytes.count {
            guard let key = varint(), key & 7 == 2, let length = varint(), index + Int(length) <= bytes.count else {
                return nil
            }
            fields.append((key >> 3, Data(bytes[index..<index + Int(length)])))
            index += Int(length)
        }
    }

    /// The first field numbered `number`.
    func field(_ number: UInt64) -> Data? { fields.first { $0.number == number }?.bytes }

    /// Replaces the first field numbered `number`.
    mutating func replace(_ number: UInt64, with bytes: Data) {
        guard let index = fields.firstIndex(where: { $0.number == number }) else { return }
        fields[index].bytes = bytes
    }

    /// The encoding.
    var encoded: Data {
        var out = [UInt8]()
        func varint(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                out.append(UInt8(value & 0x7f) | 0x80)
                value >>= 7
            }
            out.append(UInt8(value))
        }
        for field in fields {
            varint(field.number << 3 | 2)
            varint(UInt64(field.bytes.count))
            out += field.bytes
        }
        return Data(out)
    }
}
