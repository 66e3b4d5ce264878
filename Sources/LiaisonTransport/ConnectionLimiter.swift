import Synchronization

/// Counts the connections open per remote address and refuses one past the limit, so an
/// outsider's connect loop holds a bounded number of sockets (and handshakes) at once.
public final class ConnectionLimiter: Sendable {
    /// Most connections open at once from one address.
    public let limit: Int
    private let open = Mutex<[String: Int]>([:])

    /// A limiter allowing `limit` connections per address.
    public init(limit: Int) { self.limit = limit }

    /// Takes a place for a connection from `address`; false when it already has `limit`.
    public func enter(_ address: String) -> Bool {
        open.withLock { counts in
            let count = counts[address, default: 0]
            guard count < limit else { return false }
            counts[address] = count + 1
            return true
        }
    }

    /// Gives back the place of a connection from `address` that ended.
    public func leave(_ address: String) {
        open.withLock { counts in
            guard let count = counts[address] else { return }
            counts[address] = count > 1 ? count - 1 : nil
        }
    }

    /// Connections open from `address`.
    public func count(_ address: String) -> Int { open.withLock { $0[address, default: 0] } }
}
