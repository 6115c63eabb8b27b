import Foundation
import VigilTestSupport
import XCTest

/// The daemon's first run where nothing was done before: no /etc/vigil, no /run/vigil, no
/// /var/lib/vigil. Leftovers of earlier runs on a developer's or CI's machine once hid a
/// `make run` that failed for every new user (issue 10); these tests cannot be fooled by them.
final class FirstRunTests: XCTestCase {
    private func mode(_ path: String) throws -> Int {
        try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, path)
    }

    /// The directories a daemon under `root` made (`root` itself too when `rootToo`): each with
    /// its parents, 0755; the socket 0600.
    private func checkCreated(under root: String, rootToo: Bool, _ daemon: TestDaemon) throws {
        for path in (rootToo ? ["", "/etc", "/run"] : []) + ["/etc/vigil", "/etc/vigil/rules.d", "/run/vigil"] {
            XCTAssertEqual(try mode(root + path), 0o755, "\(root + path) (created: it did not exist)")
        }
        XCTAssertEqual(try mode(daemon.socket), 0o600)
    }

    /// `vigil daemon --root DIR`, and `VIGIL_ROOT=DIR vigil daemon`, where DIR does not exist:
    /// the daemon creates DIR/etc/vigil/rules.d and DIR/run/vigil, answers the CLI (which finds the
    /// socket through VIGIL_ROOT too), runs the embedded rules and exits 0 on SIGTERM.
    func testTheDaemonStartsUnderARootThatDoesNotExistYet() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let directory = try temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let launchers: [(String) -> [String]] = [
            { root in [TestDaemon.binary, "daemon", "--root", root] },
            { root in ["/usr/bin/env", "VIGIL_ROOT=\(root)", TestDaemon.binary, "daemon"] },
        ]
        for (index, launcher) in launchers.enumerated() {
            let root = directory + "/fresh-\(index)/root"
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/fresh-\(index)"))
            let daemon = try TestDaemon(command: launcher(root), directory: directory) { _ in .defaults(under: root) }
            try checkCreated(under: root, rootToo: true, daemon)
            XCTAssertTrue(daemon.stderr.sofar.contains("(\(root)/etc/vigil/rules.d + the embedded defaults)"), daemon.stderr.sofar)

            let list = try runCapturing("/usr/bin/env", ["VIGIL_ROOT=\(root)", TestDaemon.binary, "ls"])
            XCTAssertEqual(list.status, 0, list.stderr)
            XCTAssertTrue(list.stdout.contains("default") && list.stdout.contains("embedded"), list.stdout)
            XCTAssertEqual(daemon.stop(SIGTERM), 0, daemon.stderr.sofar)
            XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.socket), "the socket is removed on shutdown")
        }
    }

    /// What `make run` does (`vigil probe`, then `vigil daemon` without flags), in a fresh mount
    /// namespace: a copy of /etc without vigil/ over /etc, empty tmpfs over /run and /var/lib (as
    /// /work/shared/hooks/before-stop checks). It starts, loads the embedded default rules,
    /// raises "Sensitive file read" for a real read of /etc/shadow by a program of this test,
    /// prints it on standard output (the default action) and exits 0 on SIGTERM.
    func testMakeRunOnAMachineWhereNothingWasDoneBefore() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        guard getuid() == 0 else { throw cannotRun("needs root: mount namespaces, and the daemon loads BPF programs") }
        for tool in ["/usr/bin/unshare", "/usr/bin/env", "/bin/cp", "/bin/sh"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw cannotRun("needs \(tool) (util-linux, coreutils)")
        }
        let directory = try temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let etc = directory + "/etc"
        let copied = try runCapturing("/bin/cp", ["-a", "/etc", etc])
        XCTAssertEqual(copied.status, 0, "cp -a /etc: \(copied.stderr)")
        try? FileManager.default.removeItem(atPath: etc + "/vigil")

        // unshare and sh exec: the pid is the daemon's; the host reaches its files through
        // /proc/PID/root (its mount namespace).
        let script = """
            set -e
            mount --make-rprivate /
            mount --bind "$1" /etc
            mount -t tmpfs -o mode=755 tmpfs /run
            mount -t tmpfs -o mode=755 tmpfs /var/lib
            for path in /etc/vigil /run/vigil /var/lib/vigil; do
              if [ -e $path ]; then echo "first-run: $path exists in the fresh namespace" >&2; exit 97; fi
            done
            "$2" probe >&2
            exec "$2" daemon
            """
        let daemon: TestDaemon
        do {
            daemon = try TestDaemon(command: ["/usr/bin/unshare", "--mount", "/bin/sh", "-c", script, "first-run", etc, TestDaemon.binary],
                                    directory: directory) { .defaults(under: "/proc/\($0)/root") }
        } catch let error as DaemonDidNotStart {
            return XCTFail("`make run` on a fresh machine: \(error)")
        }
        let root = "/proc/\(daemon.pid)/root"
        XCTAssertFalse(daemon.stderr.sofar.contains("first-run:"), daemon.stderr.sofar)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/var/lib/vigil"), "the daemon keeps nothing in /var/lib/vigil")
        try checkCreated(under: root, rootToo: false, daemon)
        XCTAssertTrue(daemon.stderr.sofar.contains("(/etc/vigil/rules.d + the embedded defaults)"), daemon.stderr.sofar)
        let list = try daemon.vigil(["ls"])
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertTrue(list.stdout.contains("Sensitive file read"), "the embedded default rules: \(list.stdout)")

        // A real read of /etc/shadow by a program no rule exempts, named for this test (a copy of
        // cat), so no other process on the machine can stand in for it.
        let reader = "shadow-" + UUID().uuidString.prefix(6).lowercased()
        let readerPath = directory + "/" + reader
        try FileManager.default.copyItem(atPath: "/bin/cat", toPath: readerPath)
        let expected = "Sensitive file opened for reading (file=/etc/shadow"
        let raised = waitUntil(seconds: 20) {
            _ = try? runCapturing(readerPath, ["/etc/shadow"])
            return daemon.stdout.sofar.split(separator: "\n").contains { $0.contains(expected) && $0.contains("process=\(reader) ") }
                || !daemon.process.isRunning
        }
        XCTAssertTrue(raised && daemon.process.isRunning,
                      "an alert on standard output for \(reader) reading /etc/shadow:\n\(daemon.stdout.sofar.suffix(2000))\n\(daemon.diagnostics)")

        XCTAssertEqual(daemon.stop(SIGTERM), 0, "exit status on SIGTERM; log:\n\(daemon.stderr.sofar.suffix(2000))")
        XCTAssertTrue(daemon.stderr.sofar.contains("vigil daemon stopped"), daemon.stderr.sofar)
    }
}
