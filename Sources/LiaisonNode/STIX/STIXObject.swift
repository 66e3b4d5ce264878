public import Foundation
import LiaisonCore

/// A STIX 2.1 object as JSON, checked for what Liaison relies on (docs/stix.md, "Checks"):
/// its `type` and `id`, its `spec_version`, its timestamps, and property names Liaison can
/// hold as field names. Everything else in it is carried as given.
public struct STIXObject: Sendable, Hashable {
    /// The object's properties.
    public let properties: [String: JSONValue]

    /// The object's type (`indicator`, `marking-definition`, …).
    public var type: String { properties["type"]?.stringValue ?? "" }
    /// The object's id, `type--UUID`.
    public var id: String { properties["id"]?.stringValue ?? "" }
    /// `modified`, for the object types that are versioned; nil for the others (observables,
    /// marking definitions).
    public var modified: String? { properties["modified"]?.stringValue }
    /// `created`, if present.
    public var created: String? { properties["created"]?.stringValue }
    /// `spec_version`, if present.
    public var specVersion: String? { properties["spec_version"]?.stringValue }
    /// `object_marking_refs`.
    public var markingRefs: [String] {
        guard case .array(let refs) = properties["object_marking_refs"] else { return [] }
        return refs.compactMap(\.stringValue)
    }

    /// Types without `modified` or `created` of their own: the cyber-observable objects
    /// (STIX 2.1 §6) and the meta objects that are not versioned.
    static let observableTypes: Set<String> = [
        "artifact", "autonomous-system", "directory", "domain-name", "email-addr", "email-message", "file",
        "ipv4-addr", "ipv6-addr", "mac-addr", "mutex", "network-traffic", "process", "software", "url",
        "user-account", "windows-registry-key", "x509-certificate",
    ]

    /// Whether the object is a cyber-observable (no `modified`, versions told apart by content).
    public var isObservable: Bool { Self.observableTypes.contains(type) }

    /// Checks `value` as a STIX 2.1 object; the error says what is wrong.
    public init(_ value: JSONValue) throws(STIXRefusal) {
        guard case .object(let properties) = value else {
            throw STIXRefusal(.invalid, "an object must be a JSON object")
        }
        self.properties = properties
        guard case .string(let type)? = properties["type"], Self.isValidType(type) else {
            throw STIXRefusal(.invalid, "'type' must be 3-250 characters of a-z, 0-9 and '-'")
        }
        guard case .string(let id)? = properties["id"], Self.isValidID(id, of: type) else {
            throw STIXRefusal(.invalid, "'id' must be '\(type)--' and a UUID")
        }
        if let version = properties["spec_version"] {
            guard version == .string("2.1") else {
                throw STIXRefusal(.invalid, "\(id): spec_version must be 2.1 (STIX 2.0 objects are not taken)")
            }
        } else if !Self.observableTypes.contains(type) {
            throw STIXRefusal(.invalid, "\(id): spec_version 2.1 is required")
        }
        for name in ["created", "modified"] {
            guard let stamp = properties[name] else { continue }
            guard case .string(let text) = stamp, STIXTimestamp(text) != nil else {
                throw STIXRefusal(.invalid, "\(id): '\(name)' is not a STIX timestamp (YYYY-MM-DDTHH:MM:SS[.s+]Z)")
            }
        }
        if !Self.observableTypes.contains(type), type != "marking-definition" {
            guard let created = properties["created"]?.stringValue, let modified = properties["modified"]?.stringValue
            else {
                throw STIXRefusal(.invalid, "\(id): 'created' and 'modified' are required")
            }
            guard let from = STIXTimestamp(created), let to = STIXTimestamp(modified), from <= to else {
                throw STIXRefusal(.invalid, "\(id): 'modified' is before 'created'")
            }
        }
        for name in properties.keys.sorted() {
            guard Self.isValidPropertyName(name) else {
                throw STIXRefusal(
                    .invalid, "\(id): property '\(name.prefix(64))' is not a STIX property name (a-z, 0-9, '_')")
            }
            guard name.utf8.count <= OpLimits.maxNameBytes else {
                throw STIXRefusal(
                    .limits, "\(id): property '\(name.prefix(64))…' is longer than \(OpLimits.maxNameBytes) bytes")
            }
            if properties[name] == .null {
                throw STIXRefusal(.invalid, "\(id): property '\(name)' is null, which STIX does not allow")
            }
        }
    }

