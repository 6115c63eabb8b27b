#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VigilEvents

/// Why a Docker Engine API request failed.
public enum DockerClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `connect(2)` to the socket failed: no engine (ENOENT, ECONNREFUSED) or no permission.
    case socketUnavailable(path: String, errno: Int32)
    /// A socket call failed mid-request.
    case io(operation: String, path: String, errno: Int32)
    /// The engine did not answer within the client's timeout.
    case timedOut(operation: String, path: String)
    /// The bytes received are not a valid HTTP/1.1 response.
    case malformedResponse(request: String, reason: String)
    /// The engine answered with a non-2xx status; `message` is its error text.
    case unexpectedStatus(request: String, status: Int, message: String)
    /// The response body is not the JSON the API documents.
    case decoding(request: String, reason: String)
    /// The engine closed a stream that stays open while it runs (`GET /events`).
    case streamEnded(request: String)

    /// A one-line explanation including the operation, socket path and errno text.
    public var description: String {
        switch self {
        case .socketUnavailable(let path, let code):
            return "Docker Engine socket \(path) unavailable: connect: \(String(cString: strerror(code)))"
        case .io(let operation, let path, let code):
            return "Docker Engine socket \(path): \(operation): \(String(cString: strerror(code)))"
        case .timedOut(let operation, let path):
            return "Docker Engine socket \(path): \(operation) timed out"
        case .malformedResponse(let request, let reason):
            return "Docker Engine \(request): malformed HTTP response: \(reason)"
        case .unexpectedStatus(let request, let status, let message):
            return "Docker Engine \(request): HTTP \(status): \(message)"
        case .decoding(let request, let reason):
            return "Docker Engine \(request): unexpected JSON: \(reason)"
        case .streamEnded(let request):
            return "Docker Engine \(request): the engine ended the stream"
        }
    }
}

/// A container as listed by `GET /containers/json`.
public struct DockerContainerSummary: Sendable, Hashable {
    /// The full 64-hex container id.
    public var id: String
    /// The container's names without the leading `/`.
    public var names: [String]
    /// The image as the user named it (e.g. `busybox:1`).
    public var image: String
    /// The container's labels.
    public var labels: [String: String]
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    public var state: String
    /// Its IP addresses on its networks (`NetworkSettings.Networks.*.IPAddress` and
    /// `GlobalIPv6Address`; none for `--network none` or host).
    public var addresses: [String] = []
}

/// A container as described by `GET /containers/{id}/json` (`docker inspect`).
public struct DockerContainerDetails: Sendable, Hashable {
    /// The full 64-hex container id.
    public var id: String
    /// The container's name without the leading `/`.
    public var name: String
    /// The image as the user named it (`Config.Image`).
    public var image: String
    /// The container's labels (`Config.Labels`).
    public var labels: [String: String]
    /// The host PID of the container's first process (`State.Pid`); nil when not running.
    public var pid: Int32?
    /// Whether the container is running (`State.Running`).
    public var running: Bool
    /// The image's id (`Image`, `sha256:...`).
    public var imageID: String = ""
    /// Whether it runs privileged (`HostConfig.Privileged`).
    public var privileged: Bool = false
    /// The writable layer of its root file system (`GraphDriver.Data.UpperDir`, overlay2), empty
    /// for other storage drivers.
    public var upperDir: String = ""
    /// Its volumes and bind mounts (`Mounts`), in the engine's order.
    public var mounts: [ContainerMount] = []
    /// When it last started, ns since the epoch (`State.StartedAt`); nil when never started.
    public var startTimeNs: UInt64?
}

/// A Docker Engine API client speaking HTTP/1.1 over the engine's unix socket.
///
/// Each request opens its own connection (`Connection: close`), so the client is a plain value
/// that any thread may use.
public struct DockerClient: Sendable {
    /// The engine's default socket.
    public static let defaultSocketPath = "/var/run/docker.sock"

    /// The unix socket the engine listens on.
    public var socketPath: String
    /// How long one connect, send or receive may wait.
    public var timeout: Duration

    /// Creates a client for the engine at `socketPath`.
    public init(socketPath: String = DockerClient.defaultSocketPath, timeout: Duration = .seconds(2)) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    /// Checks that the engine answers (`GET /_ping`).
    public func ping() throws(DockerClientError) {
        _ = try get("/_ping")
    }

