import VigilBPF
import VigilEvents
import VigilSensors
import XCTest

/// The BPF objects are built for every arch the syscall table numbers (x86_64 and arm64: one
/// object per arch, scripts/generate.sh), each against its own arch's kernel types. The arm64
/// objects cannot run here, so these checks read them from the source tree: they open (no kernel
/// involved), were compiled against their arch's registers, lay the ring records out exactly as
/// this arch's do, and hold every program the sensors attach on that arch.
final class ArchObjectsTests: XCTestCase {
    private static let objectsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Sources/VigilBPFObjects/objects").standardized

    private func object(_ name: String, _ arch: SyscallArch) throws -> BPFObject {
        let path = Self.objectsDirectory.appendingPathComponent("\(arch.rawValue)/\(name).bpf.o").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "\(path) is missing: run 'make generate'")
        return try BPFObject(path: path, name: "\(arch.rawValue)/\(name)")
    }

    func testEveryObjectIsBuiltForEveryArch() throws {
        XCTAssertFalse(EmbeddedObjects.names.isEmpty)
        for arch in SyscallArch.allCases {
            for name in EmbeddedObjects.names { _ = try object(name, arch) }
        }
    }

    /// The embedded objects are this arch's own: byte for byte the files of objects/ARCH.
    func testTheEmbeddedObjectsAreThisArchsOwn() throws {
        for name in EmbeddedObjects.names {
            let path = Self.objectsDirectory.appendingPathComponent("\(SyscallArch.current.rawValue)/\(name).bpf.o").path
            let file = try Data(contentsOf: URL(fileURLWithPath: path))
            XCTAssertEqual(Data(try EmbeddedObjects.bytes(name)), file, "embedded \(name) is not objects/\(SyscallArch.current.rawValue)/\(name).bpf.o")
        }
    }

    /// Objects that read syscall arguments from saved registers were compiled against their
    /// arch's `struct pt_regs` (arm64: x0-x30 in `regs`, the first argument kept in `orig_x0`).
    func testRegistersAreEachArchsOwn() throws {
        let expected: [SyscallArch: Set<String>] = [.x86_64: ["di", "si", "dx", "r10", "orig_ax"], .arm64: ["orig_x0", "syscallno"]]
        for arch in SyscallArch.allCases {
            for name in ["file", "fim", "syscalls"] {
                let members = Set(try object(name, arch).structLayout("pt_regs").members.map(\.name))
                XCTAssertTrue(expected[arch]!.isSubset(of: members), "\(arch)/\(name): pt_regs has \(members.sorted())")
                let other = expected[arch == .x86_64 ? .arm64 : .x86_64]!
                XCTAssertTrue(other.isDisjoint(with: members), "\(arch)/\(name): pt_regs of the other arch")
            }
        }
    }

    /// Every struct that crosses the ring or a map (`vigil_*`) has the same size and member
    /// offsets in both arches' objects: one ABI, one decoder.
    func testTheABIIsTheSameOnEveryArch() throws {
        var compared = 0
        for name in EmbeddedObjects.names {
            let x86 = try object(name, .x86_64), arm = try object(name, .arm64)
            for type in try x86.structNames().filter({ $0.hasPrefix("vigil_") }) {
                XCTAssertEqual(try arm.structLayout(type), try x86.structLayout(type), "\(name): struct \(type)")
                compared += 1
            }
        }
        XCTAssertGreaterThan(compared, 20, "ABI structs compared")
    }

    /// The programs the sensors attach on arm64 exist in the arm64 objects, and none is for a
    /// syscall arm64 lacks.
    func testTheArm64ObjectsHoldTheArm64HooksPrograms() throws {
        let fim = FIMSensor.exitPrograms(on: .arm64)
        XCTAssertFalse(fim.contains("open_exit"), "arm64 has no open syscall")
        XCTAssertFalse(fim.contains("rename_exit"), "arm64 has no rename syscall")
        XCTAssertTrue(fim.contains("renameat2_exit"))
        XCTAssertEqual(Sensor.openExitPrograms(on: .arm64), ["openat_exit", "openat2_exit"])
        XCTAssertEqual(Sensor.openExitPrograms(on: .x86_64), ["openat_exit", "open_exit", "openat2_exit"])
        let fimObject = try object("fim", .arm64), fileObject = try object("file", .arm64)
        for program in fim + ["vfs_write_fexit"] { _ = try fimObject.program(named: program) }
        for program in Sensor.openExitPrograms(on: .arm64) + ["open_fexit"] { _ = try fileObject.program(named: program) }
    }
}
