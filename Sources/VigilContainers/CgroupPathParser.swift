import Foundation

extension ContainerIdentity {
    /// Derives the identity from the text of `/proc/PID/cgroup`: any number of its lines, from a
    /// cgroup v1, v2 or hybrid host (`ID:controllers:path` each).
    ///
    /// The first line naming a container wins; a pod cgroup without a container is used only when
    /// no line names a container. Malformed lines are ignored; nothing recognisable gives `.host`.
    public init(cgroupFile text: some StringProtocol) {
        var podOnly: ContainerIdentity?
        for line in Substring(text).split(whereSeparator: \.isNewline) {
            guard let path = CgroupPathParser.path(ofCgroupLine: line) else { continue }
            let identity = CgroupPathParser.identity(ofPath: path)
            if !identity.id.isEmpty { self = identity; return }
            if identity.isContainer, podOnly == nil { podOnly = identity }
        }
        self = podOnly ?? .host
    }

    /// Derives the identity from one cgroup path, as found after the second colon of a
    /// `/proc/PID/cgroup` line or below the cgroup v2 mount (e.g. `/docker/<id>`).
    public init(cgroupPath: some StringProtocol) {
        self = CgroupPathParser.identity(ofPath: Substring(cgroupPath))
    }

    /// Reads `/proc/PID/cgroup` and derives the identity; nil when the file cannot be read (the
    /// process has exited, or `procRoot` is wrong).
    public static func ofProcess(_ pid: Int32, procRoot: String = "/proc") -> ContainerIdentity? {
        guard let text = try? String(contentsOfFile: "\(procRoot)/\(pid)/cgroup", encoding: .utf8)
        else { return nil }
        return ContainerIdentity(cgroupFile: text)
    }
}

/// The path rules behind `ContainerIdentity(cgroupFile:)` and `ContainerIdentity(cgroupPath:)`.
///
/// A path is read from its innermost component outwards: the first component that names a
/// container decides the id and runtime (so a container nested in another reports the inner
/// one), then the components above it are searched for a Kubernetes pod.
enum CgroupPathParser {
    /// Scope-style names `<prefix><64 hex>[.scope]` and the runtime each prefix belongs to.
    private static let scopePrefixes: [(prefix: String, runtime: ContainerRuntime)] = [
        ("docker-", .docker),
        ("cri-containerd-", .containerd),
        ("nerdctl-", .containerd),
        ("crio-conmon-", .crio),
        ("crio-", .crio),
        ("libpod-conmon-", .podman),
        ("libpod-", .podman),
    ]

    /// The path of one `/proc/PID/cgroup` line (`ID:controllers:path`), or nil if malformed.
    static func path(ofCgroupLine line: Substring) -> Substring? {
        let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3, !fields[0].isEmpty, fields[0].allSatisfy(\.isASCIIDigit),
            fields[2].hasPrefix("/")
        else { return nil }
        return fields[2]
    }

    static func identity(ofPath rawPath: Substring) -> ContainerIdentity {
        let path = rawPath.hasSuffix(deletedSuffix) ? rawPath.dropLast(deletedSuffix.count) : rawPath
        let components = path.split(separator: "/")
        for index in components.indices.reversed() {
            guard let container = container(at: index, in: components) else { continue }
            if let pod = pod(above: index, in: components) {
                return ContainerIdentity(
                    id: container.id, runtime: .kube, underlyingRuntime: container.runtime, pod: pod)
            }
            if let runtime = container.runtime {
                return ContainerIdentity(id: container.id, runtime: runtime)
            }
        }
        if let pod = pod(above: components.endIndex, in: components) {
            return ContainerIdentity(id: "", runtime: .kube, pod: pod)
        }
        return .host
    }

    /// The kernel appends this to the path of a removed cgroup.
    private static let deletedSuffix = " (deleted)"

    /// A container named by one path component; `runtime` is nil for a bare id, which names a
    /// container only inside a Kubernetes pod.
    private struct ContainerComponent {
        var id: String
        var runtime: ContainerRuntime?
    }

