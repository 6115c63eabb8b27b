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
}
