public import Foundation
public import LiaisonCore
public import LiaisonStore
import Synchronization

/// What `liaison put` asks for.
public struct PutRequest: Sendable {
    /// The collection.
    public var collection: String
    /// Classification level name (any case); nil for the ladder's lowest.
    public var classification: String?
    /// REL TO partner or group names.
    public var releasableTo: [String]
    /// Originator controls dissemination.
    public var orcon: Bool
    /// Further caveats.
    public var caveats: [String]
    /// Expiry.
    public var expiresAt: Date?
    /// Tags.
    public var tags: [String]
    /// Fields: name and UTF-8 JSON text of the value.
    public var fields: [(name: String, value: Data)]
    /// Who else may write.
    public var writePolicy: WritePolicy
    /// Field-level releasability: per field, partner or group names its value is withheld
    /// from on every path. The node adds every partner whose link from it redacts the field.
    public var withheld: [String: [String]]
    /// Fixes the item's id (`OpAuthor.create`); nil: a random one.
    public var nonce: [UInt8]?

    /// Creates a request.
    public init(
        collection: String,
        classification: String? = nil,
        releasableTo: [String] = [],
        orcon: Bool = false,
        caveats: [String] = [],
        expiresAt: Date? = nil,
        tags: [String] = [],
        fields: [(name: String, value: Data)] = [],
        writePolicy: WritePolicy = .originatorOnly,
        withheld: [String: [String]] = [:],
        nonce: [UInt8]? = nil
    ) {
        self.withheld = withheld
        self.nonce = nonce
        self.collection = collection
        self.classification = classification
        self.releasableTo = releasableTo
        self.orcon = orcon
        self.caveats = caveats
        self.expiresAt = expiresAt
        self.tags = tags
        self.fields = fields
        self.writePolicy = writePolicy
    }
}

/// A node opened from its directory, for local commands (before the daemon runs, and
/// inside it): put, get, list, audit.
public struct LocalNode: Sendable {
    /// The directory.
    public let directory: NodeDirectory
    /// `node.json`.
    public let config: NodeConfig
    /// The keys.
    public let identity: NodeIdentity
    /// The store.
    public let store: any Store
    /// `federation.json`: the partners and groups REL TO may name. Nil for a node made by
    /// `liaison init` alone, which knows no partner.
    public let federation: FederationConfig?
    /// What `open` found open to other users and made owner-only, relative to the directory
    /// (`.` for the directory itself); empty when everything already was.
    public let madeOwnerOnly: [String]
    /// The highest stamp handed out by `reserveStamps`, shared by every copy of this value.
    let reservations = StampReservations()

    /// Opens the node in `directory`; refuses a missing, foreign or damaged directory. A
    /// node directory that other users may read (made by an older Liaison, or copied) is
    /// first made owner-only, before its keys and store are opened; `madeOwnerOnly` says
    /// what changed.
    public static func open(_ directory: NodeDirectory) throws(LiaisonError) -> LocalNode {
        let config = try directory.loadConfig()
        let madeOwnerOnly = try OwnerOnlyFiles.restrict(directory.url)
        let identity = try directory.loadIdentity(config: config)
        let federation = try FederationConfig.loadIfPresent(from: directory)
        let store = try directory.openStore()
        return LocalNode(
            directory: directory,
            config: config,
            identity: identity,
            store: store,
            federation: federation,
            madeOwnerOnly: madeOwnerOnly
        )
    }

    /// Validates a put request, creates and signs the item's create op, and commits it.
    /// Nothing is written when the request is invalid.
    public func put(_ request: PutRequest, now: Date) throws(LiaisonError) -> (item: ItemState, op: VerifiedOp) {
        let markings = try request.validatedMarkings(config: config, federation: federation, now: now)
        let nowMillis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var clock = try resumedClock(nowMillis: nowMillis)
        var generator = SystemRandomNumberGenerator()
        let unsigned = try identity.author.create(
            collection: request.collection,
            markings: markings,
            fields: request.fields,
            tags: request.tags,
            writePolicy: request.writePolicy,
            withheld: withheld(request.fields.map(\.name), explicit: request.withheld),
            nonce: request.nonce,
            hlc: clock.tick(physicalMillis: nowMillis),
            using: &generator
        )
        let signed = try identity.author.sign([unsigned])
        try Self.refuseOversized(signed)
        let result = try store.commit(CommitBatch(ops: signed, source: .local, timeMillis: Int64(nowMillis)))
        guard result.rejected.isEmpty, let item = try store.item(signed[0].body.itemID) else {
            throw LiaisonError(.invalidOp, "the store refused the new item: \(result.rejected.map(\.reason))")
        }
        return (item, signed[0])
    }

