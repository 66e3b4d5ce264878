import Foundation
import Hummingbird
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonStore
import LiaisonTestSupport
import Logging
import Synchronization
import Testing

@testable import LiaisonAPI

/// What a feed server that misbehaves can make a pull do, with the server played by a list
/// of pages (docs/taxii.md, "Feed pull"): the pull stays bounded and never skips ahead.
@Suite("Feed pull against a misbehaving server")
struct FeedPullGuardTests {
    /// A feed whose place is kept in a fresh directory.
    static func feed() -> (FeedSource, NodeDirectory, URL) {
        let root = TestDirectory.path("feed")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        return (
            FeedSource(url: "https://feeds.example/taxii2/root/", collection: "c1"), NodeDirectory(path: root.path),
            root
        )
    }

    static func objects(_ count: Int, from start: Int = 0) -> [JSONValue] {
        (start..<start + count).map { .object(["type": .string("indicator"), "id": .string("indicator--\($0)")]) }
    }

    static let definition = JSONValue.object([
        "type": .string("marking-definition"), "id": .string("marking-definition--1"),
    ])

    /// What the node was handed, call by call.
    final class Taken {
        var calls = [[JSONValue]]()
        var addedAfter = [String?]()
        func take(_ values: [JSONValue]) -> [STIXImportResult.Outcome] {
            calls.append(values)
            return values.map { _ in STIXImportResult.Outcome(STIXOutcome(id: "x", version: nil, status: .created)) }
        }
    }

    @Test("a server that gives the same next cursor twice stops the pull with an error, after two pages")
    func repeatedCursor() async throws {
        let (feed, directory, root) = Self.feed()
        defer { try? FileManager.default.removeItem(at: root) }
        let taken = Taken()
        var pages = 0
        await #expect {
            try await FeedPuller.pull(
                feed, directory: directory,
                pages: { _, _ throws(LiaisonError) in
                    pages += 1
                    return TAXIIClient.Page(objects: Self.objects(1, from: pages), more: true, next: "same")
                },
                take: { values throws(LiaisonError) in taken.take(values) }
            ).read
        } throws: { error in
            (error as? LiaisonError)?.message.contains("same next cursor twice") == true
        }
        #expect(pages == 2)
        #expect((try FeedState.load(directory)).isEmpty, "a pull that failed recorded a place")
    }

    @Test(
        "a date-added time ahead of this node's clock is not kept (the next pull does not skip ahead); a sane one is, and the next pull asks after it"
    )
    func dateAheadOfClock() async throws {
        let (feed, directory, root) = Self.feed()
        defer { try? FileManager.default.removeItem(at: root) }
        let taken = Taken()
        var asked = [String?]()
        func pull(_ last: String) async throws -> FeedPuller.Pull {
            try await FeedPuller.pull(
                feed, directory: directory,
                pages: { addedAfter, _ throws(LiaisonError) in
                    asked.append(addedAfter)
                    return TAXIIClient.Page(objects: Self.objects(2), more: false, dateAddedLast: last)
                },
                take: { values throws(LiaisonError) in taken.take(values) })
        }
        let ahead = try await pull("2999-01-01T00:00:00.000Z")
        #expect(ahead.addedAfter == nil)
        #expect(try FeedState.load(directory)[feed.key] == nil)

        let sane = STIXTimestamp(micros: Int64(Date().timeIntervalSince1970 * 1_000_000) - 3_600_000_000).text
        #expect(try await pull(sane).addedAfter == sane)
        #expect(try FeedState.load(directory)[feed.key] == sane)
        // A liar after that does not move the place either.
        #expect(try await pull("2999-01-01T00:00:00.000Z").addedAfter == sane)
        #expect(asked == [nil, nil, sane])
    }

    @Test(
        "a page of 2,500 objects is handed to the node in parts of at most 1,000, each with the page's marking definitions"
    )
    func chunks() async throws {
        let (feed, directory, root) = Self.feed()
        defer { try? FileManager.default.removeItem(at: root) }
        let taken = Taken()
        let pull = try await FeedPuller.pull(
            feed, directory: directory,
            pages: { _, _ throws(LiaisonError) in
                TAXIIClient.Page(objects: [Self.definition] + Self.objects(2_500), more: false)
            },
            take: { values throws(LiaisonError) in taken.take(values) })
        #expect(taken.calls.map(\.count) == [1_001, 1_001, 501])
        #expect(taken.calls.allSatisfy { $0.first == Self.definition })
        #expect(pull.read == 2_501)
        #expect(pull.tally.created == 2_503, "outcomes as the node answered them")
    }

    @Test("a server that always has more, with a new cursor each time, is read for at most 1,000 pages")
    func endlessServer() async throws {
        let (feed, directory, root) = Self.feed()
        defer { try? FileManager.default.removeItem(at: root) }
        let taken = Taken()
        var pages = 0
        let pull = try await FeedPuller.pull(
            feed, directory: directory,
            pages: { _, _ throws(LiaisonError) in
                pages += 1
                // More for one page past the cap, then done: a pull without the cap reads that
                // page too (and the test fails rather than runs forever).
                return TAXIIClient.Page(
                    objects: Self.objects(1, from: pages), more: pages <= FeedPuller.maxPages, next: "cursor-\(pages)")
            },
            take: { values throws(LiaisonError) in taken.take(values) })
        #expect(pages == FeedPuller.maxPages)
        #expect(pull.read == FeedPuller.maxPages)
    }
}

