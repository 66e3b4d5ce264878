public import LiaisonCore
public import LiaisonNode

extension Topology {
    /// The same topology with every endpoint and API address moved to free loopback ports.
    public func onFreeLoopbackPorts() throws(LiaisonError) -> Topology {
        var copy = self
        for index in copy.partners.indices {
            copy.partners[index].endpoints = try copy.partners[index].endpoints.map { _ throws(LiaisonError) in
                Endpoint(host: "127.0.0.1", port: try FreePort.find())
            }
            copy.partners[index].api = Endpoint(host: "127.0.0.1", port: try FreePort.find())
        }
        return copy
    }
}
