import Foundation
import Logging
@testable import VigilDaemon
import VigilFIM
import VigilTestSupport
import XCTest

/// The daemon's FIM monitor with the fim sensor in this kernel, driven by hand (no event thread).
final class FIMMonitorTests: XCTestCase {
    func testAChangeWhoseRecordsWereLostIsFoundByReReadingEveryWatch() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let dir = try temporaryDirectory()
        let busy = dir + "/busy", quiet = dir + "/sudoers"
        try Data("a\n".utf8).write(to: URL(fileURLWithPath: busy))
        try Data("root ALL=(ALL) ALL\n".utf8).write(to: URL(fileURLWithPath: quiet))
        // a one-page ring: ~19 records fit
        let monitor = try FIMMonitor(spec: WatchSpec(paths: [busy, quiet]), stateDirectory: dir + "/state",
                                     logger: Logger(label: "fim-test"), ringBytes: 4096)
        // another process (the monitor ignores its own, this one's): fill the ring with the busy
        // file's writes, then change the quiet one: its record is lost
        let script = "i=0; while [ $i -lt 200 ]; do echo b >> \"$1\"; i=$((i+1)); done; echo 'eve ALL=(ALL) ALL' >> \"$2\""
        let result = try runCapturing("/bin/sh", ["-c", script, "sh", busy, quiet])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertGreaterThan(try XCTUnwrap(monitor.counters()).lost, 0, "the ring overflowed")

        var changes: [String] = []
        var now = DispatchTime.now().uptimeNanoseconds + FIMMonitor.lostCheckNs
        for _ in 0..<5 {
            monitor.poll(now: now) { change, _ in changes.append(change.summary) }
            now += FIMMonitor.settleNs
        }
        XCTAssertTrue(changes.contains { $0.hasPrefix("\(busy) modified") }, "\(changes)")
        XCTAssertTrue(changes.contains { $0.hasPrefix("\(quiet) modified: sudo rule added: eve ALL=(ALL) ALL") }, "\(changes)")
        XCTAssertEqual(changes.count, 2, "each change once: \(changes)")
    }

    /// Polls until `body` saw what it wants or 3 s passed (the settle time is real time here).
    private func pollUntil(_ monitor: FIMMonitor, seconds: Double = 3, _ done: ([String]) -> Bool) -> [String] {
        var changes: [String] = []
        waitUntil(seconds: seconds) {
            monitor.poll(now: DispatchTime.now().uptimeNanoseconds) { change, _ in changes.append(change.summary) }
            return done(changes)
        }
        return changes
    }

    func testAFileWhoseDirectoryIsMadeLaterIsWatchedOnceItExists() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let dir = try temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/home", withIntermediateDirectories: true)
        let keys = dir + "/home/.ssh/authorized_keys"
        let monitor = try FIMMonitor(spec: WatchSpec(paths: [keys]), stateDirectory: dir + "/state", logger: Logger(label: "fim-test"))
        let mkdir = try runCapturing("/bin/mkdir", [dir + "/home/.ssh"])
        XCTAssertEqual(mkdir.status, 0, mkdir.stderr)
        _ = pollUntil(monitor, seconds: 0.3) { _ in false }  // the mkdir's report: the watch is tried again
        try addKeyThenAnother(monitor, keys)
    }

    /// Another process writes a key to `keys`, then appends a second: the monitor alerts the
    /// file created (the key added), then modified (the second key: the kernel watches the file).
    private func addKeyThenAnother(_ monitor: FIMMonitor, _ keys: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl eve@evil"
        let create = try runCapturing("/bin/sh", ["-c", "echo \"$2\" > \"$1\"", "sh", keys, key])
        XCTAssertEqual(create.status, 0, create.stderr, file: file, line: line)
        let created = pollUntil(monitor) { $0.contains { $0.hasPrefix("\(keys) created") } }
        XCTAssertTrue(created.contains { $0.hasPrefix("\(keys) created: SSH key added: ssh-ed25519 SHA256:") }, "\(created)", file: file, line: line)
        let append = try runCapturing("/bin/sh", ["-c", "echo \"$2\" | sed s/eve/mallory/ >> \"$1\"", "sh", keys, key])
        XCTAssertEqual(append.status, 0, append.stderr, file: file, line: line)
        let modified = pollUntil(monitor) { $0.contains { $0.hasPrefix("\(keys) modified") } }
        XCTAssertTrue(modified.contains { $0.hasPrefix("\(keys) modified: SSH key added: ") && $0.contains("mallory@evil") }, "\(modified)",
                      file: file, line: line)
    }

    func testAKeyFileAGlobMatchesOnlyLaterIsWatched() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let dir = try temporaryDirectory()
        for home in ["alice", "bob/.ssh"] { try FileManager.default.createDirectory(atPath: dir + "/home/" + home, withIntermediateDirectories: true) }
        try Data().write(to: URL(fileURLWithPath: dir + "/home/bob/.ssh/authorized_keys"))
        let monitor = try FIMMonitor(spec: WatchSpec(globs: [dir + "/home/*/.ssh/authorized_keys"]), stateDirectory: dir + "/state",
                                     logger: Logger(label: "fim-test"))
        XCTAssertEqual(monitor.watches.map(\.path), [dir + "/home/bob/.ssh/authorized_keys"])
        // alice had no .ssh, carol no home at all: both made now, each step its own process
        for home in ["alice", "carol"] {
            let base = dir + "/home/" + home, keys = base + "/.ssh/authorized_keys"
            let mkdirs = home == "carol" ? [base, base + "/.ssh"] : [base + "/.ssh"]
            for made in mkdirs {
                let result = try runCapturing("/bin/mkdir", [made])
                XCTAssertEqual(result.status, 0, result.stderr)
                _ = pollUntil(monitor, seconds: 0.3) { _ in false }
            }
            try addKeyThenAnother(monitor, keys)
        }
    }

    func testASubdirectoryMadeUnderARecursiveWatchIsWatchedFromThen() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let dir = try temporaryDirectory()
        let units = dir + "/system"
        try FileManager.default.createDirectory(atPath: units, withIntermediateDirectories: true)
        let monitor = try FIMMonitor(spec: WatchSpec(directories: [.init(units, recursive: true)]), stateDirectory: dir + "/state",
                                     logger: Logger(label: "fim-test"))
        let unit = units + "/evil.service.d/override.conf"
        let make = try runCapturing("/bin/sh", ["-c", "mkdir \"$1/evil.service.d\" && echo '[Service]' > \"$2\"", "sh", units, unit])
        XCTAssertEqual(make.status, 0, make.stderr)
        let created = pollUntil(monitor) { $0.contains { $0.hasPrefix("\(unit) created") } }
        XCTAssertTrue(created.contains { $0.hasPrefix("\(unit) created") }, "\(created)")
        // the file in the new subdirectory is watched by the kernel now: an append is seen
        let append = try runCapturing("/bin/sh", ["-c", "echo 'ExecStart=/tmp/x' >> \"$1\"", "sh", unit])
        XCTAssertEqual(append.status, 0, append.stderr)
        let modified = pollUntil(monitor) { $0.contains { $0.hasPrefix("\(unit) modified") } }
        XCTAssertTrue(modified.contains { $0.hasPrefix("\(unit) modified") && $0.contains("+ExecStart=/tmp/x") }, "\(modified)")
    }
}
