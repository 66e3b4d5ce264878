public import Foundation
public import LiaisonCore

/// Makes and signs single ops so that tests read as what they do.
///
/// Salts and nonces come from a seeded generator, so a factory with a given seed makes
/// the same ops on every run. Each op is signed as a batch of one.
public struct OpFactory: Sendable {
    /// Where salts and nonces come from.
    public var generator: SeededGenerator

    /// A factory whose salts and nonces derive from `seed`.
    public init(seed: UInt64 = 1) {
        self.generator = SeededGenerator(seed: seed)
    }

    /// A signed create op by `node`.
    public mutating func create(
        by node: TestNode,
        collection: String = "reports",
        markings: Markings = .test,
        fields: [(name: String, value: Data)] = [],
        tags: [String] = [],
        writePolicy: WritePolicy = .originatorOnly,
        withheld: [String: [String]] = [:],
        at hlc: HLCTimestamp = .test(0)
    ) throws(LiaisonError) -> VerifiedOp {
        let op = try node.author.create(
            collection: collection,
            markings: markings,
            fields: fields,
            tags: tags,
            writePolicy: writePolicy,
            withheld: withheld,
            hlc: hlc,
            using: &generator
        )
        return try Self.signOne(op, by: node)
    }

    /// A signed op by `node` that sets fields of `item`.
    public mutating func setFields(
        _ fields: [(name: String, value: Data)],
        of item: ItemState,
        by node: TestNode,
        at hlc: HLCTimestamp
    ) throws(LiaisonError) -> VerifiedOp {
        let op = try node.author.setFields(fields, of: item, hlc: hlc, using: &generator)
        return try Self.signOne(op, by: node)
    }

    /// A signed op by `node` that adds tags to `item`.
    public func addTags(
        _ tags: [String], to item: ItemState, by node: TestNode, at hlc: HLCTimestamp
    )
        throws(LiaisonError) -> VerifiedOp
    {
        try change(item, .addTags(tags), by: node, at: hlc)
    }

    /// A signed op by `node` that removes the instances of `tags` live in `observed`: the
    /// state the author had seen. Instances added concurrently elsewhere survive it.
    public func removeTags(
        _ tags: [String], observedIn observed: ItemState, by node: TestNode, at hlc: HLCTimestamp
    )
        throws(LiaisonError) -> VerifiedOp
    {
        let removals = tags.map { TagRemoval(tag: $0, observed: observed.liveInstances(of: $0)) }
        return try change(observed, .removeTags(removals), by: node, at: hlc)
    }

    /// A signed delete of `item` by `node`.
    public func delete(_ item: ItemState, by node: TestNode, at hlc: HLCTimestamp) throws(LiaisonError) -> VerifiedOp {
        try change(item, .delete, by: node, at: hlc)
    }

    /// A signed change of `item`'s markings by `node`.
    public func changeMarkings(
        of item: ItemState, to markings: Markings, by node: TestNode, at hlc: HLCTimestamp
    )
        throws(LiaisonError) -> VerifiedOp
    {
        try change(item, .changeMarkings(markings), by: node, at: hlc)
    }

    /// A signed recall of `item` from `audience` (empty: from everyone) by `node`.
    public func recall(
        _ item: ItemState,
        from audience: [String] = [],
        reason: String = "withdrawn",
        by node: TestNode,
        at hlc: HLCTimestamp
    ) throws(LiaisonError) -> VerifiedOp {
        try change(item, .recall(audience: audience, reason: reason), by: node, at: hlc)
    }

    /// A signed op by `node` making any change that carries no field values.
    public func change(
        _ item: ItemState, _ change: OpChange, by node: TestNode, at hlc: HLCTimestamp
    )
        throws(LiaisonError) -> VerifiedOp
    {
        try Self.signOne(node.author.change(item, change, hlc: hlc), by: node)
    }

    /// Signs `count` distinct set-fields ops on `item` by `node` as one batch.
    public mutating func batch(
        of count: Int, on item: ItemState, by node: TestNode, startingAt millis: UInt64 = 100
    )
        throws(LiaisonError) -> [VerifiedOp]
    {
        var unsigned = [UnsignedOp]()
        for index in 0..<count {
            unsigned.append(
                try node.author.setFields(
                    [(name: "n", value: JSONText.number(index))],
                    of: item,
                    hlc: .test(millis + UInt64(index)),
                    using: &generator
                )
            )
        }
        return try node.author.sign(unsigned)
    }

    private static func signOne(_ op: UnsignedOp, by node: TestNode) throws(LiaisonError) -> VerifiedOp {
        try node.author.sign([op])[0]
    }
}
