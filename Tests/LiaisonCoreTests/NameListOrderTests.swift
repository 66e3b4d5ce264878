import Foundation
import LiaisonTestSupport
import SwiftProtobuf
import Testing

@testable import LiaisonCore

/// REL TO, caveats and the names a field is withheld from are sorted and distinct on the wire
/// (one encoding per set of names): a received op whose lists are not is refused, and markings
/// made here are put in that order.
@Suite("Name lists sorted and distinct")
struct NameListOrderTests {
    @Test(
        "sorted and distinct is the same judgement as equal to the sorted set, over random lists with duplicates and canonically equivalent spellings"
    )
    func sameAsSortedSet() {
        // "é" precomposed and decomposed are equal Swift strings: neither sorts after the other.
        let alphabet = ["alpha", "bravo", "Bravo", "charlie", "\u{E9}cho", "e\u{301}cho", "ALL", "b", ""]
        var random = SeededRandom(seed: 7)
        for _ in 0..<5_000 {
            let list = (0..<Int.random(in: 0...5, using: &random)).map { _ in
                alphabet.randomElement(using: &random)!
            }
            #expect(list.isSortedAndDistinct == (list == Array(Set(list)).sorted()), "\(list)")
        }
        #expect(["a", "b"].isSortedAndDistinct)
        #expect(!["b", "a"].isSortedAndDistinct)
        #expect(!["a", "a"].isSortedAndDistinct)
        #expect(!["\u{E9}", "e\u{301}"].isSortedAndDistinct)
    }

    @Test("markings made here are sorted and distinct whatever order they were given in")
    func markingsNormalised() {
        let given = Markings(
            classification: "SECRET", releasableTo: ["charlie", "bravo", "charlie"], caveats: ["Z", "A"])
        #expect(given.releasableTo == ["bravo", "charlie"])
        #expect(given.caveats == ["A", "Z"])
        let sorted = Markings(classification: "SECRET", releasableTo: ["bravo", "charlie"], caveats: ["A"])
        #expect(sorted.releasableTo == ["bravo", "charlie"])
    }

    /// Alice's create with its body's protobuf changed by `change`, signed as she would.
    static func signedCreate(_ change: (inout Liaison_V1_OpBody) -> Void) throws -> Data {
        var factory = OpFactory(seed: 31)
        let op = try factory.create(
            by: .alice, markings: Markings(classification: "SECRET", releasableTo: ["bravo", "charlie"]),
            fields: [(name: "body", value: Data("1".utf8))], withheld: ["body": ["carol", "dave"]])
        var proto = op.body.proto
        change(&proto)
        let unsigned = UnsignedOp(
            body: op.body, bodyBytes: try proto.serializedBytes(),
            openings: op.openings.values.sorted { $0.name < $1.name })
        return try TestNode.alice.author.sign([unsigned])[0].encoded
    }

    /// A list put out of order or repeated in a create's body.
    enum Disorder: String, CaseIterable, Sendable {
        case relToOutOfOrder, relToRepeated, caveatsOutOfOrder, withheldOutOfOrder

        func apply(to body: inout Liaison_V1_OpBody) {
            switch self {
            case .relToOutOfOrder: body.create.markings.relTo = ["charlie", "bravo"]
            case .relToRepeated: body.create.markings.relTo = ["bravo", "bravo"]
            case .caveatsOutOfOrder: body.create.markings.caveats = ["Z", "A"]
            case .withheldOutOfOrder: body.create.fields[0].withheldFrom = ["dave", "carol"]
            }
        }
    }

    @Test(
        "a received op whose REL TO, caveats or withholding names are out of order or repeated is refused as invalid content",
        arguments: Disorder.allCases
    )
    func refusedOutOfOrder(_ disorder: Disorder) throws {
        let verifier = OpVerifier()
        #expect(throws: Never.self, "the op as made") { try verifier.verify(try Self.signedCreate { _ in }) }
        #expect(throws: Never.self, "in order") {
            try verifier.verify(try Self.signedCreate { $0.create.markings.caveats = ["A", "Z"] })
        }
        let bytes = try Self.signedCreate(disorder.apply)
        do {
            _ = try verifier.verify(bytes)
            Issue.record("\(disorder): accepted")
        } catch {
            #expect(error.reason == .invalidContent, "\(disorder): \(error)")
        }
    }
}
