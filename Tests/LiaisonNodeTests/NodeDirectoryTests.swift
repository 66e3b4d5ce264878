import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonTestSupport
import Testing

/// Node directories on disk are owner-only: directories 0700, files 0600, whatever the
/// process umask (these tests run in-process, with the test runner's umask), and a directory
/// left open to others is made owner-only when it is opened.
@Suite("Node directories")
struct NodeDirectoryTests {
    /// A fresh temporary directory, removed by `cleanUp`.
    static func scratch() -> URL {
        TestDirectory.path("node-dir")
    }

    static func cleanUp(_ url: URL) { try? FileManager.default.removeItem(at: url) }

    @Test("topology render writes owner-only node directories: every directory 0700, every file 0600")
    func renderIsOwnerOnly() throws {
        let out = Self.scratch().appendingPathComponent("nodes")
        defer { Self.cleanUp(out.deletingLastPathComponent()) }
        _ = try TopologyTests.demo().render(into: out, now: Date())
        for partner in ["alpha", "bravo", "charlie"] {
            let path = out.appendingPathComponent(partner).path
            let entries = try FileModes.entries(under: path)
            for expected in [
                ".", "keys", "keys/signing.key", "keys/sealing.key", "keys/tls.key", "tls.crt", "store.sqlite",
                "node.json", "federation.json", "api.token",
            ] {
                #expect(entries[expected] != nil, "\(partner): \(expected) missing")
            }
            #expect(try FileModes.notOwnerOnly(under: path) == [], "\(partner)")
        }
        #expect(try FileModes.notOwnerOnly(under: out.path) == [], "the output directory render created")
    }

    @Test("a node in use keeps its store, WAL and shared-memory files owner-only")
    func storeFilesAreOwnerOnly() throws {
        let out = Self.scratch()
        defer { Self.cleanUp(out) }
        _ = try TopologyTests.demo().render(into: out, now: Date())
        let directory = NodeDirectory(path: out.appendingPathComponent("alpha").path)
        let node = try LocalNode.open(directory)
        #expect(node.madeOwnerOnly == [])
        _ = try node.put(PutRequest(collection: "reports", releasableTo: ["bravo"]), now: Date())
        // The store is still open: SQLite's -wal and -shm files exist beside it.
        let entries = try FileModes.entries(under: directory.url.path)
        #expect(entries["store.sqlite-wal"] != nil)
        #expect(entries["store.sqlite-shm"] != nil)
        #expect(try FileModes.notOwnerOnly(under: directory.url.path) == [])
    }

    @Test("opening a node directory that others may read makes it owner-only, and says what it changed once")
    func openRestrictsAnOldDirectory() throws {
        let root = Self.scratch()
        defer { Self.cleanUp(root) }
        let directory = NodeDirectory(path: root.appendingPathComponent("alpha").path)
        _ = try directory.initialize(name: "alpha", now: Date())
        try FileModes.openToEveryone(directory.url.path)
        #expect(try FileModes.notOwnerOnly(under: directory.url.path).contains("store.sqlite 644"))
        // A symbolic link to a file elsewhere: neither it nor its target is touched.
        let outside = root.appendingPathComponent("elsewhere.txt")
        try Data("not the node's".utf8).write(to: outside)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: outside.path)
        try FileManager.default.createSymbolicLink(
            atPath: directory.url.appendingPathComponent("link").path, withDestinationPath: outside.path)

        let node = try LocalNode.open(directory)
        #expect(
            Set(node.madeOwnerOnly).isSuperset(of: [
                ".", "keys", "keys/sealing.key", "keys/signing.key", "keys/tls.key", "node.json", "store.sqlite",
                "tls.crt",
            ]),
            "\(node.madeOwnerOnly)")
        #expect(!node.madeOwnerOnly.contains("link"))
        #expect(try FileModes.notOwnerOnly(under: directory.url.path) == [])
        #expect(try FileModes.entries(under: outside.path)["."]?.mode == 0o644)
        #expect(try LocalNode.open(directory).madeOwnerOnly == [], "the second open finds nothing to change")
    }

    @Test("owner-only writes: mode 0600 from the start, replacing atomically or refusing to overwrite")
    func ownerOnlyWrites() throws {
        let root = Self.scratch()
        defer { Self.cleanUp(root) }
        try OwnerOnlyFiles.createDirectory(at: root.appendingPathComponent("a/b"))
        #expect(try FileModes.notOwnerOnly(under: root.path) == [], "missing parents are created 0700 too")

        let file = root.appendingPathComponent("a/b/secret")
        try OwnerOnlyFiles.write(Data("one".utf8), to: file, replacing: false)
        do {
            try OwnerOnlyFiles.write(Data("two".utf8), to: file, replacing: false)
            Issue.record("an existing file was overwritten")
        } catch {
            #expect(error.code == .alreadyExists)
        }
        #expect(try Data(contentsOf: file) == Data("one".utf8))

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file.path)
        try OwnerOnlyFiles.write(Data("three".utf8), to: file, replacing: true)
        #expect(try Data(contentsOf: file) == Data("three".utf8))
        #expect(try FileModes.notOwnerOnly(under: root.path) == [], "the replacement is 0600")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: file.deletingLastPathComponent().path) == ["secret"])
    }
}
