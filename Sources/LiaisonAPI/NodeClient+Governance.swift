import Foundation
public import LiaisonCore

/// Revocation and re-admission through a running node's API.
extension NodeClient {
    /// `POST /v1/revocations`.
    public func endorseRevocation(_ body: RevocationBody) async throws(LiaisonError) -> EndorsementResult {
        try decode(EndorsementResult.self, try await call("POST", "/v1/revocations", body: try Self.encode(body)))
    }

    /// `POST /v1/readmissions`.
    public func endorseReadmission(_ body: ReadmissionBody) async throws(LiaisonError) -> EndorsementResult {
        try decode(EndorsementResult.self, try await call("POST", "/v1/readmissions", body: try Self.encode(body)))
    }

    /// `GET /v1/revocations`.
    public func governance() async throws(LiaisonError) -> GovernanceView {
        try decode(GovernanceView.self, try await call("GET", "/v1/revocations"))
    }

    private static func encode(_ body: some Encodable) throws(LiaisonError) -> Data {
        do {
            return try JSONEncoder().encode(body)
        } catch {
            throw LiaisonError(.invalidArgument, "the request cannot be encoded", cause: error)
        }
    }
}