    private static func container(at index: Int, in components: [Substring]) -> ContainerComponent? {
        let name = components[index]
        let parent = index > components.startIndex ? components[index - 1] : ""
        for (prefix, runtime) in scopePrefixes where name.hasPrefix(prefix) {
            let id = name.dropFirst(prefix.count).removingSuffix(".scope")
            if ContainerIdentity.isHexID(id) { return ContainerComponent(id: String(id), runtime: runtime) }
        }
        if ContainerIdentity.isHexID(name) {
            if parent == "docker" { return ContainerComponent(id: String(name), runtime: .docker) }
            if podOfCgroupfsComponent(at: index - 1, in: components) != nil {
                return ContainerComponent(id: String(name), runtime: nil)
            }
            return nil
        }
        if let runtime = namedContainerParents[String(parent)] {
            return ContainerComponent(id: String(name), runtime: runtime)
        }
        if name.hasPrefix(lxcPayloadPrefix), name.count > lxcPayloadPrefix.count {
            return ContainerComponent(id: String(name.dropFirst(lxcPayloadPrefix.count)), runtime: .lxc)
        }
        if parent == "machine.slice", name.hasPrefix("machine-"), name.hasSuffix(".scope") {
            let machine = unescapeSystemdUnitName(name.dropFirst("machine-".count).removingSuffix(".scope"))
            // libvirt runs VMs (qemu) in machine.slice too: those processes are on the host.
            guard !machine.isEmpty, !machine.hasPrefix("qemu-") else { return nil }
            return ContainerComponent(id: machine, runtime: .nspawn)
        }
        return nil
    }

    private static let lxcPayloadPrefix = "lxc.payload."

    /// Directories whose children are containers named by name or handle (`/lxc/<name>`).
    private static let namedContainerParents: [String: ContainerRuntime] = ["lxc": .lxc, "garden": .garden]

    /// The innermost pod cgroup strictly above `index`, in either driver's naming.
    private static func pod(above index: Int, in components: [Substring]) -> KubernetesPod? {
        for podIndex in components.indices[..<index].reversed() {
            if let pod = podOfSystemdSlice(components[podIndex])
                ?? podOfCgroupfsComponent(at: podIndex, in: components)
            {
                return pod
            }
        }
        return nil
    }

    /// cgroupfs driver: `.../kubepods[/burstable|/besteffort]/pod<uid>`.
    private static func podOfCgroupfsComponent(at index: Int, in components: [Substring]) -> KubernetesPod? {
        guard index > components.startIndex, components[index].hasPrefix("pod"),
            components[..<index].contains("kubepods")
        else { return nil }
        let uid = components[index].dropFirst("pod".count)
        guard isPodUID(uid) else { return nil }
        let qosClass: KubernetesQoSClass
        switch components[index - 1] {
        case "kubepods": qosClass = .guaranteed
        case "burstable": qosClass = .burstable
        case "besteffort": qosClass = .bestEffort
        default: return nil
        }
        return KubernetesPod(uid: String(uid), qosClass: qosClass)
    }

    /// systemd driver: `kubepods[-burstable|-besteffort]-pod<uid with _>.slice`, possibly with a
    /// prefix such as `kubelet-` (kind on cgroup v2).
    private static func podOfSystemdSlice(_ name: Substring) -> KubernetesPod? {
        guard name.hasSuffix(".slice") else { return nil }
        let parts = name.removingSuffix(".slice").split(separator: "-", omittingEmptySubsequences: false)
        guard let podPart = parts.last, podPart.hasPrefix("pod"),
            let kubepodsIndex = parts.firstIndex(of: "kubepods")
        else { return nil }
        let uid = podPart.dropFirst("pod".count).replacingOccurrences(of: "_", with: "-")
        guard isPodUID(Substring(uid)) else { return nil }
        let qosClass: KubernetesQoSClass
        switch parts.count - kubepodsIndex {
        case 2: qosClass = .guaranteed
        case 3 where parts[kubepodsIndex + 1] == "burstable": qosClass = .burstable
        case 3 where parts[kubepodsIndex + 1] == "besteffort": qosClass = .bestEffort
        default: return nil
        }
        return KubernetesPod(uid: uid, qosClass: qosClass)
    }

    /// A pod UID: a dashed UUID (36 characters) or, for static pods, 32 hex digits.
    private static func isPodUID(_ uid: Substring) -> Bool {
        guard uid.utf8.count == 36 || uid.utf8.count == 32 else { return false }
        return uid.utf8.allSatisfy { ContainerIdentity.isLowercaseHexDigit($0) || $0 == UInt8(ascii: "-") }
    }

    /// Undoes systemd's unit-name escaping (`\x2d` for `-`, and so on).
    static func unescapeSystemdUnitName(_ name: Substring) -> String {
        var bytes: [UInt8] = []
        var rest = name.utf8[...]
        while let byte = rest.first {
            if byte == UInt8(ascii: "\\"), rest.count >= 4,
                rest.dropFirst().first == UInt8(ascii: "x"),
                let value = UInt8(String(decoding: rest.dropFirst(2).prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                rest = rest.dropFirst(4)
            } else {
                bytes.append(byte)
                rest = rest.dropFirst()
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Substring {
    fileprivate func removingSuffix(_ suffix: String) -> Substring {
        hasSuffix(suffix) ? dropLast(suffix.count) : self
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
