import CVigilABI
import VigilBPF
import VigilSensors
import XCTest

/// House rule 1: Swift's view of every ABI struct matches the BTF the compiler wrote into the
/// BPF objects. Runs without privileges (opening an object does not touch the kernel).
final class ABILayoutTests: XCTestCase {
    private func assertLayout<T>(_ type: T.Type, _ name: String, _ offsets: [String: Int?],
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        let object = try EmbeddedObjects.open("selftest")
        let layout = try object.structLayout(name)
        XCTAssertEqual(layout.size, MemoryLayout<T>.size, "size of struct \(name)", file: file, line: line)
        XCTAssertEqual(Set(layout.members.map(\.name)), Set(offsets.keys), "members of \(name)", file: file, line: line)
        for member in layout.members {
            XCTAssertEqual(member.offset, offsets[member.name] ?? nil, "offset of \(name).\(member.name)", file: file, line: line)
        }
    }

    func testEventHeaderMatchesBTF() throws {
        typealias H = vigil_event_header
        try assertLayout(H.self, "vigil_event_header", [
            "ts_ns": MemoryLayout<H>.offset(of: \.ts_ns), "cgroup_id": MemoryLayout<H>.offset(of: \.cgroup_id),
            "kind": MemoryLayout<H>.offset(of: \.kind), "size": MemoryLayout<H>.offset(of: \.size),
            "pid": MemoryLayout<H>.offset(of: \.pid), "tid": MemoryLayout<H>.offset(of: \.tid),
            "ppid": MemoryLayout<H>.offset(of: \.ppid), "uid": MemoryLayout<H>.offset(of: \.uid),
            "gid": MemoryLayout<H>.offset(of: \.gid), "cpu": MemoryLayout<H>.offset(of: \.cpu),
            "comm": MemoryLayout<H>.offset(of: \.comm),
        ])
    }

    func testSelftestEventMatchesBTF() throws {
        typealias E = vigil_selftest_event
        try assertLayout(E.self, "vigil_selftest_event", [
            "hdr": MemoryLayout<E>.offset(of: \.hdr), "seq": MemoryLayout<E>.offset(of: \.seq),
            "hook": MemoryLayout<E>.offset(of: \.hook), "arg": MemoryLayout<E>.offset(of: \.arg),
        ])
    }

    func testUnknownStructIsNamed() throws {
        let object = try EmbeddedObjects.open("selftest")
        let error = assertBPFError { _ = try object.structLayout("no_such_struct") }
        XCTAssertEqual(error?.kind, .notFound)
        XCTAssertTrue(error?.description.contains("no_such_struct") ?? false)
    }
}
