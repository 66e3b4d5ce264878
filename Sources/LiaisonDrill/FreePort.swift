import Foundation
public import LiaisonCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Finds TCP ports on loopback that nothing listens on.
///
/// Ports come from below the kernel's ephemeral range (Linux gives outgoing connections
/// source ports from 32768 up): a listener on a port from that range can find it taken, for a
/// moment, by some process's outgoing connection between the check and the bind, which a
/// full test run did (a drill's hostile partner "cannot listen" on the port its node had
/// left). Only when no port below it is free does the kernel pick one.
public enum FreePort {
    private static let handed = Mutex<Set<Int>>([])
    /// Where ports are looked for first: below Linux's default ephemeral range.
    static let preferred = 20_000..<32_768

    /// A port free on loopback now, which this process has not handed out before.
    public static func find() throws(LiaisonError) -> Int {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<256 {
            let candidate = Int.random(in: preferred, using: &generator)
            guard !handed.withLock({ $0.contains(candidate) }), (try? bind(port: candidate)) == candidate else {
                continue
            }
            if handed.withLock({ $0.insert(candidate).inserted }) { return candidate }
        }
        for _ in 0..<64 {
            let port = try bind(port: 0)
            if handed.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw LiaisonError(.io, "no free loopback port found")
    }

    /// Binds a loopback socket to `port` (0: any) and closes it; returns the port it had.
    private static func bind(port: Int) throws(LiaisonError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LiaisonError(.io, "cannot open a socket to find a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw LiaisonError(.io, "cannot bind a loopback socket to find a free port") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
