import Foundation

/// HTTP/1.1 over a unix stream socket: the Docker Engine client's transport, and the vigil
/// CLI's for the daemon's control API. Each request opens its own connection
/// (`Connection: close`), so the client is a plain value any thread may use. Errors are
/// `DockerClientError` values (the cases name the socket, operation and errno, not Docker).
public struct UnixHTTPClient: Sendable {
    /// The server's unix socket.
    public var socketPath: String
    /// How long one connect, send or receive may wait (zero: no limit, for streams).
    public var timeout: Duration
    /// The `Host` header.
    public var host: String

    /// A client for the server at `socketPath`.
    public init(socketPath: String, timeout: Duration = .seconds(5), host: String = "localhost") {
        self.socketPath = socketPath
        self.timeout = timeout
        self.host = host
    }

    /// Sends a request and returns the whole body of a 2xx response; any other status throws
    /// `.unexpectedStatus` with the server's `{"message": ...}` text.
    public func request(_ method: String, _ target: String, body: [UInt8]? = nil, contentType: String? = nil) throws(DockerClientError) -> (status: Int, body: [UInt8]) {
        var received: [UInt8] = []
        var status = 0
        try exchange(method: method, target: target, body: body, contentType: contentType, socketTimeout: timeout,
                     onHead: { head in status = head.status }, onBody: { received += $0 })
        return (status, received)
    }

    /// Sends a request and hands the body of a 2xx response to `onBody` piece by piece as it
    /// arrives, until the server ends it (no receive timeout).
    public func stream(_ method: String, _ target: String, onBody: ([UInt8]) throws(DockerClientError) -> Void) throws(DockerClientError) {
        try exchange(method: method, target: target, socketTimeout: .zero, onHead: { _ in }, onBody: onBody)
    }

    /// Performs one request: `register` sees the connected socket first (to let another thread
    /// shut it down) and may refuse it; `onHead` once for a 2xx response (or one of
    /// `alsoSuccessful`), then `onBody` per piece of body. Other responses throw
    /// `.unexpectedStatus` with the server's message.
    func exchange(
        method: String, target: String, body: [UInt8]? = nil, contentType: String? = nil,
        alsoSuccessful: Set<Int> = [], socketTimeout: Duration,
        register: (UnixStreamSocket) -> Bool = { _ in true },
        onHead: (HTTPResponseHead) throws(DockerClientError) -> Void,
        onBody: ([UInt8]) throws(DockerClientError) -> Void
    ) throws(DockerClientError) {
        let request = "\(method) \(target)"
        let socket = try UnixStreamSocket(connectingTo: socketPath, timeout: socketTimeout)
        guard register(socket) else { return }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: vigil\r\nConnection: close\r\n"
        if body != nil || method != "GET" { head += "Content-Length: \(body?.count ?? 0)\r\n" }
        if body != nil, let contentType { head += "Content-Type: \(contentType)\r\n" }
        try socket.write(Array((head + "\r\n").utf8) + (body ?? []))

        var decoder = HTTPResponseDecoder()
        var failedStatus: Int?
        var errorBody: [UInt8] = []
        while !decoder.isComplete {
            let bytes = try socket.read()
            let parts: [HTTPResponsePart]
            do {
                parts = bytes.isEmpty ? try decoder.finish() : try decoder.feed(bytes)
            } catch {
                throw .malformedResponse(request: request, reason: error.reason)
            }
            for part in parts {
                switch part {
                case .head(let head) where (200..<300).contains(head.status) || alsoSuccessful.contains(head.status): try onHead(head)
                case .head(let head): failedStatus = head.status
                case .body(let bytes) where failedStatus == nil: try onBody(bytes)
                case .body(let bytes): errorBody += bytes
                case .end: break
                }
            }
        }
        if let failedStatus {
            throw .unexpectedStatus(request: request, status: failedStatus, message: Self.errorMessage(errorBody))
        }
    }

    /// The server's `{"message": ...}` error text, or the raw body.
    static func errorMessage(_ body: [UInt8]) -> String {
        struct ServerError: Decodable { var message: String }
        if let error = try? JSONDecoder().decode(ServerError.self, from: Data(body)) { return error.message }
        return String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
