import Foundation
import VigilContainers

/// A pod made through the CRI (`runtime.v1.RuntimeService`) as a kubelet makes one: its sandbox
/// and one workload container, with the kubelet's io.kubernetes.* labels.
public struct CRITestPod: Sendable {
    /// The sandbox's id (its pause process's container).
    public let sandboxID: String
    /// The workload container's id.
    public let containerID: String
}

extension ContainerdTestDaemon {
    /// Runs a pod through this containerd's CRI plugin (started with `cri: true`), as a kubelet
    /// would: RunPodSandbox (the host's network, so no CNI; cgroup parent
    /// `/kubepods/besteffort/pod<UID>`), CreateContainer and StartContainer of `container`
    /// running `command` in `ContainerdTestDaemon.image`. The teardown's `stop()` kills both.
    public func runCRIPod(name: String, namespace: String, uid: String, container: String,
                          podLabels: [String: String] = [:], containerLabels: [String: String] = [:],
                          command: [String] = ["sleep", "1000"]) throws -> CRITestPod {
        let connection = try GRPCConnection(socketPath: socketPath, timeout: .seconds(60))
        let cgroupParent = "/kubepods/besteffort/pod\(uid)"
        let kubelet = ["io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.uid": uid]

        // PodSandboxConfig { metadata (1) {name, uid, namespace, attempt}, log_directory (3),
        // labels (6), linux (8) { cgroup_parent (1), security_context (2) { namespace_options (1)
        // { network (1) = NODE (2) } } } }.
        var metadata = ProtobufWriter()
        metadata.appendString(1, name)
        metadata.appendString(2, uid)
        metadata.appendString(3, namespace)
        var namespaces = ProtobufWriter()
        namespaces.appendVarintField(1, 2)
        var security = ProtobufWriter()
        security.appendMessage(1, namespaces)
        var linux = ProtobufWriter()
        linux.appendString(1, cgroupParent)
        linux.appendMessage(2, security)
        var sandboxConfig = ProtobufWriter()
        sandboxConfig.appendMessage(1, metadata)
        sandboxConfig.appendString(3, directory + "/pods/" + uid)
        sandboxConfig.appendStringMap(6, podLabels.merging(kubelet) { _, kubelet in kubelet })
        sandboxConfig.appendMessage(8, linux)
        var runRequest = ProtobufWriter()
        runRequest.appendMessage(1, sandboxConfig)
        let sandboxID = try Self.id(in: connection.call("/runtime.v1.RuntimeService/RunPodSandbox", message: runRequest.bytes))
        track(id: sandboxID, cgroup: cgroupParent + "/" + sandboxID)

        // CreateContainerRequest { pod_sandbox_id (1), config (2) { metadata (1) {name},
        // image (2) {image}, command (3), args (4), labels (9), log_path (11) }, sandbox_config (3) }.
        var containerMetadata = ProtobufWriter()
        containerMetadata.appendString(1, container)
        var image = ProtobufWriter()
        image.appendString(1, Self.image)
        var containerConfig = ProtobufWriter()
        containerConfig.appendMessage(1, containerMetadata)
        containerConfig.appendMessage(2, image)
        if let program = command.first { containerConfig.appendString(3, program) }
        for argument in command.dropFirst() { containerConfig.appendString(4, argument) }
        let kubeletOnContainer = kubelet.merging(["io.kubernetes.container.name": container]) { $1 }
        containerConfig.appendStringMap(9, containerLabels.merging(kubeletOnContainer) { _, kubelet in kubelet })
        containerConfig.appendString(11, container + ".log")
        var createRequest = ProtobufWriter()
        createRequest.appendString(1, sandboxID)
        createRequest.appendMessage(2, containerConfig)
        createRequest.appendMessage(3, sandboxConfig)
        let containerID = try Self.id(in: connection.call("/runtime.v1.RuntimeService/CreateContainer", message: createRequest.bytes))
        track(id: containerID, cgroup: cgroupParent + "/" + containerID)
        var startRequest = ProtobufWriter()
        startRequest.appendString(1, containerID)
        _ = try connection.call("/runtime.v1.RuntimeService/StartContainer", message: startRequest.bytes)
        return CRITestPod(sandboxID: sandboxID, containerID: containerID)
    }

    /// Field 1 of a RunPodSandbox or CreateContainer answer: the new id.
    private static func id(in answer: [UInt8]) throws -> String {
        var reader = ProtobufReader(answer)
        while let (field, value) = try reader.next() {
            if field == 1, let id = value.string { return id }
        }
        throw DockerTestEngine.Unavailable(description: "a CRI answer without an id: \(answer)")
    }
}
