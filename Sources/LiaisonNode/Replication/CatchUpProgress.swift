import Foundation

/// Progress of long catch-ups for the node's log (docs/operations.md, "Watch links"): every
/// `interval`, for each partner, how far behind it is on our log and how fast that falls
/// (sending), and how fast its ops arrive here (receiving). A line is due only while the work
/// is long: at least `threshold` ops behind, or that many received in the interval; and once
/// more when a catch-up that was reported ends. A terminal and a log file read the same lines.
public struct CatchUpProgress: Sendable {
    /// One reading of a link.
    public struct Reading: Sendable, Equatable {
        public var peer: String
        /// Our log not yet acknowledged by the peer.
        public var lagOps: UInt64
        /// Ops received from the peer since the node started.
        public var received: UInt64

        public init(peer: String, lagOps: UInt64, received: UInt64) {
            self.peer = peer
            self.lagOps = lagOps
            self.received = received
        }
    }

    public let intervalMillis: UInt64
    public let threshold: UInt64
    private var last: [String: (atMillis: UInt64, reading: Reading)] = [:]
    private var reporting: Set<String> = []

    public init(intervalMillis: UInt64 = 5_000, threshold: UInt64 = 10_000) {
        self.intervalMillis = intervalMillis
        self.threshold = threshold
    }

    /// The lines due now, one per partner with a long catch-up (or one that just ended).
    public mutating func lines(_ readings: [Reading], nowMillis: UInt64) -> [String] {
        var lines = [String]()
        for reading in readings.sorted(by: { $0.peer < $1.peer }) {
            guard let previous = last[reading.peer] else {
                last[reading.peer] = (nowMillis, reading)
                continue
            }
            let elapsed = nowMillis - previous.atMillis
            guard elapsed >= intervalMillis else { continue }
            last[reading.peer] = (nowMillis, reading)
            let seconds = Double(elapsed) / 1000
            let received = reading.received &- previous.reading.received
            let sentRate =
                Double(previous.reading.lagOps > reading.lagOps ? previous.reading.lagOps - reading.lagOps : 0)
                / seconds
            let receivedRate = Double(received) / seconds
            var parts = [String]()
            if reading.lagOps >= threshold {
                var text = "\(reading.lagOps) ops of our log to send, \(Int(sentRate.rounded())) ops/s"
                if sentRate > 0 { text += ", about \(Self.duration(Double(reading.lagOps) / sentRate)) left" }
                parts.append(text)
            }
            if received >= threshold {
                parts.append("receiving \(Int(receivedRate.rounded())) ops/s (\(reading.received) so far)")
            }
            if parts.isEmpty {
                if reporting.remove(reading.peer) != nil {
                    lines.append("catch-up with \(reading.peer) done: \(reading.lagOps) ops to send")
                }
                continue
            }
            reporting.insert(reading.peer)
            lines.append("catching up with \(reading.peer): " + parts.joined(separator: "; "))
        }
        return lines
    }

    /// "40 s", "3 min", "2 h".
    static func duration(_ seconds: Double) -> String {
        if seconds < 90 { return "\(Int(seconds.rounded())) s" }
        if seconds < 5_400 { return "\(Int((seconds / 60).rounded())) min" }
        return "\(Int((seconds / 3_600).rounded())) h"
    }
}
