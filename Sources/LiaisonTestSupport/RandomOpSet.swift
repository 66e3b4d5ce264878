import Foundation
public import LiaisonCore

/// A random but reproducible set of ops on one item, for property tests of the merge laws.
///
/// The originator creates the item; then 5–40 further ops follow, by the originator and,
/// when the item's write policy is `.annotations`, by other partners. Stamps are drawn
/// from a narrow window so that they often collide (also between authors). Tag adds and
/// removes run concurrently on a small tag set: a removal names the instances live in the
/// state of a random *prefix* of the ops made so far, so adds made later are not observed
/// by it. Sets of a small field set compete; deletes, markings changes and partial and
/// full recalls turn up now and then.
public struct RandomOpSet: Sendable, CustomStringConvertible {
    /// The seed that made this set; replay with `RandomOpSet(seed:)`.
    public let seed: UInt64
    /// The item's write policy.
    public let writePolicy: WritePolicy
    /// The create op.
    public let create: VerifiedOp
    /// The further ops, in the order they were made.
    public let ops: [VerifiedOp]

    /// The fields ops write.
    public static let fieldNames = ["title", "score", "summary"]
    /// The tags ops add and remove.
    public static let tagNames = ["red", "green", "blue"]
    /// The authors that may annotate when the policy allows it.
    public static let annotators: [TestNode] = [.bob, .carol]

    /// The create op followed by the further ops.
    public var all: [VerifiedOp] { [create] + ops }

    /// Makes the set for `seed` with a number of further ops in `opCount`, of an item in
    /// `collection`.
    public init(seed: UInt64, opCount: ClosedRange<Int> = 5...40, collection: String = "reports") throws {
        var rng = SeededGenerator(seed: seed)
        var factory = OpFactory(seed: rng.next())
        let originator = TestNode.alice
        let policy: WritePolicy = Bool.random(using: &rng) ? .annotations : .originatorOnly
        let authors = policy == .annotations ? [originator] + Self.annotators : [originator]

        func stamp() -> HLCTimestamp {
            .test(UInt64.random(in: 0...12, using: &rng), logical: UInt16.random(in: 0...2, using: &rng))
        }
        func someFields() -> [(name: String, value: Data)] {
            Self.fieldNames.shuffled(using: &rng).prefix(Int.random(in: 1...2, using: &rng)).map {
                (name: $0, value: JSONText.number(Int.random(in: 0..<6, using: &rng)))
            }
        }
        func someTags() -> [String] {
            Array(Self.tagNames.shuffled(using: &rng).prefix(Int.random(in: 1...2, using: &rng)))
        }

        let create = try factory.create(
            by: originator,
            collection: collection,
            markings: Markings(classification: "SECRET", releasableTo: ["bob", "carol"]),
            fields: Bool.random(using: &rng) ? someFields() : [],
            tags: Array(Self.tagNames.shuffled(using: &rng).prefix(Int.random(in: 0...2, using: &rng))),
            writePolicy: policy,
            at: stamp()
        )
        let initial = try ItemState(create: create)
        var ops = [VerifiedOp]()
        let count = Int.random(in: opCount, using: &rng)
        while ops.count < count {
            let author = authors.randomElement(using: &rng)!
            var roll = Int.random(in: 0..<100, using: &rng)
            if author != originator { roll = Int.random(in: 20..<100, using: &rng) }
            let op: VerifiedOp
            switch roll {
            case 0..<1:
                op = try factory.delete(initial, by: author, at: stamp())
            case 1..<2:
                op = try factory.recall(initial, by: author, at: stamp())
            case 2..<8:
                let audience = Array(["bob", "carol"].shuffled(using: &rng).prefix(Int.random(in: 1...2, using: &rng)))
                op = try factory.recall(initial, from: audience, reason: "need to know", by: author, at: stamp())
            case 8..<20:
                let markings = Markings(
                    classification: ["CONFIDENTIAL", "SECRET", "TOP SECRET"].randomElement(using: &rng)!,
                    releasableTo: Array(
                        ["bob", "carol", "FVEY"].shuffled(using: &rng).prefix(Int.random(in: 0...3, using: &rng))
                    ),
                    orcon: Bool.random(using: &rng)
                )
                op = try factory.changeMarkings(of: initial, to: markings, by: author, at: stamp())
            case 20..<50:
                op = try factory.setFields(someFields(), of: initial, by: author, at: stamp())
            case 50..<75:
                op = try factory.addTags(someTags(), to: initial, by: author, at: stamp())
            default:
                let prefix = Int.random(in: 0...ops.count, using: &rng)
                let observed = try ItemState.build(create, ops[0..<prefix])
                op = try factory.removeTags(someTags(), observedIn: observed, by: author, at: stamp())
            }
            ops.append(op)
        }
        self.seed = seed
        self.writePolicy = policy
        self.create = create
        self.ops = ops
    }

    public var description: String {
        "RandomOpSet(seed: \(seed), policy: \(writePolicy.rawValue), ops: "
            + all.map { "\($0.body.change.kindName)@\($0.body.hlc)" }.joined(separator: " ") + ")"
    }
}
