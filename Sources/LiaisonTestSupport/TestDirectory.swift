public import Foundation

/// Unique temporary directories for tests, all under one directory per test process
/// (`liaison-tests-PID` in the system's temporary directory), so a run leaves at most one
/// behind however its tests end: at first use, the directories of test processes no longer
/// running are removed.
public enum TestDirectory {
    private static let prefix = "liaison-tests-"

    private static let root: URL = {
        let base = FileManager.default.temporaryDirectory
        removeEnded(under: base)
        let root = base.appendingPathComponent("\(prefix)\(getpid())")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        return root
    }()

    /// Removes the directories under `base` of test processes no longer running
    /// (`liaison-tests-PID` whose process `kill` with no signal does not find); keeps this
    /// process's, those of processes still running, and anything else.
    public static func removeEnded(under base: URL) {
        let files = FileManager.default
        for name in (try? files.contentsOfDirectory(atPath: base.path)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid > 0, pid != getpid(), kill(pid, 0) != 0,
                errno == ESRCH
            else { continue }
            try? files.removeItem(at: base.appendingPathComponent(name))
        }
    }

    /// A new, empty directory named `label` and a unique suffix.
    public static func make(_ label: String) throws -> URL {
        let url = path(label)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A unique path named `label` and a unique suffix, not created (its parent is).
    public static func path(_ label: String) -> URL {
        root.appendingPathComponent("\(label)-\(UUID().uuidString.prefix(8))")
    }
}
