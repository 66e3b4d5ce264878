import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode

/// `liaison import FILE`: many items at once, from JSON lines.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Create many items from a file of JSON lines, in batches.",
        discussion: """
            Each non-blank line is one item, as POST /v1/items takes it: {"collection": …, \
            "classification": …, "relTo": […], "orcon": …, "caveats": […], "expiresAt": …, \
            "tags": […], "fields": {…}, "annotations": …, "withhold": {…}}. Every line is read and \
            checked against the node's federation before anything is written; a bad line is \
            reported by its number and nothing is imported. Items are then committed in batches \
            (one transaction and one signature per batch): a batch the node refuses is not \
            written at all, and the batches before it stay. Through the node's API when it \
            runs, on its store when it is stopped. FILE - reads standard input.
            """
    )

    @OptionGroup var directory: DirectoryOption

    @Argument(help: "The file of JSON lines, or - for standard input.")
    var file: String

    @Option(help: "Items per batch (1 to \(LocalNode.maxItemsPerPut)).")
    var batch = 1000

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @Option(help: "For a STIX bundle: the collection its objects go to.")
    var collection = "stix"

    @Flag(help: "For a STIX bundle: take in the objects that pass, naming the refused ones.")
    var skipRefused = false

    private struct Summary: Encodable {
        var imported: Int
        var batches: Int
        var seconds: Double
        var itemsPerSecond: Double
    }

    func run() async throws {
        try await reportingErrorsAsync {
            guard (1...LocalNode.maxItemsPerPut).contains(batch) else {
                throw LiaisonError(.invalidArgument, "--batch \(batch): use 1 to \(LocalNode.maxItemsPerPut)")
            }
            let nodeDirectory = NodeDirectory(path: directory.dir)
            let data = try ImportFile.data(file)
            if let objects = try STIXBundle.objects(in: data) {
                return try await importBundle(objects, into: nodeDirectory)
            }
            let lines = try ImportFile.lines(data, path: file)
            let parsed = ImportFile.parse(
                lines, config: try nodeDirectory.loadConfig(),
                federation: try FederationConfig.loadIfPresent(from: nodeDirectory), now: Date())
            if !parsed.bad.isEmpty {
                for bad in parsed.bad.prefix(20) { printError("line \(bad.line): \(bad.message)") }
                if parsed.bad.count > 20 { printError("… and \(parsed.bad.count - 20) more bad lines") }
                throw LiaisonError(
                    .invalidArgument,
                    "\(parsed.bad.count) of \(parsed.items.count + parsed.bad.count) lines refused; nothing imported")
            }
            let progress = Progress(total: parsed.items.count, unit: "items")
            let started = ContinuousClock.now
            var imported = 0
            var batches = 0
            try await onNode(
                nodeDirectory,
                running: { client throws(LiaisonError) in
                    for start in stride(from: 0, to: parsed.items.count, by: batch) {
                        let chunk = parsed.items[start..<min(parsed.items.count, start + batch)]
                        do throws(LiaisonError) {
                            _ = try await client.putMany(chunk.map(\.body))
                        } catch {
                            throw refusal(error, chunk: chunk, imported: imported, progress: progress)
                        }
                        imported += chunk.count
                        batches += 1
                        progress.update(imported)
                    }
                },
                stopped: { node throws(LiaisonError) in
                    for start in stride(from: 0, to: parsed.items.count, by: batch) {
                        let chunk = parsed.items[start..<min(parsed.items.count, start + batch)]
                        do throws(LiaisonError) {
                            _ = try node.putMany(chunk.map(\.request), now: Date())
                        } catch {
                            throw refusal(error, chunk: chunk, imported: imported, progress: progress)
                        }
                        imported += chunk.count
                        batches += 1
                        progress.update(imported)
                    }
                })
            progress.finish()
            let seconds = (ContinuousClock.now - started).seconds
            let rate = seconds > 0 ? Double(imported) / seconds : 0
            if json {
                try printJSON(Summary(imported: imported, batches: batches, seconds: seconds, itemsPerSecond: rate))
            } else {
                print(
                    "imported \(imported) items in \(batches) batches, \(String(format: "%.1f", seconds)) s "
                        + "(\(Int(rate.rounded())) items/s)")
            }
        }
    }

    private struct BundleSummary: Encodable {
        var objects: Int
        var collection: String
        var tally: STIXTally
        var seconds: Double
    }

    /// A STIX 2.1 bundle (docs/stix.md): every object checked first (markings it cannot
    /// honour, names the federation does not know); any refused and nothing is taken in,
    /// unless --skip-refused. Then in batches, each object judged on its own by the node.
    private func importBundle(_ values: [JSONValue], into nodeDirectory: NodeDirectory) async throws {
        let intake = STIXIntake(
            directory: nodeDirectory, collection: collection, classification: nil, releasableTo: nil, batch: batch)
        let refused = try intake.refusals(values)
        var taken = values
        if !refused.isEmpty {
            for refusal in refused.prefix(20) { printError(refusal.message) }
            if refused.count > 20 { printError("… and \(refused.count - 20) more refused objects") }
            guard skipRefused else {
                throw LiaisonError(
                    .invalidArgument,
                    "\(refused.count) of \(values.count) objects refused; nothing imported (--skip-refused takes the others)"
                )
            }
            let ids = Set(refused.map(\.id))
            taken = values.filter { STIXIntake.id(of: $0).map { !ids.contains($0) } ?? false }
        }
        let progress = Progress(total: taken.count, unit: "objects")
        let started = ContinuousClock.now
        let tally = STIXIntake.tally(try await intake.run(taken, progress: progress))
        progress.finish()
        let seconds = (ContinuousClock.now - started).seconds
        if json {
            try printJSON(BundleSummary(objects: values.count, collection: collection, tally: tally, seconds: seconds))
        } else {
            print(
                "imported a bundle of \(values.count) objects into \(collection): \(tally.description)"
                    + (refused.isEmpty ? "" : "; \(refused.count) refused before (named above)")
                    + ", \(String(format: "%.1f", seconds)) s")
        }
        if tally.refused > 0 {
            throw LiaisonError(
                .invalidArgument, "\(tally.refused) objects refused by the node (named above); the others were taken in"
            )
        }
    }

    /// The error for a refused batch: each refused line on stderr, then one line saying what
    /// was written before it.
    private func refusal(
        _ error: LiaisonError, chunk: ArraySlice<ImportFile.Item>, imported: Int, progress: Progress
    ) -> LiaisonError {
        progress.finish()
        let first = chunk.first!.line
        let last = chunk.last!.line
        guard let refused = error.cause as? BulkPutRefusal else {
            return LiaisonError(
                error.code,
                "the batch of lines \(first)–\(last) failed, nothing of it written; \(imported) items imported "
                    + "before it: \(error.message)")
        }
        let lines = Array(chunk)
        for failure in refused.failures.prefix(20) where lines.indices.contains(failure.index) {
            printError("line \(lines[failure.index].line): \(failure.message)")
        }
        return LiaisonError(
            .invalidArgument,
            "the node refused \(refused.failures.count) lines of the batch \(first)–\(last); nothing of it written, "
                + "\(imported) items imported before it")
    }
}

