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

    @Test(
        "changes of tags that send their items' histories are cut at 2,048 ops a batch, what a receiver of any version takes, in order, nothing skipped"
    )
    func historiesAreCutByCount() throws {
        var factory = OpFactory(seed: 93)
        let (alice, aliceStore) = try AnnotationTests.node(.alice)
        var items = [ItemState]()
        var log = [VerifiedOp]()
        var stamp: UInt64 = 1
        func next() -> HLCTimestamp {
            stamp += 1
            return .test(stamp)
        }
        for _ in 0..<512 {
            let create = try factory.create(by: .alice, markings: AnnotationTests.markings("bob"), at: next())
            var item = try ItemState(create: create)
            log.append(create)
            for round in 0..<4 {
                let set = try factory.setFields(
                    [(name: "n", value: JSONText.string("\(round)"))], of: item, by: .alice, at: next())
                try item.apply(set)
                log.append(set)
            }
            items.append(item)
        }
        let history = UInt64(log.count)
        for item in items { log.append(try factory.addTags(["seen"], to: item, by: .alice, at: next())) }
        _ = try aliceStore.commit(CommitBatch(ops: log, source: .local, timeMillis: 0))

        var after = history
        var sentTags = [OpID]()
        var batches = 0
        while after < UInt64(log.count) {
            let batch = try alice.loadBatch(for: "bob", after: after, limit: 512, nowMillis: AnnotationTests.now)
            #expect(batch.throughSeq > after, "no progress")
            #expect(batch.ops.count <= 2_048, "a batch of \(batch.ops.count) ops")
            // A receiver of the version before batches of 1,024: it refuses more than 2,048 ops.
            var settings = LinkSessionStateMachine.Configuration()
            settings.maxBatchOps = 512
            var receiver = LinkSessionStateMachine(
                local: TestNode.bob.nodeID, peer: TestNode.alice.nodeID, checkpoint: 0, localHighest: 0, nowMillis: 0,
                configuration: settings)
            _ = receiver.received(
                .hello(SyncHello(nodeID: TestNode.alice.nodeID, hlc: .test(1), checkpoint: 0)), nowMillis: 0)
            let actions = receiver.received(.batch(ops: batch.ops, throughSeq: batch.throughSeq), nowMillis: 0)
            #expect(actions.contains { if case .commit = $0 { true } else { false } }, "a receiver of 512 takes it")
            sentTags += batch.sent.filter { id in log.suffix(512).contains { $0.id == id } }
            after = batch.throughSeq
            batches += 1
        }
        #expect(sentTags == log.suffix(512).map(\.id), "every change of tags once, in log order")
        #expect(batches >= 2, "512 changes with five ops of history each need two batches")
    }
}
