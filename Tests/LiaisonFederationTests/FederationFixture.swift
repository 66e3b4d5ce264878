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

    /// What is still on its way on each outbound link of the named nodes ("node→partner"),
    /// or nil while a link is not up or a node does not answer.
    func backlog(_ names: [String]) async throws -> [String: UInt64]? {
        var lags = [String: UInt64]()
        for name in names {
            // A node too busy to answer within the client's timeout is slow, not wrong: no
            // reading this time (a node that stays silent stalls `waitQuiet`, which fails).
            guard let links = try? await client(name).links() else { return nil }
            for link in links where link.outbound {
                guard link.state == "up" else { return nil }
                lags["\(name)→\(link.peer)"] = link.lagOps
            }
        }
        return lags
    }

    /// Whether every running node's outbound links are up and acknowledged to the end of
    /// its log: nothing is on its way anywhere.
    func quiet(_ names: [String]) async throws -> Bool {
        try await backlog(names)?.values.allSatisfy { $0 == 0 } ?? false
    }

    /// Waits until the named nodes are quiet; fails the test if they stop making progress
    /// (no link's lag falls below its lowest so far for `stall`) before they are. A long
    /// catch-up on a loaded machine is slow, not wrong: only a stall fails. (Ops one node
    /// takes in grow its own outbound lag while they wait to be offered back, so a sum of
    /// lags is no measure of progress.)
    func waitQuiet(
        _ names: [String], stall: Duration = .seconds(30), sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        var lowest = [String: UInt64]()
        var settled = false
        while !settled {
            let progressed = try await eventually(timeout: stall) {
                guard let lags = try await backlog(names) else { return false }
                if lags.values.allSatisfy({ $0 == 0 }) { return true }
                var fell = false
                for (link, lag) in lags where lag < lowest[link, default: .max] {
                    fell = true
                    lowest[link] = lag
                }
                return fell
            }
            guard progressed else { break }
            settled = try await quiet(names)
        }
        #expect(settled, "links did not settle; logs in \(federation.root.path)", sourceLocation: sourceLocation)
    }
}
