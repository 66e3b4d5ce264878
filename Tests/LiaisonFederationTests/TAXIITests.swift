import Foundation
import LiaisonCore
import LiaisonNode
import Testing

@testable import LiaisonAPI

/// The TAXII 2.1 server's request handling that needs no node (docs/taxii.md): content
/// negotiation, the query's filters and the paging cursor. The server as a whole is checked
/// with the real clients by scripts/taxii-check.sh.
@Suite("TAXII requests")
struct TAXIIRequestTests {
    @Test(
        "Accept lets the answer be TAXII 2.1 when any entry is the TAXII type (version 2.1 or none), application/* or */*; anything else is a 406"
    )
    func accept() {
        for header in [
            nil, "", "application/taxii+json;version=2.1", "application/taxii+json",
            "APPLICATION/TAXII+JSON; Version=2.1",
            "application/stix+json;version=2.1, application/taxii+json;version=2.1", "*/*", "application/*",
            "application/taxii+json; version=\"2.1\"; charset=utf-8",
        ] {
            #expect(TAXII.accepts(header), "\(header ?? "nil")")
        }
        for header in [
            "application/json", "text/html", "application/taxii+json;version=2.0", "application/xml, text/*",
        ] {
            #expect(!TAXII.accepts(header), "\(header)")
        }
        #expect(TAXII.isTAXII("application/taxii+json;version=2.1"))
        #expect(TAXII.isTAXII("application/taxii+json"))
        #expect(!TAXII.isTAXII("application/json"))
        #expect(!TAXII.isTAXII(nil))
    }

    @Test(
        "malformed filters are refused with 400: a repeated parameter, a bad limit or time, duplicate or mixed version values, a cursor of another collection"
    )
    func filters() throws {
        func refused(_ query: [(String, String)]) -> Bool {
            do {
                _ = try TAXII.Filters(query, collection: "stix", allowsMatch: true)
                return false
            } catch {
                return error.code == 400
            }
        }
        #expect(refused([("limit", "0")]))
        #expect(refused([("limit", "ten")]))
        #expect(refused([("added_after", "yesterday")]))
        #expect(refused([("added_after", "2026-01-01T00:00:00Z"), ("added_after", "2026-01-02T00:00:00Z")]))
        #expect(refused([("match[version]", "all,last")]))
        #expect(refused([("match[version]", "last,last")]))
        #expect(refused([("match[version]", "newest")]))
        #expect(refused([("match[type]", "indicator,,malware")]))
        let other = TAXII.Cursor(mark: 5, index: 0).text(collection: "reports")
        #expect(refused([("next", other)]), "a cursor given for another collection was taken")
        #expect(refused([("next", "not-base64!")]))
        // A cursor naming the lowest mark would overflow the next read: refused.
        #expect(refused([("next", Data("stix\u{0}\(Int64.min)\u{0}0".utf8).base64EncodedString())]))
        #expect(refused([("next", Data("stix\u{0}5\u{0}-1".utf8).base64EncodedString())]))

        let filters = try TAXII.Filters(
            [
                ("limit", "5000"), ("added_after", "2026-01-01T00:00:00.5Z"), ("match[type]", "indicator,malware"),
                ("match[version]", "first,2026-01-01T00:00:00.000Z"), ("unknown", "ignored"),
            ], collection: "stix", allowsMatch: true)
        #expect(filters.limit == TAXII.maxPage)
        #expect(filters.addedAfter == STIXTimestamp("2026-01-01T00:00:00.5Z")!.micros)
        #expect(filters.types == ["indicator", "malware"])
        #expect(filters.versions == ["first", "2026-01-01T00:00:00.000Z"])
        let cursor = TAXII.Cursor(mark: 1_796_090_991_857_892, index: 2)
        let next = try TAXII.Filters([("next", cursor.text(collection: "stix"))], collection: "stix", allowsMatch: true)
        #expect(next.next == cursor)
    }

    @Test("a collection's TAXII id is a UUID derived from its name, the same at every node and across restarts")
    func collectionIDs() {
        let stix = TAXII.Collection(name: "stix")
        #expect(UUID(uuidString: stix.id) != nil)
        #expect(stix.id == TAXII.Collection(name: "stix").id)
        #expect(stix.id != TAXII.Collection(name: "reports").id)
    }
}

/// The statuses of `add_objects` requests are bounded: a writer posting without end cannot
/// grow the node's memory without bound (docs/taxii.md, "Adding objects").
@Suite("TAXII statuses")
struct TAXIIStatusTests {
    @Test("statuses past 10,000, or past a million object outcomes in all, drop the oldest first")
    func bounded() async {
        let statuses = TAXII.Statuses()
        func body(_ total: Int) -> [String: JSONValue] { ["total_count": .integer(Int64(total))] }
        for index in 0...TAXII.Statuses.maxStatuses { await statuses.add("s\(index)", body(1)) }
        #expect(await statuses.get("s0") == nil, "the oldest status was kept past the bound")
        #expect(await statuses.get("s1") != nil)
        #expect(await statuses.get("s\(TAXII.Statuses.maxStatuses)") != nil)

        let big = TAXII.Statuses()
        await big.add("a", body(600_000))
        await big.add("b", body(600_000))
        #expect(await big.get("a") == nil, "a million outcomes were exceeded")
        #expect(await big.get("b") != nil)
    }
}