    /// The containers the engine knows (`GET /containers/json`): running ones, or all with `all`.
    public func containers(all: Bool = false) throws(DockerClientError) -> [DockerContainerSummary] {
        let target = all ? "/containers/json?all=true" : "/containers/json"
        return try decode([WireSummary].self, from: try get(target), request: target).map {
            DockerContainerSummary(
                id: $0.Id, names: ($0.Names ?? []).map(Self.trimmingSlash), image: $0.Image ?? "",
                labels: $0.Labels ?? [:], state: $0.State ?? "",
                addresses: ($0.NetworkSettings?.Networks ?? [:]).values.flatMap { [$0.IPAddress ?? "", $0.GlobalIPv6Address ?? ""] }
                    .filter { !$0.isEmpty }.sorted())
        }
    }

    /// Details of one container by id, id prefix or name (`GET /containers/{id}/json`); nil when
    /// the engine has no such container.
    public func inspect(_ id: String) throws(DockerClientError) -> DockerContainerDetails? {
        let target = "/containers/\(Self.percentEncoded(id))/json"
        let body: [UInt8]
        do {
            body = try get(target)
        } catch .unexpectedStatus(_, status: 404, _) {
            return nil
        }
        let wire = try decode(WireDetails.self, from: body, request: target)
        let pid = wire.State?.Pid ?? 0
        return DockerContainerDetails(
            id: wire.Id, name: Self.trimmingSlash(wire.Name ?? ""), image: wire.Config?.Image ?? "",
            labels: wire.Config?.Labels ?? [:], pid: pid > 0 ? pid : nil, running: wire.State?.Running ?? false,
            imageID: wire.Image ?? "", privileged: wire.HostConfig?.Privileged ?? false,
            upperDir: wire.GraphDriver?.Data?["UpperDir"] ?? "",
            mounts: (wire.Mounts ?? []).map {
                ContainerMount(source: $0.Source ?? "", destination: $0.Destination ?? "", mode: $0.Mode ?? "",
                               readWrite: $0.RW ?? true, propagation: $0.Propagation ?? "")
            },
            startTimeNs: wire.State?.StartedAt.flatMap(Timestamp.parseISO8601))
    }

    // MARK: - Container operations (POST)

    /// Pauses every process of a container (`POST /containers/{id}/pause`, `docker pause`: the
    /// cgroup freezer). Throws `.unexpectedStatus` with status 404 for an unknown container and
    /// 409 for one that is not running or already paused.
    public func pause(_ id: String) throws(DockerClientError) {
        try post("/containers/\(Self.percentEncoded(id))/pause")
    }

    /// Resumes a paused container (`POST /containers/{id}/unpause`, `docker unpause`). Throws
    /// `.unexpectedStatus` with status 404 for an unknown container and 409 when it is not paused.
    public func unpause(_ id: String) throws(DockerClientError) {
        try post("/containers/\(Self.percentEncoded(id))/unpause")
    }

    /// Stops a container (`POST /containers/{id}/stop?t=SECONDS`, `docker stop`): SIGTERM, then
    /// SIGKILL after `graceSeconds`. Returns false when it was already stopped (HTTP 304). The
    /// request waits for the stop, so the client's `timeout` must exceed `graceSeconds`.
    @discardableResult
    public func stop(_ id: String, graceSeconds: Int = 10) throws(DockerClientError) -> Bool {
        try post("/containers/\(Self.percentEncoded(id))/stop?t=\(graceSeconds)") != 304
    }

    /// Sends a signal to a container's first process (`POST /containers/{id}/kill?signal=NAME`,
    /// `docker kill`; default SIGKILL). Throws `.unexpectedStatus` with status 409 when the
    /// container is not running (a paused container can be killed).
    public func kill(_ id: String, signal: String = "KILL") throws(DockerClientError) {
        try post("/containers/\(Self.percentEncoded(id))/kill?signal=\(Self.percentEncoded(signal))")
    }

