import Foundation
public import LiaisonCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Finds TCP ports on loopback that nothing listens on.
public enum FreePort {
    private static let handed = Mutex<Set<Int>>([])

    /// A port the kernel just gave out and this process has not handed out before.
    public static func find() throws(LiaisonError) -> Int {
        for _ in 0..<64 {
            let port = try bindEphemeral()
            if handed.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw LiaisonError(.io, "no free loopback port found")
    }

    private static func bindEphemeral() throws(LiaisonError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LiaisonError(.io, "cannot open a socket to find a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
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
