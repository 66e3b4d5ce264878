import Foundation
import LiaisonCore
import LiaisonStore
import LiaisonTestSupport
import Testing

/// The store implementations every behavioural test runs against.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
    case memory
    case sqlite

    var testDescription: String { rawValue }

    /// A fresh, empty store; SQLite ones live in a temporary directory.
    func make(fault: (@Sendable (CommitFaultPoint) throws -> Void)? = nil) throws -> any Store {
        switch self {
        case .memory:
            return MemoryStore(fault: fault)
        case .sqlite:
            return try SQLiteStore(
                path: TestDirectory.make("store").appendingPathComponent("store.sqlite").path, create: true,
                fault: fault)
        }
    }
}

struct InjectedFault: Error {}

/// What a test compares to show that a failed commit changed nothing.
struct StoreFingerprint: Equatable {
    var sequence: UInt64
    var hlc: HLCTimestamp
    var custody: [CustodyEntry]
    var items: [ItemState]
    var ops: [StoredOp]

    init(_ store: any Store) throws {
        sequence = try store.highestSequence()
        hlc = try store.highestHLC()
        custody = try store.custody(from: 1, limit: 10_000)
        items = try store.items(ItemQuery(includeWithdrawn: true, limit: 10_000))
        ops = try store.ops(after: 0, limit: 10_000)
    }
}
