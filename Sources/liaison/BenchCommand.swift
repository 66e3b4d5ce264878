import ArgumentParser
import Crypto
import Dispatch
import Foundation
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonStore
import Synchronization

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks (build with -c release). Figures go to BENCHMARKS.md.",
        subcommands: [Ops.self, CatchUp.self, Latency.self, Ingest.self]
    )

    /// A local federation of `topology` in a fresh temporary directory, its nodes run by this
    /// executable. The caller stops it and removes `federation.root`.
    static func scratchFederation(_ topology: Topology) throws(LiaisonError) -> LocalFederation {
        guard let executable = Bundle.main.executableURL else {
            throw LiaisonError(.io, "cannot find the liaison executable")
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "liaison-bench-\(UUID().uuidString.prefix(8))")
        return try LocalFederation(topology: topology, root: root, executable: executable)
    }

    struct Ops: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Signed ops created, verified and applied into SQLite per second, per-op versus batched signatures."
        )

        @Option(help: "Ops per run.")
        var count = 100_000

        @Option(help: "Bytes of field value per op.")
        var size = 1024

        @Option(help: "Ops per signature batch in the batched run.")
        var signatureBatch = 1000

        @Option(help: "Ops per store transaction.")
        var transaction = 1000

        @Option(help: "Directory for the scratch stores (default: a temporary directory, removed afterwards).")
        var scratch: String?

        @Flag(help: "Print JSON.")
        var json = false

        struct Run: Encodable {
            var mode: String
            var ops: Int
            var signatureBatch: Int
            var createPerSecond: Double
            var signPerSecond: Double
            var verifyPerSecondOneCore: Double
            var verifyPerSecondAllCores: Double
            var applyPerSecond: Double
            var endToEndPerSecond: Double
        }

        func validate() throws {
            guard count > 0, size > 0, signatureBatch > 0, transaction > 0 else {
                throw ValidationError("--count, --size, --signature-batch and --transaction must be positive")
            }
        }

        func run() throws {
            try reportingErrors {
                let base = URL(fileURLWithPath: scratch ?? NSTemporaryDirectory())
                    .appendingPathComponent("liaison-bench-\(UInt32.random(in: 0...UInt32.max))")
                try? FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
                defer { if scratch == nil { try? FileManager.default.removeItem(at: base) } }
                var runs = [Run]()
                for (mode, batch) in [("per-op signatures", 1), ("batched signatures", signatureBatch)] {
                    runs.append(
                        try measure(mode: mode, batch: batch, path: base.appendingPathComponent("\(batch).sqlite").path)
                    )
                }
                if json {
                    try printJSON(runs)
                    return
                }
                print(
                    "\(count) ops, \(size)-byte field value, store transactions of \(transaction), \(ProcessInfo.processInfo.activeProcessorCount) cores"
                )
                printTable(
                    header: [
                        "MODE", "CREATE/s", "SIGN/s", "VERIFY/s 1 CORE", "VERIFY/s ALL", "APPLY/s", "END-TO-END/s",
                    ],
                    rows: runs.map {
                        [
                            $0.mode, rate($0.createPerSecond), rate($0.signPerSecond), rate($0.verifyPerSecondOneCore),
                            rate($0.verifyPerSecondAllCores), rate($0.applyPerSecond), rate($0.endToEndPerSecond),
                        ]
                    }
                )
            }
        }

        private func rate(_ value: Double) -> String { String(Int(value.rounded())) }

        private func seconds(_ body: () throws -> Void) rethrows -> Double {
            let start = ContinuousClock.now
            try body()
            let elapsed = ContinuousClock.now - start
            return elapsed.seconds
        }

        private func measure(mode: String, batch: Int, path: String) throws -> Run {
            let author = OpAuthor(signingKey: Curve25519.Signing.PrivateKey())
            let markings = Markings(classification: "UNCLASSIFIED", releasableTo: ["ALL"])
            let value = try JSONEncoder().encode(String(repeating: "x", count: max(0, size - 2)))
            var generator = SystemRandomNumberGenerator()
            var clock = HybridLogicalClock()
            let now = UInt64(Date().timeIntervalSince1970 * 1000)

            var unsigned = [UnsignedOp]()
            unsigned.reserveCapacity(count)
            let createTime = try seconds {
                for _ in 0..<count {
                    unsigned.append(
                        try author.create(
                            collection: "bench",
                            markings: markings,
                            fields: [("body", value)],
                            hlc: clock.tick(physicalMillis: now),
                            using: &generator
                        )
                    )
                }
            }
            var signed = [VerifiedOp]()
            signed.reserveCapacity(count)
            let signTime = try seconds {
                var start = 0
                while start < count {
                    signed += try author.sign(Array(unsigned[start..<min(count, start + batch)]))
                    start += batch
                }
            }
            unsigned = []
            let encoded = signed.map(\.encoded)
            signed = []

            let oneCoreVerifier = OpVerifier()
            let oneCoreSample = min(count, batch == 1 ? 20_000 : count)
            let oneCoreTime = try seconds {
                for bytes in encoded.prefix(oneCoreSample) { _ = try oneCoreVerifier.verify(bytes) }
            }

            let verifier = OpVerifier()
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let chunk = (count + cores - 1) / cores
            let results = Mutex<[Int: [VerifiedOp]]>([:])
            let failures = Mutex(0)
            let allCoresTime = seconds {
                DispatchQueue.concurrentPerform(iterations: cores) { part in
                    let range = (part * chunk)..<min(count, (part + 1) * chunk)
                    var verified = [VerifiedOp]()
                    verified.reserveCapacity(range.count)
                    for index in range {
                        if let op = try? verifier.verify(encoded[index]) {
                            verified.append(op)
                        } else {
                            failures.withLock { $0 += 1 }
                        }
                    }
                    results.withLock { $0[part] = verified }
                }
            }
            guard failures.withLock({ $0 }) == 0 else {
                throw LiaisonError(.invalidOp, "benchmark ops failed to verify")
            }
            let verified = results.withLock { parts in (0..<cores).flatMap { parts[$0] ?? [] } }

            let store = try SQLiteStore(path: path, create: true)
            let applyTime = try seconds {
                var start = 0
                while start < verified.count {
                    let ops = Array(verified[start..<min(verified.count, start + transaction)])
                    _ = try store.commit(CommitBatch(ops: ops, source: .local, timeMillis: Int64(now)))
                    start += transaction
                }
            }
            guard try store.highestSequence() == UInt64(count) else {
                throw LiaisonError(.io, "benchmark store holds the wrong number of ops")
            }
            let perOp = [createTime, signTime, allCoresTime, applyTime].reduce(0, +)
            return Run(
                mode: mode,
                ops: count,
                signatureBatch: batch,
                createPerSecond: Double(count) / createTime,
                signPerSecond: Double(count) / signTime,
                verifyPerSecondOneCore: Double(oneCoreSample) / oneCoreTime,
                verifyPerSecondAllCores: Double(count) / allCoresTime,
                applyPerSecond: Double(count) / applyTime,
                endToEndPerSecond: Double(count) / perOp
            )
        }
    }
}
