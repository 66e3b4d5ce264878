import Foundation
import LiaisonTestSupport
import Testing

/// The test processes' scratch directories (`TestDirectory`): a run leaves at most its own.
@Suite("Test directories")
struct TestDirectoryTests {
    @Test("the directories of ended test processes are removed; this process's, running ones' and others are kept")
    func endedProcessesDirectoriesRemoved() throws {
        let base = try TestDirectory.make("sweep")
        let ended = Process()
        ended.executableURL = URL(fileURLWithPath: "/bin/true")
        try ended.run()
        ended.waitUntilExit()
        let names = [
            "liaison-tests-\(ended.processIdentifier)", "liaison-tests-\(getpid())", "liaison-tests-1",
            "liaison-tests-notapid", "other",
        ]
        for name in names {
            try FileManager.default.createDirectory(
                at: base.appendingPathComponent(name).appendingPathComponent("store"), withIntermediateDirectories: true
            )
        }
        TestDirectory.removeEnded(under: base)
        let left = try FileManager.default.contentsOfDirectory(atPath: base.path).sorted()
        #expect(left == Array(names.dropFirst()).sorted())
    }
}