    /// Checkpoints a running container with CRIU (`POST /containers/{id}/checkpoints`, `docker
    /// checkpoint create`; the engine must run with experimental features and find `criu`): its
    /// processes' state goes to `directory`/`name` (the engine's own directory under the
    /// container's when `directory` is nil), from where `docker start --checkpoint NAME
    /// --checkpoint-dir DIRECTORY` restores it. `exit`: the container stops once checkpointed (the
    /// engine's default), else it goes on running. Throws `.unexpectedStatus` with the engine's
    /// message (CRIU's failure and its log's path) when the checkpoint fails.
    public func checkpoint(_ id: String, name: String, directory: String?, exit: Bool) throws(DockerClientError) {
        var request: [String: Any] = ["CheckpointID": name, "Exit": exit]
        if let directory { request["CheckpointDir"] = directory }
        let body = (try? JSONSerialization.data(withJSONObject: request, options: [.sortedKeys])).map { [UInt8]($0) } ?? []
        try UnixHTTPClient(socketPath: socketPath, timeout: timeout, host: "docker")
            .exchange(method: "POST", target: "/containers/\(Self.percentEncoded(id))/checkpoints", body: body,
                      contentType: "application/json", socketTimeout: timeout, onHead: { _ in }, onBody: { _ in })
    }

    // MARK: - HTTP over the socket

    /// Performs a GET and returns the whole body of a 2xx response.
    func get(_ target: String) throws(DockerClientError) -> [UInt8] {
        var body: [UInt8] = []
        try exchange(target, socketTimeout: timeout, onHead: { _ in }, onBody: { body += $0 })
        return body
    }

    /// Performs a POST without a body and returns the 2xx (or 304) status; the body is ignored.
    @discardableResult
    func post(_ target: String) throws(DockerClientError) -> Int {
        var status = 0
        try exchange(target, method: "POST", socketTimeout: timeout, onHead: { status = $0.status }, onBody: { _ in })
        return status
    }

    /// Performs a request and streams a 2xx response (see `UnixHTTPClient.exchange`). 304 (Not
    /// Modified: the engine's answer to stopping a stopped container) counts as success too.
    func exchange(
        _ target: String, method: String = "GET", socketTimeout: Duration,
        register: (UnixStreamSocket) -> Bool = { _ in true },
        onHead: (HTTPResponseHead) throws(DockerClientError) -> Void,
        onBody: ([UInt8]) throws(DockerClientError) -> Void
    ) throws(DockerClientError) {
        try UnixHTTPClient(socketPath: socketPath, timeout: timeout, host: "docker")
            .exchange(method: method, target: target, alsoSuccessful: [304], socketTimeout: socketTimeout,
                      register: register, onHead: onHead, onBody: onBody)
    }

    private func decode<T: Decodable>(_ type: T.Type, from body: [UInt8], request: String) throws(DockerClientError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch {
            throw .decoding(request: "GET \(request)", reason: String(describing: error))
        }
    }

    static func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: urlUnreserved) ?? text
    }

    private static let urlUnreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    private static func trimmingSlash(_ name: String) -> String {
        name.hasPrefix("/") ? String(name.dropFirst()) : name
    }
}

// The engine's JSON, field names as the API spells them.
private struct WireSummary: Decodable {
    struct Network: Decodable {
        var IPAddress: String?
        var GlobalIPv6Address: String?
    }
    struct Settings: Decodable {
        var Networks: [String: Network]?
    }
    var Id: String
    var Names: [String]?
    var Image: String?
    var Labels: [String: String]?
    var State: String?
    var NetworkSettings: Settings?
}

private struct WireDetails: Decodable {
    struct Config: Decodable {
        var Image: String?
        var Labels: [String: String]?
    }
    struct State: Decodable {
        var Pid: Int32?
        var Running: Bool?
        var StartedAt: String?
    }
    struct HostConfig: Decodable {
        var Privileged: Bool?
    }
    struct GraphDriver: Decodable {
        var Data: [String: String]?
    }
    struct Mount: Decodable {
        var Source: String?
        var Destination: String?
        var Mode: String?
        var RW: Bool?
        var Propagation: String?
    }
    var Id: String
    var Mounts: [Mount]?
    var Name: String?
    var Image: String?
    var Config: Config?
    var State: State?
    var HostConfig: HostConfig?
    var GraphDriver: GraphDriver?
}
