import Dispatch
import Foundation
import GRDB
import Synchronization

/// Copies the WAL back into the database file on a thread and a connection of its own, so
/// that a commit seldom waits for it (docs/store.md, "Checkpoints").
///
/// After each write the store calls `wrote()`; within `delay` a passive checkpoint copies
/// every frame no reader still needs while commits go on, so the next commit that finds
/// the WAL fully copied writes it from its start again. The writer's own automatic
/// checkpoint stays as a backstop at a larger size (`SQLiteStore`): should this fall behind
/// or fail, the WAL is still bounded, as before. Durability does not depend on it: every
/// commit but a link checkpoint's is synced by the writer (`synchronous = FULL`).
final class SQLiteCheckpointer: Sendable {
    private struct State {
        var scheduled = false
        var closed = false
        var connection: DatabaseQueue?
        var failures = 0
    }

    private let path: String
    private let delay: DispatchTimeInterval
    private let queue = DispatchQueue(label: "liaison.store.checkpoint")
    private let state = Mutex(State())

    init(path: String, delay: DispatchTimeInterval = .milliseconds(20)) {
        self.path = path
        self.delay = delay
    }

    /// A write committed: schedules a checkpoint unless one is due already.
    func wrote() {
        let schedule = state.withLock { state -> Bool in
            guard !state.scheduled else { return false }
            state.scheduled = true
            return true
        }
        guard schedule else { return }
        queue.asyncAfter(deadline: .now() + delay) { [weak self] in self?.run() }
    }

    /// Runs a checkpoint now and waits for it (a scheduled one whose time has not come runs
    /// later, and finds little to do): for tests and for measuring.
    @discardableResult
    func settle() -> (walFrameCount: Int, checkpointedFrameCount: Int)? {
        queue.sync { run() }
    }

    /// Closes the checkpointer's connection after any checkpoint in hand, and opens none
    /// again. The store calls it when it goes: SQLite removes the `-wal` and `-shm` files
    /// when the last connection closes, so a store released is closed on disk when this
    /// returns, not whenever a checkpoint in flight lets go of its connection.
    func close() {
        state.withLock { $0.closed = true }
        queue.sync { state.withLock { $0.connection = nil } }
    }

    /// How many checkpoints failed other than by a lock held elsewhere (each write tries
    /// again; meanwhile the writer's backstop bounds the WAL).
    var failures: Int { state.withLock { $0.failures } }

    @discardableResult
    private func run() -> (walFrameCount: Int, checkpointedFrameCount: Int)? {
        let closed = state.withLock { state -> Bool in
            state.scheduled = false
            return state.closed
        }
        guard !closed else { return nil }
        do {
            // Opened here, on the checkpointer's queue, outside the lock `wrote()` takes, so
            // a commit never waits for it; and never created: a store file that is gone is
            // not made again, with the wrong mode, by this connection.
            var connection = state.withLock { $0.connection }
            if connection == nil {
                guard FileManager.default.fileExists(atPath: path) else {
                    state.withLock { $0.failures += 1 }
                    return nil
                }
                var configuration = Configuration()
                configuration.busyMode = .timeout(0.2)
                configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
                let open = try DatabaseQueue(path: path, configuration: configuration)
                state.withLock { $0.connection = open }
                connection = open
            }
            guard let connection else { return nil }
            return try connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            return nil
        } catch {
            state.withLock { $0.failures += 1 }
            return nil
        }
    }
}
