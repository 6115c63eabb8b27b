/// A container as the Container Runtime Interface lists it (`runtime.v1.Container`, cri-api's
/// api.proto): the fields Vigil reads.
public struct CRIContainer: Sendable, Hashable {
    /// `id` (1).
    public var id = ""
    /// `pod_sandbox_id` (2): the pod's sandbox.
    public var podSandboxID = ""
    /// `metadata.name` (3.1): the container's name in its pod spec.
    public var name = ""
    /// `image.image` (4.1): the image as the pod spec names it.
    public var image = ""
    /// `image_ref` (5): the image's id or digest.
    public var imageRef = ""
    /// `created_at` (7), ns since the epoch; nil when absent.
    public var createdAtNs: UInt64?
    /// `labels` (8): the kubelet's io.kubernetes.* labels and the container's own.
    public var labels: [String: String] = [:]

    /// An empty record.
    public init() {}

    /// Decodes a `Container` message from untrusted bytes; unknown fields are skipped.
    public init(decoding bytes: ArraySlice<UInt8>) throws(ProtobufWireError) {
        try ProtobufReader.forEachField(in: bytes) { field, value throws(ProtobufWireError) in
            switch field {
            case 1: id = value.string ?? id
            case 2: podSandboxID = value.string ?? podSandboxID
            case 3: name = try value.embeddedString(1) ?? name
            case 4: image = try value.embeddedString(1) ?? image
            case 5: imageRef = value.string ?? imageRef
            case 7: if case .varint(let ns) = value, ns > 0 { createdAtNs = ns }
            case 8: if let (key, text) = try value.stringMapEntry() { labels[key] = text }
            default: break
            }
        }
    }
}

/// A pod's sandbox as the CRI reports it (`runtime.v1.PodSandboxStatus`): the fields Vigil reads.
public struct CRIPodSandbox: Sendable, Hashable {
    /// `id` (1).
    public var id = ""
    /// `metadata` (2): the pod's name (1), uid (2) and namespace (3).
    public var name = "", uid = "", namespace = ""
    /// `labels` (7): the pod's labels plus the kubelet's io.kubernetes.* ones.
    public var labels: [String: String] = [:]

    /// An empty record.
    public init() {}

    /// Decodes a `PodSandboxStatus` message from untrusted bytes; unknown fields are skipped.
    public init(decoding bytes: ArraySlice<UInt8>) throws(ProtobufWireError) {
        try ProtobufReader.forEachField(in: bytes) { field, value throws(ProtobufWireError) in
            switch field {
            case 1: id = value.string ?? id
            case 2:
                try ProtobufReader.forEachField(in: value.message ?? []) { metadataField, metadataValue in
                    switch metadataField {
                    case 1: name = metadataValue.string ?? name
                    case 2: uid = metadataValue.string ?? uid
                    case 3: namespace = metadataValue.string ?? namespace
                    default: break
                    }
                }
            case 7: if let (key, text) = try value.stringMapEntry() { labels[key] = text }
            default: break
            }
        }
    }

    /// The io.kubernetes.pod.* labels a kubelet puts on every container of this pod (k8s.pod.name,
    /// k8s.ns.name and k8s.pod.uid read them), from the sandbox's own metadata.
    var kubeletLabels: [String: String] {
        ["io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.uid": uid].filter { !$0.value.isEmpty }
    }
}

/// The Container Runtime Interface (`runtime.v1.RuntimeService`, gRPC) on a runtime's unix
/// socket: container records for event enrichment where a kubelet started the container through
/// CRI-O (its socket by default) or any other CRI runtime (containerd's cri plugin answers the
/// same calls on containerd's socket).
///
/// A lookup asks `ListContainers` filtered by the id, then `PodSandboxStatus` of the container's
/// pod, whose metadata name the pod (name, namespace, uid) and whose labels are the pod's. An id
/// no container has is asked as a sandbox (a pod's pause process runs in the sandbox's cgroup).
public struct CRIClient: Sendable {
    /// CRI-O's default socket.
    public static let defaultSocketPath = "/var/run/crio/crio.sock"
    /// The socket.
    public var socketPath: String
    /// How long one connect, send or receive may wait.
    public var timeout: Duration
    /// The runtime its containers are reported as (container.runtime): `crio` for CRI-O's socket.
    public var runtime: ContainerRuntime
    private let recorder: RuntimeLookupRecorder

