import Foundation
import LiaisonCore
import LiaisonDrill
import LiaisonNode
import LiaisonTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The drill's fault proxy against plain loopback sockets: a listening socket stands in for a
/// node's endpoint, a connected socket for the dialling node.
@Suite("Fault proxy", .timeLimit(.minutes(3)))
struct FaultProxyTests {
    @Test("bytes pass unchanged both ways")
    func forwards() async throws {
        let target = try TestSocket.listen()
        let proxy = try await FaultProxy.start(forwardingTo: Endpoint(host: "127.0.0.1", port: target.port))
        let client = try TestSocket.connect(port: proxy.endpoint.port)
        let server = try #require(try target.accept(within: .seconds(5)))
        try client.send("hello through the proxy")
        #expect(try server.receive(count: 23, within: .seconds(5)) == "hello through the proxy")
        try server.send("and back")
        #expect(try client.receive(count: 8, within: .seconds(5)) == "and back")
        #expect(proxy.bytesForwarded == 31)
        await proxy.shutdown()
        // Shutdown closes the proxied connection on both sides.
        #expect(try client.waitForClose(within: .seconds(5)))
        #expect(try server.waitForClose(within: .seconds(5)))
    }

    @Test("cut turns an open connection into a blackhole: nothing arrives, nothing closes")
    func cutBlackholesOpenConnections() async throws {
        let target = try TestSocket.listen()
        try await withProxy(to: target.port) { proxy in
            let client = try TestSocket.connect(port: proxy.endpoint.port)
            let server = try #require(try target.accept(within: .seconds(5)))
            try client.send("ping")
            #expect(try server.receive(count: 4, within: .seconds(5)) == "ping")

            proxy.cut()
            #expect(proxy.isCut)
            try client.send("lost-forward")
            try server.send("lost-back")
            // Once the proxy has swallowed all 21 bytes they can no longer arrive anywhere.
            #expect(await eventually(timeout: .seconds(5), every: .milliseconds(5)) { proxy.bytesDropped == 21 })
            #expect(try server.pending() == .nothing)
            #expect(try client.pending() == .nothing)
            #expect(proxy.connectionCount == 1)
            #expect(proxy.bytesForwarded == 4)
        }
    }

    @Test("cut refuses new connections: accepted, then closed at once, never dialled through")
    func cutRefusesNewConnections() async throws {
        let target = try TestSocket.listen()
        try await withProxy(to: target.port) { proxy in
            proxy.cut()
            let client = try TestSocket.connect(port: proxy.endpoint.port)
            #expect(try client.waitForClose(within: .seconds(5)))
            #expect(proxy.connectionsRefused == 1)
            // The refusal happens before any dialling, so the target never saw a connection.
            #expect(try target.accept(within: .zero) == nil)
        }
    }

    @Test("heal closes the blackholed connections and forwards new ones")
    func healForwardsAgain() async throws {
        let target = try TestSocket.listen()
        try await withProxy(to: target.port) { proxy in
            let old = try TestSocket.connect(port: proxy.endpoint.port)
            let oldServer = try #require(try target.accept(within: .seconds(5)))
            proxy.cut()
            proxy.heal()
            #expect(!proxy.isCut)
            #expect(try old.waitForClose(within: .seconds(5)))
            #expect(try oldServer.waitForClose(within: .seconds(5)))

            let fresh = try TestSocket.connect(port: proxy.endpoint.port)
            let freshServer = try #require(try target.accept(within: .seconds(5)))
            try fresh.send("again")
            #expect(try freshServer.receive(count: 5, within: .seconds(5)) == "again")
            try freshServer.send("ok")
            #expect(try fresh.receive(count: 2, within: .seconds(5)) == "ok")
        }
    }

