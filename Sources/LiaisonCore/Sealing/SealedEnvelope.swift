public import Crypto
public import Foundation
import SwiftProtobuf

/// Ops for one partner sealed so that a relay partner can carry them without reading them
/// (DESIGN §5.8; format: `proto/liaison/v1/envelope.proto`).
///
/// The payload is HPKE-sealed (RFC 9180, mode Auth, X25519 / HKDF-SHA256 /
/// ChaCha20-Poly1305) to the recipient's sealing key and authenticated by the sender's
/// sealing key; the routing header is the HPKE additional data, so a relay that alters it
/// makes the envelope unopenable. The header and a digest of the ciphertext are also signed
/// with the sender's Ed25519 op key, which lets a relay refuse forged or altered envelopes
/// without being able to open them.
public struct SealedEnvelope: Sendable {
    /// The part a relay reads.
    public struct Header: Sendable, Hashable {
        /// The final recipient.
        public var to: NodeID
        /// The sender.
        public var from: NodeID
        /// 16 random bytes naming the envelope end to end.
        public var id: Data
        /// Unix milliseconds after which relays drop it.
        public var expiresMillis: UInt64
    }

    /// Most bytes an encoded envelope may have (the frame limit is 4 MiB).
    public static let maxEncodedBytes = 3 * 1024 * 1024
    static let suite = HPKE.Ciphersuite.Curve25519_SHA256_ChachaPoly
    static let info = Data("liaison/v1/envelope".utf8)
    static let signatureContext = Data("liaison/v1/envelope".utf8)

    /// The routing header.
    public let header: Header
    /// Its exact encoded bytes (HPKE additional data, signed).
    public let headerBytes: Data
    /// The sender's Ed25519 key.
    public let senderKey: Curve25519.Signing.PublicKey
    /// HPKE encapsulated key.
    public let encapsulatedKey: Data
    /// HPKE ciphertext of the payload.
    public let ciphertext: Data
    /// The sender's signature over the header and the ciphertext.
    public let signature: Data

    /// SHA-256 of the ciphertext, when already known: set by `seal` (the sender matches
    /// receipts against it) and by `withDigest()`.
    let knownDigest: Hash32?

    /// SHA-256 of the ciphertext: what a receipt names. A pass over up to 3 MiB unless already
    /// known (`withDigest()`); a relay, which names no envelope in a receipt, never needs it.
    public var digest: Hash32 { knownDigest ?? Hash32.sha256(ciphertext) }

    /// This envelope with its digest computed, so that later uses do not hash it again: a
    /// channel's reader does it for an envelope addressed to its node, off the engine's thread.
    public func withDigest() -> SealedEnvelope {
        guard knownDigest == nil else { return self }
        return SealedEnvelope(
            header: header, headerBytes: headerBytes, senderKey: senderKey, encapsulatedKey: encapsulatedKey,
            ciphertext: ciphertext, signature: signature, knownDigest: digest)
    }

    /// The envelope id as hex (for logs and custody; reveals nothing of the payload).
    public var idText: String { Hex.encode(Array(header.id)) }

    /// Seals `ops` (encoded signed ops, already filtered and redacted for the recipient).
    public static func seal(
        ops: [Data],
        to recipient: NodeID,
        recipientSealingKey: Curve25519.KeyAgreement.PublicKey,
        signingKey: Curve25519.Signing.PrivateKey,
        sealingKey: Curve25519.KeyAgreement.PrivateKey,
        id: Data,
        expiresMillis: UInt64
    ) throws(LiaisonError) -> SealedEnvelope {
        guard id.count == 16 else { throw LiaisonError(.invalidArgument, "an envelope id has 16 bytes") }
        let from = NodeID(signingKey: signingKey.publicKey)
        var headerMessage = Liaison_V1_EnvelopeHeader()
        headerMessage.to = Data(recipient.bytes)
        headerMessage.from = Data(from.bytes)
        headerMessage.envelopeID = id
        headerMessage.expiresMillis = expiresMillis
        var payload = Liaison_V1_SealedPayload()
        payload.ops = ops
        do {
            let headerBytes: Data = try headerMessage.serializedBytes()
            let plaintext: Data = try payload.serializedBytes()
            var sender = try HPKE.Sender(
                recipientKey: recipientSealingKey,
                ciphersuite: suite,
                info: info,
                authenticatedBy: sealingKey
            )
            let ciphertext = try sender.seal(plaintext, authenticating: headerBytes)
            let encapsulatedKey = sender.encapsulatedKey
            let signature = try signingKey.signature(
                for: signedBytes(headerBytes: headerBytes, encapsulatedKey: encapsulatedKey, ciphertext: ciphertext)
            )
            let envelope = SealedEnvelope(
                header: Header(to: recipient, from: from, id: id, expiresMillis: expiresMillis),
                headerBytes: headerBytes,
                senderKey: signingKey.publicKey,
                encapsulatedKey: encapsulatedKey,
                ciphertext: ciphertext,
                signature: signature,
                knownDigest: Hash32.sha256(ciphertext)
            )
            guard envelope.encoded().count <= maxEncodedBytes else {
                throw LiaisonError(
                    .invalidArgument, "a sealed envelope of \(ops.count) ops is too large; seal fewer ops")
            }
            return envelope
        } catch let error as LiaisonError {
            throw error
        } catch {
            throw LiaisonError(.invalidArgument, "could not seal an envelope: \(error)", cause: error)
        }
    }

