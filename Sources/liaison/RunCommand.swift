import ArgumentParser
import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode
import Logging
import ServiceLifecycle
import UnixSignals

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the node: replicate with its neighbours over pinned mutual TLS and serve its API.",
        discussion: "Stops cleanly on SIGTERM or SIGINT. The directory must come from 'liaison topology render'."
    )

    @OptionGroup var directory: DirectoryOption

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        try await reportingErrorsAsync {
            guard let level = Logger.Level(rawValue: logLevel) else {
                throw LiaisonError(
                    .invalidArgument,
                    "--log-level '\(logLevel)': use trace, debug, info, notice, warning, error or critical")
            }
            let nodeDirectory = NodeDirectory(path: directory.dir)
            let node = try LocalNode.openForCommand(nodeDirectory)
            let federation = try FederationConfig.load(from: nodeDirectory)
            let tokens = try nodeDirectory.readAPITokens()
            var logger = Logger(label: "liaison.\(node.config.name)") { label in
                StreamLogHandler.standardError(label: label)
            }
            logger.logLevel = level
            logger[metadataKey: "liaison.node"] = "\(node.config.name)"
            let engine = try ReplicationEngine(node: node, federation: federation, logger: logger)
            let replication = ReplicationService(
                engine: engine, identity: node.identity, federation: federation, logger: logger)
            let api = try await APIServer.services(
                engine: engine, federation: federation, tokens: tokens, logger: logger)
            let pidFile = try RunningNode.claim(nodeDirectory)
            defer { RunningNode.release(pidFile) }
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
                .init(service: replication)
            ]
            services += api.map { .init(service: $0) }
            // STIX feeds the topology declares for this node (docs/topology.md, "Feeds").
            if let feeds = federation.feeds, !feeds.isEmpty {
                services.append(
                    .init(service: FeedService(feeds: feeds, engine: engine, directory: nodeDirectory, logger: logger)))
            }
            let group = ServiceGroup(
                configuration: .init(
                    services: services,
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            logger.info(
                "node running",
                metadata: [
                    "liaison.api": "\(federation.api)",
                    "liaison.peers": "\(federation.listen.map(\.description).joined(separator: ", "))",
                ])
            try await group.run()
        }
    }
}

/// `DIR/liaison.pid`: present while a node runs, so local commands go through its API.
enum RunningNode {
    static func pidURL(_ directory: NodeDirectory) -> URL { directory.url.appendingPathComponent("liaison.pid") }

    /// Writes the pid file; refuses when another live process holds it.
    static func claim(_ directory: NodeDirectory) throws(LiaisonError) -> URL {
        let url = pidURL(directory)
        if let pid = runningPID(directory) {
            throw LiaisonError(.alreadyExists, "node \(directory.url.path) already runs as process \(pid)")
        }
        try OwnerOnlyFiles.write(Data("\(getpid())\n".utf8), to: url, replacing: true)
        return url
    }

    static func release(_ url: URL) { try? FileManager.default.removeItem(at: url) }

    /// The pid of the node running on this directory, if any.
    static func runningPID(_ directory: NodeDirectory) -> Int32? {
        guard let data = FileManager.default.contents(atPath: pidURL(directory).path),
            let pid = Int32(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
            pid > 0, kill(pid, 0) == 0
        else { return nil }
        return pid
    }
}
