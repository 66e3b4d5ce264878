import Crypto
public import Foundation
public import LiaisonCore
import LiaisonStore

/// New keys for a node whose keys were revoked (DESIGN §6: "re-admission needs new keys").
extension NodeDirectory {
    /// Replaces the node's signing, sealing and TLS keys and certificate with new ones, keeping
    /// its name, store and federation: `node.json` and this node's own record in
    /// `federation.json` name the new identity; the old key files are kept, owner-only, under
    /// `keys/retired/OLD-NODEID/` for forensics. Custody records it. The node must not run.
    /// Its partners then endorse the new identity (`liaison readmit`), which their nodes trust
    /// once a quorum did; until then they refuse the new certificate.
    public func rekey(now: Date) throws(LiaisonError) -> (config: NodeConfig, identity: NodeIdentity, previous: NodeID)
    {
        let config = try loadConfig()
        let old = try loadIdentity(config: config)
        let identity = try NodeIdentity.generate(name: config.name, now: now)
        let retired = keysURL.appendingPathComponent("retired", isDirectory: true)
            .appendingPathComponent(old.nodeID.text, isDirectory: true)
        try OwnerOnlyFiles.createDirectory(at: retired)
        for file in [signingKeyURL, sealingKeyURL, tlsKeyURL, certificateURL] {
            guard let data = FileManager.default.contents(atPath: file.path) else {
                throw LiaisonError(.notFound, "\(file.path) is missing; the node's identity is incomplete")
            }
            try OwnerOnlyFiles.write(data, to: retired.appendingPathComponent(file.lastPathComponent), replacing: true)
        }
        try OwnerOnlyFiles.write(
            Data(identity.signingKey.rawRepresentation.base64EncodedString().utf8), to: signingKeyURL, replacing: true)
        try OwnerOnlyFiles.write(
            Data(identity.sealingKey.rawRepresentation.base64EncodedString().utf8), to: sealingKeyURL, replacing: true)
        try OwnerOnlyFiles.write(Data(identity.tlsKeyPEM.utf8), to: tlsKeyURL, replacing: true)
        try OwnerOnlyFiles.write(Data(identity.tlsCertificatePEM.utf8), to: certificateURL, replacing: true)
        var renewed = config
        renewed.nodeID = identity.nodeID
        renewed.tlsFingerprint = identity.tlsFingerprint
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try OwnerOnlyFiles.write(try encoder.encode(renewed), to: configURL, replacing: true)
        } catch let error as LiaisonError {
            throw error
        } catch {
            throw LiaisonError(.io, "could not encode \(configURL.path)", cause: error)
        }
        if var federation = try FederationConfig.loadIfPresent(from: self),
            let index = federation.partners.firstIndex(where: { $0.name == federation.me })
        {
            federation.partners[index].nodeID = identity.nodeID
            federation.partners[index].tlsFingerprint = identity.tlsFingerprint
            federation.partners[index].sealingKey = identity.sealingKey.publicKey.rawRepresentation
                .base64EncodedString()
            try federation.write(to: self)
        }
        let store = try openStore()
        _ = try store.appendCustody(
            CustodyEvent(
                kind: .identityCreated, peer: nil,
                detail: "rekeyed: node \(config.name) \(identity.nodeID.text) tls \(identity.tlsFingerprint); "
                    + "previous key \(old.nodeID.text) retired"),
            timeMillis: Int64(now.timeIntervalSince1970 * 1000))
        return (renewed, identity, old.nodeID)
    }
}

extension NodeIdentity {
    /// The public sealing key, base64, as `federation.json` and identity cards carry it.
    public var sealingPublicKey: String { sealingKey.publicKey.rawRepresentation.base64EncodedString() }
}
