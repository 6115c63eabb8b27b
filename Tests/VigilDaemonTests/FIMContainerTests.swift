import Foundation
import VigilTestSupport
import XCTest

/// File integrity monitoring inside Docker containers (`fim.containers`), in a real daemon with a
/// real Docker engine: a container running before the daemon and one started after it get their
/// watches (through their roots, keyed by the inodes the kernel sees), and changes made inside
/// them are alerted with the container and the path as the container sees it.
final class FIMContainerTests: XCTestCase {
    /// The daemon's alert lines (stdout action, text) naming `rule`.
    private func alerts(_ daemon: TestDaemon, _ rule: String) -> [String] {
        daemon.stdout.sofar.split(separator: "\n").map(String.init).filter { $0.contains(" \(rule): ") }
    }

    /// A daemon with the user rules `rules` that watches the users profile inside containers.
    private func fimDaemon(rules: String) throws -> TestDaemon {
        let home = try temporaryDirectory()
        try FileManager.default.createDirectory(atPath: home + "/rules.d", withIntermediateDirectories: true)
        try rules.write(toFile: home + "/rules.d/user.yaml", atomically: true, encoding: .utf8)
        return try TestDaemon(extraConfig: """
        fim:
          containers:
            profiles: [users]
        """, directory: home)
    }

    /// A daemon (`fimDaemon`) with the rule "Container account file": a change of /etc/passwd
    /// inside a container, its output `in ID NAME image IMAGE: ` then `output`.
    private func containerRuleDaemon(output: String) throws -> TestDaemon {
        try fimDaemon(rules: """
        - rule: Container account file
          desc: which container, image and path
          condition: evt.type = fim_change and fim.path = /etc/passwd and container.id != host
          output: "in %container.id %container.name image %container.image: \(output)"
          priority: INFO
        """)
    }

    private func exec(_ container: DockerTestEngine.Container, _ script: String) throws {
        let result = try runCapturing("/usr/bin/docker", ["exec", container.id, "sh", "-c", script])
        XCTAssertEqual(result.status, 0, "\(script): \(result.stderr)")
    }

    func testChangesInsideContainersAreAlertedWithTheContainerAndItsPath() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        try DockerTestEngine.requireImage(DockerTestEngine.accountsImage)
        let image = DockerTestEngine.accountsImage
        let before = try DockerTestEngine.startContainer(for: self, image: image, command: ["sleep", "300"])
        let daemon = try containerRuleDaemon(output: "%fim.path %fim.change from %fim.rename.from added %fim.users_added removed %fim.users_removed")
        defer { _ = daemon.stop() }
        XCTAssertTrue(waitUntil(seconds: 20) { daemon.stderr.sofar.contains("fim: container \(before.name) (") }, daemon.diagnostics)

        // a container started after the daemon: watched from its start event
        let after = try DockerTestEngine.startContainer(for: self, image: image, command: ["sleep", "300"])
        XCTAssertTrue(waitUntil(seconds: 20) { daemon.stderr.sofar.contains("fim: container \(after.name) (") }, daemon.diagnostics)

        // echo >>: a write through the watched inode (copied up to the container's upper layer)
        try exec(after, "echo 'mallory:x:0:0::/root:/bin/sh' >> /etc/passwd")
        XCTAssertTrue(waitUntil(seconds: 10) { alerts(daemon, "New uid 0 account").contains { $0.contains("container=\(after.name) ") } },
                      daemon.diagnostics + daemon.stdout.sofar)
        let uid0 = try XCTUnwrap(alerts(daemon, "New uid 0 account").first { $0.contains("container=\(after.name) ") })
        XCTAssertTrue(uid0.contains("(file=/etc/passwd change=modified "), uid0)
        XCTAssertTrue(uid0.contains("): /etc/passwd modified: user added: mallory"), uid0)
        let short = String(after.id.prefix(12))
        XCTAssertTrue(waitUntil(seconds: 5) { alerts(daemon, "Container account file").contains {
            $0.contains("in \(short) \(after.name) image \(image): /etc/passwd modified from <NA> added (mallory) removed <NA>") } },
                      daemon.stdout.sofar)