    /// Most items one `putMany` takes: one transaction holds them all.
    public static let maxItemsPerPut = 10_000

    /// Creates many items at once: every request is checked first, and if any is refused
    /// nothing is written (the error's cause is a `BulkPutRefusal` naming each refused
    /// request by its index); then the creates are signed in batches (one signature per
    /// `signatureBatch` ops, DESIGN §10) and committed in **one** transaction, so a crash
    /// leaves all of them or none. At most `maxItemsPerPut` requests.
    ///
    /// The daemon runs the three steps apart (`reserveStamps`, `signedCreates`,
    /// `commitCreates`) so that checking and signing stay off its store thread.
    public func putMany(
        _ requests: [PutRequest], now: Date, signatureBatch: Int = 1000
    ) throws(LiaisonError) -> [(item: ItemState, op: VerifiedOp)] {
        try Self.refuseOverfull(requests)
        guard !requests.isEmpty else { return [] }
        let stamps = try reserveStamps(requests.count, now: now)
        let signed = try signedCreates(requests, stamps: stamps, now: now, signatureBatch: signatureBatch)
        return try commitCreates(signed, now: now)
    }

    /// Refuses more than `maxItemsPerPut` requests.
    static func refuseOverfull(_ requests: [PutRequest]) throws(LiaisonError) {
        guard requests.count <= Self.maxItemsPerPut else {
            throw LiaisonError(
                .invalidArgument,
                "\(requests.count) items in one put; send at most \(Self.maxItemsPerPut) at a time")
        }
    }

    /// `count` stamps for ops authored here now, after every stamp in the store and every
    /// stamp reserved before and not committed yet: the ops they go on may be built and
    /// signed elsewhere, and committed later, without another op of this node taking the
    /// same stamp in between.
    ///
    /// Reservations exclude each other; the other writes of this node (put, update, the
    /// originator's lifecycle changes) are serialised with them by their caller: the daemon's
    /// engine thread, or the one command.
    public func reserveStamps(_ count: Int, now: Date) throws(LiaisonError) -> [HLCTimestamp] {
        let nowMillis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let stored = try store.highestHLC()
        return reservations.reserve { floor in
            var clock = HybridLogicalClock(
                maxSkewMillis: config.maxClockSkewMillis, resumingAfter: max(stored, floor), physicalMillis: nowMillis)
            return (0..<max(0, count)).map { _ in clock.tick(physicalMillis: nowMillis) }
        }
    }

    /// Checks each request and makes it into a create with the stamp of the same index, then
    /// signs them (one signature per `signatureBatch` ops); touches no store, so it may run on
    /// any thread. If any request is refused, or a signed op would be too large, the error's
    /// cause is a `BulkPutRefusal` naming each by its index.
    public func signedCreates(
        _ requests: [PutRequest], stamps: [HLCTimestamp], now: Date, signatureBatch: Int = 1000
    ) throws(LiaisonError) -> [VerifiedOp] {
        try Self.refuseOverfull(requests)
        guard stamps.count == requests.count else {
            throw LiaisonError(.invalidArgument, "\(requests.count) requests but \(stamps.count) stamps")
        }
        let (unsigned, refusal) = creates(requests, stamps: stamps, now: now)
        guard refusal.failures.isEmpty else {
            throw LiaisonError(.invalidArgument, refusal.summary(of: requests.count), cause: refusal)
        }
        var signed = [VerifiedOp]()
        signed.reserveCapacity(unsigned.count)
        var start = 0
        while start < unsigned.count {
            signed += try identity.author.sign(Array(unsigned[start..<min(unsigned.count, start + signatureBatch)]))
            start += signatureBatch
        }
        let oversized = signed.enumerated().filter { $0.element.encoded.count > OpLimits.maxEncodedBytes }
        guard oversized.isEmpty else {
            let refusal = BulkPutRefusal(
                failures: oversized.map {
                    BulkPutRefusal.Failure(index: $0.offset, message: Self.oversizeMessage($0.element))
                }
            )
            throw LiaisonError(.invalidArgument, refusal.summary(of: requests.count), cause: refusal)
        }
        return signed
    }

