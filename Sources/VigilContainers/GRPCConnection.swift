#if canImport(Glibc)
import Glibc
#endif

/// Why a gRPC call to containerd (or another gRPC server on a unix socket) failed.
public enum GRPCError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `connect(2)` to the socket failed: no server (ENOENT, ECONNREFUSED) or no permission.
    case socketUnavailable(path: String, errno: Int32)
    /// A socket call failed mid-call.
    case io(operation: String, path: String, errno: Int32)
    /// The server did not answer within the client's timeout.
    case timedOut(operation: String, path: String)
    /// The server's bytes are not the HTTP/2 or gRPC framing expected (or are larger than allowed).
    case malformedResponse(path: String, reason: String)
    /// The server reset the call's stream (RST_STREAM) or closed the connection (GOAWAY) with
    /// this HTTP/2 error code before answering.
    case callAborted(path: String, code: UInt32)
    /// The server answered the call with a gRPC status other than OK (`grpc-status`, with its
    /// percent-decoded `grpc-message`), or an HTTP status other than 200 without one (mapped as
    /// gRPC's PROTOCOL-HTTP2.md maps it).
    case status(path: String, code: GRPCStatusCode, message: String)

    /// A one-line explanation naming the socket and what failed.
    public var description: String {
        switch self {
        case .socketUnavailable(let path, let code):
            return "gRPC socket \(path) unavailable: connect: \(String(cString: strerror(code)))"
        case .io(let operation, let path, let code):
            return "gRPC socket \(path): \(operation): \(String(cString: strerror(code)))"
        case .timedOut(let operation, let path):
            return "gRPC socket \(path): \(operation) timed out"
        case .malformedResponse(let path, let reason):
            return "gRPC socket \(path): malformed response: \(reason)"
        case .callAborted(let path, let code):
            return "gRPC socket \(path): call aborted with HTTP/2 error code \(code)"
        case .status(let path, let code, let message):
            return "gRPC socket \(path): \(code)" + (message.isEmpty ? "" : ": \(message)")
        }
    }

    /// What kind of failure, for counting and logging once per kind: the gRPC code's name for a
    /// status (`PermissionDenied`), else `unavailable`, `io`, `timed out`, `malformed` or `aborted`.
    public var kind: String {
        switch self {
        case .socketUnavailable: "unavailable"
        case .io: "io"
        case .timedOut: "timed out"
        case .malformedResponse: "malformed"
        case .callAborted: "aborted"
        case .status(_, let code, _): code.description
        }
    }

    init(_ error: DockerClientError, path: String) {
        switch error {
        case .socketUnavailable(_, let code): self = .socketUnavailable(path: path, errno: code)
        case .io(let operation, _, let code): self = .io(operation: operation, path: path, errno: code)
        case .timedOut(let operation, _): self = .timedOut(operation: operation, path: path)
        default: self = .malformedResponse(path: path, reason: error.description)
        }
    }
}

/// Unary gRPC calls over one HTTP/2 connection to a unix socket, one call at a time (gRPC over
/// HTTP/2: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
///
/// Deliberately small, instead of swift-nio-http2 plus grpc-swift: the client sends its headers
/// as HPACK literals without Huffman coding and decodes the server's header blocks with one
/// `HPACKDecoder` per connection (`GRPCResponseReader`): a call returns its answer's message when
/// `grpc-status` is 0 and throws `GRPCError.status` otherwise. A reset stream or a closed
/// connection throws. Blocking, with the socket's send and receive timeouts, like the Docker client.
public final class GRPCConnection {
    /// The socket's path.
    public let path: String
    private let socket: UnixStreamSocket
    private var frames = HTTP2FrameReader()
    private var nextStreamID: UInt32 = 1
    /// The server's header blocks on this connection (HPACK's dynamic table is per connection and direction).
    private var decoder = HPACKDecoder()
    /// The largest answer accepted (containerd's container records with their OCI spec are a few
    /// tens of KiB).
    static let maximumResponseBytes = 4 << 20
    private static let window: UInt32 = 1 << 24

