import Foundation

/// The ordered classification levels of a federation, lowest first.
///
/// Items carry a level by name; the ladder gives it a rank. Every node of a federation
/// uses the same ladder (it comes from the topology). Names compare case-sensitively
/// after trimming; `level(named:)` accepts any case.
public struct ClassificationLadder: Sendable, Equatable, Codable {
    /// The level names, lowest first.
    public let levels: [String]

    /// A ladder common to many partner federations.
    public static let standard = try! ClassificationLadder(levels: [
        "UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET", "TOP SECRET",
    ])

    /// Creates a ladder; the names must be non-empty and distinct.
    public init(levels: [String]) throws(LiaisonError) {
        guard !levels.isEmpty else {
            throw LiaisonError(.invalidArgument, "a classification ladder needs at least one level")
        }
        var seen = Set<String>()
        for level in levels {
            let upper = level.uppercased()
            guard !level.trimmingCharacters(in: .whitespaces).isEmpty,
                level == level.trimmingCharacters(in: .whitespaces)
            else {
                throw LiaisonError(
                    .invalidArgument, "classification level names must be non-empty without surrounding spaces")
            }
            guard seen.insert(upper).inserted else {
                throw LiaisonError(.invalidArgument, "classification level '\(level)' appears twice in the ladder")
            }
        }
        self.levels = levels
    }

    /// The lowest level.
    public var lowest: String { levels[0] }

    /// The rank of a level (0 is lowest), or nil when the ladder has no such level.
    public func rank(of level: String) -> Int? {
        levels.firstIndex(of: level)
    }

    /// The canonical spelling of a level given in any case; throws a message listing the levels.
    public func level(named name: String) throws(LiaisonError) -> String {
        let wanted = name.trimmingCharacters(in: .whitespaces).uppercased()
        guard let match = levels.first(where: { $0.uppercased() == wanted }) else {
            throw LiaisonError(
                .invalidArgument,
                "unknown classification '\(name)'; use one of: \(levels.joined(separator: ", "))"
            )
        }
        return match
    }

    public init(from decoder: any Decoder) throws {
        let levels = try decoder.singleValueContainer().decode([String].self)
        try self.init(levels: levels)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(levels)
    }
}
