import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode

struct LinksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "links",
        abstract: "Show the health of the running node's links: one row per neighbour."
    )

    @OptionGroup var directory: DirectoryOption

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "Refresh every second until interrupted.")
    var watch = false

    @Flag(help: "Every column (the default view fits 100 columns).")
    var wide = false

    func run() async throws {
        try await reportingErrorsAsync {
            let client = try NodeClient(directory: NodeDirectory(path: directory.dir))
            repeat {
                let links = try await client.links()
                if json {
                    try printJSON(links)
                } else {
                    if watch { print("\u{1B}[2J\u{1B}[H", terminator: "") }
                    printLinks(links, wide: wide)
                }
                if watch { try await Task.sleep(for: .seconds(1)) }
            } while watch
        }
    }
}

/// The human tables of link health: one row per link, then one row per channel. The
/// default view fits 100 columns (long names and errors are cut short with `…`); `wide`
/// prints every column in full.
func printLinks(_ links: [LinkStatus], wide: Bool = false, now: Date = Date()) {
    for line in linkTables(links, wide: wide, now: now) { print(line) }
}

/// The lines `printLinks` prints.
func linkTables(_ links: [LinkStatus], wide: Bool, now: Date) -> [String] {
    func rtt(_ millis: UInt64?) -> String { millis.map { "\($0) ms" } ?? "-" }
    func cut(_ text: String, _ width: Int) -> String {
        wide || text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }
    /// How long ago, short: `0.4s`, `12s`, `5m`, `3h`, `2d`.
    func ago(_ stamp: String?) -> String {
        guard let stamp, let date = ISO8601.parse(stamp) else { return "-" }
        let seconds = max(0, now.timeIntervalSince(date))
        switch seconds {
        case ..<10: return String(format: "%.1fs", seconds)
        case ..<120: return "\(Int(seconds))s"
        case ..<7_200: return "\(Int(seconds / 60))m"
        case ..<172_800: return "\(Int(seconds / 3_600))h"
        default: return "\(Int(seconds / 86_400))d"
        }
    }
    func direction(_ link: LinkStatus) -> String {
        link.outbound && link.inbound ? "both" : (link.outbound ? "out" : "in")
    }
    var lines = [String]()
    if wide {
        lines += table(
            header: [
                "PEER", "STATE", "PATH", "RTT", "LAST CONTACT", "LAG OPS", "LAG s", "SENT", "RECV", "WITHHELD",
                "REJECTS", "FAILOVERS", "SEALED WAIT", "DIRECTION",
            ],
            rows: links.map { link in
                [
                    link.peer, link.state, link.path, rtt(link.rttMillis), link.lastContact ?? "-", "\(link.lagOps)",
                    String(format: "%.1f", link.lagSeconds), "\(link.opsSent)", "\(link.opsReceived)",
                    "\(link.opsWithheld)", "\(link.rejects)", "\(link.failovers)", "\(link.envelopesAwaiting)",
                    direction(link),
                ]
            })
        lines.append("")
        lines += table(
            header: ["PEER", "ENDPOINT", "CHANNEL", "ADDRESS", "RTT", "LAST CONTACT", "FAILURES", "LAST ERROR"],
            rows: links.flatMap { link in
                link.channels.map { channel in
                    [
                        link.peer, "\(channel.endpoint)", channel.state, channel.address ?? "-", rtt(channel.rttMillis),
                        channel.lastContact ?? "-", "\(channel.failures)", channel.lastError ?? "-",
                    ]
                }
            })
        return lines
    }
    lines += table(
        header: ["PEER", "STATE", "PATH", "RTT", "SEEN", "LAG", "SENT", "RECV", "REJECTS"],
        rows: links.map { link in
            let path: String
            switch link.state {
            case "up":
                let carrying = link.channels.filter { $0.state == "carrying" }.map { "\($0.endpoint)" }
                path = carrying.isEmpty ? "up" : "ch " + carrying.joined(separator: ",")
            case "relayed": path = link.path.replacingOccurrences(of: "relay via ", with: "relay ")
            default: path = "-"
            }
            return [
                cut(link.peer, 12), link.state, cut(path, 14), rtt(link.rttMillis), ago(link.lastContact),
                cut(link.lagOps == 0 ? "0" : "\(link.lagOps) / " + String(format: "%.1fs", link.lagSeconds), 12),
                cut("\(link.opsSent)", 8), cut("\(link.opsReceived)", 8), cut("\(link.rejects)", 7),
            ]
        })
    lines.append("")
    lines += table(
        header: ["PEER", "EP", "CHANNEL", "ADDRESS", "RTT", "SEEN", "FAILS", "LAST ERROR"],
        rows: links.flatMap { link in
            link.channels.map { channel in
                [
                    cut(link.peer, 12), "\(channel.endpoint)", channel.state, cut(channel.address ?? "-", 23),
                    rtt(channel.rttMillis), ago(channel.lastContact), "\(channel.failures)",
                    cut(channel.lastError ?? "-", 20),
                ]
            }
        })
    return lines
}
