import Foundation
import VigilEvents
import VigilSeccomp
import XCTest

/// Profiles from recordings (pure: no kernel): names from the one syscall table, the argument
/// filters, complain mode, merge, diff and reading Docker's own profile format.
final class SeccompProfileTests: XCTestCase {
    private func numbers(_ names: [String], _ arch: SyscallArch = .x86_64) -> Set<Int> {
        Set(names.compactMap { SeccompRecording.number(of: $0, on: arch) })
    }

    func testNamesComeFromTheTable() throws {
        let recording = SeccompRecording(arch: .x86_64, native: numbers(["read", "write", "exit_group"]))
        XCTAssertEqual(recording.names, ["exit_group", "read", "write"])
        let profile = SeccompProfile(recording: recording)
        XCTAssertEqual(profile.defaultAction, "SCMP_ACT_ERRNO")
        XCTAssertEqual(profile.defaultErrnoRet, 1)
        XCTAssertEqual(profile.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        XCTAssertEqual(profile.allowedNames, SeccompProfile.alwaysAllowed.union(["exit_group", "read", "write"]))
        let arm = SeccompProfile(recording: SeccompRecording(arch: .arm64, native: numbers(["read"], .arm64)))
        XCTAssertEqual(arm.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        XCTAssertEqual(arm.allowedNames, SeccompProfile.alwaysAllowed.union(["read"]))
    }

    func testCloneWithoutNamespaceFlagsUnlessSeen() throws {
        let plain = SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["clone", "clone3"]), cloneFlags: 0x11))
        let clone = try XCTUnwrap(plain.syscalls.first { $0.names == ["clone"] })
        XCTAssertEqual(clone.args, [SeccompProfile.Argument(index: 0, value: SeccompProfile.namespaceFlags, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ")])
        let clone3 = try XCTUnwrap(plain.syscalls.first { $0.names == ["clone3"] })
        XCTAssertEqual(clone3.action, "SCMP_ACT_ERRNO")
        XCTAssertEqual(clone3.errnoRet, 38)
        let namespaces = SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["clone"]), cloneFlags: 0x1000_0000))
        XCTAssertTrue(namespaces.unconditionalNames.contains("clone"))
    }

    /// Under Docker's default profile clone3 fails with ENOSYS in the filter, before the recorder
    /// sees it, and glibc falls back to clone: a profile that allows clone refuses clone3 with
    /// ENOSYS too, or glibc's pthread_create fails (EPERM stops the fallback).
    func testClone3RefusedWithENOSYSWhenOnlyCloneWasSeen() throws {
        let profile = SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["clone", "exit"]), cloneFlags: 0x3d0f00))
        let clone3 = try XCTUnwrap(profile.syscalls.first { $0.names == ["clone3"] }, "\(profile.syscalls)")
        XCTAssertEqual(clone3.action, "SCMP_ACT_ERRNO")
        XCTAssertEqual(clone3.errnoRet, 38)
        XCTAssertFalse(profile.allowedNames.contains("clone3"))
        let noClone = SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["read"])))
        XCTAssertFalse(noClone.syscalls.contains { $0.names.contains("clone3") })
    }

    /// rt_sigreturn, exit and exit_group are allowed even when not recorded: refusing them only
    /// turns a signal handler's return or an exit into a crash. Seen: runc's init (Go) catching
    /// a signal between the filter's install and the entrypoint's exec had its rt_sigreturn
    /// refused and died with SIGSEGV, about one confined start in ten.
    func testSignalReturnAndExitAlwaysAllowed() throws {
        for arch in SyscallArch.allCases {
            let profile = SeccompProfile(recording: SeccompRecording(arch: arch, native: numbers(["read"], arch)))
            XCTAssertEqual(profile.allowedNames, ["exit", "exit_group", "read", "rt_sigreturn"], "\(arch)")
        }
        XCTAssertEqual(SeccompProfile.alwaysAllowed, ["exit", "exit_group", "rt_sigreturn"])
    }

    func testPersonalityOnlyWithValuesSeen() throws {
        let profile = SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["personality"]), personalities: [0xffff_ffff, 8]))
        XCTAssertEqual(profile.personalityValues?.sorted(), [8, 0xffff_ffff])
        XCTAssertFalse(profile.unconditionalNames.contains("personality"))
        let overflow = SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["personality"]), personalities: [1, 2, 3, 4], personalityOverflow: true))
        XCTAssertTrue(overflow.unconditionalNames.contains("personality"))
    }

    func testComplainProfileLogs() throws {
        let profile = SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["read"])), complain: true)
        XCTAssertEqual(profile.defaultAction, "SCMP_ACT_LOG")
        XCTAssertNil(profile.defaultErrnoRet)
    }

    func testJSONRoundTripMergeAndDiff() throws {
        let a = SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["read", "write", "clone"])))
        let b = SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["read", "openat", "clone"]), cloneFlags: 0x2000_0000))
        XCTAssertEqual(try SeccompProfile(json: a.json(), source: "a.json"), a)
        let merged = SeccompProfile.merge([a, b])
        XCTAssertEqual(merged.allowedNames, SeccompProfile.alwaysAllowed.union(["clone", "openat", "read", "write"]))
        XCTAssertTrue(merged.cloneNamespacesAllowed)
        let d = SeccompProfile.diff(a, b)
        XCTAssertEqual(d.onlyInA, ["write"])
        XCTAssertEqual(d.onlyInB, ["openat"])
        XCTAssertEqual(d.conditionsDiffer, ["clone"])
        XCTAssertTrue(SeccompProfile.diff(a, a).isEmpty)
    }

    func testBadProfileIsNamed() {
        XCTAssertThrowsError(try SeccompProfile(json: Data("{\"syscalls\": []}".utf8), source: "bad.json")) { error in
            XCTAssertTrue("\(error)".contains("bad.json"), "\(error)")
            XCTAssertTrue("\(error)".contains("defaultAction"), "\(error)")
        }
    }

    func testStoreMergesRunsPerImage() throws {
        let directory = NSTemporaryDirectory() + "vigil-seccomp-store-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ProfileStore(directory: directory + "/var/lib/vigil/seccomp")
        try store.save(SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["read"]))), for: "web:1")
        let kept = try store.save(SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["write"]))), for: "web:1")
        XCTAssertEqual(kept.allowedNames, SeccompProfile.alwaysAllowed.union(["read", "write"]))
        XCTAssertEqual(try store.list().map(\.file), ["web_1.json"])
        // The runs merged and the reference as given, beside the profile (not in its OCI JSON).
        XCTAssertEqual(try store.list().first?.runs, 2)
        XCTAssertEqual(try store.list().first?.image, "web:1")
        try store.save(SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["read"]))), for: "web:1", replace: true)
        XCTAssertEqual(try store.list().first?.runs, 1)
        // A profile put there by hand: no count, no reference.
        try SeccompProfile(recording: SeccompRecording(arch: .x86_64, native: numbers(["read"]))).write(to: store.directory + "/hand.json")
        XCTAssertEqual(try store.list().map(\.file), ["hand.json", "web_1.json"])
        XCTAssertNil(try store.list().first?.runs)
        XCTAssertNil(try store.list().first?.image)
    }

    /// Docker's default profile (vendored from moby 20.10.24, the engine Debian 12 ships) against a
    /// recorded profile: names this architecture has on both sides.
    func testSizeAgainstDockerDefault() throws {
        for arch in SyscallArch.allCases {
            let docker = try XCTUnwrap(DockerDefaultProfile.allowedNames[arch])
            let present = docker.filter { SeccompRecording.number(of: $0, on: arch) != nil }
            for name in ["accept4", "read", "mkdirat", "clone", "ptrace"] {
                XCTAssertTrue(present.contains(name), "\(arch) \(name)")
            }
            // Refused by Docker's default to a container with the default capabilities.
            for name in ["mount", "unshare", "bpf", "keyctl", "add_key", "reboot", "clone3", "init_module"] {
                XCTAssertFalse(docker.contains(name), "\(arch) \(name)")
            }
            let profile = SeccompProfile(recording: SeccompRecording(arch: arch, native: numbers(["read", "write", "exit_group", "unshare"], arch)))
            let compared = profile.comparedWithDockerDefault(on: arch)
            XCTAssertEqual(compared.allowed, 6, "read, write, exit_group, unshare and the always allowed exit, rt_sigreturn")
            XCTAssertEqual(compared.dockerDefault, present.count)
            XCTAssertEqual(compared.beyondDefault, ["unshare"])
            XCTAssertEqual(compared.summary, "6 syscalls allowed, Docker's default allows \(present.count) (beyond it: unshare)")
        }
        // Docker's list names 32-bit syscalls x86_64 does not have: not counted.
        XCTAssertTrue(DockerDefaultProfile.allowedNames[.x86_64]?.contains("_llseek") ?? false)
        XCTAssertNil(SeccompRecording.number(of: "_llseek", on: .x86_64))
        XCTAssertTrue(DockerDefaultProfile.allowedNames[.x86_64]?.contains("arch_prctl") ?? false)
        XCTAssertFalse(DockerDefaultProfile.allowedNames[.arm64]?.contains("arch_prctl") ?? true)
    }
}
