import Foundation
import Synchronization
import XCTest

@testable import VigilContainers

/// The client and the event watcher against `FakeDockerEngine`: framing, errors, reconnects.
final class DockerClientTests: XCTestCase {
    private let id = "ed092e1bb98d7fe7a47ddeb9e15d4d8a95e658f8dfd71a8d469e3abb87ed91f1"

    func testMissingSocketIsSocketUnavailable() {
        let path = "/nonexistent/vigil/docker.sock"
        XCTAssertThrowsError(try DockerClient(socketPath: path).ping()) { error in
            XCTAssertEqual(error as? DockerClientError, .socketUnavailable(path: path, errno: ENOENT))
            XCTAssertTrue("\(error)".contains(path))
        }
    }

    func testListsContainers() throws {
        let body = #"[{"Id":"\#(id)","Names":["/web"],"Image":"busybox:1","ImageID":"sha256:00","Command":"sleep 30","Labels":{"tier":"front"},"State":"running","Status":"Up 2 seconds"},{"Id":"\#(String(repeating: "b", count: 64))","Names":null,"Image":"x","Labels":null,"State":"exited"}]"#
        let engine = try FakeDockerEngine { _ in .json(body) }
        defer { engine.stop() }
        let containers = try DockerClient(socketPath: engine.socketPath).containers(all: true)
        XCTAssertEqual(
            containers.first,
            DockerContainerSummary(id: id, names: ["web"], image: "busybox:1", labels: ["tier": "front"], state: "running"))
        XCTAssertEqual(containers.last?.names, [])
        XCTAssertEqual(engine.requests.withLock { $0 }, ["GET /containers/json?all=true HTTP/1.1"])
    }

    func testInspectsChunkedResponse() throws {
        let body = #"{"Id":"\#(id)","Name":"/web","State":{"Status":"running","Running":true,"Pid":4242},"Config":{"Image":"busybox:1","Labels":{"a":"b"}}}"#
        let middle = body.index(body.startIndex, offsetBy: 40)
        let engine = try FakeDockerEngine { _ in .chunked([String(body[..<middle]), String(body[middle...])]) }
        defer { engine.stop() }
        let details = try XCTUnwrap(try DockerClient(socketPath: engine.socketPath).inspect("web"))
        XCTAssertEqual(
            details, DockerContainerDetails(id: id, name: "web", image: "busybox:1", labels: ["a": "b"], pid: 4242, running: true))
        XCTAssertEqual(engine.requests.withLock { $0 }, ["GET /containers/web/json HTTP/1.1"])
    }

