import Synchronization

/// What a drill wrote and what it saw where, with times as offsets (milliseconds) from the
/// start of the drill. Shared by the writer, the observer and the phases.
final class DrillLedger: Sendable {
    struct Put: Sendable {
        var template: Int
        var writtenAt: Double
    }

    struct State {
        var puts: [String: Put] = [:]
        var putFailures = 0
        var lastPutError: String?
        /// item id -> partner -> first seen.
        var firstSeen: [String: [String: Double]] = [:]
        var live: Set<String>
        var writing = true
        var writerFinished = false
        var observing = true
    }

    let templates: [DrillWorkload.Template]
    private let state: Mutex<State>

    init(templates: [DrillWorkload.Template], live: Set<String>) {
        self.templates = templates
        self.state = Mutex(State(live: live))
    }

    var isWriting: Bool { state.withLock { $0.writing } }
    var isObserving: Bool { state.withLock { $0.observing } }
    var live: Set<String> { state.withLock { $0.live } }

    func stopWriting() { state.withLock { $0.writing = false } }
    func writerDidFinish() { state.withLock { $0.writerFinished = true } }
    var writerFinished: Bool { state.withLock { $0.writerFinished } }
    func stopObserving() { state.withLock { $0.observing = false } }
    func setLive(_ partner: String, _ alive: Bool) {
        state.withLock { state in
            if alive { state.live.insert(partner) } else { state.live.remove(partner) }
        }
    }

    func wrote(_ id: String, template: Int, at offset: Double) {
        state.withLock { $0.puts[id] = Put(template: template, writtenAt: offset) }
    }

    func putFailed(_ error: String) {
        state.withLock { state in
            state.putFailures += 1
            state.lastPutError = error
        }
    }

    func saw(_ ids: [String], at partner: String, offset: Double) {
        state.withLock { state in
            for id in ids where state.firstSeen[id]?[partner] == nil {
                state.firstSeen[id, default: [:]][partner] = offset
            }
        }
    }

    /// Expected deliveries (item at a holder other than its originator) not seen yet.
    var missing: Int {
        state.withLock { state in
            var count = 0
            for (id, put) in state.puts {
                let template = templates[put.template]
                let seen = state.firstSeen[id] ?? [:]
                count += template.holders.filter { $0 != template.originator && seen[$0] == nil }.count
            }
            return count
        }
    }

    var snapshot: State { state.withLock { $0 } }
}
