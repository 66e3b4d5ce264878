import Foundation
import LiaisonNode
import Testing

/// Times shown to operators are typed back (`--since`, `--expires`): showing and reading one
/// must give the same millisecond.
@Suite("ISO 8601 times")
struct ISO8601Tests {
    @Test("every millisecond of a second formats exactly and reads back to itself")
    func exactToTheMillisecond() throws {
        let base: Int64 = 1_796_003_374_000  // 2026-11-30T01:49:34Z
        for millis in base..<(base + 1000) {
            let text = ISO8601.format(millis: millis)
            #expect(text.hasSuffix(String(format: ".%03dZ", Int(millis - base))), "\(millis) shown as \(text)")
            let parsed = try #require(ISO8601.parse(text))
            #expect(ISO8601.millis(parsed) == millis, "\(text) read back as \(ISO8601.millis(parsed))")
        }
        #expect(ISO8601.format(millis: base + 359) == "2026-11-30T01:49:34.359Z")
        #expect(ISO8601.format(millis: 0) == "1970-01-01T00:00:00.000Z")
        #expect(ISO8601.format(millis: -1) == "1969-12-31T23:59:59.999Z")
    }
}
