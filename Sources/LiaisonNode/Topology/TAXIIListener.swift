import Foundation
public import LiaisonCore

/// A node's TAXII 2.1 server over HTTPS, for CTI tools off the node's machine (docs/taxii.md,
/// "HTTPS and client certificates"): the TAXII routes only, on their own address, with the
/// role tokens and, where configured, client certificates pinned by fingerprint.
public struct TAXIIListener: Codable, Sendable, Hashable {
    /// A tool's client certificate and the role it acts with.
    public struct Client: Codable, Sendable, Hashable {
        /// Who holds it (logs and refusals name it).
        public var name: String
        /// Lower-case hex SHA-256 of the certificate's DER.
        public var sha256: String
        /// The role it acts with.
        public var role: String

        /// Creates a client.
        public init(name: String, sha256: String, role: String) {
            self.name = name
            self.sha256 = sha256
            self.role = role
        }

        /// Its role.
        public var apiRole: APIRole? { APIRole(rawValue: role) }
    }

    /// Where it listens.
    public var listen: Endpoint
    /// The certificate chain it presents, a PEM file (nil: the node's own TLS certificate,
    /// the one partners pin).
    public var certificate: String?
    /// The private key of `certificate`, a PEM file.
    public var key: String?
    /// Client certificates it accepts, each with its role. A connection without a
    /// certificate is accepted and needs a bearer token; one with a certificate not listed
    /// here is refused in the handshake.
    public var clients: [Client]

    /// Creates a listener.
    public init(listen: Endpoint, certificate: String? = nil, key: String? = nil, clients: [Client] = []) {
        self.listen = listen
        self.certificate = certificate
        self.key = key
        self.clients = clients
    }

    /// Checks it; the error says what to change.
    public func validate() throws(LiaisonError) {
        guard (certificate == nil) == (key == nil) else {
            throw LiaisonError(
                .invalidArgument,
                "taxii needs both a certificate and its key (PEM files), or neither (the node's own TLS certificate)")
        }
        var seen = Set<String>()
        for client in clients {
            guard !client.name.isEmpty, client.name.utf8.count <= 128,
                client.name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f })
            else {
                throw LiaisonError(.invalidArgument, "a taxii client needs a name of 1-128 printable characters")
            }
            guard client.sha256.utf8.count == 64, client.sha256.allSatisfy({ $0.isHexDigit && !$0.isUppercase })
            else {
                throw LiaisonError(
                    .invalidArgument,
                    "taxii client '\(client.name)': sha256 must be the 64 lower-case hex digits of the SHA-256 of its certificate's DER (openssl x509 -in CERT -outform DER | sha256sum)"
                )
            }
            guard client.apiRole != nil else {
                throw LiaisonError(
                    .invalidArgument,
                    "taxii client '\(client.name)': role '\(client.role)' is not one of reader, writer, operator, auditor"
                )
            }
            guard seen.insert(client.sha256).inserted else {
                throw LiaisonError(.invalidArgument, "taxii client '\(client.name)': its certificate is listed twice")
            }
        }
    }
}
