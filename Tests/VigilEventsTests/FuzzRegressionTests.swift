import CVigilABI
import Foundation
import VigilEvents
import XCTest

/// Inputs `make fuzz` (vigil-fuzz decoder, FUZZING.md) found crashing, fed byte for byte to the
/// entry point the fuzz target calls: `EventDecoder.decode` on one ring record, then the JSON and
/// table forms of the event.
final class FuzzRegressionTests: XCTestCase {
    /// fuzz/regressions/decoder/NAME, as committed.
    static func regression(_ name: String) throws -> [UInt8] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../fuzz/regressions/decoder/\(name)")
        return Array(try Data(contentsOf: url))
    }

    /// A fork record whose boot-clock timestamp is over Int64.max (0xfff7000000000001) trapped in
    /// the conversion to Unix time ("Not enough bits to represent the passed value"). The time now
    /// wraps like the kernel's u64 arithmetic; the record still decodes.
    func testTimestampOverInt64MaxDecodes() throws {
        let bytes = try Self.regression("timestamp-over-int64-max.bin")
        let header = bytes.withUnsafeBytes { $0.loadUnaligned(as: vigil_event_header.self) }
        XCTAssertEqual(header.ts_ns, 0xfff7_0000_0000_0001, "the committed input is the one found")
        let offset: Int64 = 1_700_000_000_000_000_000
        var decoder = EventDecoder(bootToEpochNs: offset)
        let event = try XCTUnwrap(bytes.withUnsafeBytes { decoder.decode($0) })
        XCTAssertEqual(event.kind, .fork)
        XCTAssertEqual(event.bootTimeNs, 0xfff7_0000_0000_0001)
        XCTAssertEqual(event.timeNs, 0xfff7_0000_0000_0001 &+ UInt64(offset))
        XCTAssertFalse(EventFormat.json(event).isEmpty)
        XCTAssertFalse(EventFormat.tableRow(event).isEmpty)
    }

    /// An open record whose result (-errno) does not fit in Int32 trapped in `Int32(-result)`
    /// when its `evt.res` was written (JSON, the table, field reads). Such a result is now named
    /// `E` and its number, like any errno without a name.
    func testOpenResultOutOfInt32RangeRenders() throws {
        let bytes = try Self.regression("open-result-out-of-int32.bin")
        var decoder = EventDecoder(bootToEpochNs: 0)
        let event = try XCTUnwrap(bytes.withUnsafeBytes { decoder.decode($0) })
        guard case .open(let open) = event.payload else { return XCTFail("not an open: \(event.kind)") }
        XCTAssertNil(Int32(exactly: -open.result), "the committed input's result is out of Int32: \(open.result)")
        let name = "E\(0 &- open.result)"
        XCTAssertTrue(EventFormat.json(event).contains("\"evt.res\":\"\(name)\""), EventFormat.json(event))
        XCTAssertTrue(EventFormat.tableRow(event).contains(name), EventFormat.tableRow(event))
    }
}
