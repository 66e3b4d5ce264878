public import Foundation
import Synchronization

/// Runs the built `liaison` executable as a real process, for tests of the CLI contract.
public struct CommandRunner: Sendable {
    /// What a finished command left.
    public struct Outcome: Sendable, CustomStringConvertible {
        /// Exit status.
        public var status: Int32
        /// Standard output.
        public var stdout: String
        /// Standard error.
        public var stderr: String

        public var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
    }

    /// The executable.
    public let executable: URL

    /// Finds `liaison` beside the test bundle (SwiftPM puts both in the same build
    /// folder); `LIAISON_BIN` overrides.
    public init() throws {
        if let path = ProcessInfo.processInfo.environment["LIAISON_BIN"] {
            executable = URL(fileURLWithPath: path)
            return
        }
        var folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = folder.appendingPathComponent("liaison")
            if FileManager.default.isExecutableFile(atPath: candidate.path) {
                executable = candidate
                return
            }
            folder = folder.deletingLastPathComponent()
        }
        throw CocoaError(
            .fileNoSuchFile,
            userInfo: [NSLocalizedDescriptionKey: "liaison executable not found; build it or set LIAISON_BIN"])
    }

    /// Runs `liaison` with `arguments` and waits for it to exit.
    ///
    /// The child is run and waited for on a thread of its own, never on the Swift
    /// concurrency pool: that pool has one thread per core, and a drill or a simulator replay
    /// can take minutes, so two such waits on a 2-core machine stalled every other test in
    /// the process (their deadlines passed while they could not run).
    public func run(_ arguments: [String]) async throws -> Outcome {
        let executable = executable
        return try await Self.offPool { try Self.runBlocking(executable, arguments) }
    }

    /// Runs blocking work (a child process and the wait for it) on a thread of its own and
    /// awaits its result, so that the Swift concurrency pool keeps its threads for the tests.
    public static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    private static func runBlocking(_ executable: URL, _ arguments: [String]) throws -> Outcome {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes to the end before waiting, so a large output cannot block the child.
        let errData = Mutex(Data())
        let errDone = DispatchSemaphore(value: 0)
        let reader = Thread {
            let data = err.fileHandleForReading.readDataToEndOfFile()
            errData.withLock { $0 = data }
            errDone.signal()
        }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.withLock { $0 }, as: UTF8.self)
        )
    }
}

extension CommandRunner {
    /// Pids of processes whose executable is named `name` and whose arguments include
    /// `argument` and this test run's temporary directory (from /proc).
    public static func processes(named name: String, withArgument argument: String) throws -> [Int32] {
        let temporary = FileManager.default.temporaryDirectory.path
        var found = [Int32]()
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc") {
            guard let pid = Int32(entry), pid != getpid(),
                let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
            else { continue }
            let arguments = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let executable = arguments.first, executable.hasSuffix("/\(name)") || executable == name,
                arguments.contains(argument),
                arguments.contains(where: { $0.contains(temporary) && $0.contains("liaison-demo-") })
            else { continue }
            found.append(pid)
        }
        return found
    }
}