/// The TAXII server's reads of the store, in process at a rendered node.
@Suite("TAXII reads at a node")
struct TAXIIReadTests {
    /// A node of the demo federation, rendered and not started (the fixture holds its
    /// directory: it is removed when the fixture goes).
    static func node() throws -> (FederationFixture, LocalNode) {
        let fixture = try FederationFixture.demo()
        return (fixture, try LocalNode.open(fixture.federation.directory("alpha")))
    }

    static func object(_ n: Int, type: String) -> JSONValue {
        .object([
            "type": .string(type), "spec_version": .string("2.1"),
            "id": .string("\(type)--00000000-0000-4000-8000-\(String(format: "%012d", n))"),
            "created": .string("2026-01-01T00:00:00.000Z"), "modified": .string("2026-01-01T00:00:00.000Z"),
            "name": .string("object \(n)"), "is_family": .bool(false),
            "object_marking_refs": .array([.string(STIXMarkings.TLP.green.id)]),
        ])
    }

    @Test(
        "a request reads at most its scan cap of items; a selective filter goes on from there with the next cursor and finds every match once"
    )
    func scanCap() throws {
        let (fixture, node) = try Self.node()
        defer { withExtendedLifetime(fixture) {} }
        var values = (0..<25).map { Self.object($0, type: "malware") }
        values.append(Self.object(100, type: "tool"))
        values += (25..<40).map { Self.object($0, type: "malware") }
        values.append(Self.object(101, type: "tool"))
        let (outcomes, _) = try node.importSTIX(values, collection: "stix", now: Date())
        #expect(outcomes.allSatisfy { $0.succeeded }, "\(outcomes.filter { !$0.succeeded })")

        // Two types: the store cannot select by tag, so every item is read.
        var query = [("match[type]", "tool,campaign")]
        var found = [String]()
        var requests = 0
        while requests < 20 {
            requests += 1
            let filters = try TAXII.Filters(query, collection: "stix", allowsMatch: true)
            let page = try TAXII.page(collection: "stix", filters: filters, node: node, scanLimit: 10)
            found += page.entries.map(\.id)
            var body = [String: JSONValue]()
            TAXII.paging(&body, page: page, collection: "stix")
            guard body["more"] == .bool(true), let next = body["next"]?.stringValue else { break }
            query = [("match[type]", "tool,campaign"), ("next", next)]
        }
        #expect(
            found.sorted() == [
                "tool--00000000-0000-4000-8000-000000000100", "tool--00000000-0000-4000-8000-000000000101",
            ])
        #expect(requests == 5, "42 items read 10 at a time")
    }

    @Test(
        "the marking definition of a property's withholding is found by its id, as a TAXII client following a granular marking asks for it"
    )
    func withholdingDefinition() throws {
        let (fixture, node) = try Self.node()
        defer { withExtendedLifetime(fixture) {} }
        let markings = Markings(classification: "UNCLASSIFIED", releasableTo: ["ALL"], caveats: ["TLP:GREEN"])
        let fromCharlie = STIXMarkings.Handling(federation: "demo", markings: markings, withheldFrom: ["charlie"])
        guard case .object(var object) = Self.object(1, type: "malware") else { return }
        object["granular_markings"] = .array([
            .object(["selectors": .array([.string("name")]), "marking_ref": .string(fromCharlie.id)])
        ])
        let (outcomes, _) = try node.importSTIX(
            [.object(fromCharlie.definition), .object(object)], collection: "stix", now: Date())
        #expect(outcomes.allSatisfy { $0.succeeded }, "\(outcomes)")
        let page = try TAXII.page(
            collection: "stix", filters: TAXII.Filters([], collection: "stix", allowsMatch: true), node: node)
        let shown = try #require(page.entries.first?.object)
        guard case .array(let granular)? = shown["granular_markings"], case .object(let entry)? = granular.first,
            let ref = entry["marking_ref"]?.stringValue
        else {
            Issue.record("the object read names no granular marking: \(shown)")
            return
        }
        #expect(ref == fromCharlie.id)
        let found = try TAXII.findDefinition(ref, collection: "stix", node: node)
        #expect(found?.definition["id"] == .string(ref))
        #expect(try TAXII.findDefinition("marking-definition--\(UUID())", collection: "stix", node: node) == nil)
    }
}

