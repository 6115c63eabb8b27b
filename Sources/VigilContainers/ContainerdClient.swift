import Synchronization

/// A container record of containerd's containers service (`containerd.services.containers.v1.Container`,
/// api/services/containers/v1/containers.proto): the fields Vigil reads.
public struct ContainerdContainer: Sendable, Hashable {
    /// `id` (1).
    public var id = ""
    /// `labels` (2): the CRI's io.kubernetes.* labels and the pod's labels on a sandbox.
    public var labels: [String: String] = [:]
    /// `image` (3): the image reference.
    public var image = ""
    /// `runtime.name` (4.1), e.g. `io.containerd.runc.v2`.
    public var runtimeName = ""
    /// `created_at` (8), ns since the epoch; nil when absent.
    public var createdAtNs: UInt64?

    /// An empty record.
    public init() {}

    /// Decodes a `Container` message from untrusted bytes; unknown fields are skipped.
    public init(decoding bytes: ArraySlice<UInt8>) throws(ProtobufWireError) {
        var reader = ProtobufReader(bytes)
        while let (field, value) = try reader.next() {
            switch field {
            case 1: id = value.string ?? id
            case 2:
                // A map entry: key = 1, value = 2.
                guard let entry = value.message else { continue }
                var entryReader = ProtobufReader(entry)
                var key = "", text = ""
                while let (entryField, entryValue) = try entryReader.next() {
                    if entryField == 1 { key = entryValue.string ?? key }
                    if entryField == 2 { text = entryValue.string ?? text }
                }
                labels[key] = text
            case 3: image = value.string ?? image
            case 4:
                guard let runtime = value.message else { continue }
                var runtimeReader = ProtobufReader(runtime)
                while let (runtimeField, runtimeValue) = try runtimeReader.next() {
                    if runtimeField == 1 { runtimeName = runtimeValue.string ?? runtimeName }
                }
            case 8:
                guard let timestamp = value.message else { continue }
                var seconds: UInt64 = 0, nanos: UInt64 = 0
                var timestampReader = ProtobufReader(timestamp)
                while let (timestampField, timestampValue) = try timestampReader.next() {
                    guard case .varint(let number) = timestampValue else { continue }
                    if timestampField == 1 { seconds = number }
                    if timestampField == 2 { nanos = number }
                }
                let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
                createdAtNs = overflow ? nil : ns &+ min(nanos, 999_999_999)
            default: break
            }
        }
    }

    /// Decodes a `GetContainerResponse` (`container` = 1); nil when it holds no container.
    public static func decodeGetResponse(_ bytes: ArraySlice<UInt8>) throws(ProtobufWireError) -> ContainerdContainer? {
        var reader = ProtobufReader(bytes)
        var container: ContainerdContainer?
        while let (field, value) = try reader.next() {
            if field == 1, let message = value.message { container = try ContainerdContainer(decoding: message) }
        }
        return container
    }
}

/// Counters of a containerd client's lookups (`vigil status`'s `containerd`, and /metrics'
/// vigil_containerd_lookups_total and vigil_containerd_failures_total).
public struct ContainerdClientCounters: Sendable, Equatable, Encodable {
    /// Lookups asked.
    public var lookups: UInt64 = 0
    /// Lookups containerd answered with a container.
    public var found: UInt64 = 0
    /// Lookups that failed: containerd down, slow (timed out), answering garbage, or answering
    /// a gRPC status other than OK and NotFound.
    public var failures: UInt64 = 0
    /// The failures per kind (`GRPCError.kind`: the gRPC code's name, such as
    /// `PermissionDenied`, or `unavailable`, `io`, `timed out`, `malformed`, `aborted`).
    public var failuresByKind: [String: UInt64] = [:]
    /// The last failure's description; nil when none.
    public var lastFailure: String?

    /// Lookups in no namespace asked (every namespace answered NotFound).
    public var notFound: UInt64 { lookups - found - failures }
}

/// containerd's API on its unix socket (gRPC): container records for event enrichment, where
/// a kubelet's CRI (containerd's cri plugin) or nerdctl started the container and no Docker
/// Engine knows it.
///
/// A lookup asks `containerd.services.containers.v1.Containers/Get` in each namespace in turn
/// (`k8s.io`, the CRI's, first) over one connection; for a CRI container it then asks for its
/// pod's sandbox container, whose labels are the pod's labels.
public struct ContainerdClient: Sendable {
    /// containerd's default socket.
    public static let defaultSocketPath = "/run/containerd/containerd.sock"
    /// The namespaces asked by default: the CRI's, Docker's, and ctr's default.
    public static let defaultNamespaces = ["k8s.io", "moby", "default"]
    /// The socket.
    public var socketPath: String
    /// The containerd namespaces asked, in order.
    public var namespaces: [String]
    /// How long one connect, send or receive may wait.
    public var timeout: Duration
    private let counterStorage = CounterBox()
    private let log: @Sendable (String) -> Void

