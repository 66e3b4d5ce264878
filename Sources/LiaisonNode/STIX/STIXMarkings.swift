import Crypto
import Foundation
public import LiaisonCore

/// STIX marking definitions Liaison understands, both ways (docs/stix.md, "Markings"):
/// the Traffic Light Protocol by its published ids, and Liaison's own handling marking, a
/// marking definition with a property extension that states an item's markings exactly.
public enum STIXMarkings {
    /// A TLP level, weakest first.
    public enum TLP: Int, Comparable, Sendable, CaseIterable {
        case clear, green, amber, amberStrict, red

        /// The caveat an item carries for it, and from which export restores it.
        public var caveat: String {
            switch self {
            case .clear: "TLP:CLEAR"
            case .green: "TLP:GREEN"
            case .amber: "TLP:AMBER"
            case .amberStrict: "TLP:AMBER+STRICT"
            case .red: "TLP:RED"
            }
        }

        /// The TLP 2.0 marking definition's id (OASIS cti-stix-common-objects).
        public var id: String {
            switch self {
            case .clear: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
            case .green: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
            case .amber: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
            case .amberStrict: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
            case .red: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
            }
        }

        /// The value of the TLP 2.0 extension's `tlp_2_0` property.
        var extensionValue: String {
            switch self {
            case .clear: "clear"
            case .green: "green"
            case .amber: "amber"
            case .amberStrict: "amber+strict"
            case .red: "red"
            }
        }

        /// The level of a TLP 2.0 or TLP 1.0 (STIX 2.1 predefined) marking definition id.
        public init?(id: String) {
            switch id {
            case Self.clear.id, "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": self = .clear
            case Self.green.id, "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": self = .green
            case Self.amber.id, "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": self = .amber
            case Self.amberStrict.id: self = .amberStrict
            case Self.red.id, "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": self = .red
            default: return nil
            }
        }

        /// The level a caveat names.
        public init?(caveat: String) {
            guard let level = Self.allCases.first(where: { $0.caveat == caveat }) else { return nil }
            self = level
        }

        /// Whether the level lets the item go to every partner of the federation (CLEAR,
        /// GREEN) rather than stay with the node that took it in.
        public var sharesWithFederation: Bool { self <= .green }

        public static func < (lhs: TLP, rhs: TLP) -> Bool { lhs.rawValue < rhs.rawValue }

        /// The TLP 2.0 marking definition as OASIS publishes it.
        public var definition: [String: JSONValue] {
            [
                "type": .string("marking-definition"),
                "spec_version": .string("2.1"),
                "id": .string(id),
                "created": .string("2022-10-01T00:00:00.000Z"),
                "name": .string(caveat),
                "extensions": .object([
                    STIXMarkings.tlpExtension: .object([
                        "extension_type": .string("property-extension"),
                        "tlp_2_0": .string(extensionValue),
                    ])
                ]),
            ]
        }
    }

    /// The TLP 2.0 extension definition's id.
    public static let tlpExtension = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
    /// Liaison's handling marking extension definition's id (fixed once; a change of the
    /// extension is a new `version`, never a new id).
    public static let liaisonExtension = "extension-definition--b3e09d39-8855-43d9-8e0c-bc3526cbf0b1"
    /// The identity that created Liaison's extension definition.
    public static let liaisonIdentity = "identity--9a49dd6e-a0f3-4fc1-891e-8223a13c60c5"

    /// The handling a Liaison marking definition states: an item's markings, and for a
    /// granular marking the partners a field is withheld from.
    public struct Handling: Sendable, Hashable {
        /// The federation whose names these are.
        public var federation: String
        /// The item's markings.
        public var markings: Markings
        /// For a granular marking: the partners and groups the field is withheld from.
        public var withheldFrom: [String]

        /// Creates a handling.
        public init(federation: String, markings: Markings, withheldFrom: [String] = []) {
            self.federation = federation
            self.markings = markings
            self.withheldFrom = withheldFrom.sorted()
        }

        /// The extension's properties (empty lists left out: STIX forbids them).
        var extensionBody: [String: JSONValue] {
            var body: [String: JSONValue] = [
                "extension_type": .string("property-extension"),
                "federation": .string(federation),
                "classification": .string(markings.classification),
                "orcon": .bool(markings.orcon),
            ]
            if !markings.releasableTo.isEmpty { body["rel_to"] = .array(markings.releasableTo.map(JSONValue.string)) }
            if !markings.caveats.isEmpty { body["caveats"] = .array(markings.caveats.map(JSONValue.string)) }
            if let expires = markings.expiresAtMillis {
                // A partner's op may carry any 64-bit expiry: shown at most at the year 9999.
                let micros = min(max(expires, 0), 253_402_300_799_999).multipliedReportingOverflow(by: 1000)
                body["expires_at"] = .string(
                    STIXTimestamp(micros: micros.overflow ? Int64.max : micros.partialValue).text)
            }
            if !withheldFrom.isEmpty { body["withheld_from"] = .array(withheldFrom.map(JSONValue.string)) }
            return body
        }

