import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonStore
import LiaisonTestSupport
import LiaisonWire
import NIOCore
import Testing

/// A batch never grows past what the receiver takes: a frame of at most
/// `SyncFrameCodec.maxFrameBytes`, an envelope of at most `SealedEnvelope.maxEncodedBytes`.
/// Items of about 900 KB each are legal (an op may be 1 MiB); five of them in one batch of
/// 512 ops made a 4.2 MB frame that the receiver refused as a protocol violation every time it
/// was sent again, and struck and quarantined the sender for it.
@Suite("Batch byte budget")
struct BatchBudgetTests {
    @Test(
        "large ops are cut into batches that fit a frame, in order, nothing skipped; each frame decodes at the receiver"
    )
    func largeOpsFitFrames() throws {
        var factory = OpFactory(seed: 91)
        let (alice, aliceStore) = try AnnotationTests.node(.alice)
        var (bob, bobStore) = try AnnotationTests.node(.bob)
        let big = JSONText.string(String(repeating: "b", count: 900_000))
        var created = [VerifiedOp]()
        for index in 0..<7 {
            let op = try factory.create(
                by: .alice, markings: AnnotationTests.markings("bob"), fields: [("body", big)],
                at: .test(UInt64(index + 1)))
            #expect(op.encoded.count <= OpLimits.maxEncodedBytes)
            created.append(op)
        }
        // A small one between, to show the cut falls between log entries.
        created.insert(try factory.create(by: .alice, markings: AnnotationTests.markings("bob"), at: .test(20)), at: 3)
        _ = try aliceStore.commit(CommitBatch(ops: created, source: .local, timeMillis: 0))

        var after: UInt64 = 0
        var sent = [OpID]()
        var frames = 0
        while after < 8 {
            let batch = try alice.loadBatch(for: "bob", after: after, limit: 512, nowMillis: AnnotationTests.now)
            #expect(batch.throughSeq > after, "no progress")
            let bytes = batch.ops.reduce(0) { $0 + $1.count }
            #expect(bytes <= 3 << 20 || batch.ops.count == 1, "a batch of \(bytes) bytes")
            let frame = try SyncFrameCodec.encode(.batch(ops: batch.ops, throughSeq: batch.throughSeq))
            #expect(frame.readableBytes <= SyncFrameCodec.maxFrameBytes)
            // The receiver's decoder takes it.
            guard case .batch(let ops, let through) = try SyncFrameCodec.decode(frame) else {
                Issue.record("not a batch")
                return
            }
            let outcome = try bob.receive(ops: ops, through: through, from: "alice", nowMillis: AnnotationTests.now)
            #expect(outcome.refused == 0)
            sent += batch.sent
            after = batch.throughSeq
            frames += 1
        }
        #expect(sent == created.map(\.id), "every op once, in log order")
        #expect(frames >= 3, "seven ops of 900 KB need at least three frames of 3 MiB")
        for op in created { #expect(try bobStore.op(op.id) != nil) }
    }

    @Test("a batch sealed for a relay keeps to the smaller budget of an envelope")
    func sealedBatchesFitEnvelopes() throws {
        var factory = OpFactory(seed: 92)
        let (alice, aliceStore) = try AnnotationTests.node(.alice)
        let big = JSONText.string(String(repeating: "s", count: 900_000))
        var created = [VerifiedOp]()
        for index in 0..<4 {
            created.append(
                try factory.create(
                    by: .alice, markings: AnnotationTests.markings("bob"), fields: [("body", big)],
                    at: .test(UInt64(index + 1))))
        }
        _ = try aliceStore.commit(CommitBatch(ops: created, source: .local, timeMillis: 0))
        var after: UInt64 = 0
        var batches = 0
        while after < 4 {
            let batch = try alice.loadBatch(
                for: "bob", after: after, limit: 256, nowMillis: AnnotationTests.now, sealedVia: "carol")
            let bytes = batch.ops.reduce(0) { $0 + $1.count }
            #expect(bytes <= 2 << 20 || batch.ops.count == 1, "a sealed batch of \(bytes) bytes")
            #expect(batch.throughSeq > after)
            after = batch.throughSeq
            batches += 1
        }
        #expect(batches >= 2)
    }
}
