import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonDrill
import LiaisonNode

extension BenchCommand {
    static let pairTopology = """
        federation: bench
        partners:
          alpha: {endpoints: ["127.0.0.1:1"], api: "127.0.0.1:2"}
          bravo: {endpoints: ["127.0.0.1:3"], api: "127.0.0.1:4"}
        links:
          - {from: alpha, to: bravo}
          - {from: bravo, to: alpha}
        """

    /// alpha and bravo share a link; delta relays for both but its own links carry none of
    /// the bench's collection, so with no alpha-bravo channel everything goes sealed.
    static let relayTopology = """
        federation: bench
        partners:
          alpha: {endpoints: ["127.0.0.1:1"], api: "127.0.0.1:2"}
          bravo: {endpoints: ["127.0.0.1:3"], api: "127.0.0.1:4"}
          delta: {endpoints: ["127.0.0.1:5"], api: "127.0.0.1:6", relay: true}
        links:
          - {from: alpha, to: bravo}
          - {from: bravo, to: alpha}
          - {from: alpha, to: delta, filter: {collections: [other]}}
          - {from: delta, to: alpha, filter: {collections: [other]}}
          - {from: bravo, to: delta, filter: {collections: [other]}}
          - {from: delta, to: bravo, filter: {collections: [other]}}
        """

