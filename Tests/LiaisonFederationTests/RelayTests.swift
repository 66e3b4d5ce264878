import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonTestSupport
import Testing

/// Several channels per link and sealed relays between real processes (DESIGN §5.8, §6).
/// alpha and bravo share a SECRET link; delta is a relay partner cleared for
/// UNCLASSIFIED only, linked to both.
@Suite("Channels and sealed relays between real nodes", .serialized, .timeLimit(.minutes(3)))
struct RelayTests {
    static let yaml = """
        federation: relay-test
        partners:
          alpha:
            endpoints: [127.0.0.1:7401, 127.0.0.1:7411]
            api: 127.0.0.1:7501
          bravo:
            endpoints: [127.0.0.1:7402, 127.0.0.1:7412]
            api: 127.0.0.1:7502
          delta:
            endpoints: [127.0.0.1:7404]
            api: 127.0.0.1:7504
            relay: true
        channels:
          mode: MODE
          heartbeat-ms: 100
          dead-after-ms: 500
          relay-after-ms: 300
          receipt-timeout-ms: 2000
        links:
          - {from: alpha, to: bravo, filter: {max-classification: SECRET}}
          - {from: bravo, to: alpha, filter: {max-classification: SECRET}}
          - {from: alpha, to: delta, filter: {max-classification: UNCLASSIFIED}}
          - {from: delta, to: alpha, filter: {max-classification: UNCLASSIFIED}}
          - {from: bravo, to: delta, filter: {max-classification: UNCLASSIFIED}}
          - {from: delta, to: bravo, filter: {max-classification: UNCLASSIFIED}}
        """

    /// A fixture in which alpha (the dialling side) sees bravo's endpoints at `unreachable`
    /// indexes as ports nobody listens on.
    static func fixture(mode: String = "failover", unreachable: [Int], yaml: String = yaml) throws -> FederationFixture
    {
        let fixture = try FederationFixture(yaml: yaml.replacingOccurrences(of: "MODE", with: mode))
        try cut(fixture, dialler: "alpha", peer: "bravo", endpoints: unreachable)
        return fixture
    }

    /// Points the dialler's record of `peer` at ports nobody listens on.
    static func cut(_ fixture: FederationFixture, dialler: String, peer: String, endpoints: [Int]) throws {
        let directory = fixture.federation.directory(dialler)
        var config = try FederationConfig.load(from: directory)
        let index = try #require(config.partners.firstIndex { $0.name == peer })
        for endpoint in endpoints {
            config.partners[index].endpoints[endpoint] = Endpoint(host: "127.0.0.1", port: try FreePort.find())
        }
        try config.write(to: directory)
    }

    static func link(_ fixture: FederationFixture, at node: String, to peer: String) async throws -> LinkStatus? {
        try await fixture.client(node).links().first { $0.peer == peer }
    }

