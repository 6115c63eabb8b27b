#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import VigilTestSupport
import XCTest

@testable import VigilContainers

/// containerd's API asked by `ContainerdClient`, against a real containerd of the test's own
/// (`ContainerdTestDaemon`, Debian's containerd 1.6) running containers labelled as a kubelet's
/// CRI labels them: a pod's sandbox (carrying the pod's labels) and a workload container.
final class ContainerdIntegrationTests: XCTestCase {
    static let podUID = "3f2b6c1e-7a8d-4c2e-9b1f-0a1b2c3d4e5f"

    /// A pod of two containers in a fresh containerd: (daemon, sandbox id, workload id).
    private func startPod() throws -> (ContainerdTestDaemon, String, String) {
        let daemon = try ContainerdTestDaemon.start(for: self)
        let (sandbox, workload) = try daemon.runPod(name: "web-0", namespace: "shop", uid: Self.podUID, container: "app",
                                                    podLabels: ["app": "web", "tier": "front"])
        return (daemon, sandbox, workload)
    }

    func testTheWorkloadsNameImageLabelsAndItsPodsLabelsComeFromContainerd() throws {
        let (daemon, sandbox, workload) = try startPod()
        let client = ContainerdClient(socketPath: daemon.socketPath)
        let metadata = try XCTUnwrap(try client.metadata(forContainerID: workload))
        XCTAssertEqual(metadata.id, workload)
        XCTAssertEqual(metadata.runtime, .containerd)
        XCTAssertEqual(metadata.name, "app")
        XCTAssertEqual(metadata.image, ContainerdTestDaemon.image)
        XCTAssertEqual(metadata.labels["io.kubernetes.pod.name"], "web-0")
        XCTAssertEqual(metadata.labels["io.kubernetes.pod.namespace"], "shop")
        XCTAssertEqual(metadata.labels["io.kubernetes.sandbox.id"], sandbox)
        XCTAssertEqual(metadata.podLabels, ["app": "web", "tier": "front"])
        // The sandbox: no container name label, so its 12-character id (as Falco names it); its own labels are the pod's.
        let pause = try XCTUnwrap(try client.metadata(forContainerID: sandbox))
        XCTAssertEqual(pause.name, String(sandbox.prefix(12)))
        XCTAssertEqual(pause.podLabels, ["app": "web", "tier": "front"])
        let (record, namespace) = try XCTUnwrap(try client.container(workload))
        XCTAssertEqual(namespace, "k8s.io")
        XCTAssertEqual(record.runtimeName, "io.containerd.runc.v2")
        XCTAssertNotNil(record.createdAtNs)
        XCTAssertEqual(client.counters, RuntimeLookupCounters(lookups: 2, found: 2, failures: 0))
    }

    /// containerd answers an unknown id with grpc-status NotFound (5) and its message in every
    /// namespace: the lookup is nil, counted as not found, not as a failure.
    func testAnIDNoNamespaceHasIsNilAndCountedAsNotFound() throws {
        let daemon = try ContainerdTestDaemon.start(for: self)
        let id = ContainerdTestDaemon.randomID()
        XCTAssertThrowsError(try Self.get(id, namespace: "k8s.io", socket: daemon.socketPath)) { error in
            XCTAssertEqual(error as? GRPCError, .status(path: daemon.socketPath, code: .notFound,
                                                        message: "container \"\(id)\" in namespace \"k8s.io\": not found"))
        }
        let lines = Mutex<[String]>([])
        let client = ContainerdClient(socketPath: daemon.socketPath) { line in lines.withLock { $0.append(line) } }
        XCTAssertNil(try client.metadata(forContainerID: id))
        XCTAssertEqual(client.counters, RuntimeLookupCounters(lookups: 1, found: 0, failures: 0))
        XCTAssertEqual(client.counters.notFound, 1)
        XCTAssertEqual(lines.withLock { $0 }, [], "not found is no failure to log")
    }

    /// One Containers/Get call on a connection of its own.
    private static func get(_ id: String, namespace: String, socket: String) throws -> [UInt8] {
        var request = ProtobufWriter()
        request.appendString(1, id)
        return try GRPCConnection(socketPath: socket, timeout: .seconds(2))
            .call("/containerd.services.containers.v1.Containers/Get", message: request.bytes, metadata: [("containerd-namespace", namespace)])
    }

    /// A namespace name containerd refuses: grpc-status InvalidArgument with containerd's
    /// message, percent-decoded (the name's "ï" travels as %C3%AF); the lookup throws it,
    /// counted as a failure of kind InvalidArgument and logged once for two lookups; after a
    /// Docker that answered, the chain says no container (the failure stays counted).
    func testARefusedNamespaceIsAFailureWithContainerdsStatusAndMessage() throws {
        let daemon = try ContainerdTestDaemon.start(for: self)
        let lines = Mutex<[String]>([])
        let client = ContainerdClient(socketPath: daemon.socketPath, namespaces: ["naïve"]) { line in lines.withLock { $0.append(line) } }
        for _ in 0..<2 {
            XCTAssertThrowsError(try client.metadata(forContainerID: ContainerdTestDaemon.randomID())) { error in
                guard case GRPCError.status(_, let code, let message) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(code, .invalidArgument)
                XCTAssertTrue(message.contains("identifier \"naïve\" must match"), message)
            }
        }
        let counters = client.counters
        XCTAssertEqual(counters.lookups, 2)
        XCTAssertEqual(counters.failures, 2)
        XCTAssertEqual(counters.notFound, 0)
        XCTAssertEqual(counters.failuresByKind, ["InvalidArgument": 2])
        XCTAssertTrue(counters.lastFailure?.contains("InvalidArgument: namespace validation: identifier \"naïve\"") == true, "\(counters)")
        let logged = lines.withLock { $0 }
        XCTAssertEqual(logged.count, 1, "\(logged)")
        XCTAssertTrue(logged.first?.contains("InvalidArgument") == true, "\(logged)")
        try DockerTestEngine.require()
        XCTAssertNil(try ChainedMetadataSource([DockerClient(), client]).metadata(forContainerID: ContainerdTestDaemon.randomID()))
        XCTAssertEqual(client.counters.failures, 3)
    }