    /// A STIX type: 3 to 250 characters of a-z, 0-9 and '-', not starting or ending with '-'.
    static func isValidType(_ type: String) -> Bool {
        let utf8 = Array(type.utf8)
        guard (3...250).contains(utf8.count), utf8.first != UInt8(ascii: "-"), utf8.last != UInt8(ascii: "-") else {
            return false
        }
        return utf8.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "-")
        }
    }

    /// `type--` and an RFC 4122 UUID in lower or upper case.
    static func isValidID(_ id: String, of type: String) -> Bool {
        guard id.hasPrefix(type + "--") else { return false }
        let uuid = id.dropFirst(type.count + 2)
        return uuid.count == 36 && UUID(uuidString: String(uuid)) != nil
    }

    /// A property name: `id`, or 3 to 250 characters of a-z, 0-9 and '_' (custom properties
    /// of other producers may start with `x_`).
    static func isValidPropertyName(_ name: String) -> Bool {
        if name == "id" { return true }
        let utf8 = Array(name.utf8)
        guard (3...250).contains(utf8.count) else { return false }
        return utf8.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "_")
        }
    }
}

/// Why a STIX object was not taken; the message says what to do.
public struct STIXRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of refusal (stable codes, docs/stix.md "Refusals").
    public enum Code: String, Sendable, Hashable {
        /// Not a valid STIX 2.1 object for Liaison's checks.
        case invalid = "invalid-stix"
        /// Past a Liaison limit (name length, op size).
        case limits = "too-large"
        /// A marking Liaison does not know or cannot honour.
        case unknownMarking = "unknown-marking"
        /// A marking Liaison knows but cannot honour on this object.
        case unsupportedMarking = "unsupported-marking"
        /// A Liaison marking of another federation (one naming partners unknown here is
        /// `refused` by the node's own checks).
        case foreignMarking = "foreign-federation-marking"
        /// A new version whose markings differ from those the item has.
        case markingsChanged = "markings-changed"
        /// The same version with other content, or an observable with other content.
        case conflictingVersion = "conflicting-version"
        /// Any other refusal by the node (a put's checks).
        case refused = "refused"
    }

    /// The code.
    public var code: Code
    /// What is wrong and what to do.
    public var message: String

    /// Creates a refusal.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// A STIX timestamp (RFC 3339 in UTC, `Z`, any number of fraction digits), compared exactly:
/// seconds since 1970 and nanoseconds, never through a `Double`.
public struct STIXTimestamp: Comparable, Hashable, Sendable {
    /// Whole seconds since 1970.
    public var seconds: Int64
    /// Nanoseconds (the fraction, cut after nine digits).
    public var nanoseconds: Int64

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z`; nil for anything else.
    public init?(_ text: String) {
        let b = Array(text.utf8)
        guard b.count >= 20, b.last == UInt8(ascii: "Z"), b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
            b[10] == UInt8(ascii: "T"), b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":")
        else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for i in range {
                guard b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(b[i] - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var nanos: Int64 = 0
        if b.count > 20 {
            guard b[19] == UInt8(ascii: "."), b.count > 21 else { return nil }
            let digits = Array(b[20..<(b.count - 1)])
            guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
            for i in 0..<9 {
                nanos = nanos * 10 + (i < digits.count ? Int64(digits[i] - UInt8(ascii: "0")) : 0)
            }
        } else {
            guard b.count == 20 else { return nil }
        }
        // Days from the civil date (proleptic Gregorian).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        seconds = days * 86_400 + hour * 3_600 + minute * 60 + second
        nanoseconds = nanos
    }

    /// From microseconds since 1970.
    public init(micros: Int64) {
        let clamped = min(max(micros, 0), 253_402_300_799_999_999)  // 1970 to the end of 9999
        seconds = clamped / 1_000_000
        nanoseconds = (clamped % 1_000_000) * 1_000
    }

    /// Microseconds since 1970 (the fraction cut after six digits).
    public var micros: Int64 { seconds * 1_000_000 + nanoseconds / 1_000 }

    /// The text with six fraction digits, as TAXII 2.1 writes its timestamps.
    public var text: String {
        let date = Date(timeIntervalSince1970: TimeInterval(seconds))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func pad(_ value: Int?, _ width: Int) -> String {
            let text = String(value ?? 0)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T\(pad(c.hour, 2)):\(pad(c.minute, 2)):"
            + "\(pad(c.second, 2)).\(pad(Int(nanoseconds / 1_000), 6))Z"
    }

    public static func < (lhs: STIXTimestamp, rhs: STIXTimestamp) -> Bool {
        (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
    }
}

extension JSONValue {
    /// The `type` of a JSON object, if it has a string one.
    public var objectType: String? {
        guard case .object(let properties) = self else { return nil }
        return properties["type"]?.stringValue
    }

    /// The string, if this is one.
    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// Compact JSON text with sorted keys: how a STIX property is stored as a field.
    public var jsonText: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data("null".utf8)
    }

    /// Parses JSON text (a stored field's value).
    public init?(jsonText: Data) {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: jsonText) else { return nil }
        self = value
    }
}
