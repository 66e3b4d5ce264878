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

/// The human table of link health: one row per link, then one row per channel.
func printLinks(_ links: [LinkStatus]) {
    printTable(
        header: [
            "PEER", "STATE", "PATH", "RTT", "LAST CONTACT", "LAG OPS", "LAG s", "SENT", "RECV", "WITHHELD", "REJECTS",
            "FAILOVERS", "SEALED WAIT", "DIRECTION",
        ],
        rows: links.map { link in
            [
                link.peer, link.state, link.path, link.rttMillis.map { "\($0) ms" } ?? "-",
                link.lastContact ?? "-", "\(link.lagOps)", String(format: "%.1f", link.lagSeconds), "\(link.opsSent)",
                "\(link.opsReceived)", "\(link.opsWithheld)", "\(link.rejects)", "\(link.failovers)",
                "\(link.envelopesAwaiting)",
                link.outbound && link.inbound ? "both" : (link.outbound ? "out" : "in"),
            ]
        }
    )
    print("")
    printTable(
        header: ["PEER", "ENDPOINT", "CHANNEL", "ADDRESS", "RTT", "LAST CONTACT", "FAILURES", "LAST ERROR"],
        rows: links.flatMap { link in
            link.channels.map { channel in
                [
                    link.peer, "\(channel.endpoint)", channel.state, channel.address ?? "-",
                    channel.rttMillis.map { "\($0) ms" } ?? "-",
                    channel.lastContact ?? "-", "\(channel.failures)",
                    channel.lastError.map { String($0.prefix(60)) } ?? "-",
                ]
            }
        }
    )
}
