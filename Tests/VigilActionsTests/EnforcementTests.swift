import Foundation
import VigilActions
import VigilEvents
import VigilRules
import VigilTestSupport
import XCTest

/// kill, container_* and kernel_kill on real processes and containers.
final class EnforcementTests: XCTestCase {
    private func bootTimeNow() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    private func startChild(_ arguments: [String] = ["60"]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = arguments
        try process.run()
        addTeardownBlock {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        return process
    }

    func testKillSendsSIGKILLToARealProcessAndTheAlertSaysSo() throws {
        let child = try startChild()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-kill-\(UUID().uuidString.prefix(8))").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let observed = ObservedAlerts()
        let dispatcher = try makeDispatcher("named: {out: {type: file, path: \(directory)}}", observed: observed)
        let pid = UInt32(child.processIdentifier)
        dispatcher.dispatch(testAlert(testEvent(pid: pid, comm: "sleep", bootTimeNs: bootTimeNow())), actions: ["kill", "out"])
        child.waitUntilExit()
        XCTAssertEqual(child.terminationReason, .uncaughtSignal)
        XCTAssertEqual(child.terminationStatus, SIGKILL)
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(observed.all.map(\.enforcement), [[EnforcementResult(action: "kill", enforced: true, detail: "SIGKILL sent to pid \(pid)")]])
        let line = try String(contentsOfFile: directory, encoding: .utf8)
        XCTAssertTrue(line.contains("\"enforcement\":[{\"action\":\"kill\",\"result\":\"enforced\""), "the reporting actions see the result: \(line)")
        XCTAssertEqual(dispatcher.stats().of("kill").sent, 1)
    }

    func testKillRefusesPidOneItselfAGoneProcessAndAReusedPid() throws {
        let exited = try startChild(["0"])
        exited.waitUntilExit()
        let alive = try startChild()
        let observed = ObservedAlerts()
        let dispatcher = try makeDispatcher("dedup: {window: 0}", observed: observed)
        let events = [
            testEvent(pid: 1), testEvent(pid: UInt32(getpid())), testEvent(pid: UInt32(exited.processIdentifier)),
            // An event from before the process at that pid started: the pid was reused.
            testEvent(pid: UInt32(alive.processIdentifier), bootTimeNs: 1),
        ]
        for event in events { dispatcher.dispatch(testAlert(event), actions: ["kill"]) }
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        let details = observed.all.map { $0.enforcement.map(\.detail) }
        XCTAssertEqual(details.count, 4)
        XCTAssertEqual(details[0], ["refused: will not kill pid 1"])
        XCTAssertEqual(details[1], ["refused: pid \(getpid()) is vigil itself"])
        XCTAssertEqual(details[2], ["process gone: pid \(exited.processIdentifier) has exited"])
        XCTAssertEqual(details[3], ["process gone: pid \(alive.processIdentifier) now belongs to a process started after the event"])
        XCTAssertTrue(observed.all.allSatisfy { $0.enforcement.allSatisfy { !$0.enforced } })
        XCTAssertTrue(alive.isRunning)
        XCTAssertEqual(dispatcher.stats().of("kill").failed, 4)
    }

    func testDockerPauseThenKillOfARealContainer() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        let observed = ObservedAlerts()
        let dispatcher = try makeDispatcher("{}", observed: observed)
        let context = ContainerContext(fullID: container.id, runtime: "docker", name: container.name, image: DockerTestEngine.image, labels: [:], podUID: "")
        let event = testEvent(comm: "sleep", container: context)
        func state(_ field: String) -> String {
            DockerTestEngine.run(["docker", "inspect", "-f", "{{.State.\(field)}}", container.id]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        dispatcher.dispatch(testAlert(event, output: "1"), actions: ["container_pause"])
        waitUntil("the container paused") { state("Paused") == "true" }
        dispatcher.dispatch(testAlert(event, output: "2"), actions: ["container_unpause"])
        waitUntil("the container unpaused") { state("Paused") == "false" }
        dispatcher.dispatch(testAlert(event, output: "3"), actions: ["container_pause"])
        waitUntil("the container paused again") { state("Paused") == "true" }
        dispatcher.dispatch(testAlert(event, output: "4"), actions: ["container_kill"])
        waitUntil("the container killed") { state("Running") != "true" }
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        let short = container.id.prefix(12)
        XCTAssertEqual(observed.all.map(\.enforcement), [
            [EnforcementResult(action: "container_pause", enforced: true, detail: "paused container \(short)")],
            [EnforcementResult(action: "container_unpause", enforced: true, detail: "unpaused container \(short)")],
            [EnforcementResult(action: "container_pause", enforced: true, detail: "paused container \(short)")],
            [EnforcementResult(action: "container_kill", enforced: true, detail: "killed container \(short)")],
        ])
    }

    func testDockerStopOfARealContainerAndOfOneAlreadyStopped() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        let observed = ObservedAlerts()
        let dispatcher = try makeDispatcher("named: {stop-now: {type: container_stop, grace: 1}}", observed: observed)
        let context = ContainerContext(fullID: container.id, runtime: "docker", name: container.name, image: DockerTestEngine.image, labels: [:], podUID: "")
        dispatcher.dispatch(testAlert(testEvent(container: context), output: "1"), actions: ["stop-now"])
        dispatcher.dispatch(testAlert(testEvent(container: context), output: "2"), actions: ["stop-now"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(60)))
        let results = observed.all.flatMap(\.enforcement)
        XCTAssertEqual(results.first?.detail, "stopped container \(container.id.prefix(12))")
        // The container ran with --rm: after the stop it is either being removed or gone.
        XCTAssertTrue(results.last.map { !$0.enforced || $0.detail.contains("already stopped") } ?? false, "\(results)")
        XCTAssertNotEqual(DockerTestEngine.run(["docker", "inspect", "-f", "{{.State.Running}}", container.id]).output.trimmingCharacters(in: .whitespacesAndNewlines), "true")
    }

    /// container_checkpoint of a real container counting in a loop, through an engine with
    /// experimental features (a private one: the shared engine runs without them). Where CRIU
    /// works, the container stops, its checkpoint is in the configured directory, and `docker
    /// start --checkpoint` restores it counting on from where it was (a fresh start would count
    /// from 1). Where CRIU cannot dump on this kernel (`criu check` fails), the action fails and
    /// names the step CRIU failed at, the one `criu check` names, and the container runs on.
    func testDockerCheckpointOfARealContainerKeepsItsCounterOrNamesWhyCRIUCannot() throws {
        guard DockerTestEngine.run(["criu", "--version"]).status == 0 else { throw cannotRun("needs criu (scripts/setup.sh --test installs it)") }
        let engine = try ExperimentalDockerEngine.start(for: self)
        let name = "vigil-cp-\(UUID().uuidString.prefix(8).lowercased())"
        let started = engine.docker(["run", "-d", "--network", "none", "--name", name, DockerTestEngine.image, "sh", "-c",
                                     "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done"])
        let id = started.output.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(id.count, 64, "docker run: \(started.errors)")
        func count() -> Int { Int(engine.docker(["exec", name, "cat", "/tmp/count"]).output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 }
        func running() -> String { engine.docker(["inspect", "-f", "{{.State.Running}}", name]).output.trimmingCharacters(in: .whitespacesAndNewlines) }
        waitUntil("the container counted to 40") { count() >= 40 }
        let counted = count()

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-checkpoints-\(UUID().uuidString.prefix(8))").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let observed = ObservedAlerts()
        let dispatcher = try makeDispatcher("named: {forensics: {type: container_checkpoint, docker_socket: \(engine.socketPath), directory: \(directory)}}",
                                            observed: observed)
        let context = ContainerContext(fullID: id, runtime: "docker", name: name, image: DockerTestEngine.image, labels: [:], podUID: "")
        dispatcher.dispatch(testAlert(testEvent(comm: "sh", container: context)), actions: ["forensics"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(120)))
        let result = try XCTUnwrap(observed.all.first?.enforcement.first)
        XCTAssertEqual(result.action, "forensics")

        let check = DockerTestEngine.run(["criu", "check"])
        if check.status == 0 {
            XCTAssertTrue(result.enforced, result.detail)
            XCTAssertTrue(result.detail.hasPrefix("checkpointed container \(id.prefix(12)) as vigil-"), result.detail)
            XCTAssertEqual(running(), "false", "the container stops once checkpointed")
            let checkpoints = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("vigil-") }
            XCTAssertEqual(checkpoints.count, 1, "\(checkpoints)")
            let checkpoint = try XCTUnwrap(checkpoints.first)
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory)/\(checkpoint)/inventory.img"), "CRIU's images")
            let restore = engine.docker(["start", "--checkpoint", checkpoint, "--checkpoint-dir", directory, name])
            XCTAssertEqual(restore.status, 0, restore.errors)
            waitUntil("the restored container counts") { count() > counted }
            XCTAssertGreaterThanOrEqual(count(), counted, "restored counting on from \(counted), not from 1")
        } else {
            // The step `criu check` fails at (its first error line) is the one the alert names.
            let firstError = try XCTUnwrap((check.output + check.errors).split(separator: "\n").first { $0.contains("Error (") },
                                           "criu check failed without an error line: \(check.output) \(check.errors)")
            let step = String(firstError.drop { $0 != "E" })
            XCTAssertFalse(result.enforced)
            XCTAssertTrue(result.detail.contains("criu failed"), result.detail)
            XCTAssertTrue(result.detail.contains("criu: " + step), "the alert names CRIU's failing step '\(step)': \(result.detail)")
            XCTAssertEqual(running(), "true", "a failed checkpoint leaves the container running")
        }
    }

