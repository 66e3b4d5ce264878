import ArgumentParser
import Foundation
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

    func run() async throws {
        try await reportingErrorsAsync {
            let client = try NodeClient(directory: NodeDirectory(path: directory.dir))
            repeat {
                let links = try await client.links()
                if json {
                    try printJSON(links)
                } else {
                    if watch { print("\u{1B}[2J\u{1B}[H", terminator: "") }
                    printLinks(links)
                }
                if watch { try await Task.sleep(for: .seconds(1)) }
            } while watch
        }
    }
}

/// The human table of link health.
func printLinks(_ links: [LinkStatus]) {
    printTable(
        header: ["PEER", "STATE", "CHANNEL", "RTT", "LAST CONTACT", "LAG OPS", "LAG s", "SENT", "RECV", "BYTES OUT", "BYTES IN", "WITHHELD", "REJECTS", "DIRECTION"],
        rows: links.map { link in
            [
                link.peer, link.state, link.channel ?? "-", link.rttMillis.map { "\($0) ms" } ?? "-",
                link.lastContact ?? "-", "\(link.lagOps)", String(format: "%.1f", link.lagSeconds), "\(link.opsSent)",
                "\(link.opsReceived)", "\(link.bytesSent)", "\(link.bytesReceived)", "\(link.opsWithheld)", "\(link.rejects)",
                link.outbound && link.inbound ? "both" : (link.outbound ? "out" : "in"),
            ]
        }
    )
}
