import Foundation

/// Permission bits of a directory tree, for tests that node directories are owner-only.
public enum FileModes {
    /// Every directory and regular file under `path` (the directory itself included, as
    /// `.`) that is not owner-only, as `relative-path mode` (octal): directories must be
    /// exactly 0700, files 0600 or stricter. Empty when the whole tree is owner-only.
    public static func notOwnerOnly(under path: String) throws -> [String] {
        var found = [String]()
        for (relative, entry) in try entries(under: path) {
            let ok = entry.isDirectory ? entry.mode == 0o700 : entry.mode & ~0o600 == 0
            if !ok { found.append("\(relative) \(String(entry.mode, radix: 8))") }
        }
        return found.sorted()
    }

    /// One entry of a tree.
    public struct Entry: Sendable, Equatable {
        /// Whether it is a directory (otherwise a regular file).
        public var isDirectory: Bool
        /// Its permission bits, e.g. `0o600`.
        public var mode: Int
    }

    /// Directories and regular files under `path` by path relative to it (`.` for `path`
    /// itself); symbolic links and other kinds of file are left out.
    public static func entries(under path: String) throws -> [String: Entry] {
        var out = [String: Entry]()
        func add(_ full: String, as relative: String) throws {
            let attributes = try FileManager.default.attributesOfItem(atPath: full)
            let type = attributes[.type] as? FileAttributeType
            guard type == .typeDirectory || type == .typeRegular,
                let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue
            else { return }
            out[relative] = Entry(isDirectory: type == .typeDirectory, mode: mode)
        }
        try add(path, as: ".")
        let enumerator = FileManager.default.enumerator(atPath: path)
        while let relative = enumerator?.nextObject() as? String {
            try add((path as NSString).appendingPathComponent(relative), as: relative)
        }
        return out
    }

    /// Makes `path` and everything under it readable by everyone (directories 0755, files
    /// 0644), as an older Liaison left node directories.
    public static func openToEveryone(_ path: String) throws {
        for (relative, entry) in try entries(under: path) {
            let full = relative == "." ? path : (path as NSString).appendingPathComponent(relative)
            try FileManager.default.setAttributes(
                [.posixPermissions: entry.isDirectory ? 0o755 : 0o644], ofItemAtPath: full)
        }
    }
}