    /// Commits creates made by `signedCreates` in one transaction and answers each with its
    /// item as committed (the commit's own states: no read after it).
    public func commitCreates(
        _ signed: [VerifiedOp], now: Date
    ) throws(LiaisonError) -> [(item: ItemState, op: VerifiedOp)] {
        guard !signed.isEmpty else { return [] }
        let nowMillis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let result = try store.commit(CommitBatch(ops: signed, source: .local, timeMillis: Int64(nowMillis)))
        guard result.rejected.isEmpty else {
            throw LiaisonError(.invalidOp, "the store refused new items: \(result.rejected.map(\.reason))")
        }
        var created = [(item: ItemState, op: VerifiedOp)]()
        created.reserveCapacity(signed.count)
        for op in signed {
            guard let item = result.states[op.body.itemID] else {
                throw LiaisonError(.corrupt, "item \(op.body.itemID.text) was not created by its commit")
            }
            created.append((item, op))
        }
        return created
    }

    /// The requests of `requests` that `putMany` would refuse, and why; writes nothing.
    public func refusals(of requests: [PutRequest], now: Date) -> BulkPutRefusal {
        let nowMillis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var clock = HybridLogicalClock(
            maxSkewMillis: config.maxClockSkewMillis, resumingAfter: .zero, physicalMillis: nowMillis)
        let stamps = requests.map { _ in clock.tick(physicalMillis: nowMillis) }
        return creates(requests, stamps: stamps, now: now).refusal
    }

    /// Each request checked and made into an unsigned create with the stamp of the same
    /// index; the refused ones by index.
    private func creates(
        _ requests: [PutRequest], stamps: [HLCTimestamp], now: Date
    ) -> (unsigned: [UnsignedOp], refusal: BulkPutRefusal) {
        var generator = SystemRandomNumberGenerator()
        var unsigned = [UnsignedOp]()
        unsigned.reserveCapacity(requests.count)
        var refusal = BulkPutRefusal()
        for (index, request) in requests.enumerated() {
            do throws(LiaisonError) {
                let markings = try request.validatedMarkings(config: config, federation: federation, now: now)
                unsigned.append(
                    try identity.author.create(
                        collection: request.collection,
                        markings: markings,
                        fields: request.fields,
                        tags: request.tags,
                        writePolicy: request.writePolicy,
                        withheld: withheld(request.fields.map(\.name), explicit: request.withheld),
                        nonce: request.nonce,
                        hlc: stamps[index],
                        using: &generator
                    )
                )
            } catch {
                refusal.failures.append(.init(index: index, message: error.message))
            }
        }
        return (unsigned, refusal)
    }