    struct CatchUp: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "catchup",
            abstract: "One-link catch-up between two node processes over TLS: ops/s verified and committed, and memory."
        )

        @Option(help: "Ops alpha holds before bravo connects.")
        var ops = 100_000

        @Option(help: "Bytes of field value per op.")
        var size = 1024

        @Flag(
            help: "Cut every alpha-bravo channel so that the catch-up travels sealed through a relay partner (delta).")
        var viaRelay = false

        @Flag(
            help:
                "After the catch-up, report the receiver's memory after 8 s idle, restart it, and report its memory at rest (up again: with a direct link, up with nothing left to send; then 5 s idle)."
        )
        var restart = false

        @Flag(help: "Print JSON.")
        var json = false

        struct Result: Encodable {
            var path: String
            var ops: Int
            var seconds: Double
            var opsPerSecond: Double
            var receiverRSSKiBAfter: Int
            var receiverPeakRSSKiB: Int
            var senderRSSKiBAfter: Int
            var senderPeakRSSKiB: Int
            /// Bytes the receiver wrote to storage during the catch-up, per op (its store, WAL
            /// and checkpoints: the write amplification of the store's layout).
            var receiverBytesWrittenPerOp: Double?
            /// Cores each side used on average during the catch-up (CPU time / wall time).
            var receiverCores: Double?
            var senderCores: Double?
            /// With `--restart`: seconds from the receiver's restart until its link was up
            /// with nothing to catch up, and its RSS after 5 s at rest then.
            var restartSeconds: Double?
            var receiverRSSKiBAtRest: Int?
            /// With `--restart`: the receiver's RSS after 8 s idle following the catch-up, before
            /// its restart.
            var receiverRSSKiBIdle: Int?
        }

        func run() async throws {
            try await reportingErrorsAsync {
                guard ops > 0, size > 2 else {
                    throw LiaisonError(.invalidArgument, "--ops and --size must be positive")
                }
                let federation = try BenchCommand.scratchFederation(
                    try Topology.parse(viaRelay ? BenchCommand.relayTopology : BenchCommand.pairTopology))
                defer {
                    federation.stopAll()
                    try? FileManager.default.removeItem(at: federation.root)
                }
                let value = Data("\"\(String(repeating: "x", count: size - 2))\"".utf8)
                let alpha = try LocalNode.open(federation.directory("alpha"))
                var loaded = 0
                let loading = Progress(total: ops, unit: "ops loaded")
                defer { loading.finish() }
                while loaded < ops {
                    let chunk = min(LocalNode.maxItemsPerPut, ops - loaded)
                    _ = try alpha.putMany(
                        (0..<chunk).map { _ in
                            PutRequest(collection: "bench", releasableTo: ["bravo"], fields: [("body", value)])
                        },
                        now: Date()
                    )
                    loaded += chunk
                    loading.update(loaded)
                }
                loading.finish()
                if viaRelay {
                    // alpha dials bravo; point alpha's record of bravo at a port nobody listens on.
                    var config = try FederationConfig.load(from: federation.directory("alpha"))
                    if let index = config.partners.firstIndex(where: { $0.name == "bravo" }) {
                        config.partners[index].endpoints = [Endpoint(host: "127.0.0.1", port: try FreePort.find())]
                    }
                    try config.write(to: federation.directory("alpha"))
                    try federation.start("delta")
                }
                FileHandle.standardError.write(Data("loaded \(ops) ops at alpha; starting the nodes\n".utf8))
                try federation.start("bravo")
                try await federation.waitUntilHealthy()
                let receiverBefore = federation.work(of: "bravo")
                let start = ContinuousClock.now
                try federation.start("alpha")
                let client = try federation.client("alpha")
                var peakReceiver = 0
                // On a terminal, a bar of the ops bravo acknowledged (receipted, via a relay).
                let catchingUp = Progress(total: ops, unit: "ops caught up")
                defer { catchingUp.finish() }
                while true {
                    let link = try? await client.links().first { $0.peer == "bravo" }
                    if let link {
                        let done = viaRelay ? link.sealedOpsReceipted : UInt64(ops) - min(UInt64(ops), link.lagOps)
                        if link.state == "up" || viaRelay { catchingUp.update(Int(done)) }
                    }
                    if let link,
                        viaRelay ? link.sealedOpsReceipted >= UInt64(ops) : (link.state == "up" && link.lagOps == 0)
                    {
                        break
                    }
                    peakReceiver = max(peakReceiver, federation.memory(of: "bravo")?.peakKiB ?? 0)
                    guard ContinuousClock.now - start < .seconds(1800) else {
                        throw LiaisonError(.io, "catch-up did not finish")
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
                let elapsed = ContinuousClock.now - start
                let seconds = elapsed.seconds
                let receiver = federation.memory(of: "bravo") ?? (0, 0)
                let sender = federation.memory(of: "alpha") ?? (0, 0)
                let receiverWork = federation.work(of: "bravo")
                let senderWork = federation.work(of: "alpha")
                var result = Result(
                    path: viaRelay ? "sealed via relay" : "direct",
                    ops: ops,
                    seconds: seconds,
                    opsPerSecond: Double(ops) / seconds,
                    receiverRSSKiBAfter: receiver.rssKiB,
                    receiverPeakRSSKiB: max(peakReceiver, receiver.peakKiB),
                    senderRSSKiBAfter: sender.rssKiB,
                    senderPeakRSSKiB: sender.peakKiB
                )
                if let before = receiverBefore, let after = receiverWork {
                    result.receiverBytesWrittenPerOp = Double(after.writtenBytes - before.writtenBytes) / Double(ops)
                    result.receiverCores = (after.cpuSeconds - before.cpuSeconds) / seconds
                }
                // alpha started with the catch-up: all its work is the catch-up's.
                result.senderCores = senderWork.map { $0.cpuSeconds / seconds }
                if restart {
                    try await Task.sleep(for: .seconds(8))
                    result.receiverRSSKiBIdle = federation.memory(of: "bravo")?.rssKiB
                    federation.stop("bravo")
                    let restarted = ContinuousClock.now
                    try federation.start("bravo")
                    try await federation.waitUntilHealthy(["bravo"])
                    // Up as the restarted node sees it (not a stale view of the old process at
                    // alpha), and nothing left for alpha to send.
                    let bravo = try federation.client("bravo")
                    while true {
                        var restartedUp = viaRelay
                        if !restartedUp {
                            restartedUp = try await bravo.links().contains { $0.peer == "alpha" && $0.state == "up" }
                        }
                        let sent = try await client.links().first { $0.peer == "bravo" }.map {
                            viaRelay || ($0.state == "up" && $0.lagOps == 0)
                        }
                        if restartedUp, sent == true { break }
                        guard ContinuousClock.now - restarted < .seconds(600) else {
                            throw LiaisonError(.io, "the receiver did not come back up after its restart")
                        }
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    result.restartSeconds = (ContinuousClock.now - restarted).seconds
                    // At rest: nothing to send or receive; a fixed window, as an operator would
                    // read the figure, not a synchronisation.
                    try await Task.sleep(for: .seconds(5))
                    result.receiverRSSKiBAtRest = federation.memory(of: "bravo")?.rssKiB
                }
                if json {
                    try printJSON(result)
                } else {
                    print(
                        "caught up \(ops) ops \(result.path) in \(String(format: "%.2f", seconds)) s: \(Int(result.opsPerSecond)) ops/s (includes TLS connect and hello)"
                    )
                    print(
                        "receiver RSS after \(receiver.rssKiB / 1024) MiB, peak \(result.receiverPeakRSSKiB / 1024) MiB; sender RSS \(sender.rssKiB / 1024) MiB, peak \(sender.peakKiB / 1024) MiB"
                    )
                    if let rest = result.receiverRSSKiBAtRest, let back = result.restartSeconds,
                        let idle = result.receiverRSSKiBIdle
                    {
                        print(
                            "receiver RSS idle 8 s after the catch-up \(idle / 1024) MiB; restarted: up and caught up in \(String(format: "%.1f", back)) s, RSS at rest \(rest / 1024) MiB"
                        )
                    }
                    if let written = result.receiverBytesWrittenPerOp, let cores = result.receiverCores {
                        print(
                            "receiver wrote \(Int(written)) bytes to storage per op; cores used: receiver "
                                + String(format: "%.2f", cores) + ", sender "
                                + String(format: "%.2f", result.senderCores ?? 0))
                    }
                }
            }
        }
    }

    struct Latency: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "latency",
            abstract: "Put at alpha, visible at charlie two hops away (demo topology): p50 and p99 over many puts."
        )

        @Option(help: "Number of puts.")
        var puts = 1000

        @Flag(help: "Print JSON.")
        var json = false

        struct Result: Encodable {
            var puts: Int
            var p50Millis: Double
            var p90Millis: Double
            var p99Millis: Double
            var maxMillis: Double
        }

        func run() async throws {
            try await reportingErrorsAsync {
                guard puts > 0 else { throw LiaisonError(.invalidArgument, "--puts must be positive") }
                let federation = try BenchCommand.scratchFederation(
                    try Topology.parse(DemoTopology.yaml, file: "demo.yaml (embedded)"))
                defer {
                    federation.stopAll()
                    try? FileManager.default.removeItem(at: federation.root)
                }
                try federation.startAll()
                try await federation.waitUntilHealthy()
                let alpha = try federation.client("alpha")
                let charlie = try federation.client("charlie")
                // Wait for both links to be up before timing.
                while true {
                    let alphaUp = try await alpha.links().allSatisfy { $0.state == "up" }
                    let charlieUp = try await charlie.links().allSatisfy { $0.state == "up" }
                    if alphaUp && charlieUp { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                var samples = [Double]()
                for index in 0..<puts {
                    let start = ContinuousClock.now
                    let put = try await alpha.put(
                        PutItemBody(
                            collection: "indicators", classification: "RESTRICTED", relTo: ["bravo", "charlie"],
                            fields: ["n": .integer(Int64(index))])
                    )
                    while try await charlie.item(put.id) == nil {
                        guard ContinuousClock.now - start < .seconds(30) else {
                            throw LiaisonError(.io, "put \(index) never reached charlie")
                        }
                    }
                    let elapsed = ContinuousClock.now - start
                    samples.append(
                        Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
                }
                samples.sort()
                func percentile(_ p: Double) -> Double {
                    samples[min(samples.count - 1, Int((Double(samples.count) * p).rounded(.up)) - 1)]
                }
                let result = Result(
                    puts: puts, p50Millis: percentile(0.5), p90Millis: percentile(0.9), p99Millis: percentile(0.99),
                    maxMillis: samples.last!)
                if json {
                    try printJSON(result)
                } else {
                    print(
                        String(
                            format:
                                "put at alpha -> visible at charlie (2 hops), %d puts: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms",
                            puts, result.p50Millis, result.p90Millis, result.p99Millis, result.maxMillis))
                }
            }
        }
    }
}
