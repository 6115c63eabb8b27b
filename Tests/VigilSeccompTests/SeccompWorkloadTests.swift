import Foundation
import VigilSeccomp
import VigilTestSupport
import XCTest

/// The issue's workloads: a busybox httpd and a python3 `http.server` container, each recorded
/// with `vigil seccomp record --image` while another container fetches pages from it (busybox
/// wget over a user-defined network), its profile applied with `docker run --security-opt
/// seccomp=FILE` under `vigil seccomp verify`: the server answers with nothing refused, and the
/// attack syscalls tried in the same confined container (unshare, mount, ptrace, keyctl, bpf,
/// add_key, by a small static program) fail with EPERM and are reported.
final class SeccompWorkloadTests: XCTestCase {
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vigil").path

    /// The attacks tried in a confined container, each refused with EPERM and reported.
    static let attacks = ["unshare", "mount", "ptrace", "keyctl", "add_key", "bpf"]

    /// Raw syscalls, no libc (x86_64): prints `NAME RESULT` for each attack.
    static let attackSource = """
        static long sys(long n, long a, long b, long c, long d, long e) {
            long ret;
            register long r10 __asm__("r10") = d;
            register long r8 __asm__("r8") = e;
            __asm__ volatile ("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
            return ret;
        }
        static void say(const char *name, long ret) {
            char line[64]; int n = 0;
            while (*name) line[n++] = *name++;
            line[n++] = ' ';
            if (ret < 0) { line[n++] = '-'; ret = -ret; }
            char digits[20]; int d = 0;
            do { digits[d++] = '0' + ret % 10; ret /= 10; } while (ret);
            while (d) line[n++] = digits[--d];
            line[n++] = '\\n';
            sys(1, 1, (long)line, n, 0, 0);
        }
        void _start(void) {
            say("unshare", sys(272, 0x10000000, 0, 0, 0, 0));
            say("mount", sys(165, (long)"none", (long)"/tmp", (long)"tmpfs", 0, 0));
            say("ptrace", sys(101, 0, 0, 0, 0, 0));
            say("keyctl", sys(250, 0, -3, 1, 0, 0));
            say("add_key", sys(248, (long)"user", (long)"vigil", (long)"x", 1, -3));
            static long attr[16];
            say("bpf", sys(321, 0, (long)attr, sizeof(attr), 0, 0));
            sys(231, 0, 0, 0, 0, 0);
            sys(60, 0, 0, 0, 0, 0); /* a profile without exit_group (a server killed, never exiting) */
        }
        """

    func testHttpdProfileServesAndRefusesTheAttacks() throws {
        try DockerTestEngine.require()
        try serveRecordedThenConfined(baseImage: DockerTestEngine.image, name: "httpd",
                                      server: ["busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"], serverComms: ["httpd", "busybox"])
    }

    /// python3 -m http.server, from an image built from the host's python3 and its standard library.
    func testPythonHTTPServerProfileServesAndRefusesTheAttacks() throws {
        try DockerTestEngine.requireImage(DockerTestEngine.pythonImage)
        try serveRecordedThenConfined(baseImage: DockerTestEngine.pythonImage, name: "python3",
                                      server: ["/usr/bin/python3", "-m", "http.server", "8080", "--bind", "0.0.0.0", "--directory", "/etc"],
                                      serverComms: ["python3"])
    }

