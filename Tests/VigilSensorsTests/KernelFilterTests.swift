import Foundation
import VigilEvents
import VigilSensors
import VigilTestSupport
import XCTest

/// In-kernel filters drop events before they reach the ring, and the counters say so.
final class KernelFilterTests: XCTestCase {
    private func filtered(_ harness: TraceHarness) throws -> UInt64 {
        try harness.sensors.counters().values.map(\.filtered).reduce(0, +)
    }

    func testCommIncludeAndExclude() throws {
        var filter = KernelFilter()
        filter.includeComms = ["head"]
        let harness = try TraceHarness(filter: filter)
        let before = try filtered(harness)
        let events = try harness.collect { try runProgram("/bin/sh", ["-c", "cat /etc/hostname >/dev/null; head -c1 /etc/hostname >/dev/null"]) }
        XCTAssertFalse(events.isEmpty)
        XCTAssertTrue(events.allSatisfy { $0.comm == "head" }, "only head: \(Set(events.map(\.comm)))")
        XCTAssertGreaterThan(try filtered(harness), before, "sh and cat were dropped in the kernel and counted")

        filter.includeComms = []
        filter.excludeComms = ["head"]
        try harness.sensors.apply(filter) // at run time, nothing detached
        let after = try harness.collect { try runProgram("/bin/sh", ["-c", "head -c1 /etc/hostname >/dev/null; cat /etc/hostname >/dev/null"]) }
        XCTAssertFalse(after.contains { $0.comm == "head" })
        XCTAssertTrue(after.contains { $0.comm == "cat" && $0.kind == .exec })
    }

    func testPidFilterKeepsOnlyThatProcess() throws {
        let harness = try TraceHarness()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "sleep 0.5; exec cat /etc/hostname"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var filter = KernelFilter()
        filter.pids = [UInt32(process.processIdentifier)]
        try harness.sensors.apply(filter)
        let before = try filtered(harness)
        let events = try harness.collect {
            process.waitUntilExit()
            try runProgram("/bin/cat", ["/etc/hostname"]) // another process: filtered
        }
        XCTAssertTrue(events.contains { $0.comm == "cat" && $0.kind == .exec })
        XCTAssertTrue(events.allSatisfy { $0.pid == UInt32(process.processIdentifier) }, "\(Set(events.map(\.pid)))")
        XCTAssertGreaterThan(try filtered(harness), before)
    }

    func testContainersOnlyDropsHostProcesses() throws {
        var filter = KernelFilter()
        filter.containersOnly = true
        let harness = try TraceHarness(filter: filter)
        let before = try filtered(harness)
        let events = try harness.collect { try runProgram("/bin/cat", ["/etc/hostname"]) }
        XCTAssertTrue(events.allSatisfy { $0.container.isContainer }, "host events reached userspace")
        XCTAssertGreaterThan(try filtered(harness), before)
    }
}

/// State changes (exec, fork, exit) are never dropped in the kernel: the filters apply to them
/// after enrichment, so the process table and ancestry stay whole whatever the filters keep.
final class StateChangeFilterTests: XCTestCase {
    func testACommFilterKeepsTheAncestryOfWhatItKeeps() throws {
        var filter = KernelFilter()
        filter.includeComms = ["head"]
        let harness = try TraceHarness(filter: filter)
        // A shell nobody asked for starts head: head's parent must still be known by name.
        let events = try harness.collect {
            try runProgram("/bin/sh", ["-c", "head -c1 /etc/hostname >/dev/null; true"])
        }
        let heads = events.filter { $0.comm == "head" }
        XCTAssertTrue(heads.contains { $0.kind == .exec } && heads.contains { $0.kind == .open }, "\(events.map { "\($0.comm) \($0.kind)" })")
        for event in heads {
            XCTAssertEqual(event.process.ancestorNames.first, "sh", "\(event.kind) of head lost its parent's name")
        }
        XCTAssertTrue(events.allSatisfy { $0.comm == "head" }, "the filter still applies: \(Set(events.map(\.comm)))")
        XCTAssertGreaterThan(harness.stream.statistics.filtered, 0, "state changes of sh were filtered after enrichment, and counted")
    }

    func testTheProcessTableKnowsProcessesTheFilterDrops() throws {
        var filter = KernelFilter()
        filter.includeComms = ["no-such-comm"]
        let harness = try TraceHarness(filter: filter)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["1"]
        let running = try harness.collect {
            try process.run()
            usleep(300_000)
        }
        let pid = UInt32(process.processIdentifier)
        XCTAssertTrue(running.isEmpty, "\(running.map { "\($0.comm) \($0.kind)" })")
        XCTAssertEqual(harness.stream.enricher.processes.record(pid)?.comm, "sleep", "the exec of a filtered process reached the table")
        let exited = try harness.collect { process.waitUntilExit() }
        XCTAssertTrue(exited.isEmpty)
        XCTAssertNil(harness.stream.enricher.processes.record(pid), "the exit of a filtered process reached the table")
    }
}