/// The TAXII client against a real HTTP server on loopback that misbehaves.
@Suite("TAXII client against a hostile server")
struct TAXIIClientGuardTests {
    /// What the stand-in server saw.
    final class Seen: Sendable {
        let elsewhere = Mutex(0)
    }

    /// Runs `body` with a stand-in server on a free loopback port, stopped afterwards.
    static func withServer(
        _ seen: Seen, _ body: @Sendable (Int) async throws -> Void
    ) async throws {
        let router = Router()
        let taxii: HTTPFields = [.contentType: "application/taxii+json;version=2.1"]
        let envelope = ByteBuffer(string: #"{"more":false,"objects":[]}"#)
        // A redirect within the server is followed; one to another host is not.
        router.get("same/collections/c/objects/") { _, _ in
            Response(status: .found, headers: [.location: "/ok/collections/c/objects/"])
        }
        router.get("ok/collections/c/objects/") { _, _ in
            Response(status: .ok, headers: taxii, body: ResponseBody(byteBuffer: envelope))
        }
        router.get("away/collections/c/objects/") { request, _ in
            let port = request.head.authority?.split(separator: ":").last ?? ""
            return Response(status: .found, headers: [.location: "http://localhost:\(port)/elsewhere/"])
        }
        router.get("elsewhere/") { _, _ in
            seen.elsewhere.withLock { $0 += 1 }
            return Response(status: .ok, headers: taxii, body: ResponseBody(byteBuffer: envelope))
        }
        // 2 MiB, with a length, and streamed without one.
        let chunk = ByteBuffer(repeating: 0x20, count: 64 << 10)
        router.get("long/collections/c/objects/") { _, _ in
            Response(status: .ok, headers: taxii, body: ResponseBody(contentsOf: Array(repeating: chunk, count: 32)))
        }
        router.get("stream/collections/c/objects/") { _, _ in
            Response(
                status: .ok, headers: taxii,
                body: ResponseBody { writer in
                    for _ in 0..<32 { try await writer.write(chunk) }
                    try await writer.finish(nil)
                })
        }
        let port = Mutex(0)
        let (started, ready) = AsyncStream<Void>.makeStream()
        // Quiet: its shutdown by cancellation is logged as an error otherwise.
        var logger = Logger(label: "stand-in")
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                port.withLock { $0 = channel.localAddress?.port ?? 0 }
                ready.yield()
                ready.finish()
            }, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            for await _ in started { break }
            try await body(port.withLock { $0 })
            group.cancelAll()
        }
    }

    static func client(_ port: Int, _ root: String) -> TAXIIClient {
        TAXIIClient(
            apiRoot: URL(string: "http://127.0.0.1:\(port)/\(root)/")!, collection: "c",
            credentials: .bearer("feed-secret"))
    }

    @Test("a redirect within the server is followed; one to another host is refused and the credentials never reach it")
    func redirects() async throws {
        let seen = Seen()
        try await Self.withServer(seen) { port in
            let page = try await Self.client(port, "same").objects()
            #expect(page.objects.isEmpty && !page.more)
            await #expect {
                try await Self.client(port, "away").objects().more
            } throws: { error in
                (error as? LiaisonError)?.message.contains("another server") == true
            }
        }
        #expect(seen.elsewhere.withLock { $0 } == 0, "the client followed a redirect to another host")
    }

    @Test("an answer larger than the client's bound is cut off with an error, with a length and streamed without one")
    func oversized() async throws {
        try await Self.withServer(Seen()) { port in
            for root in ["long", "stream"] {
                var client = Self.client(port, root)
                client.maxResponseBytes = 1 << 20
                await #expect {
                    try await client.objects().more
                } throws: { error in
                    (error as? LiaisonError)?.message.contains("answered more than 1 MiB") == true
                }
                client.maxResponseBytes = 4 << 20
                // Within the bound the answer is read (and is not a TAXII envelope).
                await #expect {
                    try await client.objects().more
                } throws: { error in
                    (error as? LiaisonError)?.message.contains("not a TAXII envelope") == true
                }
            }
        }
    }
}