    /// Records `server` (listening on 8080 and serving /etc) from a fresh tag of `baseImage`
    /// while a client fetches /hosts, checks the profile, then runs the server under it with
    /// `verify`: the client is answered with nothing refused, and each of `attacks`, run with
    /// `docker exec` in the confined container, fails with EPERM and is reported (comm attack,
    /// errno 1), nothing of `serverComms`.
    private func serveRecordedThenConfined(baseImage: String, name: String, server: [String], serverComms: [String]) throws {
        #if !arch(x86_64)
        throw XCTSkip("the attack program is x86_64 assembly")
        #else
        try requireKernel(.attachTpBTF, .mapRingBuffer)
        guard getuid() == 0 else { throw cannotRun("needs root: loads BPF programs") }
        let directory = NSTemporaryDirectory() + "vigil-workload-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        try Self.attackSource.write(toFile: directory + "/attack.c", atomically: true, encoding: .utf8)
        let cc = DockerTestEngine.run(["gcc", "-nostdlib", "-static", "-O1", "-fno-stack-protector", "-fno-pie", "-no-pie",
                                       "-o", directory + "/attack", directory + "/attack.c"])
        guard cc.status == 0 else { throw cannotRun("needs gcc for the attack program: \(cc.errors)") }

        // A tag of its own: no other test's container is taken for this one.
        let image = "vigil-seccomp-\(name):\(UUID().uuidString.prefix(8).lowercased())"
        XCTAssertEqual(DockerTestEngine.run(["docker", "tag", baseImage, image]).status, 0)
        addTeardownBlock { _ = DockerTestEngine.run(["docker", "rmi", image]) }
        let network = try DockerTestEngine.createNetwork(for: self)
        /// Fetches /hosts from `host` with busybox wget from a client container (the plain test
        /// image: not `image`, so it is never the container recorded).
        func fetch(_ host: String) -> DockerTestEngine.CommandResult {
            DockerTestEngine.run(["docker", "run", "--rm", "--network", network, DockerTestEngine.image,
                                  "busybox", "wget", "-q", "-O", "-", "http://\(host):8080/hosts"])
        }

        // Record the server under real requests. No --duration for record or verify: both end
        // with their container (a time limit could end verify before the attacks on a loaded host).
        let profile = directory + "/\(name).json"
        let (recorder, _, recorderErrors) = try launchCapturing(Self.binary, [
            "seccomp", "record", "--image", image, "-o", profile, "--root", directory,
        ])
        defer { if recorder.isRunning { kill(recorder.processIdentifier, SIGKILL) } }
        XCTAssertTrue(waitUntil(seconds: 60) { recorderErrors.sofar.contains("waiting for the next container") || !recorder.isRunning },
                      recorderErrors.sofar)
        let web = try DockerTestEngine.startContainer(for: self, image: image, command: server, network: network)
        XCTAssertTrue(waitUntil(seconds: 20) { fetch(web.name).output.contains("localhost") }, "\(name) answers: \(recorderErrors.sofar)")
        for _ in 0..<3 { XCTAssertTrue(fetch(web.name).output.contains("localhost")) }
        XCTAssertEqual(DockerTestEngine.run(["docker", "kill", web.name]).status, 0)
        XCTAssertTrue(waitUntil(seconds: 30) { !recorder.isRunning }, "record ends with the container: \(recorderErrors.sofar)")
        endProcess(recorder)
        XCTAssertEqual(recorder.terminationStatus, 0, recorderErrors.text())
        let names = try SeccompProfile(contentsOf: profile).allowedNames
        XCTAssertTrue(names.contains("accept") || names.contains("accept4"), "the \(name) server's accept: \(names.sorted())")
        for attack in Self.attacks { XCTAssertFalse(names.contains(attack), "\(attack): \(names.sorted())") }
        // Its size against Docker's default profile, as `diff --compare-docker` reports it.
        let size = DockerTestEngine.run([Self.binary, "seccomp", "diff", "--compare-docker", profile])
        XCTAssertEqual(size.status, 0, size.errors)
        let expected = try SeccompProfile(contentsOf: profile).comparedWithDockerDefault()
        XCTAssertEqual(size.output, "\(profile): \(names.count) syscalls allowed, Docker's default allows \(expected.dockerDefault)"
                       + (expected.beyondDefault.isEmpty ? "" : " (beyond it: \(expected.beyondDefault.joined(separator: ", ")))") + "\n")
        XCTAssertLessThan(names.count, expected.dockerDefault, size.output)
        XCTAssertTrue(recorderErrors.text().contains("profile: \(names.count) syscalls allowed, Docker's default allows \(expected.dockerDefault)"))
        print("seccomp profile of \(name): \(expected.summary)")

        // The same server under its profile, watched by verify.
        let confined = "vigil-ct-\(UUID().uuidString.prefix(8).lowercased())"
        addTeardownBlock { _ = DockerTestEngine.run(["docker", "rm", "-f", confined]) }
        let (verify, verifyOut, verifyErrors) = try launchCapturing(Self.binary, [
            "seccomp", "verify", profile, "--docker-option=--network=\(network)", "--docker-option=--name=\(confined)",
            "--docker-option=--volume=\(directory):/attack:ro", "--", image,
        ] + server)
        defer { if verify.isRunning { kill(verify.processIdentifier, SIGKILL) } }
        XCTAssertTrue(waitUntil(seconds: 60) { verifyErrors.sofar.contains("verifying container") || !verify.isRunning }, verifyErrors.sofar)
        XCTAssertTrue(waitUntil(seconds: 20) { fetch(confined).output.contains("localhost") }, "the confined \(name) answers: \(verifyErrors.sofar)")
        for _ in 0..<3 { XCTAssertTrue(fetch(confined).output.contains("localhost")) }
        usleep(500_000)
        XCTAssertEqual(verifyOut.sofar, "", "the workload runs with nothing refused")

        // The attacks, in the same confined container.
        let attack = DockerTestEngine.run(["docker", "exec", confined, "/attack/attack"])
        XCTAssertEqual(attack.status, 0, attack.errors)
        for name in Self.attacks {
            XCTAssertTrue(attack.output.contains("\(name) -1\n"), "\(name) fails with EPERM: \(attack.output)")
        }
        usleep(500_000)
        XCTAssertEqual(DockerTestEngine.run(["docker", "kill", confined]).status, 0)
        XCTAssertTrue(waitUntil(seconds: 30) { !verify.isRunning }, "verify ends with the container: \(verifyErrors.sofar)")
        endProcess(verify)
        XCTAssertEqual(verify.terminationStatus, 1, "verify exits 1: something was refused: \(verifyErrors.text())")
        let denials = try verifyOut.text().split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        for name in Self.attacks {
            let denial = denials.first { $0["syscall"] as? String == name }
            XCTAssertEqual(denial?["errno"] as? Int, 1, "\(name) reported refused with EPERM: \(denials); verify: \(verifyErrors.text())")
            XCTAssertEqual(denial?["comm"] as? String, "attack", "\(denials)")
        }
        XCTAssertFalse(denials.contains { serverComms.contains($0["comm"] as? String ?? "") }, "nothing of the server refused: \(denials)")
        #endif
    }
}
