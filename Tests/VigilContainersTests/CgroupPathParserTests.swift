import XCTest

@testable import VigilContainers

/// Sample ids and pod UIDs, in the shapes the runtimes produce.
private enum Sample {
    static let id = "ed092e1bb98d7fe7a47ddeb9e15d4d8a95e658f8dfd71a8d469e3abb87ed91f1"
    static let otherID = "7c158d9248a8b114f93474d13f56fcbeee9c1dfb0a91c72b539b04cf5688b713"
    static let podUID = "95675ae9-a6f8-4a63-a7c9-6dc4dd2d6b26"
    static var podUIDUnderscored: String { podUID.replacingOccurrences(of: "-", with: "_") }
    static let staticPodUID = "e2a9ac3f25e91cf67aee1fbea606dcee"
}

final class CgroupPathParserTests: XCTestCase {
    // MARK: docker

    func testDockerCgroupfsOnHybridHostEveryHierarchy() {
        // What this project's hosts show for a `docker run` process (cgroupfs driver, hybrid).
        let file = """
            13:misc:/docker/\(Sample.id)
            12:rdma:/docker/\(Sample.id)
            11:net_cls,net_prio:/docker/\(Sample.id)
            10:perf_event:/docker/\(Sample.id)
            9:name=systemd:/docker/\(Sample.id)
            8:pids:/docker/\(Sample.id)
            7:blkio:/docker/\(Sample.id)
            6:freezer:/docker/\(Sample.id)
            5:devices:/docker/\(Sample.id)
            4:memory:/docker/\(Sample.id)
            3:cpuset:/docker/\(Sample.id)
            2:cpu,cpuacct:/docker/\(Sample.id)
            0::/docker/\(Sample.id)

            """
        assertIdentity(ContainerIdentity(cgroupFile: file), id: Sample.id, runtime: .docker)
    }

    func testDockerEachSingleLineFormat() {
        for line in [
            "4:memory:/docker/\(Sample.id)",  // v1 controller
            "1:name=systemd:/docker/\(Sample.id)",  // v1 named hierarchy
            "0::/docker/\(Sample.id)",  // v2
            "0::/system.slice/docker-\(Sample.id).scope",  // v2, systemd driver
            "11:pids:/system.slice/docker-\(Sample.id).scope",  // v1, systemd driver
            "0::/docker/\(Sample.id) (deleted)",  // the kernel marks removed cgroups
            "0::/docker/\(Sample.id)/init.scope",  // systemd running inside the container
        ] {
            assertIdentity(ContainerIdentity(cgroupFile: line), id: Sample.id, runtime: .docker, line)
        }
    }

    func testDockerRootlessUnderUserService() {
        let path = "/user.slice/user-1000.slice/user@1000.service/docker.service/docker/\(Sample.id)"
        assertIdentity(ContainerIdentity(cgroupPath: path), id: Sample.id, runtime: .docker)
    }

    func testHybridHostWithContainerOnlyInV1Lines() {
        let file = "0::/\n12:memory:/docker/\(Sample.id)\n1:name=systemd:/docker/\(Sample.id)\n"
        assertIdentity(ContainerIdentity(cgroupFile: file), id: Sample.id, runtime: .docker)
    }

    func testNestedContainersReportTheInnermost() {
        let path = "/docker/\(Sample.otherID)/docker/\(Sample.id)"
        assertIdentity(ContainerIdentity(cgroupPath: path), id: Sample.id, runtime: .docker)
    }

    func testShortIDIsTwelveHexDigits() {
        let identity = ContainerIdentity(cgroupPath: "/docker/\(Sample.id)")
        XCTAssertEqual(identity.shortID, "ed092e1bb98d")
        XCTAssertEqual(identity.shortID.count, 12)
        XCTAssertEqual(identity.id.count, 64)
    }

    // MARK: containerd, CRI-O, podman

    func testContainerd() {
        assertIdentity(
            ContainerIdentity(cgroupFile: "0::/system.slice/cri-containerd-\(Sample.id).scope"),
            id: Sample.id, runtime: .containerd)
        assertIdentity(
            ContainerIdentity(cgroupFile: "0::/system.slice/nerdctl-\(Sample.id).scope"),
            id: Sample.id, runtime: .containerd)
    }

    func testCRIO() {
        for path in [
            "/system.slice/crio-\(Sample.id).scope",
            "/system.slice/crio-conmon-\(Sample.id).scope",  // the container's monitor
        ] {
            assertIdentity(ContainerIdentity(cgroupPath: path), id: Sample.id, runtime: .crio, path)
        }
    }

