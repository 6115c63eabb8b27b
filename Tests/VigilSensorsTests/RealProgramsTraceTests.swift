import Foundation
import VigilEvents
import VigilSensors
import VigilTestSupport
import XCTest

/// Every syscall of real programs (issue 12 §7): `ls`, `python3` and `curl` against a local
/// python http.server, traced with every syscall of the table captured (`--event all`). Every
/// record decodes, every event names its syscall and each of its arguments, and the arguments
/// that matter read right: ls's getdents64 on the directory it lists, python's openat of the file
/// it reads (fd.name), curl's connect to the server's address and the server's accept4 of it.
final class RealProgramsTraceTests: XCTestCase {
    func testLsPythonAndCurlEveryEventDecoded() throws {
        let dir = URL(fileURLWithPath: try temporaryDirectory()).resolvingSymlinksInPath().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "hello vigil\n".write(toFile: dir + "/index.html", atomically: false, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, "0"]
        let serverOutput = Pipe()
        server.standardOutput = serverOutput
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        // "Serving HTTP on 127.0.0.1 port N (http://127.0.0.1:N/) ..."
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = serverOutput.fileHandleForReading.availableData
            guard !chunk.isEmpty else { break }
            line.append(chunk)
        }
        let port = try XCTUnwrap(String(decoding: line, as: UTF8.self).split(separator: " ").firstIndex(of: "port").map {
            String(decoding: line, as: UTF8.self).split(separator: " ")[$0 + 1]
        }.flatMap { Int($0) }, "the server's port: \(String(decoding: line, as: UTF8.self))")

        var filter = KernelFilter()
        filter.includeComms = ["ls", "python3", "curl"]
        let all = Set(Syscalls.all.compactMap { $0.number() })
        let harness = try TraceHarness(kinds: Sensor.process.kinds, filter: filter, syscalls: SyscallCapture(numbers: all))
        let undecodable = harness.stream.statistics.undecodable
        var pids: [String: Int32] = [:]
        let events = try harness.collect {
            pids["ls"] = try runProgram("/usr/bin/ls", [dir])
            pids["python3"] = try runProgram("/usr/bin/python3", ["-c", "print(open('\(dir)/index.html').read())"])
            pids["curl"] = try runProgram("/usr/bin/curl", ["-s", "-o", "/dev/null", "http://127.0.0.1:\(port)/index.html"])
        }
        XCTAssertEqual(harness.stream.statistics.undecodable - undecodable, 0, "every record decoded")
        let lost = try harness.sensors.counters().values.map(\.lost).reduce(0, +)
        XCTAssertEqual(lost, 0, "nothing lost in the kernel")
        for (program, pid) in pids {
            let calls = events.filter { $0.pid == UInt32(pid) }.compactMap { e in e.syscall.map { (e, $0) } }
            XCTAssertGreaterThan(calls.count, 20, "\(program) made syscalls")
            for (e, s) in calls {
                guard case .string(let type)? = Fields.named("evt.type")?.extract(e, nil),
                      case .string(let args)? = Fields.named("evt.args")?.extract(e, nil) else {
                    XCTFail("\(program): no evt.type or evt.args"); continue
                }
                XCTAssertEqual(type.string, s.descriptor.nameString)
                // A captured buffer (getrandom's) may hold spaces, '=' and bytes that join the '=' into
                // one Character (a combining mark): look for each NAME= in order, in bytes.
                let bytes = args.bytes
                var from = 0
                for p in s.descriptor.params {
                    let needle = Array((p.nameString + "=").utf8)
                    let found = from + needle.count > bytes.count ? nil : (from...(bytes.count - needle.count)).first { i in
                        bytes[i..<i + needle.count].elementsEqual(needle)
                    }
                    XCTAssertNotNil(found, "\(program) \(type.string): \(p.nameString) in \(args.string)")
                    if let found { from = found + needle.count }
                }
            }
        }
        func calls(_ program: String, _ name: String) -> [Event] {
            events.filter { $0.pid == UInt32(pids[program] ?? -1) && $0.syscall?.descriptor.nameString == name }
        }
        func text(_ e: Event, _ field: String) -> String? {
            guard case .string(let s)? = Fields.named(field)?.extract(e, nil) else { return nil }
            return s.string
        }
        XCTAssertTrue(calls("ls", "getdents64").contains { text($0, "fd.name") == dir }, "ls read the directory")
        XCTAssertTrue(calls("python3", "openat").contains { text($0, "fd.name") == dir + "/index.html" }, "python3 opened the file")
        XCTAssertTrue(calls("curl", "connect").contains { text($0, "evt.arg.uservaddr") == "127.0.0.1:\(port)" },
                      "curl connected to the server: \(calls("curl", "connect").map { text($0, "evt.args") ?? "" })")
        let accepted = events.filter {
            $0.pid == UInt32(server.processIdentifier) && ($0.syscall?.descriptor.nameString ?? "").hasPrefix("accept")
        }
        XCTAssertTrue(accepted.contains { ($0.syscall?.result ?? -1) >= 0 && text($0, "fd.type") == "ipv4" },
                      "the server accepted curl's connection: \(accepted.map { text($0, "evt.args") ?? "" })")
    }
}
