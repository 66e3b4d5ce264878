import Synchronization

/// What a drill wrote and what it saw where, with times as offsets (milliseconds) from the
/// start of the drill. Shared by the writer, the observer and the phases.
final class DrillLedger: Sendable {
    struct Put: Sendable {
        var template: Int
        var writtenAt: Double
        /// The item's digest at its originator right after the put.
        var digest: String?
    }

    struct State {
        var puts: [String: Put] = [:]
        var putFailures = 0
        var lastPutError: String?
        /// item id -> partner -> first seen.
        var firstSeen: [String: [String: Double]] = [:]
        var live: Set<String>
        /// Live partners nothing more is written at.
        var muted: Set<String> = []
        /// From this offset on, puts are expected at these holders (by template) instead of
        /// their template's: what is left of the federation after a partner turned hostile.
        var regime: (since: Double, holders: [Set<String>])?
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
    /// Live partners the writer writes at.
    var writable: Set<String> { state.withLock { $0.live.subtracting($0.muted) } }
    /// Stops writing at `partner` (it is still observed while live).
    func mute(_ partner: String) { state.withLock { _ = $0.muted.insert(partner) } }

    func stopWriting() { state.withLock { $0.writing = false } }
    func writerDidFinish() { state.withLock { $0.writerFinished = true } }
    var writerFinished: Bool { state.withLock { $0.writerFinished } }
    func stopObserving() { state.withLock { $0.observing = false } }
    func setLive(_ partner: String, _ alive: Bool) {
        state.withLock { state in
            if alive { state.live.insert(partner) } else { state.live.remove(partner) }
        }
    }

    func wrote(_ id: String, template: Int, at offset: Double, digest: String? = nil) {
        state.withLock { $0.puts[id] = Put(template: template, writtenAt: offset, digest: digest) }
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

    /// Puts written from `since` on are expected at `holders` (one set per template), not at
    /// their templates' holders; their templates' holders still bound where they may go.
    func expect(_ holders: [Set<String>], from since: Double) {
        state.withLock { $0.regime = (since, holders) }
    }

    /// Where a put is expected.
    func expectedHolders(of put: Put) -> Set<String> {
        state.withLock { Self.expectedHolders(of: put, templates: templates, regime: $0.regime) }
    }

    static func expectedHolders(
        of put: Put, templates: [DrillWorkload.Template], regime: (since: Double, holders: [Set<String>])?
    ) -> Set<String> {
        if let regime, put.writtenAt >= regime.since, put.template < regime.holders.count {
            return regime.holders[put.template]
        }
        return templates[put.template].holders
    }

    /// Expected deliveries (item at a holder other than its originator) not seen yet.
    var missing: Int { missing(among: nil) }

    /// Expected deliveries not seen yet, counting only holders in `among` (nil: every holder).
    func missing(among: Set<String>?) -> Int {
        state.withLock { state in
            var count = 0
            for (id, put) in state.puts {
                let template = templates[put.template]
                let seen = state.firstSeen[id] ?? [:]
                count +=
                    Self.expectedHolders(of: put, templates: templates, regime: state.regime).filter {
                        $0 != template.originator && seen[$0] == nil && among?.contains($0) != false
                    }.count
            }
            return count
        }
    }

    var snapshot: State { state.withLock { $0 } }
}
