import Foundation
import VigilBPF
import VigilSensors
import VigilTestSupport
import XCTest

/// `Sensors.checkIntegrity` against the real kernel: intact after load and after `apply`; a link
/// whose fd is closed under libbpf (what an intruder with ptrace could do; `bpftool link detach`
/// is refused here for these link types) is a "program detached" finding naming the link.
final class IntegrityTests: XCTestCase {
    func testIntactAfterLoadAndApplyAndALinkClosedUnderneathIsFound() throws {
        var filter = KernelFilter()
        filter.excludeComms = ["head"]
        let harness = try TraceHarness(filter: filter)
        let sensors = harness.sensors
        XCTAssertEqual(sensors.checkIntegrity(), [], "intact after load")
        filter.excludeComms = ["tail"]
        filter.pids = [1]
        try sensors.apply(filter)
        XCTAssertEqual(sensors.checkIntegrity(), [], "Vigil's own writes are not findings")

        let link = try XCTUnwrap(sensors.loaded.first?.variants.links.first)
        let fd = try XCTUnwrap(link.fd)
        let info = try link.info()
        XCTAssertGreaterThan(info.programID, 0)
        // Replace the link's fd with /dev/null: the kernel releases the link (the program is
        // detached from its hook), and libbpf's later close closes /dev/null, nothing else.
        let null = open("/dev/null", O_RDONLY)
        XCTAssertGreaterThanOrEqual(null, 0)
        XCTAssertEqual(dup2(null, fd), fd)
        close(null)
        let findings = sensors.checkIntegrity()
        XCTAssertEqual(findings.map(\.kind), [.programDetached], "\(findings)")
        XCTAssertEqual(findings.first?.target, link.description)
        XCTAssertTrue(findings.first?.detail.contains("link \(info.id)") ?? false, "\(findings)")
    }
}