    /// A client for the CRI at `socketPath`; `log` receives one line for the first failure of
    /// each kind (`GRPCError.kind`).
    public init(socketPath: String = CRIClient.defaultSocketPath, runtime: ContainerRuntime = .crio,
                timeout: Duration = .seconds(2), log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.socketPath = socketPath
        self.runtime = runtime
        self.timeout = timeout
        recorder = RuntimeLookupRecorder(what: "CRI lookup (\(socketPath))", metric: "vigil_cri_failures_total", log: log)
    }

    /// The lookups so far.
    public var counters: RuntimeLookupCounters { recorder.counters }

    /// The container `id`; nil when the runtime lists no container with that id.
    public func container(_ id: String) throws(GRPCError) -> CRIContainer? {
        try container(id, on: GRPCConnection(socketPath: socketPath, timeout: timeout))
    }

    /// The pod sandbox `id`; nil when the runtime answers NotFound.
    public func sandbox(_ id: String) throws(GRPCError) -> CRIPodSandbox? {
        try sandbox(id, on: GRPCConnection(socketPath: socketPath, timeout: timeout))
    }

    private func container(_ id: String, on connection: GRPCConnection) throws(GRPCError) -> CRIContainer? {
        // ListContainersRequest { filter (1): ContainerFilter { id (1) } }.
        var filter = ProtobufWriter()
        filter.appendString(1, id)
        var request = ProtobufWriter()
        request.appendMessage(1, filter)
        let answer = try connection.call("/runtime.v1.RuntimeService/ListContainers", message: request.bytes)
        do {
            // ListContainersResponse { containers (1), repeated }: the one whose id is `id`.
            var reader = ProtobufReader(answer)
            while let (field, value) = try reader.next() {
                guard field == 1, let message = value.message else { continue }
                let container = try CRIContainer(decoding: message)
                if container.id == id { return container }
            }
            return nil
        } catch {
            throw .malformedResponse(path: socketPath, reason: "ListContainersResponse: \(error)")
        }
    }

    private func sandbox(_ id: String, on connection: GRPCConnection) throws(GRPCError) -> CRIPodSandbox? {
        var request = ProtobufWriter()
        request.appendString(1, id)
        let answer: [UInt8]
        do throws(GRPCError) {
            answer = try connection.call("/runtime.v1.RuntimeService/PodSandboxStatus", message: request.bytes)
        } catch .status(_, .notFound, _) {
            return nil
        }
        do {
            // PodSandboxStatusResponse { status (1) }.
            var reader = ProtobufReader(answer)
            while let (field, value) = try reader.next() {
                if field == 1, let message = value.message { return try CRIPodSandbox(decoding: message) }
            }
            return nil
        } catch {
            throw .malformedResponse(path: socketPath, reason: "PodSandboxStatusResponse: \(error)")
        }
    }
}

extension CRIClient: ContainerMetadataSource {
    /// The container as metadata: its name in the pod spec, image, labels (the kubelet's
    /// io.kubernetes.pod.* ones filled from the pod's metadata where the runtime left them out,
    /// and io.kubernetes.sandbox.id, k8s.pod.sandbox_id's source)
    /// and its pod's labels. A sandbox (the pod's pause process) is named by its id's first 12
    /// characters, as Falco names it, with the pod's labels.
    public func metadata(forContainerID id: String) throws -> ContainerMetadata? {
        try recorder.lookup { () throws(GRPCError) in
            let connection = try GRPCConnection(socketPath: socketPath, timeout: timeout)
            if let container = try container(id, on: connection) {
                let pod = try sandbox(container.podSandboxID, on: connection)
                let kubelet = (pod?.kubeletLabels ?? [:]).merging(["io.kubernetes.sandbox.id": container.podSandboxID]) { $1 }
                return ContainerMetadata(
                    id: container.id, name: container.name.isEmpty ? String(id.prefix(12)) : container.name,
                    image: container.image, labels: container.labels.merging(kubelet) { own, _ in own },
                    runtime: runtime, imageID: container.imageRef,
                    startTimeNs: container.createdAtNs, // the CRI's list has the creation time, not the start

                    podLabels: ContainerMetadata.podLabels(fromSandboxLabels: pod?.labels ?? [:]))
            }
            guard let pod = try sandbox(id, on: connection) else { return nil }
            return ContainerMetadata(
                id: pod.id.isEmpty ? id : pod.id, name: String(id.prefix(12)), image: "",
                labels: pod.labels.merging(pod.kubeletLabels) { own, _ in own }, runtime: runtime,
                podLabels: ContainerMetadata.podLabels(fromSandboxLabels: pod.labels))
        }
    }
}
