import Foundation
import Hummingbird
import LiaisonCore
import LiaisonNode
import NIOCore

/// `POST /v1/items` with an array body: many items in one transaction (docs/operations.md,
/// the API table; docs/decisions.md, "Bulk put"). Every item is checked before anything is written; one refused item refuses the
/// whole array, and the answer names each refused item by its index.
enum BulkPut {
    /// The largest body `POST /v1/items` takes: a full array of `LocalNode.maxItemsPerPut`
    /// items of a few KiB.
    static let maxBodyBytes = 64 << 20

    /// Whether the body is a JSON array (its first byte that is not white space is `[`).
    static func isArray(_ body: Data) -> Bool {
        for byte in body {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): continue
            default: return byte == UInt8(ascii: "[")
            }
        }
        return false
    }

    /// Decodes, checks and commits an array of items; answers 201 with one result per item,
    /// in order, or 400 with the refused items (`BulkPutRefusalBody`).
    static func handle(_ body: Data, engine: ReplicationEngine) async throws -> Response {
        let items: [PutItemBody]
        do {
            items = try JSONDecoder().decode([PutItemBody].self, from: body)
        } catch {
            throw HTTPError(
                .badRequest, message: "the body is not an array of items: \(DecodingErrorText.describe(error))")
        }
        guard items.count <= LocalNode.maxItemsPerPut else {
            throw HTTPError(
                .contentTooLarge,
                message: "\(items.count) items in one request; send at most \(LocalNode.maxItemsPerPut) at a time")
        }
        var requests = [PutRequest]()
        var indexes = [Int]()
        requests.reserveCapacity(items.count)
        var refusal = BulkPutRefusal()
        for (index, item) in items.enumerated() {
            do {
                requests.append(try item.request())
                indexes.append(index)
            } catch {
                refusal.failures.append(.init(index: index, message: error.message))
            }
        }
        if !refusal.failures.isEmpty {
            // Name every refused item, not only those whose body was malformed.
            let node = await engine.node
            for failure in node.refusals(of: requests, now: Date()).failures {
                refusal.failures.append(.init(index: indexes[failure.index], message: failure.message))
            }
            refusal.failures.sort { $0.index < $1.index }
            return try refused(refusal, count: items.count)
        }
        do {
            let created = try await engine.putMany(requests)
            return try json(
                created.map { PutItemResult(id: $0.item.id.text, opID: $0.op.id.hash.hex, digest: $0.item.digest.hex) },
                status: .created)
        } catch let error as LiaisonError {
            if let refusal = error.cause as? BulkPutRefusal {
                return try refused(refusal, count: items.count)
            }
            throw HTTPError(error.code == .invalidArgument ? .badRequest : .internalServerError, message: error.message)
        }
    }

    /// A 400 naming every refused item.
    static func refused(_ refusal: BulkPutRefusal, count: Int) throws -> Response {
        let body = BulkPutRefusalBody(
            error: .init(message: refusal.summary(of: count)),
            refused: refusal.failures.map { .init(index: $0.index, error: $0.message) })
        return try json(body, status: .badRequest)
    }

    /// The body of a request, at most `maxBodyBytes`; a larger one is a 413.
    static func collect(_ request: Request) async throws -> Data {
        do {
            return Data(try await request.body.collect(upTo: maxBodyBytes).readableBytesView)
        } catch is NIOTooManyBytesError {
            throw HTTPError(
                .contentTooLarge,
                message:
                    "the body is larger than \(maxBodyBytes >> 20) MiB; send at most \(LocalNode.maxItemsPerPut) items at a time"
            )
        }
    }

    /// A JSON answer.
    static func json(_ value: some Encodable, status: HTTPResponse.Status) throws -> Response {
        let data = try JSONEncoder().encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: Array(data))))
    }
}

/// The answer to a bulk put that refused items: Hummingbird's error shape (`error.message`)
/// and, per refused item, its index in the array and why.
public struct BulkPutRefusalBody: Codable, Sendable {
    /// The error, as every API error gives it.
    public struct Message: Codable, Sendable {
        /// One line.
        public var message: String
    }

    /// One refused item.
    public struct Item: Codable, Sendable {
        /// Its index in the array, from 0.
        public var index: Int
        /// Why, and what to do.
        public var error: String
    }

    /// The error.
    public var error: Message
    /// The refused items, in order.
    public var refused: [Item]
}

/// A JSON decoding error in words, with the path to the offending value: `missing
/// "collection"`, `[0].collection: Expected to decode String…`. For the API and the CLI.
public enum DecodingErrorText {
    /// The error in words.
    public static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
                .trimmingPrefix(".").description
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = path(context)
            return at.isEmpty ? "missing \"\(key.stringValue)\"" : "\(at): missing \"\(key.stringValue)\""
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let at = path(context)
            return at.isEmpty ? context.debugDescription : "\(at): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
