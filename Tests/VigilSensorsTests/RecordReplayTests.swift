import Foundation
import VigilEnrichment
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest

/// The userspace pipeline (decode -> enrich -> rules -> output) driven from raw ring records
/// recorded from a kernel (`RingRecorder`, `RingRecording`, `RecordPipeline.replay`).
final class RecordReplayTests: XCTestCase {
    /// A recording made by `testLiveRecordsReplayToTheSameEvents` on this machine's kernel (6.18):
    /// `sh -c "echo replay > DIR/replay-marker; exec /bin/cat DIR/replay-marker"`, every record of
    /// the ring meanwhile (regenerate: VIGIL_WRITE_RECORDING=PATH with that test).
    static let committed = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Recordings/cat-replay-marker.vigilrec").path

    static let rules = """
        - rule: cat reads the marker
          desc: an open of the marker by cat
          condition: evt.type in (open, openat, openat2) and fd.filename contains marker and proc.name = cat
          output: "%proc.name opened %fd.name"
          priority: NOTICE
        - rule: cat runs
          desc: an exec of cat
          condition: evt.type = execve and proc.name = cat and proc.args contains marker
          output: "%proc.cmdline"
          priority: NOTICE

        """

    /// Replays `recording` through a fresh pipeline and the rules above; returns the events and
    /// the names of the rules each matched.
    private func replay(_ recording: RingRecording) throws -> (events: [Event], matched: [String], pipeline: RecordPipeline) {
        let ruleSet = try RuleSet(files: [("replay.yaml", RuleFiles.items(text: Self.rules, file: "replay.yaml"))])
        let pipeline = RecordPipeline(enricher: Enricher(metadata: nil, seedProcesses: false), kinds: .all)
        var events: [Event] = []
        var matched: [String] = []
        try pipeline.replay(recording) { event in
            events.append(event)
            ruleSet.forEachMatch(event) { matched.append($0.rule.name) }
            let line = Data(EventFormat.json(event).utf8)
            XCTAssertNotNil(try JSONSerialization.jsonObject(with: line) as? [String: Any], "replayed \(event.kind) event's JSON")
        }
        return (events, matched, pipeline)
    }

    func testLiveRecordsReplayToTheSameEvents() throws {
        let harness = try TraceHarness()
        let dir = try temporaryDirectory()
        let marker = dir + "/replay-marker"
        let recorder = RingRecorder()
        try harness.stream.drain { _ in } // what happened before belongs to no test
        let before = harness.stream.statistics.records
        harness.stream.recorder = recorder
        let pid = try runProgram("/bin/sh", ["-c", "echo replay > '\(marker)'; exec /bin/cat '\(marker)'"])
        var live: [Event] = []
        try harness.stream.drain { live.append($0) }
        harness.stream.recorder = nil
        let recording = recorder.recording
        XCTAssertEqual(UInt64(recording.records.count), harness.stream.statistics.records - before, "every record read was recorded")
        if let path = ProcessInfo.processInfo.environment["VIGIL_WRITE_RECORDING"] { try recording.write(to: path) }

        let reread = try RingRecording(bytes: recording.bytes, file: "in memory")
        XCTAssertEqual(reread, recording, "the file form reads back the same records")
        let (events, matched, pipeline) = try replay(reread)
        XCTAssertEqual(pipeline.statistics.records, UInt64(recording.records.count))
        XCTAssertEqual(pipeline.statistics.undecodable, 0)
        func key(_ e: Event) -> String { "\(e.kind) \(e.pid)/\(e.tid) \(e.bootTimeNs) \(e.comm)" }
        XCTAssertEqual(events.map(key), live.map(key), "replayed events are the live ones, in order")
        let cat = events.filter { $0.pid == UInt32(pid) }
        XCTAssertTrue(cat.contains { $0.exec?.executablePath == "/bin/cat" }, "\(cat.map(key))")
        XCTAssertTrue(cat.contains { $0.open?.path.string == marker && $0.open?.result ?? -1 >= 0 }, "\(cat.map(key))")
        XCTAssertEqual(Set(matched), ["cat reads the marker", "cat runs"])
    }

    func testCommittedRecordingFromThisKernelReplays() throws {
        let recording = try RingRecording(path: Self.committed)
        XCTAssertFalse(recording.records.isEmpty)
        let (events, matched, pipeline) = try replay(recording)
        XCTAssertEqual(pipeline.statistics.undecodable, 0, "every recorded record decodes")
        XCTAssertEqual(pipeline.statistics.records, UInt64(recording.records.count))
        let exec = try XCTUnwrap(events.first { $0.exec?.executablePath == "/bin/cat" })
        XCTAssertEqual(exec.exec?.arguments.first, "/bin/cat")
        XCTAssertEqual(exec.exec?.arguments.last.map { PathParts.filename($0) }, "replay-marker")
        let execIndex = try XCTUnwrap(events.firstIndex { $0.exec?.executablePath == "/bin/cat" })
        // sh wrote the marker before it exec'd cat in the same process: the read is after the exec.
        let open = try XCTUnwrap(events[execIndex...].first { $0.pid == exec.pid && $0.open?.filename == "replay-marker" })
        XCTAssertEqual(open.comm, "cat")
        XCTAssertEqual(open.process.executablePath, "/bin/cat", "enrichment replays too: the exec taught the process table")
        XCTAssertEqual(Set(matched), ["cat reads the marker", "cat runs"])
    }

    func testBadRecordingsNameWhereAndWhat() {
        XCTAssertThrowsError(try RingRecording(bytes: Array("NOTAREC!".utf8) + [1, 0, 0, 0], file: "x.vigilrec")) {
            XCTAssertEqual("\($0)", "x.vigilrec: byte 0: not a Vigil ring recording (no VIGILREC header)")
        }
        var cut = RingRecording(records: [[1, 2, 3]]).bytes
        cut.removeLast()
        XCTAssertThrowsError(try RingRecording(bytes: cut, file: "y.vigilrec")) {
            XCTAssertEqual("\($0)", "y.vigilrec: byte 12: record 0 claims 3 bytes, 2 are left")
        }
    }
}
