import VigilEvents

/// A gRPC status code (grpc/doc/statuscodes.md), named as gRPC names them in CamelCase.
public struct GRPCStatusCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The number sent in `grpc-status`.
    public var rawValue: UInt32

    /// The code numbered `rawValue` (any number: unknown ones are named by number).
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The names of codes 0 to 16.
    static let names = ["OK", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
                        "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
                        "Internal", "Unavailable", "DataLoss", "Unauthenticated"]

    /// OK (0).
    public static let ok = GRPCStatusCode(rawValue: 0)
    /// NotFound (5).
    public static let notFound = GRPCStatusCode(rawValue: 5)
    /// PermissionDenied (7).
    public static let permissionDenied = GRPCStatusCode(rawValue: 7)
    /// Unimplemented (12).
    public static let unimplemented = GRPCStatusCode(rawValue: 12)
    /// Internal (13).
    public static let `internal` = GRPCStatusCode(rawValue: 13)
    /// Unavailable (14).
    public static let unavailable = GRPCStatusCode(rawValue: 14)
    /// Unknown (2).
    public static let unknown = GRPCStatusCode(rawValue: 2)
    /// Unauthenticated (16).
    public static let unauthenticated = GRPCStatusCode(rawValue: 16)
    /// InvalidArgument (3).
    public static let invalidArgument = GRPCStatusCode(rawValue: 3)

    /// Its name (`NotFound`), or `code N` for a number gRPC does not define.
    public var description: String {
        rawValue < Self.names.count ? Self.names[Int(rawValue)] : "code \(rawValue)"
    }

    /// The code gRPC's PROTOCOL-HTTP2.md gives an answer whose HTTP status is `httpStatus` and
    /// that carries no grpc-status.
    static func fromHTTP(_ httpStatus: Int) -> GRPCStatusCode {
        switch httpStatus {
        case 400: .internal
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .unimplemented
        case 429, 502, 503, 504: .unavailable
        default: .unknown
        }
    }
}

/// One call's answer assembled from the frames a server sends (gRPC over HTTP/2: response
/// headers, DATA, trailers; or a trailers-only answer): the HEADERS and CONTINUATION frames of
/// every stream go through the connection's HPACK decoder (its dynamic table follows them all),
/// the call's own carry `:status`, `grpc-status` and `grpc-message`. Safe on hostile frames: a
/// header block or DATA larger than `GRPCConnection.maximumResponseBytes` is an error.
public struct GRPCResponseReader: Sendable {
    /// What to do after a frame.
    public enum Step: Sendable, Equatable {
        /// Read the next frame.
        case more
        /// Send an acknowledgement frame of `type` (SETTINGS, PING) with `payload` on stream 0.
        case reply(type: UInt8, payload: [UInt8])
        /// The call answered with grpc-status 0 and this message.
        case message([UInt8])
    }

    /// The call's stream.
    public let stream: UInt32
    /// The socket's path, for errors.
    public let path: String
    private var data: [UInt8] = []
    /// The call's header fields so far (response headers, then trailers).
    public private(set) var headers: [HPACKHeader] = []
    /// A header block waiting for its CONTINUATIONs: its stream, whether it ends the stream, its bytes.
    private var pending: (stream: UInt32, endsStream: Bool, block: [UInt8])?

    /// A reader of the answer on `stream`.
    public init(stream: UInt32, path: String) {
        self.stream = stream
        self.path = path
    }

