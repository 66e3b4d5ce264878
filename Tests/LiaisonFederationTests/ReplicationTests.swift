import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonStore
import LiaisonTestSupport
import LiaisonTransport
import LiaisonWire
import NIOCore
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

#if canImport(Glibc)
    import Glibc
#endif

/// Real processes, real pinned TLS on loopback (DESIGN §12). Topology: topology/demo.yaml —
/// alpha <-> bravo <-> charlie, no alpha–charlie link; alpha->bravo redacts `source` and
/// caps at SECRET; bravo->charlie carries only indicators up to CONFIDENTIAL.
@Suite("Replication between real nodes", .serialized, .timeLimit(.minutes(3)))
struct ReplicationTests {
    let all = ["alpha", "bravo", "charlie"]

    @Test("an item releasable to bravo only reaches bravo and never charlie")
    func releasableToBravoOnly() async throws {
        let fixture = try FederationFixture.demo()
        try await fixture.start()
        let put = try await fixture.client("alpha").put(
            PutItemBody(
                collection: "indicators", classification: "CONFIDENTIAL", relTo: ["bravo"],
                fields: ["indicator": .string("10.1.1.1")])
        )
        let atBravo = try await eventually { try await fixture.client("bravo").item(put.id) != nil }
        #expect(atBravo)
        try await fixture.waitQuiet(all)
        #expect(try await fixture.client("charlie").item(put.id) == nil)
        let withheld = try await fixture.client("bravo").audit().filter { $0.kind == .filterWithheld }
        #expect(withheld.contains { $0.peer == "charlie" && $0.detail.contains("not-releasable") })
    }

    @Test("POST /v1/items with an unknown REL TO is a 400 naming the known partners and groups, and writes nothing")
    func unknownReleasabilityOverTheAPI() async throws {
        let fixture = try FederationFixture.demo()
        try fixture.federation.start("alpha")
        try await fixture.federation.waitUntilHealthy(["alpha"])
        let alpha = try fixture.client("alpha")
        do {
            _ = try await alpha.put(PutItemBody(collection: "reports", relTo: ["bravo", "delta"]))
            Issue.record("REL TO delta was accepted")
        } catch {
            #expect(error.code == .invalidArgument, "\(error)")
            #expect(error.message == "unknown REL TO 'delta': known partners alpha, bravo, charlie; groups EAST, WEST")
        }
        #expect(try await alpha.items(all: true).isEmpty)
        #expect(try await alpha.audit().filter { $0.kind == .opsCreated }.isEmpty)
        let known = try await alpha.put(PutItemBody(collection: "reports", relTo: ["bravo", "WEST"]))
        #expect(try await alpha.item(known.id)?.releasableTo == ["WEST", "bravo"])
    }

    @Test("the probes answer without a token: /livez and /healthz say ok, /readyz says ready while the store answers")
    func probes() async throws {
        let fixture = try FederationFixture.demo()
        try fixture.federation.start("alpha")
        try await fixture.federation.waitUntilHealthy(["alpha"])
        let url = try fixture.client("alpha").base
        for (path, expected) in [("/livez", "ok\n"), ("/healthz", "ok\n"), ("/readyz", "ready\n")] {
            // No bearer token: an orchestrator's probe has none.
            let (data, response) = try await URLSession.shared.data(from: url.appendingPathComponent(path))
            #expect((response as? HTTPURLResponse)?.statusCode == 200, "\(path)")
            #expect(String(decoding: data, as: UTF8.self) == expected, "\(path)")
        }
    }

    @Test("readiness fails, with what to do, when the store does not answer or the node has no links")
    func readinessFailures() {
        #expect(APIServer.readiness(links: 2) {} == (true, "ready"))
        let broken = APIServer.readiness(links: 2) { throw LiaisonError(.corrupt, "disk on fire") }
        #expect(!broken.ready && broken.text.contains("store does not answer: disk on fire"), "\(broken)")
        let alone = APIServer.readiness(links: 0) {}
        #expect(!alone.ready && alone.text.contains("render the topology again"), "\(alone)")
    }

    @Test("an item for charlie reaches charlie through bravo, redacted as the first hop says")
    func multiHop() async throws {
        let fixture = try FederationFixture.demo()
        try await fixture.start()
        let put = try await fixture.client("alpha").put(
            PutItemBody(
                collection: "indicators", classification: "CONFIDENTIAL", relTo: ["bravo", "charlie"],
                fields: ["indicator": .string("203.0.113.5"), "source": .string("agent-9")]
            )
        )
        let atCharlie = try await eventually { try await fixture.client("charlie").item(put.id) != nil }
        #expect(atCharlie)
        let view = try #require(try await fixture.client("charlie").item(put.id))
        #expect(view.fields["indicator"] == .string("203.0.113.5"))
        #expect(view.redactedFields == ["source"])
        #expect(view.digest == put.digest)
        let audit = try await fixture.client("charlie").audit()
        #expect(!audit.contains { $0.detail.contains("agent-9") })
    }