    /// Changes an item: sets fields, adds and removes tags (removing the instances seen
    /// here; a concurrent add elsewhere survives). The author must be allowed to write.
    public func update(
        _ id: ItemID,
        fields: [(name: String, value: Data)],
        addTags: [String],
        removeTags: [String],
        withheld explicit: [String: [String]] = [:],
        now: Date
    ) throws(LiaisonError) -> (item: ItemState, ops: [VerifiedOp]) {
        guard let item = try store.item(id) else { throw LiaisonError(.notFound, "no item \(id.text) at this node") }
        guard !item.isWithdrawn else { throw LiaisonError(.conflict, "item \(id.text) was deleted or recalled") }
        if let purged = item.purgeCause(at: recipient) {
            throw LiaisonError(.forbidden, "this node may not change item \(id.text): \(purged)")
        }
        guard !fields.isEmpty || !addTags.isEmpty || !removeTags.isEmpty else {
            throw LiaisonError(.invalidArgument, "nothing to change: give fields, tags to add or tags to remove")
        }
        for tag in addTags + removeTags where !Names.isValid(tag) {
            throw LiaisonError(.invalidArgument, "invalid tag '\(tag)': use 1-128 letters, digits or . _ - : /")
        }
        for (field, names) in explicit.sorted(by: { $0.key < $1.key }) {
            guard fields.contains(where: { $0.name == field }) else {
                throw LiaisonError(
                    .invalidArgument, "field '\(field)' is withheld but not given: withhold only fields you set")
            }
            for name in names where !Names.isValidLabel(name) {
                throw LiaisonError(.invalidArgument, "invalid name '\(name)' to withhold '\(field)' from")
            }
            try PutRequest.checkKnown(
                names, config: config, federation: federation, role: "partner to withhold '\(field)' from")
        }
        let author = identity.author
        if case .failure(let rejection) = item.permits(writer: recipient, change: .setFields([])) {
            throw LiaisonError(.forbidden, "this node may not change item \(id.text): \(rejection)")
        }
        let nowMillis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var clock = try resumedClock(nowMillis: nowMillis)
        var generator = SystemRandomNumberGenerator()
        var unsigned = [UnsignedOp]()
        if !fields.isEmpty {
            unsigned.append(
                try author.setFields(
                    fields, of: item,
                    withheld: withheld(
                        fields.map(\.name),
                        explicit: try standingWithholding(of: item, fields: fields.map(\.name)).merging(
                            explicit, uniquingKeysWith: +)),
                    hlc: clock.tick(physicalMillis: nowMillis), using: &generator))
        }
        if !addTags.isEmpty {
            unsigned.append(
                try author.change(
                    item, .addTags(Array(Set(addTags)).sorted()), hlc: clock.tick(physicalMillis: nowMillis)))
        }
        let removals = Set(removeTags).sorted().map { TagRemoval(tag: $0, observed: item.liveInstances(of: $0)) }
            .filter { !$0.observed.isEmpty }
        if !removals.isEmpty {
            unsigned.append(try author.change(item, .removeTags(removals), hlc: clock.tick(physicalMillis: nowMillis)))
        }
        guard !unsigned.isEmpty else { return (item, []) }
        let signed = try author.sign(unsigned)
        try Self.refuseOversized(signed)
        let result = try store.commit(CommitBatch(ops: signed, source: .local, timeMillis: Int64(nowMillis)))
        guard result.rejected.isEmpty, let updated = try store.item(id) else {
            throw LiaisonError(.invalidOp, "the store refused the change: \(result.rejected.map(\.reason))")
        }
        return (updated, signed)
    }

    /// Refuses ops a partner would refuse as too large (`OpLimits.maxEncodedBytes`, I6): the
    /// partner would strike this node for each, and quarantine it past the threshold. Called
    /// before the commit, so nothing is written.
    static func refuseOversized(_ ops: [VerifiedOp]) throws(LiaisonError) {
        if let op = ops.first(where: { $0.encoded.count > OpLimits.maxEncodedBytes }) {
            throw LiaisonError(.invalidArgument, oversizeMessage(op))
        }
    }

    static func oversizeMessage(_ op: VerifiedOp) -> String {
        "the signed op would be \(op.encoded.count) bytes; partners refuse ops over \(OpLimits.maxEncodedBytes) "
            + "bytes (1 MiB): keep an item's fields under about 1 MB, or store large content elsewhere and put a reference"
    }

    /// Who the current value of each of `fields` is withheld from, as its writer signed it
    /// (this node left out): a new value of a field withheld from a partner stays withheld
    /// from it, whoever writes it here (docs/decisions.md, "Withholding outlives a write").
    func standingWithholding(of item: ItemState, fields: [String]) throws(LiaisonError) -> [String: [String]] {
        try Self.withholding(of: item, fields: fields, leaving: config.name) { id throws(LiaisonError) in
            try store.op(id)?.op
        }
    }

    /// Who each field of `item` this node holds is withheld from, as the op that wrote its
    /// value signed it (this node left out): what an export marks as granular withholding
    /// (docs/stix.md, "Export").
    public func withholding(of item: ItemState) throws(LiaisonError) -> [String: [String]] {
        try standingWithholding(of: item, fields: item.fields.keys.sorted())
    }

