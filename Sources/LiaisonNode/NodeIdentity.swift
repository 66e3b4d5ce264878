public import Crypto
public import Foundation
public import LiaisonCore
import SwiftASN1
import X509

/// A node's keys: Ed25519 for signing ops, X25519 for sealed envelopes, and a P-256 TLS key
/// with a self-signed certificate that peers pin by fingerprint.
public struct NodeIdentity: Sendable {
    /// Signs ops; its public key defines the NodeID.
    public let signingKey: Curve25519.Signing.PrivateKey
    /// Opens sealed envelopes addressed to this node.
    public let sealingKey: Curve25519.KeyAgreement.PrivateKey
    /// The TLS private key, PEM.
    public let tlsKeyPEM: String
    /// The TLS certificate, PEM.
    public let tlsCertificatePEM: String
    /// SHA-256 of the certificate's DER, lower-case hex.
    public let tlsFingerprint: String

    /// The node's identity.
    public var nodeID: NodeID { NodeID(signingKey: signingKey.publicKey) }

    /// The node's authority to sign ops.
    public var author: OpAuthor { OpAuthor(signingKey: signingKey) }

    /// Makes fresh keys and a self-signed TLS certificate valid for ten years from `now`
    /// (peers pin the fingerprint; expiry is not what they trust).
    public static func generate(name: String, now: Date) throws(LiaisonError) -> NodeIdentity {
        let signingKey = Curve25519.Signing.PrivateKey()
        let sealingKey = Curve25519.KeyAgreement.PrivateKey()
        let tlsKey = P256.Signing.PrivateKey()
        let nodeID = NodeID(signingKey: signingKey.publicKey)
        do {
            let certificateKey = Certificate.PrivateKey(tlsKey)
            let subject = try DistinguishedName {
                OrganizationName("Liaison")
                OrganizationalUnitName(name)
                CommonName(nodeID.text)
            }
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: certificateKey.publicKey,
                notValidBefore: now.addingTimeInterval(-3600),
                notValidAfter: now.addingTimeInterval(10 * 365 * 24 * 3600),
                issuer: subject,
                subject: subject,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([.serverAuth, .clientAuth])
                },
                issuerPrivateKey: certificateKey
            )
            let pem = try certificate.serializeAsPEM()
            return NodeIdentity(
                signingKey: signingKey,
                sealingKey: sealingKey,
                tlsKeyPEM: tlsKey.pemRepresentation,
                tlsCertificatePEM: pem.pemString,
                tlsFingerprint: Hex.encode(SHA256.hash(data: pem.derBytes))
            )
        } catch {
            throw LiaisonError(.io, "could not make the TLS certificate", cause: error)
        }
    }

    /// Restores an identity from its parts, checking that they fit together.
    public init(
        signingKey: Curve25519.Signing.PrivateKey,
        sealingKey: Curve25519.KeyAgreement.PrivateKey,
        tlsKeyPEM: String,
        tlsCertificatePEM: String,
        tlsFingerprint: String
    ) {
        self.signingKey = signingKey
        self.sealingKey = sealingKey
        self.tlsKeyPEM = tlsKeyPEM
        self.tlsCertificatePEM = tlsCertificatePEM
        self.tlsFingerprint = tlsFingerprint
    }

    /// SHA-256 fingerprint (lower-case hex) of a PEM certificate's DER.
    public static func fingerprint(ofCertificatePEM pem: String) throws(LiaisonError) -> String {
        do {
            let document = try PEMDocument(pemString: pem)
            _ = try Certificate(pemDocument: document)
            return Hex.encode(SHA256.hash(data: document.derBytes))
        } catch {
            throw LiaisonError(.corrupt, "the TLS certificate cannot be read", cause: error)
        }
    }
}
