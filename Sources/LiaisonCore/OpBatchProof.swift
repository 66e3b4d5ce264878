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
        var sha = prefixed(0)
        id.hash.withUnsafeBytes { sha.update(bufferPointer: $0) }
        return Hash32(sha.finalize())
    }

    static func node(_ left: Hash32, _ right: Hash32) -> Hash32 {
        var sha = prefixed(1)
        left.withUnsafeBytes { sha.update(bufferPointer: $0) }
        right.withUnsafeBytes { sha.update(bufferPointer: $0) }
        return Hash32(sha.finalize())
    }

    /// A hash started with one domain byte; leaves and nodes are hashed from the stack (a
    /// batch of 1,024 ops hashes about 10,000 of them on the receiving side).
    private static func prefixed(_ prefix: UInt8) -> SHA256 {
        var sha = SHA256()
        withUnsafeBytes(of: prefix) { sha.update(bufferPointer: $0) }
        return sha
    }

    /// The message the author signs for a root.
    public static func signedMessage(root: Hash32, leafCount: UInt32) -> Data {
        var message = Data(signatureDomain)
        withUnsafeBytes(of: leafCount.bigEndian) { message.append(contentsOf: $0) }
        root.withUnsafeBytes { message.append(contentsOf: $0) }
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