    /// Who each of `fields` of `item` is withheld from, as the op that wrote it signed it,
    /// `name` left out; `writer` finds an op by id (the store, or the ops at hand).
    public static func withholding(
        of item: ItemState, fields: [String], leaving name: String,
        writer: (OpID) throws(LiaisonError) -> VerifiedOp?
    ) throws(LiaisonError) -> [String: [String]] {
        var standing = [String: [String]]()
        var writers = [OpID: VerifiedOp]()
        for field in fields {
            guard let register = item.fields[field] else { continue }
            let op: VerifiedOp
            if let known = writers[register.stamp.opID] {
                op = known
            } else {
                guard let found = try writer(register.stamp.opID) else {
                    throw LiaisonError(
                        .corrupt, "the op that wrote field '\(field)' of item \(item.id.text) is not in the store")
                }
                op = found
                writers[register.stamp.opID] = found
            }
            let names = op.body.change.fieldCommitments.first { $0.name == field }?.withheldFrom ?? []
            let carried = names.filter { $0 != name }
            if !carried.isEmpty { standing[field] = carried }
        }
        return standing
    }

    /// What this node withholds of `fields` and from whom, signed in the op: `explicit`
    /// plus every partner whose link from this node redacts the field (DESIGN §4).
    func withheld(_ fields: [String], explicit: [String: [String]] = [:]) -> [String: [String]] {
        let outbound = Dictionary(
            (federation?.neighbours ?? []).compactMap { n in n.outbound.map { (n.name, $0) } },
            uniquingKeysWith: { a, _ in a })
        return FieldReleasability.withheld(fields: fields, explicit: explicit, outbound: outbound)
    }

    /// This node as REL TO sees it: its name, NodeID and groups (from `federation.json`).
    public var recipient: Recipient {
        Recipient(
            name: config.name,
            nodeID: identity.nodeID,
            groups: Set(federation?.partners.first { $0.name == config.name }?.groups ?? [])
        )
    }

    /// The clock for ops authored now: after every stamp in the store, taken in at most half
    /// the skew ahead of `nowMillis` (a partner's stamp near the edge of the skew does not
    /// drag this node's stamps there).
    func resumedClock(nowMillis: UInt64) throws(LiaisonError) -> HybridLogicalClock {
        HybridLogicalClock(
            maxSkewMillis: config.maxClockSkewMillis,
            resumingAfter: max(try store.highestHLC(), reservations.highest),
            physicalMillis: nowMillis)
    }

    /// An item by id.
    public func item(_ id: ItemID) throws(LiaisonError) -> ItemState? { try store.item(id) }

    /// Items matching a query.
    public func items(_ query: ItemQuery) throws(LiaisonError) -> [ItemState] { try store.items(query) }
}

/// The highest stamp a node handed out for ops not built yet (`LocalNode.reserveStamps`).
final class StampReservations: Sendable {
    private let last = Mutex(HLCTimestamp.zero)

    /// The highest stamp reserved so far (zero: none).
    var highest: HLCTimestamp { last.withLock { $0 } }

    /// Stamps made by `make` from the highest reserved so far, recorded as reserved; one
    /// reservation at a time.
    func reserve(_ make: (HLCTimestamp) -> [HLCTimestamp]) -> [HLCTimestamp] {
        last.withLock { highest in
            let stamps = make(highest)
            if let top = stamps.last { highest = max(highest, top) }
            return stamps
        }
    }
}

