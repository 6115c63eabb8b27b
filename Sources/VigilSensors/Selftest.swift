import CVigilABI
import VigilBPF
#if canImport(Glibc)
import Glibc
#endif

/// The selftest object (bpf/selftest.bpf.c): programs that prove the library on a real kernel,
/// used by the kernel tests, `vigil-kernel-check` (other kernels under qemu) and `make bench`.
public enum Selftest {
    /// The "an open happened" hook, from the best hook kind to the most widely available.
    public static let openVariants: [Variant] = [
        Variant("lsm", requires: [.attachLSM], programs: ["open_lsm"]),
        Variant("fentry", requires: [.attachFentry], programs: ["open_fentry"]),
        Variant("kprobe.multi", requires: [.attachKprobeMulti], programs: ["open_kprobe_multi"]),
        Variant("kprobe", requires: [.attachKprobe], programs: ["open_kprobe"]),
        Variant("tp_btf", requires: [.attachTpBTF], programs: ["open_tp_btf"]),
        Variant("tracepoint", requires: [.attachTracepoint], programs: ["open_tracepoint"]),
    ]

    /// The hook kind each variant reports in its events.
    public static func hookKind(ofVariant name: String) -> UInt32 {
        switch name {
        case "lsm": return UInt32(VIGIL_HOOK_LSM.rawValue)
        case "fentry": return UInt32(VIGIL_HOOK_FENTRY.rawValue)
        case "kprobe.multi": return UInt32(VIGIL_HOOK_KPROBE_MULTI.rawValue)
        case "kprobe": return UInt32(VIGIL_HOOK_KPROBE.rawValue)
        case "tp_btf": return UInt32(VIGIL_HOOK_TP_BTF.rawValue)
        case "raw_tp": return UInt32(VIGIL_HOOK_RAW_TP.rawValue)
        case "uprobe": return UInt32(VIGIL_HOOK_UPROBE.rawValue)
        default: return UInt32(VIGIL_HOOK_TRACEPOINT.rawValue)
        }
    }

    /// Opens the selftest object with events limited to this process and a ring of `ringBytes`.
    public static func open(ringBytes: Int = 1 << 22, wakeupBytes: UInt64 = 0) throws -> BPFObject {
        let object = try EmbeddedObjects.open("selftest")
        try object.setGlobal("target_tgid", to: UInt32(getpid()))
        try object.setGlobal("vigil_wakeup_bytes", to: wakeupBytes)
        try object.map(named: "events").setMaxEntries(ringBytes)
        return object
    }

    /// Loads the open hook with `variants` (by default every one, best first).
    public static func loadOpenHook(variants: [Variant] = openVariants, probes: FeatureProbes = .shared) throws -> LoadedVariants {
        try VariantLoader(open: { try open() }, hooks: [Hook("file-open", variants: variants)], probes: probes).load()
    }

    /// Opens `path` `count` times and returns the selftest events the ring delivered for it.
    public static func triggerOpens(_ object: BPFObject, path: String = "/proc/self/stat", count: Int = 3) throws -> [vigil_selftest_event] {
        let reader = try RingBufferReader(map: object.map(named: "events"))
        for _ in 0..<count {
            let fd = Glibc.open(path, O_RDONLY)
            if fd >= 0 { close(fd) }
        }
        var events: [vigil_selftest_event] = []
        try reader.drain { batch in
            for record in batch where record.count >= MemoryLayout<vigil_selftest_event>.size {
                events.append(record.loadUnaligned(as: vigil_selftest_event.self))
            }
        }
        return events
    }

    /// The per-CPU counters of a loaded object, summed: emitted, filtered, lost.
    public static func counters(_ object: BPFObject) throws -> (emitted: UInt64, filtered: UInt64, lost: UInt64) {
        let map = try PerCPUMap<UInt32, UInt64>(object.map(named: "counters"))
        return (try map.sum(UInt32(VIGIL_COUNTER_EMITTED.rawValue)),
                try map.sum(UInt32(VIGIL_COUNTER_FILTERED.rawValue)),
                try map.sum(UInt32(VIGIL_COUNTER_LOST.rawValue)))
    }
}
