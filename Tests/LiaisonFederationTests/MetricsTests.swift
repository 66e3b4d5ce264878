import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonTestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `/metrics` on live nodes: Prometheus' own checker accepts it, and the values follow what
/// the nodes did (docs/operations.md, "Metrics").
@Suite("Prometheus metrics", .serialized, .timeLimit(.minutes(3)))
struct MetricsTests {
    /// The value of the one sample of `name` whose labels include every pair of `labels`.
    static func sample(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            let series = line[..<space]
            let metric = series.prefix { $0 != "{" }
            guard metric == name else { continue }
            if labels.allSatisfy({ series.contains("\($0.key)=\"\($0.value)\"") }) {
                return Double(line[line.index(after: space)...])
            }
        }
        return nil
    }

    /// Runs `promtool check metrics` on `text`: its exit status and what it printed.
    static func promtool(_ text: String) throws -> (status: Int32, output: String) {
        let candidates = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw LiaisonError(
                .notFound,
                "promtool is not installed: run .ci/run, which installs Debian's prometheus package, or apt-get install prometheus"
            )
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: printed, as: UTF8.self))
    }

    @Test("promtool accepts a live node's /metrics, and the values follow what the node did; no item id appears")
    func liveNode() async throws {
        let fixture = try FederationFixture.demo()
        try fixture.federation.start("alpha")
        try fixture.federation.start("bravo")
        try await fixture.federation.waitUntilHealthy(["alpha", "bravo"])
        let alpha = try fixture.client("alpha")
        let put = try await alpha.put(
            PutItemBody(
                collection: "indicators", classification: "CONFIDENTIAL", relTo: ["bravo"],
                fields: ["indicator": .string("10.9.9.9")]))
        let atBravo = try await eventually { try await fixture.client("bravo").item(put.id) != nil }
        #expect(atBravo)
        // The link's counters reach the exposition once bravo has acknowledged.
        var text = ""
        let counted = try await eventually {
            text = try await alpha.metrics()
            return (Self.sample(text, "liaison_link_ops_total", ["partner": "bravo", "direction": "sent"]) ?? 0) >= 1
                && Self.sample(text, "liaison_link_lag_ops", ["partner": "bravo"]) == 0
        }
        #expect(counted, "\(text)")

        let scraped = text
        let checked = try await CommandRunner.offPool { try Self.promtool(scraped) }
        #expect(checked.status == 0, "promtool check metrics: \(checked.output)")
        #expect(text.hasPrefix("#") || text.contains("# HELP liaison_"))
        #expect(Self.sample(text, "liaison_node_info", ["node": "alpha"]) == 1)
        #expect(Self.sample(text, "liaison_link_state", ["partner": "bravo", "state": "up"]) == 1)
        #expect(Self.sample(text, "liaison_link_state", ["partner": "bravo", "state": "down"]) == 0)
        // Alpha has no link to charlie in the demo: no link series for it.
        #expect(Self.sample(text, "liaison_link_state", ["partner": "charlie"]) == nil)
        #expect((Self.sample(text, "liaison_store_log_ops") ?? 0) >= 1)
        #expect((Self.sample(text, "liaison_store_size_bytes") ?? 0) > 0)
        #expect(
            (Self.sample(text, "liaison_store_commit_duration_seconds_count", ["source": "local"]) ?? 0) >= 1)
        #expect(Self.sample(text, "liaison_partner_quarantined", ["partner": "bravo"]) == 0)
        #expect(Self.sample(text, "liaison_partner_strikes_total", ["partner": "bravo", "class": "forged"]) == 0)
        // Bravo committed alpha's op: its partner-commit histogram counted it.
        let atBravoText = try await fixture.client("bravo").metrics()
        #expect(
            (Self.sample(atBravoText, "liaison_store_commit_duration_seconds_count", ["source": "partner"]) ?? 0) >= 1)
        #expect(
            (Self.sample(atBravoText, "liaison_link_ops_total", ["partner": "alpha", "direction": "received"]) ?? 0)
                >= 1)
        // Labels are partner names and fixed vocabularies: no item or op ids.
        for text in [text, atBravoText] {
            #expect(!text.contains(put.id))
            #expect(!text.contains(put.opID.prefix(16)))
        }
    }

    @Test("/metrics needs the API's bearer token")
    func needsToken() async throws {
        let fixture = try FederationFixture.demo()
        try fixture.federation.start("alpha")
        try await fixture.federation.waitUntilHealthy(["alpha"])
        let url = try fixture.client("alpha").base.appendingPathComponent("/metrics")
        let (_, response) = try await URLSession.shared.data(from: url)
        #expect((response as? HTTPURLResponse)?.statusCode == 401)
    }

    @Test("promtool refuses what it should: the checker this suite relies on can fail")
    func promtoolBites() async throws {
        let bad = try await CommandRunner.offPool {
            try Self.promtool("# TYPE liaison_x_total counter\nliaison_x_total 1\n")
        }
        #expect(bad.status != 0, "\(bad.output)")
        let good = try await CommandRunner.offPool {
            try Self.promtool("# HELP liaison_x_total Things.\n# TYPE liaison_x_total counter\nliaison_x_total 1\n")
        }
        #expect(good.status == 0, "\(good.output)")
    }
}