/// Reading and checking an import file.
enum ImportFile {
    /// One good line.
    struct Item: Sendable {
        /// Its number in the file, from 1.
        var line: Int
        var body: PutItemBody
        var request: PutRequest
    }

    /// The file's bytes (`-` reads standard input).
    static func data(_ path: String) throws(LiaisonError) -> Data {
        let data: Data
        if path == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let read = FileManager.default.contents(atPath: path) else {
                throw LiaisonError(.notFound, "cannot read \(path); give a file of JSON lines, or - for standard input")
            }
            data = read
        }
        return data
    }

    /// The lines of a file's bytes.
    static func lines(_ data: Data, path: String) throws(LiaisonError) -> [Substring] {
        guard let text = String(data: data, encoding: .utf8) else {
            throw LiaisonError(.invalidArgument, "\(path) is not UTF-8 text; give a file of JSON lines")
        }
        return text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// Every line checked: as JSON, as an item, and its markings against the federation.
    static func parse(
        _ lines: [Substring], config: NodeConfig, federation: FederationConfig?, now: Date
    ) -> (items: [Item], bad: [(line: Int, message: String)]) {
        var items = [Item]()
        var bad = [(line: Int, message: String)]()
        let decoder = JSONDecoder()
        for (index, text) in lines.enumerated() {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            let body: PutItemBody
            do {
                body = try decoder.decode(PutItemBody.self, from: Data(trimmed.utf8))
            } catch {
                bad.append((index + 1, "not an item: \(DecodingErrorText.describe(error))"))
                continue
            }
            do {
                let request = try body.request()
                _ = try request.validatedMarkings(config: config, federation: federation, now: now)
                items.append(Item(line: index + 1, body: body, request: request))
            } catch {
                bad.append((index + 1, error.message))
            }
        }
        return (items, bad)
    }
}
