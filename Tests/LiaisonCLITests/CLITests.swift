import Foundation
import GRDB
import LiaisonCore
import LiaisonTestSupport
import Testing

/// The CLI's public contract (names, flags, output, exit codes), run as real processes.
@Suite("liaison CLI")
struct CLITests {
    let cli: CommandRunner
    let root: URL

    init() throws {
        cli = try CommandRunner()
        root = try TestDirectory.make("cli-tests")
    }

    private func dir(_ name: String) -> String { root.appendingPathComponent(name).path }

    private func initNode(_ name: String = "alpha") async throws -> (dir: String, nodeID: String) {
        let path = dir(name)
        let outcome = try await cli.run(["init", "--name", name, "--dir", path, "--json"])
        try #require(outcome.status == 0, "\(outcome)")
        let json = try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any]
        return (path, try #require(json?["nodeID"] as? String))
    }

    static let demoTopology = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // LiaisonCLITests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // the package
        .appendingPathComponent("topology/demo.yaml")
        .path

    /// Renders topology/demo.yaml (alpha in EAST, bravo in EAST and WEST, charlie in WEST)
    /// with `liaison topology render`; returns each partner's directory and NodeID.
    private func renderDemo() async throws -> [String: (dir: String, nodeID: String)] {
        let outcome = try await cli.run(["topology", "render", Self.demoTopology, "--out", dir("demo"), "--json"])
        try #require(outcome.status == 0, "\(outcome)")
        let rows = try #require(try json(outcome) as? [[String: String]])
        var nodes = [String: (dir: String, nodeID: String)]()
        for row in rows {
            nodes[try #require(row["name"])] = (try #require(row["dir"]), try #require(row["nodeID"]))
        }
        return nodes
    }

    private func json(_ outcome: CommandRunner.Outcome) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8))
    }

    /// Every file under a directory with its bytes, to show a failed command wrote nothing.
    private func contents(of path: String) throws -> [String: Data] {
        var out = [String: Data]()
        let enumerator = FileManager.default.enumerator(atPath: path)
        while let relative = enumerator?.nextObject() as? String {
            let full = (path as NSString).appendingPathComponent(relative)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue {
                out[relative] = try Data(contentsOf: URL(fileURLWithPath: full))
            }
        }
        return out
    }

    /// One line on stderr that starts with "error:" and nothing on stdout.
    private func expectOneErrorLine(_ outcome: CommandRunner.Outcome, mentioning text: String) {
        let lines = outcome.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(outcome)")
        #expect(lines.first?.hasPrefix("error: ") == true, "\(outcome)")
        #expect(outcome.stderr.contains(text), "\(outcome)")
        #expect(outcome.stdout.isEmpty, "\(outcome)")
    }

    @Test("init creates an identity with owner-only keys and prints the NodeID and TLS fingerprint")
    func initCreatesIdentity() async throws {
        let path = dir("alpha")
        let outcome = try await cli.run(["init", "--name", "alpha", "--dir", path, "--json"])
        #expect(outcome.status == 0, "\(outcome)")
        let output = try #require(try json(outcome) as? [String: String])
        let nodeID = try #require(output["nodeID"])
        #expect(NodeID(nodeID) != nil)
        #expect(nodeID.split(separator: "-").count == 13)
        #expect(output["tlsFingerprint"]?.count == 64)
        #expect(output["name"] == "alpha")
        for key in ["signing.key", "sealing.key", "tls.key"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: "\(path)/keys/\(key)")
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(key)")
        }
        let keysAttributes = try FileManager.default.attributesOfItem(atPath: "\(path)/keys")
        #expect((keysAttributes[.posixPermissions] as? Int) == 0o700)
        let human = try await cli.run(["init", "--name", "bravo", "--dir", dir("bravo")])
        #expect(human.status == 0)
        #expect(human.stdout.contains("NodeID"))
        #expect(human.stdout.contains("sha256:"))
    }

    @Test("init and put leave the node directory owner-only: directories 0700, every file 0600 or stricter")
    func nodeDirectoryIsOwnerOnly() async throws {
        let (path, _) = try await initNode()
        #expect(try FileModes.notOwnerOnly(under: path) == [])
        let put = try await cli.run(["put", "--dir", path, "--collection", "reports", "--field", "title=in clear"])
        #expect(put.status == 0, "\(put)")
        let entries = try FileModes.entries(under: path)
        for expected in ["store.sqlite", "node.json", "tls.crt", "keys/signing.key"] {
            #expect(entries[expected] != nil, "\(expected) missing")
        }
        // store.sqlite-wal and -shm, when SQLite leaves them, are covered too.
        #expect(try FileModes.notOwnerOnly(under: path) == [])
    }

    @Test("a node directory open to other users is made owner-only with one warning, once")
    func looseDirectoryIsRestricted() async throws {
        let (path, _) = try await initNode()
        try FileModes.openToEveryone(path)
        let first = try await cli.run(["list", "--dir", path])
        #expect(first.status == 0, "\(first)")
        let lines = first.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(first)")
        #expect(lines.first?.hasPrefix("warning: \(path) was open to other users; made it owner-only") == true)
        #expect(try FileModes.notOwnerOnly(under: path) == [])
        let second = try await cli.run(["list", "--dir", path])
        #expect(second.status == 0, "\(second)")
        #expect(second.stderr.isEmpty, "\(second)")
    }

    @Test("init refuses to overwrite an existing identity and changes nothing")
    func initRefusesOverwrite() async throws {
        let (path, _) = try await initNode()
        let before = try contents(of: path)
        let outcome = try await cli.run(["init", "--name", "other", "--dir", path])
        #expect(outcome.status == 73)
        expectOneErrorLine(outcome, mentioning: "refusing to overwrite")
        #expect(try contents(of: path) == before)
    }

    @Test("put, get and list --json show the item as it was put")
    func putGetList() async throws {
        let (path, nodeID) = try await #require(try renderDemo()["alpha"])
        let put = try await cli.run([
            "put", "--dir", path, "--collection", "reports", "--classification", "secret", "--rel-to", "bravo,charlie",
            "--rel-to", "WEST", "--orcon", "--tag", "apt29", "--tag", "phishing", "--field",
            "title=Spear phishing wave",
            "--field-json", "score=7", "--field", "note=a=b", "--expires", "2099-01-31T00:00:00Z",
        ])
        #expect(put.status == 0, "\(put)")
        let id = put.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(ItemID(id) != nil, "\(put)")

        let get = try await cli.run(["get", "--dir", path, id, "--json"])
        #expect(get.status == 0, "\(get)")
        let item = try #require(try json(get) as? [String: Any])
        #expect(item["id"] as? String == id)
        #expect(item["collection"] as? String == "reports")
        #expect(item["classification"] as? String == "SECRET")
        #expect(item["releasableTo"] as? [String] == ["WEST", "bravo", "charlie"])
        #expect(item["orcon"] as? Bool == true)
        #expect(item["tags"] as? [String] == ["apt29", "phishing"])
        #expect(item["originator"] as? String == nodeID)
        #expect(item["expiresAt"] as? String == "2099-01-31T00:00:00.000Z")
        let fields = try #require(item["fields"] as? [String: Any])
        #expect(fields["title"] as? String == "Spear phishing wave")
        #expect(fields["score"] as? Int == 7)
        #expect(fields["note"] as? String == "a=b")
        #expect((item["digest"] as? String)?.count == 64)

        let second = try await cli.run(["put", "--dir", path, "--collection", "indicators", "--tag", "apt29"])
        #expect(second.status == 0, "\(second)")
        let list = try await cli.run(["list", "--dir", path, "--json"])
        #expect(list.status == 0)
        let all = try #require(try json(list) as? [[String: Any]])
        #expect(all.count == 2)
        #expect(all.first?["collection"] as? String == "indicators")
        let reports = try #require(
            try json(try await cli.run(["list", "--dir", path, "--collection", "reports", "--json"]))
                as? [[String: Any]])
        #expect(reports.map { $0["id"] as? String } == [id])
        let phishing = try #require(
            try json(try await cli.run(["list", "--dir", path, "--tag", "phishing", "--json"])) as? [[String: Any]])
        #expect(phishing.count == 1)

        let human = try await cli.run(["get", "--dir", path, id])
        #expect(human.stdout.contains("ORCON"))
        #expect(human.stdout.contains("title = \"Spear phishing wave\""))
    }

    @Test(
        "bad put input gets one clear error line, a usage exit code and writes nothing",
        arguments: [
            (["--classification", "COSMIC"], "unknown classification"),
            (["--field", "noequals"], "name=value"),
            (["--field-json", "score={"], "not JSON"),
            (["--expires", "next tuesday"], "not ISO 8601"),
            (["--expires", "2001-01-01T00:00:00Z"], "not in the future"),
            (["--tag", "bad tag"], "invalid tag"),
            (["--tag", "x", "--tag", "x"], "twice"),
            (["--field", "bad name=1"], "invalid field name"),
            (["--rel-to", "a,,b"], "invalid REL TO"),
            (["--field", "source=x", "--withhold", "source"], "use FIELD=PARTNER"),
            (["--field", "source=x", "--withhold", "source="], "name at least one partner"),
            (["--field", "source=x", "--withhold", "title=ALL"], "withheld but not given"),
            (["--field", "source=x", "--withhold", "source=bravo"], "unknown partner to withhold 'source' from"),
        ]
    )
    func badPutInput(extra: [String], message: String) async throws {
        let (path, _) = try await initNode()
        let before = try contents(of: path)
        let outcome = try await cli.run(["put", "--dir", path, "--collection", "reports"] + extra)
        #expect(outcome.status == 64, "\(outcome)")
        expectOneErrorLine(outcome, mentioning: message)
        #expect(try contents(of: path) == before)
    }

    @Test(
        "REL TO naming no partner or group of the federation is refused with the known names, and writes nothing",
        arguments: [
            (["--rel-to", "delta"], "unknown REL TO 'delta': known partners alpha, bravo, charlie; groups EAST, WEST"),
            (
                ["--rel-to", "bravo,NORTH"],
                "unknown REL TO 'NORTH': known partners alpha, bravo, charlie; groups EAST, WEST"
            ),
            (["--rel-to", "EAST", "--rel-to", "all"], "unknown REL TO 'all'"),
        ]
    )
    func unknownReleasability(extra: [String], message: String) async throws {
        let path = try await #require(try renderDemo()["alpha"]).dir
        let before = try contents(of: path)
        let outcome = try await cli.run(["put", "--dir", path, "--collection", "reports"] + extra)
        #expect(outcome.status == 64, "\(outcome)")
        expectOneErrorLine(outcome, mentioning: message)
        #expect(try contents(of: path) == before)
    }

    @Test("REL TO may name a partner, a group, the node itself or ALL")
    func knownReleasability() async throws {
        let path = try await #require(try renderDemo()["alpha"]).dir
        for relTo in ["bravo", "EAST", "alpha", "ALL", "charlie,WEST"] {
            let put = try await cli.run(["put", "--dir", path, "--collection", "reports", "--rel-to", relTo])
            #expect(put.status == 0, "\(relTo): \(put)")
            let id = put.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let item = try json(try await cli.run(["get", "--dir", path, id, "--json"])) as? [String: Any]
            #expect(item?["releasableTo"] as? [String] == relTo.split(separator: ",").map(String.init).sorted())
        }
    }

    @Test("a node without a federation accepts only ALL and its own name in REL TO, and says how to get one")
    func releasabilityWithoutFederation() async throws {
        let (path, _) = try await initNode()
        let before = try contents(of: path)
        let refused = try await cli.run(["put", "--dir", path, "--collection", "reports", "--rel-to", "bravo"])
        #expect(refused.status == 64, "\(refused)")
        expectOneErrorLine(refused, mentioning: "unknown REL TO 'bravo': node alpha has no federation yet")
        #expect(refused.stderr.contains("liaison topology render"), "\(refused)")
        #expect(try contents(of: path) == before)
        for relTo in ["ALL", "alpha"] {
            let put = try await cli.run(["put", "--dir", path, "--collection", "reports", "--rel-to", relTo])
            #expect(put.status == 0, "\(relTo): \(put)")
        }
    }

    @Test("topology render writes owner-only node directories")
    func renderIsOwnerOnly() async throws {
        let nodes = try await renderDemo()
        #expect(nodes.keys.sorted() == ["alpha", "bravo", "charlie"])
        #expect(try FileModes.notOwnerOnly(under: dir("demo")) == [])
    }

    @Test("an unknown flag is a usage error")
    func unknownFlag() async throws {
        let (path, _) = try await initNode()
        let outcome = try await cli.run(["put", "--dir", path, "--collection", "reports", "--colour", "red"])
        #expect(outcome.status == 64)
        #expect(outcome.stderr.contains("Unknown option '--colour'"))
    }

    @Test("a missing node directory is reported with what to do, and not created")
    func missingDirectory() async throws {
        let path = dir("nowhere")
        for arguments in [
            ["list", "--dir", path], ["put", "--dir", path, "--collection", "r"], ["audit", "verify", "--dir", path],
        ] {
            let outcome = try await cli.run(arguments)
            #expect(outcome.status == 66, "\(arguments)")
            expectOneErrorLine(outcome, mentioning: "liaison init")
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("a directory that is not a node is refused")
    func foreignDirectory() async throws {
        let path = dir("photos")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try Data("holiday".utf8).write(to: URL(fileURLWithPath: "\(path)/beach.jpg"))
        let outcome = try await cli.run(["list", "--dir", path])
        #expect(outcome.status == 66)
        expectOneErrorLine(outcome, mentioning: "not a Liaison node directory")
        #expect(try contents(of: path).keys.sorted() == ["beach.jpg"])
    }

    @Test("a corrupt store file is refused with one line and left as it is")
    func corruptStore() async throws {
        let (path, _) = try await initNode()
        let garbage = Data(repeating: 0x5A, count: 8192)
        try FileManager.default.removeItem(atPath: "\(path)/store.sqlite")
        try garbage.write(to: URL(fileURLWithPath: "\(path)/store.sqlite"))
        let outcome = try await cli.run(["list", "--dir", path])
        #expect(outcome.status == 65)
        expectOneErrorLine(outcome, mentioning: "not a Liaison store")
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(path)/store.sqlite")) == garbage)
    }

    @Test("get reports an unknown or malformed id")
    func getErrors() async throws {
        let (path, _) = try await initNode()
        let unknown = try await cli.run(["get", "--dir", path, "00000000-0000-0000-0000-000000000000"])
        #expect(unknown.status == 66)
        expectOneErrorLine(unknown, mentioning: "no item")
        let malformed = try await cli.run(["get", "--dir", path, "not-an-id"])
        #expect(malformed.status == 64)
        expectOneErrorLine(malformed, mentioning: "not an item id")
    }

    @Test("audit verify counts an intact log and names the first bad entry of a tampered one")
    func auditVerify() async throws {
        let (path, _) = try await initNode()
        for index in 0..<3 {
            #expect(
                try await cli.run(["put", "--dir", path, "--collection", "reports", "--field", "n=\(index)"]).status
                    == 0)
        }
        let intact = try await cli.run(["audit", "verify", "--dir", path])
        #expect(intact.status == 0, "\(intact)")
        #expect(intact.stdout.contains("intact: 4 entries"))

        let queue = try DatabaseQueue(path: "\(path)/store.sqlite", configuration: .waitingForLocks)
        try await queue.write { try $0.execute(sql: "UPDATE custody SET detail = 'nothing to see' WHERE seq = 3") }
        try queue.close()
        let tampered = try await cli.run(["audit", "verify", "--dir", path])
        #expect(tampered.status == 65)
        expectOneErrorLine(tampered, mentioning: "first bad entry 3")
    }

    @Test("audit trace finds the custody entry that holds an op")
    func auditTrace() async throws {
        let (path, _) = try await initNode()
        let put = try await cli.run(["put", "--dir", path, "--collection", "reports", "--json"])
        let opID = try #require((try json(put) as? [String: String])?["opID"])
        let trace = try await cli.run(["audit", "trace", "--dir", path, opID, "--json"])
        #expect(trace.status == 0, "\(trace)")
        let entries = try #require(try json(trace) as? [[String: Any]])
        #expect(entries.count == 1)
        #expect(entries.first?["kind"] as? String == "ops.created")
    }
}

extension Configuration {
    /// A raw connection to a store a node's checkpointer may be copying back at that moment:
    /// it waits for the lock, as the store's own connections do.
    fileprivate static var waitingForLocks: Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        return configuration
    }
}