    @Test("a target that is down ends the dialler's connection")
    func deadTargetClosesConnection() async throws {
        // Bound but not listening: connections to it are refused, and no other test can
        // take the port while this one runs.
        let target = try TestSocket.bound()
        try await withProxy(to: target.port) { proxy in
            let client = try TestSocket.connect(port: proxy.endpoint.port)
            #expect(try client.waitForClose(within: .seconds(5)))
            #expect(await eventually(timeout: .seconds(5), every: .milliseconds(5)) { proxy.connectionCount == 0 })
        }
        // Held to here: released earlier, its port could go to another test's listener.
        target.close()
    }

    /// Runs `body` with a proxy to `port` and shuts the proxy down afterwards, also on failure.
    private func withProxy(to port: Int, _ body: (FaultProxy) async throws -> Void) async throws {
        let proxy = try await FaultProxy.start(forwardingTo: Endpoint(host: "127.0.0.1", port: port))
        do {
            try await body(proxy)
        } catch {
            await proxy.shutdown()
            throw error
        }
        await proxy.shutdown()
    }
}

/// A blocking loopback TCP socket with poll(2)-bounded waits.
private final class TestSocket: @unchecked Sendable {
    // @unchecked: each test uses its sockets from one task at a time; fd is only closed once.
    private(set) var fd: Int32

    enum Pending: Equatable {
        /// Nothing to read and the connection is open.
        case nothing
        /// Bytes are waiting.
        case data
        /// The peer closed or reset the connection.
        case closed
    }

    private init(fd: Int32) { self.fd = fd }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// A socket listening on a loopback port the kernel picks.
    static func listen() throws -> TestSocket {
        let socket = try bound()
        guard Glibc.listen(socket.fd, 16) == 0 else { throw TestSocketError("listen") }
        return socket
    }

    /// A socket bound to a loopback port the kernel picks, not listening.
    static func bound() throws -> TestSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSocketError("socket") }
        let socket = TestSocket(fd: fd)
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw TestSocketError("bind") }
        return socket
    }

    static func connect(port: Int) throws -> TestSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSocketError("socket") }
        var address = loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TestSocketError("connect to \(port)") }
        return TestSocket(fd: fd)
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    var port: Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Waits until the socket is readable (or `timeout` passes); true when it is.
    private func readable(within timeout: Duration) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let millis = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        return poll(&entry, 1, millis) > 0
    }

    /// The next pending connection, or nil if none arrives within `timeout`.
    func accept(within timeout: Duration) throws -> TestSocket? {
        guard readable(within: timeout) else { return nil }
        let client = Glibc.accept(fd, nil, nil)
        guard client >= 0 else { throw TestSocketError("accept") }
        return TestSocket(fd: client)
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw TestSocketError("send") }
    }

    /// Reads exactly `count` bytes, or throws if they do not all arrive within `timeout`.
    func receive(count: Int, within timeout: Duration) throws -> String {
        let deadline = ContinuousClock.now + timeout
        var received = [UInt8]()
        while received.count < count {
            let left = deadline - ContinuousClock.now
            guard left > .zero, readable(within: left) else {
                throw TestSocketError("only \(received.count) of \(count) bytes arrived")
            }
            var buffer = [UInt8](repeating: 0, count: count - received.count)
            let read = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard read > 0 else {
                throw TestSocketError("the connection closed after \(received.count) of \(count) bytes")
            }
            received += buffer.prefix(read)
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// What a read would find right now, without waiting.
    func pending() throws -> Pending {
        var byte: UInt8 = 0
        let read = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        if read > 0 { return .data }
        if read == 0 { return .closed }
        if errno == EAGAIN || errno == EWOULDBLOCK { return .nothing }
        if errno == ECONNRESET { return .closed }
        throw TestSocketError("recv")
    }

    /// Waits until the peer closes (EOF or reset), discarding any bytes before it; true when
    /// it closed within `timeout`.
    func waitForClose(within timeout: Duration) throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero, readable(within: left) else { return false }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let read = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if read == 0 || (read < 0 && errno == ECONNRESET) { return true }
        }
    }
}

private struct TestSocketError: Error, CustomStringConvertible {
    var description: String
    init(_ what: String) { description = "\(what) failed (errno \(errno))" }
}