    func testContainerActionsThatCannotBeEnforcedFailVisibly() throws {
        let observed = ObservedAlerts()
        let dispatcher = try makeDispatcher("named: {pause-elsewhere: {type: container_pause, docker_socket: /nonexistent/docker.sock}}", observed: observed)
        let inContainer = ContainerContext(fullID: String(repeating: "ab", count: 32), runtime: "docker", name: "x", image: "", labels: [:], podUID: "")
        let inPodman = ContainerContext(fullID: String(repeating: "cd", count: 32), runtime: "podman", name: "y", image: "", labels: [:], podUID: "")
        dispatcher.dispatch(testAlert(testEvent()), actions: ["container_stop"])
        dispatcher.dispatch(testAlert(testEvent(container: inContainer)), actions: ["pause-elsewhere"])
        dispatcher.dispatch(testAlert(testEvent(container: inPodman)), actions: ["container_kill"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        let results = observed.all.flatMap(\.enforcement)
        XCTAssertEqual(results.count, 3)
        XCTAssertTrue(results.allSatisfy { !$0.enforced })
        XCTAssertEqual(results.first { $0.action == "container_stop" }?.detail, "not in a container (on the host)")
        XCTAssertTrue(results.first { $0.action == "pause-elsewhere" }?.detail.contains("/nonexistent/docker.sock unavailable") ?? false, "\(results)")
        XCTAssertEqual(results.first { $0.action == "container_kill" }?.detail, "container cdcdcdcdcdcd runs under podman, not Docker")
        let stats = dispatcher.stats()
        XCTAssertEqual(stats.of("container_stop").failed + stats.of("pause-elsewhere").failed + stats.of("container_kill").failed, 3)
    }

    func testKernelKillIsReportedFromTheDaemonsTableNeverSilently() throws {
        let observed = ObservedAlerts()
        let dispatcher = try makeDispatcher("default_actions: []", observed: observed)
        dispatcher.setKernelKill(["In kernel": .enforced, "Needs userspace": .notEnforced("proc.aname is not known in the kernel")])
        for rule in ["In kernel", "Needs userspace", "Never loaded"] {
            dispatcher.dispatch(testAlert(rule: rule), actions: ["kernel_kill"])
        }
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(observed.all.map(\.enforcement), [
            [EnforcementResult(action: "kernel_kill", enforced: true, detail: "enforced in kernel")],
            [EnforcementResult(action: "kernel_kill", enforced: false, detail: "not enforced in kernel: proc.aname is not known in the kernel")],
            [EnforcementResult(action: "kernel_kill", enforced: false, detail: "not enforced: the kernel did not take this rule")],
        ])
        let stats = dispatcher.stats().of("kernel_kill")
        XCTAssertEqual(stats.sent, 1)
        XCTAssertEqual(stats.failed, 2)
    }

    func testEnforcingAlertsAreNeverAggregated() throws {
        let observed = ObservedAlerts()
        let dispatcher = try makeDispatcher("dedup: {window: 60}", observed: observed)
        for _ in 0..<3 { dispatcher.dispatch(testAlert(testEvent(pid: 1)), actions: ["kill"]) }
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(observed.all.count, 3)
        XCTAssertEqual(dispatcher.stats().suppressed, 0)
        XCTAssertEqual(dispatcher.stats().of("kill").failed, 3)
    }
}
