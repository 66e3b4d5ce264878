public import Foundation
public import LiaisonAPI
public import LiaisonCore
public import LiaisonNode
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A federation of real `liaison run` processes on loopback, rendered from a topology into a
/// directory: what `liaison demo` runs and what multi-process tests use. Every process it
/// starts is tracked by pid and stopped by `stopAll()`.
public final class LocalFederation: Sendable {
    /// Where the node directories and logs live.
    public let root: URL
    /// The topology, on free loopback ports.
    public let topology: Topology
    /// NodeIDs by partner name.
    public let nodeIDs: [String: NodeID]
    /// The `liaison` executable.
    public let executable: URL
    private let pids = Mutex<[String: Int32]>([:])

    /// Renders `topology` (moved to free loopback ports) under `root`.
    public init(topology: Topology, root: URL, executable: URL) throws(LiaisonError) {
        self.root = root
        self.executable = executable
        self.topology = try topology.onFreeLoopbackPorts()
        try OwnerOnlyFiles.createDirectory(at: root)
        let made = try self.topology.render(into: root, now: Date())
        self.nodeIDs = made.mapValues(\.0.nodeID)
    }

    /// The node directory of a partner.
    public func directory(_ name: String) -> NodeDirectory {
        NodeDirectory(path: root.appendingPathComponent(name).path)
    }

    /// An API client for a partner's node.
    public func client(_ name: String) throws(LiaisonError) -> NodeClient { try NodeClient(directory: directory(name)) }

    /// Starts a partner's node; its output goes to `ROOT/NAME.log` (mode 0600, emptied).
    public func start(_ name: String) throws(LiaisonError) {
        let log = root.appendingPathComponent("\(name).log")
        try OwnerOnlyFiles.write(Data(), to: log, replacing: true)
        let process = Process()
        process.executableURL = executable
        process.arguments = ["run", "--dir", directory(name).url.path]
        do {
            let handle = try FileHandle(forWritingTo: log)
            handle.seekToEndOfFile()
            process.standardOutput = handle
            process.standardError = handle
            process.standardInput = FileHandle.nullDevice
            try process.run()
        } catch {
            throw LiaisonError(.io, "cannot start \(executable.path) for \(name)", cause: error)
        }
        pids.withLock { $0[name] = process.processIdentifier }
    }

    /// Starts every partner's node.
    public func startAll() throws(LiaisonError) {
        for partner in topology.partners { try start(partner.name) }
    }

    /// Waits until every started node answers `/healthz`.
    ///
    /// The default deadline is generous on purpose: it bounds a test, it does not measure
    /// start-up. On a 2-core machine running a whole test suite (dozens of node processes,
    /// Chromium and promtool at once), a node has taken over 30 s to answer its first probe.
    public func waitUntilHealthy(timeout: Duration = .seconds(120)) async throws(LiaisonError) {
        try await waitUntilHealthy(pids.withLock({ Array($0.keys) }).sorted(), timeout: timeout)
    }

    /// Waits until the named nodes answer `/healthz`; fails when one of them exits.
    public func waitUntilHealthy(_ names: [String], timeout: Duration = .seconds(120)) async throws(LiaisonError) {
        let start = ContinuousClock.now
        let deadline = start + timeout
        for name in names {
            let client = try client(name)
            while !(await client.isHealthy()) {
                let log = root.appendingPathComponent("\(name).log").path
                guard isRunning(name) else {
                    throw LiaisonError(.io, "node \(name) exited while starting; see \(log)\(Self.tail(of: log))")
                }
                guard ContinuousClock.now < deadline else {
                    throw LiaisonError(
                        .io,
                        "node \(name) did not answer /healthz within \(ContinuousClock.now - start); see \(log)"
                            + Self.tail(of: log))
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// The last lines of a node's log, for an error message: CI keeps the test output, not
    /// the temporary directory the log was in.
    public static func tail(of path: String, lines: Int = 8) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty else {
            return " (the log is empty)"
        }
        let last = text.split(separator: "\n").suffix(lines).map { "\n  | \($0)" }.joined()
        return "; its last lines:" + last
    }

    /// The process id of a partner's running node.
    public func pid(of name: String) -> Int32? { pids.withLock { $0[name] } }

    /// Resident and peak resident memory of a partner's node, in KiB (from /proc).
    public func memory(of name: String) -> (rssKiB: Int, peakKiB: Int)? {
        guard let pid = pid(of: name), let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        else {
            return nil
        }
        func value(_ key: String) -> Int? {
            status.split(separator: "\n").first { $0.hasPrefix(key) }
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") }
        }
        guard let rss = value("VmRSS:"), let peak = value("VmHWM:") else { return nil }
        return (rss, peak)
    }

    /// Bytes a partner's node caused to be written to storage, and the CPU time it used
    /// (user and system), since it started (from /proc).
    public func work(of name: String) -> (writtenBytes: Int, cpuSeconds: Double)? {
        guard let pid = pid(of: name),
            let io = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8),
            let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let written = io.split(separator: "\n").first(where: { $0.hasPrefix("write_bytes:") })
                .flatMap({ Int($0.dropFirst("write_bytes:".count).trimmingCharacters(in: .whitespaces)) })
        else { return nil }
        // The fields after the command's closing parenthesis: utime and stime are the 12th
        // and 13th of them, in clock ticks.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (written, (user + system) / max(ticks, 1))
    }

    /// Whether a partner's process is alive.
    public func isRunning(_ name: String) -> Bool {
        guard let pid = pids.withLock({ $0[name] }) else { return false }
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    /// Stops a partner's node: SIGTERM and a wait (graceful), or SIGKILL (a crash).
    public func stop(_ name: String, kill hard: Bool = false) {
        _ = terminate(name, signal: hard ? SIGKILL : SIGTERM)
    }

    /// Stops a node with SIGTERM and returns its exit status (nil when it had to be killed
    /// or was not running).
    public func stopReportingStatus(_ name: String) -> Int32? {
        terminate(name, signal: SIGTERM)
    }

    /// Sends `signal`, waits up to 10 s for the process to exit (then SIGKILL), and returns
    /// its exit status when it exited by itself.
    private func terminate(_ name: String, signal: Int32) -> Int32? {
        guard let pid = pids.withLock({ $0.removeValue(forKey: name) }) else { return nil }
        kill(pid, signal)
        let deadline = ContinuousClock.now + .seconds(10)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                return nil
            }
            usleep(20_000)
        }
        // WIFEXITED / WEXITSTATUS
        return status & 0x7f == 0 ? (status >> 8) & 0xff : nil
    }

    /// Stops every node this federation started.
    public func stopAll(kill hard: Bool = false) {
        for name in pids.withLock({ Array($0.keys) }) { stop(name, kill: hard) }
    }

    deinit { stopAll(kill: true) }
}
