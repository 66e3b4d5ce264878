import ArgumentParser
import Dispatch
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import Synchronization

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "Run a three-partner federation on loopback and show who received what, and who was refused what and why.",
        discussion: """
            Renders the demo topology (topology/demo.yaml, embedded) into a temporary directory, starts one \
            'liaison run' per partner, writes items with different markings at each partner, waits until every \
            link has caught up, and checks that every item reached exactly the partners entitled to it. \
            Stops everything it started, also on Ctrl-C. Exit 0 only if every check passed.
            """
    )

    @Option(
        help: "A topology file to use instead of the embedded demo (its items assume partners alpha, bravo, charlie).")
    var topology: String?

    @Option(help: "Keep the node directories and logs here instead of a temporary directory.")
    var keep: String?

    @Option(help: "Seconds to wait for the federation to converge.")
    var timeout: Int = 30

    @Flag(help: "Print the embedded demo topology and exit.")
    var printTopology = false

    @Flag(help: "Print JSON.")
    var json = false

    struct Scenario {
        var label: String
        var originator: String
        var body: PutItemBody
    }

    static let scenarios: [Scenario] = [
        Scenario(
            label: "SECRET report for bravo",
            originator: "alpha",
            body: PutItemBody(
                collection: "reports", classification: "SECRET", relTo: ["bravo"],
                fields: ["title": .string("Port survey, sector 4"), "source": .string("HUMINT-7731")]
            )
        ),
        Scenario(
            label: "CONFIDENTIAL indicator for bravo and charlie",
            originator: "alpha",
            body: PutItemBody(
                collection: "indicators", classification: "CONFIDENTIAL", relTo: ["bravo", "charlie"],
                tags: ["phishing"],
                fields: ["indicator": .string("198.51.100.23"), "source": .string("sensor-12")]
            )
        ),
        Scenario(
            label: "ORCON indicator for ALL",
            originator: "alpha",
            body: PutItemBody(
                collection: "indicators", classification: "CONFIDENTIAL", relTo: ["ALL"], orcon: true,
                fields: ["indicator": .string("evil.example")]
            )
        ),
        Scenario(
            label: "TOP SECRET report for bravo",
            originator: "alpha",
            body: PutItemBody(
                collection: "reports", classification: "TOP SECRET", relTo: ["bravo"],
                fields: ["title": .string("Beyond the ceiling")])
        ),
        Scenario(
            label: "RESTRICTED indicator for alpha and bravo",
            originator: "charlie",
            body: PutItemBody(
                collection: "indicators", classification: "RESTRICTED", relTo: ["alpha", "bravo"],
                fields: ["indicator": .string("203.0.113.9")])
        ),
        Scenario(
            label: "RESTRICTED indicator for alpha only",
            originator: "charlie",
            body: PutItemBody(
                collection: "indicators", classification: "RESTRICTED", relTo: ["alpha"],
                fields: ["indicator": .string("192.0.2.77")])
        ),
        Scenario(
            label: "SECRET report for the WEST group",
            originator: "bravo",
            body: PutItemBody(
                collection: "reports", classification: "SECRET", relTo: ["WEST"],
                fields: ["title": .string("Western approaches")])
        ),
    ]

    struct Outcome: Encodable {
        var item: String
        var label: String
        var originator: String
        var expected: [String]
        var received: [String]
        var redacted: [String: [String]]
        var refused: [String]
        var ok: Bool
    }

    func run() async throws {
        if printTopology {
            print(DemoTopology.yaml)
            return
        }
        try await reportingErrorsAsync {
            let topologyModel =
                try topology.map { try Topology.load(path: $0) }
                ?? Topology.parse(DemoTopology.yaml, file: "demo.yaml (embedded)")
            for name in ["alpha", "bravo", "charlie"] where topologyModel.partner(name) == nil {
                throw LiaisonError(
                    .invalidArgument,
                    "the demo's items need partners alpha, bravo and charlie; the topology lacks \(name)")
            }
            let root =
                keep.map { URL(fileURLWithPath: $0) }
                ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                    "liaison-demo-\(UUID().uuidString.prefix(8))")
            guard let executable = Bundle.main.executableURL else {
                throw LiaisonError(.io, "cannot find the liaison executable to start nodes")
            }
            let federation = try LocalFederation(topology: topologyModel, root: root, executable: executable)
            let interrupt = Self.stopOnInterrupt(federation)
            defer {
                interrupt.cancel()
                federation.stopAll()
                if keep == nil { try? FileManager.default.removeItem(at: root) }
            }
            say("rendered \(topologyModel.partners.count) partners into \(root.path)")
            try federation.startAll()
            try await federation.waitUntilHealthy()
            say(
                "started \(topologyModel.partners.map(\.name).joined(separator: ", ")) on loopback (pinned mutual TLS 1.3)"
            )

            var outcomes = [Outcome]()
            var puts = [(Scenario, String, Set<String>, [Topology.Refusal])]()
            for scenario in Self.scenarios {
                let result = try await federation.client(scenario.originator).put(scenario.body)
                let request = try scenario.body.request()
                let directory = federation.directory(scenario.originator)
                let markings = try request.validatedMarkings(
                    config: directory.loadConfig(),
                    federation: FederationConfig.loadIfPresent(from: directory),
                    now: Date()
                )
                let reach = federation.topology.expectedReach(
                    originator: scenario.originator,
                    markings: markings,
                    collection: request.collection,
                    tags: Set(request.tags),
                    nodeIDs: federation.nodeIDs
                )
                puts.append((scenario, result.id, reach.holders, reach.refusals))
                say("put \(result.id.prefix(8)) at \(scenario.originator): \(scenario.label)")
            }

            try await waitForConvergence(federation, puts: puts.map { ($0.1, $0.2) })
            for (scenario, id, expected, refusals) in puts {
                var received = [String]()
                var redacted = [String: [String]]()
                for partner in federation.topology.partners {
                    if let view = try await federation.client(partner.name).item(id) {
                        received.append(partner.name)
                        if !view.redactedFields.isEmpty { redacted[partner.name] = view.redactedFields }
                    }
                }
                outcomes.append(
                    Outcome(
                        item: id,
                        label: scenario.label,
                        originator: scenario.originator,
                        expected: expected.sorted(),
                        received: received.sorted(),
                        redacted: redacted,
                        refused: refusals.map { "\($0.from) -> \($0.to): \($0.reason.rawValue)" },
                        ok: Set(received) == expected
                    )
                )
            }
            var links = [String: [LinkStatus]]()
            for partner in federation.topology.partners {
                links[partner.name] = try await federation.client(partner.name).links()
            }

            let passed = outcomes.allSatisfy(\.ok)
            if json {
                struct Report: Encodable {
                    var passed: Bool
                    var items: [Outcome]
                    var links: [String: [LinkStatus]]
                }
                try printJSON(Report(passed: passed, items: outcomes, links: links))
            } else {
                print("\nWHO RECEIVED WHAT")
                printTable(
                    header: ["ITEM", "FROM", "WHAT", "EXPECTED AT", "RECEIVED AT", "REDACTED", "CHECK"],
                    rows: outcomes.map { outcome in
                        [
                            String(outcome.item.prefix(8)), outcome.originator, outcome.label,
                            outcome.expected.joined(separator: ","),
                            outcome.received.joined(separator: ","),
                            outcome.redacted.sorted { $0.key < $1.key }.map {
                                "\($0.key): \($0.value.joined(separator: "+"))"
                            }.joined(separator: " "),
                            outcome.ok ? "ok" : "MISMATCH",
                        ]
                    }
                )
                print("\nWHO WAS REFUSED WHAT, AND WHY")
                printTable(
                    header: ["ITEM", "HOP", "REASON"],
                    rows: outcomes.flatMap { outcome in
                        outcome.refused.map { refusal in
                            let parts = refusal.components(separatedBy: ": ")
                            return [
                                String(outcome.item.prefix(8)), parts[0], parts.dropFirst().joined(separator: ": "),
                            ]
                        }
                    }
                )
                for partner in federation.topology.partners {
                    print("\nLINKS AT \(partner.name.uppercased())")
                    printLinks(links[partner.name] ?? [])
                }
                print(
                    passed
                        ? "\ndemo passed: every item reached exactly the partners entitled to it"
                        : "\ndemo FAILED: see MISMATCH rows above")
            }
            if !passed { throw ExitCode(1) }
        }
    }

    private func say(_ line: String) {
        if !json { FileHandle.standardError.write(Data("• \(line)\n".utf8)) }
    }

    /// Waits until every expected holder has its items and every link has been acknowledged
    /// to the end of its sender's log (so nothing more is on its way).
    private func waitForConvergence(
        _ federation: LocalFederation, puts: [(String, Set<String>)]
    ) async throws(LiaisonError) {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while true {
            var done = true
            for (id, holders) in puts {
                for holder in holders where try await federation.client(holder).item(id) == nil { done = false }
            }
            if done {
                for partner in federation.topology.partners {
                    for link in try await federation.client(partner.name).links()
                    where link.outbound && (link.lagOps > 0 || link.state != "up") {
                        done = false
                    }
                }
            }
            if done { return }
            guard ContinuousClock.now < deadline else {
                throw LiaisonError(
                    .io,
                    "the federation did not converge within \(timeout) s; node logs are in \(federation.root.path) (use --keep)"
                )
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// On Ctrl-C: stop every node, then exit.
    private static func stopOnInterrupt(_ federation: LocalFederation) -> any DispatchSourceSignal {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            federation.stopAll()
            FileHandle.standardError.write(Data("interrupted: stopped every node the demo started\n".utf8))
            Foundation.exit(130)
        }
        source.resume()
        return source
    }
}
