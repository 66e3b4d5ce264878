import Foundation
import LiaisonCore
import LiaisonTestSupport
import Testing

/// I5 Custody: the hash-chained audit log detects any alteration.
@Suite("Custody chain")
struct CustodyChainTests {
    static func opID(_ n: UInt8) -> OpID { OpID(hash: Hash32.sha256([n])) }

    static let events: [CustodyEvent] = [
        CustodyEvent(kind: .identityCreated, detail: "node initialised"),
        CustodyEvent(kind: .opsCreated, opIDs: [opID(1), opID(2), opID(3)]),
        CustodyEvent(kind: .opsSent, peer: "bob", detail: "catch-up batch", opIDs: [opID(1), opID(2)]),
        CustodyEvent(kind: .opsRedacted, peer: "carol", detail: "fields: source", opIDs: [opID(3)]),
        CustodyEvent(kind: .filterWithheld, peer: "carol", detail: "not-releasable", opIDs: [opID(1)]),
        CustodyEvent(kind: .operatorAction, detail: "quarantine mallory since 1700000000000"),
    ]

    static func chain() -> [CustodyEntry] {
        var entries = [CustodyEntry]()
        for (index, event) in events.enumerated() {
            entries.append(
                CustodyEntry(
                    event: event,
                    timeMillis: 1_700_000_000_000 + Int64(index) * 10,
                    after: entries.last.map { ($0.sequence, $0.hash) }
                )
            )
        }
        return entries
    }

    static func head(of entries: [CustodyEntry]) -> CustodyHead {
        CustodyHead(count: UInt64(entries.count), hash: entries.last?.hash ?? .zero)
    }

    /// Runs the verifier over `entries` and then checks the end against `head`.
    static func verify(_ entries: [CustodyEntry], head: CustodyHead) -> (defect: CustodyDefect?, verified: UInt64) {
        var verifier = CustodyChainVerifier()
        for entry in entries { verifier.check(entry) }
        verifier.finish(head: head)
        return (verifier.defect, verifier.verifiedCount)
    }

    @Test("an intact chain verifies")
    func intactChain() {
        let entries = Self.chain()
        #expect(entries.map(\.sequence) == [1, 2, 3, 4, 5, 6])
        #expect(entries[0].previousHash == .zero)
        for index in 1..<entries.count { #expect(entries[index].previousHash == entries[index - 1].hash) }
        #expect(entries.allSatisfy { $0.hash == $0.computedHash })
        let result = Self.verify(entries, head: Self.head(of: entries))
        #expect(result.defect == nil)
        #expect(result.verified == 6)
        #expect(Self.verify([], head: CustodyHead(count: 0, hash: .zero)).defect == nil)
    }

    @Test("an entry round-trips through its stored form and JSON")
    func storedForm() throws {
        for entry in Self.chain() {
            let restored = CustodyEntry(
                sequence: entry.sequence,
                timeMillis: entry.timeMillis,
                kind: entry.kind,
                peer: entry.peer,
                detail: entry.detail,
                opIDs: entry.opIDs,
                previousHash: entry.previousHash,
                hash: entry.hash
            )
            #expect(restored == entry)
            #expect(try JSONDecoder().decode(CustodyEntry.self, from: JSONEncoder().encode(entry)) == entry)
        }
    }

    enum Edit: String, CaseIterable, Sendable {
        case sequence, time, kind
        case addPeer = "add peer"
        case changePeer = "change peer"
        case removePeer = "remove peer"
        case detail
        case addOp = "add op id"
        case removeOp = "remove op id"
        case reorderOps = "reorder op ids"
        case previousHash = "previous hash"
        case hash

        func apply(to entry: inout CustodyEntry) {
            switch self {
            case .sequence: entry.sequence += 1
            case .time: entry.timeMillis += 1
            case .kind: entry.kind = .opsReceived
            case .addPeer: entry.peer = entry.peer == nil ? "bob" : entry.peer! + "x"
            case .changePeer: entry.peer = "mallory"
            case .removePeer: entry.peer = nil
            case .detail: entry.detail += "."
            case .addOp: entry.opIDs.append(CustodyChainTests.opID(9))
            case .removeOp: entry.opIDs.removeLast()
            case .reorderOps: entry.opIDs.reverse()
            case .previousHash: entry.previousHash = Hash32.sha256([0])
            case .hash: entry.hash = Hash32.sha256([1])
            }
        }
    }

    @Test("editing any field of an entry is detected at that entry", arguments: Edit.allCases)
    func editIsDetected(_ edit: Edit) {
        var entries = Self.chain()
        // Entry 4 has a peer and a single op id; entry 2 has no peer and three.
        let index = [.addPeer, .reorderOps].contains(edit) ? 1 : 3
        let before = entries[index]
        edit.apply(to: &entries[index])
        #expect(entries[index] != before, "the edit must change something")
        let result = Self.verify(entries, head: Self.head(of: Self.chain()))
        #expect(result.defect?.sequence == before.sequence, "\(String(describing: result.defect))")
        #expect(result.verified == before.sequence - 1)
    }

    @Test("an edited entry whose hash was recomputed breaks the link to the next one")
    func editWithRecomputedHash() {
        var entries = Self.chain()
        entries[2].detail = "nothing to see"
        entries[2].hash = entries[2].computedHash
        #expect(Self.verify(entries, head: Self.head(of: Self.chain())).defect?.sequence == 4)
        // Done to the last entry, the recorded head gives it away.
        var tail = Self.chain()
        tail[5].detail = "nothing to see"
        tail[5].hash = tail[5].computedHash
        let result = Self.verify(tail, head: Self.head(of: Self.chain()))
        #expect(result.defect != nil)
    }

    @Test("deleting an entry in the middle is detected at its sequence number")
    func deletedMiddleEntry() {
        for removed in 0..<5 {
            var entries = Self.chain()
            entries.remove(at: removed)
            let result = Self.verify(entries, head: Self.head(of: Self.chain()))
            #expect(result.defect?.sequence == UInt64(removed + 1), "deleted entry \(removed + 1)")
        }
    }

    @Test("deleting the tail is caught by the recorded head")
    func deletedTail() {
        let full = Self.chain()
        for kept in 0..<full.count {
            let entries = Array(full.prefix(kept))
            var verifier = CustodyChainVerifier()
            for entry in entries { verifier.check(entry) }
            #expect(verifier.defect == nil, "the entries kept are intact")
            verifier.finish(head: Self.head(of: full))
            #expect(verifier.defect?.sequence == UInt64(kept + 1), "kept \(kept)")
        }
    }

    @Test("swapping two entries is detected at the first of them")
    func swappedEntries() {
        for first in 0..<5 {
            var entries = Self.chain()
            entries.swapAt(first, first + 1)
            #expect(Self.verify(entries, head: Self.head(of: Self.chain())).defect?.sequence == UInt64(first + 1))
            // Renumbering the swapped entries does not help.
            entries[first].sequence = UInt64(first + 1)
            entries[first + 1].sequence = UInt64(first + 2)
            #expect(Self.verify(entries, head: Self.head(of: Self.chain())).defect?.sequence == UInt64(first + 1))
        }
    }

    @Test("a batch entry commits to its op ids in order")
    func opDigest() {
        let ids = [Self.opID(1), Self.opID(2)]
        #expect(CustodyEntry.opDigest(ids) == Hash32.sha256(ids[0].hash.bytes + ids[1].hash.bytes))
        #expect(CustodyEntry.opDigest(ids) != CustodyEntry.opDigest(ids.reversed()))
    }
}
