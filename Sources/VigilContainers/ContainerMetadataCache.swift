import VigilEvents
import Dispatch
import Synchronization

/// What a runtime API says about a container, beyond what its cgroup path tells.
public struct ContainerMetadata: Sendable, Hashable {
    /// The full container id.
    public var id: String
    /// The container's name (without Docker's leading `/`).
    public var name: String
    /// The image as the user named it.
    public var image: String
    /// The container's labels.
    public var labels: [String: String]
    /// The runtime whose API answered.
    public var runtime: ContainerRuntime
    /// The image's id (`sha256:...`), empty when the runtime did not say.
    public var imageID: String
    /// Whether the container runs privileged.
    public var privileged: Bool
    /// The writable layer of its root file system on the host (overlayfs upper directory), empty
    /// when not known.
    public var upperDir: String
    /// Its mounts (volumes and bind mounts); nil when the runtime did not say.
    public var mounts: [ContainerMount]?
    /// When it started, ns since the epoch; nil when the runtime did not say.
    public var startTimeNs: UInt64?
    /// The host pid of its first process when it was asked (Docker's `State.Pid`); nil when it
    /// was not running or the runtime did not say.
    public var pid: Int32?
    /// The labels of its Kubernetes pod (without the runtime's io.kubernetes.* keys); empty when
    /// not in a pod or the runtime did not say (containerd's CRI sandboxes say).
    public var podLabels: [String: String]

    /// Creates a metadata record.
    public init(id: String, name: String, image: String, labels: [String: String], runtime: ContainerRuntime,
                imageID: String = "", privileged: Bool = false, upperDir: String = "", mounts: [ContainerMount]? = nil,
                startTimeNs: UInt64? = nil, pid: Int32? = nil, podLabels: [String: String] = [:]) {
        self.podLabels = podLabels
        self.pid = pid
        self.mounts = mounts
        self.startTimeNs = startTimeNs
        self.id = id
        self.name = name
        self.image = image
        self.labels = labels
        self.runtime = runtime
        self.imageID = imageID
        self.privileged = privileged
        self.upperDir = upperDir
    }
}

extension ContainerMetadata {
    /// A pod's labels from its sandbox's: without the keys the kubelet and the runtime add
    /// (io.kubernetes.*, io.cri-containerd.*, io.containerd.*).
    public static func podLabels(fromSandboxLabels labels: [String: String]) -> [String: String] {
        labels.filter { !isRuntimeLabel($0.key) }
    }

    /// Whether a sandbox's label key is the kubelet's or the runtime's, not the pod's.
    static func isRuntimeLabel(_ key: String) -> Bool {
        key.hasPrefix("io.kubernetes.") || key.hasPrefix("io.cri-containerd.") || key.hasPrefix("io.containerd.")
    }
}

/// Something that can describe a container by id, such as a runtime's API.
public protocol ContainerMetadataSource: Sendable {
    /// The container's metadata; nil when the source has no such container. Throws when the
    /// source cannot be asked at all (for example, its socket is missing).
    func metadata(forContainerID id: String) throws -> ContainerMetadata?
}

extension DockerClient: ContainerMetadataSource {
    /// Inspects the container (`GET /containers/{id}/json`).
    public func metadata(forContainerID id: String) throws -> ContainerMetadata? {
        try inspect(id).map {
            ContainerMetadata(id: $0.id, name: $0.name, image: $0.image, labels: $0.labels, runtime: .docker,
                              imageID: $0.imageID, privileged: $0.privileged, upperDir: $0.upperDir, mounts: $0.mounts,
                              startTimeNs: $0.startTimeNs, pid: $0.running ? $0.pid : nil)
        }
    }
}

