import Foundation
import VigilContainers
import VigilEnrichment
import VigilEvents
import VigilSensors
import VigilTestSupport
import XCTest

/// Every event of every process of a container names it (id, name, image), from its first event
/// to its last: real bash, cat and sort (`vigil-test-bash:1`, the host's own programs) in real
/// Docker containers, every event of the container's pid namespace checked.
///
/// Events are read while the containers run, as `vigil trace` reads them. The enricher's cgroup
/// resolver has just walked the hierarchy and may not walk again for an
/// hour: what it meets on a busy host, where a walk for another container's cgroup ran a moment
/// before this container's cgroup was made. A container must be named without waiting for a walk.
final class ContainerAttributionTests: XCTestCase {
    private func justWalkedResolver(_ hierarchy: CgroupHierarchy = .onThisHost) -> CgroupResolver {
        let resolver = CgroupResolver(hierarchy: hierarchy, minimumRescanInterval: .seconds(3600))
        resolver.rescan()
        return resolver
    }

    /// A container name for one test, removed (if still there) when it ends.
    private func containerName() -> String {
        let name = "vigil-ct-\(UUID().uuidString.prefix(8).lowercased())"
        addTeardownBlock { _ = DockerTestEngine.run(["docker", "rm", "-f", name]) }
        return name
    }

