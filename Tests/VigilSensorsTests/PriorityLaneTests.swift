import Foundation
import VigilEnrichment
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The ring's lanes in the real kernel (issue 16 section 3): a flood of low-value events with
/// nobody reading never crowds out exec, exit and opens a rule matched in the kernel.
final class PriorityLaneTests: XCTestCase {
    func testAFloodOfOpensNeverCrowdsOutExecsExitsAndMatchedOpens() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let dir = NSTemporaryDirectory() + "vigil-lanes-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let watched = dir + "/watched"
        FileManager.default.createFile(atPath: watched, contents: Data("x".utf8))
        let rule = "- rule: watched\n  desc: d\n  condition: 'fd.name = \(watched)'\n  output: o\n  priority: WARNING\n"
        var filter = KernelFilter()
        filter.ignorePID = 0
        filter.openPaths = try RuleSet(files: [("lanes.yaml", try YAMLRules.load(rule, file: "lanes.yaml"))]).openPaths
        let ringBytes = 1 << 22
        let sensors = try Sensors(kinds: Sensor.process.kinds.union(Sensor.file.kinds), filter: filter, ringBytes: ringBytes,
                                  wakeupBytes: UInt64(ringBytes))
        let stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: nil), kinds: KindSet.all)
        try stream.drain { _ in }
        func fileLost() throws -> UInt64 { try sensors.counters()["file"]?.lost ?? 0 }
        let lostBefore = try fileLost()

        // The flood: failed opens of a relative name, which the kernel passes for userspace to
        // decide (the low lane), until the ring refuses them. Nobody reads meanwhile.
        let relative = "vigil-lanes-missing-\(UUID().uuidString.prefix(8))"
        var flooded = 0
        while try fileLost() == lostBefore, flooded < 2_000_000 {
            for _ in 0..<100 { _ = open(relative, O_RDONLY) }
            flooded += 100
        }
        XCTAssertGreaterThan(try fileLost(), lostBefore, "the flood filled the low lane (\(flooded) opens)")

        // While it goes on: programs run and the watched file is opened, 20 times each.
        var children: Set<UInt32> = []
        var matchedOpens = 0
        for _ in 0..<20 {
            children.insert(UInt32(try runProgram("/bin/true", [])))
            let fd = open(watched, O_RDONLY)
            XCTAssertGreaterThanOrEqual(fd, 0)
            close(fd)
            for _ in 0..<100 { _ = open(relative, O_RDONLY) }
        }

        var execs: Set<UInt32> = [], exits: Set<UInt32> = []
        try stream.drain { event in
            if event.kind == .exec, children.contains(event.pid) { execs.insert(event.pid) }
            if event.kind == .exit, children.contains(event.pid) { exits.insert(event.pid) }
            if event.pid == UInt32(getpid()), event.open?.path.string == watched { matchedOpens += 1 }
        }
        XCTAssertEqual(execs, children, "every exec arrived")
        XCTAssertEqual(exits, children, "every exit arrived")
        XCTAssertEqual(matchedOpens, 20, "every open the rule matched in the kernel arrived")
    }
}