    func testInspectReportsMissingContainerAsNilAndOtherErrorsAsThrows() throws {
        let engine = try FakeDockerEngine { request in
            request.contains("gone")
                ? .json(#"{"message":"No such container: gone"}"#, status: "404 Not Found")
                : .json(#"{"message":"boom"}"#, status: "500 Internal Server Error")
        }
        defer { engine.stop() }
        let client = DockerClient(socketPath: engine.socketPath)
        XCTAssertNil(try client.inspect("gone"))
        XCTAssertThrowsError(try client.inspect("broken")) { error in
            XCTAssertEqual(
                error as? DockerClientError,
                .unexpectedStatus(request: "GET /containers/broken/json", status: 500, message: "boom"))
        }
    }

    func testBadJSONIsADecodingError() throws {
        let engine = try FakeDockerEngine { _ in .json("[{\"Names\":[]}]") }
        defer { engine.stop() }
        XCTAssertThrowsError(try DockerClient(socketPath: engine.socketPath).containers()) { error in
            guard case .decoding(let request, _) = error as? DockerClientError else { return XCTFail("\(error)") }
            XCTAssertEqual(request, "GET /containers/json")
        }
    }

    func testSilentEngineTimesOut() throws {
        let engine = try FakeDockerEngine { _ in FakeDockerEngine.Reply(pieces: [], holdOpen: true) }
        defer { engine.stop() }
        XCTAssertThrowsError(try DockerClient(socketPath: engine.socketPath, timeout: .milliseconds(200)).ping()) { error in
            XCTAssertEqual(error as? DockerClientError, .timedOut(operation: "recv", path: engine.socketPath))
        }
    }

    func testDecodesDockerContainerEvents() {
        let id = "ed092e1bb98d7fe7a47ddeb9e15d4d8a95e658f8dfd71a8d469e3abb87ed91f1"
        let start = #"{"status":"start","id":"\#(id)","from":"vigil-test-busybox:1","Type":"container","Action":"start","Actor":{"ID":"\#(id)","Attributes":{"image":"vigil-test-busybox:1","name":"vigil-ct-1"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#
        XCTAssertEqual(
            ContainerEvent.decode(json: Array(start.utf8)),
            ContainerEvent(action: .start, id: id, name: "vigil-ct-1", image: "vigil-test-busybox:1", timeNanoseconds: 1_700_000_000_123_456_789))
        let destroy = #"{"Type":"container","Action":"destroy","Actor":{"ID":"\#(id)","Attributes":{}}}"#
        XCTAssertEqual(ContainerEvent.decode(json: Array(destroy.utf8)), ContainerEvent(action: .destroy, id: id))

        for ignored in [
            #"{"Type":"container","Action":"exec_start: sh","Actor":{"ID":"\#(id)"}}"#,
            #"{"Type":"network","Action":"connect","Actor":{"ID":"\#(id)"}}"#,
            #"{"Type":"container","Action":"start","Actor":{"ID":""}}"#,
            "not json",
        ] {
            XCTAssertNil(ContainerEvent.decode(json: Array(ignored.utf8)), ignored)
        }
    }

    func testWatcherDeliversEventsAndResumesAfterTheStreamEnds() throws {
        let start = #"{"Type":"container","Action":"start","Actor":{"ID":"\#(id)","Attributes":{"name":"web","image":"busybox:1"}},"time":1700000000,"timeNano":1700000000000000001}"#
        let exec = #"{"Type":"container","Action":"exec_start: sh","Actor":{"ID":"\#(id)"}}"#
        let die = #"{"Type":"container","Action":"die","Actor":{"ID":"\#(id)","Attributes":{"exitCode":"0"}},"time":1700000005,"timeNano":1700000005000000000}"#
        let destroy = #"{"Type":"container","Action":"destroy","Actor":{"ID":"\#(id)"},"time":1700000006,"timeNano":1700000006000000000}"#
        let connections = Mutex(0)
        let engine = try FakeDockerEngine { _ in
            // First subscription: events split mid-object across chunks, then the engine ends it.
            if connections.withLock({ $0 += 1; return $0 }) == 1 {
                let lines = "\(start)\n\(exec)\n\(die)\n"
                let cut = lines.index(lines.startIndex, offsetBy: 30)
                return .chunked([String(lines[..<cut]), String(lines[cut...])])
            }
            return .chunked(["\(destroy)\n"], end: false, holdOpen: true)
        }
        defer { engine.stop() }

        let updates = Mutex<[String]>([])
        let sawDestroy = expectation(description: "destroy after reconnecting")
        let watcher = DockerEventWatcher(
            client: DockerClient(socketPath: engine.socketPath), reconnectDelay: .milliseconds(10))
        watcher.start { update in
            switch update {
            case .connected: updates.withLock { $0.append("connected") }
            case .disconnected(let error): updates.withLock { $0.append("\(error)") }
            case .event(let event):
                updates.withLock { $0.append("\(event.action) \(event.name ?? "-")") }
                if event.action == .destroy { sawDestroy.fulfill() }
            }
        }
        wait(for: [sawDestroy], timeout: 10)
        watcher.stop()

        XCTAssertEqual(
            updates.withLock { $0 },
            ["connected", "start web", "die -", "Docker Engine GET /events: the engine ended the stream", "connected", "destroy -"])
        let requests = engine.requests.withLock { $0 }
        XCTAssertEqual(requests.count, 2)
        let filters = DockerClient.percentEncoded(#"{"type":["container"],"event":["start","die","destroy"]}"#)
        XCTAssertEqual(requests.first, "GET /events?filters=\(filters) HTTP/1.1")
        XCTAssertEqual(requests.last, "GET /events?filters=\(filters)&since=1700000005 HTTP/1.1")
    }

    func testStopFromTheHandlerDropsTheRestAndDoesNotWaitForItself() throws {
        let events = (1...3).map { digit in
            let id = String(repeating: "\(digit)", count: 64)
            return #"{"Type":"container","Action":"start","Actor":{"ID":"\#(id)"}}"#
        }
        let engine = try FakeDockerEngine { _ in .chunked([events.joined(separator: "\n") + "\n"], end: false, holdOpen: true) }
        defer { engine.stop() }
        let watcher = DockerEventWatcher(client: DockerClient(socketPath: engine.socketPath))
        let delivered = Mutex(0)
        let stopped = expectation(description: "stopped from the handler")
        watcher.start { update in
            guard case .event = update else { return }
            delivered.withLock { $0 += 1 }
            let before = ContinuousClock.now
            watcher.stop()
            XCTAssertLessThan(ContinuousClock.now - before, .seconds(1))
            stopped.fulfill()
        }
        wait(for: [stopped], timeout: 10)
        usleep(100_000)
        XCTAssertEqual(delivered.withLock { $0 }, 1)
    }

    func testWatcherRetriesWhileTheEngineIsAbsentAndStopsPromptly() {
        let disconnects = Mutex(0)
        let watcher = DockerEventWatcher(
            client: DockerClient(socketPath: "/nonexistent/vigil/docker.sock"), reconnectDelay: .milliseconds(5),
            maximumReconnectDelay: .milliseconds(20))
        let retried = expectation(description: "several attempts")
        watcher.start { update in
            if case .disconnected(.socketUnavailable) = update, disconnects.withLock({ $0 += 1; return $0 }) == 3 {
                retried.fulfill()
            }
        }
        wait(for: [retried], timeout: 10)
        let before = ContinuousClock.now
        watcher.stop()
        XCTAssertLessThan(ContinuousClock.now - before, .seconds(1))
        let afterStop = disconnects.withLock { $0 }
        usleep(100_000)
        XCTAssertEqual(disconnects.withLock { $0 }, afterStop, "no updates after stop returns")
    }
}
