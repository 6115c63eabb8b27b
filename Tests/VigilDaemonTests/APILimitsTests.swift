import Foundation
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A raw client connection to the daemon's unix socket, for clients curl cannot imitate (a
/// slow one, one that holds a connection, a huge head).
final class RawConnection {
    let fd: Int32

    init(_ path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw NSError(domain: "RawConnection", code: Int(errno), userInfo: [NSLocalizedDescriptionKey: "connect \(path): errno \(errno)"])
        }
    }

    deinit { close(fd) }

    /// Sends `text`; false when the daemon has closed the connection (EPIPE, ECONNRESET).
    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// What arrived within `milliseconds` (nil: the daemon closed the connection and nothing more came).
    func receive(waiting milliseconds: Int32 = 200) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, milliseconds) > 0 else { return "" }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : nil
    }

    /// Everything until the daemon closes the connection (bounded: at most `seconds`).
    func receiveUntilClosed(seconds: Double = 20) -> (text: String, closed: Bool) {
        var text = ""
        let closed = waitUntil(seconds: seconds) {
            guard let part = receive() else { return true }
            text += part
            return false
        }
        return (text, closed)
    }
}

/// The control API's limits against hostile clients, each against a real daemon with small
/// limits in its configuration: refused or closed, counted in the status, logged.
final class APILimitsTests: XCTestCase {
    func startDaemon(_ extra: String) throws -> TestDaemon {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        return try TestDaemon(extraConfig: extra)
    }

    /// The `api` object of the status.
    func apiStatus(_ daemon: TestDaemon) throws -> [String: Any] {
        let (status, body) = try daemon.request("GET", "/v1/status")
        guard status == 200 else { throw NSError(domain: "status", code: status, userInfo: [NSLocalizedDescriptionKey: "status \(status): \(body)"]) }
        let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        return object?["api"] as? [String: Any] ?? [:]
    }

    func refused(_ daemon: TestDaemon, _ reason: String) throws -> Int {
        ((try apiStatus(daemon))["refused"] as? [String: Any])?[reason] as? Int ?? -1
    }

    func testARequestHeadOverTheLimitIsAnswered400AndTheConnectionClosed() throws {
        let daemon = try startDaemon("api:\n  max_header_kib: 1")
        XCTAssertEqual((try apiStatus(daemon))["limits"] as? [String: Int] ?? [:], [
            "max_header_bytes": 1024, "request_timeout_seconds": 10, "max_connections": 64, "max_subscribers": 16,
        ])
        let connection = try RawConnection(daemon.socket)
        connection.send("GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Padding: \(String(repeating: "a", count: 4096))\r\n\r\n")
        let (answer, closed) = connection.receiveUntilClosed()
        XCTAssertTrue(closed, "the connection stayed open: \(answer)")
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 400"), answer)
        XCTAssertEqual(try refused(daemon, "header_too_large"), 1, daemon.diagnostics)
        XCTAssertTrue(daemon.stderr.sofar.contains("request head over 1024 bytes (api.max_header_kib)"), daemon.stderr.sofar)
        // A head under the limit still works.
        XCTAssertEqual(try daemon.request("GET", "/v1/status", extraCurlArguments: ["-H", "X-Padding: \(String(repeating: "a", count: 200))"]).status, 200)
    }

    func testASlowlorisClientIsClosedAfterTheRequestTimeout() throws {
        let daemon = try startDaemon("api:\n  request_timeout_seconds: 1")
        let connection = try RawConnection(daemon.socket)
        connection.send("GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        // A byte at a time, never the blank line that ends the head: the daemon must hang up.
        var answer = ""
        let closed = waitUntil(seconds: 30) {
            guard connection.send("X"), let part = connection.receive(waiting: 300) else { return true }
            answer += part
            return false
        }
        XCTAssertTrue(closed, "a client that never finishes its head was not closed within 30 s: \(answer)")
        XCTAssertEqual(answer, "", "nothing is answered to an unfinished request")
        XCTAssertGreaterThanOrEqual(try refused(daemon, "timeout"), 1, daemon.diagnostics)
        XCTAssertTrue(daemon.stderr.sofar.contains("no complete request within 1.0 seconds (api.request_timeout_seconds)"), daemon.stderr.sofar)
        // A keep-alive connection left idle after its answer is closed the same way.
        let idle = try RawConnection(daemon.socket)
        idle.send("GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        let (text, idleClosed) = idle.receiveUntilClosed()
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 200"), text)
        XCTAssertTrue(idleClosed, "an idle keep-alive connection stayed open")
    }

    func testAConnectionOverTheLimitIsAnswered503AndCounted() throws {
        let daemon = try startDaemon("api:\n  max_connections: 3\n  request_timeout_seconds: 600")
        // Three connections that say nothing hold every slot.
        var held = try (0..<3).map { _ in try RawConnection(daemon.socket) }
        let extra = try RawConnection(daemon.socket)
        let (answer, closed) = extra.receiveUntilClosed()
        XCTAssertTrue(closed)
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 503"), answer)
        XCTAssertTrue(answer.contains("too many connections: 3 are open (api.max_connections)"), answer)
        XCTAssertTrue(daemon.stderr.sofar.contains("refused a connection: 3 are open (api.max_connections)"), daemon.stderr.sofar)
        // Once one is closed, a client gets in again, and the status shows the refusal.
        held.removeLast()
        var connections = -1, count = -1
        let served = waitUntil {
            guard let api = try? apiStatus(daemon) else { return false }
            connections = api["connections"] as? Int ?? -1
            count = (api["refused"] as? [String: Any])?["connections"] as? Int ?? -1
            return true
        }
        XCTAssertTrue(served, daemon.diagnostics)
        XCTAssertEqual(connections, 3, "two held and the status request itself")
        XCTAssertGreaterThanOrEqual(count, 1)
        XCTAssertEqual(held.count, 2)
    }

    func testAStreamSubscriberOverTheLimitIsAnswered503AndCounted() throws {
        let daemon = try startDaemon("api:\n  max_subscribers: 2")
        let first = try RawConnection(daemon.socket)
        var second: RawConnection? = try RawConnection(daemon.socket)
        first.send("GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        second?.send("GET /v1/alerts HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(waitUntil { ((try? apiStatus(daemon))?["subscribers"] as? Int) == 2 }, daemon.diagnostics)
        let (status, body) = try daemon.request("GET", "/v1/alerts")
        XCTAssertEqual(status, 503, body)
        XCTAssertTrue(body.contains("too many stream subscribers: 2 are open (api.max_subscribers)"), body)
        XCTAssertEqual(try refused(daemon, "subscribers"), 1)
        XCTAssertTrue(daemon.stderr.sofar.contains("refused /v1/alerts"), daemon.stderr.sofar)
        // A subscriber that leaves frees its slot.
        second = nil
        let freed = waitUntil { ((try? apiStatus(daemon))?["subscribers"] as? Int) == 1 }
        XCTAssertTrue(freed, daemon.diagnostics)
        let stream = try RawConnection(daemon.socket)
        stream.send("GET /v1/alerts HTTP/1.1\r\nHost: x\r\n\r\n")
        var head = ""
        XCTAssertTrue(waitUntil { head += stream.receive() ?? ""; return head.contains("\r\n\r\n") })
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 200"), head)
        let text = try daemon.vigil(["status"]).stdout
        XCTAssertTrue(text.contains("stream subscribers; refused or closed at a limit: 0 connections, 0 heads too large, 0 timed out, 1 subscribers"), text)
        withExtendedLifetime(first) {}
    }
}