        /// The marking definition's id: derived from its content, so equal handling has one
        /// id and different handling different ids (a marking definition is never versioned).
        public var id: String {
            var hasher = SHA256()
            hasher.update(data: Array("liaison/stix/handling".utf8))
            hasher.update(data: JSONValue.object(extensionBody).jsonText)
            var bytes = Array(hasher.finalize().prefix(16))
            bytes[6] = (bytes[6] & 0x0f) | 0x40
            bytes[8] = (bytes[8] & 0x3f) | 0x80
            let uuid = UUID(
                uuid: (
                    bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                    bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
                ))
            return "marking-definition--" + uuid.uuidString.lowercased()
        }

        /// The marking definition object.
        public var definition: [String: JSONValue] {
            var name = "Liaison: \(markings.classification)"
            if !markings.releasableTo.isEmpty { name += " REL TO \(markings.releasableTo.joined(separator: ", "))" }
            if markings.orcon { name += " ORCON" }
            if !withheldFrom.isEmpty { name += "; withheld from \(withheldFrom.joined(separator: ", "))" }
            return [
                "type": .string("marking-definition"),
                "spec_version": .string("2.1"),
                "id": .string(id),
                "created": .string("2026-01-01T00:00:00.000Z"),
                "created_by_ref": .string(STIXMarkings.liaisonIdentity),
                "name": .string(name),
                "extensions": .object([STIXMarkings.liaisonExtension: .object(extensionBody)]),
            ]
        }

        /// Reads a Liaison marking definition; nil when `definition` is not one.
        public init?(definition: STIXObject) throws(STIXRefusal) {
            guard definition.type == "marking-definition",
                case .object(let extensions)? = definition.properties["extensions"],
                case .object(let body)? = extensions[STIXMarkings.liaisonExtension]
            else { return nil }
            func strings(_ key: String) throws(STIXRefusal) -> [String] {
                guard let value = body[key] else { return [] }
                guard case .array(let items) = value, items.allSatisfy({ $0.stringValue != nil }) else {
                    throw STIXRefusal(.invalid, "\(definition.id): '\(key)' must be a list of names")
                }
                return items.compactMap(\.stringValue)
            }
            guard let federation = body["federation"]?.stringValue,
                let classification = body["classification"]?.stringValue
            else {
                throw STIXRefusal(
                    .invalid, "\(definition.id): a Liaison marking names its federation and classification")
            }
            var orcon = false
            if let value = body["orcon"] {
                guard case .bool(let flag) = value else {
                    throw STIXRefusal(.invalid, "\(definition.id): 'orcon' must be true or false")
                }
                orcon = flag
            }
            var expires: Int64?
            if let value = body["expires_at"] {
                guard let text = value.stringValue, let stamp = STIXTimestamp(text) else {
                    throw STIXRefusal(.invalid, "\(definition.id): 'expires_at' is not a timestamp")
                }
                expires = stamp.micros / 1000
            }
            self.init(
                federation: federation,
                markings: Markings(
                    classification: classification, releasableTo: try strings("rel_to"), orcon: orcon,
                    caveats: try strings("caveats"), expiresAtMillis: expires),
                withheldFrom: try strings("withheld_from"))
            guard id == definition.id else {
                throw STIXRefusal(
                    .invalid,
                    "\(definition.id): a Liaison marking's id is derived from its content, and this one's is not")
            }
        }
    }

    /// Liaison's extension definition object, for bundles that use its markings.
    public static var liaisonExtensionDefinition: [String: JSONValue] {
        [
            "type": .string("extension-definition"),
            "spec_version": .string("2.1"),
            "id": .string(liaisonExtension),
            "created_by_ref": .string(liaisonIdentity),
            "created": .string("2026-01-01T00:00:00.000Z"),
            "modified": .string("2026-01-01T00:00:00.000Z"),
            "name": .string("Liaison handling marking"),
            "description": .string(
                "The classification, REL TO, ORCON, caveats and expiry of a Liaison federation's item, and the partners a field is withheld from."
            ),
            "schema": .string("https://liaison.invalid/schemas/liaison-handling-marking-1.0.0.json"),
            "version": .string("1.0.0"),
            "extension_types": .array([.string("property-extension")]),
        ]
    }

    /// The identity that created Liaison's extension definition.
    public static var liaisonIdentityObject: [String: JSONValue] {
        [
            "type": .string("identity"),
            "spec_version": .string("2.1"),
            "id": .string(liaisonIdentity),
            "created": .string("2026-01-01T00:00:00.000Z"),
            "modified": .string("2026-01-01T00:00:00.000Z"),
            "name": .string("Liaison"),
            "identity_class": .string("system"),
        ]
    }
}