    func testPodman() {
        for line in [
            "0::/machine.slice/libpod-\(Sample.id).scope",  // rootful, v2
            "0::/machine.slice/libpod-conmon-\(Sample.id).scope",  // its conmon
            "0::/machine.slice/libpod-\(Sample.id).scope/container",  // --cgroups=split
            "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-\(Sample.id).scope",  // rootless
            "4:memory:/libpod_parent/libpod-\(Sample.id)",  // cgroupfs manager, v1
        ] {
            assertIdentity(ContainerIdentity(cgroupFile: line), id: Sample.id, runtime: .podman, line)
        }
    }

    // MARK: Kubernetes

    func testKubernetesSystemdDriverWithContainerd() {
        let line = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(Sample.podUIDUnderscored).slice/cri-containerd-\(Sample.id).scope"
        assertIdentity(
            ContainerIdentity(cgroupFile: line), id: Sample.id, runtime: .kube, underlying: .containerd,
            pod: KubernetesPod(uid: Sample.podUID, qosClass: .burstable))
    }

    func testKubernetesSystemdDriverEachQoSClassAndCRI() {
        let base = "/kubepods.slice"
        let cases: [(String, KubernetesQoSClass, ContainerRuntime)] = [
            ("\(base)/kubepods-pod\(Sample.podUIDUnderscored).slice/cri-containerd-\(Sample.id).scope", .guaranteed, .containerd),
            ("\(base)/kubepods-besteffort.slice/kubepods-besteffort-pod\(Sample.podUIDUnderscored).slice/docker-\(Sample.id).scope", .bestEffort, .docker),
            ("\(base)/kubepods-burstable.slice/kubepods-burstable-pod\(Sample.podUIDUnderscored).slice/crio-\(Sample.id).scope", .burstable, .crio),
            ("\(base)/kubepods-burstable.slice/kubepods-burstable-pod\(Sample.podUIDUnderscored).slice/crio-conmon-\(Sample.id).scope", .burstable, .crio),
        ]
        for (path, qosClass, cri) in cases {
            assertIdentity(
                ContainerIdentity(cgroupPath: path), id: Sample.id, runtime: .kube, underlying: cri,
                pod: KubernetesPod(uid: Sample.podUID, qosClass: qosClass), path)
        }
    }

    func testKubernetesCgroupfsDriver() {
        let cases: [(String, KubernetesQoSClass, ContainerRuntime?)] = [
            ("11:memory:/kubepods/burstable/pod\(Sample.podUID)/\(Sample.id)", .burstable, nil),
            ("4:pids:/kubepods/besteffort/pod\(Sample.podUID)/\(Sample.id)", .bestEffort, nil),
            ("0::/kubepods/pod\(Sample.podUID)/\(Sample.id)", .guaranteed, nil),
            ("0::/kubepods/besteffort/pod\(Sample.podUID)/crio-\(Sample.id)", .bestEffort, .crio),
        ]
        for (line, qosClass, cri) in cases {
            assertIdentity(
                ContainerIdentity(cgroupFile: line), id: Sample.id, runtime: .kube, underlying: cri,
                pod: KubernetesPod(uid: Sample.podUID, qosClass: qosClass), line)
        }
    }

    func testKindNodeOnCgroupV2WithKubeletSlicePrefix() {
        let path = "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod\(Sample.podUIDUnderscored).slice/cri-containerd-\(Sample.id).scope"
        assertIdentity(
            ContainerIdentity(cgroupPath: path), id: Sample.id, runtime: .kube, underlying: .containerd,
            pod: KubernetesPod(uid: Sample.podUID, qosClass: .bestEffort))
    }

    func testKindNodeInsideDockerReportsThePodContainer() {
        let path = "/docker/\(Sample.otherID)/kubepods/besteffort/pod\(Sample.podUID)/\(Sample.id)"
        assertIdentity(
            ContainerIdentity(cgroupPath: path), id: Sample.id, runtime: .kube,
            pod: KubernetesPod(uid: Sample.podUID, qosClass: .bestEffort))
        // The node's own processes (kubelet, containerd) are in the node container.
        assertIdentity(
            ContainerIdentity(cgroupPath: "/docker/\(Sample.otherID)/system.slice/containerd.service"),
            id: Sample.otherID, runtime: .docker)
    }

