// Fuzzes `Topology.parse`: the topology file an operator writes (or mistypes). Every input is
// either a topology that keeps the parser's promises or one error that names the file.
//
// Input: the file's bytes. Bytes that are not UTF-8 are refused before parsing, as
// `Topology.load` refuses them.
import Foundation
import LiaisonCore
import LiaisonNode
import LiaisonReplication

enum Harness {
    static func run(_ input: Data) {
        guard let text = String(data: input, encoding: .utf8) else { return }
        let topology: Topology
        do {
            topology = try Topology.parse(text, file: "fuzz.yaml")
        } catch {
            FuzzCheck.expect(error.message.hasPrefix("fuzz.yaml"), "an error that does not name the file: \(error)")
            return
        }
        check(topology)
    }

    /// What the parser promises of a topology it accepts.
    static func check(_ topology: Topology) {
        let names = topology.partners.map(\.name)
        FuzzCheck.expect(!names.isEmpty, "a topology without partners")
        FuzzCheck.expect(Set(names).count == names.count, "a partner appears twice: \(names)")
        FuzzCheck.expect(names.allSatisfy(NodeConfig.isValidPartnerName), "an invalid partner name: \(names)")
        var endpoints = Set<Endpoint>()
        for partner in topology.partners {
            FuzzCheck.expect(!partner.endpoints.isEmpty, "partner \(partner.name) without endpoints")
            for endpoint in partner.endpoints + [partner.api] {
                FuzzCheck.expect((1...65535).contains(endpoint.port), "endpoint \(endpoint) with a bad port")
                FuzzCheck.expect(endpoints.insert(endpoint).inserted, "endpoint \(endpoint) used twice")
            }
        }
        var pairs = Set<[String]>()
        for link in topology.links {
            FuzzCheck.expect(
                names.contains(link.from) && names.contains(link.to) && link.from != link.to,
                "link \(link.from) -> \(link.to) between unknown or equal partners")
            FuzzCheck.expect(pairs.insert([link.from, link.to]).inserted, "link \(link.from) -> \(link.to) twice")
            if let ceiling = link.filter.maxClassification {
                FuzzCheck.expect(
                    (try? topology.classifications.level(named: ceiling)) != nil,
                    "link ceiling \(ceiling) is not a level of the ladder")
            }
        }
        FuzzCheck.expect(
            topology.channels.deadAfterMillis >= 2 * topology.channels.heartbeatMillis,
            "channels declared dead before two heartbeats")
        let containment = topology.containment
        FuzzCheck.expect(
            (1_000...2_592_000_000).contains(containment.windowMillis),
            "a strike window of \(containment.windowMillis) ms")
        FuzzCheck.expect(
            containment.thresholds.values.allSatisfy { (1...1_000_000).contains($0) },
            "a strike threshold out of range: \(containment.thresholds)")
    }

    /// The filter and channel keys that topology/*.yaml (copied in by the script) leave out.
    static func seeds() throws -> [(String, Data)] {
        let text = """
            federation: small
            classifications: [LOW, HIGH]
            channels:
              mode: active-active
              heartbeat-ms: 100
              dead-after-ms: 400
              failback-after-ms: 0
            containment:
              window-ms: 60000
              thresholds:
                forged: 0
                protocol: 3
            partners:
              one:
                endpoints: ["10.0.0.1:7000", "[::1]:7001"]
                api: 127.0.0.1:8000
                groups: [G1]
                relay: false
              two:
                endpoints: [host.example:7002]
                api: 127.0.0.1:8001
            links:
              - from: one
                to: two
                filter:
                  max-classification: LOW
                  require-tags: [shared]
                  exclude-tags: [internal]
                  redact: [source]
              - from: two
                to: one

            """
        return [("small.yaml", Data(text.utf8))]
    }
}
