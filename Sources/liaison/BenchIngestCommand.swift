import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonDrill
import LiaisonNode

extension BenchCommand {
    struct Ingest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ingest",
            abstract: "Items/s created through a running node's API, durable (committed with fsync) when answered.",
            discussion: """
                Starts one node process and has --clients concurrent clients create --items items of \
                about --size bytes: as arrays of --batch items (POST /v1/items with an array, one \
                transaction each), or with --per-item one POST per item. The request bodies are \
                encoded before the clock starts, so that the figure is the node's and not the bench's \
                own JSON encoder's (client and node share the machine's cores); --encode-while-timing \
                encodes each request as it is sent, as a client that builds its JSON on the fly does.
                """
        )

        @Option(help: "Items to create.")
        var items = 100_000

        @Option(help: "Bytes of field value per item.")
        var size = 1024

        @Option(help: "Items per request (1 to 10000).")
        var batch = 1000

        @Option(help: "Concurrent clients.")
        var clients = 2

        @Flag(help: "One POST per item, as a tool without the bulk path does.")
        var perItem = false

        @Flag(help: "Encode each request's JSON as it is sent, inside the timing.")
        var encodeWhileTiming = false

        @Flag(help: "Print JSON.")
        var json = false

        struct Result: Encodable {
            var mode: String
            var items: Int
            var batch: Int
            var clients: Int
            var encodedWhileTiming: Bool
            var seconds: Double
            var itemsPerSecond: Double
            var nodePeakRSSKiB: Int
        }

        func run() async throws {
            try await reportingErrorsAsync {
                guard items > 0, size > 2, clients > 0, (1...LocalNode.maxItemsPerPut).contains(batch) else {
                    throw LiaisonError(
                        .invalidArgument,
                        "--items, --size and --clients must be positive and --batch 1 to \(LocalNode.maxItemsPerPut)")
                }
                let federation = try BenchCommand.scratchFederation(try Topology.parse(BenchCommand.pairTopology))
                defer {
                    federation.stopAll()
                    try? FileManager.default.removeItem(at: federation.root)
                }
                try federation.start("alpha")
                try await federation.waitUntilHealthy()
                let client = try federation.client("alpha")
                let filler = String(repeating: "x", count: size - 2)
                let perRequest = perItem ? 1 : batch
                let requests = (items + perRequest - 1) / perRequest
                let perItem = perItem
                @Sendable func bodies(of request: Int) -> [PutItemBody] {
                    let first = request * perRequest
                    return (first..<min(items, first + perRequest)).map { index in
                        PutItemBody(
                            collection: "bench", relTo: ["bravo"],
                            fields: ["n": .integer(Int64(index)), "body": .string(filler)])
                    }
                }
                @Sendable func encoded(_ request: Int) throws -> Data {
                    let bodies = bodies(of: request)
                    return try perItem ? JSONEncoder().encode(bodies[0]) : JSONEncoder().encode(bodies)
                }
                let prepared = encodeWhileTiming ? [] : try (0..<requests).map(encoded)
                let next = NextIndex(limit: requests)
                let progress = Progress(total: items, unit: "items")
                let start = ContinuousClock.now
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<clients {
                        group.addTask {
                            while let request = next.take() {
                                let body = prepared.isEmpty ? try encoded(request) : prepared[request]
                                let created =
                                    perItem
                                    ? [try await client.put(encoded: body)]
                                    : try await client.putMany(encodedArray: body)
                                let expected = min(items, (request + 1) * perRequest) - request * perRequest
                                guard created.count == expected else {
                                    throw LiaisonError(
                                        .io, "asked for \(expected) items, the node answered \(created.count)")
                                }
                                progress.update(next.done(created.count))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let seconds = (ContinuousClock.now - start).seconds
                progress.finish()
                let result = Result(
                    mode: perItem ? "one POST per item" : "arrays of \(batch)", items: items, batch: perRequest,
                    clients: clients, encodedWhileTiming: encodeWhileTiming, seconds: seconds,
                    itemsPerSecond: Double(items) / seconds,
                    nodePeakRSSKiB: federation.memory(of: "alpha")?.peakKiB ?? 0)
                if json {
                    try printJSON(result)
                } else {
                    print(
                        "created \(items) items of \(size) B (\(result.mode), \(clients) clients) in "
                            + "\(String(format: "%.2f", seconds)) s: \(Int(result.itemsPerSecond)) items/s; "
                            + "node peak RSS \(result.nodePeakRSSKiB / 1024) MiB")
                }
            }
        }
    }
}

/// Hands out request numbers to concurrent clients and counts what they finished.
private final class NextIndex: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private var finished = 0
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    func take() -> Int? {
        lock.withLock {
            guard next < limit else { return nil }
            next += 1
            return next - 1
        }
    }

    func done(_ count: Int) -> Int {
        lock.withLock {
            finished += count
            return finished
        }
    }
}
