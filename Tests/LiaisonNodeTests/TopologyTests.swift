import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonTestSupport
import Testing

/// `topology/*.yaml`: parsing, the checks that point at the line at fault, and who an item
/// should reach.
@Suite("Topology")
struct TopologyTests {
    static let demoPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // LiaisonReplicationTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // the package
        .appendingPathComponent("topology/demo.yaml")
        .path

    static func demo() throws -> Topology { try Topology.load(path: demoPath) }

    // MARK: - The demo topology

    @Test("the demo topology has three partners and four links with their filters")
    func parsesDemo() throws {
        let topology = try Self.demo()
        #expect(topology.federation == "demo")
        #expect(topology.classifications == ClassificationLadder.standard)
        #expect(topology.partners.map(\.name) == ["alpha", "bravo", "charlie"])
        #expect(topology.partners.map(\.groups) == [["EAST"], ["EAST", "WEST"], ["WEST"]])
        #expect(topology.partner("alpha")?.endpoints == [Endpoint(host: "127.0.0.1", port: 7401)])
        #expect(topology.partner("bravo")?.api == Endpoint(host: "127.0.0.1", port: 7502))
        #expect(topology.partner("charlie")?.endpoints == [Endpoint(host: "127.0.0.1", port: 7403)])

        #expect(topology.links.count == 4)
        #expect(
            topology.links.map { "\($0.from)->\($0.to)" } == [
                "alpha->bravo", "bravo->alpha", "bravo->charlie", "charlie->bravo",
            ])
        #expect(
            topology.link(from: "alpha", to: "bravo")?.filter
                == LinkFilter(
                    collections: ["reports", "indicators"], maxClassification: "SECRET", redactFields: ["source"])
        )
        #expect(topology.link(from: "bravo", to: "alpha")?.filter == .passAll)
        #expect(
            topology.link(from: "bravo", to: "charlie")?.filter
                == LinkFilter(collections: ["indicators"], maxClassification: "CONFIDENTIAL")
        )
        #expect(topology.link(from: "charlie", to: "bravo")?.filter == LinkFilter(maxClassification: "SECRET"))
        #expect(topology.link(from: "alpha", to: "charlie") == nil)
    }

    @Test("a missing topology file is reported by path")
    func missingFile() {
        do {
            _ = try Topology.load(path: "/nonexistent/topology.yaml")
            Issue.record("a missing file loaded")
        } catch {
            #expect(error.code == .notFound)
            #expect(error.message.contains("/nonexistent/topology.yaml"))
        }
    }

    // MARK: - Inconsistencies, with the line at fault

    /// One broken topology. The line at fault carries the comment `# <-`.
    struct Broken: Sendable, CustomTestStringConvertible {
        var label: String
        var yaml: String
        /// A fragment the message must contain.
        var says: String

        var testDescription: String { label }

        /// The 1-based line marked `# <-`.
        var line: Int? {
            yaml.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("# <-") }.map {
                $0 + 1
            }
        }
    }

    static let partners = """
        federation: test
        partners:
          alpha:
            endpoints: [127.0.0.1:7401]
            api: 127.0.0.1:7501
          bravo:
            endpoints: [127.0.0.1:7402]
            api: 127.0.0.1:7502

        """

    static let broken: [Broken] = [
        Broken(
            label: "a link to an unknown partner",
            yaml: partners + """
                links:
                  - from: alpha
                    to: delta  # <-
                """,
            says: "unknown partner 'delta'"
        ),
        Broken(
            label: "a link from an unknown partner",
            yaml: partners + """
                links:
                  - from: alpha
                    to: bravo
                  - from: zulu  # <-
                    to: alpha
                """,
            says: "unknown partner 'zulu'"
        ),
        Broken(
            label: "an endpoint used twice",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                  bravo:
                    endpoints:
                      - 127.0.0.1:7409
                      - 127.0.0.1:7401  # <-
                    api: 127.0.0.1:7502
                """,
            says: "endpoint 127.0.0.1:7401 is used by both 'alpha' and 'bravo'"
        ),
        Broken(
            label: "an api address that is another partner's endpoint",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                  bravo:
                    endpoints: [127.0.0.1:7402]
                    api: 127.0.0.1:7401  # <-
                """,
            says: "is used by both 'alpha' and 'bravo'"
        ),
        Broken(
            label: "an unknown classification in max-classification",
            yaml: partners + """
                links:
                  - from: alpha
                    to: bravo
                    filter:
                      collections: [reports]
                      max-classification: SECRETISH  # <-
                """,
            says: "unknown classification 'SECRETISH'"
        ),
        Broken(
            label: "a filter whose collections list is empty",
            yaml: partners + """
                links:
                  - from: alpha
                    to: bravo
                  - from: bravo
                    to: alpha
                    filter:
                      max-classification: SECRET
                      collections: []  # <-
                """,
            says: "names nothing"
        ),
        Broken(
            label: "an empty redact list",
            yaml: partners + """
                links:
                  - from: alpha
                    to: bravo
                    filter:
                      redact: []  # <-
                """,
            says: "names nothing"
        ),
        Broken(
            label: "an unknown key in a link",
            yaml: partners + """
                links:
                  - from: alpha
                    to: bravo
                    colour: red  # <-
                """,
            says: "unknown key 'colour'"
        ),
        Broken(
            label: "an unknown key in a filter",
            yaml: partners + """
                links:
                  - from: alpha
                    to: bravo
                    filter:
                      collections: [reports]
                      redacted: [source]  # <-
                """,
            says: "unknown key 'redacted'"
        ),
        Broken(
            label: "an unknown key in a partner",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    port: 9  # <-
                """,
            says: "unknown key 'port'"
        ),
        Broken(
            label: "an unknown top-level key",
            yaml: partners + """
                link:  # <-
                  - from: alpha
                    to: bravo
                """,
            says: "unknown key 'link'"
        ),
        Broken(
            label: "a link from a partner to itself",
            yaml: partners + """
                links:
                  - from: alpha
                    to: bravo
                  - from: bravo  # <-
                    to: bravo
                """,
            says: "a link from 'bravo' to itself"
        ),
        Broken(
            label: "a link given twice",
            yaml: partners + """
                links:
                  - from: alpha
                    to: bravo
                  - from: bravo
                    to: alpha
                  - from: alpha  # <-
                    to: bravo
                """,
            says: "appears twice"
        ),
        Broken(
            label: "an unknown channel mode",
            yaml: partners + """
                channels:
                  mode: round-robin  # <-
                """,
            says: "unknown channel mode 'round-robin'; use failover or active-active"
        ),
        Broken(
            label: "a dead-after shorter than two heartbeats",
            yaml: partners + """
                channels:
                  heartbeat-ms: 500
                  dead-after-ms: 600  # <-
                """,
            says: "at least twice heartbeat-ms"
        ),
        Broken(
            label: "an ack deadline shorter than two dead-afters",
            yaml: partners + """
                channels:
                  dead-after-ms: 1000
                  ack-deadline-ms: 1500  # <-
                """,
            says: "ack-deadline-ms must be at least twice dead-after-ms"
        ),
        Broken(
            label: "an ack deadline under a second",
            yaml: partners + """
                channels:
                  ack-deadline-ms: 999  # <-
                """,
            says: "ack-deadline-ms must be a whole number of milliseconds from 1000 to 86400000"
        ),
        Broken(
            label: "a heartbeat that is no number",
            yaml: partners + """
                channels:
                  heartbeat-ms: soon  # <-
                """,
            says: "heartbeat-ms must be a whole number of milliseconds"
        ),
        Broken(
            label: "a relay flag that is no boolean",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    relay: perhaps  # <-
                """,
            says: "relay of 'alpha' must be true or false"
        ),
        Broken(
            label: "a feed that is no URL",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    feeds:
                      - url: feeds.example  # <-
                        collection: c1
                """,
            says: "feed url 'feeds.example' is not an http(s) URL of a TAXII API root"
        ),
        Broken(
            label: "a feed polled too often",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    feeds:
                      - url: https://feeds.example/api1/  # <-
                        collection: c1
                        every: 1
                """,
            says: "feed 'every' 1 s: use 10 to 86400 seconds"
        ),
        Broken(
            label: "a feed with a user and no password file",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    feeds:
                      - url: https://feeds.example/api1/  # <-
                        collection: c1
                        user: analyst
                """,
            says: "a feed's user needs a password file"
        ),
        Broken(
            label: "a feed releasing to an unknown partner",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    feeds:
                      - url: https://feeds.example/api1/
                        collection: c1
                        rel-to: [zulu]  # <-
                """,
            says: "names unknown partner or group 'zulu' in rel-to"
        ),
        Broken(
            label: "a feed with a classification off the ladder",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    feeds:
                      - url: https://feeds.example/api1/
                        collection: c1
                        classification: COSMIC  # <-
                """,
            says: "a feed's classification"
        ),
        Broken(
            label: "a taxii listener with a certificate and no key",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    taxii:
                      listen: 127.0.0.1:7601  # <-
                      certificate: /etc/liaison/taxii.pem
                """,
            says: "taxii needs both a certificate and its key"
        ),
        Broken(
            label: "a taxii client pinned by something that is no SHA-256",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    taxii:
                      listen: 127.0.0.1:7601
                      clients:
                        - {name: opencti, sha256: AB12, role: reader}  # <-
                """,
            says: "taxii client 'opencti': sha256 must be the 64 lower-case hex digits"
        ),
        Broken(
            label: "a taxii client with a role that does not exist",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    taxii:
                      listen: 127.0.0.1:7601
                      clients:
                        - {name: opencti, sha256: FP, role: admin}  # <-
                """.replacingOccurrences(of: "FP", with: String(repeating: "ab", count: 32)),
            says: "role 'admin' is not one of reader, writer, operator, auditor"
        ),
        Broken(
            label: "a taxii client certificate listed twice",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    taxii:
                      listen: 127.0.0.1:7601
                      clients:
                        - {name: opencti, sha256: FP, role: reader}
                        - {name: misp, sha256: FP, role: writer}  # <-
                """.replacingOccurrences(of: "FP", with: String(repeating: "ab", count: 32)),
            says: "its certificate is listed twice"
        ),
        Broken(
            label: "a taxii listener on the address of the API",
            yaml: """
                federation: test
                partners:
                  alpha:
                    endpoints: [127.0.0.1:7401]
                    api: 127.0.0.1:7501
                    taxii:
                      listen: 127.0.0.1:7501  # <-
                """,
            says: "the taxii listener of 'alpha' is on 127.0.0.1:7501, an address 'alpha' already uses"
        ),
    ]

    @Test("a partner's feeds are read and rendered into its federation.json only")
    func feeds() throws {
        let topology = try Topology.parse(
            """
            federation: test
            partners:
              alpha:
                endpoints: [127.0.0.1:7401]
                api: 127.0.0.1:7501
                groups: [EAST]
                feeds:
                  - url: https://feeds.example/api1/
                    collection: 91a7b528-80eb-42ed-a74d-c6fbd5a26116
                    into: indicators
                    every: 600
                    user: analyst
                    password-file: /etc/liaison/feed.password
                    classification: restricted
                    rel-to: [bravo, EAST]
              bravo:
                endpoints: [127.0.0.1:7402]
                api: 127.0.0.1:7502
            links:
              - from: alpha
                to: bravo
            """
        )
        let feed = try #require(topology.partner("alpha")?.feeds.first)
        #expect(feed.url == "https://feeds.example/api1/")
        #expect(feed.collection == "91a7b528-80eb-42ed-a74d-c6fbd5a26116")
        #expect(feed.into == "indicators")
        #expect(feed.everySeconds == 600)
        #expect(feed.user == "analyst" && feed.passwordFile == "/etc/liaison/feed.password")
        #expect(feed.classification == "RESTRICTED")
        #expect(feed.relTo == ["bravo", "EAST"])
        #expect(topology.partner("bravo")?.feeds.isEmpty == true)

        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        _ = try topology.render(into: root, now: Date())
        let alpha = try FederationConfig.load(from: NodeDirectory(path: root.appendingPathComponent("alpha").path))
        let bravo = try FederationConfig.load(from: NodeDirectory(path: root.appendingPathComponent("bravo").path))
        #expect(alpha.feeds == [feed])
        #expect(bravo.feeds == nil)
    }

    @Test(
        "a partner's TAXII listener over HTTPS, with its client certificates and their roles, is rendered into its federation.json only"
    )
    func taxiiListener() throws {
        let reader = String(repeating: "0f", count: 32)
        let topology = try Topology.parse(
            """
            federation: test
            partners:
              alpha:
                endpoints: [127.0.0.1:7401]
                api: 127.0.0.1:7501
                taxii:
                  listen: 0.0.0.0:7601
                  certificate: /etc/liaison/taxii.pem
                  key: /etc/liaison/taxii.key
                  clients:
                    - name: opencti
                      sha256: \(reader)
                      role: reader
              bravo:
                endpoints: [127.0.0.1:7402]
                api: 127.0.0.1:7502
            links:
              - from: alpha
                to: bravo
            """
        )
        let listener = try #require(topology.partner("alpha")?.taxii)
        #expect(listener.listen == Endpoint(host: "0.0.0.0", port: 7601))
        #expect(listener.certificate == "/etc/liaison/taxii.pem" && listener.key == "/etc/liaison/taxii.key")
        #expect(listener.clients == [TAXIIListener.Client(name: "opencti", sha256: reader, role: "reader")])
        #expect(listener.clients.first?.apiRole == .reader)

        let root = NodeDirectoryTests.scratch()
        defer { NodeDirectoryTests.cleanUp(root) }
        _ = try topology.render(into: root, now: Date())
        let alpha = try FederationConfig.load(from: NodeDirectory(path: root.appendingPathComponent("alpha").path))
        let bravo = try FederationConfig.load(from: NodeDirectory(path: root.appendingPathComponent("bravo").path))
        #expect(alpha.taxii == listener)
        #expect(bravo.taxii == nil)
    }

    @Test("channel settings and relay partners are read; unset values keep their defaults")
    func channelsAndRelays() throws {
        let topology = try Topology.parse(
            """
            federation: test
            partners:
              alpha:
                endpoints: [127.0.0.1:7401, 127.0.0.1:7411]
                api: 127.0.0.1:7501
              delta:
                endpoints: [127.0.0.1:7404]
                api: 127.0.0.1:7504
                relay: true
            channels:
              mode: active-active
              heartbeat-ms: 100
              dead-after-ms: 400
              ack-deadline-ms: 5000
            """
        )
        #expect(topology.partner("alpha")?.endpoints.count == 2)
        #expect(topology.partner("alpha")?.relay == false)
        #expect(topology.partner("delta")?.relay == true)
        #expect(topology.channels.mode == .activeActive)
        #expect(topology.channels.heartbeatMillis == 100)
        #expect(topology.channels.deadAfterMillis == 400)
        #expect(topology.channels.ackDeadlineMillis == 5_000)
        #expect(topology.channels.relayAfterMillis == ChannelSettings().relayAfterMillis)
        #expect(try Self.demo().channels == ChannelSettings())
    }

    @Test("each inconsistency is refused with the file and the line at fault", arguments: broken)
    func refusesInconsistency(_ broken: Broken) throws {
        let line = try #require(broken.line, "the case marks no line")
        do {
            let topology = try Topology.parse(broken.yaml, file: "broken.yaml")
            Issue.record("accepted: \(topology.partners.map(\.name)) \(topology.links.map { "\($0.from)->\($0.to)" })")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("broken.yaml:\(line): "), "wrong file or line: \(error.message)")
            #expect(error.message.contains(broken.says), "\(error.message)")
        }
    }

    @Test("invalid YAML is refused with the file and the line at fault")
    func refusesInvalidYAML() throws {
        let yaml = """
            federation: test
            partners:
              alpha:
                endpoints: [127.0.0.1:7401]
                api: 127.0.0.1:7501: oops  # <-
            """
        let line = try #require(Broken(label: "", yaml: yaml, says: "").line)
        #expect(line == 5)
        do {
            _ = try Topology.parse(yaml, file: "broken.yaml")
            Issue.record("invalid YAML accepted")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("broken.yaml"), "\(error.message)")
            #expect(error.message.contains("not valid YAML"), "\(error.message)")
            #expect(error.message.contains(" \(line):"), "the message does not name line \(line): \(error.message)")
        }
    }

    // MARK: - Reach

    static let nodeIDs = [
        "alpha": TestNode.alice.nodeID, "bravo": TestNode.bob.nodeID, "charlie": TestNode.carol.nodeID,
    ]

    static func reach(
        _ markings: Markings, collection: String = "indicators", tags: Set<String> = []
    )
        throws -> (holders: Set<String>, refusals: [String])
    {
        let (holders, refusals) = try demo().expectedReach(
            originator: "alpha",
            markings: markings,
            collection: collection,
            tags: tags,
            nodeIDs: nodeIDs
        )
        return (holders, refusals.map { "\($0.from)->\($0.to): \($0.reason.rawValue)" })
    }

    @Test("a CONFIDENTIAL indicator releasable to bravo and charlie reaches all three, through bravo")
    func reachThroughBravo() throws {
        let (holders, refusals) = try Self.reach(
            Markings(classification: "CONFIDENTIAL", releasableTo: ["bravo", "charlie"]))
        #expect(holders == ["alpha", "bravo", "charlie"])
        #expect(refusals.isEmpty)
    }

    @Test("the same item as ORCON stops at bravo: bravo may not pass it on to charlie")
    func orconStopsAtBravo() throws {
        let (holders, refusals) = try Self.reach(
            Markings(classification: "CONFIDENTIAL", releasableTo: ["bravo", "charlie"], orcon: true)
        )
        #expect(holders == ["alpha", "bravo"])
        #expect(refusals == ["bravo->charlie: orcon"])
    }

    @Test("a TOP SECRET item stays with alpha: above the ceiling of alpha -> bravo")
    func topSecretStaysHome() throws {
        let (holders, refusals) = try Self.reach(
            Markings(classification: "TOP SECRET", releasableTo: ["bravo", "charlie"]))
        #expect(holders == ["alpha"])
        #expect(refusals == ["alpha->bravo: above-classification-ceiling"])
    }

    @Test("collection, releasability and the second hop's ceiling each stop an item at bravo")
    func otherRefusalsAtBravo() throws {
        let report = try Self.reach(
            Markings(classification: "CONFIDENTIAL", releasableTo: ["bravo", "charlie"]), collection: "reports")
        #expect(report.holders == ["alpha", "bravo"])
        #expect(report.refusals == ["bravo->charlie: collection-not-shared"])

        let bravoOnly = try Self.reach(Markings(classification: "CONFIDENTIAL", releasableTo: ["bravo"]))
        #expect(bravoOnly.holders == ["alpha", "bravo"])
        #expect(bravoOnly.refusals == ["bravo->charlie: not-releasable"])

        let byGroup = try Self.reach(Markings(classification: "CONFIDENTIAL", releasableTo: ["WEST"]))
        #expect(byGroup.holders == ["alpha", "bravo", "charlie"], "REL TO a group reaches its members")

        let secret = try Self.reach(Markings(classification: "SECRET", releasableTo: ["ALL"]))
        #expect(secret.holders == ["alpha", "bravo"])
        #expect(secret.refusals == ["bravo->charlie: above-classification-ceiling"])
    }
}