/// A large STIX import goes through the engine in parts, one turn each, and answers as the
/// whole request would.
@Suite("STIX import in parts")
struct STIXImportPartsTests {
    @Test(
        "parts hold every value once but the definitions, which every part holds; all versions of one object in one part; no part past its size but for the definitions"
    )
    func parts() {
        var values = (0..<250).map { TAXIIReadTests.object($0, type: "malware") }
        values[240] = TAXIIReadTests.object(0, type: "malware")  // a second version of object 0
        values[5] = .string("not an object")
        values[100] = .object(["type": .string("marking-definition"), "id": .string("marking-definition--x")])
        let parts = STIXImport.parts(of: values, size: 100)
        #expect(parts.count == 3)
        #expect(parts.allSatisfy { $0.contains(100) }, "a part without the request's definitions")
        var seen = [Int: Int]()
        for part in parts {
            #expect(part == part.sorted())
            #expect(part.count <= 101)
            for index in part where index != 100 { seen[index, default: 0] += 1 }
        }
        #expect(seen.count == 249 && seen.values.allSatisfy { $0 == 1 })
        #expect(parts.contains { $0.contains(0) && $0.contains(240) }, "two versions of one object in two parts")
        #expect(STIXImport.parts(of: [], size: 100) == [[]])
    }

    @Test(
        "the engine takes 250 objects in parts and answers one outcome per value, in order, as one request: created, a later version of an earlier object, a refusal, the definition once"
    )
    func engineParts() async throws {
        let (fixture, node) = try TAXIIReadTests.node()
        defer { withExtendedLifetime(fixture) {} }
        let engine = try ReplicationEngine(
            node: node, federation: try FederationConfig.load(from: fixture.federation.directory("alpha")),
            logger: Logger(label: "test"))
        var values = (0..<250).map { TAXIIReadTests.object($0, type: "malware") }
        guard case .object(var later) = TAXIIReadTests.object(0, type: "malware") else { return }
        later["modified"] = .string("2026-02-01T00:00:00.000Z")
        values[240] = .object(later)
        values[5] = .string("not an object")
        values[100] = .object(STIXMarkings.TLP.green.definition)
        let outcomes = try await engine.importSTIX(values, collection: "stix")
        #expect(outcomes.count == 250)
        #expect(
            outcomes[0].status == .superseded && outcomes[240].status == .created, "\(outcomes[0]) \(outcomes[240])")
        if case .refused = outcomes[5].status {} else { Issue.record("a broken value was not refused: \(outcomes[5])") }
        #expect(outcomes[100].status == .definition)
        #expect(
            outcomes.indices.filter { ![0, 5, 100, 240].contains($0) }.allSatisfy { outcomes[$0].status == .created })
        for index in [1, 99, 101, 199, 249] {
            #expect(outcomes[index].id == "malware--00000000-0000-4000-8000-\(String(format: "%012d", index))")
        }
        let held = try #require(try node.store.item(node.stixItemID("malware--00000000-0000-4000-8000-000000000000")))
        #expect(held.fields["modified"]?.value == Data("\"2026-02-01T00:00:00.000Z\"".utf8))
    }
}

extension STIXImportPartsTests {
    @Test("a request with more than 1,000 marking definitions is refused whole (every part would carry them)")
    func tooManyDefinitions() async throws {
        let (fixture, node) = try TAXIIReadTests.node()
        defer { withExtendedLifetime(fixture) {} }
        let engine = try ReplicationEngine(
            node: node, federation: try FederationConfig.load(from: fixture.federation.directory("alpha")),
            logger: Logger(label: "test"))
        let definitions = (0...1_000).map { n in
            JSONValue.object(["type": .string("marking-definition"), "id": .string("marking-definition--\(n)")])
        }
        await #expect {
            try await engine.importSTIX(definitions + [TAXIIReadTests.object(1, type: "malware")], collection: "stix")
                .count
        } throws: { error in
            (error as? LiaisonError)?.code == .invalidArgument
        }
        #expect(try node.store.item(node.stixItemID("malware--00000000-0000-4000-8000-000000000001")) == nil)
    }
}

/// A topology's HTTPS listener whose files the node cannot use stops the node with one error.
@Suite("TAXII HTTPS settings")
struct TAXIIHTTPSSettingsTests {
    @Test("a certificate or key the node cannot read, or a file holding none, is one error naming the file")
    func unreadableFiles() throws {
        let (fixture, node) = try TAXIIReadTests.node()
        defer { withExtendedLifetime(fixture) {} }
        let empty = fixture.federation.root.appendingPathComponent("empty.pem")
        try Data().write(to: empty)
        for path in ["/nonexistent/taxii.pem", empty.path] {
            let listener = TAXIIListener(
                listen: Endpoint(host: "127.0.0.1", port: 7601), certificate: path, key: path)
            #expect {
                _ = try TAXIIHTTPS.configuration(listener, identity: node.identity)
            } throws: { error in
                let failure = error as? LiaisonError
                return failure?.code == .invalidArgument && failure?.message.contains(path) == true
            }
        }
        // Without files, the node's own certificate serves.
        _ = try TAXIIHTTPS.configuration(
            TAXIIListener(listen: Endpoint(host: "127.0.0.1", port: 7601)), identity: node.identity)
    }
}
