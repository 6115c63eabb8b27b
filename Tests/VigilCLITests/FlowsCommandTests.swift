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
        // DIR SOURCE PROCESS DESTINATION CONNS OPEN FAILED SENT RECEIVED LAST-SEEN
        let served = try XCTUnwrap(rows.first { $0.count == 10 && $0[3] == "\(server.name):8080" }, result.stdout)
        XCTAssertEqual(served[0], "out")
        XCTAssertEqual(served[1], client.name, "the source is the connecting container")
        XCTAssertEqual(served[2], "nc")
        XCTAssertEqual(Array(served[4...8]), ["3", "0", "0", "0", "18"], "3 connections, each received hello and a newline: \(result.stdout)")
        let refused = try XCTUnwrap(rows.first { $0.count == 10 && $0[3] == "\(server.name):9999" }, result.stdout)
        XCTAssertEqual(Array(refused[4...6]), ["1", "0", "1"], "one failed connect")
        XCTAssertEqual(rows.count, 3, "nothing of other containers or the host: \(result.stdout)")
    }
}