    /// Runs `docker run --rm --network none --name NAME IMAGE bash -c SCRIPT` in the foreground
    /// and returns the container's id. `SCRIPT` starts with `: MARKER;` so its exec can be found
    /// among the events.
    private static func runContainer(_ name: String, _ marker: String, _ script: String, options: [String] = []) throws -> String {
        let cidFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(name).cid").path
        defer { try? FileManager.default.removeItem(atPath: cidFile) }
        let result = DockerTestEngine.run(["docker", "run", "--rm", "--network", "none", "--name", name, "--cidfile", cidFile] + options
                                          + [DockerTestEngine.bashImage, "bash", "-c", ": \(marker); \(script)"])
        XCTAssertEqual(result.status, 0, result.errors)
        let id = try String(contentsOfFile: cidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(id.count, 64, "docker run --cidfile wrote \(id)")
        return id
    }

    /// The events of the pid namespace whose bash exec'ed a command line containing `marker` (not
    /// the docker CLI's, whose arguments hold it too).
    private func eventsOfPIDNamespace(execing marker: String, in events: [Event]) throws -> [Event] {
        let exec = try XCTUnwrap(events.first { $0.comm == "bash" && $0.exec?.arguments.contains { $0.string.contains(marker) } ?? false },
                                 "no exec of bash with a command containing \(marker)")
        XCTAssertNotEqual(exec.pidNamespace, events.first { $0.comm == "docker" }?.pidNamespace, "the container has its own pid namespace")
        return events.filter { $0.pidNamespace == exec.pidNamespace }
    }

    /// Every event in `inside` names the container, as values and in its JSON line.
    private func assertEveryEvent(_ inside: [Event], isIn container: (id: String, name: String),
                                  file: StaticString = #filePath, line: UInt = #line) {
        var wrong: [String] = []
        for event in inside {
            let json = EventFormat.json(event)
            if event.container.fullID != container.id || event.container.name != container.name
                || event.container.image != DockerTestEngine.bashImage || event.container.runtime != "docker"
                || !json.contains("\"container.id\":\"\(container.id.prefix(12))\"")
                || !json.contains("\"container.name\":\"\(container.name)\"")
                || !json.contains("\"container.image\":\"\(DockerTestEngine.bashImage)\"")
            {
                wrong.append("\(event.kind) \(event.comm) pid \(event.pid) tid \(event.tid) cgroup \(event.cgroupID) \(event.open?.path.string ?? ""): "
                             + "container.id \(event.container.id) name '\(event.container.name)' image '\(event.container.image)'")
            }
        }
        XCTAssertEqual(wrong, [], "\(wrong.count) of \(inside.count) events do not name \(container.name)", file: file, line: line)
    }

    func testTheIssuesCommandNamesTheContainerOnEveryEventOfEveryProcess() throws {
        try DockerTestEngine.requireImage(DockerTestEngine.bashImage)
        let resolver = justWalkedResolver()
        let harness = try TraceHarness(metadata: true, cgroups: resolver)
        let marker = "vigil-\(UUID().uuidString)", name = containerName()
        let (id, events) = try harness.collectWhileRunning {
            try Self.runContainer(name, marker, #"cat /etc/shadow; bash -c "cat /etc/shadow; true"; sleep 1; cat /etc/shadow; true"#)
        }
        let inside = try eventsOfPIDNamespace(execing: marker, in: events)
        let cats = inside.filter { $0.kind == .exec && $0.comm == "cat" }
        XCTAssertEqual(cats.count, 3, "\(inside.map { "\($0.kind) \($0.comm)" })")
        XCTAssertEqual(inside.filter { $0.comm == "cat" && $0.open?.path == "/etc/shadow" && ($0.open?.result ?? -1) >= 0 }.count, 3)
        XCTAssertEqual(inside.filter { $0.kind == .exec && $0.comm == "bash" }.count, 2, "the entrypoint and the inner bash")
        XCTAssertGreaterThan(inside.filter { $0.kind == .open && $0.comm == "bash" }.count, 20, "the inner bash's own opens are checked too")
        assertEveryEvent(inside, isIn: (id, name))
        let client = try XCTUnwrap(events.first { $0.comm == "docker" && $0.kind == .exec }, "the docker CLI on the host")
        XCTAssertEqual(client.container.id, "host")
    }

    func testSubshellsWithoutExecAndThreadsNameTheContainer() throws {
        try DockerTestEngine.requireImage(DockerTestEngine.bashImage)
        let harness = try TraceHarness(metadata: true, cgroups: justWalkedResolver())
        let marker = "vigil-\(UUID().uuidString)", name = containerName()
        let (id, events) = try harness.collectWhileRunning {
            try Self.runContainer(name, marker, """
                (cat /etc/shadow >/dev/null; (echo forked >/tmp/subshell)); bash -c '(echo again >/tmp/nested); true'; \
                seq 1 300000 >/tmp/numbers; sort --parallel=2 -S 100M /tmp/numbers -o /tmp/sorted; cat /tmp/sorted >/dev/null
                """)
        }
        let inside = try eventsOfPIDNamespace(execing: marker, in: events)
        let execed = Set(inside.filter { $0.kind == .exec }.map(\.pid))
        for path in ["/tmp/subshell", "/tmp/nested"] {
            let open = try XCTUnwrap(inside.first { $0.open?.path.string == path }, "no open of \(path)")
            XCTAssertFalse(execed.contains(open.pid), "\(path) is written by a forked bash that never exec'ed")
        }
        let sort = try XCTUnwrap(inside.first { $0.kind == .exec && $0.comm == "sort" })
        let threads = inside.filter { $0.pid == sort.pid && $0.fork?.isThread == true }
        XCTAssertFalse(threads.isEmpty, "sort --parallel=2 made no thread: \(inside.filter { $0.pid == sort.pid }.map { "\($0.kind)" })")
        XCTAssertTrue(inside.contains { $0.pid == sort.pid && $0.open?.path.string == "/tmp/sorted" }, "sort's open after its threads ran")
        assertEveryEvent(inside, isIn: (id, name))
    }

    func testDockerExecIntoARunningContainerNamesItOnEveryEvent() throws {
        try DockerTestEngine.requireImage(DockerTestEngine.bashImage)
        let harness = try TraceHarness(metadata: true, cgroups: justWalkedResolver())
        let container = try DockerTestEngine.startContainer(for: self, image: DockerTestEngine.bashImage, command: ["sleep", "300"])
        try assertDockerExecIsNamed(container, harness)
    }

    func testDockerExecIntoAContainerThatRanIdleBeforeTracingNamesItOnEveryEvent() throws {
        // No event of the container was read before: runc's exec init, in the container's pid
        // namespace but still in the root cgroup, must be named all the same.
        let container = try DockerTestEngine.startContainer(for: self, image: DockerTestEngine.bashImage, command: ["sleep", "300"])
        let harness = try TraceHarness(metadata: true, cgroups: justWalkedResolver())
        try assertDockerExecIsNamed(container, harness)
    }

    private func assertDockerExecIsNamed(_ container: DockerTestEngine.Container, _ harness: TraceHarness,
                                         file: StaticString = #filePath, line: UInt = #line) throws {
        let marker = "vigil-\(UUID().uuidString)", name = container.name
        let (_, events) = try harness.collectWhileRunning {
            let result = DockerTestEngine.run([
                "docker", "exec", name, "bash", "-c",
                ": \(marker); cat /etc/shadow; (cat /etc/shadow); bash -c 'cat /etc/shadow; true'; seq 1 300000 | sort --parallel=2 -S 100M >/dev/null",
            ])
            XCTAssertEqual(result.status, 0, result.errors)
        }
        let inside = try eventsOfPIDNamespace(execing: marker, in: events)
        XCTAssertEqual(inside.filter { $0.open?.path == "/etc/shadow" && ($0.open?.result ?? -1) >= 0 }.count, 3,
                       "\(inside.map { "\($0.kind) \($0.comm)" })", file: file, line: line)
        XCTAssertTrue(inside.contains { $0.comm == "sort" && $0.fork?.isThread == true }, "sort made threads", file: file, line: line)
        XCTAssertTrue(inside.contains { $0.comm.string.hasPrefix("runc:") }, "runc's exec init is checked too", file: file, line: line)
        assertEveryEvent(inside, isIn: (container.id, container.name), file: file, line: line)
    }

    func testWhereCgroupIDsNameNoContainerProcessesAreNamedThroughProcAndTheirAncestry() throws {
        // What a v1-only host looks like to the enricher (every task in the v2 root) or one whose
        // runtime leaves the v2 hierarchy alone: the resolver here sees an empty tree, so no
        // cgroup id names anything. The container's init is named through /proc while it runs,
        // and every process after it through what it inherited by fork and kept by exec.
        try DockerTestEngine.requireImage(DockerTestEngine.bashImage)
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-no-cgroups-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let harness = try TraceHarness(metadata: true, cgroups: CgroupResolver(mount: .init(mountPoint: empty)))
        let marker = "vigil-\(UUID().uuidString)", name = containerName()
        let (id, events) = try harness.collectWhileRunning {
            try Self.runContainer(name, marker, """
                cat /etc/shadow; bash -c "cat /etc/shadow; true"; (cat /etc/shadow; (echo forked >/tmp/subshell)); \
                seq 1 300000 >/tmp/numbers; sort --parallel=2 -S 100M /tmp/numbers -o /tmp/sorted; true
                """)
        }
        let inside = try eventsOfPIDNamespace(execing: marker, in: events)
        XCTAssertEqual(inside.filter { $0.comm == "cat" && $0.open?.path == "/etc/shadow" && ($0.open?.result ?? -1) >= 0 }.count, 3)
        XCTAssertTrue(inside.contains { $0.comm == "sort" && $0.fork?.isThread == true }, "sort made threads")
        assertEveryEvent(inside, isIn: (id, name))
    }

    /// The events of the process that exec'ed bash with `marker` and of every process forked from
    /// it or its descendants (the kernel's fork events say which).
    private func eventsOfProcessTree(execing marker: String, in events: [Event]) throws -> [Event] {
        let exec = try XCTUnwrap(events.first { $0.comm == "bash" && $0.exec?.arguments.contains { $0.string.contains(marker) } ?? false },
                                 "no exec of bash with a command containing \(marker)")
        var tree: Set<UInt32> = [exec.pid]
        for event in events {
            if let fork = event.fork, !fork.isThread, tree.contains(event.pid) { tree.insert(fork.childPID) }
        }
        return events.filter { tree.contains($0.pid) }
    }

    func testOnTheV1PidsHierarchyACgroupNamesEvenAContainerInTheHostsPIDNamespace() throws {
        // The sensors take cgroup ids from the v1 pids hierarchy (what they do on a v1-only host):
        // a container that shares the host's pid namespace (docker run --pid=host) has nothing
        // but its cgroup to tell it from the host, and every event must still name it.
        try DockerTestEngine.requireImage(DockerTestEngine.bashImage)
        let resolver = justWalkedResolver(.v1Pids)
        guard resolver.mount != nil else { throw cannotRun("no cgroup v1 pids hierarchy here: \(resolver.unavailableReason ?? "")") }
        let harness = try TraceHarness(metadata: true, cgroupHierarchy: .v1Pids, cgroups: resolver)
        let marker = "vigil-\(UUID().uuidString)", name = containerName()
        let (id, events) = try harness.collectWhileRunning {
            try Self.runContainer(name, marker, #"cat /etc/shadow; bash -c "cat /etc/shadow; true"; (cat /etc/shadow); true"#,
                                  options: ["--pid=host"])
        }
        let inside = try eventsOfProcessTree(execing: marker, in: events)
        XCTAssertTrue(inside.allSatisfy { $0.pidNamespace == Namespaces.hostPID }, "--pid=host")
        XCTAssertEqual(inside.filter { $0.comm == "cat" && $0.open?.path == "/etc/shadow" && ($0.open?.result ?? -1) >= 0 }.count, 3,
                       "\(inside.map { "\($0.kind) \($0.comm)" })")
        assertEveryEvent(inside, isIn: (id, name))
        let client = try XCTUnwrap(events.first { $0.comm == "docker" && $0.kind == .exec }, "the docker CLI on the host")
        XCTAssertEqual(client.container.id, "host")
    }
}
