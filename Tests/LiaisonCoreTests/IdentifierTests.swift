import Foundation
import LiaisonCore
import LiaisonTestSupport
import Testing

/// NodeID, ItemID, OpID and their text forms.
@Suite("Identifiers")
struct IdentifierTests {
    static let nodes: [TestNode] =
        [.alice, .bob, .carol, .mallory] + (1...20).map { TestNode(name: "n\($0)", seed: $0) }

    @Test(
        "Base32 encodes the RFC 4648 test vectors, without padding",
        arguments: [
            ("", ""), ("f", "MY"), ("fo", "MZXQ"), ("foo", "MZXW6"), ("foob", "MZXW6YQ"), ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ]
    )
    func base32Vectors(_ plain: String, _ encoded: String) {
        #expect(Base32.encode(Array(plain.utf8)) == encoded)
        #expect(Base32.decode(encoded) == Array(plain.utf8))
        #expect(Base32.decode(encoded.lowercased()) == Array(plain.utf8))
    }

    @Test("Base32 refuses characters outside the alphabet and non-zero trailing bits")
    func base32Rejects() {
        for text in ["MY=", "M1", "M8", "MY======", "MZ XQ", "MÝ"] { #expect(Base32.decode(text) == nil, "\(text)") }
        #expect(Base32.decode("MZ") == nil, "MZ leaves the bits 01 after the byte")
        var rng = SeededGenerator(seed: 81)
        for length in 0..<40 {
            let bytes = rng.bytes(length)
            #expect(Base32.decode(Base32.encode(bytes)) == bytes)
        }
    }

    @Test("a NodeID's text is 13 groups of 4 base32 characters joined by dashes, and round-trips")
    func nodeIDText() throws {
        for node in Self.nodes {
            let text = node.nodeID.text
            let groups = text.split(separator: "-", omittingEmptySubsequences: false)
            #expect(groups.count == 13, "\(text)")
            #expect(groups.allSatisfy { $0.count == 4 }, "\(text)")
            #expect(text.allSatisfy { $0 == "-" || ("A"..."Z").contains($0) || ("2"..."7").contains($0) }, "\(text)")
            #expect(NodeID(text) == node.nodeID)
            #expect(NodeID(text.lowercased()) == node.nodeID)
            #expect(NodeID(text.replacingOccurrences(of: "-", with: "")) == node.nodeID)
            #expect(node.nodeID.short == String(text.prefix(9)))
            #expect(node.nodeID.description == text)
            #expect(NodeID(bytes: node.nodeID.bytes) == node.nodeID)
            let json = try JSONEncoder().encode(node.nodeID)
            #expect(try JSONDecoder().decode(NodeID.self, from: json) == node.nodeID)
        }
        #expect(Set(Self.nodes.map(\.nodeID)).count == Self.nodes.count)
    }

    @Test("a NodeID is SHA-256 of the Ed25519 public key")
    func nodeIDIsKeyHash() {
        #expect(TestNode.alice.nodeID.hash == Hash32.sha256(TestNode.alice.publicKeyBytes))
        #expect(
            TestNode(name: "again", seed: 0xA11CE).nodeID == TestNode.alice.nodeID,
            "keys are deterministic per seed"
        )
    }

    @Test("NodeID parsing refuses wrong lengths, characters and trailing bits")
    func nodeIDRejects() {
        let compact = TestNode.alice.nodeID.text.replacingOccurrences(of: "-", with: "")
        #expect(compact.count == 52)
        #expect(NodeID(String(compact.dropLast())) == nil, "51 characters")
        #expect(NodeID(compact + "A") == nil, "53 characters")
        #expect(NodeID(String(compact.dropLast(4))) == nil, "48 characters")
        #expect(NodeID("") == nil)
        for bad: Character in ["0", "1", "8", "9", "!", "=", "é"] {
            #expect(NodeID(String(compact.dropFirst()) + String(bad)) == nil, "with \(bad)")
            #expect(NodeID(String(bad) + String(compact.dropFirst())) == nil, "with \(bad)")
        }
        // The 52nd character carries one bit and four zero bits: only A (0) or Q (16) may end a NodeID.
        #expect(NodeID(String(compact.dropLast()) + "B") == nil)
        #expect(NodeID(String(compact.dropLast()) + "A") != nil)
        #expect(NodeID(String(compact.dropLast()) + "Q") != nil)
        #expect(NodeID(bytes: [UInt8](repeating: 1, count: 31)) == nil)
    }

