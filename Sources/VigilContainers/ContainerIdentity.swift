/// Which container, if any, a process runs in, as derived from its cgroup path.
public struct ContainerIdentity: Sendable, Hashable, Codable {
    /// The container id: 64 lowercase hex digits for OCI runtimes (docker, containerd, CRI-O,
    /// podman, Kubernetes), the container or machine name for lxc and nspawn, the handle for
    /// garden; empty for the host and for a pod's own cgroup that holds no container.
    public var id: String
    /// The first 12 characters of a hex `id` (what `docker ps` shows); other ids unchanged.
    public var shortID: String
    /// The runtime that manages the container, or `.host`.
    public var runtime: ContainerRuntime
    /// For `runtime == .kube`, the CRI underneath (docker, containerd, crio) when the cgroup path
    /// names it (systemd driver scopes, `crio-` on cgroupfs); nil otherwise.
    public var underlyingRuntime: ContainerRuntime?
    /// The Kubernetes pod the container belongs to, for `runtime == .kube`.
    public var pod: KubernetesPod?

    /// Creates an identity; `shortID` is derived from `id`.
    public init(
        id: String, runtime: ContainerRuntime,
        underlyingRuntime: ContainerRuntime? = nil, pod: KubernetesPod? = nil
    ) {
        self.id = id
        self.shortID = ContainerIdentity.isHexID(id) ? String(id.prefix(12)) : id
        self.runtime = runtime
        self.underlyingRuntime = underlyingRuntime
        self.pod = pod
    }

    /// A process that is not in any container.
    public static let host = ContainerIdentity(id: "", runtime: .host)

    /// True unless this is the host.
    public var isContainer: Bool { runtime != .host }

    /// Length of a full OCI container id in hex digits.
    public static let hexIDLength = 64

    /// True when `text` is a full container id: exactly 64 lowercase hex digits.
    public static func isHexID(_ text: some StringProtocol) -> Bool {
        text.utf8.count == hexIDLength && text.utf8.allSatisfy(isLowercaseHexDigit)
    }

    static func isLowercaseHexDigit(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
    }
}

/// A Kubernetes pod, as far as the cgroup hierarchy tells.
public struct KubernetesPod: Sendable, Hashable, Codable {
    /// The pod's UID with dashes (`metadata.uid`), e.g. `3f2b6c1e-7a8d-4c2e-9b1f-0a1b2c3d4e5f`;
    /// static (mirror) pods have a 32-hex-digit UID instead.
    public var uid: String
    /// The pod's quality-of-service class, which decides its place in the hierarchy.
    public var qosClass: KubernetesQoSClass

    /// Creates a pod description.
    public init(uid: String, qosClass: KubernetesQoSClass) {
        self.uid = uid
        self.qosClass = qosClass
    }
}

/// A Kubernetes pod QoS class (`status.qosClass`).
public enum KubernetesQoSClass: String, Sendable, Hashable, CaseIterable, Codable {
    /// Requests equal limits; the pod's cgroup sits directly under `kubepods`.
    case guaranteed = "Guaranteed"
    /// Some requests or limits; under `kubepods/burstable`.
    case burstable = "Burstable"
    /// No requests or limits; under `kubepods/besteffort`.
    case bestEffort = "BestEffort"
}
