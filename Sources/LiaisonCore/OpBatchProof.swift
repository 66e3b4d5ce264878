import Crypto
public import Foundation

/// The Merkle tree an author signs to sign many ops at once (DESIGN §10).
///
/// Leaves are `SHA-256(0x00 ‖ opID)`, inner nodes `SHA-256(0x01 ‖ left ‖ right)`; a node
/// without a sibling moves up a level unchanged. The author signs
/// `"liaison/v1/op-batch" ‖ u32be(leafCount) ‖ root`. A single op is a batch of one whose
/// root is its leaf.
public enum OpBatchTree {
    /// The domain prefix of the signed message.
    static let signatureDomain = Array("liaison/v1/op-batch".utf8)

    /// The leaf hash of an op id.
    public static func leaf(_ id: OpID) -> Hash32 {
        hashing(0, id.hash, nil)
    }

    static func node(_ left: Hash32, _ right: Hash32) -> Hash32 {
        hashing(1, left, right)
    }

    /// SHA-256 of `prefix ‖ first ‖ second`, read from the stack: a batch of 512 ops hashes
    /// about 5,000 of these on the receiving side.
    private static func hashing(_ prefix: UInt8, _ first: Hash32, _ second: Hash32?) -> Hash32 {
        let a = first
        let b = second ?? .zero
        let words = (
            a.w0.bigEndian, a.w1.bigEndian, a.w2.bigEndian, a.w3.bigEndian,
            b.w0.bigEndian, b.w1.bigEndian, b.w2.bigEndian, b.w3.bigEndian
        )
        return withUnsafeBytes(of: words) { pair in
            var sha = SHA256()
            withUnsafeBytes(of: prefix) { sha.update(bufferPointer: $0) }
            sha.update(bufferPointer: UnsafeRawBufferPointer(rebasing: pair[0..<(second == nil ? 32 : 64)]))
            return Hash32(sha.finalize())
        }
    }

    /// The message the author signs for a root.
    public static func signedMessage(root: Hash32, leafCount: UInt32) -> Data {
        var message = Data(signatureDomain)
        withUnsafeBytes(of: leafCount.bigEndian) { message.append(contentsOf: $0) }
        message.append(contentsOf: root.bytes)
        return message
    }

    /// The root of the tree over `ids` and, for each leaf, its sibling path.
    public static func build(_ ids: [OpID]) -> (root: Hash32, paths: [[Hash32]]) {
        precondition(!ids.isEmpty, "a batch holds at least one op")
        var level = ids.map(leaf)
        var paths = Array(repeating: [Hash32](), count: ids.count)
        // position[i]: index, in the current level, of the node that holds leaf i.
        var position = Array(0..<ids.count)
        while level.count > 1 {
            var next = [Hash32]()
            next.reserveCapacity((level.count + 1) / 2)
            var index = 0
            while index < level.count {
                if index + 1 < level.count {
                    next.append(node(level[index], level[index + 1]))
                } else {
                    next.append(level[index])
                }
                index += 2
            }
            for leafIndex in 0..<ids.count {
                let at = position[leafIndex]
                let sibling = at ^ 1
                if sibling < level.count {
                    paths[leafIndex].append(level[sibling])
                }
                position[leafIndex] = at / 2
            }
            level = next
        }
        return (level[0], paths)
    }

    /// The root a leaf and its path lead to; nil when the path does not fit the shape.
    public static func root(of id: OpID, index: UInt32, count: UInt32, path: [Hash32]) -> Hash32? {
        guard count > 0, index < count else { return nil }
        var hash = leaf(id)
        var at = Int(index)
        var width = Int(count)
        var used = 0
        while width > 1 {
            let sibling = at ^ 1
            if sibling < width {
                guard used < path.count else { return nil }
                hash = at & 1 == 0 ? node(hash, path[used]) : node(path[used], hash)
                used += 1
            }
            at /= 2
            width = (width + 1) / 2
        }
        return used == path.count ? hash : nil
    }
}
