import CLibbpf
import VigilBPF
import VigilSensors
import VigilTestSupport
import XCTest

/// Typed errors that name what and why, for inputs that need no privileges.
final class ObjectErrorTests: XCTestCase {
    func testNonELFBytesGiveAnOpenErrorNamingTheObject() {
        let error = assertBPFError { _ = try BPFObject(bytes: Array("hello, not an ELF file".utf8), name: "notelf") }
        XCTAssertEqual(error?.kind, .open)
        XCTAssertEqual(error?.target, "notelf")
        XCTAssertEqual(error?.operation, "bpf_object__open_mem")
        XCTAssertNotEqual(error?.errno, 0)
    }

    func testTruncatedObjectGivesAnOpenError() throws {
        let bytes = Array(try EmbeddedObjects.bytes("selftest"))
        let error = assertBPFError { _ = try BPFObject(bytes: bytes.prefix(bytes.count / 3), name: "truncated") }
        XCTAssertEqual(error?.kind, .open)
        XCTAssertEqual(error?.target, "truncated")
    }

    func testCorruptedSectionTableGivesAnOpenError() throws {
        var bytes = Array(try EmbeddedObjects.bytes("selftest"))
        // e_shoff (section header table offset, bytes 40..47 of an ELF64 header) past the end.
        for i in 40..<48 { bytes[i] = 0xff }
        let error = assertBPFError { _ = try BPFObject(bytes: bytes, name: "corrupt") }
        XCTAssertEqual(error?.kind, .open)
    }

    func testMissingFileNamesThePath() {
        let error = assertBPFError { _ = try BPFObject(path: "/nonexistent/x.bpf.o") }
        XCTAssertEqual(error?.kind, .open)
        XCTAssertEqual(error?.target, "/nonexistent/x.bpf.o")
        XCTAssertEqual(error?.errno, ENOENT)
    }

    func testUnknownProgramListsThePrograms() throws {
        let object = try EmbeddedObjects.open("selftest")
        let error = assertBPFError { _ = try object.program(named: "no_such_prog") }
        XCTAssertEqual(error?.kind, .notFound)
        XCTAssertTrue(error?.message.contains("no_such_prog") ?? false)
        XCTAssertTrue(error?.message.contains("close_seq") ?? false, "lists the programs the object has")
    }

    func testUnknownMapListsTheMaps() throws {
        let object = try EmbeddedObjects.open("selftest")
        let error = assertBPFError { _ = try object.map(named: "nope") }
        XCTAssertEqual(error?.kind, .notFound)
        XCTAssertTrue(error?.message.contains("events") ?? false)
    }

    func testGlobalsAreFoundByNameAndSizeChecked() throws {
        let object = try EmbeddedObjects.open("selftest")
        try object.setGlobal("target_tgid", to: UInt32(4242))
        XCTAssertEqual(try object.global("target_tgid", as: UInt32.self), 4242)
        XCTAssertEqual(assertBPFError { try object.setGlobal("target_tgid", to: UInt64(1)) }?.kind, .invalidArgument)
        XCTAssertEqual(assertBPFError { try object.setGlobal("no_such_global", to: UInt32(1)) }?.kind, .notFound)
    }

    func testProgramsAreListedWithSectionsAndAutoloadOff() throws {
        let object = try EmbeddedObjects.open("selftest")
        let close = try XCTUnwrap(object.programs.first { $0.name == "close_seq" })
        XCTAssertEqual(close.section, "tracepoint/syscalls/sys_enter_close")
        XCTAssertFalse(close.autoload, "\"?\" sections start disabled")
        close.autoload = true
        XCTAssertTrue(close.autoload)
        XCTAssertNil(close.fd, "no fd before load")
        XCTAssertTrue(object.maps.contains { $0.name == "events" && $0.type == BPF_MAP_TYPE_RINGBUF })
    }

    func testTypedMapRejectsWrongSizes() throws {
        let object = try EmbeddedObjects.open("selftest")
        let error = assertBPFError { _ = try TypedMap<UInt32, UInt8>(object.map(named: "test_hash")) }
        XCTAssertEqual(error?.kind, .invalidArgument)
        XCTAssertTrue(error?.message.contains("value 16 B") ?? false)
        XCTAssertEqual(assertBPFError { _ = try TypedMap<UInt32, UInt64>(object.map(named: "counters")) }?.kind,
                       .invalidArgument, "per-CPU maps need PerCPUMap")
    }
}