    @Test(
        "a field alpha's link to charlie redacts never reaches charlie in clear through bravo, whose link redacts nothing"
    )
    func redactionBindsOnEveryPath() async throws {
        let fixture = try FederationFixture(
            yaml: QuarantineTests.triangle.replacingOccurrences(
                of: "- {from: alpha, to: charlie}", with: "- {from: alpha, to: charlie, filter: {redact: [source]}}"))
        // Charlie starts once bravo holds the item from alpha, so bravo has it to pass on
        // (had charlie passed it to bravo first, bravo would never send it back to charlie:
        // a CI run saw that race).
        try fixture.federation.start("alpha")
        try fixture.federation.start("bravo")
        try await fixture.federation.waitUntilHealthy(["alpha", "bravo"])
        let put = try await fixture.client("alpha").put(
            PutItemBody(
                collection: "reports", relTo: ["bravo", "charlie"],
                fields: ["title": .string("harbour"), "source": .string("agent-9")]))
        let bravo = try fixture.client("bravo")
        let charlie = try fixture.client("charlie")
        #expect(try await eventually { try await bravo.item(put.id) != nil })
        try fixture.federation.start("charlie")
        try await fixture.federation.waitUntilHealthy(["charlie"])
        #expect(try await eventually { try await charlie.item(put.id) != nil })
        try await fixture.waitQuiet(["alpha", "bravo", "charlie"])
        // Bravo holds the value (nothing withholds it from bravo) and has passed the op on.
        #expect(try await bravo.item(put.id)?.fields["source"] == .string("agent-9"))
        let bravoSent = try await bravo.audit(limit: 10_000).contains {
            $0.kind == .opsRedacted && $0.peer == "charlie"
        }
        #expect(bravoSent, "bravo did not record redacting the op it passed to charlie")
        let view = try #require(try await charlie.item(put.id))
        #expect(view.redactedFields == ["source"], "charlie holds the value alpha withheld from it")
        #expect(view.fields["title"] == .string("harbour"))
        #expect(view.digest == put.digest)
    }

    @Test("concurrent edits at three partners converge to one digest everywhere")
    func concurrentEditsConverge() async throws {
        let fixture = try FederationFixture.demo()
        try await fixture.start()
        let put = try await fixture.client("alpha").put(
            PutItemBody(
                collection: "indicators", classification: "CONFIDENTIAL", relTo: ["bravo", "charlie"], tags: ["triage"],
                fields: ["title": .string("first")], annotations: true
            )
        )
        for name in all {
            let arrived = try await eventually { try await fixture.client(name).item(put.id) != nil }
            #expect(arrived, "\(name)")
        }
        async let a = fixture.client("alpha").update(
            put.id, UpdateItemBody(fields: ["title": .string("alpha's")], addTags: ["red"], removeTags: ["triage"]))
        async let b = fixture.client("bravo").update(
            put.id, UpdateItemBody(fields: ["title": .string("bravo's"), "score": .integer(3)], addTags: ["triage"]))
        async let c = fixture.client("charlie").update(
            put.id, UpdateItemBody(fields: ["title": .string("charlie's")], addTags: ["blue"]))
        _ = try await (a, b, c)
        try await fixture.waitQuiet(all)
        var views = [String: ItemView]()
        for name in all {
            let view = try #require(try await fixture.client(name).item(put.id))
            views[name] = view
        }
        let digests = Set(views.values.map(\.digest))
        #expect(digests.count == 1, "\(views.mapValues(\.digest))")
        // Every node shows the same tags, with both adds that no one removed. Whether bravo's
        // "triage" survives alpha's remove depends on whether alpha had already received it
        // when it removed (then it observed that instance too), which the network decides;
        // add-wins itself is proven in LiaisonCoreTests (ItemRuleTests, MergeLawTests).
        #expect(Set(views.values.map(\.tags)).count == 1, "\(views.mapValues(\.tags))")
        let alphaTags = Set(views["alpha"]?.tags ?? [])
        #expect(alphaTags.isSuperset(of: ["blue", "red"]), "\(alphaTags)")
        #expect(Set(views.values.map { $0.fields["title"] }).count == 1)
    }

