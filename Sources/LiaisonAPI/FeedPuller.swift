import Foundation
public import LiaisonCore
public import LiaisonNode
public import Logging
public import ServiceLifecycle

/// What taking STIX objects in did, counted.
public struct STIXTally: Codable, Sendable, Hashable {
    public var created = 0
    public var updated = 0
    public var unchanged = 0
    public var superseded = 0
    public var definitions = 0
    public var refused = 0

    public init() {}

    /// Counts one outcome.
    public mutating func count(_ outcome: STIXImportResult.Outcome) {
        switch outcome.status {
        case "created": created += 1
        case "updated": updated += 1
        case "unchanged": unchanged += 1
        case "superseded": superseded += 1
        case "definition": definitions += 1
        default: refused += 1
        }
    }

    /// `created 3, new versions 1, …` (the counts that are not zero), or `nothing new`.
    public var description: String {
        let parts = [
            (created, "created"), (updated, "new versions"), (unchanged, "already held"), (superseded, "superseded"),
            (refused, "refused"),
        ].filter { $0.0 > 0 }.map { "\($0.1) \($0.0)" }
        return parts.isEmpty ? "nothing new" : parts.joined(separator: ", ")
    }
}

/// Pulls a feed: what its collection added since the last pull, page by page, taken in by
/// `take`; its place is kept in `feeds.json`.
public enum FeedPuller {
    /// The most pages one pull reads (the next pull goes on from where it stopped).
    static let maxPages = 1_000
    /// The most objects handed to the node at once.
    static let chunk = 1_000

    /// What one pull did.
    public struct Pull: Codable, Sendable {
        /// Objects read.
        public var read: Int
        /// What taking them in did.
        public var tally: STIXTally
        /// Where the next pull goes on from.
        public var addedAfter: String?
    }

    /// The credentials a feed names.
    public static func credentials(_ feed: FeedSource) throws(LiaisonError) -> TAXIIClient.Credentials {
        func secret(_ path: String) throws(LiaisonError) -> String {
            guard let data = FileManager.default.contents(atPath: path),
                let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
                !text.isEmpty
            else { throw LiaisonError(.notFound, "cannot read a secret from \(path)") }
            return text
        }
        if let tokenFile = feed.tokenFile { return .bearer(try secret(tokenFile)) }
        if let user = feed.user, let passwordFile = feed.passwordFile {
            return .basic(user: user, password: try secret(passwordFile))
        }
        return .none
    }

    /// Pulls `feed` once into the node of `directory`; `take` takes a page's objects in.
    public static func pull(
        _ feed: FeedSource, directory: NodeDirectory,
        take: ([JSONValue]) async throws(LiaisonError) -> [STIXImportResult.Outcome]
    ) async throws(LiaisonError) -> Pull {
        try feed.validate()
        let client = TAXIIClient(
            apiRoot: URL(string: feed.url)!, collection: feed.collection, credentials: try credentials(feed))
        return try await pull(
            feed, directory: directory,
            pages: { addedAfter, next throws(LiaisonError) in
                try await client.objects(addedAfter: addedAfter, next: next)
            }, take: take)
    }

    /// Pulls `feed` once, reading its pages with `pages` (added after, next cursor): the
    /// server, or a stand-in for one in a test.
    static func pull(
        _ feed: FeedSource, directory: NodeDirectory,
        pages: (String?, String?) async throws(LiaisonError) -> TAXIIClient.Page,
        take: ([JSONValue]) async throws(LiaisonError) -> [STIXImportResult.Outcome]
    ) async throws(LiaisonError) -> Pull {
        var tally = STIXTally()
        var read = 0
        var addedAfter = try FeedState.load(directory)[feed.key]
        var next: String?
        var seen = Set<String>()
        for _ in 0..<maxPages {
            let page = try await pages(next == nil ? addedAfter : nil, next)
            read += page.objects.count
            // A page goes to the node in parts of at most `chunk` objects, each with the page's
            // marking definitions.
            let definitions = page.objects.filter { $0.objectType == "marking-definition" }
            let objects = page.objects.filter { $0.objectType != "marking-definition" }
            var start = 0
            repeat {
                let part = Array(objects[start..<min(objects.count, start + chunk)])
                if !part.isEmpty || (start == 0 && !definitions.isEmpty) {
                    for outcome in try await take(definitions + part) { tally.count(outcome) }
                }
                start += chunk
            } while start < objects.count
            // The server's time of the page's last object: kept only when it is a TAXII time
            // not ahead of this node's clock (a server that lies must not make the next pull
            // skip what it adds later).
            if let last = page.dateAddedLast, let stamp = STIXTimestamp(last),
                stamp.micros <= Int64(Date().timeIntervalSince1970 * 1_000_000) + 300_000_000
            {
                addedAfter = last
            }
            guard page.more, !page.objects.isEmpty else { break }
            // With a cursor, on by it; a server that pages by time only goes on after the page.
            next = page.next
            if let cursor = next {
                guard seen.insert(cursor).inserted else {
                    throw LiaisonError(.io, "\(feed.url) gave the same next cursor twice; the pull stops")
                }
            } else if page.dateAddedLast == nil {
                break
            }
        }
        if let addedAfter { try FeedState.record(addedAfter, for: feed, in: directory) }
        return Pull(read: read, tally: tally, addedAfter: addedAfter)
    }
}

/// The daemon's feeds (the topology's `feeds:` of this node): each pulled at once and then
/// every `everySeconds`, until the node stops.
public struct FeedService: Service {
    let feeds: [FeedSource]
    let engine: ReplicationEngine
    let directory: NodeDirectory
    let logger: Logger

    /// Creates the service.
    public init(feeds: [FeedSource], engine: ReplicationEngine, directory: NodeDirectory, logger: Logger) {
        self.feeds = feeds
        self.engine = engine
        self.directory = directory
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for feed in feeds {
                    group.addTask { await poll(feed) }
                }
            }
        }
    }

    private func poll(_ feed: FeedSource) async {
        while !Task.isCancelled {
            do {
                let pull = try await FeedPuller.pull(feed, directory: directory) { values throws(LiaisonError) in
                    try await engine.importSTIX(
                        values, collection: feed.into, classification: feed.classification, releasableTo: feed.relTo,
                        fromFeed: true
                    ).map(STIXImportResult.Outcome.init)
                }
                logger.info(
                    "feed pulled",
                    metadata: [
                        "liaison.feed": "\(feed.key)", "liaison.read": "\(pull.read)",
                        "liaison.outcome": "\(pull.tally.description)",
                        "liaison.next-after": "\(pull.addedAfter ?? "-")",
                    ])
            } catch {
                logger.warning("feed pull failed", metadata: ["liaison.feed": "\(feed.key)", "error": "\(error)"])
            }
            // The interval between pulls (a schedule, not a wait for something to happen).
            try? await Task.sleep(for: .seconds(feed.everySeconds))
        }
    }
}
