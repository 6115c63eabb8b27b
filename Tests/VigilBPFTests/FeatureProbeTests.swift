import VigilBPF
import VigilTestSupport
import XCTest

/// The probes' answers checked against independent evidence from the running system.
final class FeatureProbeTests: XCTestCase {
    func testAnswersAreCachedAndEveryUnavailableOneSaysWhy() {
        let probes = FeatureProbes()
        for (feature, result) in probes.all() {
            XCTAssertEqual(probes.result(feature), result, "cached answer for \(feature.rawValue)")
            if !result.isAvailable {
                XCTAssertFalse(result.reason?.isEmpty ?? true, "\(feature.rawValue) says why it is \(result.state)")
            }
        }
    }

    func testKprobeAnswerMatchesTheKprobePMU() throws {
        try requireKernel()
        let hasPMU = FileManager.default.fileExists(atPath: "/sys/bus/event_source/devices/kprobe")
        let result = FeatureProbes.shared.result(.attachKprobe)
        XCTAssertEqual(result.isAvailable, hasPMU, "\(result)")
        if !hasPMU { XCTAssertTrue(result.reason?.contains("CONFIG_KPROBES") ?? false, "\(result)") }
    }

    func testCoreFeaturesOfThisKernelFamilyAreAvailable() throws {
        try requireKernel()
        // Every kernel Vigil supports (5.8+, BTF) has these; a probe saying otherwise is wrong.
        for feature in [Feature.kernelBTF, .tracefs, .mapRingBuffer, .mapHash, .attachTracepoint,
                        .attachRawTracepoint, .attachTpBTF, .helperRingbufReserve, .helperGetCurrentCgroupID] {
            XCTAssertTrue(FeatureProbes.shared.result(feature).isAvailable, "\(feature.rawValue): \(FeatureProbes.shared.result(feature))")
        }
    }

    func testLSMAnswerMatchesTheActiveLSMList() throws {
        try requireKernel()
        let result = FeatureProbes.shared.result(.attachLSM)
        if let lsm = try? String(contentsOfFile: "/sys/kernel/security/lsm"), !lsm.contains("bpf") {
            XCTAssertFalse(result.isAvailable, "bpf is not an active LSM, yet the probe says \(result)")
        }
        if !result.isAvailable { XCTAssertTrue(result.reason?.contains("lsm") ?? false, "\(result)") }
    }
}
