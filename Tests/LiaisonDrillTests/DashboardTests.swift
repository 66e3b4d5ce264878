import Foundation
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonTestSupport
import Synchronization
import Testing

@testable import LiaisonAPI

/// The dashboard page (`/dashboard`) in headless Chromium (Debian's `chromium`, installed by
/// `.ci/run`), during a real link-cut drill: the cut link shows down and the relay path in use.
@Suite("Dashboard in headless Chromium", .serialized, .timeLimit(.minutes(5)))
struct DashboardTests {
    static let topology = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("topology/drill.yaml").path

    /// Chromium's path; fails with what to install when it is missing.
    static func chromium() throws -> String {
        guard
            let path = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            throw LiaisonError(
                .notFound, "chromium is not installed: run .ci/run, which installs Debian's chromium package")
        }
        return path
    }

    /// Runs headless Chromium on `url` with `arguments` (`--dump-dom`, `--screenshot=…`),
    /// killed by pid after 60 s; answers what it printed on stdout.
    static func headless(_ url: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try chromium())
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "liaison-chromium-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: profile) }
        process.arguments =
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                "--user-data-dir=\(profile.path)", "--window-size=800,800", "--virtual-time-budget=4000",
            ] + arguments + [url]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: watchdog)
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        watchdog.cancel()
        return String(decoding: printed, as: UTF8.self)
    }

    /// The page as Chromium rendered it once its script drew the node's view (the body gets
    /// `data-updated`); tries a few times while the node's API is slow to answer.
    static func renderedDOM(_ url: String) throws -> String {
        var dom = ""
        for _ in 0..<5 {
            dom = try headless(url, ["--dump-dom"])
            if dom.contains("data-updated=") { break }
        }
        return dom
    }

    struct Seen: Sendable {
        var dom = ""
        var screenshot: Data?
        var failure: String?
    }

    @Test("during a link-cut drill alpha's dashboard shows its link to bravo down and the relay path in use")
    func linkCutDrill() async throws {
        _ = try Self.chromium()
        let topology = try Topology.parse(String(contentsOfFile: Self.topology, encoding: .utf8), file: Self.topology)
        var options = Drill.Options(scenario: .linkCut, target: "alpha-bravo", faultSeconds: 4)
        options.holdFaultSeconds = 60
        let seen = Mutex(Seen())
        options.beforeHeal = { federation in
            do {
                let client = try federation.client("alpha")
                let url = client.base.absoluteString + "/dashboard#token=" + client.token
                let dom = try await CommandRunner.offPool { try Self.renderedDOM(url) }
                let png = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "liaison-dashboard-\(UUID().uuidString.prefix(8)).png")
                _ = try await CommandRunner.offPool { try Self.headless(url, ["--screenshot=\(png.path)"]) }
                let data = FileManager.default.contents(atPath: png.path)
                try? FileManager.default.removeItem(at: png)
                seen.withLock {
                    $0.dom = dom
                    $0.screenshot = data
                }
            } catch {
                seen.withLock { $0.failure = "\(error)" }
            }
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "liaison-dashboard-drill-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let drill = try Drill(
            topology: topology, options: options, root: root, executable: try CommandRunner().executable)
        let report = try await drill.run()
        #expect(report.passed, "\(report)")

        let result = seen.withLock { $0 }
        #expect(result.failure == nil, "\(result.failure ?? "")")
        let dom = result.dom
        #expect(dom.contains("data-updated="), "the page never drew the node's view: \(dom.prefix(2000))")
        // The cut link: no channel, drawn as down (red, dashed), carried by a relay.
        #expect(dom.contains(#"data-edge="alpha|bravo" data-peer="bravo" data-state="relayed""#), "\(dom)")
        #expect(dom.contains(#"class="edge mine state-relayed""#))
        #expect(
            dom.contains(#/class="relay-path" data-peer="bravo" data-via="(delta|echo)"/#), "no relay path: \(dom)")
        #expect(dom.contains(#"<tr data-peer="bravo" data-state="relayed">"#))
        // alpha's other links stay up.
        #expect(dom.contains(#"data-peer="delta" data-state="up""#))
        // The screenshot is a PNG of the page; LIAISON_DASHBOARD_SCREENSHOT keeps it (the one in
        // docs/images was made that way).
        let png = try #require(result.screenshot, "no screenshot")
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 10_000)
        if let keep = ProcessInfo.processInfo.environment["LIAISON_DASHBOARD_SCREENSHOT"] {
            try png.write(to: URL(fileURLWithPath: keep))
        }
    }

    @Test("the page needs nothing from outside the node, and without a token it says what to do")
    func selfContained() async throws {
        let fixture = try DrillFreeNode()
        defer { fixture.stop() }
        try await fixture.start()
        let base = try fixture.federation.client("alpha").base.absoluteString
        let dom = try await CommandRunner.offPool { try Self.headless(base + "/dashboard", ["--dump-dom"]) }
        #expect(dom.contains("no token: open /dashboard#token="), "\(dom.prefix(3000))")
        // The one URL in it is SVG's namespace name, which nothing fetches.
        let page = DashboardPage.html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
        for external in ["http://", "https://", "src=", "@import", "url(", "//cdn"] {
            #expect(!page.contains(external), "the page refers to \(external)")
        }
    }
}

/// One rendered demo node (alpha) for tests that need a running API but no drill.
final class DrillFreeNode: Sendable {
    let federation: LocalFederation

    init() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("topology/demo.yaml")
        let topology = try Topology.parse(String(contentsOf: path, encoding: .utf8), file: path.path)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "liaison-dashboard-\(UUID().uuidString.prefix(8))")
        federation = try LocalFederation(topology: topology, root: root, executable: try CommandRunner().executable)
    }

    func start() async throws {
        try federation.start("alpha")
        try await federation.waitUntilHealthy(["alpha"])
    }

    func stop() {
        federation.stopAll(kill: true)
        try? FileManager.default.removeItem(at: federation.root)
    }
}