        // sed -i: a new file renamed over /etc/passwd inside the container (re-keyed in the kernel):
        // one change, renamed from sed's temporary file
        try exec(after, "sed -i 's/^mallory:/eve:/' /etc/passwd")
        XCTAssertTrue(waitUntil(seconds: 10) { alerts(daemon, "Container account file").contains {
            $0.contains("in \(short) \(after.name) image \(image): /etc/passwd renamed from /etc/passwd") && $0.hasSuffix(" added (eve) removed (mallory)") } },
                      daemon.diagnostics + daemon.stdout.sofar)
        // the next append goes to the renamed-in inode: still watched
        try exec(after, "echo 'carol:x:1001:1001::/home/carol:/bin/sh' >> /etc/passwd")
        XCTAssertTrue(waitUntil(seconds: 10) { alerts(daemon, "Container account file").contains {
            $0.contains("in \(short) \(after.name) image \(image): /etc/passwd modified from <NA> added (carol) removed <NA>") } },
                      daemon.diagnostics + daemon.stdout.sofar)

        // adduser-style (shadow's useradd, busybox's adduser): a copy written as /etc/passwd+,
        // renamed over /etc/passwd (Debian's busybox has no adduser applet)
        try exec(after, "cp /etc/passwd /etc/passwd+ && echo 'bob:x:1003:1003::/home/bob:/bin/sh' >> /etc/passwd+ && mv /etc/passwd+ /etc/passwd")
        XCTAssertTrue(waitUntil(seconds: 10) { alerts(daemon, "Container account file").contains {
            $0.contains("in \(short) \(after.name) image \(image): /etc/passwd renamed from /etc/passwd+ added (bob) removed <NA>") } },
                      daemon.diagnostics + daemon.stdout.sofar)

        // the container that ran before the daemon
        try exec(before, "echo 'dave:x:1002:1002::/home/dave:/bin/sh' >> /etc/passwd")
        XCTAssertTrue(waitUntil(seconds: 10) { alerts(daemon, "Container account file").contains {
            $0.contains("in \(before.id.prefix(12)) \(before.name) image \(image): /etc/passwd modified from <NA> added (dave) removed <NA>") } },
                      daemon.diagnostics + daemon.stdout.sofar)
        XCTAssertFalse(alerts(daemon, "Container account file").contains { $0.contains(before.name) && $0.contains("mallory") },
                       "one container's change is not another's: \(daemon.stdout.sofar)")
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// A container that runs on while the daemon is down: what changed in its files meanwhile is
    /// alerted when the daemon starts again and watches it (while_down, named by the container,
    /// the path as it sees it), from the baseline saved for it; a container removed meanwhile
    /// leaves no saved baseline behind.
    func testAChangeInsideAContainerWhileVigilWasDownIsAlertedAtTheNextStart() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        try DockerTestEngine.requireImage(DockerTestEngine.accountsImage)
        let image = DockerTestEngine.accountsImage
        let container = try DockerTestEngine.startContainer(for: self, image: image, command: ["sleep", "300"])
        let removed = try DockerTestEngine.startContainer(for: self, image: image, command: ["sleep", "300"])
        let daemon = try containerRuleDaemon(output: "%fim.path %fim.change added %fim.users_added while down %fim.while_down")
        defer { _ = daemon.stop() }
        for watched in [container, removed] {
            XCTAssertTrue(waitUntil(seconds: 20) { daemon.stderr.sofar.contains("fim: container \(watched.name) (") }, daemon.diagnostics)
        }
        let saved = daemon.directory + "/state/fim/containers/"
        XCTAssertTrue(FileManager.default.fileExists(atPath: saved + container.id + ".json"), "a watched container's baseline is saved")

