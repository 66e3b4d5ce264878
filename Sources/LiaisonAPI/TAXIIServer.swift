import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import LiaisonCore
import LiaisonNode
import LiaisonStore
import NIOCore

/// A TAXII 2.1 server on the node's API (docs/taxii.md): discovery at `/taxii2/`, one API
/// root, a collection per Liaison collection, objects as `STIXExport` shows the items this
/// node holds, and objects taken in through `LocalNode.importSTIX`. Authentication is the
/// API's role tokens; what a caller may not read is absent.
enum TAXII {
    /// The media type of every TAXII 2.1 answer.
    static let mediaType = "application/taxii+json;version=2.1"
    /// The media type of the objects a collection holds.
    static let stixMediaType = "application/stix+json;version=2.1"
    /// The API root's name under `/taxii2/`.
    static let root = "liaison"
    /// The largest POST body taken (`max_content_length`).
    static let maxContentLength = 64 << 20
    /// The most objects (versions) one page holds, whatever `limit` asks.
    static let maxPage = 1_000

    // MARK: - Media types

    /// Whether an `Accept` header lets the answer be TAXII 2.1: no header, or any entry that
    /// is `application/taxii+json` (version 2.1 or none), `application/*` or `*/*`.
    static func accepts(_ header: String?) -> Bool {
        guard let header, !header.trimmingCharacters(in: .whitespaces).isEmpty else { return true }
        return header.split(separator: ",").contains { entry in
            let (type, version) = parse(String(entry))
            if type == "*/*" || type == "application/*" { return true }
            return type == "application/taxii+json" && (version == nil || version == "2.1")
        }
    }

    /// Whether a request's `Content-Type` is TAXII 2.1 (with the version, or without).
    static func isTAXII(_ header: String?) -> Bool {
        guard let header else { return false }
        let (type, version) = parse(header)
        return type == "application/taxii+json" && (version == nil || version == "2.1")
    }

