import Foundation
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonTestSupport
import Testing

@testable import LiaisonAPI

/// The API's roles on a live node (docs/operations.md, "Roles"): reader, writer, operator
/// and auditor tokens, each refused what its role does not allow with a 403 that says what
/// to use, and audited.
@Suite("API roles", .serialized, .timeLimit(.minutes(3)))
struct RolesTests {
    /// A client of alpha with `role`'s token.
    static func client(_ fixture: FederationFixture, _ role: APIRole) throws -> NodeClient {
        let directory = fixture.federation.directory("alpha")
        let token = try #require(directory.readAPIToken(role), "no \(role) token rendered")
        return NodeClient(api: try FederationConfig.load(from: directory).api, token: token)
    }

    static let item = Data(#"{"collection":"reports","relTo":["bravo"],"fields":{"title":"river crossing"}}"#.utf8)

    @Test(
        "each role gets what it may and a 403 naming the roles that may for the rest; refusals are audited, aggregated")
    func rolesOnALiveNode() async throws {
        let fixture = try FederationFixture.demo()
        try fixture.federation.start("alpha")
        try await fixture.federation.waitUntilHealthy(["alpha"])
        let reader = try Self.client(fixture, .reader)
        let writer = try Self.client(fixture, .writer)
        let auditor = try Self.client(fixture, .auditor)
        let operatorClient = try fixture.client("alpha")

        // The writer writes; the reader reads it back, values and all.
        let (created, body) = try await writer.send("POST", "/v1/items", body: Self.item)
        #expect(created == 201, "\(String(decoding: body, as: UTF8.self))")
        let put = try JSONDecoder().decode(PutItemResult.self, from: body)
        let read = try #require(try await reader.item(put.id))
        #expect(read.fields["title"] == .string("river crossing"))
        #expect(read.valuesHidden == nil)

        // What each role may not do: 403, with a message saying which tokens may.
        let refused: [(NodeClient, String, String, Data?, String)] = [
            (reader, "POST", "/v1/items", Self.item, "a reader token may not write items"),
            (reader, "DELETE", "/v1/items/\(put.id)", nil, "a reader token may not write items"),
            (reader, "GET", "/v1/links", nil, "a reader token may not read link health"),
            (reader, "GET", "/v1/audit", nil, "a reader token may not read link health"),
            (reader, "GET", "/metrics", nil, "a reader token may not read link health"),
            (writer, "GET", "/v1/audit", nil, "a writer token may not read link health"),
            (
                writer, "POST", "/v1/quarantines", Data(#"{"partner":"bravo","since":"now"}"#.utf8),
                "a writer token may not quarantine"
            ),
            (auditor, "POST", "/v1/items", Self.item, "an auditor token may not write items"),
            (auditor, "PUT", "/v1/items/\(put.id)/markings", Data(#"{"relTo":["ALL"]}"#.utf8), "may not write items"),
            (auditor, "DELETE", "/v1/quarantines/bravo", nil, "an auditor token may not quarantine"),
            (
                auditor, "POST", "/v1/revocations", Data(#"{"partner":"bravo","since":"now"}"#.utf8),
                "may not quarantine, release, revoke or readmit"
            ),
        ]
        for (client, method, path, body, message) in refused {
            let (status, data) = try await client.send(method, path, body: body)
            let text = String(decoding: data, as: UTF8.self)
            #expect(status == 403, "\(method) \(path): \(status) \(text)")
            #expect(text.contains(message), "\(method) \(path): \(text)")
            #expect(text.contains("use a token of one of these roles"), "\(text)")
        }
        // Nothing a refusal touched changed.
        #expect(try await operatorClient.items(all: true).count == 1)
        #expect(try await operatorClient.containment().quarantines.isEmpty)

        // A second identical refusal within the minute is counted, not written again.
        _ = try await reader.send("GET", "/v1/links")
        let audit = try await operatorClient.audit().filter { $0.kind == .apiRefused }
        #expect(audit.count == refused.count, "\(audit.map(\.detail))")
        #expect(audit.contains { $0.detail == "reader token refused: GET /v1/links" })
        #expect(audit.contains { $0.detail == "reader token refused: DELETE /v1/items/{id}" })

        // The auditor sees metadata, digests, custody, link health and metrics; never values.
        let (status, data) = try await auditor.send("GET", "/v1/items/\(put.id)")
        #expect(status == 200)
        #expect(!String(decoding: data, as: UTF8.self).contains("river crossing"))
        let seen = try #require(try await auditor.item(put.id))
        #expect(seen.fields.isEmpty)
        #expect(seen.valuesHidden == ["title"])
        #expect(seen.digest == read.digest)
        let listed = try await auditor.items(all: true)
        #expect(listed.count == 1 && listed[0].fields.isEmpty && listed[0].valuesHidden == ["title"])
        #expect(try await auditor.audit().contains { $0.kind == .opsCreated })
        #expect(try await auditor.links().count == 1)
        #expect(try await auditor.metrics().contains("liaison_link_state"))
        #expect(try await auditor.containment().quarantines.isEmpty)

        // No token, or a token of no role: 401, and nothing audited for it.
        let directory = fixture.federation.directory("alpha")
        for token in ["", "not-a-token", try #require(directory.readAPIToken(.reader)) + "0"] {
            let stranger = NodeClient(api: try FederationConfig.load(from: directory).api, token: token)
            let (status, _) = try await stranger.send("GET", "/v1/items")
            #expect(status == 401)
        }
        #expect(try await operatorClient.audit().filter { $0.kind == .apiRefused }.count == refused.count)
    }

    @Test("rendering writes a token per role, owner-only, each different")
    func tokensRendered() throws {
        let fixture = try FederationFixture.demo()
        let directory = fixture.federation.directory("alpha")
        var seen = Set<String>()
        for role in APIRole.allCases {
            let path = directory.url.appendingPathComponent(role.tokenFile).path
            let token = try #require(directory.readAPIToken(role))
            #expect(token.count == 64)
            seen.insert(token)
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(role.tokenFile)")
        }
        #expect(seen.count == APIRole.allCases.count)
        #expect(APIRole.operator.tokenFile == "api.token")
        #expect(try directory.readAPITokens().count == 4)

        // One token for two roles would give the lesser the greater one's rights; a short
        // one is guessable: the node refuses to start with either.
        let readerFile = directory.url.appendingPathComponent(APIRole.reader.tokenFile)
        try Data(try directory.readAPIToken().utf8).write(to: readerFile)
        #expect(throws: LiaisonError.self) { try directory.readAPITokens() }
        do {
            _ = try directory.readAPITokens()
        } catch {
            #expect(error.message == "api-reader.token and api.token hold the same token; give each role its own")
        }
        try Data("short".utf8).write(to: readerFile)
        do {
            _ = try directory.readAPITokens()
            Issue.record("a short token was accepted")
        } catch {
            #expect(error.message.contains("api-reader.token holds a token of 5 characters"))
        }
    }

    @Test("a token is matched whole against every role's: prefixes, extensions and empty ones are no role")
    func tokenMatching() {
        let tokens: [(role: APIRole, token: [UInt8])] = [
            (.reader, Array("Bearer aaaa".utf8)), (.writer, Array("Bearer bbbb".utf8)),
        ]
        #expect(AccessMiddleware.role(of: Array("Bearer aaaa".utf8), among: tokens) == .reader)
        #expect(AccessMiddleware.role(of: Array("Bearer bbbb".utf8), among: tokens) == .writer)
        for wrong in ["Bearer aaa", "Bearer aaaaa", "Bearer ", "", "bearer aaaa", "Bearer bbba"] {
            #expect(AccessMiddleware.role(of: Array(wrong.utf8), among: tokens) == nil, "\(wrong)")
        }
    }
}
