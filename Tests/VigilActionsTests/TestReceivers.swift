import Foundation
import VigilActions
import VigilContainers
import VigilEvents
import VigilRules
import VigilTestSupport
import XCTest
import Yams

/// Waits until `condition` holds, checking every 20 ms, for at most `seconds` (generous: a
/// deadline against hangs, not a timing assertion).
func waitUntil(_ what: String, seconds: Double = 30, file: StaticString = #filePath, line: UInt = #line, _ condition: () -> Bool) {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline {
            XCTFail("timed out after \(seconds) s waiting for \(what)", file: file, line: line)
            return
        }
        usleep(20_000)
    }
}

extension XCTestCase {
    /// A new directory under the temporary directory, removed when the test ends.
    func temporaryDirectory(prefix: String = "vigil-spool") throws -> String {
        let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }
}

/// An exec event of `comm` (pid `pid`, on the host unless `container` says otherwise).
func testEvent(pid: UInt32 = 4242, comm: String = "nc", timeNs: UInt64 = 1_780_000_000_000_000_000,
               bootTimeNs: UInt64 = 0, container: ContainerContext = .host) -> Event {
    let exec = Payload.Exec(
        filename: ByteString("/usr/bin/\(comm)"), executablePath: ByteString("/usr/bin/\(comm)"),
        arguments: [ByteString(comm), "-l", "4444"], argumentsTruncated: false, cwd: "/tmp", tty: "",
        ttyNumber: 0, loginUID: 0, startTimeNs: 0)
    var event = Event(
        bootTimeNs: bootTimeNs, timeNs: timeNs, cgroupID: 1, pid: pid, tid: pid, ppid: 1, uid: 0, gid: 0, cpu: 0,
        mountNamespace: 4_026_531_841, pidNamespace: 4_026_531_836, comm: ByteString(comm), payload: .exec(exec))
    event.container = container
    return event
}

/// The compiled rule `Netcat` (it matches `testEvent()`, an exec of nc) with `output` and
/// further YAML lines of the rule (`extra`, indented).
func netcatRule(output: String, extra: String = "") throws -> CompiledRule {
    let yaml = "- rule: Netcat\n  desc: nc ran\n  condition: evt.type = execve and proc.name = nc\n  output: \"\(output)\"\n  priority: ERROR\n" + extra
    let set = try RuleSet(files: [("r.yaml", try YAMLRules.load(yaml, file: "r.yaml"))])
    return try XCTUnwrap(set.matches(testEvent()).first)
}

/// An alert of a test rule for `event`.
func testAlert(_ event: Event = testEvent(), rule: String = "Netcat listener", output: String? = nil,
               priority: Priority = .warning) -> Alert {
    Alert(rule: rule, priority: priority, output: output ?? "netcat listening (pid=\(event.pid))", tags: ["network", "T1059"],
          event: event, hostname: "test-host")
}

/// Collects alerts the dispatcher's observer sees.
final class ObservedAlerts: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Alert] = []
    func append(_ alert: Alert) { lock.withLock { items.append(alert) } }
    var all: [Alert] { lock.withLock { items } }
}

/// A dispatcher for `yaml` (the `actions:` section's body) that sees alerts through `observed`.
func makeDispatcher(_ yaml: String, observed: ObservedAlerts? = nil) throws -> ActionDispatcher {
    let config = try ActionsConfig.decodeYAML(yaml)
    guard let observed else { return try ActionDispatcher(config: config) }
    return try ActionDispatcher(config: config, observer: { alert in observed.append(alert) })
}

extension DispatcherStats {
    /// The counters of the action `name` (zero when unused).
    func of(_ name: String) -> ActionStats {
        actions.first { $0.name == name } ?? ActionStats(name: name, type: "unused")
    }
}

/// One HTTP request as the test server received it.
struct ReceivedRequest {
    var method: String
    var target: String
    /// Header names lowercased.
    var headers: [String: String]
    var body: Data

    var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
}

/// A real HTTP/1.1 server on 127.0.0.1 (a random port) in the test process: answers each
/// request with the next status of `statuses` (then 200), optionally holding answers until
/// `release()`; what it does with a connection after an answer is `connections`. Stops on
/// deinit or `stop()`.
final class TestHTTPServer: @unchecked Sendable {
    /// What the server does with a connection after answering on it.
    enum ConnectionMode {
        /// Answers `Connection: close` and closes it.
        case close
        /// Keeps it open for the next request (HTTP/1.1's default).
        case keepAlive
        /// Answers as if it kept it, then closes it (as a server's idle timeout does).
        case closeUnannounced
    }