    /// A media type's lower-cased `type/subtype` and its `version` parameter.
    static func parse(_ text: String) -> (type: String, version: String?) {
        let parts = text.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        var version: String?
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            if pair.count == 2, pair[0].lowercased() == "version" {
                version = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return ((parts.first ?? "").lowercased(), version)
    }

    // MARK: - Answers

    /// A TAXII answer with `body` as JSON.
    static func answer(
        _ body: [String: JSONValue], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]
    )
        -> Response
    {
        var fields = headers
        fields[.contentType] = mediaType
        return Response(
            status: status, headers: fields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: Array(JSONValue.object(body).jsonText))))
    }

    /// A TAXII error resource.
    static func error(_ status: HTTPResponse.Status, _ title: String, _ description: String? = nil) -> Response {
        var body: [String: JSONValue] = ["title": .string(title), "http_status": .string(String(status.code))]
        if let description { body["description"] = .string(description) }
        return answer(body, status: status)
    }

    // MARK: - Collections

    /// A TAXII collection: a Liaison collection under an id derived from its name.
    struct Collection {
        var name: String

        /// The collection's TAXII id: a UUID derived from its name (stable across restarts
        /// and the same at every node).
        var id: String {
            var bytes = Array(SHA256.hash(data: Array("liaison/taxii/collection\u{0}\(name)".utf8)).prefix(16))
            bytes[6] = (bytes[6] & 0x0f) | 0x40
            bytes[8] = (bytes[8] & 0x3f) | 0x80
            return UUID(
                uuid: (
                    bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                    bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
                )
            ).uuidString.lowercased()
        }

        func resource(for role: APIRole?) -> [String: JSONValue] {
            [
                "id": .string(id),
                "title": .string(name),
                "alias": .string(name),
                "description": .string("Liaison collection \(name): STIX objects held at this node"),
                "can_read": .bool(TAXII.mayRead(role)),
                "can_write": .bool(TAXII.mayWrite(role)),
                "media_types": .array([.string(TAXII.stixMediaType)]),
            ]
        }
    }

    /// Readers, writers and operators read objects; auditors see no content.
    static func mayRead(_ role: APIRole?) -> Bool { [.reader, .writer, .operator].contains(role) }
    /// Writers and operators add and delete objects.
    static func mayWrite(_ role: APIRole?) -> Bool { [.writer, .operator].contains(role) }

    /// The collections: those of the items held here, those the node's links carry, and
    /// `stix` (where new objects go when nothing else is named).
    static func collections(node: LocalNode, federation: FederationConfig) throws(LiaisonError) -> [Collection] {
        var names = Set(try node.store.collections())
        names.insert("stix")
        for neighbour in federation.neighbours {
            names.formUnion(neighbour.outbound?.collections ?? [])
            names.formUnion(neighbour.inbound?.collections ?? [])
        }
        return names.sorted().map(Collection.init)
    }

    /// The collection `id` names (its TAXII id or its alias), or nil.
    static func collection(
        _ id: String, node: LocalNode, federation: FederationConfig
    ) throws(LiaisonError)
        -> Collection?
    {
        let all = try collections(node: node, federation: federation)
        if let byID = all.first(where: { $0.id == id.lowercased() }) { return byID }
        // An alias never stands for another collection's id (a partner may name a collection
        // like a UUID).
        guard UUID(uuidString: id) == nil else { return nil }
        return all.first { $0.name == id }
    }

    // MARK: - Objects

    /// One version of one object as a page shows it.
    struct Entry {
        var object: [String: JSONValue]
        var version: String
        var mark: Int64
        var index: Int
        var id: String
        var type: String
        var specVersion: String
    }

    /// Where a page ends: the item's change mark and how many of its versions were given.
    struct Cursor: Comparable {
        var mark: Int64
        var index: Int

        init(mark: Int64, index: Int) {
            self.mark = mark
            self.index = index
        }

        /// Reads a cursor given by `text` for collection `name`; nil when it is not one of ours.
        init?(_ text: String, collection name: String) {
            guard let data = Data(base64Encoded: text), let decoded = String(data: data, encoding: .utf8) else {
                return nil
            }
            let parts = decoded.split(separator: "\u{0}", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == Substring(name), let mark = Int64(parts[1]), let index = Int(parts[2]),
                mark > 0, index >= 0
            else { return nil }
            self.init(mark: mark, index: index)
        }

        func text(collection name: String) -> String {
            Data("\(name)\u{0}\(mark)\u{0}\(index)".utf8).base64EncodedString()
        }

        static func < (lhs: Cursor, rhs: Cursor) -> Bool { (lhs.mark, lhs.index) < (rhs.mark, rhs.index) }
    }

    /// The filters of a request (TAXII 2.1 §3.4), checked.
    struct Filters {
        var addedAfter: Int64?
        var limit = TAXII.maxPage
        var next: Cursor?
        var ids: Set<String>?
        var types: Set<String>?
        var versions: Set<String> = ["last"]
        var specVersions: Set<String>?

        /// Reads the query; a malformed parameter is a 400 (`Response` thrown in the error).
        init(_ query: [(String, String)], collection: String, allowsMatch: Bool) throws(Refused) {
            var seen = Set<String>()
            for (key, value) in query {
                guard seen.insert(key).inserted else { throw Refused(.badRequest, "'\(key)' is given twice") }
                func list() throws(Refused) -> Set<String> {
                    let values = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                    guard !values.contains(""), Set(values).count == values.count else {
                        throw Refused(.badRequest, "'\(key)' must be distinct values separated by commas")
                    }
                    return Set(values)
                }
                switch key {
                case "added_after":
                    guard let stamp = STIXTimestamp(value) else {
                        throw Refused(
                            .badRequest, "added_after must be a timestamp such as 2026-01-01T00:00:00.000000Z")
                    }
                    addedAfter = stamp.micros
                case "limit":
                    guard let number = Int(value), number > 0 else {
                        throw Refused(.badRequest, "limit must be a whole number of at least 1")
                    }
                    limit = min(number, TAXII.maxPage)
                case "next":
                    guard let cursor = Cursor(value, collection: collection) else {
                        throw Refused(.badRequest, "next is not a cursor this server gave for this collection")
                    }
                    next = cursor
                case "match[id]" where allowsMatch: ids = try list()
                case "match[type]" where allowsMatch: types = try list()
                case "match[version]":
                    versions = try list()
                    for version in versions where !["last", "first", "all"].contains(version) {
                        guard STIXTimestamp(version) != nil else {
                            throw Refused(.badRequest, "match[version] takes last, first, all or a timestamp")
                        }
                    }
                    if versions.contains("all"), versions.count > 1 {
                        throw Refused(.badRequest, "match[version]=all takes no other value")
                    }
                case "match[spec_version]": specVersions = try list()
                default: continue  // Unknown parameters are ignored (TAXII 2.1 §3.4).
                }
            }
        }
    }

    /// A refused request.
    struct Refused: Error {
        var status: HTTPResponse.Status
        var message: String
        init(_ status: HTTPResponse.Status, _ message: String) {
            self.status = status
            self.message = message
        }
        var response: Response { TAXII.error(status, message) }
        /// The HTTP status code.
        var code: Int { status.code }
    }

    /// The versions of one item's object, first to last, each as this node can show it:
    /// the current one from the item, earlier ones folded from its ops up to the op that
    /// wrote them.
    /// `showing` false: only the versions' identities are wanted (a manifest, a delete), not
    /// the objects' granular markings, which cost a read of the ops that wrote the fields.
    static func versions(
        of item: ItemState, mark: Int64, node: LocalNode, wanted: Set<String>, showing: Bool = true
    ) throws(LiaisonError) -> [Entry] {
        let federation = node.federationName
        guard
            let current = STIXExport.object(
                of: item, federation: federation, withheld: showing ? try node.withholding(of: item) : [:]),
            let id = current.object["id"]?.stringValue, let type = current.object["type"]?.stringValue
        else { return [] }
        func entry(_ object: [String: JSONValue], index: Int) -> Entry {
            Entry(
                object: object,
                version: object["modified"]?.stringValue ?? object["created"]?.stringValue
                    ?? STIXTimestamp(micros: mark).text,
                mark: mark, index: index, id: id, type: type,
                specVersion: object["spec_version"]?.stringValue ?? "2.1")
        }
        let onlyLast = wanted == ["last"]
        guard !onlyLast, current.object["modified"] != nil else { return [entry(current.object, index: 0)] }
        // Earlier versions: the ops that set `modified`, each folded with those before it.
        let ops = try node.store.ops(ofItem: item.id).map(\.op).sorted { $0.body.hlc < $1.body.hlc }
        var states = [ItemState]()
        for (position, op) in ops.enumerated() where op.openings["modified"] != nil {
            if let state = ItemState.fold(ops[...position]) { states.append(state) }
        }
        let byID = Dictionary(ops.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var objects = [[String: JSONValue]]()
        for state in states {
            let withheld =
                try !showing
                ? [:]
                : LocalNode.withholding(
                    of: state, fields: state.fields.keys.sorted(), leaving: node.config.name
                ) { id throws(LiaisonError) in byID[id] }
            if let shown = STIXExport.object(
                of: state, federation: federation, markings: item.markings, withheld: withheld)
            {
                objects.append(shown.object)
            }
        }
        var seen = Set<String>()
        objects = objects.filter { seen.insert($0["modified"]?.stringValue ?? "").inserted }
        if objects.last?["modified"] != current.object["modified"] { objects.append(current.object) }
        objects[objects.count - 1] = current.object
        return objects.enumerated().map { entry($0.element, index: $0.offset) }
    }

    /// One page of a collection's object versions after the filters, in the order their
    /// items changed here, and whether more follow.
    /// `scanLimit` is the most items one request reads (`maxScan`; smaller in tests).
    static func page(
        collection: String, filters: Filters, node: LocalNode, only objectID: String? = nil,
        scanLimit: Int = maxScan, showing: Bool = true
    ) throws(LiaisonError) -> Page {
        // From the item the last page ended in (it may have versions left), or the time given.
        var after = filters.addedAfter ?? 0
        if let next = filters.next { after = max(after, next.mark - 1) }
        let tag: String? =
            if let objectID { "stix-id:\(objectID)" } else if let ids = filters.ids, ids.count == 1 {
                "stix-id:\(ids.first!)"
            } else if let types = filters.types, types.count == 1 {
                "stix-type:\(types.first!)"
            } else {
                STIXImport.tag
            }
        var entries = [Entry]()
        var scanned = 0
        let chunkSize = max(filters.limit, 100)
        while true {
            let chunk = try node.store.itemsChanged(
                ChangeQuery(collection: collection, tag: tag, after: after, limit: chunkSize))
            for changed in chunk {
                // A request reads at most `scanLimit` items, wanted or not: a selective filter
                // goes on in the next request, after the last item read.
                if scanned == scanLimit {
                    return Page(entries: entries, more: true, resume: Cursor(mark: after, index: Int(Int32.max)))
                }
                after = changed.mark
                scanned += 1
                guard !changed.item.isWithdrawn else { continue }
                // The id and type filters first, from the item's fields: no versions folded for
                // an item the request does not want.
                guard let identity = stixIdentity(of: changed.item) else { continue }
                if let ids = filters.ids, !ids.contains(identity.id) { continue }
                if let types = filters.types, !types.contains(identity.type) { continue }
                if let objectID, identity.id != objectID { continue }
                var versions = try versions(
                    of: changed.item, mark: changed.mark, node: node, wanted: filters.versions, showing: showing)
                if let specs = filters.specVersions {
                    versions = versions.filter { specs.contains($0.specVersion) }
                }
                versions = select(versions, filters.versions)
                for version in versions {
                    if let next = filters.next, Cursor(mark: version.mark, index: version.index) <= next { continue }
                    if entries.count == filters.limit { return Page(entries: entries, more: true) }
                    entries.append(version)
                }
            }
            if chunk.count < chunkSize { return Page(entries: entries, more: false) }
        }
    }

    /// The most items one request reads.
    static let maxScan = 10_000

    /// A page of object versions.
    struct Page {
        var entries: [Entry]
        var more: Bool
        /// Where the next page starts when it is not after the last entry.
        var resume: Cursor?
    }

    /// The STIX id and type an item's fields hold, if any.
    static func stixIdentity(of item: ItemState) -> (id: String, type: String)? {
        guard item.tags.contains(STIXImport.tag),
            let id = item.fields["id"]?.value.flatMap(JSONValue.init(jsonText:))?.stringValue,
            let type = item.fields["type"]?.value.flatMap(JSONValue.init(jsonText:))?.stringValue
        else { return nil }
        return (id, type)
    }

    /// The versions `match[version]` picks.
    static func select(_ versions: [Entry], _ wanted: Set<String>) -> [Entry] {
        guard !wanted.contains("all") else { return versions }
        return versions.enumerated().filter { position, entry in
            (wanted.contains("last") && position == versions.count - 1) || (wanted.contains("first") && position == 0)
                || wanted.contains { STIXTimestamp($0).map { $0 == STIXTimestamp(entry.version) } ?? false }
        }.map(\.element)
    }

    /// The date-added headers of a page.
    static func dateHeaders(_ entries: [Entry]) -> HTTPFields {
        var headers = HTTPFields()
        if let first = entries.first, let last = entries.last {
            headers[HTTPField.Name("X-TAXII-Date-Added-First")!] = STIXTimestamp(micros: first.mark).text
            headers[HTTPField.Name("X-TAXII-Date-Added-Last")!] = STIXTimestamp(micros: last.mark).text
        }
        return headers
    }

    /// `more` and `next` of a page's resource.
    static func paging(_ body: inout [String: JSONValue], page: Page, collection: String) {
        body["more"] = .bool(page.more)
        guard page.more else { return }
        if let resume = page.resume ?? page.entries.last.map({ Cursor(mark: $0.mark, index: $0.index) }) {
            body["next"] = .string(resume.text(collection: collection))
        }
    }
}