    /// Decodes an envelope and checks its shape and its sender's signature. What a relay does
    /// before it accepts one; says nothing about the payload.
    public static func decode(_ bytes: Data) throws(LiaisonError) -> SealedEnvelope {
        guard bytes.count <= maxEncodedBytes else {
            throw LiaisonError(.invalidOp, "sealed envelope of \(bytes.count) bytes is too large")
        }
        let message: Liaison_V1_SealedEnvelope
        let header: Liaison_V1_EnvelopeHeader
        do {
            message = try Liaison_V1_SealedEnvelope(serializedBytes: bytes)
            header = try Liaison_V1_EnvelopeHeader(serializedBytes: message.header)
        } catch {
            throw LiaisonError(.invalidOp, "undecodable sealed envelope: \(error)", cause: error)
        }
        guard message.unknownFields.data.isEmpty, header.unknownFields.data.isEmpty else {
            throw LiaisonError(.invalidOp, "sealed envelope with unknown fields")
        }
        guard let to = NodeID(bytes: header.to), let from = NodeID(bytes: header.from), header.envelopeID.count == 16
        else {
            throw LiaisonError(.invalidOp, "sealed envelope header with malformed ids")
        }
        guard message.encapsulatedKey.count == 32, !message.ciphertext.isEmpty, message.signature.count == 64,
            let senderKey = try? Curve25519.Signing.PublicKey(rawRepresentation: message.senderKey)
        else {
            throw LiaisonError(.invalidOp, "sealed envelope with malformed keys or signature")
        }
        guard NodeID(signingKey: senderKey) == from else {
            throw LiaisonError(.invalidOp, "sealed envelope signed by a key that is not its sender's")
        }
        let signed = signedBytes(
            headerBytes: message.header, encapsulatedKey: message.encapsulatedKey, ciphertext: message.ciphertext)
        guard senderKey.isValidSignature(message.signature, for: signed) else {
            throw LiaisonError(.tampered, "sealed envelope from \(from.short) has a bad signature")
        }
        return SealedEnvelope(
            header: Header(to: to, from: from, id: header.envelopeID, expiresMillis: header.expiresMillis),
            headerBytes: message.header,
            senderKey: senderKey,
            encapsulatedKey: message.encapsulatedKey,
            ciphertext: message.ciphertext,
            signature: message.signature,
            knownDigest: nil
        )
    }

    /// The wire bytes.
    public func encoded() -> Data {
        var message = Liaison_V1_SealedEnvelope()
        message.header = headerBytes
        message.senderKey = senderKey.rawRepresentation
        message.encapsulatedKey = encapsulatedKey
        message.ciphertext = ciphertext
        message.signature = signature
        return (try? message.serializedBytes()) ?? Data()
    }

    /// Opens an envelope addressed to us: checks it was sealed by the sender's sealing key
    /// and returns the encoded ops inside (still to be verified one by one).
    public func open(
        with sealingKey: Curve25519.KeyAgreement.PrivateKey,
        senderSealingKey: Curve25519.KeyAgreement.PublicKey
    ) throws(LiaisonError) -> [Data] {
        let plaintext: Data
        do {
            var recipient = try HPKE.Recipient(
                privateKey: sealingKey,
                ciphersuite: Self.suite,
                info: Self.info,
                encapsulatedKey: encapsulatedKey,
                authenticatedBy: senderSealingKey
            )
            plaintext = try recipient.open(ciphertext, authenticating: headerBytes)
        } catch {
            throw LiaisonError(
                .tampered, "sealed envelope \(idText) from \(header.from.short) does not open: \(error)", cause: error)
        }
        do {
            let payload = try Liaison_V1_SealedPayload(serializedBytes: plaintext)
            return payload.ops
        } catch {
            throw LiaisonError(.invalidOp, "sealed envelope \(idText) holds an undecodable payload", cause: error)
        }
    }

