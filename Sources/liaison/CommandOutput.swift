import ArgumentParser
import Foundation
import LiaisonCore

/// Exit codes of the CLI (sysexits.h where one fits).
enum ExitStatus {
    /// Something failed that is not one of the cases below.
    static let failure: Int32 = 1
    /// A flag or argument is malformed (ArgumentParser's own usage errors use 64 too).
    static let usage: Int32 = 64
    /// Stored data is damaged or was tampered with.
    static let dataError: Int32 = 65
    /// The node directory, store or item does not exist.
    static let notFound: Int32 = 66
    /// Creating would overwrite something.
    static let cannotCreate: Int32 = 73
    /// This node may not do it (only an item's originator deletes, re-marks or recalls it).
    static let noPermission: Int32 = 77
    /// A running node or its API could not be reached.
    static let unavailable: Int32 = 69

    static func code(for error: LiaisonError) -> Int32 {
        switch error.code {
        case .invalidArgument, .conflict: usage
        case .forbidden: noPermission
        case .corrupt, .tampered: dataError
        case .notFound: notFound
        case .alreadyExists: cannotCreate
        case .io: unavailable
        default: failure
        }
    }
}

/// Runs a command body; a `LiaisonError` becomes one line on stderr and its exit code.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as LiaisonError {
        printError(error.message)
        throw ExitCode(ExitStatus.code(for: error))
    }
}

/// The async form of `reportingErrors`.
func reportingErrorsAsync(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as LiaisonError {
        printError(error.message)
        throw ExitCode(ExitStatus.code(for: error))
    }
}

/// One line on stderr, prefixed `error: `.
func printError(_ message: String) {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
}

/// One line on stderr, prefixed `warning: `.
func printWarning(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
}

/// Pretty, key-sorted JSON on stdout.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Milliseconds since the Unix epoch, now.
func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

/// The `--dir` option every node command takes.
struct DirectoryOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The node directory.", valueName: "dir"))
    var dir: String
}

/// Progress of long work on standard error: a bar redrawn in place when stderr is a
/// terminal, nothing otherwise (the command prints its summary line either way). Safe to
/// update from concurrent tasks.
final class Progress: @unchecked Sendable {
    private let total: Int
    private let unit: String
    private let started = ContinuousClock.now
    private let terminal = isatty(STDERR_FILENO) == 1
    private let lock = NSLock()
    private var drawn = false

    init(total: Int, unit: String) {
        self.total = total
        self.unit = unit
    }

    func update(_ done: Int) {
        guard terminal, total > 0 else { return }
        let width = 30
        let filled = min(width, done * width / total)
        let seconds = (ContinuousClock.now - started).seconds
        let rate = seconds > 0 ? Int((Double(done) / seconds).rounded()) : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        lock.withLock {
            FileHandle.standardError.write(Data("\r[\(bar)] \(done)/\(total) \(unit), \(rate)/s ".utf8))
            drawn = true
        }
    }

    func finish() {
        lock.withLock {
            guard drawn else { return }
            FileHandle.standardError.write(Data("\n".utf8))
            drawn = false
        }
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
