import Foundation
import LiaisonAPI
import LiaisonCore
import LiaisonNode

extension LocalNode {
    /// Opens the node in `directory` for a command. When the directory was open to other
    /// users (made by an older Liaison, or copied), opening makes it owner-only; this says so
    /// in one line on stderr, once: the next command finds nothing to change.
    static func openForCommand(_ directory: NodeDirectory) throws(LiaisonError) -> LocalNode {
        let node = try open(directory)
        if !node.madeOwnerOnly.isEmpty {
            let shown = node.madeOwnerOnly.prefix(6).joined(separator: ", ")
            let more = node.madeOwnerOnly.count > 6 ? ", …" : ""
            printWarning(
                "\(directory.url.path) was open to other users; made it owner-only (\(node.madeOwnerOnly.count) entries: \(shown)\(more))"
            )
        }
        return node
    }
}

/// Runs a command on a node: through its API when it runs (so the daemon acts at once and
/// its store has one writer), on its store directly when it is stopped.
func onNode<T>(
    _ nodeDirectory: NodeDirectory,
    running: (NodeClient) async throws(LiaisonError) -> T,
    stopped: (LocalNode) throws(LiaisonError) -> T
) async throws(LiaisonError) -> T {
    if RunningNode.runningPID(nodeDirectory) != nil {
        return try await running(try NodeClient(directory: nodeDirectory))
    }
    return try stopped(try LocalNode.openForCommand(nodeDirectory))
}