        XCTAssertEqual(daemon.stop(), 0)
        try exec(container, "echo 'mallory:x:0:0::/root:/bin/sh' >> /etc/passwd")
        XCTAssertEqual(try runCapturing("/usr/bin/docker", ["rm", "-f", removed.id]).status, 0)
        try daemon.restart()

        let short = String(container.id.prefix(12))
        XCTAssertTrue(waitUntil(seconds: 20) { alerts(daemon, "Container account file").contains {
            $0.contains("in \(short) \(container.name) image \(image): /etc/passwd modified added (mallory) while down true") } },
                      daemon.diagnostics + daemon.stdout.sofar)
        XCTAssertTrue(alerts(daemon, "New uid 0 account").contains { $0.contains("container=\(container.name) ") }, daemon.stdout.sofar)
        XCTAssertTrue(FileManager.default.fileExists(atPath: saved + container.id + ".json"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: saved + removed.id + ".json"), "a removed container's saved baseline is dropped")
        // Live again after the start: the next change is not while down.
        try exec(container, "echo 'carol:x:1001:1001::/home/carol:/bin/sh' >> /etc/passwd")
        XCTAssertTrue(waitUntil(seconds: 10) { alerts(daemon, "Container account file").contains {
            $0.contains("in \(short) \(container.name) image \(image): /etc/passwd modified added (carol) while down false") } },
                      daemon.diagnostics + daemon.stdout.sofar)
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// A change in a container's files carries the container's fields as every other event of that
    /// container does (the enricher's context from the runtime's metadata: its labels, image id,
    /// runtime, privileges), not a context of its own.
    func testAContainersChangeCarriesTheContainerFieldsItsExecsCarry() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        try DockerTestEngine.requireImage(DockerTestEngine.accountsImage)
        let container = try DockerTestEngine.startContainer(for: self, image: DockerTestEngine.accountsImage, command: ["sleep", "300"],
                                                            options: ["--label", "vigil.fim=labelled"])
        let fields = "fields[%container.id|%container.full_id|%container.name|%container.image|%container.image.id|%container.runtime|%container.label[vigil.fim]|%container.privileged|%container.start_ts]"
        let daemon = try fimDaemon(rules: """
        - rule: Container file fields
          desc: a change's container fields
          condition: evt.type = fim_change and fim.path = /etc/passwd and container.id != host
          output: "\(fields)"
          priority: INFO
        - rule: Container exec fields
          desc: an exec's container fields
          condition: evt.type = execve and container.id != host
          output: "\(fields)"
          priority: INFO
        """)
        defer { _ = daemon.stop() }
        XCTAssertTrue(waitUntil(seconds: 20) { daemon.stderr.sofar.contains("fim: container \(container.name) (") }, daemon.diagnostics)

        func fieldsOf(_ rule: String) -> String? {
            guard let line = alerts(daemon, rule).first(where: { $0.contains(container.id) }),
                  let start = line.range(of: "fields["), let end = line.range(of: "]", range: start.upperBound..<line.endIndex) else { return nil }
            return String(line[start.upperBound..<end.lowerBound])
        }
        try exec(container, "cat /etc/hostname")
        XCTAssertTrue(waitUntil(seconds: 10) { fieldsOf("Container exec fields") != nil }, daemon.diagnostics + daemon.stdout.sofar)
        try exec(container, "echo 'mallory:x:0:0::/root:/bin/sh' >> /etc/passwd")
        XCTAssertTrue(waitUntil(seconds: 10) { fieldsOf("Container file fields") != nil }, daemon.diagnostics + daemon.stdout.sofar)
        let exec = try XCTUnwrap(fieldsOf("Container exec fields")), change = try XCTUnwrap(fieldsOf("Container file fields"))
        XCTAssertTrue(exec.contains("|labelled|"), exec)
        XCTAssertTrue(exec.contains("|docker|"), exec)
        XCTAssertEqual(change, exec, "the change's container fields are the exec's")
        XCTAssertEqual(daemon.stop(), 0)
    }
}