    /// Connects and sends the HTTP/2 connection preface, settings and a window large enough for
    /// any accepted answer.
    public init(socketPath: String, timeout: Duration) throws(GRPCError) {
        path = socketPath
        do {
            socket = try UnixStreamSocket(connectingTo: socketPath, timeout: timeout)
            var start = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
            // SETTINGS: ENABLE_PUSH (2) = 0, INITIAL_WINDOW_SIZE (4) = window.
            var settings: [UInt8] = []
            Self.appendSetting(2, 0, to: &settings)
            Self.appendSetting(4, Self.window, to: &settings)
            Self.appendFrame(type: 4, flags: 0, stream: 0, payload: settings, to: &start)
            // The connection's window (65535 by default) grows to the same size.
            Self.appendFrame(type: 8, flags: 0, stream: 0, payload: Self.bigEndian(Self.window - 65_535), to: &start)
            try socket.write(start)
        } catch {
            throw GRPCError(error, path: socketPath)
        }
    }

    /// Calls `method` (`/package.Service/Method`) with `message` and `metadata` (lowercase
    /// header names); returns the answer's message (grpc-status 0); throws `GRPCError.status`
    /// with the server's code and message for any other status.
    public func call(_ method: String, message: [UInt8], metadata: [(String, String)] = []) throws(GRPCError) -> [UInt8] {
        let stream = nextStreamID
        nextStreamID += 2
        var headers: [UInt8] = [0x83, 0x86]  // :method POST, :scheme http (HPACK static table 3 and 6)
        Self.appendLiteral(indexedName: 4, value: method, to: &headers)  // :path
        Self.appendLiteral(indexedName: 1, value: "localhost", to: &headers)  // :authority
        for (name, value) in [("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "vigil")] + metadata {
            Self.appendLiteral(name: name, value: value, to: &headers)
        }
        var out: [UInt8] = []
        Self.appendFrame(type: 1, flags: 0x4, stream: stream, payload: headers, to: &out)  // HEADERS, END_HEADERS
        var body: [UInt8] = [0]  // not compressed
        body += Self.bigEndian(UInt32(message.count))
        body += message
        Self.appendFrame(type: 0, flags: 0x1, stream: stream, payload: body, to: &out)  // DATA, END_STREAM
        do { try socket.write(out) } catch { throw GRPCError(error, path: path) }

        var reader = GRPCResponseReader(stream: stream, path: path)
        while true {
            switch try reader.read(try readFrame(), decoder: &decoder) {
            case .more: continue
            case .reply(let type, let payload): try send(type: type, flags: 0x1, stream: 0, payload: payload)
            case .message(let message): return message
            }
        }
    }

    // MARK: - Frames

    private func send(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) throws(GRPCError) {
        var out: [UInt8] = []
        Self.appendFrame(type: type, flags: flags, stream: stream, payload: payload, to: &out)
        do { try socket.write(out) } catch { throw GRPCError(error, path: path) }
    }

    private func readFrame() throws(GRPCError) -> HTTP2Frame {
        while true {
            do {
                if let frame = try frames.next() { return frame }
            } catch {
                throw .malformedResponse(path: path, reason: error.reason)
            }
            let bytes: [UInt8]
            do { bytes = try socket.read() } catch { throw GRPCError(error, path: path) }
            guard !bytes.isEmpty else { throw .malformedResponse(path: path, reason: "connection closed mid-answer") }
            frames.append(bytes)
        }
    }

    /// The first length-prefixed message of a call's DATA; nil when there is none.
    public static func message(in data: [UInt8], path: String) throws(GRPCError) -> [UInt8]? {
        guard !data.isEmpty else { return nil }
        guard data.count >= 5 else { throw .malformedResponse(path: path, reason: "message prefix cut short") }
        guard data[0] == 0 else { throw .malformedResponse(path: path, reason: "compressed message") }
        let length = Int(readBigEndian(data[1..<5]))
        guard data.count - 5 >= length else { throw .malformedResponse(path: path, reason: "message cut short") }
        return Array(data[5..<(5 + length)])
    }

    // MARK: - Encoding

    private static func appendFrame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8], to out: inout [UInt8]) {
        let length = UInt32(payload.count)
        out += [UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length), type, flags]
        out += bigEndian(stream)
        out += payload
    }

    private static func appendSetting(_ identifier: UInt16, _ value: UInt32, to out: inout [UInt8]) {
        out += [UInt8(identifier >> 8), UInt8(truncatingIfNeeded: identifier)]
        out += bigEndian(value)
    }

    /// A literal header field without indexing whose name is static table entry `index` (< 15).
    private static func appendLiteral(indexedName index: UInt8, value: String, to out: inout [UInt8]) {
        out.append(index)
        appendString(value, to: &out)
    }

    /// A literal header field without indexing, new name.
    private static func appendLiteral(name: String, value: String, to out: inout [UInt8]) {
        out.append(0)
        appendString(name, to: &out)
        appendString(value, to: &out)
    }

    /// An HPACK string literal without Huffman coding (7-bit prefix length).
    private static func appendString(_ text: String, to out: inout [UInt8]) {
        let bytes = Array(text.utf8)
        if bytes.count < 127 {
            out.append(UInt8(bytes.count))
        } else {
            out.append(127)
            var rest = bytes.count - 127
            while rest >= 128 {
                out.append(UInt8(rest & 0x7F) | 0x80)
                rest >>= 7
            }
            out.append(UInt8(rest))
        }
        out += bytes
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    static func readBigEndian(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
    }
}

