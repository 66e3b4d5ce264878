import Foundation
public import Hummingbird
import LiaisonCore
import LiaisonNode

extension EndorsementResult: ResponseEncodable {}
extension GovernanceView: ResponseEncodable {}

/// `/v1/revocations` and `/v1/readmissions`: revocation of a partner's keys by a quorum of
/// partners, and its re-admission with new keys (docs/operations.md, "Revoke a partner").
extension APIServer {
    static func addGovernanceRoutes<Context: RequestContext>(
        observe: RouterGroup<Context>, contain: RouterGroup<Context>, engine: ReplicationEngine
    ) {
        observe.get("revocations") { _, _ -> GovernanceView in
            let (state, quorum, current) = await engine.governance()
            return GovernanceView(state, quorum: quorum, current: current)
        }
        contain.post("revocations") { request, context -> EditedResponse<EndorsementResult> in
            let body = try await request.decode(as: RevocationBody.self, context: context)
            do {
                let outcome = try await engine.endorseRevocation(
                    body.partner, sinceMillis: try body.sinceMillis(now: Date()), reason: body.reasonText)
                return EditedResponse(status: .created, response: EndorsementResult(outcome))
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
        contain.post("readmissions") { request, context -> EditedResponse<EndorsementResult> in
            let body = try await request.decode(as: ReadmissionBody.self, context: context)
            do {
                let outcome = try await engine.endorseReadmission(
                    body.partner, identity: try body.identity(), reason: body.reasonText)
                return EditedResponse(status: .created, response: EndorsementResult(outcome))
            } catch let error as LiaisonError {
                throw HTTPError(Self.status(of: error), message: error.message)
            }
        }
    }
}
