// The libFuzzer entry points every harness shares. Each harness file defines `Harness`, with
// `run(_:)` (one input: return normally for a refused or accepted input, `FuzzCheck.fail` for
// a broken promise) and `seeds()` (valid inputs made by the project's own code).
import Foundation

/// What a harness found wrong: the decoder broke one of its promises. Aborts, so libFuzzer
/// records the input as a crash.
enum FuzzCheck {
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("fuzz check failed: \(message)\n".utf8))
        abort()
    }

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fail(message()) }
    }
}

/// One fuzz input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = start.map { Data(bytes: $0, count: count) } ?? Data()
    Harness.run(input)
    return 0
}

/// With `LIAISON_FUZZ_WRITE_SEEDS=DIR`, writes the harness's seed inputs to DIR and exits
/// instead of fuzzing (`scripts/fuzz.sh --write-seeds`).
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    guard let directory = ProcessInfo.processInfo.environment["LIAISON_FUZZ_WRITE_SEEDS"] else { return 0 }
    do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let seeds = try Harness.seeds()
        for (name, bytes) in seeds {
            try bytes.write(to: URL(fileURLWithPath: directory).appendingPathComponent(name))
        }
        print("wrote \(seeds.count) seeds to \(directory)")
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("writing seeds failed: \(error)\n".utf8))
        exit(1)
    }
}
