// vigil-kernel-check: runs inside another kernel (make test-kernels boots Debian's 6.1 and 6.12
// under qemu) and checks that the hook kinds this host lacks (kprobe, fentry, lsm) are probed as
// available there, that each variant chain picks its first variant, and that the chosen program
// fires and delivers events through the ring. Prints one line per check and
// "kernel-check: N passed, M failed"; exits non-zero on any failure.
import CVigilABI
import VigilBPF
import VigilSensors
#if canImport(Glibc)
import Glibc
#endif

var passed = 0, failed = 0
@MainActor func check(_ name: String, _ ok: Bool, _ detail: @autoclosure () -> String = "") {
    if ok { passed += 1 } else { failed += 1 }
    print("\(ok ? "ok  " : "FAIL") \(name)\(ok ? "" : ": " + detail())")
}

var uname = utsname()
_ = Glibc.uname(&uname)
let release = withUnsafeBytes(of: uname.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
print("kernel \(release)")

// Which features must be available here: the arguments (e.g. attach:kprobe attach:fentry attach:lsm).
let required = CommandLine.arguments.dropFirst().compactMap { Feature(rawValue: $0) }
for feature in required {
    let result = FeatureProbes.shared.result(feature)
    check("probe \(feature.rawValue) available", result.isAvailable, result.description)
}

// Every variant chain starting at a required hook kind must choose that kind and fire.
for (index, variant) in Selftest.openVariants.enumerated() {
    guard required.contains(where: { variant.requires.contains($0) }) else { continue }
    do {
        let loaded = try Selftest.loadOpenHook(variants: Array(Selftest.openVariants[index...]))
        let active = loaded.activeVariant(of: "file-open") ?? "none"
        check("chain from \(variant.name) chooses \(variant.name)", active == variant.name,
              "chose \(active): \(loaded.reports)")
        let events = try Selftest.triggerOpens(loaded.object, count: 3)
        let kind = Selftest.hookKind(ofVariant: active)
        check("\(active) delivers its events", events.count >= 3 && events.allSatisfy { $0.hook == kind },
              "\(events.count) events, hooks \(events.map(\.hook))")
    } catch {
        check("chain from \(variant.name) loads", false, "\(error)")
    }
}
print("kernel-check: \(passed) passed, \(failed) failed")
exit(failed == 0 && passed > 0 ? 0 : 1)