    static func signedBytes(headerBytes: Data, encapsulatedKey: Data, ciphertext: Data) -> Data {
        var hasher = SHA256()
        hasher.update(data: encapsulatedKey)
        hasher.update(data: ciphertext)
        return signatureContext + Data(SHA256.hash(data: headerBytes)) + Data(hasher.finalize())
    }
}

/// The recipient's signed statement that it committed a sealed envelope's ops: the sender
/// keeps an envelope until the receipt comes back.
public struct EnvelopeReceipt: Sendable {
    /// The envelope's id.
    public let envelopeID: Data
    /// The recipient, who signs.
    public let from: NodeID
    /// The envelope's sender, where the receipt goes.
    public let to: NodeID
    /// SHA-256 of the envelope's ciphertext.
    public let envelopeDigest: Hash32
    /// Ops committed.
    public let applied: UInt32
    /// Ops refused.
    public let refused: UInt32
    let body: Data
    let signerKey: Curve25519.Signing.PublicKey
    let signature: Data

    static let context = Data("liaison/v1/receipt".utf8)

    /// Signs a receipt for an envelope this node opened and committed.
    public static func sign(
        for envelope: SealedEnvelope,
        applied: Int,
        refused: Int,
        signingKey: Curve25519.Signing.PrivateKey
    ) throws(LiaisonError) -> EnvelopeReceipt {
        let digest = envelope.digest
        var message = Liaison_V1_ReceiptBody()
        message.envelopeID = envelope.header.id
        message.from = Data(NodeID(signingKey: signingKey.publicKey).bytes)
        message.to = Data(envelope.header.from.bytes)
        message.envelopeDigest = Data(digest.bytes)
        message.applied = UInt32(clamping: applied)
        message.refused = UInt32(clamping: refused)
        do {
            let body: Data = try message.serializedBytes()
            let signature = try signingKey.signature(for: context + Data(SHA256.hash(data: body)))
            return EnvelopeReceipt(
                envelopeID: envelope.header.id,
                from: NodeID(signingKey: signingKey.publicKey),
                to: envelope.header.from,
                envelopeDigest: digest,
                applied: message.applied,
                refused: message.refused,
                body: body,
                signerKey: signingKey.publicKey,
                signature: signature
            )
        } catch {
            throw LiaisonError(.invalidArgument, "could not sign a receipt: \(error)", cause: error)
        }
    }

    /// Decodes a receipt and checks its signature against its signer's key.
    public static func decode(_ bytes: Data) throws(LiaisonError) -> EnvelopeReceipt {
        guard bytes.count <= 4096 else {
            throw LiaisonError(.invalidOp, "receipt of \(bytes.count) bytes is too large")
        }
        let message: Liaison_V1_EnvelopeReceipt
        let body: Liaison_V1_ReceiptBody
        do {
            message = try Liaison_V1_EnvelopeReceipt(serializedBytes: bytes)
            body = try Liaison_V1_ReceiptBody(serializedBytes: message.body)
        } catch {
            throw LiaisonError(.invalidOp, "undecodable receipt: \(error)", cause: error)
        }
        guard message.unknownFields.data.isEmpty, body.unknownFields.data.isEmpty, body.envelopeID.count == 16,
            let from = NodeID(bytes: body.from), let to = NodeID(bytes: body.to),
            let digest = Hash32(bytes: body.envelopeDigest),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: message.signerKey)
        else {
            throw LiaisonError(.invalidOp, "malformed receipt")
        }
        guard NodeID(signingKey: key) == from else {
            throw LiaisonError(.invalidOp, "receipt signed by a key that is not its sender's")
        }
        guard key.isValidSignature(message.signature, for: context + Data(SHA256.hash(data: message.body))) else {
            throw LiaisonError(.tampered, "receipt from \(from.short) has a bad signature")
        }
        return EnvelopeReceipt(
            envelopeID: body.envelopeID,
            from: from,
            to: to,
            envelopeDigest: digest,
            applied: body.applied,
            refused: body.refused,
            body: message.body,
            signerKey: key,
            signature: message.signature
        )
    }

    /// The wire bytes.
    public func encoded() -> Data {
        var message = Liaison_V1_EnvelopeReceipt()
        message.body = body
        message.signerKey = signerKey.rawRepresentation
        message.signature = signature
        return (try? message.serializedBytes()) ?? Data()
    }

    /// The envelope id as hex.
    public var idText: String { Hex.encode(Array(envelopeID)) }
}
