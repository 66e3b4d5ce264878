public import Foundation
public import LiaisonCore

/// UTF-8 JSON text for field values.
public enum JSONText {
    /// A JSON string literal, e.g. `string("hello")` is the bytes of `"hello"` with the quotes.
    public static func string(_ text: String) -> Data {
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return Data("\"\(escaped)\"".utf8)
    }

    /// A JSON number.
    public static func number(_ value: Int) -> Data { Data(String(value).utf8) }
}

extension HLCTimestamp {
    /// The physical time tests start from: 2023-11-14, well inside 48 bits.
    public static let testEpochMillis: UInt64 = 1_700_000_000_000

    /// A stamp `millis` after `testEpochMillis`, with the given logical counter.
    public static func test(_ millis: UInt64, logical: UInt16 = 0) -> HLCTimestamp {
        HLCTimestamp(physicalMillis: testEpochMillis + millis, logical: logical)
    }
}

extension Markings {
    /// SECRET, releasable to bob and carol: the markings most tests use.
    public static let test = Markings(classification: "SECRET", releasableTo: ["bob", "carol"])
}

extension ItemState {
    /// The state after `create` and then `ops` in the given order.
    public static func build(_ create: VerifiedOp, _ ops: some Sequence<VerifiedOp>) throws(ItemRejection) -> ItemState
    {
        var state = try ItemState(create: create)
        for op in ops { try state.apply(op) }
        return state
    }
}

extension OpVerifier {
    /// Why `encoded` is rejected, or nil when it verifies.
    public func rejectionReason(of encoded: Data) -> OpRejection.Reason? {
        do {
            _ = try verify(encoded)
            return nil
        } catch {
            return error.reason
        }
    }
}
