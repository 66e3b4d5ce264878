import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode

struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show one item.")

    @OptionGroup var directory: DirectoryOption

    @Argument(help: "The item id, as put printed it.")
    var id: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrorsAsync {
            guard let itemID = ItemID(id) else {
                throw LiaisonError(.invalidArgument, "'\(id)' is not an item id (32 hex digits, dashes optional)")
            }
            let nodeDirectory = NodeDirectory(path: directory.dir)
            let found: ItemView?
            if RunningNode.runningPID(nodeDirectory) != nil {
                found = try await NodeClient(directory: nodeDirectory).item(itemID.text)
            } else {
                let node = try LocalNode.openForCommand(nodeDirectory)
                found = try node.item(itemID).map { ItemView($0, at: node.recipient) }
            }
            guard let view = found else { throw LiaisonError(.notFound, "no item \(itemID.text) at this node") }
            if json {
                try printJSON(view)
            } else {
                printItem(view)
            }
        }
    }
}

/// The human form of one item.
func printItem(_ view: ItemView) {
    var lines: [(String, String)] = [
        ("item", view.id),
        ("collection", view.collection),
        ("originator", view.originator),
        ("classification", view.classification),
        ("rel to", view.releasableTo.isEmpty ? "(originator only)" : view.releasableTo.joined(separator: ", ")),
    ]
    if view.orcon { lines.append(("handling", "ORCON")) }
    if !view.caveats.isEmpty { lines.append(("caveats", view.caveats.joined(separator: ", "))) }
    if let expires = view.expiresAt { lines.append(("expires", expires)) }
    if view.deleted { lines.append(("state", "deleted")) }
    if view.recalled { lines.append(("state", "recalled")) }
    if !view.recalledFrom.isEmpty { lines.append(("recalled from", view.recalledFrom.joined(separator: ", "))) }
    if view.purged { lines.append(("state", "purged here (\(view.purgeReason ?? "withdrawn"))")) }
    lines.append(("tags", view.tags.joined(separator: ", ")))
    lines.append(("created", view.createdAt))
    lines.append(("changed", view.changedAt))
    lines.append(("digest", view.digest))
    for (label, value) in lines {
        print(label.padding(toLength: 15, withPad: " ", startingAt: 0) + value)
    }
    let names = (Array(view.fields.keys) + view.redactedFields).sorted()
    if !names.isEmpty { print("fields") }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    for name in names {
        let value =
            view.fields[name].map { String(decoding: (try? encoder.encode($0)) ?? Data(), as: UTF8.self) }
            ?? (view.purged ? "[purged]" : "[redacted]")
        print("  \(name) = \(value)")
    }
}