    @Test("an ItemID's text is UUID-like lower-case hex and round-trips")
    func itemIDText() throws {
        var factory = OpFactory(seed: 82)
        for _ in 0..<20 {
            let create = try factory.create(by: .alice)
            let id = create.body.itemID
            let text = id.text
            #expect(text.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12], "\(text)")
            #expect(text == text.lowercased())
            #expect(ItemID(text) == id)
            #expect(ItemID(text.uppercased()) == id)
            #expect(ItemID(text.replacingOccurrences(of: "-", with: "")) == id)
            #expect(ItemID(bytes: id.bytes) == id)
            #expect(try JSONDecoder().decode(ItemID.self, from: JSONEncoder().encode(id)) == id)
            guard case .create(let change) = create.body.change else {
                Issue.record("not a create")
                continue
            }
            #expect(ItemID(originator: TestNode.alice.nodeID, nonce: change.nonce) == id)
            #expect(
                ItemID(originator: TestNode.bob.nodeID, nonce: change.nonce) != id,
                "the id is bound to its originator"
            )
        }
        #expect(ItemID("0123456789abcdef0123456789abcde") == nil)
        #expect(ItemID("0123456789abcdef0123456789abcdeg") == nil)
        #expect(ItemID(bytes: [UInt8](repeating: 0, count: 15)) == nil)
    }

    @Test(
        "an ItemID reads the same 16 bytes alike from an array, Data, a slice of Data and a non-contiguous collection")
    func itemIDFromAnyBytes() {
        var random = SeededRandom(seed: 83)
        for _ in 0..<50 {
            let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &random) }
            let id = ItemID(bytes: bytes)
            #expect(id?.bytes == bytes)
            #expect(ItemID(bytes: Data(bytes)) == id)
            #expect(ItemID(bytes: (Data([9, 9, 9]) + Data(bytes)).dropFirst(3)) == id)
            #expect(ItemID(bytes: bytes.lazy.map { $0 }) == id, "the path for collections without contiguous storage")
            #expect(ItemID(bytes: Data(bytes).dropFirst()) == nil)
        }
    }

    @Test("an op id is SHA-256 of the signed body bytes")
    func opIDIsBodyHash() throws {
        var factory = OpFactory(seed: 83)
        let op = try factory.create(by: .alice, fields: [(name: "title", value: JSONText.string("x"))])
        let body = try SignedOpWire(decoding: op.encoded).body
        #expect(op.id.hash == Hash32.sha256(body))
        #expect(op.id == OpID(body: body))
    }

    @Test("Hash32 hex and bytes round-trip and order like the bytes")
    func hash32() throws {
        var rng = SeededGenerator(seed: 84)
        var hashes = [Hash32]()
        for _ in 0..<50 {
            let bytes = rng.bytes(32)
            let hash = try #require(Hash32(bytes: bytes))
            #expect(hash.bytes == bytes)
            // Contiguous storage (arrays, Data, a slice of Data at an offset) and a collection
            // without it are read the same way.
            #expect(Hash32(bytes: Data(bytes)) == hash)
            #expect(Hash32(bytes: (Data([7, 7]) + Data(bytes)).dropFirst(2)) == hash)
            #expect(Hash32(bytes: bytes.lazy.map { $0 }) == hash)
            #expect(Hash32(hex: hash.hex) == hash)
            #expect(Hash32(hex: hash.hex.uppercased()) == hash)
            hashes.append(hash)
        }
        #expect(hashes.sorted().map(\.bytes) == hashes.map(\.bytes).sorted { $0.lexicographicallyPrecedes($1) })
        #expect(Hash32(hex: String(repeating: "g", count: 64)) == nil)
        #expect(Hash32(bytes: [UInt8](repeating: 0, count: 33)) == nil)
    }
}
