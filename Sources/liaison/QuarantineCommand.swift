import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode

struct QuarantineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine",
        abstract:
            "Cut a compromised partner off: stop its links and relaying, leave its ops since a time out of every item.",
        discussion: """
            The partner's ops stamped at or after --since are refused from whoever passes them on, \
            never sent on, and left out of every item they touched (they stay in the log for \
            forensics; 'liaison audit' lists them under partner.quarantined). Items it created \
            since then disappear here. A running node applies it at once through its API; a stopped \
            node finds it when it starts. 'liaison release PARTNER' undoes it.
            """
    )

    @OptionGroup var directory: DirectoryOption

    @Argument(help: "The partner's name.")
    var partner: String

    @Option(help: "From when its ops are left out: ISO 8601 (e.g. 2026-11-29T08:00:00Z), or 'now'.")
    var since: String

    @Option(help: "Why, for the custody log.")
    var reason: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrorsAsync {
            let body = QuarantineBody(partner: partner, since: since, reason: reason)
            let now = Date()
            let sinceMillis = try body.sinceMillis(now: now)
            let result = try await onNode(
                NodeDirectory(path: directory.dir),
                running: { client throws(LiaisonError) in try await client.quarantine(body) },
                stopped: { node throws(LiaisonError) in
                    QuarantineResult(
                        partner: partner,
                        try node.quarantine(
                            partner, sinceMillis: sinceMillis, reason: body.reasonText,
                            nowMillis: UInt64(now.timeIntervalSince1970 * 1000)),
                        released: false)
                })
            if json {
                try printJSON(result)
            } else {
                print(
                    "\(partner) quarantined from \(ISO8601.format(millis: Int64(sinceMillis))): "
                        + "\(result.opsLeftOut) ops left out, \(result.itemsRebuilt) items rebuilt "
                        + "(\(result.itemsRemoved) removed)")
            }
        }
    }
}

struct ReleaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "End a partner's quarantine: its links reconnect and its ops count again."
    )

    @OptionGroup var directory: DirectoryOption

    @Argument(help: "The partner's name.")
    var partner: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrorsAsync {
            let result = try await onNode(
                NodeDirectory(path: directory.dir),
                running: { client throws(LiaisonError) in try await client.release(partner) },
                stopped: { node throws(LiaisonError) in
                    QuarantineResult(
                        partner: partner,
                        try node.release(partner, nowMillis: UInt64(Date().timeIntervalSince1970 * 1000)),
                        released: true)
                })
            if json {
                try printJSON(result)
            } else {
                print("\(partner) released: \(result.opsPutBack) ops put back, \(result.itemsRebuilt) items rebuilt")
            }
        }
    }
}

struct QuarantinesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantines",
        abstract: "Show quarantined partners and the strikes counted against each partner."
    )

    @OptionGroup var directory: DirectoryOption

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrorsAsync {
            let view = try await onNode(
                NodeDirectory(path: directory.dir),
                running: { client throws(LiaisonError) in try await client.containment() },
                stopped: { node throws(LiaisonError) in
                    ContainmentView(try node.containment(), policy: node.federation?.containment ?? .default)
                })
            if json {
                try printJSON(view)
                return
            }
            printTable(
                header: ["QUARANTINED", "SINCE", "AT", "BY", "REASON"],
                rows: view.quarantines.map {
                    [$0.partner, $0.since, $0.at, $0.automatic ? "strikes" : "operator", $0.reason]
                }
            )
            print("")
            printTable(
                header: ["PARTNER", "CLASS", "TOTAL", "IN WINDOW", "THRESHOLD"],
                rows: view.strikes.map {
                    [$0.partner, $0.strikeClass, "\($0.total)", "\($0.inWindow)", $0.threshold.map { "\($0)" } ?? "-"]
                }
            )
        }
    }
}
