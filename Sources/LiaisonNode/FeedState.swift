import Foundation
public import LiaisonCore

/// `feeds.json` in a node directory: per feed (`FeedSource.key`), the
/// `X-TAXII-Date-Added-Last` of its last pull.
public enum FeedState {
    static func url(_ directory: NodeDirectory) -> URL { directory.url.appendingPathComponent("feeds.json") }

    /// The places of every feed pulled before.
    public static func load(_ directory: NodeDirectory) throws(LiaisonError) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: url(directory).path) else { return [:] }
        do {
            return try JSONDecoder().decode([String: String].self, from: data)
        } catch {
            throw LiaisonError(.corrupt, "\(url(directory).path) is damaged; delete it to pull every feed afresh")
        }
    }

    /// Records where `feed` goes on from next time.
    public static func record(
        _ addedAfter: String, for feed: FeedSource, in directory: NodeDirectory
    )
        throws(LiaisonError)
    {
        var feeds = try load(directory)
        feeds[feed.key] = addedAfter
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(feeds) else { throw LiaisonError(.io, "cannot encode feeds.json") }
        try OwnerOnlyFiles.write(data, to: url(directory), replacing: true)
    }
}
