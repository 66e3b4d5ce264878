/// What a token of the node's API may do (docs/operations.md, "Roles").
public enum APIRole: String, CaseIterable, Sendable, Comparable {
    /// Reads items.
    case reader
    /// Reads items and writes them (put, update, delete, markings, recall).
    case writer
    /// Everything: items, link health, metrics, custody, quarantine, revocation.
    case `operator`
    /// Metadata, digests, link health, metrics and custody; never field values.
    case auditor

    /// The file in the node directory that holds this role's token.
    public var tokenFile: String { self == .operator ? "api.token" : "api-\(rawValue).token" }

    public static func < (lhs: APIRole, rhs: APIRole) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
