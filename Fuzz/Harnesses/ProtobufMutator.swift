// A structure-aware mutator for harnesses whose input is one mode byte and then a Protocol
// Buffers message. libFuzzer's own mutations rarely change a nested field without breaking the
// length prefixes around it (a shorter nonce inside a create inside a body inside a signed op
// needs three lengths fixed at once); this one parses the wire format into a tree, changes one
// field (a value, the bytes of a leaf, or the field itself dropped or doubled), and writes the
// tree back with every length right. Half of the mutations are still libFuzzer's own.
import Foundation

/// One field of a message in the wire format. A length-delimited field keeps its bytes and,
/// when they parse as a message, the fields inside (which the mutator may change instead).
final class WireField {
    var number: UInt64
    var wireType: UInt64
    var value: UInt64 = 0
    var bytes: [UInt8] = []
    var children: [WireField]?

    init(number: UInt64, wireType: UInt64) {
        self.number = number
        self.wireType = wireType
    }

    func copy() -> WireField {
        let field = WireField(number: number, wireType: wireType)
        field.value = value
        field.bytes = bytes
        field.children = children?.map { $0.copy() }
        return field
    }
}

enum WireFormat {
    static func parse(_ bytes: ArraySlice<UInt8>, depth: Int = 0) -> [WireField]? {
        var fields = [WireField]()
        var at = bytes.startIndex
        func varint() -> UInt64? {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while at < bytes.endIndex, shift < 64 {
                let byte = bytes[at]
                at += 1
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
            return nil
        }
        while at < bytes.endIndex {
            guard let key = varint(), key >> 3 > 0 else { return nil }
            let field = WireField(number: key >> 3, wireType: key & 7)
            switch field.wireType {
            case 0:
                guard let value = varint() else { return nil }
                field.value = value
            case 1, 5:
                let width = field.wireType == 1 ? 8 : 4
                guard bytes.endIndex - at >= width else { return nil }
                field.bytes = Array(bytes[at..<at + width])
                at += width
            case 2:
                guard let length = varint(), length <= UInt64(bytes.endIndex - at) else { return nil }
                field.bytes = Array(bytes[at..<at + Int(length)])
                at += Int(length)
                if depth < 8, !field.bytes.isEmpty, let inner = parse(field.bytes[...], depth: depth + 1) {
                    field.children = inner
                }
            default:
                return nil
            }
            fields.append(field)
        }
        return fields
    }

    static func serialize(_ fields: [WireField], into out: inout [UInt8]) {
        func varint(_ value: UInt64) {
            var rest = value
            while rest >= 0x80 {
                out.append(UInt8(rest & 0x7F) | 0x80)
                rest >>= 7
            }
            out.append(UInt8(rest))
        }
        for field in fields {
            varint(field.number << 3 | field.wireType)
            switch field.wireType {
            case 0:
                varint(field.value)
            case 2:
                var content = [UInt8]()
                if let children = field.children { serialize(children, into: &content) } else { content = field.bytes }
                varint(UInt64(content.count))
                out += content
            default:
                out += field.bytes
            }
        }
    }

    /// Every field of the tree with the list it sits in, depth first.
    static func flatten(_ fields: [WireField], parent: WireField?, into out: inout [(WireField, WireField?)]) {
        for field in fields {
            out.append((field, parent))
            if let children = field.children { flatten(children, parent: field, into: &out) }
        }
    }
}

/// libFuzzer's own mutation of a byte buffer (libFuzzer exports it for custom mutators).
@_extern(c, "LLVMFuzzerMutate")
func libFuzzerMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int) -> Int

private let interestingValues: [UInt64] = [
    0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 127, 128, 255, 256, 1 << 24, 1 << 31, 1 << 32, UInt64(Int64.max),
    UInt64.max, UInt64.max - 1,
]

@_cdecl("LLVMFuzzerCustomMutator")
public func fuzzCustomMutator(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
    var random = SplitMix(state: UInt64(seed))
    let message = Array(UnsafeBufferPointer(start: data + 1, count: max(size - 1, 0)))
    guard size > 1, random.next() % 2 == 0, let fields = WireFormat.parse(message[...]), !fields.isEmpty else {
        return libFuzzerMutate(data, size, maxSize)
    }
    var all = [(WireField, WireField?)]()
    WireFormat.flatten(fields, parent: nil, into: &all)
    var root = fields
    let (field, parent) = all[Int(random.next() % UInt64(all.count))]
    switch random.next() % 4 {
    case 0:  // a new value
        if field.wireType == 0 {
            field.value =
                random.next() % 2 == 0
                ? interestingValues[Int(random.next() % UInt64(interestingValues.count))]
                : field.value &+ (random.next() % 2 == 0 ? 1 : UInt64.max)
        } else {
            fallthrough
        }
    case 1:  // new bytes: libFuzzer's mutation of this field's bytes alone
        var bytes = field.bytes.isEmpty ? [UInt8(truncatingIfNeeded: random.next())] : field.bytes
        let used = bytes.count
        let room = max(bytes.count * 2, bytes.count + 16)
        bytes += [UInt8](repeating: 0, count: room - bytes.count)
        let count = bytes.withUnsafeMutableBufferPointer { libFuzzerMutate($0.baseAddress!, used, room) }
        field.bytes = Array(bytes.prefix(count))
        field.children = field.wireType == 2 ? nil : field.children
        if field.wireType == 1 || field.wireType == 5 {
            field.bytes = Array((field.bytes + [UInt8](repeating: 0, count: 8)).prefix(field.wireType == 1 ? 8 : 4))
        }
    case 2:  // the field dropped
        if let parent { parent.children?.removeAll { $0 === field } } else { root.removeAll { $0 === field } }
    default:  // the field doubled (a repeated field grows; a singular one appears twice)
        if let parent, let index = parent.children?.firstIndex(where: { $0 === field }) {
            parent.children?.insert(field.copy(), at: index)
        } else if let index = root.firstIndex(where: { $0 === field }) {
            root.insert(field.copy(), at: index)
        }
    }
    var out = [data[0]]
    WireFormat.serialize(root, into: &out)
    guard out.count <= maxSize else { return libFuzzerMutate(data, size, maxSize) }
    out.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: out.count) }
    return out.count
}

/// SplitMix64, seeded by libFuzzer's seed, so a mutation can be replayed.
struct SplitMix {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
