import Foundation
import VigilContainers
import VigilEvents
import VigilSensors
import VigilTestSupport
import XCTest

/// Events from inside real Docker containers (DockerTestEngine starts dockerd and imports a
/// busybox image when needed).
final class ContainerTraceTests: XCTestCase {
    private func dockerExec(_ container: DockerTestEngine.Container, _ command: [String]) {
        let result = DockerTestEngine.run(["docker", "exec", container.name] + command)
        XCTAssertEqual(result.status, 0, result.errors)
    }

    func testEventsInsideAContainerCarryItsIdentityAndHostEventsCarryHost() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        let harness = try TraceHarness(metadata: true)
        let events = try harness.collect { dockerExec(container, ["cat", "/etc/hostname"]) }
        let exec = try XCTUnwrap(events.first { $0.kind == .exec && $0.comm == "cat" && $0.container.isContainer })
        XCTAssertEqual(exec.container.fullID, container.id)
        XCTAssertEqual(exec.container.id, String(container.id.prefix(12)))
        XCTAssertEqual(exec.container.name, container.name)
        XCTAssertEqual(exec.container.image, DockerTestEngine.image)
        XCTAssertEqual(exec.container.runtime, "docker")
        XCTAssertEqual(exec.exec?.arguments, ["cat", "/etc/hostname"])
        let open = try XCTUnwrap(events.first { $0.pid == exec.pid && $0.open?.path == "/etc/hostname" })
        XCTAssertEqual(open.container.fullID, container.id, "the container's own view of its files")
        XCTAssertGreaterThanOrEqual(open.open?.result ?? -1, 0)
        XCTAssertNotEqual(exec.pidNamespace, events.first { $0.comm == "docker" }?.pidNamespace)
        let client = try XCTUnwrap(events.first { $0.comm == "docker" && $0.kind == .exec }, "the docker CLI on the host")
        XCTAssertEqual(client.container.id, "host")
        XCTAssertEqual(client.container.runtime, "host")
    }

    func testEveryEventOfAContainersProcessesCarriesTheContainerInJSONFromTheFirst() throws {
        // The enricher hands a process's later events what it built for its first: every one,
        // from the first, must name the container, in the event and in its JSON line.
        let container = try DockerTestEngine.startContainer(for: self)
        let harness = try TraceHarness(metadata: true)
        let events = try harness.collect {
            dockerExec(container, ["sh", "-c", "cat /etc/hostname /etc/passwd /etc/group >/dev/null; ls / >/dev/null; head -c1 /etc/hosts"])
        }
        let shell = try XCTUnwrap(events.first { $0.kind == .exec && $0.comm == "sh" && $0.container.isContainer })
        // The container's processes, runc's exec init included (in the container's pid namespace
        // before it joins the container's cgroup).
        let inside = events.filter { $0.pidNamespace == shell.pidNamespace }
        XCTAssertGreaterThan(inside.filter { $0.kind == .open }.count, 3, "\(inside.map { "\($0.kind) \($0.comm)" })")
        for event in inside {
            XCTAssertEqual(event.container.fullID, container.id, "\(event.kind) \(event.comm)")
            let json = EventFormat.json(event)
            XCTAssertTrue(json.contains("\"container.full_id\":\"\(container.id)\""), json)
            XCTAssertTrue(json.contains("\"container.name\":\"\(container.name)\""), json)
            XCTAssertTrue(json.contains("\"proc.is_container\":true"), json)
        }
    }

    func testContainerStartedWhileTracingIsSeenFromItsFirstExec() throws {
        try DockerTestEngine.require()
        let harness = try TraceHarness(metadata: true)
        var container: DockerTestEngine.Container?
        let events = try harness.collect {
            container = try DockerTestEngine.startContainer(for: self, command: ["sh", "-c", "cat /etc/hostname; sleep 30"])
            Thread.sleep(forTimeInterval: 0.3)
        }
        let started = try XCTUnwrap(container)
        let inside = events.filter { $0.container.fullID == started.id }
        let firstExec = try XCTUnwrap(inside.first { $0.kind == .exec }, "no exec seen in the new container")
        XCTAssertEqual(firstExec.exec?.arguments, ["sh", "-c", "cat /etc/hostname; sleep 30"], "the entrypoint is the first exec")
        XCTAssertEqual(firstExec.container.name, started.name, "the first event already carries the name")
        XCTAssertEqual(firstExec.container.image, DockerTestEngine.image)
        // busybox sh may run cat in-process (a NOFORK applet), so look for the open, not an exec.
        XCTAssertTrue(inside.contains { $0.open?.path == "/etc/hostname" }, "\(inside.map { "\($0.kind) \($0.comm)" })")
    }

    func testContainerFilterAndContainersOnlyDropOthersInTheKernel() throws {
        let chosen = try DockerTestEngine.startContainer(for: self)
        let other = try DockerTestEngine.startContainer(for: self)
        var filter = KernelFilter()
        filter.cgroupIDs = CgroupResolver().cgroupIDs(ofContainer: chosen.id)
        XCTAssertFalse(filter.cgroupIDs.isEmpty)
        let harness = try TraceHarness(filter: filter, metadata: true)
        let counters = { try harness.sensors.counters().values.map(\.filtered).reduce(0, +) }
        let before = try counters()
        let events = try harness.collect {
            dockerExec(chosen, ["cat", "/etc/hostname"])
            dockerExec(other, ["cat", "/etc/hostname"])
        }
        XCTAssertTrue(events.contains { $0.comm == "cat" && $0.container.fullID == chosen.id })
        XCTAssertTrue(events.allSatisfy { $0.container.fullID == chosen.id }, "\(Set(events.map(\.container.id)))")
        XCTAssertGreaterThan(try counters(), before, "the other container and the host were dropped in the kernel")

        filter = KernelFilter()
        filter.containersOnly = true
        try harness.sensors.apply(filter)
        let second = try harness.collect {
            dockerExec(other, ["cat", "/etc/hostname"])
            try runProgram("/bin/cat", ["/etc/hostname"])
        }
        XCTAssertTrue(second.contains { $0.comm == "cat" && $0.container.fullID == other.id })
        XCTAssertTrue(second.allSatisfy { $0.container.isContainer },
                      "host events were dropped: \(second.filter { !$0.container.isContainer }.map { "\($0.kind) \($0.comm) \($0.pidNamespace) cg=\($0.cgroupID)" })")
    }
}