/// A cache of container metadata (id -> name, image, labels, runtime) for event enrichment.
///
/// The event path only ever reads: `cached(_:)` never blocks on I/O, and `lookup(_:)` adds a
/// background fetch of an unknown id. Fetches run one at a time on a private queue. Ids the
/// source does not know, and every id while the source is unreachable, are not asked for again
/// before `retryInterval`. The source going away or coming back is logged once per change and
/// visible in `sourceStatus`; it is never an error per event.
public final class ContainerMetadataCache: Sendable {
    /// Whether the source answered the last time it was asked.
    public enum SourceStatus: Sendable, Equatable {
        /// Not asked yet.
        case unknown
        /// The last request was answered.
        case available
        /// The last request failed; the text says why.
        case unavailable(String)
    }

    /// The source asked for unknown ids.
    public let source: any ContainerMetadataSource
    /// How long an id the source did not know (or could not be asked about) is left alone.
    public let retryInterval: Duration
    /// Entries kept at most; beyond that, remembered misses are dropped first.
    public let maximumEntries: Int

    private enum Entry {
        case known(ContainerMetadata)
        case absent(retryAfter: ContinuousClock.Instant)
    }

    /// What the source answered (`vigil status`'s `docker.metadata`, and /metrics'
    /// vigil_container_metadata_fetches_total).
    public struct Counters: Sendable, Equatable, Encodable {
        /// Fetches the source answered with the container.
        public var found: UInt64 = 0
        /// Fetches the source answered without it (no such container).
        public var notFound: UInt64 = 0
        /// Fetches that failed: the source missing, down or slow (the event keeps the container's
        /// id from its cgroup; name, image and labels stay empty).
        public var failed: UInt64 = 0
        /// Why the last fetch failed; nil when none did.
        public var lastFailure: String?
    }

    private struct State {
        var counters = Counters()
        var entries: [String: Entry] = [:]
        var pending: Set<String> = []
        var sourceStatus = SourceStatus.unknown
        var sourceDownUntil: ContinuousClock.Instant?

        func sourceIsDown(at now: ContinuousClock.Instant) -> Bool {
            sourceDownUntil.map { now < $0 } ?? false
        }
    }

    private let state = Mutex(State())
    private let log: @Sendable (String) -> Void
    private let fetchQueue = DispatchQueue(label: "vigil.container-metadata")

    /// Creates an empty cache over `source`; `log` receives one line per source status change.
    public init(
        source: any ContainerMetadataSource, retryInterval: Duration = .seconds(30),
        maximumEntries: Int = 16_384, log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.source = source
        self.retryInterval = retryInterval
        self.maximumEntries = maximumEntries
        self.log = log
    }

    /// The metadata if already cached; never blocks on I/O.
    public func cached(_ id: String) -> ContainerMetadata? {
        state.withLock { state in
            if case .known(let metadata) = state.entries[id] { return metadata }
            return nil
        }
    }

    /// The cached metadata, or nil after asking for a background fetch of the unknown id (an
    /// empty id, the host's, is never fetched).
    public func lookup(_ id: String) -> ContainerMetadata? {
        if let metadata = cached(id) { return metadata }
        requestFetch(id)
        return nil
    }

    /// Asks for `id` to be fetched (or refreshed) in the background, unless a fetch is pending,
    /// or the id or the source is in its retry interval.
    public func requestFetch(_ id: String) {
        guard !id.isEmpty else { return }
        let now = ContinuousClock.now
        let shouldFetch = state.withLock { state in
            if state.pending.contains(id) || state.sourceIsDown(at: now) { return false }
            if case .absent(let retryAfter) = state.entries[id], now < retryAfter { return false }
            state.pending.insert(id)
            return true
        }
        guard shouldFetch else { return }
        fetchQueue.async { [self] in
            // The source may have gone down while this request waited behind another.
            let sourceDown = state.withLock { state in
                guard state.sourceIsDown(at: .now) else { return false }
                state.pending.remove(id)
                return true
            }
            if !sourceDown { _ = fetchAndStore(id) }
        }
    }

    /// Fetches `id` now, on the calling thread, and returns the result (also cached). For
    /// callers off the event path, such as the CLI.
    public func fetch(_ id: String) -> ContainerMetadata? {
        fetchAndStore(id)
    }