/// One HTTP/2 frame (RFC 9113 §4.1).
public struct HTTP2Frame: Sendable, Equatable {
    /// Its type (0 DATA, 1 HEADERS, 3 RST_STREAM, 4 SETTINGS, 6 PING, 7 GOAWAY, 8 WINDOW_UPDATE, 9 CONTINUATION).
    public var type: UInt8
    /// Its flags.
    public var flags: UInt8
    /// Its stream (the reserved bit cleared).
    public var stream: UInt32
    /// Its payload.
    public var payload: [UInt8]

    /// A DATA frame's payload without its padding (PADDED flag); nil when the padding is longer
    /// than the frame.
    public var data: ArraySlice<UInt8>? {
        guard flags & 0x8 != 0 else { return payload[...] }
        guard let padding = payload.first, Int(padding) < payload.count else { return nil }
        return payload[1..<(payload.count - Int(padding))]
    }
}

/// Splits the bytes a server sends into HTTP/2 frames, whatever pieces they arrive in. Safe on
/// hostile bytes: a frame longer than `GRPCConnection.maximumResponseBytes` is an error, never
/// a large allocation.
public struct HTTP2FrameReader: Sendable {
    private var buffered: [UInt8] = []
    private var start = 0

    /// Why the bytes are not frames.
    public struct Malformed: Error, Sendable, Equatable {
        /// What was wrong.
        public var reason: String
    }

    /// An empty reader.
    public init() {}

    /// Adds bytes received.
    public mutating func append(_ bytes: [UInt8]) {
        if start > 0 {
            buffered.removeFirst(start)
            start = 0
        }
        buffered += bytes
    }

    /// The next whole frame; nil until more bytes arrive.
    public mutating func next() throws(Malformed) -> HTTP2Frame? {
        guard buffered.count - start >= 9 else { return nil }
        let length = Int(buffered[start]) << 16 | Int(buffered[start + 1]) << 8 | Int(buffered[start + 2])
        guard length <= GRPCConnection.maximumResponseBytes else { throw Malformed(reason: "frame of \(length) bytes") }
        guard buffered.count - start >= 9 + length else { return nil }
        let frame = HTTP2Frame(type: buffered[start + 3], flags: buffered[start + 4],
                               stream: GRPCConnection.readBigEndian(buffered[(start + 5)..<(start + 9)]) & 0x7FFF_FFFF,
                               payload: Array(buffered[(start + 9)..<(start + 9 + length)]))
        start += 9 + length
        return frame
    }
}
