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

    /// Alice's log: one item with `annotations` changes of a field, then a change of its
    /// tags (which sends the item's history). Released to bob from its create, or, with
    /// `releasedInside`, created for carol and released to bob by a change of markings just
    /// before the change of tags (inside the history the change of tags sends).
    static func longHistory(
        _ annotations: Int, releasedInside: Bool = false
    ) throws -> (
        alice: ReplicationStore, log: [VerifiedOp], release: VerifiedOp?
    ) {
        var factory = OpFactory(seed: 94)
        let (alice, aliceStore) = try AnnotationTests.node(.alice)
        let markings = releasedInside ? AnnotationTests.markings("carol") : AnnotationTests.markings("bob")
        let create = try factory.create(by: .alice, markings: markings, at: .test(2))
        var item = try ItemState(create: create)
        var log = [create]
        for round in 0..<annotations {
            let set = try factory.setFields(
                [(name: "n", value: JSONText.string("\(round)"))], of: item, by: .alice, at: .test(UInt64(3 + round)))
            try item.apply(set)
            log.append(set)
        }
        var release: VerifiedOp?
        if releasedInside {
            let change = try factory.changeMarkings(
                of: item, to: AnnotationTests.markings("carol", "bob"), by: .alice,
                at: .test(UInt64(3 + annotations)))
            try item.apply(change)
            log.append(change)
            release = change
        }
        log.append(try factory.addTags(["seen"], to: item, by: .alice, at: .test(UInt64(4 + annotations))))
        _ = try aliceStore.commit(CommitBatch(ops: log, source: .local, timeMillis: 0))
        return (alice, log, release)
    }

    /// Sends the history of alice's last log entry (a change of tags) to a bob that holds
    /// none of it, in parts of reads of `limit`, each received by bob; `each` looks at every
    /// piece after bob took it. Returns the parts before the last, whole, piece, and bob's store.
    static func receiveInParts(
        _ alice: ReplicationStore, entry: UInt64, limit: Int,
        each: (OutboxBatch, MemoryStore) throws -> Void
    ) throws -> (parts: Int, bob: MemoryStore) {
        var (bob, bobStore) = try AnnotationTests.node(.bob)
        var resume: HistoryCut?
        var parts = 0
        for _ in 0..<20 {
            // Alice's read starts at the change of tags: the link acknowledged the history
            // before it was eligible for bob (withheld then).
            let batch = try alice.loadBatch(
                for: "bob", after: entry - 1, limit: limit, nowMillis: AnnotationTests.now, parts: true, resume: resume)
            let through: UInt64? = batch.cut == nil ? batch.throughSeq : nil
            let outcome = try bob.receive(
                ops: batch.ops, through: through, from: "alice", nowMillis: AnnotationTests.now)
            #expect(outcome.refused == 0 && outcome.strikes.isEmpty, "\(outcome.refused) refused")
            try each(batch, bobStore)
            guard let cut = batch.cut else { return (parts, bobStore) }
            resume = cut
            parts += 1
        }
        Issue.record("parts do not end")
        return (parts, bobStore)
    }

    @Test(
        "an entry whose item history passes a batch goes in parts to a peer that takes them: each part some history, then the entry's op; the last piece whole; every op once but the entry's"
    )
    func historyGoesInParts() throws {
        let (alice, log, _) = try Self.longHistory(40)
        let entry = UInt64(log.count)
        // Bob has the history's first 41 ops (create and sets) but not the change of tags.
        var resume: HistoryCut?
        var sent = [OpID]()
        var parts = 0
        while true {
            let batch = try alice.loadBatch(
                for: "bob", after: entry - 1, limit: 4, nowMillis: AnnotationTests.now, parts: true, resume: resume)
            #expect(batch.ops.count <= 8, "a piece of \(batch.ops.count) ops (at most twice the limit)")
            #expect(batch.sent.last == log.last!.id, "each piece ends with the entry's own op")
            sent += batch.sent.dropLast()
            guard let cut = batch.cut else {
                #expect(batch.throughSeq == entry)
                break
            }
            #expect(cut.entry == entry)
            #expect(cut.historyThrough > resume?.historyThrough ?? 0, "a part reads past the last")
            resume = cut
            parts += 1
            #expect(parts < 20, "parts do not end")
            if parts >= 20 { return }
        }
        #expect(parts >= 5, "41 ops of history in pieces of at most 7: at least five parts before the last")
        #expect(sent == log.dropLast().map(\.id), "the history once, in log order")
        // A peer that does not take parts gets it whole, as before.
        let whole = try alice.loadBatch(for: "bob", after: entry - 1, limit: 4, nowMillis: AnnotationTests.now)
        #expect(whole.cut == nil && whole.ops.count == log.count)
    }

    @Test(
        "a receiver takes an entry's history in parts without refusing an op, and every part leaves the item as the entry does"
    )
    func partsAreReceivedWhole() throws {
        let (alice, log, _) = try Self.longHistory(12)
        let entry = UInt64(log.count)
        let (parts, bobStore) = try Self.receiveInParts(alice, entry: entry, limit: 2) { batch, bobStore in
            let held = try #require(try bobStore.item(log[0].body.itemID))
            #expect(held.tags == ["seen"], "the entry's own op comes with every part")
            let checkpoint = try bobStore.checkpoint(link: ReplicationStore.receivedLink("alice"))
            #expect(checkpoint == (batch.cut == nil ? entry : 0), "only the whole piece moves the checkpoint")
        }
        #expect(parts >= 3, "13 ops of history in pieces of at most 3")
        #expect(try bobStore.ops(after: 0, limit: 100).count == log.count)
    }

    @Test(
        "an op judged on its item as it is now goes with the later change of markings that released the item to the peer, so the receiver, judging the batch alone, takes it"
    )
    func laterReleaseGoesAlong() throws {
        var factory = OpFactory(seed: 95)
        let (alice, aliceStore) = try AnnotationTests.node(.alice)
        var (bob, _) = try AnnotationTests.node(.bob)
        let create = try factory.create(by: .alice, markings: AnnotationTests.markings("carol"), at: .test(2))
        let item = try ItemState(create: create)
        var log = [create]
        // Other items between, so that a small batch ends before the release.
        for index in 0..<6 {
            log.append(
                try factory.create(by: .alice, markings: AnnotationTests.markings("bob"), at: .test(UInt64(3 + index))))
        }
        let release = try factory.changeMarkings(
            of: item, to: AnnotationTests.markings("carol", "bob"), by: .alice, at: .test(20))
        log.append(release)
        _ = try aliceStore.commit(CommitBatch(ops: log, source: .local, timeMillis: 0))
        let batch = try alice.loadBatch(for: "bob", after: 0, limit: 1, nowMillis: AnnotationTests.now)
        #expect(batch.throughSeq < UInt64(log.count), "the batch ends before the release")
        #expect(batch.sent.first == create.id)
        #expect(batch.sent.contains(release.id), "the release goes along")
        let outcome = try bob.receive(
            ops: batch.ops, through: batch.throughSeq, from: "alice", nowMillis: AnnotationTests.now)
        #expect(outcome.refused == 0 && outcome.strikes.isEmpty, "\(String(describing: outcome.strikes))")
    }

    @Test(
        "later changes of markings count in the batch's bounds: a batch whose ops need more of them than fit ends earlier, and the receiver refuses nothing"
    )
    func laterReleasesCutTheBatch() throws {
        var factory = OpFactory(seed: 96)
        let (alice, aliceStore) = try AnnotationTests.node(.alice)
        var (bob, bobStore) = try AnnotationTests.node(.bob)
        // 1,024 items created for carol only, then each released to bob too (with caveats that
        // make each release about 600 bytes): a batch of the creates needs all 1,024 releases,
        // more than the 256 KiB brought along.
        let released = Markings(
            classification: "SECRET", releasableTo: ["carol", "bob"],
            caveats: (0..<8).map { "CAVEAT-\($0)-" + String(repeating: "X", count: 40) })
        var creates = [VerifiedOp]()
        var releases = [VerifiedOp]()
        for index in 0..<1_024 {
            let create = try factory.create(
                by: .alice, markings: AnnotationTests.markings("carol"), at: .test(UInt64(2 + index)))
            creates.append(create)
            releases.append(
                try factory.changeMarkings(
                    of: try ItemState(create: create), to: released, by: .alice, at: .test(UInt64(2_000 + index))))
        }
        _ = try aliceStore.commit(CommitBatch(ops: creates + releases, source: .local, timeMillis: 0))
        var after: UInt64 = 0
        var batches = 0
        while after < UInt64(creates.count + releases.count), batches < 50 {
            let batch = try alice.loadBatch(for: "bob", after: after, limit: 1_024, nowMillis: AnnotationTests.now)
            if batches == 0 { #expect(batch.throughSeq < 1_024, "the first batch ends before the last create") }
            let outcome = try bob.receive(
                ops: batch.ops, through: batch.throughSeq, from: "alice", nowMillis: AnnotationTests.now)
            #expect(outcome.refused == 0, "batch through \(batch.throughSeq): \(outcome.refused) refused")
            after = batch.throughSeq
            batches += 1
        }
        for create in creates { #expect(try bobStore.item(create.body.itemID) != nil) }
    }

    @Test(
        "a history in parts whose item was released to the receiver by a change inside the history: each part brings that change, and the receiver refuses nothing"
    )
    func partsBringTheRelease() throws {
        let (alice, log, release) = try Self.longHistory(12, releasedInside: true)
        let released = try #require(release)
        let (parts, bobStore) = try Self.receiveInParts(alice, entry: UInt64(log.count), limit: 2) { batch, _ in
            if batch.cut != nil { #expect(batch.sent.contains(released.id), "the part brings the release") }
        }
        #expect(parts >= 3)
        #expect(try bobStore.ops(after: 0, limit: 100).count == log.count)
    }
}
