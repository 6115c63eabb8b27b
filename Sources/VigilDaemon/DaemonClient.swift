import Foundation
import VigilContainers
#if canImport(Glibc)
import Glibc
#endif

/// Why a request to the daemon failed, in words for the CLI's one line.
public enum DaemonClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing listens on the socket: the daemon is not running.
    case notRunning(path: String, stale: Bool)
    /// The socket exists but this user may not connect to it.
    case permissionDenied(path: String)
    /// The daemon refused the request (status and its message).
    case refused(status: Int, message: String)
    /// Anything else (I/O, malformed response).
    case failed(String)

    /// One line for the user.
    public var description: String {
        switch self {
        case .notRunning(let path, let stale):
            "the vigil daemon is not running (\(stale ? "stale socket" : "no socket") at \(path)): start it with `sudo vigil daemon` or `systemctl start vigil`"
        case .permissionDenied(let path):
            "permission denied on \(path): run as root or as a member of the daemon's socket group (socket_group)"
        case .refused(_, let message): message
        case .failed(let message): message
        }
    }
}

/// The control API's client, as the CLI uses it (HTTP over the unix socket, one connection per
/// request).
public struct DaemonClient: Sendable {
    /// The daemon's default socket: $VIGIL_ROOT/run/vigil/vigil.sock, else /run/vigil/vigil.sock.
    public static let defaultSocketPath = DaemonPaths.environment.socket

    /// The socket.
    public let socketPath: String
    private let http: UnixHTTPClient

    /// A client for the daemon at `socketPath`.
    public init(socketPath: String = DaemonClient.defaultSocketPath) {
        self.socketPath = socketPath
        http = UnixHTTPClient(socketPath: socketPath, timeout: .seconds(30), host: "vigil")
    }

    /// A request; returns the status and body of a 2xx response.
    public func request(_ method: String, _ target: String, body: [UInt8]? = nil, contentType: String? = nil) throws(DaemonClientError) -> (status: Int, body: [UInt8]) {
        do {
            return try http.request(method, target, body: body, contentType: contentType)
        } catch {
            throw map(error)
        }
    }

    /// The decoded JSON object of a GET.
    public func json(_ target: String) throws(DaemonClientError) -> Any {
        let body = try request("GET", target).body
        do {
            return try JSONSerialization.jsonObject(with: Data(body))
        } catch {
            throw .failed("GET \(target): the daemon's answer is not JSON: \(error.localizedDescription)")
        }
    }

    /// Streams a JSON-lines endpoint: `line` gets each line until the daemon ends the stream.
    public func lines(_ target: String, _ line: ([UInt8]) -> Void) throws(DaemonClientError) {
        var splitter = LineSplitter()
        do {
            try http.stream("GET", target) { bytes throws(DockerClientError) in
                do throws(HTTPDecodingError) {
                    for each in try splitter.feed(bytes) { line(each) }
                } catch {
                    throw .malformedResponse(request: "GET \(target)", reason: error.reason)
                }
            }
        } catch {
            throw map(error)
        }
    }

    /// Percent-encodes a query value.
    public static func queryValue(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    private func map(_ error: DockerClientError) -> DaemonClientError {
        switch error {
        case .socketUnavailable(_, let code) where code == ENOENT || code == ENOTDIR:
            return .notRunning(path: socketPath, stale: false)
        case .socketUnavailable(_, let code) where code == ECONNREFUSED:
            return .notRunning(path: socketPath, stale: true)
        case .socketUnavailable(_, let code) where code == EACCES || code == EPERM:
            return .permissionDenied(path: socketPath)
        case .socketUnavailable(_, let code):
            return .failed("cannot connect to \(socketPath): \(String(cString: strerror(code)))")
        case .unexpectedStatus(_, let status, let message):
            return .refused(status: status, message: message)
        case .io(let operation, _, let code):
            return .failed("vigil daemon socket \(socketPath): \(operation): \(String(cString: strerror(code)))")
        case .timedOut(let operation, _):
            return .failed("vigil daemon socket \(socketPath): \(operation) timed out")
        case .malformedResponse(let request, let reason):
            return .failed("\(request): malformed HTTP response: \(reason)")
        case .decoding(let request, let reason):
            return .failed("\(request): \(reason)")
        case .streamEnded(let request):
            return .failed("\(request): the daemon ended the stream")
        }
    }
}
