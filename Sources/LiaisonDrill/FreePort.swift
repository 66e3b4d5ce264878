import Foundation
public import LiaisonCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Finds TCP ports on loopback that nothing listens on and no other process has been given.
///
/// Ports come from below the kernel's ephemeral range (Linux gives outgoing connections
/// source ports from 32768 up): a listener on a port from that range can find it taken, for a
/// moment, by some process's outgoing connection between the check and the bind, which a
/// full test run did (a drill's hostile partner "cannot listen" on the port its node had
/// left). Only when no port below it is free does the kernel pick one.
///
/// A port is free when it is checked, but its listener binds later, when the node starts.
/// Several processes pick ports at once (the test process, and the `liaison drill` and
/// `liaison demo` processes its tests start), so each port handed out is also claimed in a
/// file every such process reads under a lock: a port another live process claimed is not
/// handed out again. A CI run lost a test to two processes handing out the same port before
/// the claims existed ("bind: Address already in use" as a node started).
public enum FreePort {
    private static let handed = Mutex<Set<Int>>([])
    /// Where ports are looked for first: below Linux's default ephemeral range.
    static let preferred = 20_000..<32_768

    /// A port free on loopback now, which neither this process nor any other live process
    /// using `FreePort` on this machine has handed out before.
    public static func find() throws(LiaisonError) -> Int { try find(claimsAt: ClaimFile.path) }

    /// `find()` with the claims kept in the file at `path` (tests use their own).
    static func find(claimsAt path: String) throws(LiaisonError) -> Int {
        let claims = ClaimFile.open(path)
        defer { claims?.close() }
        let taken = claims?.liveClaims() ?? [:]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<256 {
            let candidate = Int.random(in: preferred, using: &generator)
            guard taken[candidate] == nil, !handed.withLock({ $0.contains(candidate) }),
                (try? bind(port: candidate)) == candidate
            else {
                continue
            }
            if handed.withLock({ $0.insert(candidate).inserted }) {
                claims?.record(taken, adding: candidate)
                return candidate
            }
        }
        for _ in 0..<64 {
            let port = try bind(port: 0)
            if taken[port] == nil, handed.withLock({ $0.insert(port).inserted }) {
                claims?.record(taken, adding: port)
                return port
            }
        }
        throw LiaisonError(.io, "no free loopback port found")
    }

    /// Binds a loopback socket to `port` (0: any) and closes it; returns the port it had.
    private static func bind(port: Int) throws(LiaisonError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LiaisonError(.io, "cannot open a socket to find a free port") }
        defer { Glibc.close(fd) }
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

    /// The machine-wide file of claimed ports, one `PORT PID` line each, held under an
    /// exclusive `flock` from opening to closing. Claims of processes that have exited are
    /// dropped when the file is next written. Without the file (it cannot be opened), ports
    /// are only kept apart within this process, as before.
    struct ClaimFile {
        /// The file's path: one per user, so a process cannot claim another user's ports.
        static var path: String { "/tmp/liaison-ports-\(getuid()).claims" }
        private let fd: Int32

        /// The file, locked; nil when it cannot be used. It lives in a directory every user
        /// writes: a symbolic link planted at its path is not followed (another user could
        /// otherwise make this process write over a file of its own, root's included), and
        /// a file this user does not own, or that is not a regular file, is not used.
        static func open(_ path: String) -> ClaimFile? {
            let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard fd >= 0 else { return nil }
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            guard let attributes, attributes[.type] as? FileAttributeType == .typeRegular,
                (attributes[.ownerAccountID] as? NSNumber)?.uint32Value == getuid()
            else {
                Glibc.close(fd)
                return nil
            }
            guard flock(fd, LOCK_EX) == 0 else {
                Glibc.close(fd)
                return nil
            }
            return ClaimFile(fd: fd)
        }

        func close() {
            _ = flock(fd, LOCK_UN)
            Glibc.close(fd)
        }

        /// The claims whose process is still alive, by port.
        func liveClaims() -> [Int: Int32] {
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65_536)
            var offset: off_t = 0
            while true {
                let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
                guard count > 0 else { break }
                bytes.append(contentsOf: buffer[0..<count])
                offset += off_t(count)
            }
            var claims: [Int: Int32] = [:]
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count == 2, let port = Int(fields[0]), let pid = Int32(fields[1]), Self.isAlive(pid)
                else { continue }
                claims[port] = pid
            }
            return claims
        }

        /// Writes the live claims back with `port` claimed by this process.
        func record(_ claims: [Int: Int32], adding port: Int) {
            var all = claims
            all[port] = getpid()
            let text = all.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)\n" }.joined()
            let bytes = Array(text.utf8)
            _ = ftruncate(fd, 0)
            _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }

        /// Whether a process with this id exists (EPERM: it exists, owned by someone else).
        static func isAlive(_ pid: Int32) -> Bool {
            pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)
        }
    }
}
