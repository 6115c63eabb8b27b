/// Status and headers of an HTTP/1.1 response.
public struct HTTPResponseHead: Sendable, Equatable {
    /// The status code (200, 404, ...).
    public var status: Int
    /// Header names lowercased; a repeated header keeps its last value.
    public var headers: [String: String]
    /// The `x` of the status line's `HTTP/1.x`.
    public var minorVersion = 1

    /// Whether the server leaves the connection open after this answer: HTTP/1.1 without
    /// `Connection: close` (HTTP/1.0 closes unless told otherwise; Vigil never asks it to).
    public var keepsConnectionOpen: Bool {
        minorVersion >= 1 && !(headers["connection"]?.lowercased().contains("close") ?? false)
    }
}

/// What `HTTPResponseDecoder` found in the bytes fed so far.
public enum HTTPResponsePart: Sendable, Equatable {
    /// The status line and headers.
    case head(HTTPResponseHead)
    /// Body bytes with any chunked framing removed.
    case body([UInt8])
    /// The response is complete.
    case end
}

/// Why an HTTP response could not be decoded.
public struct HTTPDecodingError: Error, Equatable, CustomStringConvertible {
    /// What was wrong.
    public var reason: String
    /// The reason.
    public var description: String { reason }
}

/// An incremental HTTP/1.1 response decoder: status line, headers, then a body framed by
/// `Content-Length`, `Transfer-Encoding: chunked` (RFC 9112 section 7.1), or the end of the
/// connection. Feed it bytes as they arrive; it returns whatever parts became complete.
/// Used by the Docker client (unix socket) and by VigilActions' webhook client (TCP).
public struct HTTPResponseDecoder {
    private enum State {
        case head
        case fixedLength(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    /// The largest status line plus headers (or chunk-size line) accepted.
    static let maximumHeadBytes = 64 * 1024

    private var state = State.head
    private var buffer: [UInt8] = []
    private var readIndex = 0

    /// A decoder waiting for a status line.
    public init() {}

    /// True once the whole response has been decoded.
    public var isComplete: Bool {
        if case .done = state { return true }
        return false
    }

    /// Decodes as much of `bytes` (appended to earlier input) as possible.
    public mutating func feed(_ bytes: [UInt8]) throws(HTTPDecodingError) -> [HTTPResponsePart] {
        buffer.append(contentsOf: bytes)
        var parts: [HTTPResponsePart] = []
        while let part = try nextPart() { parts.append(part) }
        if readIndex > 4096, readIndex * 2 > buffer.count {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        return parts
    }

    /// Signals the end of the connection: completes a body read until close, fails otherwise.
    public mutating func finish() throws(HTTPDecodingError) -> [HTTPResponsePart] {
        switch state {
        case .done: return []
        case .untilClose:
            state = .done
            return [.end]
        default: throw HTTPDecodingError(reason: "connection closed before the response was complete")
        }
    }

    private var unread: ArraySlice<UInt8> { buffer[readIndex...] }

    private mutating func nextPart() throws(HTTPDecodingError) -> HTTPResponsePart? {
        switch state {
        case .head:
            guard let headEnd = firstIndex(of: [13, 10, 13, 10]) else {
                if unread.count > Self.maximumHeadBytes { throw HTTPDecodingError(reason: "response head too large") }
                return nil
            }
            let head = try Self.parseHead(buffer[readIndex..<headEnd])
            readIndex = headEnd + 4
            state = Self.bodyState(for: head)
            return .head(head)
        case .fixedLength(let remaining):
            if remaining == 0 { return finishBody() }
            return takeBody(upTo: remaining) { .fixedLength(remaining: $0) }
        case .chunkSize:
            guard let line = try takeLine() else { return nil }
            let sizeText = line.prefix { $0 != UInt8(ascii: ";") }  // drop chunk extensions
            guard let size = Int(String(decoding: sizeText, as: UTF8.self).trimmingSpaces, radix: 16), size >= 0
            else { throw HTTPDecodingError(reason: "bad chunk size line") }
            state = size == 0 ? .trailers : .chunkData(remaining: size)
            return try nextPart()
        case .chunkData(let remaining):
            return takeBody(upTo: remaining) { $0 == 0 ? .chunkDataEnd : .chunkData(remaining: $0) }
        case .chunkDataEnd:
            guard let line = try takeLine() else { return nil }
            guard line.isEmpty else { throw HTTPDecodingError(reason: "chunk data longer than its size") }
            state = .chunkSize
            return try nextPart()
        case .trailers:
            guard let line = try takeLine() else { return nil }
            return line.isEmpty ? finishBody() : try nextPart()
        case .untilClose:
            return takeBody(upTo: Int.max) { _ in .untilClose }
        case .done:
            return nil
        }
    }

    private mutating func finishBody() -> HTTPResponsePart {
        state = .done
        return .end
    }

    private mutating func takeBody(upTo limit: Int, nextState: (Int) -> State) -> HTTPResponsePart? {
        let count = min(limit, unread.count)
        guard count > 0 else { return nil }
        let bytes = Array(buffer[readIndex..<readIndex + count])
        readIndex += count
        state = nextState(limit == Int.max ? limit : limit - count)
        return .body(bytes)
    }

    /// The next CRLF-terminated line without its CRLF, or nil if not all there yet.
    private mutating func takeLine() throws(HTTPDecodingError) -> ArraySlice<UInt8>? {
        guard let end = firstIndex(of: [13, 10]) else {
            if unread.count > Self.maximumHeadBytes { throw HTTPDecodingError(reason: "line too long") }
            return nil
        }
        let line = buffer[readIndex..<end]
        readIndex = end + 2
        return line
    }

    private func firstIndex(of pattern: [UInt8]) -> Int? {
        guard unread.count >= pattern.count else { return nil }
        var index = readIndex
        while index <= buffer.count - pattern.count {
            if buffer[index] == pattern[0], buffer[index..<index + pattern.count].elementsEqual(pattern) {
                return index
            }
            index += 1
        }
        return nil
    }

    private static func parseHead(_ bytes: ArraySlice<UInt8>) throws(HTTPDecodingError) -> HTTPResponseHead {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusFields = lines.first?.split(separator: " ", maxSplits: 2) ?? []
        guard statusFields.count >= 2, statusFields[0].hasPrefix("HTTP/1."),
            let status = Int(statusFields[1]), (100...999).contains(status)
        else { throw HTTPDecodingError(reason: "bad status line") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else {
                throw HTTPDecodingError(reason: "bad header line")
            }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...]).trimmingSpaces
        }
        return HTTPResponseHead(status: status, headers: headers, minorVersion: statusFields[0] == "HTTP/1.0" ? 0 : 1)
    }

    private static func bodyState(for head: HTTPResponseHead) -> State {
        if head.status == 204 || head.status == 304 { return .fixedLength(remaining: 0) }
        if let encoding = head.headers["transfer-encoding"], encoding.lowercased().contains("chunked") {
            return .chunkSize
        }
        if let length = head.headers["content-length"].flatMap({ Int($0) }), length >= 0 {
            return .fixedLength(remaining: length)
        }
        return .untilClose
    }
}

/// Splits a byte stream into newline-terminated lines (streamed JSON objects: Docker's events,
/// the vigil daemon's event and alert streams).
public struct LineSplitter {
    /// The longest line kept; longer input is an error rather than unbounded memory.
    public static let maximumLineBytes = 1 << 20

    private var pending: [UInt8] = []

    /// An empty splitter.
    public init() {}

    /// Returns the complete, non-empty lines in `pending + bytes`.
    public mutating func feed(_ bytes: [UInt8]) throws(HTTPDecodingError) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if !pending.isEmpty { lines.append(pending) }
                pending.removeAll(keepingCapacity: true)
            } else {
                pending.append(byte)
                if pending.count > Self.maximumLineBytes { throw HTTPDecodingError(reason: "streamed line too long") }
            }
        }
        return lines
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
