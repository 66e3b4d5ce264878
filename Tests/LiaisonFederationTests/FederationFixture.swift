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

    /// Whether every running node's outbound links are up and acknowledged to the end of
    /// its log: nothing is on its way anywhere.
    func quiet(_ names: [String]) async throws -> Bool {
        for name in names {
            for link in try await client(name).links() where link.outbound && (link.state != "up" || link.lagOps > 0) {
                return false
            }
        }
        return true
    }

    /// Waits until the named nodes are quiet; fails the test if they never are.
    func waitQuiet(_ names: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let settled = try await eventually { try await quiet(names) }
        #expect(settled, "links did not settle; logs in \(federation.root.path)", sourceLocation: sourceLocation)
    }
}