    /// Keeps the cache current: a start refreshes the container, a destroy evicts it; a die
    /// keeps it, since the container's last events are still being enriched.
    public func apply(_ event: ContainerEvent) {
        switch event.action {
        case .start:
            state.withLock { state in
                if case .absent = state.entries[event.id] { state.entries[event.id] = nil }
                state.sourceDownUntil = nil  // the engine just spoke
            }
            requestFetch(event.id)
        case .destroy:
            state.withLock { _ = $0.entries.removeValue(forKey: event.id) }
        case .die:
            break
        }
    }

    /// Starts `watcher` with a handler that applies its events to this cache (and drops all
    /// entries after a reconnection, when events may have been missed), then hands each update
    /// to `also` (others that follow containers: the fim monitor's watches inside them), in
    /// order, once the fetch it asked for is done: `also` finds a started container's metadata
    /// (its pid too) in the cache, without asking the runtime again. Stop it with `watcher.stop()`.
    public func follow(_ watcher: DockerEventWatcher, also: (@Sendable (DockerEventWatcher.Update) -> Void)? = nil) {
        let connectedBefore = Mutex(false)
        watcher.start { [self] update in
            // Fetches run in order on fetchQueue: this runs after the one `apply` asked for.
            defer { if let also { fetchQueue.async { also(update) } } }
            switch update {
            case .event(let event):
                apply(event)
            case .connected:
                if connectedBefore.withLock({ before in defer { before = true }; return before }) { removeAll() }
            case .disconnected:
                break
            }
        }
    }

    /// Empties the cache (pending fetches still complete).
    public func removeAll() {
        state.withLock { state in
            state.entries = [:]
            state.sourceDownUntil = nil
        }
    }

    /// Whether the source answered the last time it was asked.
    public var sourceStatus: SourceStatus { state.withLock { $0.sourceStatus } }

    /// The fetches so far.
    public var counters: Counters { state.withLock { $0.counters } }

    /// Waits until the background fetches requested so far have finished.
    public func waitForPendingFetches() {
        fetchQueue.sync {}
    }

    // MARK: - Internals

    private func fetchAndStore(_ id: String) -> ContainerMetadata? {
        let result = Result { try source.metadata(forContainerID: id) }
        let now = ContinuousClock.now
        let (metadata, statusChange) = state.withLock { state -> (ContainerMetadata?, String?) in
            state.pending.remove(id)
            let previousStatus = state.sourceStatus
            switch result {
            case .success(let metadata?):
                state.entries[id] = .known(metadata)
                state.sourceStatus = .available
                state.counters.found += 1
            case .success(nil):
                state.entries[id] = .absent(retryAfter: now + retryInterval)
                state.sourceStatus = .available
                state.counters.notFound += 1
            case .failure(let error):
                state.counters.failed += 1
                state.counters.lastFailure = String(describing: error)
                if case .known = state.entries[id] {} else {
                    state.entries[id] = .absent(retryAfter: now + retryInterval)
                }
                state.sourceDownUntil = now + retryInterval
                state.sourceStatus = .unavailable(String(describing: error))
            }
            trimIfNeeded(&state)
            let metadata: ContainerMetadata? = if case .known(let metadata) = state.entries[id] { metadata } else { nil }
            return (metadata, Self.describeChange(from: previousStatus, to: state.sourceStatus))
        }
        if let statusChange { log(statusChange) }
        return metadata
    }

    private func trimIfNeeded(_ state: inout State) {
        guard state.entries.count > maximumEntries else { return }
        state.entries = state.entries.filter { if case .known = $0.value { true } else { false } }
        while state.entries.count > maximumEntries, let victim = state.entries.keys.first {
            state.entries[victim] = nil
        }
    }

    /// The log line for a change of source status, or nil when nothing worth saying changed.
    private static func describeChange(from old: SourceStatus, to new: SourceStatus) -> String? {
        switch (old, new) {
        case (.unavailable, .available):
            return "container metadata source is available again; names and images resume"
        case (.unavailable, .unavailable):
            return nil
        case (_, .unavailable(let reason)):
            return "container metadata unavailable (\(reason)); container name and image fields stay empty"
        default:
            return nil
        }
    }
}
