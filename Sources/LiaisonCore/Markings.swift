/// Classification, releasability, handling caveats and retention of an item.
public struct Markings: Hashable, Sendable, Codable {
    /// The token in `releasableTo` that releases an item to every partner.
    public static let everyone = "ALL"

    /// A level name from the federation's ladder.
    public var classification: String
    /// Partner and group names the item may be released to, sorted and distinct.
    /// Empty means the item stays with its originator.
    public var releasableTo: [String]
    /// Originator controls dissemination: only the originator's node sends it on.
    public var orcon: Bool
    /// Further handling caveats, sorted and distinct; carried, not interpreted.
    public var caveats: [String]
    /// When the content must be purged, milliseconds since the Unix epoch.
    public var expiresAtMillis: Int64?

    /// Creates markings; lists are sorted and de-duplicated so equal markings encode equally.
    public init(
        classification: String,
        releasableTo: [String] = [],
        orcon: Bool = false,
        caveats: [String] = [],
        expiresAtMillis: Int64? = nil
    ) {
        self.classification = classification
        self.releasableTo = releasableTo.isSortedAndDistinct ? releasableTo : Array(Set(releasableTo)).sorted()
        self.orcon = orcon
        self.caveats = caveats.isSortedAndDistinct ? caveats : Array(Set(caveats)).sorted()
        self.expiresAtMillis = expiresAtMillis
    }

    /// Whether the item may be released to a partner known by `name` and member of `groups`.
    public func isReleasable(toPartner name: String, groups: Set<String> = []) -> Bool {
        releasableTo.contains(Markings.everyone) || releasableTo.contains(name)
            || releasableTo.contains(where: groups.contains)
    }

    /// Whether the item has expired at the given time.
    public func isExpired(atMillis now: Int64) -> Bool {
        guard let expiresAtMillis else { return false }
        return now >= expiresAtMillis
    }
}

extension Array where Element == String {
    /// Whether each name sorts strictly after the one before: the same as being equal to
    /// `Array(Set(self)).sorted()`, without building either (every op decoded checks its
    /// markings and withholdings so).
    var isSortedAndDistinct: Bool {
        var index = 1
        while index < count {
            guard self[index - 1] < self[index] else { return false }
            index += 1
        }
        return true
    }
}
