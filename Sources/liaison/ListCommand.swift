import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode
import LiaisonStore

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List items, most recently changed first.")

    @OptionGroup var directory: DirectoryOption

    @Option(help: "Only this collection.")
    var collection: String?

    @Option(help: "Only items with this tag.")
    var tag: String?

    @Flag(help: "Include deleted and recalled items.")
    var all = false

    @Option(help: "At most this many items.")
    var limit = 1000

    @Flag(help: "Print JSON (an array of items as 'get --json' prints them).")
    var json = false

    func run() async throws {
        try await reportingErrorsAsync {
            guard limit > 0 else { throw LiaisonError(.invalidArgument, "--limit must be at least 1") }
            let nodeDirectory = NodeDirectory(path: directory.dir)
            let views: [ItemView]
            if RunningNode.runningPID(nodeDirectory) != nil {
                views = try await NodeClient(directory: nodeDirectory).items(
                    collection: collection, tag: tag, all: all, limit: limit)
            } else {
                let node = try LocalNode.openForCommand(nodeDirectory)
                views = try node.items(ItemQuery(collection: collection, tag: tag, includeWithdrawn: all, limit: limit))
                    .map { ItemView($0, at: node.recipient) }
            }
            if json {
                try printJSON(views)
                return
            }
            if views.isEmpty {
                print("no items")
                return
            }
            let rows = views.map { view in
                [
                    view.id, view.collection, view.classification, view.releasableTo.joined(separator: ","),
                    view.tags.joined(separator: ","), view.changedAt,
                ]
            }
            printTable(header: ["ID", "COLLECTION", "CLASSIFICATION", "REL TO", "TAGS", "CHANGED"], rows: rows)
        }
    }
}

/// A plain left-aligned table (`table`), printed.
func printTable(header: [String], rows: [[String]]) {
    for line in table(header: header, rows: rows) { print(line) }
}

/// Lines of a plain left-aligned table: columns padded to their widest cell, two spaces apart.
func table(header: [String], rows: [[String]]) -> [String] {
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
    }
    return ([header] + rows).map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        .joined(separator: "  ")
    }
}
