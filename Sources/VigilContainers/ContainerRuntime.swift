/// The container runtime (or manager) a process's cgroup path belongs to.
///
/// Raw values are the names bpfd's `containerRuntimes` setting uses, so rules written for bpfd
/// keep matching.
public enum ContainerRuntime: String, Sendable, Hashable, CaseIterable, Codable {
    /// Docker Engine (`/docker/<id>`, `docker-<id>.scope`).
    case docker
    /// containerd outside Kubernetes (`cri-containerd-<id>.scope`, `nerdctl-<id>.scope`).
    case containerd
    /// CRI-O (`crio-<id>.scope`, `crio-conmon-<id>.scope`, `crio-<id>`).
    case crio
    /// Podman (`libpod-<id>.scope`, `libpod-conmon-<id>.scope`, `libpod-<id>`).
    case podman
    /// A Kubernetes pod's container (`kubepods...`); the CRI underneath is reported separately.
    case kube
    /// LXC or LXD (`/lxc/<name>`, `/lxc.payload.<name>`).
    case lxc
    /// systemd-nspawn (`/machine.slice/machine-<name>.scope`).
    case nspawn
    /// Cloud Foundry Garden (`/garden/<handle>`).
    case garden
    /// Not in a container.
    case host
}
