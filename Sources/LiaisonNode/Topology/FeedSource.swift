import Foundation
public import LiaisonCore

/// A STIX feed a node takes in from another TAXII 2.1 server: pulled by `liaison feed pull`,
/// or every `everySeconds` by the daemon when the topology declares it (docs/topology.md,
/// "Feeds"; docs/stix.md).
public struct FeedSource: Codable, Sendable, Hashable {
    /// The server's API root URL (http or https).
    public var url: String
    /// The collection's id at that server.
    public var collection: String
    /// The Liaison collection the objects go to.
    public var into: String
    /// How often the daemon pulls it.
    public var everySeconds: Int
    /// HTTP Basic user name (with `passwordFile`).
    public var user: String?
    /// A file holding the HTTP Basic password.
    public var passwordFile: String?
    /// A file holding a bearer token (instead of HTTP Basic).
    public var tokenFile: String?
    /// Classification of objects without a Liaison marking (nil: the lowest).
    public var classification: String?
    /// REL TO of objects without a Liaison marking that TLP lets go (CLEAR, GREEN) or that
    /// carry none (nil: TLP decides).
    public var relTo: [String]?

    /// The shortest and longest interval the daemon takes.
    public static let intervals = 10...86_400

    /// Creates a feed.
    public init(
        url: String, collection: String, into: String = "stix", everySeconds: Int = 300, user: String? = nil,
        passwordFile: String? = nil, tokenFile: String? = nil, classification: String? = nil, relTo: [String]? = nil
    ) {
        self.url = url
        self.collection = collection
        self.into = into
        self.everySeconds = everySeconds
        self.user = user
        self.passwordFile = passwordFile
        self.tokenFile = tokenFile
        self.classification = classification
        self.relTo = relTo
    }

    /// The key of its place in `feeds.json`: the feed and what it is taken in as (a pull with
    /// other settings starts afresh rather than skip what this one took in).
    public var key: String {
        "\(url) \(collection) into \(into) as \(classification ?? "-") rel-to \((relTo ?? []).joined(separator: ","))"
    }

    /// Checks what a feed needs to be pulled; the error says what to change.
    public func validate() throws(LiaisonError) {
        guard let root = URL(string: url), ["http", "https"].contains(root.scheme?.lowercased() ?? ""),
            root.host != nil
        else {
            throw LiaisonError(.invalidArgument, "feed url '\(url)' is not an http(s) URL of a TAXII API root")
        }
        guard !collection.isEmpty, collection.utf8.count <= 256 else {
            throw LiaisonError(.invalidArgument, "a feed needs the collection's id at its server")
        }
        guard Names.isValid(into) else {
            throw LiaisonError(.invalidArgument, "feed 'into' '\(into)' is not a collection name")
        }
        guard Self.intervals.contains(everySeconds) else {
            throw LiaisonError(
                .invalidArgument,
                "feed 'every' \(everySeconds) s: use \(Self.intervals.lowerBound) to \(Self.intervals.upperBound) seconds"
            )
        }
        if tokenFile != nil, user != nil || passwordFile != nil {
            throw LiaisonError(.invalidArgument, "a feed takes a token file, or a user with a password file, not both")
        }
        if (user == nil) != (passwordFile == nil) {
            throw LiaisonError(.invalidArgument, "a feed's user needs a password file, and a password file a user")
        }
    }
}
