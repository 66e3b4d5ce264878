import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonStore
import LiaisonTestSupport
import Testing

/// A bulk put in the daemon runs in three steps: stamps reserved on the engine's thread,
/// creates checked and signed on the caller's, and the commit on the engine's again. Between
/// the first and the last, other ops of this node may commit; they must not take a reserved
/// stamp, and the answer must be the items as the store holds them.
@Suite("Bulk creates built off the store thread")
struct BulkCreateTests {
    static func node(_ root: URL) throws -> LocalNode {
        _ = try TopologyTests.demo().render(into: root, now: Date())
        return try LocalNode.open(NodeDirectory(path: root.appendingPathComponent("alpha").path))
    }

    static func requests(_ count: Int) -> [PutRequest] {
        (0..<count).map {
            PutRequest(
                collection: "reports", releasableTo: ["bravo"], tags: ["bulk"],
                fields: [("body", JSONText.string("item \($0)"))])
        }
    }

    @Test("a put committed between a bulk put's reservation and its commit stamps after every reserved stamp")
    func reservedStampsAreNotReused() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let node = try Self.node(root)
        let now = Date()
        let stamps = try node.reserveStamps(50, now: now)
        #expect(Set(stamps).count == 50)
        #expect(stamps == stamps.sorted())

        // Another write of this node before the bulk put commits.
        let (_, single) = try node.put(PutRequest(collection: "reports", releasableTo: ["bravo"]), now: now)
        #expect(single.body.hlc > stamps.last!, "a put took a stamp the bulk put had reserved")
        let next = try node.reserveStamps(3, now: now)
        #expect(next.first! > single.body.hlc)

        let signed = try node.signedCreates(Self.requests(50), stamps: stamps, now: now)
        #expect(signed.map(\.body.hlc) == stamps)
        let created = try node.commitCreates(signed, now: now)
        #expect(created.count == 50)
        let held = try node.store.items(Set(created.map(\.item.id)))
        for (item, op) in created {
            #expect(op.body.itemID == item.id)
            #expect(held[item.id] == item, "the answer is not the item the store holds")
            #expect(held[item.id]?.digest == item.digest)
        }
    }

    @Test("a refused request refuses the whole bulk put before anything is written, even with stamps reserved")
    func refusalAfterReservationWritesNothing() throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let node = try Self.node(root)
        let sequence = try node.store.highestSequence()
        var requests = Self.requests(4)
        requests[2].releasableTo = ["nobody"]
        let stamps = try node.reserveStamps(requests.count, now: Date())
        do {
            _ = try node.signedCreates(requests, stamps: stamps, now: Date())
            Issue.record("a request with an unknown REL TO was signed")
        } catch {
            let refusal = error.cause as? BulkPutRefusal
            #expect(refusal?.failures.map(\.index) == [2])
        }
        do {
            _ = try node.signedCreates(Self.requests(2), stamps: Array(stamps.prefix(1)), now: Date())
            Issue.record("two requests were signed with one stamp")
        } catch {
            #expect(error.code == .invalidArgument)
        }
        #expect(try node.store.highestSequence() == sequence)
    }

    @Test("bulk puts built and committed side by side stamp every op apart from each other and from puts")
    func concurrentBulkPutsStampApart() async throws {
        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        let node = try Self.node(root)
        // As the daemon does: reservations one after another (on its engine's thread), the
        // building and committing of each bulk put concurrently, single puts in between.
        let reserved = try (0..<4).map { _ in try node.reserveStamps(100, now: Date()) }
        var singles = [HLCTimestamp]()
        let committed = try await withThrowingTaskGroup(of: [HLCTimestamp].self) { group in
            for stamps in reserved {
                group.addTask {
                    let signed = try node.signedCreates(Self.requests(100), stamps: stamps, now: Date())
                    return try node.commitCreates(signed, now: Date()).map(\.op.body.hlc)
                }
            }
            singles.append(try node.put(PutRequest(collection: "reports"), now: Date()).op.body.hlc)
            return try await group.reduce(into: [HLCTimestamp]()) { $0 += $1 }
        }
        #expect(committed.sorted() == reserved.flatMap { $0 }.sorted())
        let all = committed + singles
        #expect(Set(all).count == 401, "two ops of this node share a stamp")
    }
}