    func testStaticPodUIDIsThirtyTwoHexDigits() {
        let path = "/kubepods/burstable/pod\(Sample.staticPodUID)/\(Sample.id)"
        assertIdentity(
            ContainerIdentity(cgroupPath: path), id: Sample.id, runtime: .kube,
            pod: KubernetesPod(uid: Sample.staticPodUID, qosClass: .burstable))
    }

    func testPodCgroupWithoutContainer() {
        let podOnly = ContainerIdentity(cgroupPath: "/kubepods/burstable/pod\(Sample.podUID)")
        assertIdentity(podOnly, id: "", runtime: .kube, pod: KubernetesPod(uid: Sample.podUID, qosClass: .burstable))
        XCTAssertTrue(podOnly.isContainer)

        // A line naming the container wins over an earlier pod-only line.
        let file = """
            0::/kubepods/burstable/pod\(Sample.podUID)
            4:memory:/kubepods/burstable/pod\(Sample.podUID)/\(Sample.id)
            """
        assertIdentity(
            ContainerIdentity(cgroupFile: file), id: Sample.id, runtime: .kube,
            pod: KubernetesPod(uid: Sample.podUID, qosClass: .burstable))
    }

    func testKubernetesQoSSlicesAloneAreHost() {
        assertHost("/kubepods.slice/kubepods-burstable.slice")
        assertHost("/kubepods/besteffort")
    }

    // MARK: lxc, nspawn, garden

    func testLXC() {
        for line in [
            "4:memory:/lxc/web01",  // LXC on v1
            "0::/lxc.payload.web01",  // LXC 4+ on v2
            "0::/lxc.payload.web01/system.slice/ssh.service",  // a service inside it
            "1:name=systemd:/lxc/web01/init.scope",
        ] {
            assertIdentity(ContainerIdentity(cgroupFile: line), id: "web01", runtime: .lxc, line)
        }
        XCTAssertEqual(ContainerIdentity(cgroupPath: "/lxc/web01").shortID, "web01")
        assertHost("/lxc.monitor.web01")  // the monitor runs on the host side
        assertHost("/lxc.payload.")
    }

