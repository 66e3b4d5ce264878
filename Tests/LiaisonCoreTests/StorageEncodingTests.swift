import Foundation
import LiaisonCore
import LiaisonTestSupport
import Testing

@Suite("Item state storage encoding")
struct StorageEncodingTests {
    @Test("every state built from random ops survives encoding and decoding unchanged")
    func roundTrip() throws {
        for seed in UInt64(1)...200 {
            let set = try RandomOpSet(seed: seed)
            // Prefixes too, so states with and without tombstones, recalls and redactions appear.
            for cut in [set.ops.count / 2, set.ops.count] {
                var ops = Array(set.ops.prefix(cut))
                if seed % 3 == 0, let first = ops.first { ops[0] = try first.redacting(RandomOpSet.fieldNames) }
                let state = try ItemState.build(
                    set.create,
                    ops.filter { op in
                        (try? ItemState.build(set.create, [op])) != nil
                    })
                let decoded = try ItemState(storageEncoding: try state.storageEncoding())
                #expect(decoded == state, "seed \(seed)")
                #expect(decoded.digest == state.digest, "seed \(seed)")
                let summary = try ItemSummary(storageEncoding: try state.summary.storageEncoding())
                #expect(summary == state.summary, "seed \(seed): the summary")
            }
        }
    }

    @Test("damaged storage bytes are refused as corrupt, not misread")
    func damagedRefused() throws {
        let set = try RandomOpSet(seed: 5)
        let bytes = try ItemState(create: set.create).storageEncoding()
        // Cut inside the item id: a record whose id is not 16 bytes.
        #expect {
            try ItemState(storageEncoding: bytes.prefix(10))
        } throws: { ($0 as? LiaisonError)?.code == .corrupt }
        #expect {
            try ItemState(storageEncoding: Data())
        } throws: { ($0 as? LiaisonError)?.code == .corrupt }
        #expect {
            try ItemState(storageEncoding: Data([0xFF, 0xFF, 0xFF]))
        } throws: { ($0 as? LiaisonError)?.code == .corrupt }
    }

    @Test("damaged summary bytes are refused as corrupt, not misread")
    func damagedSummaryRefused() throws {
        let set = try RandomOpSet(seed: 5)
        let bytes = try ItemState(create: set.create).summary.storageEncoding()
        for damaged in [bytes.prefix(10), Data(), Data([0xFF, 0xFF, 0xFF])] {
            #expect {
                try ItemSummary(storageEncoding: damaged)
            } throws: { ($0 as? LiaisonError)?.code == .corrupt }
        }
    }
}
