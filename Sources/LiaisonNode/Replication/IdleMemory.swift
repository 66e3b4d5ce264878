/// When a node gives back the memory heavy work left behind (docs/operations.md, "Memory").
///
/// A catch-up or a bulk import fills the store's caches (up to `cache_size` per connection)
/// and leaves the allocator holding much of what it freed; a node that then sits idle for
/// months would keep all of it. Read once a second with a count of the node's work (ops
/// stored): once that count has grown by `heavyWork` since the last release and
/// then stood still for `quietMillis`, it is time to release the store's caches and hand the
/// allocator's free memory back to the system. Pure: the daemon carries it out.
public struct IdleMemoryRelease: Sendable {
    /// Work that counts as heavy: ops stored since the last release.
    public static let heavyWork: UInt64 = 10_000
    /// How long the work count must stand still first.
    public static let quietMillis: UInt64 = 5_000

    private var baseline: UInt64?
    private var lastWork: UInt64 = 0
    private var quietSince: UInt64 = 0

    /// Before the first reading.
    public init() {}

    /// Whether to release memory at this reading of the work count. The first reading is the
    /// baseline: what a node holds when it starts is not work done since.
    public mutating func reading(work: UInt64, nowMillis: UInt64) -> Bool {
        guard let base = baseline else {
            baseline = work
            lastWork = work
            quietSince = nowMillis
            return false
        }
        if work != lastWork {
            lastWork = work
            quietSince = nowMillis
            // A count that went back (counters that started again) is a new baseline.
            if work < base { baseline = work }
            return false
        }
        guard work >= base, work - base >= Self.heavyWork, nowMillis >= quietSince &+ Self.quietMillis else {
            return false
        }
        baseline = work
        return true
    }
}
