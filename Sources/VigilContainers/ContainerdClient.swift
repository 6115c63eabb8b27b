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
        try ProtobufReader.forEachField(in: bytes) { field, value throws(ProtobufWireError) in
            switch field {
            case 1: id = value.string ?? id
            case 2:
                if let (key, text) = try value.stringMapEntry() { labels[key] = text }
            case 3: image = value.string ?? image
            case 4: runtimeName = try value.embeddedString(1) ?? runtimeName
            case 8:
                guard let timestamp = value.message else { return }
                var seconds: UInt64 = 0, nanos: UInt64 = 0
                try ProtobufReader.forEachField(in: timestamp) { timestampField, timestampValue in
                    guard case .varint(let number) = timestampValue else { return }
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
    private let recorder: RuntimeLookupRecorder

    /// A client for the containerd at `socketPath`; `log` receives one line for the first
    /// failure of each kind (`GRPCError.kind`).
    public init(socketPath: String = ContainerdClient.defaultSocketPath, namespaces: [String] = ContainerdClient.defaultNamespaces,
                timeout: Duration = .seconds(2), log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.socketPath = socketPath
        self.namespaces = namespaces
        self.timeout = timeout
        recorder = RuntimeLookupRecorder(what: "containerd lookup", metric: "vigil_containerd_failures_total", log: log)
    }

    /// The lookups so far.
    public var counters: RuntimeLookupCounters { recorder.counters }

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

}

extension ContainerdClient: ContainerMetadataSource {
    /// The container's record as metadata: its name (the CRI's io.kubernetes.container.name
    /// label, else the id's first 12 characters, as Falco names it), image and labels, and for
    /// a CRI container its pod's labels (its sandbox's labels without the io.kubernetes.*,
    /// io.cri-containerd.* and io.containerd.* keys: the CRI's and containerd's own).
    public func metadata(forContainerID id: String) throws -> ContainerMetadata? {
        try recorder.lookup { () throws(GRPCError) in
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
                podLabels = ContainerMetadata.podLabels(fromSandboxLabels: sandbox?.labels ?? [:])
            }
            return ContainerMetadata(
                id: container.id.isEmpty ? id : container.id,
                name: container.labels["io.kubernetes.container.name"] ?? String(id.prefix(12)),
                image: container.image, labels: container.labels, runtime: .containerd, podLabels: podLabels)
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
