public import Foundation
public import LiaisonCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Directories and files that only their owner may use: directories mode 0700, files mode
/// 0600, from the moment they exist, whatever the process umask. A node directory holds the
/// node's private keys, its API token and every item in clear, so everything in it is made
/// this way (docs/decisions.md).
public enum OwnerOnlyFiles {
    /// Creates the directory `url` and any missing parent with mode 0700. When `url`
    /// already exists, its group and other permissions are removed; parents that exist are
    /// left as they are.
    public static func createDirectory(at url: URL) throws(LiaisonError) {
        let url = url.standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            try createMissing(url)
            return
        }
        guard isDirectory.boolValue else {
            throw LiaisonError(.alreadyExists, "\(url.path) is a file, not a directory")
        }
        _ = try restrict(url, recursive: false)
    }

    /// Creates `url` and the missing directories above it with mode 0700; existing ones are
    /// untouched.
    private static func createMissing(_ url: URL) throws(LiaisonError) {
        guard !FileManager.default.fileExists(atPath: url.path) else { return }
        let parent = url.deletingLastPathComponent()
        if parent.path != url.path { try createMissing(parent) }
        guard mkdir(url.path, 0o700) == 0 || errno == EEXIST else {
            throw LiaisonError(.io, "cannot create the directory \(url.path): \(describe(errno))")
        }
    }

    /// Writes `data` to the file `url` with mode 0600. With `replacing`, the data goes to a
    /// temporary file beside it that is then renamed over `url`, so readers see the old
    /// content or the new, never a part. Without it, an existing file is refused
    /// (`alreadyExists`) and nothing is changed.
    public static func write(_ data: Data, to url: URL, replacing: Bool) throws(LiaisonError) {
        let path = url.path
        if !replacing {
            try create(path, with: data)
            return
        }
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(UInt64.random(in: 0...UInt64.max)).tmp").path
        try create(temporary, with: data)
        guard rename(temporary, path) == 0 else {
            let failure = errno
            unlink(temporary)
            throw LiaisonError(.io, "cannot write \(path): \(describe(failure))")
        }
    }

    /// Creates `path` (which must not exist) with mode 0600 and writes `data` into it; on a
    /// failure the partial file is removed.
    private static func create(_ path: String, with data: Data) throws(LiaisonError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let failure = errno
            if failure == EEXIST { throw LiaisonError(.alreadyExists, "\(path) exists; refusing to overwrite it") }
            throw LiaisonError(.io, "cannot create \(path): \(describe(failure))")
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: false)
        var failure: (any Error)?
        do { try handle.write(contentsOf: data) } catch { failure = error }
        do { try handle.close() } catch { failure = failure ?? error }
        if let failure {
            unlink(path)
            throw LiaisonError(.io, "cannot write \(path): \(failure)", cause: failure)
        }
    }

    /// Removes group and other permissions from `url` and, with `recursive`, from everything
    /// under it (symbolic links are neither changed nor followed). Returns the paths it
    /// changed, relative to `url` (`.` for `url` itself), sorted; empty when everything was
    /// owner-only already.
    public static func restrict(_ url: URL, recursive: Bool = true) throws(LiaisonError) -> [String] {
        var changed = [String]()
        try restrict(url.standardizedFileURL.path, relative: ".", recursive: recursive, changed: &changed)
        return changed.sorted()
    }

    private static func restrict(
        _ path: String, relative: String, recursive: Bool, changed: inout [String]
    ) throws(LiaisonError) {
        let attributes: [FileAttributeKey: Any]
        do {
            // Reads the entry itself (lstat): a symbolic link is seen as a link.
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch CocoaError.fileReadNoSuchFile, CocoaError.fileNoSuchFile {
            // Gone since it was listed (a SQLite -shm or -wal file closing): nothing to restrict.
            return
        } catch {
            throw LiaisonError(.io, "cannot read the permissions of \(path)", cause: error)
        }
        let type = attributes[.type] as? FileAttributeType
        guard type == .typeDirectory || type == .typeRegular,
            let mode = (attributes[.posixPermissions] as? NSNumber)?.uint16Value
        else { return }
        if mode & 0o077 != 0 {
            guard chmod(path, mode_t(mode & ~0o077)) == 0 else {
                throw LiaisonError(
                    .io,
                    "\(path) is open to other users and cannot be made owner-only (\(describe(errno))); run 'chmod -R go-rwx \(path)' as its owner"
                )
            }
            changed.append(relative)
        }
        guard recursive, type == .typeDirectory else { return }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw LiaisonError(.io, "cannot list \(path)", cause: error)
        }
        for entry in entries {
            try restrict(
                (path as NSString).appendingPathComponent(entry),
                relative: relative == "." ? entry : "\(relative)/\(entry)",
                recursive: true,
                changed: &changed
            )
        }
    }

    private static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }
}
