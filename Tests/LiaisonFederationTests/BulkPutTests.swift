import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonTestSupport
import Testing

/// `POST /v1/items` with an array (docs/api.md, "Bulk put") on a running node.
@Suite("Bulk put through the API", .serialized, .timeLimit(.minutes(3)))
struct BulkPutTests {
    @Test(
        "an array of items is created in order, answered with each id and digest, and reaches the partner; one refused item refuses the array by its index and writes nothing"
    )
    func bulkPut() async throws {
        let fixture = try FederationFixture.demo()
        try await fixture.start()
        let alpha = try fixture.client("alpha")
        let bravo = try fixture.client("bravo")
        // 1,200 items that stay with alpha (no REL TO): two Merkle batches of the 1,000 a
        // bulk put signs at once, in one transaction.
        let bodies = (0..<1_200).map { index in
            PutItemBody(
                collection: "reports", tags: index.isMultiple(of: 2) ? ["even"] : nil,
                fields: ["n": .integer(Int64(index)), "title": .string("report \(index)")])
        }
        let created = try await alpha.putMany(bodies)
        #expect(created.count == 1_200 && Set(created.map(\.id)).count == 1_200)
        // One transaction, although signed in two Merkle batches: one custody entry.
        let createdEntries = try await alpha.audit(limit: 10_000).filter { $0.kind == .opsCreated }
        #expect(createdEntries.count == 1, "\(createdEntries.map(\.detail))")
        let listed = Set(createdEntries.first?.opIDs.map(\.hash.hex) ?? [])
        #expect(listed == Set(created.map(\.opID)), "the custody entry lists \(listed.count) ops")
        for (index, result) in created.enumerated().filter({ $0.offset.isMultiple(of: 151) }) {
            let item = try #require(try await alpha.item(result.id))
            #expect(item.fields["n"] == .integer(Int64(index)), "answers out of order")
            #expect(item.digest == result.digest)
        }
        // A bulk put is pushed to the partners like any put.
        let shared = (0..<50).map { index in
            PutItemBody(collection: "indicators", relTo: ["bravo"], fields: ["n": .integer(Int64(index))])
        }
        let sharedCreated = try await alpha.putMany(shared)
        let arrived = try await eventually(timeout: .seconds(120)) {
            try await bravo.items(collection: "indicators", limit: 1_000).count == 50
        }
        #expect(arrived, "the shared array never reached bravo whole; logs in \(fixture.federation.root.path)")
        #expect(try await bravo.item(try #require(sharedCreated.last).id)?.digest == sharedCreated.last?.digest)

        // One item naming a partner the federation does not know, one with a bad expiry:
        // the whole array is refused, by index, and nothing of it is written.
        var refused = bodies.prefix(5).map { $0 }
        refused[1].relTo = ["nobody"]
        refused[3].expiresAt = "tomorrow"
        do {
            _ = try await alpha.putMany(refused)
            Issue.record("an array with bad items was accepted")
        } catch {
            #expect(error.code == .invalidArgument)
            let refusal = try #require(error.cause as? BulkPutRefusal, "\(error)")
            #expect(refusal.failures.map(\.index) == [1, 3], "\(refusal)")
            #expect(refusal.failures[0].message.contains("nobody"), "\(refusal.failures[0].message)")
            #expect(error.message.contains("nothing written"), "\(error.message)")
        }
        #expect(try await alpha.items(collection: "reports", limit: 10_000).count == 1_200, "a refused array wrote")

        // An empty array creates nothing; a body that is neither an item nor an array is a 400.
        #expect(try await alpha.putMany([]).isEmpty)
        let (status, answer) = try await alpha.send("POST", "/v1/items", body: Data("[{\"collection\": 7}]".utf8))
        let text = String(decoding: answer, as: UTF8.self)
        #expect(status == 400 && text.contains("[0]") && text.contains("collection"), "\(status) \(text)")
        let (tooMany, _) = try await alpha.send(
            "POST", "/v1/items",
            body: Data(
                ("[" + Array(repeating: "{\"collection\":\"r\"}", count: 10_001).joined(separator: ",") + "]").utf8))
        #expect(tooMany == 413)
        // A body past 64 MiB is refused before it is read whole, and says what to send instead.
        var oversized = Data(repeating: UInt8(ascii: " "), count: 64 << 20)
        oversized.append(contentsOf: Array("[]".utf8))
        let (tooLarge, why) = try await alpha.send("POST", "/v1/items", body: oversized, timeout: 120)
        let reason = String(decoding: why, as: UTF8.self)
        #expect(tooLarge == 413 && reason.contains("64 MiB"), "\(tooLarge) \(reason.prefix(300))")
    }

    @Test(
        "a node busy for seconds committing a bulk put keeps its channels: the channel answers its partner's pings meanwhile, so no side declares the other dead"
    )
    func busyNodeKeepsItsLinks() async throws {
        let fixture = try FederationFixture.demo()
        try await fixture.start()
        let alpha = try fixture.client("alpha")
        let bravo = try fixture.client("bravo")
        func failures(_ client: NodeClient, to peer: String) async throws -> Int {
            try await client.links().first { $0.peer == peer }?.channels.map(\.failures).reduce(0, +) ?? 0
        }
        let before = (try await failures(bravo, to: "alpha"), try await failures(alpha, to: "bravo"))
        // 10,000 items in one array: alpha's engine creates, signs and commits them in one
        // transaction and does nothing else meanwhile (several seconds in a debug build).
        let bodies = (0..<10_000).map { index in
            PutItemBody(
                collection: "reports",
                fields: ["n": .integer(Int64(index)), "pad": .string(String(repeating: "x", count: 200))])
        }
        let started = ContinuousClock.now
        _ = try await alpha.putMany(bodies)
        let busy = ContinuousClock.now - started
        // The test means something only if alpha was busy past the demo's dead-after (600 ms):
        // with heartbeats answered by the engine, bravo closed its channel then.
        try #require(busy > .milliseconds(1_500), "the bulk put took only \(busy); nothing was tested")
        // A put after it still reaches bravo, and neither side lost a channel meanwhile.
        let shared = try await alpha.putMany([PutItemBody(collection: "indicators", relTo: ["bravo"], fields: [:])])
        let id = try #require(shared.first?.id)
        #expect(try await eventually(timeout: .seconds(60)) { try await bravo.item(id) != nil })
        let after = (try await failures(bravo, to: "alpha"), try await failures(alpha, to: "bravo"))
        #expect(after == before, "channels died while alpha was busy for \(busy): \(before) -> \(after)")
    }
}
