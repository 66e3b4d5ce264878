import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonTestSupport
import Testing

/// A federation of real `liaison run` processes on loopback for one test: rendered into a
/// fresh temporary directory, every process stopped (by pid) when the test ends.
final class FederationFixture: Sendable {
    let federation: LocalFederation

    init(yaml: String) throws {
        let topology = try Topology.parse(yaml, file: "test topology")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "liaison-federation-\(UUID().uuidString.prefix(8))")
        federation = try LocalFederation(topology: topology, root: root, executable: try CommandRunner().executable)
    }

    /// The demo topology from the repository.
    static func demo() throws -> FederationFixture {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("topology/demo.yaml")
        return try FederationFixture(yaml: String(contentsOf: path, encoding: .utf8))
    }

    func client(_ name: String) throws -> NodeClient { try federation.client(name) }

    func start() async throws {
        try federation.startAll()
        try await federation.waitUntilHealthy()
    }

    deinit {
        federation.stopAll(kill: true)
        // LIAISON_TEST_KEEP=1 keeps the node directories and logs for a look after the run.
        if ProcessInfo.processInfo.environment["LIAISON_TEST_KEEP"] == nil {
            try? FileManager.default.removeItem(at: federation.root)
        } else {
            print("kept \(federation.root.path)")
        }
    }

    /// What is still on its way from the named nodes: the sum of their outbound links' lag,
    /// or nil while a link is not up.
    func backlog(_ names: [String]) async throws -> UInt64? {
        var total: UInt64 = 0
        for name in names {
            for link in try await client(name).links() where link.outbound {
                guard link.state == "up" else { return nil }
                total += link.lagOps
            }
        }
        return total
    }

    /// Whether every running node's outbound links are up and acknowledged to the end of
    /// its log: nothing is on its way anywhere.
    func quiet(_ names: [String]) async throws -> Bool {
        try await backlog(names) == 0
    }

    /// Waits until the named nodes are quiet; fails the test if they stop making progress
    /// (no fall in the backlog for `stall`) before they are. A long catch-up on a loaded
    /// machine is slow, not wrong: only a stall fails.
    func waitQuiet(
        _ names: [String], stall: Duration = .seconds(30), sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        var best = UInt64.max
        var settled = false
        while !settled {
            let progressed = try await eventually(timeout: stall) {
                guard let backlog = try await backlog(names) else { return false }
                if backlog == 0 { return true }
                defer { best = min(best, backlog) }
                return backlog < best
            }
            guard progressed else { break }
            settled = try await quiet(names)
        }
        #expect(settled, "links did not settle; logs in \(federation.root.path)", sourceLocation: sourceLocation)
    }
}
