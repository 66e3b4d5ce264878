import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication
import LiaisonStore
import LiaisonTestSupport
import Testing

/// A link that carries some collections reads the ops of items in the others without their
/// bytes (`Store.outboxRead`'s `outside`), and withholds them unread. Its batch must be what
/// judging every op whole gives: the same ops sent, the same ops withheld for the same
/// reasons in log order, the same echoes, the same quarantined authors left out.
@Suite("Ops outside a link's collections")
struct OutsideCollectionsTests {
    static let now = AnnotationTests.now

    /// Alice, linked to bob over a link carrying only `reports`, and to carol over one
    /// carrying everything.
    static func alice(_ store: any Store) throws -> ReplicationStore {
        try ReplicationStore(
            me: TestNode.alice.recipient(),
            store: store,
            ladder: AnnotationTests.ladder,
            partners: [TestNode.alice, .bob, .carol].map { $0.recipient() },
            neighbours: [
                ReplicationNeighbour(
                    partner: TestNode.bob.recipient(), outbound: LinkFilter(collections: ["reports"]),
                    inbound: .passAll),
                ReplicationNeighbour(partner: TestNode.carol.recipient(), outbound: .passAll, inbound: .passAll),
            ],
            maxClockSkewMillis: 60_000,
            nowMillis: now
        )
    }

    @Test(
        "ops of items in collections a link does not carry are withheld unread, exactly as judging them whole withholds them",
        arguments: ["memory", "sqlite"])
    func sameBatchAsAWholeJudgement(kind: String) throws {
        var factory = OpFactory(seed: 141)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("liaison-outside-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store: any Store
        if kind == "sqlite" {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            store = try SQLiteStore(path: directory.appendingPathComponent("store.sqlite").path, create: true)
        } else {
            store = MemoryStore()
        }
        let markings = AnnotationTests.markings("bob", "carol")
        let report = try factory.create(by: .alice, markings: markings, at: .test(1))
        let weather = try factory.create(
            by: .alice, collection: "weather", markings: markings, writePolicy: .annotations, at: .test(2))
        let carolsWeather = try factory.create(by: .carol, collection: "weather", markings: markings, at: .test(3))
        let weatherState = try ItemState(create: weather)
        // bob's change of tags comes back to him only as an echo: reads keep it (it may
        // change eligibility), the batch counts it as an echo, not as withheld.
        let bobsTag = try factory.addTags(["storm"], to: weatherState, by: .bob, at: .test(4))
        let carolOnly = try factory.create(by: .alice, markings: AnnotationTests.markings("carol"), at: .test(5))
        let weatherUpdate = try factory.setFields(
            [("body", JSONText.string("rain"))], of: weatherState, by: .alice, at: .test(6))
        // Neither carried nor released to bob: the collection is the reason given, on both paths.
        let carolsOnlyWeather = try factory.create(
            by: .alice, collection: "weather", markings: AnnotationTests.markings("carol"), at: .test(7))
        _ = try store.commit(CommitBatch(ops: [report, weather], source: .local, timeMillis: 0))
        _ = try store.commit(CommitBatch(ops: [carolsWeather], source: .peer(TestNode.carol.nodeID), timeMillis: 0))
        _ = try store.commit(CommitBatch(ops: [bobsTag], source: .peer(TestNode.bob.nodeID), timeMillis: 0))
        _ = try store.commit(
            CommitBatch(ops: [carolOnly, weatherUpdate, carolsOnlyWeather], source: .local, timeMillis: 0))

        var alice = try Self.alice(store)
        // carol is quarantined from the start: her create goes to nobody.
        alice.restore([
            TestNode.carol.nodeID: Quarantine(sinceMillis: 0, atMillis: 0, reason: "test", automatic: false)
        ])
        let read = try store.outboxRead(
            after: 0, limit: 512, echoesOf: TestNode.bob.nodeID, scan: 1_000, carrying: ["reports"])
        #expect(
            read.outside.map(\.id) == [
                weather.id, carolsWeather.id, bobsTag.id, weatherUpdate.id, carolsOnlyWeather.id,
            ])
        #expect(read.ops.map(\.op.id) == [report.id, carolOnly.id])

        let custodyBefore = try store.custody(from: 1, limit: 1_000).count
        let batch = try alice.loadBatch(for: "bob", after: 0, limit: 512, nowMillis: Self.now)
        #expect(batch.sent == [report.id])
        #expect(batch.withheld.map(\.id) == [weather.id, carolOnly.id, weatherUpdate.id, carolsOnlyWeather.id])
        #expect(
            batch.withheld.map(\.reason) == [
                .collectionNotShared, .notReleasable, .collectionNotShared, .collectionNotShared,
            ])
        #expect(batch.echoes == 1)
        #expect(batch.throughSeq == 7)

        // Judging every op whole (the read of a link that carries everything, each op with its
        // item) gives the same batch.
        let whole = try store.outboxRead(after: 0, limit: 512, echoesOf: TestNode.bob.nodeID, scan: 1_000)
        let items = try store.items(Set(whole.ops.map(\.op.body.itemID)))
        let judged = try LinkOutbox.prepare(
            whole.ops.filter { !alice.isExcluded($0.op) }.map {
                OutboxCandidate(
                    sequence: $0.sequence, op: $0.op, item: items[$0.op.body.itemID]!.summary,
                    receivedFrom: $0.receivedFrom,
                    earlierMarkings: [])
            },
            throughSeq: 7, sender: TestNode.alice.nodeID, recipient: TestNode.bob.recipient(),
            filter: LinkFilter(collections: ["reports"]), ladder: AnnotationTests.ladder)
        #expect(judged.sent == batch.sent)
        #expect(judged.withheld.map(\.id) == batch.withheld.map(\.id))
        #expect(judged.withheld.map(\.reason) == batch.withheld.map(\.reason))
        #expect(judged.echoes == batch.echoes)

        // Custody: what was sent, what was withheld and why, and carol's op left out as a
        // quarantined author's.
        let entries = try store.custody(from: UInt64(custodyBefore) + 1, limit: 1_000)
        let quarantined = entries.filter { $0.kind == .filterWithheld && $0.detail.contains("author quarantined") }
        #expect(quarantined.map(\.opIDs) == [[carolsWeather.id]])
        let withheld = entries.filter { $0.kind == .filterWithheld && !$0.detail.contains("author quarantined") }
        #expect(withheld.map(\.opIDs) == [[weather.id, carolOnly.id, weatherUpdate.id, carolsOnlyWeather.id]])
        #expect(withheld.first?.detail == "1× not-releasable; 3× collection-not-shared")
        #expect(entries.filter { $0.kind == .opsSent }.map(\.opIDs) == [[report.id]])

        // The link that carries everything reads every op whole.
        let forCarol = try store.outboxRead(
            after: 0, limit: 512, echoesOf: TestNode.carol.nodeID, scan: 1_000, carrying: nil)
        #expect(forCarol.outside.isEmpty)
    }
}
