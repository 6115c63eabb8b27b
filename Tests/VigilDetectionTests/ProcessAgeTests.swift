import Foundation
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest

/// proc.duration is the process's age on every event (Falco's meaning), so Falco's
/// `proc_is_new` tells a server that just started from one that has run for a while.
final class ProcessAgeTests: XCTestCase {
    /// Falco's "Read sensitive file trusted after startup" in Vigil's fields: a trusted server
    /// reading /etc/shadow, unless it started less than 5 s ago.
    private static let rules = """
        - macro: proc_is_new
          condition: (proc.duration <= 5000000000)
        - rule: Read sensitive file trusted after startup
          desc: a server reads a sensitive file after its start
          condition: >
            evt.type in (open, openat, openat2) and evt.is_open_read = true and fd.num >= 0
            and fd.name = /etc/shadow and proc.name = nginx and not proc_is_new
          output: "Sensitive file opened for reading by trusted program after startup (file=%fd.name age=%proc.duration)"
          priority: WARNING
        """

    /// A process that opens at once is new; one whose process started, slept 6 s, then
    /// (after an exec, which keeps the start) opened the file is not: only it raises the alert.
    func testAServerThatJustStartedIsNewAndOneThatSleptFirstIsNot() throws {
        let set = try RuleSet(files: [("age.yaml", try YAMLRules.load(Self.rules, file: "age.yaml"))])
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: "/bin/cat", toPath: dir + "/nginx")
        var filter = KernelFilter()
        filter.ignorePID = 0
        // Only the servers' opens cross the ring (exec, fork and exit are state changes: never
        // dropped in the kernel): a host-wide capture lost opens to a full ring while builds ran.
        filter.includeComms = ["nginx"]
        let harness = try TraceHarness(filter: filter)
        let events = try harness.collect {
            try runProgram("/bin/sh", ["-c", "exec ./nginx /etc/shadow >/dev/null"], cwd: dir)
            try runProgram("/bin/sh", ["-c", "sleep 6; exec ./nginx /etc/shadow >/dev/null"], cwd: dir)
        }
        let reads = events.filter { $0.comm == "nginx" && $0.open?.path == "/etc/shadow" && ($0.open?.result ?? -1) >= 0 }
        XCTAssertEqual(reads.count, 2, "both servers read the file")
        guard reads.count == 2 else { return }
        let ages = reads.map { event -> UInt64? in
            if case .uint(let age)? = Fields.named("proc.duration")?.extract(event, nil) { return age }
            return nil
        }
        let fresh = try XCTUnwrap(ages[0], "an open knows its process's age"), old = try XCTUnwrap(ages[1])
        XCTAssertGreaterThanOrEqual(old, 6_000_000_000, "the process slept 6 s before the exec that opened")
        XCTAssertLessThan(fresh, old)
        XCTAssertTrue(set.matches(reads[0]).isEmpty, "a server 0 s old is new: age \(fresh) ns")
        XCTAssertEqual(set.matches(reads[1]).map(\.rule.name), ["Read sensitive file trusted after startup"])
        XCTAssertEqual(set.matches(reads[1]).first?.output.render(reads[1]),
                       "Sensitive file opened for reading by trusted program after startup (file=/etc/shadow age=\(old))")
        // Its exit reports how long it ran: at least as long as it was old at the open.
        let exit = events.first { $0.kind == .exit && $0.pid == reads[1].pid }
        if case .uint(let ran)? = exit.flatMap({ Fields.named("proc.duration")?.extract($0, nil) }) {
            XCTAssertGreaterThanOrEqual(ran, old)
        } else {
            XCTFail("the exit of the old server carries proc.duration")
        }
    }
}
