import Foundation
import VigilTestSupport
import XCTest

/// The default rule "DNS lookup of a name new to the container image" (dns.name.new; off by
/// default, turned on by a user rules file) in a real daemon, with real containers on a Docker
/// bridge network whose names Docker's embedded DNS (127.0.0.11) answers: a container on the
/// network answers to each name as a network alias. busybox nc resolves a name with glibc (a query
/// to 127.0.0.11:53, the answer read with recvfrom), then its connect to port 9 is refused.
///
/// Each test tags the busybox test image with a name of its own, so no other test's containers
/// share its baseline. The learning window is short through the configuration; the tests wait for
/// the status to say it ended (a bound on waiting, not a timing assertion).
final class DNSBaselineTests: XCTestCase {
    static let rule = "DNS lookup of a name new to the container image"

    /// The daemon's alert lines (stdout action) of the rule for `name`.
    private func alerts(_ daemon: TestDaemon, naming name: String) -> [String] {
        daemon.stdout.sofar.split(separator: "\n").map(String.init).filter { $0.contains(Self.rule) && $0.contains("(name=\(name) ") }
    }

    /// The status's `dns_baseline`.
    private func baseline(_ daemon: TestDaemon) -> [String: Any] {
        guard let body = try? daemon.request("GET", "/v1/status").body,
              let status = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return [:] }
        return status["dns_baseline"] as? [String: Any] ?? [:]
    }

    private func number(_ daemon: TestDaemon, _ key: String) -> Int { (baseline(daemon)[key] as? NSNumber)?.intValue ?? -1 }

    /// A daemon with the default rules and the rule turned on by a user rules file, and
    /// `dns_baseline` set (and the `extra` configuration).
    private func dnsDaemon(_ settings: String, extra: String = "") throws -> TestDaemon {
        let home = try temporaryDirectory()
        try FileManager.default.createDirectory(atPath: home + "/rules.d", withIntermediateDirectories: true)
        try "- rule: \(Self.rule)\n  enabled: true\n".write(toFile: home + "/rules.d/user.yaml", atomically: true, encoding: .utf8)
        let daemon = try TestDaemon(extraConfig: "dns_baseline:\n" + settings + extra, directory: home)
        XCTAssertTrue(waitUntil(seconds: 30) { (baseline(daemon)["active"] as? Bool) == true }, "a rule reads dns.name.new: " + daemon.diagnostics)
        return daemon
    }

    /// A name of this test's own.
    private func name(_ label: String) -> String { "\(label)-\(UUID().uuidString.prefix(8).lowercased()).example.org" }

    /// The busybox test image under a tag of this test's own (untagged when the test ends).
    private func image() throws -> String {
        try DockerTestEngine.requireImage(DockerTestEngine.image)
        let image = "vigil-test-dns-\(UUID().uuidString.prefix(8).lowercased()):1"
        XCTAssertEqual(DockerTestEngine.run(["docker", "tag", DockerTestEngine.image, image]).status, 0)
        addTeardownBlock { _ = DockerTestEngine.run(["docker", "rmi", image]) }
        return image
    }

    /// A network with a container answering to `names`, and a client container of `image` on it.
    private func client(of image: String, names: [String]) throws -> DockerTestEngine.Container {
        let network = try DockerTestEngine.createNetwork(for: self)
        _ = try DockerTestEngine.startContainer(for: self, command: ["sleep", "300"], options: names.flatMap { ["--network-alias", $0] },
                                                network: network)
        return try DockerTestEngine.startContainer(for: self, image: image, command: ["sleep", "300"], network: network)
    }

    /// Looks each name up in `container`, one after another.
    private func lookUp(_ container: DockerTestEngine.Container, _ names: [String]) {
        let script = names.map { "nc -w 1 \($0) 9 </dev/null" }.joined(separator: "; ")
        _ = DockerTestEngine.run(["docker", "exec", container.name, "sh", "-c", script + "; true"])
    }

    /// Names looked up during the window (the first lookup starts it) stay quiet when looked up
    /// after it; a name new after it alerts once, however often it is looked up again.
    func testNamesOfTheWindowStayQuietAfterItAndANewNameAlertsOnce() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let learned = name("learned"), also = name("also"), fresh = name("fresh"), later = name("later")
        let image = try image()
        let client = try client(of: image, names: [learned, also, fresh, later])
        let daemon = try dnsDaemon("  learning_seconds: 3\n")
        defer { _ = daemon.stop() }

        lookUp(client, [learned, also])
        XCTAssertTrue(waitUntil(seconds: 30) { number(daemon, "lookups") >= 2 && number(daemon, "images_learning") == 0 }, daemon.diagnostics)
        XCTAssertEqual(number(daemon, "images"), 1, daemon.diagnostics)
        XCTAssertEqual(number(daemon, "new_names"), 0, "nothing is new during the window: \(daemon.diagnostics)")

        lookUp(client, [learned, fresh, also, fresh])
        XCTAssertTrue(waitUntil(seconds: 20) { !alerts(daemon, naming: fresh).isEmpty }, daemon.diagnostics + daemon.stdout.sofar)
        lookUp(client, [later])  // after every lookup above: once it alerted, they were all judged
        XCTAssertTrue(waitUntil(seconds: 20) { !alerts(daemon, naming: later).isEmpty }, daemon.diagnostics + daemon.stdout.sofar)
        XCTAssertEqual(alerts(daemon, naming: fresh).count, 1, "a new name alerts once: \(daemon.stdout.sofar)")
        XCTAssertEqual(alerts(daemon, naming: learned), [], "a name of the window is no new name")
        XCTAssertEqual(alerts(daemon, naming: also), [], "a name of the window is no new name")
        let alert = try XCTUnwrap(alerts(daemon, naming: fresh).first)
        XCTAssertTrue(alert.contains("container=\(client.name) "), alert)
        XCTAssertTrue(alert.hasSuffix("image=\(image))"), alert)
        // The status is refreshed every 200 ms: it may lag the alerts.
        XCTAssertTrue(waitUntil(seconds: 5) { number(daemon, "new_names") >= 2 }, daemon.diagnostics)
        XCTAssertEqual(number(daemon, "new_names"), 2, daemon.diagnostics)
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// The baseline and the end of its window are saved: after a restart the image is not
    /// learning again, a name of its window stays quiet and a new one alerts. A file that cannot
    /// be read is set aside and counted.
    func testTheBaselineAndTheEndOfItsWindowSurviveARestart() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let learned = name("learned"), fresh = name("fresh")
        let image = try image()
        let client = try client(of: image, names: [learned, fresh])
        let daemon = try dnsDaemon("  learning_seconds: 3\n")
        defer { _ = daemon.stop() }

        lookUp(client, [learned])
        XCTAssertTrue(waitUntil(seconds: 30) { number(daemon, "lookups") >= 1 && number(daemon, "images_learning") == 0 }, daemon.diagnostics)
        XCTAssertEqual(daemon.stop(), 0)
        let directory = daemon.directory + "/state/dns-baseline"
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }
        XCTAssertEqual(files.count, 1, "one file per image: \(files)")
        let saved = try String(contentsOfFile: directory + "/" + (files.first ?? ""), encoding: .utf8)
        XCTAssertTrue(saved.contains("\"image\":\"\(image)\""), saved)
        XCTAssertTrue(saved.contains("\"\(learned)\""), saved)
        XCTAssertTrue(saved.contains("\"learning\":false"), saved)
        try "{\"image\":".write(toFile: directory + "/broken.json", atomically: true, encoding: .utf8)

        try daemon.restart()
        XCTAssertTrue(waitUntil(seconds: 30) { (baseline(daemon)["active"] as? Bool) == true }, daemon.diagnostics)
        XCTAssertEqual(number(daemon, "images"), 1, "loaded: \(daemon.diagnostics)")
        XCTAssertEqual(number(daemon, "images_learning"), 0, "the window is not restarted: \(daemon.diagnostics)")
        XCTAssertEqual(number(daemon, "unreadable_files"), 1, daemon.diagnostics)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/broken.json.unreadable"), "set aside, not overwritten")
        XCTAssertTrue(daemon.stderr.sofar.contains("dns baseline: cannot read \(directory)/broken.json"), daemon.stderr.sofar)
        lookUp(client, [learned, fresh])
        XCTAssertTrue(waitUntil(seconds: 20) { !alerts(daemon, naming: fresh).isEmpty }, daemon.diagnostics + daemon.stdout.sofar)
        XCTAssertEqual(alerts(daemon, naming: fresh).count, 1, daemon.stdout.sofar)
        XCTAssertEqual(alerts(daemon, naming: learned), [], "the saved baseline's name")
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// Past `max_names` a name is not kept but counted (and, after the window, new each time it
    /// is looked up: it is still not in the baseline); past `max_images` an image's lookups are
    /// not judged but counted. Both show in `vigil status` and the metrics.
    func testWhatDoesNotFitIsCounted() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let first = name("first"), second = name("second"), third = name("third")
        let image = try image(), other = try self.image()
        let client = try client(of: image, names: [first, second, third])
        let otherClient = try self.client(of: other, names: [first])
        let port = 20_000 + Int((getpid() + 13) % 20_000)
        let daemon = try dnsDaemon("  learning_seconds: 2\n  max_names: 2\n  max_images: 1\n", extra: "metrics:\n  enabled: true\n  port: \(port)\n")
        defer { _ = daemon.stop() }

        lookUp(client, [first, second, third])
        XCTAssertTrue(waitUntil(seconds: 30) { number(daemon, "names_not_kept") >= 1 && number(daemon, "images_learning") == 0 }, daemon.diagnostics)
        XCTAssertEqual(number(daemon, "names"), 2, daemon.diagnostics)
        XCTAssertEqual(alerts(daemon, naming: third), [], "the window: nothing is new")

        lookUp(otherClient, [first])
        XCTAssertTrue(waitUntil(seconds: 20) { number(daemon, "lookups_over_image_bound") >= 1 }, daemon.diagnostics)
        XCTAssertEqual(number(daemon, "images"), 1, daemon.diagnostics)

        let notKept = number(daemon, "names_not_kept")
        lookUp(client, [third])
        XCTAssertTrue(waitUntil(seconds: 20) { !alerts(daemon, naming: third).isEmpty }, daemon.diagnostics + daemon.stdout.sofar)
        XCTAssertTrue(waitUntil(seconds: 20) { number(daemon, "names_not_kept") > notKept }, daemon.diagnostics)
        XCTAssertEqual(number(daemon, "names"), 2, daemon.diagnostics)
        let status = try daemon.vigil(["status"])
        XCTAssertTrue(status.stdout.contains("dns baseline: 1 images (0 learning), 2 names;"), status.stdout)
        XCTAssertTrue(status.stdout.contains("(max_names 2)"), status.stdout)
        XCTAssertTrue(status.stdout.contains("lookups over max_images 1"), status.stdout)
        XCTAssertFalse(alerts(daemon, naming: first).contains { $0.contains(otherClient.name) }, "an image over the bound is not judged")
        let metrics = try runCapturing("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/metrics"]).stdout
        let notKeptNow = number(daemon, "names_not_kept"), overBound = number(daemon, "lookups_over_image_bound")
        for line in ["vigil_dns_baseline_names_not_kept_total \(notKeptNow)\n", "vigil_dns_baseline_names 2\n",
                     "vigil_dns_baseline_lookups_total{result=\"over_image_bound\"} \(overBound)\n",
                     "vigil_dns_baseline_images{state=\"learned\"} 1\n"] {
            XCTAssertTrue(metrics.contains(line), "\(line) in\n\(metrics)")
        }
        XCTAssertEqual(daemon.stop(), 0)
    }
}
