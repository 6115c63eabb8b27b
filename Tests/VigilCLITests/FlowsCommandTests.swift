import Foundation
import VigilBPF
import VigilTestSupport
import XCTest

/// `vigil flows` on real containers: connections from one container to another on a Docker
/// bridge network, counted per pair, the destination named by its container.
final class FlowsCommandTests: XCTestCase {
    func testFlowsCountsContainerToContainerConnectionsByContainerName() throws {
        try requireKernel(.attachTpBTF, .mapRingBuffer)
        let network = try DockerTestEngine.createNetwork(for: self)
        let server = try DockerTestEngine.startContainer(for: self, command: ["sh", "-c", "nc -ll -p 8080 -e echo hello"], network: network)
        let client = try DockerTestEngine.startContainer(for: self, network: network)
        let result = try CLITests.vigil(["flows", "--container", client.name, "--duration", "60"], signal: SIGTERM, untilTracing: true) { _ in
            for _ in 0..<3 {
                let r = DockerTestEngine.run(["docker", "exec", client.name, "sh", "-c", "nc \(server.name) 8080 </dev/null"])
                XCTAssertTrue(r.output.contains("hello"), r.output + r.errors)
            }
            // A port nobody listens on: a connect that fails.
            _ = DockerTestEngine.run(["docker", "exec", client.name, "sh", "-c", "nc -w 1 \(server.name) 9999 </dev/null"])
            Thread.sleep(forTimeInterval: 0.3)
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        let rows = result.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        XCTAssertEqual(rows.first?.prefix(4), ["DIR", "SOURCE", "PROCESS", "DESTINATION"], result.stdout)
        // DIR SOURCE PROCESS DESTINATION CONNS OPEN FAILED SENT RECEIVED RETRANS LAST-SEEN
        let served = try XCTUnwrap(rows.first { $0.count == 11 && $0[3] == "\(server.name):8080" }, result.stdout)
        XCTAssertEqual(served[0], "out")
        XCTAssertEqual(served[1], client.name, "the source is the connecting container")
        XCTAssertEqual(served[2], "nc")
        XCTAssertEqual(Array(served[4...8]), ["3", "0", "0", "0", "18"], "3 connections, each received hello and a newline: \(result.stdout)")
        let refused = try XCTUnwrap(rows.first { $0.count == 11 && $0[3] == "\(server.name):9999" }, result.stdout)
        XCTAssertEqual(Array(refused[4...6]), ["1", "0", "1"], "one failed connect")
        XCTAssertEqual(rows.count, 3, "nothing of other containers or the host: \(result.stdout)")
    }
}

/// `vigil trace --event conn`: a real loopback connection of a child process, in the table and
/// in JSON.
final class TraceConnectionsTests: XCTestCase {
    /// Starts python3 (stdin, stdout, stderr on /dev/null; SIGKILL at teardown), which waits for
    /// `trigger` to exist, then opens a loopback connection, sends 42 bytes, closes both ends and
    /// writes the server's port to `trigger`.port.
    private func connectingChild(trigger: String) throws -> Process {
        let script = """
        import os, socket, time
        t = \(String(reflecting: trigger))
        while not os.path.exists(t): time.sleep(0.02)
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1); p = s.getsockname()[1]
        c = socket.create_connection(("127.0.0.1", p)); a, _ = s.accept()
        c.sendall(b"x" * 42); a.recv(100); c.close(); a.close(); time.sleep(0.2)
        open(t + ".port", "w").write(str(p))
        time.sleep(30)
        """
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        child.arguments = ["python3", "-c", script]
        child.standardInput = FileHandle.nullDevice
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        addTeardownBlock { kill(child.processIdentifier, SIGKILL); child.waitUntilExit() }
        return child
    }

    func testTraceShowsConnectionsInTheTableAndInJSON() throws {
        try requireKernel(.attachTpBTF, .mapRingBuffer)
        for format in ["table", "json"] {
            let trigger = NSTemporaryDirectory() + "vigil-conn-\(UUID().uuidString.prefix(8))"
            let child = try connectingChild(trigger: trigger)
            var port = ""
            let result = try CLITests.vigil(["trace", "--event", "conn,tcpdrop", "--pid", String(child.processIdentifier), "-o", format, "--duration", "60"],
                                            signal: SIGTERM, untilTracing: true) { _ in
                FileManager.default.createFile(atPath: trigger, contents: nil)
                XCTAssertTrue(waitUntil(seconds: 20) { FileManager.default.fileExists(atPath: trigger + ".port") }, "the child connected")
                port = (try? String(contentsOfFile: trigger + ".port", encoding: .utf8)) ?? ""
                Thread.sleep(forTimeInterval: 0.2)
            }
            try? FileManager.default.removeItem(atPath: trigger)
            try? FileManager.default.removeItem(atPath: trigger + ".port")
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertFalse(port.isEmpty)
            let lines = result.stdout.split(separator: "\n").map(String.init)
            if format == "table" {
                XCTAssertTrue(lines.contains { $0.contains("tcp_connect") && $0.contains("->127.0.0.1:\(port)") && $0.contains("python3") }, result.stdout)
                XCTAssertTrue(lines.contains { $0.contains("tcp_accept") && $0.contains("->127.0.0.1:\(port)") }, result.stdout)
                XCTAssertTrue(lines.contains { $0.contains("tcp_close") && $0.contains("->127.0.0.1:\(port)") && $0.contains("sent=42 received=0") }, result.stdout)
                continue
            }
            let events = lines.compactMap { try? VigilJSON.value($0) as? [String: Any] }
            let mine = events.filter { ($0["fd.sport"] as? Int).map(String.init) == port }
            XCTAssertEqual(Set(mine.compactMap { $0["evt.type"] as? String }), ["tcp_connect", "tcp_accept", "tcp_close"], result.stdout)
            let close = try XCTUnwrap(mine.first { $0["evt.type"] as? String == "tcp_close" && $0["conn.bytes_sent"] as? Int == 42 }, result.stdout)
            XCTAssertEqual(close["evt.kind"] as? String, "conn")
            XCTAssertEqual(close["proc.pid"] as? Int, Int(child.processIdentifier))
            XCTAssertEqual(close["fd.l4proto"] as? String, "tcp")
            XCTAssertGreaterThan(close["conn.duration"] as? Int ?? 0, 0)
        }
    }
}