    /// A method containerd does not serve: grpc-status Unimplemented, named.
    func testAnUnknownMethodIsUnimplemented() throws {
        let daemon = try ContainerdTestDaemon.start(for: self)
        let connection = try GRPCConnection(socketPath: daemon.socketPath, timeout: .seconds(2))
        XCTAssertThrowsError(try connection.call("/containerd.services.nothing.v1.Nothing/Get", message: [])) { error in
            guard case GRPCError.status(_, let code, let message) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(code, .unimplemented)
            XCTAssertTrue(message.contains("containerd.services.nothing.v1.Nothing"), message)
            XCTAssertTrue("\(error)".contains("Unimplemented"), "\(error)")
        }
        // The connection stays usable: the next call's header blocks decode with the same table.
        XCTAssertThrowsError(try connection.call("/containerd.services.containers.v1.Containers/Get", message: [],
                                                 metadata: [("containerd-namespace", "k8s.io")])) { error in
            XCTAssertEqual(error as? GRPCError, .status(path: daemon.socketPath, code: .notFound, message: #"container "" in namespace "k8s.io": not found"#))
        }
    }

    /// The pod's cgroup path names the pod (cgroupfs driver); the parser finds the container id.
    func testTheWorkloadsCgroupNamesItsPod() throws {
        let (daemon, _, workload) = try startPod()
        let cgroupFile = try String(contentsOfFile: "/proc/\(try daemon.pid(of: workload))/cgroup", encoding: .utf8)
        let identity = ContainerIdentity(cgroupFile: cgroupFile)
        XCTAssertEqual(identity.id, workload, cgroupFile)
        XCTAssertEqual(identity.runtime, .kube)
        XCTAssertEqual(identity.pod?.uid, Self.podUID)
    }

    /// Docker does not know the container (404), containerd does: the chain answers with containerd's.
    func testTheChainAsksContainerdWhenDockerDoesNotKnowTheContainer() throws {
        try DockerTestEngine.require()
        let (daemon, _, workload) = try startPod()
        let chain = ChainedMetadataSource([DockerClient(), ContainerdClient(socketPath: daemon.socketPath)])
        XCTAssertEqual(try chain.metadata(forContainerID: workload)?.name, "app")
    }

    /// No containerd: the lookup throws (the cache then leaves the fields empty and retries
    /// later), counted as a failure; in a chain behind a Docker that answered, it is no container.
    func testAMissingSocketThrowsAndIsCounted() throws {
        let client = ContainerdClient(socketPath: "/tmp/vigil-no-containerd-\(UUID().uuidString.prefix(8)).sock")
        XCTAssertThrowsError(try client.metadata(forContainerID: ContainerdTestDaemon.randomID())) { error in
            guard case GRPCError.socketUnavailable = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual([client.counters.lookups, client.counters.found, client.counters.failures], [1, 0, 1])
        XCTAssertEqual(client.counters.failuresByKind, ["unavailable": 1])
        XCTAssertEqual(client.counters.lastFailure?.contains("unavailable: connect: No such file or directory"), true, "\(client.counters)")
        XCTAssertEqual(client.counters.notFound, 0)
        try DockerTestEngine.require()
        XCTAssertNil(try ChainedMetadataSource([DockerClient(), client]).metadata(forContainerID: ContainerdTestDaemon.randomID()))
    }

    /// A containerd that accepts and never answers (a listening socket nobody serves): the
    /// lookup times out after the client's timeout, counted, and the cache leaves the fields empty.
    func testASilentContainerdTimesOutAndTheCacheFallsBack() throws {
        let path = "/tmp/vigil-silent-\(UUID().uuidString.prefix(8)).sock"
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        defer { close(listener); unlink(path) }
        var address = try XCTUnwrap(sockaddr_un(path: path))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(listener, 8), 0)
        let client = ContainerdClient(socketPath: path, timeout: .milliseconds(200))
        let cache = ContainerMetadataCache(source: client)
        let id = ContainerdTestDaemon.randomID()
        XCTAssertNil(cache.fetch(id))
        guard case .unavailable(let reason) = cache.sourceStatus else { return XCTFail("\(cache.sourceStatus)") }
        XCTAssertTrue(reason.contains("timed out"), reason)
        XCTAssertEqual(client.counters.failures, 1)
        XCTAssertEqual(client.counters.failuresByKind, ["timed out": 1])
    }
}
