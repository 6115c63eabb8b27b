#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import Synchronization

/// A container lifecycle event from the Docker Engine's event stream.
public struct ContainerEvent: Sendable, Hashable {
    /// The lifecycle actions Vigil follows.
    public enum Action: String, Sendable, Hashable, CaseIterable {
        /// The container's first process started.
        case start
        /// The container's first process exited.
        case die
        /// The container was removed.
        case destroy
    }

    /// What happened.
    public var action: Action
    /// The full 64-hex container id.
    public var id: String
    /// The container's name (`Actor.Attributes.name`), when given.
    public var name: String?
    /// The container's image (`Actor.Attributes.image`), when given.
    public var image: String?
    /// When it happened, in nanoseconds since the epoch (`timeNano`); 0 when not given.
    public var timeNanoseconds: Int64

    /// Creates an event.
    public init(action: Action, id: String, name: String? = nil, image: String? = nil, timeNanoseconds: Int64 = 0) {
        self.action = action
        self.id = id
        self.name = name
        self.image = image
        self.timeNanoseconds = timeNanoseconds
    }

    /// Decodes one JSON object of `GET /events`; nil for other types or actions.
    package static func decode(json line: [UInt8]) -> ContainerEvent? {
        struct Wire: Decodable {
            struct Actor: Decodable {
                var ID: String?
                var Attributes: [String: String]?
            }
            var `Type`: String?
            var Action: String?
            var id: String?
            var Actor: Actor?
            var timeNano: Int64?
        }
        guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(line)), wire.Type == "container",
            let action = wire.Action.flatMap(Action.init(rawValue:)),
            let id = wire.Actor?.ID ?? wire.id, !id.isEmpty
        else { return nil }
        let attributes = wire.Actor?.Attributes ?? [:]
        return ContainerEvent(
            action: action, id: id, name: attributes["name"], image: attributes["image"],
            timeNanoseconds: wire.timeNano ?? 0)
    }
}

/// Follows the Docker Engine's container events (`GET /events`, a chunked stream of JSON
/// objects) on a background thread, reconnecting with back-off when the engine goes away.
public final class DockerEventWatcher: Sendable {
    /// What the watcher reports to its handler, in order, on its own thread.
    public enum Update: Sendable {
        /// The engine accepted the subscription; events from now on will be delivered.
        case connected
        /// A container started, died or was destroyed.
        case event(ContainerEvent)
        /// The stream ended or could not be opened; the watcher retries after a delay.
        case disconnected(DockerClientError)
    }

    /// The client whose socket is watched.
    public let client: DockerClient
    /// The delay before the first reconnection; it doubles per failure up to the maximum.
    public let reconnectDelay: Duration
    /// The longest delay between reconnections.
    public let maximumReconnectDelay: Duration

    /// How the subscription fared (`vigil status`'s `docker.events`, and /metrics'
    /// vigil_docker_events_subscriptions_total).
    public struct Counters: Sendable, Equatable, Encodable {
        /// Whether a subscription is open now.
        public var connected = false
        /// Subscriptions the engine accepted (the first, then each reconnection).
        public var connections: UInt64 = 0
        /// Subscriptions that ended or could not be opened (the engine stopped, restarted, is
        /// missing); each is followed by a reconnection after the back-off.
        public var failures: UInt64 = 0
        /// Why the last one ended; nil when none did.
        public var lastError: String?
    }

    private struct State {
        var started = false
        var stopping = false
        var socket: UnixStreamSocket?
        /// The watcher's thread, so that `stop` called from the handler does not wait for itself.
        var thread: pthread_t?
        /// Seconds since the epoch of the last event seen, to resume with `since` after a gap.
        var lastEventSecond: Int64?
        var counters = Counters()
    }

    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// Creates a watcher; nothing happens until `start`.
    public init(
        client: DockerClient = DockerClient(), reconnectDelay: Duration = .milliseconds(500),
        maximumReconnectDelay: Duration = .seconds(30)
    ) {
        self.client = client
        self.reconnectDelay = reconnectDelay
        self.maximumReconnectDelay = maximumReconnectDelay
    }

    /// Starts the background thread, which calls `handler` for every update until `stop` (the
    /// thread keeps the watcher alive until then). Calling it again has no effect.
    public func start(_ handler: @escaping @Sendable (Update) -> Void) {
        let first = state.withLock { state in
            defer { state.started = true }
            return !state.started && !state.stopping
        }
        guard first else { return }
        let thread = Thread { [self] in
            state.withLock { $0.thread = pthread_self() }
            run(handler)
            finished.signal()
        }
        thread.name = "vigil-docker-events"
        thread.start()
    }

    /// Stops watching and waits (up to `timeout`) for the thread to finish, after which the
    /// handler is not called again. From the handler itself it returns without waiting.
    public func stop(timeout: Duration = .seconds(5)) {
        let (wasRunning, calledFromHandler) = state.withLock { state in
            defer { state.stopping = true }
            state.socket?.shutdownBothDirections()
            let onWatcherThread = state.thread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
            return (state.started && !state.stopping, onWatcherThread)
        }
        guard wasRunning else { return }
        wakeUp.signal()
        if !calledFromHandler {
            _ = finished.wait(timeout: .now() + .nanoseconds(Int(timeout.totalNanoseconds)))
        }
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    /// The subscriptions so far.
    public var counters: Counters { state.withLock { $0.counters } }

    private func run(_ handler: @Sendable (Update) -> Void) {
        var delay = reconnectDelay
        while !isStopping {
            do {
                try follow(handler) { delay = self.reconnectDelay }
            } catch {
                if isStopping { break }
                state.withLock { state in
                    state.counters.connected = false
                    state.counters.failures += 1
                    state.counters.lastError = String(describing: error)
                }
                handler(.disconnected(error))
            }
            state.withLock { $0.socket = nil }
            if isStopping { break }
            _ = wakeUp.wait(timeout: .now() + .nanoseconds(Int(delay.totalNanoseconds)))
            delay = min(delay * 2, maximumReconnectDelay)
        }
    }

    /// One subscription: returns when the engine ends the stream or `stop` shuts the socket.
    private func follow(
        _ handler: @Sendable (Update) -> Void, onConnected: () -> Void
    ) throws(DockerClientError) {
        var lines = LineSplitter()
        try client.exchange(
            eventsTarget(), socketTimeout: .zero,
            register: { socket in
                state.withLock { state in
                    guard !state.stopping else { return false }
                    state.socket = socket
                    return true
                }
            },
            onHead: { _ throws(DockerClientError) in
                state.withLock { state in
                    state.counters.connected = true
                    state.counters.connections += 1
                }
                onConnected()
                handler(.connected)
            },
            onBody: { bytes throws(DockerClientError) in
                let objects: [[UInt8]]
                do throws(HTTPDecodingError) {
                    objects = try lines.feed(bytes)
                } catch {
                    throw .malformedResponse(request: "GET /events", reason: error.reason)
                }
                for object in objects where !isStopping {
                    guard let event = ContainerEvent.decode(json: object) else { continue }
                    state.withLock { $0.lastEventSecond = event.timeNanoseconds / 1_000_000_000 }
                    handler(.event(event))
                }
            })
        if !isStopping { throw .streamEnded(request: "GET /events") }
    }

    private func eventsTarget() -> String {
        let filters = #"{"type":["container"],"event":["start","die","destroy"]}"#
        var target = "/events?filters=" + DockerClient.percentEncoded(filters)
        if let since = state.withLock({ $0.lastEventSecond }), since > 0 { target += "&since=\(since)" }
        return target
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating).
    var totalNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : scaled + attoseconds / 1_000_000_000
    }
}