    @Test("with no channel between alpha and bravo, SECRET items go sealed through delta, which never reads them")
    func sealedThroughRelay() async throws {
        let fixture = try Self.fixture(unreachable: [0, 1])
        try await fixture.start()
        let marker = "harbour-office-\(UUID().uuidString.prefix(8))"
        let put = try await fixture.client("alpha").put(
            PutItemBody(
                collection: "reports", classification: "SECRET", relTo: ["bravo"], fields: ["body": .string(marker)])
        )
        let arrived = try await eventually { try await fixture.client("bravo").item(put.id) != nil }
        #expect(arrived, "logs in \(fixture.federation.root.path)")
        let view = try #require(try await fixture.client("bravo").item(put.id))
        #expect(view.fields["body"] == .string(marker))
        #expect(view.digest == put.digest)

        // alpha shows the path and, once the receipt is in, nothing awaiting.
        let receipted = try await eventually {
            guard let link = try await Self.link(fixture, at: "alpha", to: "bravo") else { return false }
            return link.state == "relayed" && link.path == "relay via delta" && link.sealedOpsReceipted >= 1
                && link.envelopesAwaiting == 0
        }
        let seen = try await Self.link(fixture, at: "alpha", to: "bravo")
        #expect(receipted, "\(String(describing: seen))")
        #expect(try await Self.link(fixture, at: "bravo", to: "alpha")?.envelopesOpened ?? 0 >= 1)
        // The operator's table says the same.
        let table = try await CommandRunner().run(["links", "--dir", fixture.federation.directory("alpha").url.path])
        #expect(table.status == 0, "\(table)")
        #expect(table.stdout.contains("relayed") && table.stdout.contains("relay delta"), "\(table.stdout)")

        // The other way too.
        let back = try await fixture.client("bravo").put(
            PutItemBody(
                collection: "reports", classification: "SECRET", relTo: ["alpha"],
                fields: ["body": .string(marker + "-reply")])
        )
        #expect(try await eventually { try await fixture.client("alpha").item(back.id) != nil })

        // delta carried envelopes and holds no trace of what was in them.
        #expect(try await fixture.client("delta").item(put.id) == nil)
        let custody = try await fixture.client("delta").audit(limit: 10_000)
        #expect(custody.contains { $0.kind == .opsRelayed && $0.peer == "bravo" })
        #expect(custody.contains { $0.kind == .opsRelayed && $0.peer == "alpha" })
        for entry in custody {
            #expect(!entry.detail.contains(marker))
            #expect(!entry.detail.contains(put.id))
            #expect(entry.opIDs.isEmpty || entry.kind != .opsRelayed)
        }
        fixture.federation.stop("delta")
        let root = fixture.federation.root
        let files = ["delta/store.sqlite", "delta/store.sqlite-wal", "delta.log"].map {
            root.appendingPathComponent($0)
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file.path) else { continue }
            #expect(data.range(of: Data(marker.utf8)) == nil, "\(file.lastPathComponent) holds the sealed content")
            #expect(data.range(of: Data(put.id.utf8)) == nil, "\(file.lastPathComponent) names the sealed item")
        }
    }

    @Test("with bravo's primary endpoint unreachable, the link runs on the backup channel")
    func backupChannelCarries() async throws {
        let fixture = try Self.fixture(unreachable: [0])
        try await fixture.start()
        let onBackup = try await eventually {
            guard let link = try await Self.link(fixture, at: "alpha", to: "bravo") else { return false }
            return link.state == "up" && link.path.hasPrefix("channel 1 ") && link.channels.first?.state == "down"
        }
        let seen = try await Self.link(fixture, at: "alpha", to: "bravo")
        #expect(onBackup, "\(String(describing: seen))")
        let put = try await fixture.client("alpha").put(
            PutItemBody(
                collection: "reports", classification: "SECRET", relTo: ["bravo"],
                fields: ["body": .string("on the backup")])
        )
        #expect(try await eventually { try await fixture.client("bravo").item(put.id) != nil })
        #expect(try await Self.link(fixture, at: "alpha", to: "bravo")?.envelopesAwaiting == 0)
    }

    @Test("active-active: both channels carry, and an item sent twice is held once with one digest")
    func activeActive() async throws {
        let fixture = try Self.fixture(mode: "active-active", unreachable: [])
        try await fixture.start()
        let both = try await eventually {
            try await Self.link(fixture, at: "alpha", to: "bravo")?.path == "channels 0, 1"
        }
        let seen = try await Self.link(fixture, at: "alpha", to: "bravo")
        #expect(both, "\(String(describing: seen))")
        var ids = [String]()
        for index in 0..<20 {
            let put = try await fixture.client("alpha").put(
                PutItemBody(
                    collection: "reports", classification: "SECRET", relTo: ["bravo"],
                    fields: ["n": .number(Double(index))])
            )
            ids.append(put.id)
        }
        try await fixture.waitQuiet(["alpha", "bravo"])
        let held = try await fixture.client("bravo").items(collection: "reports")
        #expect(Set(held.map(\.id)) == Set(ids))
        #expect(held.count == ids.count)
        #expect(
            try await Self.link(fixture, at: "bravo", to: "alpha")?.opsReceived ?? 0 > UInt64(ids.count),
            "both channels carried")
    }

    @Test("an envelope a relay cannot deliver is sent again through another relay when its receipt is overdue")
    func retriesThroughAnotherRelay() async throws {
        // A second relay, echo; delta has no channel to bravo (bravo dials it, at dead ports),
        // so whatever alpha hands delta waits there, unreceipted.
        let echo = "  echo:\n    endpoints: [127.0.0.1:7405]\n    api: 127.0.0.1:7505\n    relay: true\n"
        let echoLinks = [
            "  - {from: alpha, to: echo, filter: {max-classification: UNCLASSIFIED}}",
            "  - {from: echo, to: alpha, filter: {max-classification: UNCLASSIFIED}}",
            "  - {from: bravo, to: echo, filter: {max-classification: UNCLASSIFIED}}",
            "  - {from: echo, to: bravo, filter: {max-classification: UNCLASSIFIED}}",
        ]
        let yaml =
            Self.yaml.replacingOccurrences(of: "\nchannels:", with: "\n" + echo + "channels:") + "\n"
            + echoLinks.joined(separator: "\n")
        let fixture = try Self.fixture(unreachable: [0, 1], yaml: yaml)
        try Self.cut(fixture, dialler: "bravo", peer: "delta", endpoints: [0])
        try await fixture.start()
        // Both relays reachable from alpha before the write, so the first choice is delta's.
        let relaysUp = try await eventually {
            let links = try await fixture.client("alpha").links()
            return ["delta", "echo"].allSatisfy { name in links.contains { $0.peer == name && $0.state == "up" } }
        }
        #expect(relaysUp, "alpha's channels to delta and echo never opened")
        let put = try await fixture.client("alpha").put(
            PutItemBody(
                collection: "reports", classification: "SECRET", relTo: ["bravo"],
                fields: ["body": .string("second try")])
        )
        // The first envelope goes through delta (relays are taken in name order) and sticks.
        let stuck = try await eventually {
            try await Self.link(fixture, at: "delta", to: "bravo")?.relayHeld ?? 0 >= 1
        }
        #expect(stuck, "delta never held an envelope for bravo")
        let arrived = try await eventually { try await fixture.client("bravo").item(put.id) != nil }
        #expect(arrived, "logs in \(fixture.federation.root.path)")
        let settled = try await eventually {
            let link = try await Self.link(fixture, at: "alpha", to: "bravo")
            return link?.envelopesAwaiting == 0 && (link?.envelopesReceipted ?? 0) >= 1
        }
        #expect(settled)
        let echoCustody = try await fixture.client("echo").audit(limit: 10_000)
        #expect(echoCustody.contains { $0.kind == .opsRelayed && $0.peer == "bravo" }, "echo never carried the retry")
    }
}
