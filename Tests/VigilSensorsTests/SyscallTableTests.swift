import Foundation
import VigilEvents
import VigilTestSupport
import XCTest

/// The syscall table (bpf/syscalls/syscalls.table -> Syscalls.all) against the running kernel's
/// tracefs formats and the x86_64 and arm64 numbers of the installed headers.
final class SyscallTableTests: XCTestCase {
    static let tracefs = "/sys/kernel/tracing/events/syscalls"

    /// The argument names of sys_enter_NAME on this kernel, nil when it has no such event.
    static func tracefsArguments(_ event: String) -> [String]? {
        guard let text = try? String(contentsOfFile: "\(tracefs)/sys_enter_\(event)/format", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").compactMap { line -> String? in
            // "\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;": fields past the common
            // header and __syscall_nr (offset 16 on) are the arguments.
            guard let field = line.range(of: "field:"), let semicolon = line.firstIndex(of: ";"),
                  let offsetRange = line.range(of: "offset:"), let offset = Int(line[offsetRange.upperBound...].prefix { $0.isNumber }),
                  offset >= 16 else { return nil }
            let declaration = line[field.upperBound..<semicolon]
            return declaration.split(whereSeparator: { $0 == " " || $0 == "*" }).last.map(String.init)
        }
    }

    func requireTracefs() throws {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: Self.tracefs), !entries.isEmpty else {
            throw cannotRun("\(Self.tracefs) is empty: tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)")
        }
    }

    func testArgumentNamesMatchTheRunningKernel() throws {
        try requireTracefs()
        var checked = 0
        for d in Syscalls.all {
            guard let event = d.tracefs?.description else { continue }
            guard let names = Self.tracefsArguments(event) else {
                // A row bootstrapped from a kernel that had the event; this one may lack it (config).
                continue
            }
            XCTAssertEqual(d.params.map(\.nameString), names,
                           "bpf/syscalls/syscalls.table: \(d.nameString): arguments differ from \(Self.tracefs)/sys_enter_\(event)/format")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 300, "only \(checked) rows had a tracefs event on this kernel")
    }

    func testEveryTracefsSyscallHasARow() throws {
        try requireTracefs()
        let events = try FileManager.default.contentsOfDirectory(atPath: Self.tracefs)
            .filter { $0.hasPrefix("sys_enter_") }.map { String($0.dropFirst("sys_enter_".count)) }
        let named = Set(Syscalls.all.compactMap { $0.tracefs?.description })
        let missing = events.filter { !named.contains($0) }.sorted()
        XCTAssertEqual(missing, [], "bpf/syscalls/syscalls.table has no row for these tracefs events (scripts/syscalls-bootstrap.py --merge adds them)")
    }

    /// `#define __NR_name number` lines.
    static func numbers(_ text: String, prefix: String = "#define __NR_") -> [String: Int] {
        var out: [String: Int] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
            let words = line.dropFirst(prefix.count).split(separator: " ", omittingEmptySubsequences: true)
            if words.count == 2, let n = Int(words[1]) { out[String(words[0])] = n }
        }
        return out
    }

    func testX86_64Numbers() throws {
        let header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
        guard let text = try? String(contentsOfFile: header, encoding: .utf8) else { throw cannotRun("\(header) is missing (linux-libc-dev)") }
        let numbers = Self.numbers(text)
        XCTAssertGreaterThan(numbers.count, 300)
        for (name, number) in numbers {
            XCTAssertEqual(Syscalls.named(name)?.number(on: .x86_64), number, "bpf/syscalls/syscalls.table: \(name): x86_64 number")
        }
        for d in Syscalls.all where d.x86_64 >= 0 && numbers[d.nameString] == nil {
            // Newer than these headers: must at least not collide.
            XCTAssertFalse(numbers.values.contains(Int(d.x86_64)), "\(d.nameString): x86_64 number \(d.x86_64) belongs to another syscall in \(header)")
        }
    }

    func testARM64Numbers() throws {
        // arm64's asm/unistd.h is asm-generic's with these wants (arch/arm64/include/uapi/asm/unistd.h).
        let wants = ["__ARCH_WANT_RENAMEAT", "__ARCH_WANT_NEW_STAT", "__ARCH_WANT_SET_GET_RLIMIT",
                     "__ARCH_WANT_TIME32_SYSCALLS", "__ARCH_WANT_SYS_CLONE3", "__ARCH_WANT_MEMFD_SECRET"]
        let cpp = Process()
        cpp.executableURL = URL(fileURLWithPath: "/usr/bin/cpp")
        cpp.arguments = ["-dM", "-D__BITS_PER_LONG=64"] + wants.map { "-D" + $0 } + ["/usr/include/asm-generic/unistd.h"]
        let pipe = Pipe()
        cpp.standardOutput = pipe
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/cpp") else { throw cannotRun("/usr/bin/cpp is missing (cpp)") }
        try cpp.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        cpp.waitUntilExit()
        // Macros refer to each other (__NR_fcntl -> __NR3264_fcntl -> 25).
        var macros: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("#define __NR") {
            let words = line.split(separator: " ", maxSplits: 2)
            if words.count == 3 { macros[String(words[1])] = String(words[2]) }
        }
        func value(_ name: String, _ depth: Int = 0) -> Int? {
            guard let v = macros[name], depth < 8 else { return nil }
            return Int(v) ?? value(v, depth + 1)
        }
        var checked = 0
        for name in macros.keys where name.hasPrefix("__NR_") && name != "__NR_syscalls" && name != "__NR_arch_specific_syscall" {
            guard let number = value(name) else { continue }
            let syscall = String(name.dropFirst(5))
            XCTAssertEqual(Syscalls.named(syscall)?.number(on: .arm64), number, "bpf/syscalls/syscalls.table: \(syscall): arm64 number")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 250)
    }

    func testLookups() {
        XCTAssertEqual(Syscalls.named("openat")?.number(on: .x86_64), 257)
        XCTAssertEqual(Syscalls.named("openat")?.number(on: .arm64), 56)
        XCTAssertNil(Syscalls.named("open")?.number(on: .arm64), "arm64 has no open(2)")
        XCTAssertEqual(Syscalls.numbered(Syscalls.named("connect")!.number()!)?.nameString, "connect")
        XCTAssertEqual(Syscalls.closest(to: "opnat").first, "openat")
        XCTAssertTrue(Syscalls.closest(to: "conect").contains("connect"))
    }
}
