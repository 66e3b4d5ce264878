import Foundation
import GRDB
import LiaisonCore
import LiaisonStore
import LiaisonTestSupport
import Testing

/// `Store.outboxRead`: what a link's session reads of the log for one peer. It skips the
/// peer's echoes (ops it wrote or sent us) unless they may change an item's eligibility, and
/// says how far it read, within its scan bound.
@Suite("Store reads for a link")
struct StoreOutboxReadTests {
    let alice = TestNode.alice
    let bob = TestNode.bob
    let carol = TestNode.carol

    /// Six ops: 1–3 alice's, sent by bob (3 adds a tag); 4 bob's, sent by alice; 5 local
    /// (carol's); 6 alice's, sent by alice.
    func filled(_ kind: StoreKind) throws -> any Store {
        let store = try kind.make()
        var factory = OpFactory(seed: 11)
        let create = try factory.create(by: alice, at: .test(1))
        let item = try ItemState(create: create)
        let fields = try factory.setFields(
            [(name: "title", value: JSONText.string("x"))], of: item, by: alice, at: .test(2))
        let tags = try factory.addTags(["red"], to: item, by: alice, at: .test(3))
        let bobs = try factory.create(by: bob, at: .test(4))
        let local = try factory.create(by: carol, at: .test(5))
        let more = try factory.setFields(
            [(name: "title", value: JSONText.string("y"))], of: item, by: alice, at: .test(6))
        func commit(_ ops: [VerifiedOp], from peer: TestNode?) throws {
            let result = try store.commit(
                CommitBatch(ops: ops, source: peer.map { .peer($0.nodeID) } ?? .local, timeMillis: 1_700_000_000_000))
            #expect(result.rejected.isEmpty, "\(result.rejected)")
        }
        try commit([create, fields, tags], from: bob)
        try commit([bobs], from: alice)
        try commit([local], from: nil)
        try commit([more], from: alice)
        #expect(try store.highestSequence() == 6)
        return store
    }

    @Test(
        "a link naming 20,000 collections is read, not refused: SQLite, past the 1,000 it names in a statement, reads every op whole",
        arguments: StoreKind.allCases)
    func manyCollections(_ kind: StoreKind) throws {
        let store = try filled(kind)
        // Every op here is in `reports`; the link names it among 20,000 others.
        let carrying = Set((0..<20_000).map { "c\($0)" }).union(["reports"])
        let read = try store.outboxRead(after: 0, limit: 10, echoesOf: bob.nodeID, scan: 1000, carrying: carrying)
        #expect(read.ops.map(\.sequence) == [3, 5, 6])
        #expect(read.outside.isEmpty)
        // Without `reports` among them: the memory store sets the ops apart; SQLite, past the
        // collections it names in a statement, reads them whole (the sender withholds them
        // either way).
        let without = Set((0..<20_000).map { "c\($0)" })
        let other = try store.outboxRead(after: 0, limit: 10, echoesOf: bob.nodeID, scan: 1000, carrying: without)
        switch kind {
        case .memory:
            #expect(other.outside.map(\.sequence) == [3, 5, 6])
            #expect(other.ops.isEmpty)
        case .sqlite:
            #expect(other.ops.map(\.sequence) == [3, 5, 6])
            #expect(other.outside.isEmpty)
        }
        #expect(other.coveredThrough == 6)
    }

    @Test(
        "echoes of the peer are skipped, changes of eligibility kept, and the read says how far it got",
        arguments: StoreKind.allCases)
    func skipsEchoes(_ kind: StoreKind) throws {
        let store = try filled(kind)
        let forBob = try store.outboxRead(after: 0, limit: 10, echoesOf: bob.nodeID, scan: 1000)
        #expect(forBob.ops.map(\.sequence) == [3, 5, 6])
        #expect(forBob.coveredThrough == 6)
        let forAlice = try store.outboxRead(after: 0, limit: 10, echoesOf: alice.nodeID, scan: 1000)
        #expect(forAlice.ops.map(\.sequence) == [3, 5])
        #expect(forAlice.coveredThrough == 6)
        // The same as reading everything and dropping what `OutboxRead.skips`.
        for peer in [alice, bob, carol, TestNode.mallory] {
            let naive = try store.ops(after: 0, limit: 100).filter { !OutboxRead.skips($0, echoesOf: peer.nodeID) }
            let read = try store.outboxRead(after: 0, limit: 100, echoesOf: peer.nodeID, scan: 1000)
            #expect(read.ops == naive, "\(peer.name)")
        }
    }

    @Test(
        "a full read covers through its last op; a read past the log covers nothing new", arguments: StoreKind.allCases)
    func limitsAndEnds(_ kind: StoreKind) throws {
        let store = try filled(kind)
        let first = try store.outboxRead(after: 0, limit: 1, echoesOf: bob.nodeID, scan: 1000)
        #expect(first.ops.map(\.sequence) == [3] && first.coveredThrough == 3)
        let second = try store.outboxRead(after: 3, limit: 1, echoesOf: bob.nodeID, scan: 1000)
        #expect(second.ops.map(\.sequence) == [5] && second.coveredThrough == 5)
        let rest = try store.outboxRead(after: 5, limit: 1, echoesOf: bob.nodeID, scan: 1000)
        #expect(rest.ops.map(\.sequence) == [6] && rest.coveredThrough == 6)
        let past = try store.outboxRead(after: 6, limit: 10, echoesOf: bob.nodeID, scan: 1000)
        #expect(past.ops.isEmpty && past.coveredThrough == 6)
        // Only echoes in range: nothing to send, and the read still moves on.
        let echoesOnly = try store.outboxRead(after: 0, limit: 10, echoesOf: bob.nodeID, scan: 2)
        #expect(echoesOnly.ops.isEmpty && echoesOnly.coveredThrough == 2)
    }

    @Test("a store made before the column is migrated, and its ops count as changes of eligibility: they are all read")
    func olderStoresAreRead() throws {
        let path = try TestDirectory.make("store").appendingPathComponent("store.sqlite").path
        do {
            let store = try SQLiteStore(path: path, create: true)
            var factory = OpFactory(seed: 12)
            let create = try factory.create(by: alice, at: .test(1))
            _ = try store.commit(CommitBatch(ops: [create], source: .peer(bob.nodeID), timeMillis: 1_700_000_000_000))
        }
        // Back to the v1 schema, as a store written before v2 was.
        let queue = try DatabaseQueue(path: path, configuration: .waitingForLocks)
        try queue.write { db in
            try db.execute(sql: "ALTER TABLE ops DROP COLUMN reshapes")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v2'")
        }
        try queue.close()
        let reopened = try SQLiteStore(path: path, create: false)
        let read = try reopened.outboxRead(after: 0, limit: 10, echoesOf: bob.nodeID, scan: 1000)
        #expect(read.ops.map(\.sequence) == [1])
        #expect(read.coveredThrough == 1)
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