    @Test("a malformed frame and an oversized frame close that channel, are audited, and other links keep working")
    func hostileFrames() async throws {
        let fixture = try FederationFixture.demo()
        try await fixture.start()
        try await fixture.waitQuiet(all)
        // Impersonate charlie (its own keys, so the TLS pin passes) after stopping it.
        fixture.federation.stop("charlie")
        let charlie = try LocalNode.open(fixture.federation.directory("charlie"))
        let federationConfig = try FederationConfig.load(from: fixture.federation.directory("charlie"))
        let bravoPartner = try #require(federationConfig.partner(named: "bravo"))
        let tls = PinnedTLS(
            certificatePEM: charlie.identity.tlsCertificatePEM,
            privateKeyPEM: charlie.identity.tlsKeyPEM,
            pins: [bravoPartner.tlsFingerprint]
        )
        let bravoAddress = bravoPartner.endpoints[0]
        for (payload, malformed) in [
            (ByteBuffer(bytes: [0xFF, 0x00, 0x13, 0x37, 0x42]), true),
            (ByteBuffer(repeating: 0x01, count: 5 << 20), false),
        ] {
            let connection = try await TLSTransport.dial(host: bravoAddress.host, port: bravoAddress.port, tls: tls)
            _ = try await connection.peerFingerprint()
            // Everything bravo said before it closed the channel (the loop ends only when it does).
            let heard: [SyncMessage] = try await connection.io.executeThenClose { inbound, outbound in
                try? await outbound.write(payload)
                var messages = [SyncMessage]()
                do {
                    for try await frame in inbound { messages.append(try SyncFrameCodec.decode(frame)) }
                } catch {}
                return messages
            }
            // Bravo never replicated anything to the channel that sent garbage.
            #expect(!heard.contains { if case .batch = $0 { return true } else { return false } }, "\(heard)")
            if malformed {
                // A malformed frame is a protocol violation: bravo says goodbye, then closes.
                guard case .goodbye = heard.last else {
                    Issue.record("bravo did not say goodbye after a malformed frame: \(heard)")
                    continue
                }
            }
        }
        let refused = try await eventually {
            let entries = try await fixture.client("bravo").audit().filter {
                $0.kind == .peerRefused && $0.peer == "charlie"
            }
            return entries.count >= 2
        }
        #expect(refused)
        // Both are protocol violations struck against charlie: the oversized frame too, which
        // breaks the channel before it is read (it was once a connection refusal, not struck).
        let struck = try await eventually {
            let view = try await fixture.client("bravo").containment()
            return (view.strikes.first { $0.partner == "charlie" && $0.strikeClass == "protocol" }?.total ?? 0) >= 2
        }
        let strikes = try await fixture.client("bravo").containment().strikes
        #expect(struck, "\(strikes)")
        // bravo still serves alpha.
        let put = try await fixture.client("alpha").put(
            PutItemBody(collection: "reports", classification: "SECRET", relTo: ["bravo"]))
        let arrived = try await eventually { try await fixture.client("bravo").item(put.id) != nil }
        #expect(arrived)
    }

    @Test("a client whose certificate is not pinned is refused and audited")
    func unpinnedClientRefused() async throws {
        let fixture = try FederationFixture.demo()
        try await fixture.start()
        let stranger = try NodeIdentity.generate(name: "stranger", now: Date())
        let bravo = try #require(
            try FederationConfig.load(from: fixture.federation.directory("alpha")).partner(named: "bravo"))
        let tls = PinnedTLS(
            certificatePEM: stranger.tlsCertificatePEM, privateKeyPEM: stranger.tlsKeyPEM, pins: [bravo.tlsFingerprint])
        let connection = try await TLSTransport.dial(
            host: bravo.endpoints[0].host, port: bravo.endpoints[0].port, tls: tls)
        let gotData: Bool =
            await
            (try? connection.io.executeThenClose { inbound, outbound in
                try? await outbound.write(ByteBuffer(bytes: [1, 2, 3]))
                for try await _ in inbound { return true }
                return false
            }) ?? false
        #expect(!gotData)
        let audited = try await eventually {
            try await fixture.client("bravo").audit().contains {
                $0.kind == .peerRefused && $0.detail.contains("TLS handshake")
            }
        }
        #expect(audited)
    }
    @Test("a connection that never starts its TLS handshake is closed at the deadline and audited")
    func silentConnectionClosed() async throws {
        let fixture = try FederationFixture.demo()
        try await fixture.start()
        let bravo = try #require(
            try FederationConfig.load(from: fixture.federation.directory("alpha")).partner(named: "bravo"))
        // A plain TCP connection that says nothing: bravo must close it by itself.
        // The blocking read runs on a thread of its own, not on the cooperative pool.
        let endpoint = bravo.endpoints[0]
        let closedByBravo = try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result {
                        try SilentSocket.connectAndWaitForClose(
                            host: endpoint.host, port: endpoint.port, limitSeconds: 20)
                    })
            }.start()
        }
        #expect(closedByBravo, "bravo kept a silent connection open for 20 s")
        let audited = try await eventually {
            try await fixture.client("bravo").audit().contains {
                $0.kind == .peerRefused && $0.detail.contains("no TLS handshake within")
            }
        }
        #expect(audited)
    }
}

/// A raw TCP client that connects and never writes.
enum SilentSocket {
    /// Connects, then blocks reading until the server closes (true) or `limitSeconds` pass (false).
    static func connectAndWaitForClose(host: String, port: Int, limitSeconds: Int) throws -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LiaisonError(.io, "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw LiaisonError(.io, "connect() to \(host):\(port) failed") }
        var timeout = timeval(tv_sec: limitSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        // 0: orderly close; -1 with ECONNRESET: closed hard. Both count; a timeout does not.
        let read = recv(fd, &byte, 1, 0)
        return read == 0 || (read < 0 && errno == ECONNRESET)
    }
}
