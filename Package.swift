// swift-tools-version:6.1
import PackageDescription

let upcoming: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Liaison",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "liaison", targets: ["liaison"]),
        .library(name: "LiaisonCore", targets: ["LiaisonCore"]),
        .library(name: "LiaisonStore", targets: ["LiaisonStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Pure core: IDs, HLC, markings, ops and signatures, the item CRDT, filters. No I/O.
        .target(
            name: "LiaisonCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: upcoming
        ),
        // The sync protocol's frames (Protocol Buffers, generated code committed), zlib batches.
        .target(
            name: "LiaisonWire",
            dependencies: [
                "LiaisonCore",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            swiftSettings: upcoming
        ),
        // SwiftNIO + swift-nio-ssl: TLS 1.3 listeners and dialers with pinned certificates.
        .target(
            name: "LiaisonTransport",
            dependencies: [
                "LiaisonCore",
                "LiaisonWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: upcoming
        ),
        // Store protocol, SQLite (GRDB, WAL) and in-memory implementations, custody log.
        .target(
            name: "LiaisonStore",
            dependencies: [
                "LiaisonCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: upcoming
        ),
        // glibc's malloc_trim for Swift (its Glibc module leaves it out): a node gone idle after
        // heavy work hands the memory the work freed back to the system (docs/operations.md).
        .target(name: "CLiaisonMemory"),
        // Pure: the node state machine (sessions, channel choice, sealing, relays, receipts).
        // Events in, actions out; no store, no clock, no NIO.
        .target(
            name: "LiaisonReplication",
            dependencies: [
                "LiaisonCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: upcoming
        ),
        // The world of the deterministic simulator: network faults, workload, the hostile node,
        // invariant checks. It drives the daemon's engine and interpreter (LiaisonNode).
        .target(
            name: "LiaisonSimulation",
            dependencies: [
                "LiaisonCore", "LiaisonStore", "LiaisonReplication", "LiaisonNode", "LiaisonTransport", "LiaisonWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: upcoming
        ),
        // Composition root: node directory, identity (keys, TLS certificate), configuration.
        .target(
            name: "LiaisonNode",
            dependencies: [
                "LiaisonCore",
                "LiaisonStore",
                "LiaisonReplication",
                "LiaisonWire",
                "LiaisonTransport",
                "CLiaisonMemory",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),
        // The node's loopback HTTP API (Hummingbird 2), its Prometheus metrics (swift-metrics with
        // swift-prometheus handlers) and the URLSession client of it.
        .target(
            name: "LiaisonAPI",
            dependencies: [
                "LiaisonCore",
                "LiaisonStore",
                "LiaisonNode",
                "LiaisonTransport",
                .product(name: "Hummingbird", package: "hummingbird"),
                // TAXII over HTTPS, with client certificates (docs/taxii.md).
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: upcoming
        ),
        // Real-process drills: fault proxies, local federations on loopback, a hostile partner speaking the
        // sync protocol with a partner's own keys, reports. Not in the daemon.
        .target(
            name: "LiaisonDrill",
            dependencies: [
                "LiaisonCore",
                "LiaisonNode",
                "LiaisonReplication",
                "LiaisonAPI",
                "LiaisonStore",
                "LiaisonTransport",
                "LiaisonWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: upcoming
        ),
        // The one executable.
        .executableTarget(
            name: "liaison",
            dependencies: [
                "LiaisonCore",
                "LiaisonSimulation",
                "LiaisonStore",
                "LiaisonNode",
                "LiaisonAPI",
                "LiaisonDrill",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcoming
        ),
        // Fakes and helpers shared by every test target: seeded generator, op factories, eventually.
        .target(
            name: "LiaisonTestSupport",
            dependencies: ["LiaisonCore", "LiaisonStore"],
            swiftSettings: upcoming
        ),
        // Merge laws, item rules, HLC, eligibility, redaction, signatures and bit flips, custody chain.
        .testTarget(
            name: "LiaisonCoreTests",
            dependencies: ["LiaisonCore", "LiaisonTestSupport"],
            swiftSettings: upcoming
        ),
        // Commits on both stores (SQLite and in-memory), SQLite files: reopening, custody, refusals.
        .testTarget(
            name: "LiaisonStoreTests",
            dependencies: [
                "LiaisonCore", "LiaisonStore", "LiaisonTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: upcoming
        ),
        // The sync frame codec: round trips, compression, garbage, oversized frames, zip bombs.
        .testTarget(
            name: "LiaisonWireTests",
            dependencies: [
                "LiaisonCore", "LiaisonWire", "LiaisonTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: upcoming
        ),
        // The pure replication pieces: node engine, session state machine, channels, sealing, relays.
        .testTarget(
            name: "LiaisonReplicationTests",
            dependencies: [
                "LiaisonCore", "LiaisonStore", "LiaisonNode", "LiaisonReplication", "LiaisonTestSupport", "LiaisonWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: upcoming
        ),
        // The node's composition root: topology parsing and rendering, expected reach, owner-only node
        // directories, put-time checks.
        .testTarget(
            name: "LiaisonNodeTests",
            dependencies: [
                "LiaisonCore", "LiaisonNode", "LiaisonReplication", "LiaisonStore", "LiaisonTransport",
                "LiaisonWire", "LiaisonTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: upcoming
        ),
        // Real `liaison run` processes on loopback: replication, sealed relays, crashes, the demo.
        .testTarget(
            name: "LiaisonFederationTests",
            dependencies: [
                "liaison", "LiaisonCore", "LiaisonStore", "LiaisonNode", "LiaisonAPI", "LiaisonDrill",
                "LiaisonTransport", "LiaisonWire", "LiaisonTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                // A stand-in TAXII server that misbehaves (redirects, oversized answers).
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: upcoming
        ),
        // The fault proxy on loopback sockets, and `liaison drill` on real processes.
        .testTarget(
            name: "LiaisonDrillTests",
            dependencies: [
                "liaison", "LiaisonCore", "LiaisonNode", "LiaisonDrill", "LiaisonAPI", "LiaisonTestSupport",
            ],
            swiftSettings: upcoming
        ),
        // The deterministic simulator: seed sweeps, replay of a seed, every seed that ever failed.
        .testTarget(
            name: "LiaisonSimulationTests",
            dependencies: ["LiaisonSimulation"],
            resources: [.copy("regression-seeds.txt")],
            swiftSettings: upcoming
        ),
        // The `liaison` commands as a user runs them.
        .testTarget(
            name: "LiaisonCLITests",
            dependencies: [
                "liaison", "LiaisonCore", "LiaisonStore", "LiaisonTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: upcoming
        ),
    ],
    swiftLanguageModes: [.v6]
)