    /// Takes the next frame the server sent; throws `GRPCError.status` when the call ended with
    /// a status other than OK, `.callAborted` on RST_STREAM or GOAWAY, `.malformedResponse` on
    /// bytes that break HTTP/2, HPACK or gRPC framing.
    public mutating func read(_ frame: HTTP2Frame, decoder: inout HPACKDecoder) throws(GRPCError) -> Step {
        if let waiting = pending {
            guard frame.type == 9, frame.stream == waiting.stream else {
                throw .malformedResponse(path: path, reason: "frame of type \(frame.type) on stream \(frame.stream) where a CONTINUATION of stream \(waiting.stream) was due")
            }
            try checkBlockSize(waiting.block.count + frame.payload.count)
            pending?.block += frame.payload
            return frame.flags & 0x4 != 0 ? try endBlock(decoder: &decoder) : .more
        }
        switch frame.type {
        case 0 where frame.stream == stream:  // DATA
            guard let payload = frame.data else { throw .malformedResponse(path: path, reason: "DATA padding longer than its frame") }
            data += payload
            guard data.count <= GRPCConnection.maximumResponseBytes else {
                throw .malformedResponse(path: path, reason: "answer larger than \(GRPCConnection.maximumResponseBytes) bytes")
            }
            return frame.flags & 0x1 != 0 ? try finish() : .more
        case 1:  // HEADERS (any stream: the decoder's table follows every block)
            let fragment = try Self.fragment(of: frame, path: path)
            try checkBlockSize(fragment.count)
            pending = (frame.stream, frame.flags & 0x1 != 0, Array(fragment))
            return frame.flags & 0x4 != 0 ? try endBlock(decoder: &decoder) : .more
        case 9:
            throw .malformedResponse(path: path, reason: "CONTINUATION on stream \(frame.stream) without a HEADERS before it")
        case 5:  // PUSH_PROMISE: its header block would change the decoder's table; push is disabled (SETTINGS_ENABLE_PUSH 0)
            throw .malformedResponse(path: path, reason: "PUSH_PROMISE on stream \(frame.stream) although push is disabled")
        case 3 where frame.stream == stream:  // RST_STREAM
            throw .callAborted(path: path, code: frame.payload.count >= 4 ? GRPCConnection.readBigEndian(frame.payload[...]) : 0)
        case 4 where frame.flags & 0x1 == 0:  // SETTINGS: acknowledge
            return .reply(type: 4, payload: [])
        case 6 where frame.flags & 0x1 == 0:  // PING: answer
            return .reply(type: 6, payload: frame.payload)
        case 7:  // GOAWAY
            throw .callAborted(path: path, code: frame.payload.count >= 8 ? GRPCConnection.readBigEndian(frame.payload[4...]) : 0)
        default:
            return .more  // WINDOW_UPDATE, PRIORITY, acknowledgements, other streams
        }
    }

    private func checkBlockSize(_ count: Int) throws(GRPCError) {
        guard count <= GRPCConnection.maximumResponseBytes else {
            throw .malformedResponse(path: path, reason: "header block larger than \(GRPCConnection.maximumResponseBytes) bytes")
        }
    }

    /// A HEADERS frame's header block fragment: without its padding (PADDED) and priority (PRIORITY).
    static func fragment(of frame: HTTP2Frame, path: String) throws(GRPCError) -> ArraySlice<UInt8> {
        var start = 0, padding = 0
        if frame.flags & 0x8 != 0 {
            guard let length = frame.payload.first else { throw .malformedResponse(path: path, reason: "HEADERS padded with no pad length") }
            start = 1
            padding = Int(length)
        }
        if frame.flags & 0x20 != 0 { start += 5 }
        guard start + padding <= frame.payload.count else {
            throw .malformedResponse(path: path, reason: "HEADERS padding and priority longer than its frame")
        }
        return frame.payload[start..<(frame.payload.count - padding)]
    }

    private mutating func endBlock(decoder: inout HPACKDecoder) throws(GRPCError) -> Step {
        guard let block = pending else { return .more }
        pending = nil
        let fields: [HPACKHeader]
        do { fields = try decoder.decode(block.block) } catch { throw .malformedResponse(path: path, reason: error.description) }
        guard block.stream == stream else { return .more }
        headers += fields
        return block.endsStream ? try finish() : .more
    }

    /// The call's end: its message when grpc-status is 0, else the status thrown.
    private func finish() throws(GRPCError) -> Step {
        guard let statusText = headers.last(where: { $0.name == "grpc-status" })?.value else {
            let httpStatus = headers.first { $0.name == ":status" }?.value
            if let httpStatus, httpStatus != "200" {
                throw .status(path: path, code: .fromHTTP(Int(httpStatus) ?? 0), message: "HTTP status \(httpStatus)")
            }
            throw .malformedResponse(path: path, reason: "the call ended without grpc-status")
        }
        guard let number = UInt32(statusText) else { throw .malformedResponse(path: path, reason: "grpc-status '\(statusText)' is not a number") }
        let code = GRPCStatusCode(rawValue: number)
        guard code == .ok else {
            throw .status(path: path, code: code, message: Self.percentDecoded(headers.last { $0.name == "grpc-message" }?.value ?? ""))
        }
        guard let message = try GRPCConnection.message(in: data, path: path) else {
            throw .malformedResponse(path: path, reason: "grpc-status 0 with no message")
        }
        return .message(message)
    }

    /// `grpc-message`'s percent-encoding undone (%XX of UTF-8 bytes); a % not followed by two
    /// hex digits stays as it is.
    public static func percentDecoded(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count,
               let high = bytes[index + 1].hexDigitValue, let low = bytes[index + 2].hexDigitValue {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
