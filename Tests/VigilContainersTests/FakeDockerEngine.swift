import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A scripted HTTP server on a unix socket, standing in for the Docker Engine where a test
/// needs exact bytes (framing, errors, disconnects) rather than a real engine.
final class FakeDockerEngine: Sendable {
    /// What to send back for one request.
    struct Reply: Sendable {
        /// Written in order, each with its own `send`, so the client sees separate reads.
        var pieces: [[UInt8]]
        /// Keep the connection open after the pieces until the client closes it.
        var holdOpen = false

        static func json(_ body: String, status: String = "200 OK") -> Reply {
            Reply(pieces: [Array("HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)])
        }

        static func chunked(_ chunks: [String], end: Bool = true, holdOpen: Bool = false) -> Reply {
            var pieces = [Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)]
            pieces += chunks.map { Array((String($0.utf8.count, radix: 16) + "\r\n" + $0 + "\r\n").utf8) }
            if end { pieces.append(Array("0\r\n\r\n".utf8)) }
            return Reply(pieces: pieces, holdOpen: holdOpen)
        }
    }

    let socketPath: String
    /// Request lines (`GET /path HTTP/1.1`) in arrival order.
    let requests = Mutex<[String]>([])
    private let listener: Int32
    private let respond: @Sendable (String) -> Reply

    init(respond: @escaping @Sendable (String) -> Reply) throws {
        socketPath = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-fake-\(UUID().uuidString.prefix(8)).sock").path
        self.respond = respond
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(socketPath.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard listener >= 0, bound == 0, listen(listener, 16) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: socketPath])
        }
        Thread { [self] in acceptLoop() }.start()
    }

    /// Stops accepting and removes the socket file.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(socketPath)
    }

    private func acceptLoop() {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            Thread { [self] in serve(connection) }.start()
        }
    }

    private func serve(_ connection: Int32) {
        defer { close(connection) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.containsHeadEnd {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { return }
            received += buffer[..<count]
        }
        let requestLine = String(decoding: received.prefix { $0 != 13 }, as: UTF8.self)
        requests.withLock { $0.append(requestLine) }
        let reply = respond(requestLine)
        for piece in reply.pieces {
            guard send(connection, piece, piece.count, Int32(MSG_NOSIGNAL)) == piece.count else { return }
            usleep(2_000)
        }
        if reply.holdOpen {
            while recv(connection, &buffer, buffer.count, 0) > 0 {}
        }
    }
}

extension [UInt8] {
    fileprivate var containsHeadEnd: Bool {
        count >= 4 && indices.dropLast(3).contains { self[$0..<$0 + 4].elementsEqual([13, 10, 13, 10]) }
    }
}