    /// A client for the containerd at `socketPath`; `log` receives one line for the first
    /// failure of each kind (`GRPCError.kind`).
    public init(socketPath: String = ContainerdClient.defaultSocketPath, namespaces: [String] = ContainerdClient.defaultNamespaces,
                timeout: Duration = .seconds(2), log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.socketPath = socketPath
        self.namespaces = namespaces
        self.timeout = timeout
        self.log = log
    }

    /// The lookups so far.
    public var counters: ContainerdClientCounters { counterStorage.value.withLock { $0 } }

    /// The container `id` and the namespace it is in; nil when every namespace answers NotFound.
    /// Throws when containerd cannot be asked, answers another gRPC status, or answers with
    /// bytes that do not decode.
    public func container(_ id: String) throws(GRPCError) -> (container: ContainerdContainer, namespace: String)? {
        try find(id).map { ($0.container, $0.namespace) }
    }

    private func find(_ id: String) throws(GRPCError) -> (container: ContainerdContainer, namespace: String, connection: GRPCConnection)? {
        let connection = try GRPCConnection(socketPath: socketPath, timeout: timeout)
        for namespace in namespaces {
            if let container = try get(id, namespace: namespace, on: connection) { return (container, namespace, connection) }
        }
        return nil
    }

    private func get(_ id: String, namespace: String, on connection: GRPCConnection) throws(GRPCError) -> ContainerdContainer? {
        var request = ProtobufWriter()
        request.appendString(1, id)
        let answer: [UInt8]
        do throws(GRPCError) {
            answer = try connection.call("/containerd.services.containers.v1.Containers/Get", message: request.bytes,
                                         metadata: [("containerd-namespace", namespace)])
        } catch .status(_, .notFound, _) {
            return nil
        }
        do {
            return try ContainerdContainer.decodeGetResponse(answer[...])
        } catch {
            throw .malformedResponse(path: socketPath, reason: "GetContainerResponse: \(error)")
        }
    }

    /// Label keys of a sandbox that are the CRI's, not the pod's.
    static func isRuntimeLabel(_ key: String) -> Bool {
        key.hasPrefix("io.kubernetes.") || key.hasPrefix("io.cri-containerd.") || key.hasPrefix("io.containerd.")
    }

    private final class CounterBox: Sendable {
        let value = Mutex(ContainerdClientCounters())
    }

    private func count(_ change: (inout ContainerdClientCounters) -> Void) {
        counterStorage.value.withLock { change(&$0) }
    }
}

extension ContainerdClient: ContainerMetadataSource {
    /// The container's record as metadata: its name (the CRI's io.kubernetes.container.name
    /// label, else the id's first 12 characters, as Falco names it), image and labels, and for
    /// a CRI container its pod's labels (its sandbox's labels without the io.kubernetes.*,
    /// io.cri-containerd.* and io.containerd.* keys: the CRI's and containerd's own).
    public func metadata(forContainerID id: String) throws -> ContainerMetadata? {
        count { $0.lookups += 1 }
        do throws(GRPCError) {
            guard let (container, namespace, connection) = try find(id) else { return nil }
            var podLabels: [String: String] = [:]
            let sandboxID = container.labels["io.kubernetes.sandbox.id"]
                ?? (container.labels["io.cri-containerd.kind"] == "sandbox" ? id : nil)
            if let sandboxID {
                let sandbox: ContainerdContainer? = if sandboxID == id {
                    container
                } else {
                    try get(sandboxID, namespace: namespace, on: connection)
                }
                podLabels = (sandbox?.labels ?? [:]).filter { !Self.isRuntimeLabel($0.key) }
            }
            count { $0.found += 1 }
            return ContainerMetadata(
                id: container.id.isEmpty ? id : container.id,
                name: container.labels["io.kubernetes.container.name"] ?? String(id.prefix(12)),
                image: container.image, labels: container.labels, runtime: .containerd, podLabels: podLabels)
        } catch {
            let kind = error.kind
            let first = counterStorage.value.withLock { counters in
                counters.failures += 1
                counters.failuresByKind[kind, default: 0] += 1
                counters.lastFailure = error.description
                return counters.failuresByKind[kind] == 1
            }
            if first { log("containerd lookup failed (\(kind), logged once per kind; counted in vigil_containerd_failures_total): \(error)") }
            throw error
        }
    }
}

/// Asks several sources in turn (Docker, then containerd): the first that knows the container
/// answers. It throws only when every source failed; a source that failed while another said
/// it has no such container gives nil (`ContainerdClient` counts and logs its own failures, so
/// they stay visible behind a Docker that answered).
public struct ChainedMetadataSource: ContainerMetadataSource {
    /// The sources, in the order asked.
    public var sources: [any ContainerMetadataSource]

    /// A chain of `sources`.
    public init(_ sources: [any ContainerMetadataSource]) { self.sources = sources }

    /// The first source's answer that is not nil.
    public func metadata(forContainerID id: String) throws -> ContainerMetadata? {
        var firstError: (any Error)?
        var anyAnswered = false
        for source in sources {
            do {
                if let metadata = try source.metadata(forContainerID: id) { return metadata }
                anyAnswered = true
            } catch {
                firstError = firstError ?? error
            }
        }
        if !anyAnswered, let firstError { throw firstError }
        return nil
    }
}