extension PutRequest {
    /// Checks the request against the node's configuration and what it knows of its
    /// federation (nil: none) without touching the store, and returns the item's markings.
    /// Callers validate before opening anything, so that bad input writes nothing.
    ///
    /// REL TO may name `ALL`, the node itself, and the federation's partners and groups; any
    /// other name would release the item to no one, so it is refused with the names known.
    public func validatedMarkings(
        config: NodeConfig, federation: FederationConfig?, now: Date
    ) throws(LiaisonError) -> Markings {
        guard Names.isValid(collection) else {
            throw LiaisonError(
                .invalidArgument, "invalid collection '\(collection)': use 1-128 letters, digits or . _ - : /")
        }
        let level = try classification.map(config.classifications.level(named:)) ?? config.classifications.lowest
        for name in releasableTo where !Names.isValidLabel(name) {
            throw LiaisonError(.invalidArgument, "invalid REL TO entry '\(name)': use a partner or group name")
        }
        try Self.checkKnown(releasableTo, config: config, federation: federation)
        for caveat in caveats where !Names.isValidLabel(caveat) {
            throw LiaisonError(.invalidArgument, "invalid caveat '\(caveat)'")
        }
        for tag in tags where !Names.isValid(tag) {
            throw LiaisonError(.invalidArgument, "invalid tag '\(tag)': use 1-128 letters, digits or . _ - : /")
        }
        guard Set(tags).count == tags.count else { throw LiaisonError(.invalidArgument, "a tag is given twice") }
        for (name, value) in fields {
            guard Names.isValid(name) else {
                throw LiaisonError(
                    .invalidArgument, "invalid field name '\(name)': use 1-128 letters, digits or . _ - : /")
            }
            guard (try? JSONSerialization.jsonObject(with: value, options: [.fragmentsAllowed])) != nil else {
                throw LiaisonError(.invalidArgument, "the value of field '\(name)' is not JSON text")
            }
        }
        guard Set(fields.map(\.name)).count == fields.count else {
            throw LiaisonError(.invalidArgument, "a field is given twice")
        }
        for (field, names) in withheld.sorted(by: { $0.key < $1.key }) {
            guard fields.contains(where: { $0.name == field }) else {
                throw LiaisonError(
                    .invalidArgument, "field '\(field)' is withheld but not given: withhold only fields you put")
            }
            for name in names where !Names.isValidLabel(name) {
                throw LiaisonError(.invalidArgument, "invalid name '\(name)' to withhold '\(field)' from")
            }
            try Self.checkKnown(
                names, config: config, federation: federation, role: "partner to withhold '\(field)' from")
        }
        guard fields.count <= OpLimits.maxFields, tags.count <= OpLimits.maxTags else {
            throw LiaisonError(
                .invalidArgument, "at most \(OpLimits.maxFields) fields and \(OpLimits.maxTags) tags per item")
        }
        if let expiresAt, expiresAt <= now {
            throw LiaisonError(
                .invalidArgument,
                "--expires \(ISO8601.format(millis: Int64(expiresAt.timeIntervalSince1970 * 1000))) is not in the future"
            )
        }
        return Markings(
            classification: level,
            releasableTo: releasableTo,
            orcon: orcon,
            caveats: caveats,
            expiresAtMillis: expiresAt.map(ISO8601.millis)
        )
    }

    /// Refuses the first REL TO name that is neither `ALL`, nor this node, nor a partner or
    /// group of its federation, naming the ones it knows.
    static func checkKnown(
        _ names: [String], config: NodeConfig, federation: FederationConfig?, role: String = "REL TO"
    ) throws(LiaisonError) {
        guard let federation else {
            for name in names where name != Markings.everyone && name != config.name {
                throw LiaisonError(
                    .invalidArgument,
                    "unknown \(role) '\(name)': node \(config.name) has no federation yet (no federation.json), so \(role) may name only ALL or \(config.name); partners and groups are known to nodes rendered with 'liaison topology render FILE --out DIR'"
                )
            }
            return
        }
        let partners = Set(federation.partners.map(\.name)).union([config.name])
        let groups = Set(federation.partners.flatMap(\.groups))
        for name in names where name != Markings.everyone && !partners.contains(name) && !groups.contains(name) {
            let knownGroups = groups.isEmpty ? "no groups" : "groups \(groups.sorted().joined(separator: ", "))"
            throw LiaisonError(
                .invalidArgument,
                "unknown \(role) '\(name)': known partners \(partners.sorted().joined(separator: ", ")); \(knownGroups)"
            )
        }
    }
}

/// The requests a bulk put refused, by their index in the put (nothing of it was written).
public struct BulkPutRefusal: Error, Sendable, Hashable {
    /// One refused request.
    public struct Failure: Sendable, Hashable {
        /// Its index in the put, from 0.
        public var index: Int
        /// Why, and what to do.
        public var message: String

        /// A refused request.
        public init(index: Int, message: String) {
            self.index = index
            self.message = message
        }
    }

    /// The refused requests, in order.
    public var failures: [Failure] = []

    /// A refusal of `failures`.
    public init(failures: [Failure] = []) { self.failures = failures }

    /// One line: how many were refused, and the first few with their reasons.
    public func summary(of count: Int) -> String {
        let shown = failures.prefix(5).map { "item \($0.index): \($0.message)" }.joined(separator: "; ")
        let more = failures.count > 5 ? "; and \(failures.count - 5) more" : ""
        return "\(failures.count) of \(count) items refused, nothing written: \(shown)\(more)"
    }
}
