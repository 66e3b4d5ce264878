import Foundation
import Testing

@testable import LiaisonDrill

#if canImport(Glibc)
    import Glibc
#endif

/// Ports handed out by `FreePort` are kept apart across processes through the claims file: a
/// CI run lost a test when a `liaison drill` process and the test process handed out the same
/// port and the second node to bind it could not start.
@Suite("Free loopback ports")
struct FreePortTests {
    /// A claims file of its own, removed afterwards.
    private func withClaimsFile(_ body: (String) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("liaison-ports-test-\(UUID().uuidString).claims").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try body(path)
    }

    /// The pid of a process that has exited.
    private func exitedPid() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    @Test("a port another live process claimed is not handed out")
    func claimedPortsAreSkipped() throws {
        try withClaimsFile { path in
            // pid 1 is alive for as long as the machine is; it claims every preferred port.
            let lines = FreePort.preferred.map { "\($0) 1\n" }.joined()
            try lines.write(toFile: path, atomically: true, encoding: .utf8)
            let port = try FreePort.find(claimsAt: path)
            #expect(!FreePort.preferred.contains(port))
            let after = try String(contentsOfFile: path, encoding: .utf8)
            #expect(after.contains("\(port) \(getpid())\n"))
        }
    }

    @Test("a symbolic link planted at the claims path is not followed: its target is untouched, ports still come")
    func plantedLinkIgnored() throws {
        try withClaimsFile { path in
            let target = path + ".target"
            defer { try? FileManager.default.removeItem(atPath: target) }
            try "precious\n".write(toFile: target, atomically: true, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
            let port = try FreePort.find(claimsAt: path)
            #expect(port > 0)
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "precious\n")
        }
    }

    @Test("claims of processes that have exited are dropped, and each port found is claimed")
    func deadClaimsAreDropped() throws {
        let dead = try exitedPid()
        try withClaimsFile { path in
            let lines = FreePort.preferred.map { "\($0) \(dead)\n" }.joined()
            try lines.write(toFile: path, atomically: true, encoding: .utf8)
            let first = try FreePort.find(claimsAt: path)
            let second = try FreePort.find(claimsAt: path)
            #expect(FreePort.preferred.contains(first))
            #expect(first != second)
            let claimed = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            #expect(claimed.sorted() == ["\(first) \(getpid())", "\(second) \(getpid())"].sorted())
        }
    }
}
