// Test helpers shared by the test targets (linked only into tests).
import Foundation
import VigilBPF
import XCTest

/// Why a test could not run, thrown under VIGIL_REQUIRE_BPF=1: it fails the test.
public struct TestCannotRun: Error, CustomStringConvertible {
    public var description: String
}

/// The error for a test that cannot run here: an `XCTSkip` with the reason, or under
/// VIGIL_REQUIRE_BPF=1 (CI) a `TestCannotRun` that fails it. The one gate every test uses: no
/// silent skips.
public func cannotRun(_ reason: String) -> any Error {
    if ProcessInfo.processInfo.environment["VIGIL_REQUIRE_BPF"] == "1" {
        return TestCannotRun(description: "VIGIL_REQUIRE_BPF=1 and this test cannot run: \(reason)")
    }
    return XCTSkip(reason)
}

/// Gates a kernel test on the features it needs: without them it cannot run (`cannotRun`), with
/// the probe's reason.
public func requireKernel(_ features: Feature...) throws {
    for feature in [Feature.bpfSyscall] + features {
        let result = FeatureProbes.shared.result(feature)
        guard !result.isAvailable else { continue }
        throw cannotRun("needs \(feature.rawValue), which is \(result)")
    }
}

/// The number of open file descriptors of this process (/proc/self/fd), once the feature probes'
/// background releases are done (they close fds on another thread).
public func openFileDescriptorCount() -> Int {
    FeatureProbes.waitForReleases()
    return (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
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
