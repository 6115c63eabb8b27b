// Test helpers shared by the test targets (linked only into tests).
import Foundation
import VigilBPF
import XCTest

/// Gates a kernel test on the features it needs. Without them the test is skipped with the
/// probe's reason, unless VIGIL_REQUIRE_BPF=1 (CI), where it fails: no silent skips.
public func requireKernel(_ features: Feature..., file: StaticString = #filePath, line: UInt = #line) throws {
    for feature in [Feature.bpfSyscall] + features {
        let result = FeatureProbes.shared.result(feature)
        guard !result.isAvailable else { continue }
        let reason = "needs \(feature.rawValue), which is \(result)"
        if ProcessInfo.processInfo.environment["VIGIL_REQUIRE_BPF"] == "1" {
            XCTFail("VIGIL_REQUIRE_BPF=1 and this test cannot run: \(reason)", file: file, line: line)
            throw XCTSkip(reason)
        }
        throw XCTSkip(reason)
    }
}

/// The number of open file descriptors of this process (/proc/self/fd).
public func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Asserts that `body` throws a BPFError and returns it.
public func assertBPFError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> BPFError? {
    do {
        try body()
        XCTFail("expected a BPFError, nothing was thrown", file: file, line: line)
    } catch let error as BPFError {
        return error
    } catch {
        XCTFail("expected a BPFError, got \(error)", file: file, line: line)
    }
    return nil
}
