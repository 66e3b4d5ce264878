import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode

/// The item id argument of `delete`, `mark` and `recall`.
struct ItemArgument: ParsableArguments {
    @Argument(help: "The item id, as put printed it.")
    var id: String

    /// The id; refuses text that is not one.
    func itemID() throws(LiaisonError) -> ItemID {
        guard let itemID = ItemID(id) else {
            throw LiaisonError(.invalidArgument, "'\(id)' is not an item id (32 hex digits, dashes optional)")
        }
        return itemID
    }
}

/// Runs a lifecycle change through the running node's API, or on the stopped node's store.
private func lifecycle(
    _ directory: String,
    running: (NodeClient) async throws(LiaisonError) -> LifecycleView,
    stopped: (LocalNode) throws(LiaisonError) -> LifecycleResult
) async throws(LiaisonError) -> LifecycleView {
    try await onNode(
        NodeDirectory(path: directory), running: running,
        stopped: { node throws(LiaisonError) in LifecycleView(try stopped(node)) })
}

/// Splits repeatable, comma-separated name lists (`--rel-to a,b --rel-to c`).
private func names(_ values: [String]) -> [String] {
    values.flatMap {
        $0.split(separator: ",", omittingEmptySubsequences: false).map {
            String($0).trimmingCharacters(in: .whitespaces)
        }
    }
}

struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete an item this node originated: every partner keeps only its tombstone.",
        discussion: """
            The signed delete goes to every partner holding the item; each drops the item's \
            content, in the item and in its log. Only the originator may delete; a deleted item \
            takes no more changes.
            """
    )

    @OptionGroup var directory: DirectoryOption
    @OptionGroup var item: ItemArgument

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrorsAsync {
            let id = try item.itemID()
            let view = try await lifecycle(
                directory.dir,
                running: { client throws(LiaisonError) in try await client.delete(id.text) },
                stopped: { node throws(LiaisonError) in try node.delete(id, now: Date()) })
            if json { try printJSON(view) } else { print("deleted \(view.item.id)") }
        }
    }
}

struct MarkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mark",
        abstract: "Change the markings of an item this node originated (narrow or broaden).",
        discussion: """
            Parts not given keep their value; given ones are checked as put checks them. A \
            partner that REL TO no longer releases the item to gets a signed recall and purges \
            the item's content. Giving --rel-to states the audience afresh: a partner recalled \
            earlier that it releases gets the item again; without --rel-to, recalls stay in force.
            """
    )

    @OptionGroup var directory: DirectoryOption
    @OptionGroup var item: ItemArgument

    @Option(help: "Classification level.")
    var classification: String?

    @Option(
        name: .customLong("rel-to"),
        help: "Partners or groups it is releasable to, comma-separated; may repeat; replaces the current list.")
    var relTo: [String] = []

    @Flag(name: .customLong("no-rel-to"), help: "Release it to no partner (REL TO empty).")
    var noRelTo = false

    @Flag(inversion: .prefixedNo, help: "Originator controls dissemination.")
    var orcon: Bool?

    @Option(help: "A handling caveat; may repeat; replaces the current caveats.")
    var caveat: [String] = []

    @Flag(name: .customLong("no-caveats"), help: "Remove every caveat.")
    var noCaveats = false

    @Option(help: "When the content must be purged, ISO 8601, in the future.")
    var expires: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrorsAsync {
            let id = try item.itemID()
            if noRelTo && !relTo.isEmpty {
                throw LiaisonError(.invalidArgument, "give --rel-to or --no-rel-to, not both")
            }
            if noCaveats && !caveat.isEmpty {
                throw LiaisonError(.invalidArgument, "give --caveat or --no-caveats, not both")
            }
            var expiresAt: Date?
            if let expires {
                guard let date = ISO8601.parse(expires) else {
                    throw LiaisonError(
                        .invalidArgument, "--expires '\(expires)' is not ISO 8601, e.g. 2027-01-31T00:00:00Z")
                }
                expiresAt = date
            }
            let body = MarkingsBody(
                classification: classification,
                relTo: noRelTo ? [] : relTo.isEmpty ? nil : names(relTo),
                orcon: orcon,
                caveats: noCaveats ? [] : caveat.isEmpty ? nil : caveat,
                expiresAt: expires
            )
            let request = MarkingsChangeRequest(
                classification: body.classification, releasableTo: body.relTo, orcon: body.orcon,
                caveats: body.caveats, expiresAt: expiresAt)
            let view = try await lifecycle(
                directory.dir,
                running: { client throws(LiaisonError) in try await client.changeMarkings(id.text, body) },
                stopped: { node throws(LiaisonError) in try node.changeMarkings(id, request, now: Date()) })
            if json {
                try printJSON(view)
                return
            }
            let relTo =
                view.item.releasableTo.isEmpty ? "(originator only)" : view.item.releasableTo.joined(separator: ", ")
            var line = "\(view.item.id) marked \(view.item.classification), REL TO \(relTo)"
            if view.item.orcon { line += ", ORCON" }
            if !view.recalledFrom.isEmpty { line += "; recalled from \(view.recalledFrom.joined(separator: ", "))" }
            if !view.recallsLifted.isEmpty {
                line += "; recall lifted for \(view.recallsLifted.joined(separator: ", "))"
            }
            print(line)
        }
    }
}

struct RecallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recall",
        abstract: "Recall an item this node originated from some partners, or from everyone.",
        discussion: """
            The partners named (by name or group) get a signed, content-free recall and purge \
            the item's content, in the item and in their log; nothing of its content goes to \
            them any more. Without --from the item is withdrawn from everyone, here too: only \
            its tombstone remains.
            """
    )

    @OptionGroup var directory: DirectoryOption
    @OptionGroup var item: ItemArgument

    @Option(help: "Partners or groups to recall it from, comma-separated; may repeat (default: everyone).")
    var from: [String] = []

    @Option(help: "Why, for the custody log and the partners.")
    var reason: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        try await reportingErrorsAsync {
            let id = try item.itemID()
            let audience = names(from)
            let view = try await lifecycle(
                directory.dir,
                running: { client throws(LiaisonError) in
                    try await client.recall(id.text, RecallBody(from: audience, reason: reason))
                },
                stopped: { node throws(LiaisonError) in
                    try node.recall(id, from: audience, reason: reason, now: Date())
                })
            if json {
                try printJSON(view)
            } else {
                let whom = view.recalledFrom.isEmpty ? "everyone" : view.recalledFrom.joined(separator: ", ")
                print("\(view.item.id) recalled from \(whom)")
            }
        }
    }
}
