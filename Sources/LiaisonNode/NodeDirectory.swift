import Crypto
public import Foundation
public import LiaisonCore
public import LiaisonStore

/// A node directory on disk:
///
/// ```
/// DIR/node.json          name, NodeID, TLS fingerprint, classification ladder
/// DIR/keys/signing.key   Ed25519 private key, base64
/// DIR/keys/sealing.key   X25519 private key, base64
/// DIR/keys/tls.key       P-256 TLS private key, PEM
/// DIR/tls.crt            self-signed TLS certificate, PEM
/// DIR/store.sqlite       the store (SQLite, WAL: also store.sqlite-wal and -shm)
/// ```
/// Everything is owner-only from the moment it exists: directories mode 0700, files mode
/// 0600 (`OwnerOnlyFiles`). `node.json` is written last: a directory without it holds no
/// complete identity.
public struct NodeDirectory: Sendable {
    /// The directory.
    public let url: URL

    /// Names a node directory (nothing is read or written).
    public init(path: String) {
        self.url = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
    }

    var configURL: URL { url.appendingPathComponent("node.json") }
    var keysURL: URL { url.appendingPathComponent("keys", isDirectory: true) }
    var signingKeyURL: URL { keysURL.appendingPathComponent("signing.key") }
    var sealingKeyURL: URL { keysURL.appendingPathComponent("sealing.key") }
    var tlsKeyURL: URL { keysURL.appendingPathComponent("tls.key") }
    var certificateURL: URL { url.appendingPathComponent("tls.crt") }
    /// The store file.
    public var storePath: String { url.appendingPathComponent("store.sqlite").path }

    /// Creates a new node identity and an empty store, and records the creation in custody.
    /// Refuses to touch a directory that already holds an identity or a store.
    public func initialize(
        name: String,
        classifications: ClassificationLadder = .standard,
        now: Date
    ) throws(LiaisonError) -> (NodeConfig, NodeIdentity) {
        guard NodeConfig.isValidPartnerName(name) else {
            throw LiaisonError(
                .invalidArgument,
                "invalid node name '\(name)': use 1-64 letters, digits, '.', '_' or '-'"
            )
        }
        let files = FileManager.default
        var isDirectory: ObjCBool = false
        if files.fileExists(atPath: url.path, isDirectory: &isDirectory) && !isDirectory.boolValue {
            throw LiaisonError(.alreadyExists, "\(url.path) is a file, not a directory; choose another --dir")
        }
        for existing in [configURL, keysURL, URL(fileURLWithPath: storePath)]
        where files.fileExists(atPath: existing.path) {
            throw LiaisonError(
                .alreadyExists,
                "\(url.path) already holds a node (\(existing.lastPathComponent) exists); refusing to overwrite its identity"
            )
        }
        let identity = try NodeIdentity.generate(name: name, now: now)
        let config = NodeConfig(
            name: name,
            nodeID: identity.nodeID,
            tlsFingerprint: identity.tlsFingerprint,
            classifications: classifications
        )
        try OwnerOnlyFiles.createDirectory(at: url)
        try OwnerOnlyFiles.createDirectory(at: keysURL)
        try writeOwnerOnly(identity.signingKey.rawRepresentation.base64EncodedString(), to: signingKeyURL)
        try writeOwnerOnly(identity.sealingKey.rawRepresentation.base64EncodedString(), to: sealingKeyURL)
        try writeOwnerOnly(identity.tlsKeyPEM, to: tlsKeyURL)
        try writeOwnerOnly(identity.tlsCertificatePEM, to: certificateURL)
        let store = try SQLiteStore(path: storePath, create: true)
        _ = try store.appendCustody(
            CustodyEvent(
                kind: .identityCreated,
                peer: nil,
                detail: "node \(name) \(identity.nodeID.text) tls \(identity.tlsFingerprint)"
            ),
            timeMillis: Int64(now.timeIntervalSince1970 * 1000)
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let encoded: Data
        do {
            encoded = try encoder.encode(config)
        } catch {
            throw LiaisonError(.io, "could not encode \(configURL.path)", cause: error)
        }
        try OwnerOnlyFiles.write(encoded, to: configURL, replacing: false)
        return (config, identity)
    }

    private func writeOwnerOnly(_ text: String, to file: URL) throws(LiaisonError) {
        try OwnerOnlyFiles.write(Data(text.utf8), to: file, replacing: false)
    }

    /// Reads `node.json`; a missing or foreign directory gets a message saying what to do.
    public func loadConfig() throws(LiaisonError) -> NodeConfig {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw LiaisonError(
                .notFound,
                "no node directory at \(url.path); create one with 'liaison init --name NAME --dir \(url.path)'")
        }
        guard let data = FileManager.default.contents(atPath: configURL.path) else {
            throw LiaisonError(
                .notFound,
                "\(url.path) is not a Liaison node directory (no node.json); create one with 'liaison init'"
            )
        }
        let config: NodeConfig
        do {
            config = try JSONDecoder().decode(NodeConfig.self, from: data)
        } catch {
            throw LiaisonError(
                .corrupt, "\(configURL.path) is damaged (\(error)); restore it from a backup", cause: error)
        }
        guard config.format == NodeConfig.currentFormat else {
            throw LiaisonError(
                .corrupt,
                "\(configURL.path) has format \(config.format); this build reads format \(NodeConfig.currentFormat)")
        }
        return config
    }

    /// Reads the keys and checks them against `node.json`.
    public func loadIdentity(config: NodeConfig) throws(LiaisonError) -> NodeIdentity {
        func read(_ file: URL) throws(LiaisonError) -> String {
            guard let data = FileManager.default.contents(atPath: file.path),
                let text = String(data: data, encoding: .utf8)
            else {
                throw LiaisonError(
                    .notFound, "\(file.path) is missing or unreadable; the node's identity is incomplete")
            }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let identity: NodeIdentity
        do {
            guard let signing = Data(base64Encoded: try read(signingKeyURL)),
                let sealing = Data(base64Encoded: try read(sealingKeyURL))
            else { throw LiaisonError(.corrupt, "a key file in \(keysURL.path) is not base64") }
            let certificate = try read(certificateURL)
            identity = NodeIdentity(
                signingKey: try Curve25519.Signing.PrivateKey(rawRepresentation: signing),
                sealingKey: try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: sealing),
                tlsKeyPEM: try read(tlsKeyURL),
                tlsCertificatePEM: certificate,
                tlsFingerprint: try NodeIdentity.fingerprint(ofCertificatePEM: certificate)
            )
        } catch let error as LiaisonError {
            throw error
        } catch {
            throw LiaisonError(.corrupt, "the keys in \(keysURL.path) cannot be read", cause: error)
        }
        guard identity.nodeID == config.nodeID, identity.tlsFingerprint == config.tlsFingerprint else {
            throw LiaisonError(.corrupt, "the keys in \(url.path) do not match node.json; the directory was altered")
        }
        return identity
    }

    /// Opens the existing store (never creates one).
    public func openStore() throws(LiaisonError) -> SQLiteStore {
        try SQLiteStore(path: storePath, create: false)
    }
}