    let port: UInt16
    private let listener: Int32
    private let mode: ConnectionMode
    private let lock = NSLock()
    private var received: [ReceivedRequest] = []
    private var statuses: [Int]
    private var held = false
    private var accepted = 0
    private var current: Int32 = -1
    private let gate = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)

    init(statuses: [Int] = [], holdAnswers: Bool = false, connections mode: ConnectionMode = .close) throws {
        self.statuses = statuses
        self.mode = mode
        held = holdAnswers
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Loopback.address()
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(listener, 16) == 0 else { throw TestSetupFailure(description: "cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        port = UInt16(bigEndian: address.sin_port)
        Thread { [self] in serve() }.start()
    }

    deinit { stop() }

    var url: String { "http://127.0.0.1:\(port)" }

    var requests: [ReceivedRequest] { lock.withLock { received } }

    /// The connections accepted so far.
    var connections: Int { lock.withLock { accepted } }

    /// Lets held answers go (and answers later requests at once).
    func release() {
        lock.withLock { held = false }
        for _ in 0..<1000 { gate.signal() }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        lock.withLock { if current >= 0 { shutdown(current, Int32(SHUT_RDWR)) } }  // a kept connection's wait
        release()
        done.wait()
        done.signal()
    }

    private func serve() {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { break }
            lock.withLock { accepted += 1; current = connection }
            while handle(connection) && mode == .keepAlive {}
            lock.withLock { current = -1 }
            close(connection)
        }
        close(listener)
        done.signal()
    }

    /// Reads one request on `fd` and answers it; false when none came (closed, timed out).
    private func handle(_ fd: Int32) -> Bool {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var headEnd: Int?
        var contentLength = 0
        while true {
            if headEnd == nil, let range = Data(buffer).range(of: Data("\r\n\r\n".utf8)) {
                headEnd = range.upperBound
                let head = String(decoding: buffer[..<range.lowerBound], as: UTF8.self)
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    contentLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let headEnd, buffer.count >= headEnd + contentLength { break }
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { return false }
            buffer += chunk.prefix(count)
        }
        guard let headEnd else { return false }
        let lines = String(decoding: buffer[..<(headEnd - 4)], as: UTF8.self).split(separator: "\r\n")
        let requestLine = lines.first?.split(separator: " ") ?? []
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let request = ReceivedRequest(
            method: requestLine.count > 0 ? String(requestLine[0]) : "", target: requestLine.count > 1 ? String(requestLine[1]) : "",
            headers: headers, body: Data(buffer[headEnd..<(headEnd + contentLength)]))
        let (status, hold) = lock.withLock { () -> (Int, Bool) in
            received.append(request)
            return (statuses.isEmpty ? 200 : statuses.removeFirst(), held)
        }
        if hold { gate.wait() }
        let body = status == 200 ? "ok" : "failing on purpose"
        let closing = mode == .close ? "Connection: close\r\n" : ""
        let answer = "HTTP/1.1 \(status) X\r\nContent-Length: \(body.utf8.count)\r\n\(closing)\r\n\(body)"
        _ = Array(answer.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        return true
    }
}

/// A unix datagram socket bound by the test (a stand-in for /dev/log that is a real socket), or
/// a UDP socket on 127.0.0.1 (`udp`: its address).
final class SyslogReceiver {
    let path: String
    private let fd: Int32
    /// `udp://127.0.0.1:PORT` for a UDP receiver.
    private(set) var udp: String?

    /// A UDP receiver on 127.0.0.1 (a random port).
    init(udp _: Void) throws {
        path = ""
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = Loopback.address()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestSetupFailure(description: "cannot bind UDP 127.0.0.1: \(String(cString: strerror(errno)))") }
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))  // root: past rmem_max
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.udp = "udp://127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
    }

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-syslog-\(UUID().uuidString.prefix(8)).sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard var address = sockaddr_un(path: path) else { throw TestSetupFailure(description: "\(path) is too long for a unix socket") }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard bound == 0 else { throw TestSetupFailure(description: "cannot bind \(path): \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        if !path.isEmpty { unlink(path) }
    }

    /// The next datagram (waits up to 30 s), or nil.
    func receive() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count > 0 ? Array(buffer.prefix(count)) : nil
    }
}

extension ActionsConfig {
    /// Decodes the body of an `actions:` section from YAML, as the daemon does (Yams).
    static func decodeYAML(_ yaml: String) throws -> ActionsConfig {
        try YAMLDecoder().decode(ActionsConfig.self, from: yaml)
    }
}

/// Whether `pid` exists and is not a zombie (state Z in /proc/PID/stat).
func processIsAlive(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    return !stat[stat.index(after: close)...].hasPrefix(" Z")
}
