import Foundation
import LiaisonCore
import LiaisonStore
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
                path: TemporaryDirectory.make().appendingPathComponent("store.sqlite").path, create: true, fault: fault)
        }
    }
}

/// Unique temporary directories for store files, all under one directory per test process
/// (`liaison-store-tests-PID`), so a run leaves at most one behind: at first use, the
/// directories of test processes no longer running are removed.
enum TemporaryDirectory {
    private static let prefix = "liaison-store-tests-"

    private static let root: URL = {
        let base = FileManager.default.temporaryDirectory
        let files = FileManager.default
        for name in (try? files.contentsOfDirectory(atPath: base.path)) ?? [] where name.hasPrefix(prefix) {
            // Another process's, ended: `kill` with no signal finds no such process.
            guard let pid = Int32(name.dropFirst(prefix.count)), pid != getpid(), kill(pid, 0) != 0,
                errno == ESRCH
            else { continue }
            try? files.removeItem(at: base.appendingPathComponent(name))
        }
        return base.appendingPathComponent("\(prefix)\(getpid())")
    }()

    static func make() throws -> URL {
        let url = root.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
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
