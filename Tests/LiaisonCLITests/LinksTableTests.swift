import Foundation
import LiaisonNode
import Testing

@testable import liaison

/// `liaison links`: the default view fits 100 columns, `--wide` prints everything.
@Suite("Link health tables")
struct LinksTableTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func link(_ peer: String, state: String, lagOps: UInt64, error: String?) throws -> LinkStatus {
        func channel(
            _ endpoint: Int, _ state: String, _ address: String, rtt: Int?, agoMillis: Int64?, failures: Int
        )
            -> [String: Any]
        {
            var fields: [String: Any] = [
                "endpoint": endpoint, "state": state, "address": address, "failures": failures,
            ]
            if let rtt { fields["rttMillis"] = rtt }
            if let agoMillis { fields["lastContact"] = ISO8601.format(millis: 1_800_000_000_000 - agoMillis) }
            if let error, endpoint == 0 { fields["lastError"] = error }
            return fields
        }
        var fields: [String: Any] = [
            "peer": peer, "state": state,
            "path": state == "relayed" ? "relay via \(peer)-relay" : "channel 0 (127.0.0.1:7602)",
            "channel": "127.0.0.1:7602", "rttMillis": 12,
            "lastContact": ISO8601.format(millis: 1_800_000_000_000 - 2_500), "lagOps": lagOps, "lagSeconds": 3.25,
            "opsSent": 123_456_789_012, "opsReceived": 42, "bytesSent": 1, "bytesReceived": 1, "opsWithheld": 7,
            "rejects": 3, "outbound": true, "inbound": true, "failovers": 2, "envelopesAwaiting": 0,
            "envelopesReceipted": 0, "sealedOpsReceipted": 0, "envelopesOpened": 0, "relayHeld": 0,
            "channels": [
                channel(
                    0, state == "up" ? "carrying" : "down", "[2001:db8::17]:65535", rtt: 12, agoMillis: 90_000,
                    failures: 4),
                channel(1, "standby", "127.0.0.1:7612", rtt: nil, agoMillis: nil, failures: 0),
            ],
        ]
        if let error { fields["lastError"] = error }
        return try JSONDecoder().decode(LinkStatus.self, from: JSONSerialization.data(withJSONObject: fields))
    }

    static func links() throws -> [LinkStatus] {
        [
            try link("bravo", state: "up", lagOps: 0, error: nil),
            try link(
                "a-partner-with-a-very-long-name", state: "relayed", lagOps: 98_765_432_109,
                error: String(repeating: "no heartbeat; ", count: 20)),
            try link("charlie", state: "connecting", lagOps: 5, error: "channel error: connection reset by peer"),
        ]
    }

    @Test(
        "the default view fits 100 columns, with host:port addresses, RTT, time since contact and the carrying channel")
    func fitsAHundredColumns() throws {
        let lines = linkTables(try Self.links(), wide: false, now: Self.now)
        #expect(lines.allSatisfy { $0.count <= 100 }, "\(lines.filter { $0.count > 100 }.map(\.count))")
        let text = lines.joined(separator: "\n")
        #expect(text.contains("[2001:db8::17]:65535") && text.contains("127.0.0.1:7612"))
        #expect(text.contains("12 ms") && text.contains("2.5s") && text.contains("90s"))
        #expect(text.contains("ch 0") && text.contains("relay a-part"))
        #expect(text.contains("a-partner-w…"), "a long name is cut short with an ellipsis")
        #expect(!text.contains("LAST CONTACT"))
    }

    @Test("--wide prints every column in full")
    func wideShowsEverything() throws {
        let text = linkTables(try Self.links(), wide: true, now: Self.now).joined(separator: "\n")
        #expect(text.contains("LAST CONTACT") && text.contains("WITHHELD") && text.contains("FAILOVERS"))
        #expect(text.contains("a-partner-with-a-very-long-name") && text.contains("123456789012"))
        #expect(text.contains(String(repeating: "no heartbeat; ", count: 20)))
    }
}
