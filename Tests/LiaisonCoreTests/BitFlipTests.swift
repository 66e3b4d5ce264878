import Foundation
import LiaisonTestSupport
import Testing

@testable import LiaisonCore

/// I4 Authenticity: no single altered bit of a signed op gets past the verifier.
@Suite("Every flipped bit of a signed op is rejected")
struct BitFlipTests {
    enum Sample: String, CaseIterable, Sendable {
        case createWithFieldsAndTags = "create with fields and tags"
        case setFieldsInBatchOfFive = "set-fields op inside a batch of 5"
        case removeTags = "remove-tags op"
    }

    static func op(_ sample: Sample) throws -> VerifiedOp {
        var factory = OpFactory(seed: 7)
        let create = try factory.create(
            by: .alice,
            markings: Markings(
                classification: "SECRET",
                releasableTo: ["bob", "FVEY"],
                orcon: true,
                caveats: ["NOFORN"]
            ),
            fields: [
                (name: "title", value: JSONText.string("Harbour report")), (name: "score", value: JSONText.number(7)),
            ],
            tags: ["red", "tlp:amber"],
            at: .test(10)
        )
        switch sample {
        case .createWithFieldsAndTags:
            return create
        case .setFieldsInBatchOfFive:
            let item = try ItemState(create: create)
            var unsigned = [UnsignedOp]()
            var rng = SeededGenerator(seed: 11)
            for index in 0..<5 {
                unsigned.append(
                    try TestNode.alice.author.setFields(
                        [
                            (name: "summary", value: JSONText.string("revision \(index)")),
                            (name: "score", value: JSONText.number(index)),
                        ],
                        of: item,
                        hlc: .test(20 + UInt64(index)),
                        using: &rng
                    )
                )
            }
            return try TestNode.alice.author.sign(unsigned)[2]
        case .removeTags:
            var item = try ItemState(create: create)
            try item.apply(try factory.addTags(["red"], to: item, by: .alice, at: .test(11)))
            return try factory.removeTags(["red", "tlp:amber"], observedIn: item, by: .alice, at: .test(12))
        }
    }

    @Test("the unaltered sample verifies and has the shape the test is about", arguments: Sample.allCases)
    func sampleVerifies(_ sample: Sample) throws {
        let op = try Self.op(sample)
        #expect(try OpVerifier().verify(op.encoded) == op)
        let wire = try SignedOpWire(decoding: op.encoded)
        switch sample {
        case .createWithFieldsAndTags: #expect(wire.openings.count == 2)
        case .setFieldsInBatchOfFive:
            #expect(wire.leafIndex == 2 && wire.leafCount == 5 && wire.siblings.count == 3)
            #expect(wire.openings.count == 2)
        case .removeTags:
            guard case .removeTags(let removals) = op.body.change else {
                Issue.record("not a removal")
                return
            }
            #expect(removals.map(\.observed.count) == [2, 1])
        }
    }

    @Test("flipping any one bit makes verification fail", arguments: Sample.allCases)
    func everyBitFlipIsRejected(_ sample: Sample) throws {
        let op = try Self.op(sample)
        let original = [UInt8](op.encoded)
        var accepted = [Int]()
        for bit in 0..<original.count * 8 {
            var bytes = original
            bytes[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            // A fresh verifier each time, so no cached batch root can stand in for a check.
            if (try? OpVerifier().verify(Data(bytes))) != nil { accepted.append(bit) }
        }
        #expect(
            accepted.isEmpty,
            "\(sample.rawValue): flips of bits \(accepted) of \(original.count * 8) were accepted"
        )
    }

    @Test(
        "a verifier that has already verified the op still rejects every flip",
        arguments: [Sample.setFieldsInBatchOfFive]
    )
    func warmCacheDoesNotMaskFlips(_ sample: Sample) throws {
        let op = try Self.op(sample)
        let verifier = OpVerifier()
        _ = try verifier.verify(op.encoded)
        let original = [UInt8](op.encoded)
        var accepted = [Int]()
        for bit in 0..<original.count * 8 {
            var bytes = original
            bytes[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            if (try? verifier.verify(Data(bytes))) != nil { accepted.append(bit) }
        }
        #expect(accepted.isEmpty, "flips of bits \(accepted) were accepted by a warm verifier")
    }

    @Test(
        "ops verified ahead come back exactly as verified now, once; flipped copies verified ahead are still refused",
        arguments: [Sample.setFieldsInBatchOfFive]
    )
    func verifiedAheadIsTheSame(_ sample: Sample) throws {
        let op = try Self.op(sample)
        let original = [UInt8](op.encoded)
        var flipped = [Data]()
        for bit in stride(from: 0, to: original.count * 8, by: 7) {
            var bytes = original
            bytes[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            flipped.append(Data(bytes))
        }
        let verifier = OpVerifier()
        verifier.verifyAhead([op.encoded] + flipped)
        let ahead = try verifier.verify(op.encoded)
        #expect(ahead == (try OpVerifier().verify(op.encoded)))
        #expect(flipped.allSatisfy { (try? verifier.verify($0)) == nil }, "a flipped copy verified ahead was accepted")
        // Handed out once: nothing waits any more; verifying again checks again, with the same
        // result. Flipped copies were never kept.
        #expect(verifier.verifiedAhead.count == 0 && verifier.verifiedAhead.bytes == 0)
        #expect((try verifier.verify(op.encoded)) == ahead)
    }

    @Test(
        "ops verified ahead that never reach the engine are bounded in number and bytes: past either bound what waits is dropped",
        arguments: [Sample.setFieldsInBatchOfFive]
    )
    func verifiedAheadIsBounded(_ sample: Sample) throws {
        let op = try Self.op(sample)
        let size = op.encoded.count
        let byCount = OpVerifier(aheadCapacity: 2)
        byCount.verifyAhead([op.encoded])
        #expect(byCount.verifiedAhead.count == 1 && byCount.verifiedAhead.bytes == size)
        byCount.verifyAhead([op.encoded])
        #expect(byCount.verifiedAhead.count == 1 && byCount.verifiedAhead.bytes == size, "a copy was counted twice")
        let other = try Self.op(.createWithFieldsAndTags)
        let third = try Self.op(.removeTags)
        byCount.verifyAhead([other.encoded, third.encoded])
        #expect(byCount.verifiedAhead.count == 2, "past two ops the waiting one was not dropped")
        #expect((try byCount.verify(op.encoded)) == op, "a dropped op is verified again")

        let budget = size + other.encoded.count
        try #require(third.encoded.count <= budget)
        let byBytes = OpVerifier(aheadByteCapacity: budget)
        byBytes.verifyAhead([op.encoded, other.encoded])
        #expect(byBytes.verifiedAhead.count == 2 && byBytes.verifiedAhead.bytes == budget)
        byBytes.verifyAhead([third.encoded])
        #expect(byBytes.verifiedAhead.count == 1, "past the byte bound the waiting ops were not dropped")
        #expect(byBytes.verifiedAhead.bytes == third.encoded.count)
        // One batch larger than the whole budget is not kept at all.
        let tiny = OpVerifier(aheadByteCapacity: size - 1)
        tiny.verifyAhead([op.encoded])
        #expect(tiny.verifiedAhead.count == 0)
    }
}
