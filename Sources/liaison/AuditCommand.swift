import ArgumentParser
import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonStore

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Read and verify the node's custody log.",
        subcommands: [Verify.self, List.self, Trace.self]
    )

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Check the hash chain: exit 0 with the entry count when intact, 65 with the first bad entry when not."
        )

        @OptionGroup var directory: DirectoryOption

        @Flag(help: "Print JSON.")
        var json = false

        private struct Output: Encodable {
            var intact: Bool
            var entries: UInt64?
            var firstBadEntry: UInt64?
            var problem: String?
            /// The last entry's sequence and hash, which a transparency report names.
            var head: UInt64?
            var headHash: String?
        }

        func run() throws {
            try reportingErrors {
                let node = try LocalNode.openForCommand(NodeDirectory(path: directory.dir))
                switch try node.store.verifyCustody() {
                case .intact(let entries):
                    let head = entries == 0 ? nil : try node.store.custody(from: entries, limit: 1).first
                    let hash = head?.hash.hex ?? Hash32.zero.hex
                    if json {
                        try printJSON(Output(intact: true, entries: entries, head: entries, headHash: hash))
                    } else {
                        print("custody log intact: \(entries) entries, head \(entries) \(hash)")
                    }
                case .broken(let defect):
                    if json {
                        try printJSON(Output(intact: false, firstBadEntry: defect.sequence, problem: defect.problem))
                    }
                    throw LiaisonError(
                        .tampered, "custody log tampered: first bad entry \(defect.sequence): \(defect.problem)")
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print custody entries.")

        @OptionGroup var directory: DirectoryOption

        @Option(help: "First entry to print.")
        var from: UInt64 = 1

        @Option(help: "At most this many entries.")
        var limit = 100

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            try reportingErrors {
                guard limit > 0 else { throw LiaisonError(.invalidArgument, "--limit must be at least 1") }
                let node = try LocalNode.openForCommand(NodeDirectory(path: directory.dir))
                let entries = try node.store.custody(from: from, limit: limit)
                if json {
                    try printJSON(entries)
                    return
                }
                printTable(
                    header: ["SEQ", "TIME", "KIND", "PEER", "OPS", "DETAIL"],
                    rows: entries.map {
                        [
                            "\($0.sequence)", ISO8601.format(millis: $0.timeMillis), $0.kind.rawValue,
                            $0.peer.map { String($0.prefix(9)) } ?? "-", "\($0.opIDs.count)", $0.detail,
                        ]
                    }
                )
            }
        }
    }

    struct Trace: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every custody entry that covers an op.")

        @OptionGroup var directory: DirectoryOption

        @Argument(help: "The op id (64 hex digits).")
        var opID: String

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            try reportingErrors {
                guard let hash = Hash32(hex: opID) else {
                    throw LiaisonError(.invalidArgument, "'\(opID)' is not an op id (64 hex digits)")
                }
                let id = OpID(hash: hash)
                let node = try LocalNode.openForCommand(NodeDirectory(path: directory.dir))
                var found = [CustodyEntry]()
                var next: UInt64 = 1
                while true {
                    let page = try node.store.custody(from: next, limit: 1000)
                    found += page.filter { $0.opIDs.contains(id) }
                    guard let last = page.last else { break }
                    next = last.sequence + 1
                }
                if json {
                    try printJSON(found)
                } else if found.isEmpty {
                    throw LiaisonError(.notFound, "no custody entry covers op \(opID)")
                } else {
                    for entry in found {
                        print(
                            "\(entry.sequence)  \(ISO8601.format(millis: entry.timeMillis))  \(entry.kind.rawValue)  \(entry.peer ?? "-")  \(entry.detail)"
                        )
                    }
                }
            }
        }
    }
}
