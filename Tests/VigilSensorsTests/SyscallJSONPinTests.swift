import Foundation
import VigilEnrichment
import VigilEvents
import VigilSensors
import XCTest

/// The JSON of syscall events, byte for byte: `Recordings/mixed-syscalls.vigilrec` holds real ring
/// records of the syscalls sensor (the mixed loop's openat, newfstatat, read, write, close; a
/// failed open; a path with `..`; a UDP socket's socket, connect, sendto, close) and
/// `Recordings/mixed-syscalls.jsonl` the JSON lines the pipeline made of them when they were
/// recorded (`vigil-bench --write-json-pin DIR`, as root, regenerates both; the recording's pids
/// are ones no process can have, so replaying reads nothing of /proc). Work on the speed of the
/// decoder, the enrichment or the JSON writers must not change a byte of it.
final class SyscallJSONPinTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Recordings")

    func testReplayedSyscallEventsGiveThePinnedJSON() throws {
        let recording = try RingRecording(path: Self.directory.appendingPathComponent("mixed-syscalls.vigilrec").path)
        let pinned = try String(contentsOf: Self.directory.appendingPathComponent("mixed-syscalls.jsonl"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        // Twice, through fresh pipelines and one memo: the second time with what the first
        // left in the memo and in what JSON renders once and keeps.
        let memo = JSONMemo()
        for pass in 0..<2 {
            let pipeline = RecordPipeline(enricher: Enricher(metadata: nil, seedProcesses: false), kinds: .all, bootToEpochNs: 0)
            var lines: [String] = [], plain: [String] = []
            pipeline.replay(recording) { event in
                var out = ByteBuffer(capacity: 256)
                EventFormat.appendJSON(event, to: &out, memo: memo)
                lines.append(out.withUnsafeBytes { String(decoding: $0, as: UTF8.self) })
                plain.append(EventFormat.json(event))
            }
            XCTAssertEqual(lines.count, pinned.count, "pass \(pass)")
            for (i, (line, expected)) in zip(lines, pinned).enumerated() {
                XCTAssertEqual(line, expected, "pass \(pass), event \(i)")
                XCTAssertEqual(plain[i], expected, "pass \(pass), event \(i), without a memo")
            }
        }
        let types = pinned.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.compactMap { $0["evt.type"] as? String }
        XCTAssertEqual(Set(types), ["openat", "newfstatat", "read", "write", "close", "socket", "connect", "sendto"])
    }
}