    func testSystemdNspawn() {
        assertIdentity(
            ContainerIdentity(cgroupFile: "0::/machine.slice/machine-debian12.scope"), id: "debian12", runtime: .nspawn)
        assertIdentity(
            ContainerIdentity(cgroupFile: "0::/machine.slice/machine-debian12.scope/payload/system.slice/cron.service"),
            id: "debian12", runtime: .nspawn)
        assertIdentity(
            ContainerIdentity(cgroupFile: #"1:name=systemd:/machine.slice/machine-my\x2dbox.scope"#),
            id: "my-box", runtime: .nspawn)
        // libvirt's VMs share machine.slice; a qemu process is a host process.
        assertHost(#"/machine.slice/machine-qemu\x2d1\x2dvm1.scope/libvirt/emulator"#)
    }

    func testGarden() {
        let handle = "8f6c2c1e-4f3a-4b2a-6d7e-1a2b"
        assertIdentity(ContainerIdentity(cgroupFile: "4:memory:/garden/\(handle)"), id: handle, runtime: .garden)
        assertIdentity(ContainerIdentity(cgroupFile: "0::/garden/\(handle)"), id: handle, runtime: .garden)
    }

    // MARK: host and malformed input

    func testHostPaths() {
        for path in [
            "/", "/init.scope", "/user.slice/user-1000.slice/session-2.scope",
            "/system.slice/docker.service",  // dockerd itself
            "/system.slice/containerd.service", "/machine.slice", "/docker",
            "/process_api/828ae2d95c159e066f0260b3239aacd9",
        ] {
            assertHost(path)
        }
        let hybridHost = """
            9:name=systemd:/
            4:memory:/process_api/828ae2d95c159e066f0260b3239aacd9
            1:cpu:/
            0::/
            """
        XCTAssertEqual(ContainerIdentity(cgroupFile: hybridHost), .host)
    }

    func testMalformedLinesAreIgnored() {
        for text in [
            "", "\n\n", "garbage", "0:/docker/\(Sample.id)", "x::/docker/\(Sample.id)",
            ":memory:/docker/\(Sample.id)", "0::docker/\(Sample.id)", "0::", "::::",
        ] {
            XCTAssertEqual(ContainerIdentity(cgroupFile: text), .host, "\(text.debugDescription)")
        }
        let mixed = "garbage\n0:/bad\r\n4:memory:/docker/\(Sample.id)\r\n"
        assertIdentity(ContainerIdentity(cgroupFile: mixed), id: Sample.id, runtime: .docker)
    }

    func testIDsOfWrongLengthOrAlphabetAreNotContainers() {
        let short = String(Sample.id.dropLast())
        let long = Sample.id + "0"
        let uppercase = Sample.id.uppercased()
        let nonHex = "g" + Sample.id.dropFirst()
        for id in [short, long, uppercase, nonHex, String(Sample.id.prefix(12))] {
            assertHost("/docker/\(id)")
            assertHost("/system.slice/docker-\(id).scope")
            assertHost("/system.slice/cri-containerd-\(id).scope")
            assertHost("/machine.slice/libpod-\(id).scope")
            // Still inside the pod, but not in a container we can name.
            assertIdentity(
                ContainerIdentity(cgroupPath: "/kubepods/burstable/pod\(Sample.podUID)/\(id)"), id: "", runtime: .kube,
                pod: KubernetesPod(uid: Sample.podUID, qosClass: .burstable), id)
        }
        XCTAssertFalse(ContainerIdentity.isHexID(short))
        XCTAssertTrue(ContainerIdentity.isHexID(Sample.id))
    }

    func testMalformedPodUIDs() {
        // A bare id names a container only inside a valid pod cgroup.
        assertHost("/kubepods/burstable/pod1234/\(Sample.id)")
        assertHost("/kubepods/burstable/pod\(Sample.podUID.uppercased())/\(Sample.id)")
        assertHost("/somewhere/burstable/pod\(Sample.podUID)/\(Sample.id)")  // no kubepods above
        assertHost("/kubepods/gold/pod\(Sample.podUID)/\(Sample.id)")  // not a QoS class
        // A scope still names its runtime when the pod slice around it is malformed.
        assertIdentity(
            ContainerIdentity(cgroupPath: "/kubepods.slice/kubepods-burstable-podXYZ.slice/cri-containerd-\(Sample.id).scope"),
            id: Sample.id, runtime: .containerd)
    }

    // MARK: API surface

    func testRuntimeNamesMatchBpfd() {
        XCTAssertEqual(
            ContainerRuntime.allCases.map(\.rawValue),
            ["docker", "containerd", "crio", "podman", "kube", "lxc", "nspawn", "garden", "host"])
    }

    func testSystemdUnescaping() {
        XCTAssertEqual(CgroupPathParser.unescapeSystemdUnitName(#"a\x2db\x2fc"#), "a-b/c")
        XCTAssertEqual(CgroupPathParser.unescapeSystemdUnitName(#"bad\x2"#), #"bad\x2"#)
        XCTAssertEqual(CgroupPathParser.unescapeSystemdUnitName(#"bad\xzz"#), #"bad\xzz"#)
    }

    func testOfProcessReadsProcCgroup() throws {
        let procRoot = FileManager.default.temporaryDirectory
            .appendingPathComponent("vigil-proc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: "\(procRoot)/42", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: procRoot) }
        try "4:memory:/docker/\(Sample.id)\n0::/docker/\(Sample.id)\n"
            .write(toFile: "\(procRoot)/42/cgroup", atomically: true, encoding: .utf8)

        assertIdentity(try XCTUnwrap(ContainerIdentity.ofProcess(42, procRoot: procRoot)), id: Sample.id, runtime: .docker)
        XCTAssertNil(ContainerIdentity.ofProcess(43, procRoot: procRoot))
        XCTAssertNotNil(ContainerIdentity.ofProcess(getpid()))
    }

    // MARK: helpers

    private func assertIdentity(
        _ identity: ContainerIdentity, id: String, runtime: ContainerRuntime,
        underlying: ContainerRuntime? = nil, pod: KubernetesPod? = nil, _ context: String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(identity.id, id, context, file: file, line: line)
        XCTAssertEqual(identity.runtime, runtime, context, file: file, line: line)
        XCTAssertEqual(identity.underlyingRuntime, underlying, context, file: file, line: line)
        XCTAssertEqual(identity.pod, pod, context, file: file, line: line)
        XCTAssertEqual(identity.shortID, ContainerIdentity.isHexID(id) ? String(id.prefix(12)) : id, context, file: file, line: line)
    }

    private func assertHost(_ path: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ContainerIdentity(cgroupPath: path), .host, path, file: file, line: line)
        XCTAssertEqual(ContainerIdentity(cgroupFile: "0::\(path)"), .host, path, file: file, line: line)
    }
}
