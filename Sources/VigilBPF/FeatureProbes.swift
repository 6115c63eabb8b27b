import Dispatch
import CLibbpf
import CVigilBPFProbes
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a probe found out about one kernel capability.
public enum ProbeState: String, Sendable, Codable, Equatable {
    /// The capability works here: a real load/attach succeeded.
    case available
    /// The kernel refused it; the reason says why.
    case unsupported
    /// The probe could not tell (no privileges, tracefs absent and not root, ...).
    case inconclusive
}

/// The answer of one feature probe: a state and, unless available, the reason.
public struct ProbeResult: Sendable, Codable, Equatable, CustomStringConvertible {
    /// The state.
    public var state: ProbeState
    /// Why it is unsupported or inconclusive, or a note on an available feature.
    public var reason: String?

    /// Available.
    public static let available = ProbeResult(state: .available, reason: nil)
    /// Unsupported, because...
    public static func unsupported(_ reason: String) -> ProbeResult { .init(state: .unsupported, reason: reason) }
    /// Inconclusive, because...
    public static func inconclusive(_ reason: String) -> ProbeResult { .init(state: .inconclusive, reason: reason) }

    /// Whether the feature works.
    public var isAvailable: Bool { state == .available }

    public var description: String { reason.map { "\(state.rawValue): \($0)" } ?? state.rawValue }
}

/// A kernel capability that sensors depend on. Grouped by `category`: kernel facilities, map
/// types, program types, attach kinds, and helpers.
public enum Feature: String, CaseIterable, Sendable, Codable {
    case bpfSyscall = "bpf"
    case kernelBTF = "btf"
    case tracefs = "tracefs"
    case mapRingBuffer = "map:ringbuf"
    case mapHash = "map:hash"
    case mapArray = "map:array"
    case mapPerCPUArray = "map:percpu_array"
    case mapPerCPUHash = "map:percpu_hash"
    case mapLRUHash = "map:lru_hash"
    case programTracepoint = "prog:tracepoint"
    case programRawTracepoint = "prog:raw_tracepoint"
    case programKprobe = "prog:kprobe"
    case programTracing = "prog:tracing"
    case programLSM = "prog:lsm"
    case attachTracepoint = "attach:tracepoint"
    case attachRawTracepoint = "attach:raw_tp"
    case attachTpBTF = "attach:tp_btf"
    case attachKprobe = "attach:kprobe"
    case attachKprobeMulti = "attach:kprobe.multi"
    case attachFentry = "attach:fentry"
    case attachLSM = "attach:lsm"
    case attachUprobe = "attach:uprobe"
    case helperRingbufReserve = "helper:ringbuf_reserve"
    case helperRingbufQuery = "helper:ringbuf_query"
    case helperGetCurrentCgroupID = "helper:get_current_cgroup_id"
    case helperGetCurrentTaskBTF = "helper:get_current_task_btf"
    case helperKtimeGetBootNs = "helper:ktime_get_boot_ns"
    case helperProbeReadKernelStr = "helper:probe_read_kernel_str"
    case helperProbeReadUserStr = "helper:probe_read_user_str"
    case helperSendSignal = "helper:send_signal"
    case helperDPath = "helper:d_path"

    /// The group the feature belongs to: kernel, map, prog, attach or helper.
    public var category: String {
        rawValue.split(separator: ":").count > 1 ? String(rawValue.split(separator: ":")[0]) : "kernel"
    }
}

/// Probes the running kernel, once per feature, and caches the answers (the cilium/ebpf
/// `features` contract: available / unsupported with reason / inconclusive).
///
/// Probes are real: a map of the type is created, a program of the type is loaded, a minimal
/// program is attached to its hook and detached. Probing tracefs mounts it at
/// /sys/kernel/tracing when it is absent and the process is root.
public final class FeatureProbes: Sendable {
    /// The process-wide cache.
    public static let shared = FeatureProbes()

    private let cache = Mutex<[Feature: ProbeResult]>([:])

    /// A fresh, empty cache (tests); most callers use `shared`.
    public init() {}

    /// The cached answer for `feature`, probing it on first use.
    public func result(_ feature: Feature) -> ProbeResult {
        if let cached = cache.withLock({ $0[feature] }) { return cached }
        let answer = Self.probe(feature, probes: self)
        cache.withLock { $0[feature] = answer }
        return answer
    }

    /// Every feature with its answer, in declaration order.
    public func all() -> [(feature: Feature, result: ProbeResult)] {
        Feature.allCases.map { ($0, result($0)) }
    }

    // MARK: The probes

    private static func probe(_ feature: Feature, probes: FeatureProbes) -> ProbeResult {
        if feature == .bpfSyscall { return probeBPFSyscall() }
        if feature == .tracefs { return Tracefs.ensureMounted() }
        if feature == .kernelBTF { return probeKernelBTF() }
        // Everything else needs the bpf() syscall; without it the answer is not known.
        let bpf = probes.result(.bpfSyscall)
        guard bpf.isAvailable else { return .inconclusive("bpf() not usable: \(bpf.reason ?? "")") }
        switch feature {
        case .mapRingBuffer: return probeMap(BPF_MAP_TYPE_RINGBUF)
        case .mapHash: return probeMap(BPF_MAP_TYPE_HASH)
        case .mapArray: return probeMap(BPF_MAP_TYPE_ARRAY)
        case .mapPerCPUArray: return probeMap(BPF_MAP_TYPE_PERCPU_ARRAY)
        case .mapPerCPUHash: return probeMap(BPF_MAP_TYPE_PERCPU_HASH)
        case .mapLRUHash: return probeMap(BPF_MAP_TYPE_LRU_HASH)
        case .programTracepoint: return probeProgramType(BPF_PROG_TYPE_TRACEPOINT)
        case .programRawTracepoint: return probeProgramType(BPF_PROG_TYPE_RAW_TRACEPOINT)
        case .programKprobe: return probeProgramType(BPF_PROG_TYPE_KPROBE)
        case .programTracing:
            // libbpf probes this type as fentry; tp_btf programs are of the same type.
            let result = probeProgramType(BPF_PROG_TYPE_TRACING)
            if !result.isAvailable && probes.result(.attachTpBTF).isAvailable {
                return ProbeResult(state: .available, reason: "tp_btf loads; fentry/fexit do not (see attach:fentry)")
            }
            return result
        case .programLSM: return probeProgramType(BPF_PROG_TYPE_LSM)
        case .attachTracepoint:
            let tracefs = probes.result(.tracefs)
            guard tracefs.isAvailable else { return .unsupported("needs tracefs: \(tracefs.reason ?? "")") }
            return probeAttach("probe_tracepoint") { try $0.attach() }
        case .attachRawTracepoint: return probeAttach("probe_raw_tp") { try $0.attach() }
        case .attachTpBTF: return probeAttach("probe_tp_btf") { try $0.attach() }
        case .attachKprobe: return probeAttach("probe_kprobe") { try $0.attachKprobe(function: "vfs_read") }
        case .attachKprobeMulti: return probeAttach("probe_kprobe_multi") { try $0.attach() }
        case .attachFentry: return probeAttach("probe_fentry") { try $0.attach() }
        case .attachLSM: return probeAttach("probe_lsm") { try $0.attachLSM() }
        case .attachUprobe:
            guard let libc = SharedLibraries.path(containing: "libc.so") else {
                return .inconclusive("cannot find libc in /proc/self/maps to attach to")
            }
            return probeAttach("probe_uprobe") { try $0.attachUprobe(binary: libc, function: "getpid", pid: getpid()) }
        case .helperRingbufReserve: return probeHelper(BPF_FUNC_ringbuf_reserve)
        case .helperRingbufQuery: return probeHelper(BPF_FUNC_ringbuf_query)
        case .helperGetCurrentCgroupID: return probeHelper(BPF_FUNC_get_current_cgroup_id)
        case .helperGetCurrentTaskBTF: return probeHelper(BPF_FUNC_get_current_task_btf)
        case .helperKtimeGetBootNs: return probeHelper(BPF_FUNC_ktime_get_boot_ns)
        case .helperProbeReadKernelStr: return probeHelper(BPF_FUNC_probe_read_kernel_str)
        case .helperProbeReadUserStr: return probeHelper(BPF_FUNC_probe_read_user_str)
        case .helperSendSignal: return probeHelper(BPF_FUNC_send_signal)
        case .helperDPath: return probeHelper(BPF_FUNC_d_path, in: BPF_PROG_TYPE_TRACING, .attachFentry, probes)
        case .bpfSyscall, .tracefs, .kernelBTF: fatalError("handled above")
        }
    }

    /// Loads `r0 = 0; exit` as a socket filter: does bpf() work for this process at all?
    private static func probeBPFSyscall() -> ProbeResult {
        let rc = loadTrivial(BPF_PROG_TYPE_SOCKET_FILTER)
        if rc >= 0 { close(rc); return .available }
        let err = -rc
        if err == EPERM || err == EACCES {
            return .inconclusive("bpf() refused with \(Errno.name(err)): run as root or with CAP_BPF and CAP_PERFMON")
        }
        if err == ENOSYS { return .unsupported("the kernel has no bpf() syscall (CONFIG_BPF_SYSCALL off)") }
        return .unsupported("loading a socket filter failed: \(Errno.name(err))")
    }

    private static func probeKernelBTF() -> ProbeResult {
        guard access("/sys/kernel/btf/vmlinux", R_OK) == 0 else {
            return .unsupported("/sys/kernel/btf/vmlinux missing: kernel built without CONFIG_DEBUG_INFO_BTF; CO-RE needs it")
        }
        guard let btf = btf__load_vmlinux_btf(), libbpf_get_error(UnsafeRawPointer(btf)) == 0 else {
            return .unsupported("cannot parse /sys/kernel/btf/vmlinux: \(Errno.name(clibbpf_errno()))")
        }
        btf__free(btf)
        return .available
    }

    private static func loadTrivial(_ type: bpf_prog_type) -> Int32 {
        var insns = [bpf_insn(), bpf_insn()]
        insns[0].code = 0xb7 // BPF_ALU64 | BPF_MOV | BPF_K: r0 = 0
        insns[1].code = 0x95 // BPF_JMP | BPF_EXIT
        return clibbpf_probe_load(type, BPF_CGROUP_INET_INGRESS, 0, insns, insns.count, nil, 0)
    }

    private static func probeMap(_ type: bpf_map_type) -> ProbeResult {
        let rc = libbpf_probe_bpf_map_type(type, nil)
        if rc == 1 { return .available }
        if rc == 0 { return .unsupported("the kernel does not know this map type") }
        return .inconclusive("probe failed: \(Errno.name(-rc))")
    }

    private static func probeProgramType(_ type: bpf_prog_type) -> ProbeResult {
        let rc = libbpf_probe_bpf_prog_type(type, nil)
        if rc == 1 { return .available }
        if rc == 0 { return .unsupported("the kernel does not know this program type") }
        return .inconclusive("probe failed: \(Errno.name(-rc))")
    }

    private static func probeHelper(_ helper: bpf_func_id, in type: bpf_prog_type = BPF_PROG_TYPE_KPROBE,
                                    _ needs: Feature? = nil, _ probes: FeatureProbes? = nil) -> ProbeResult {
        if let needs, let probes, !probes.result(needs).isAvailable {
            return .unsupported("only offered to \(needs.rawValue) programs, which are unsupported")
        }
        let rc = libbpf_probe_bpf_helper(type, helper, nil)
        if rc == 1 { return .available }
        if rc == 0 { return .unsupported("the kernel does not offer this helper to \(type == BPF_PROG_TYPE_TRACING ? "tracing" : "kprobe") programs") }
        return .inconclusive("probe failed: \(Errno.name(-rc))")
    }

    /// The attach probes' releases still running in the background (`probeAttach`).
    private static let releases = DispatchGroup()

    /// Waits until every attach probe's object and link are released (their fds closed): for
    /// whoever counts the process's fds.
    public static func waitForReleases() { releases.wait() }

    /// Opens VigilBPF's probe object, loads only `program`, attaches it with `attach`; the answer
    /// is known then, and the detach runs on a background queue: releasing a tracepoint's perf
    /// event waits for an RCU grace period (~70 ms on 6.18, a third of a daemon's start).
    private static func probeAttach(_ program: String, _ attach: (BPFProgram) throws -> BPFLink) -> ProbeResult {
        do {
            try LibbpfLog.quietly {
                let object = try BPFObject(staticBytes: ProbeObject.bytes, name: "vigilbpf_probes")
                let prog = try object.program(named: program)
                prog.autoload = true
                try object.load()
                let attached = ProbeTeardown(object: object, link: try attach(prog))
                DispatchQueue.global(qos: .utility).async(group: releases) { attached.release() }
            }
            return .available
        } catch let error as BPFError {
            return .unsupported(explain(error, program: program))
        } catch {
            return .inconclusive("\(error)")
        }
    }

    /// A reason a user can act on: the failing call and errno, plus what usually causes it.
    private static func explain(_ error: BPFError, program: String) -> String {
        var reason = "\(error.operation) failed: \(error.errnoDescription.isEmpty ? error.message : error.errnoDescription)"
        switch program {
        case "probe_kprobe", "probe_kprobe_multi":
            if !SystemFile.exists("/sys/bus/event_source/devices/kprobe") {
                reason += "; no kprobe PMU (/sys/bus/event_source/devices/kprobe): kernel built without CONFIG_KPROBES"
            }
        case "probe_fentry":
            if error.kind == .verifier || error.kind == .load {
                reason += "; the kernel refuses BPF trampoline programs (fentry/fexit need CONFIG_BPF_JIT and CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)"
            }
        case "probe_lsm":
            if let lsm = SystemFile.read("/sys/kernel/security/lsm"), !lsm.split(separator: ",").contains("bpf") {
                reason += "; 'bpf' is not in the active LSMs (\(lsm)): boot with lsm=...,bpf"
            } else {
                reason += "; BPF LSM needs CONFIG_BPF_LSM and 'bpf' in the lsm= boot list"
            }
        default: break
        }
        if let verifier = error.verifierReason { reason += " (verifier: \(verifier))" }
        return reason
    }
}

/// A probe's attached program, handed whole to the queue that releases it (no other thread
/// holds it: the one-thread-per-object rule holds).
private final class ProbeTeardown: @unchecked Sendable {
    private var object: BPFObject?
    private var link: BPFLink?

    init(object: BPFObject, link: BPFLink) {
        self.object = object
        self.link = link
    }

    func release() {
        link?.detach()
        link = nil
        object = nil
    }
}

/// VigilBPF's embedded probe object.
enum ProbeObject {
    static var bytes: UnsafeRawBufferPointer {
        for i in 0..<vigilbpf_probe_objects_count() {
            guard let entry = vigilbpf_probe_objects_at(i)?.pointee, String(cString: entry.name) == "probes" else { continue }
            return UnsafeRawBufferPointer(start: entry.bytes, count: Int(entry.size))
        }
        fatalError("the probes object is missing from the build: run 'make generate'")
    }
}

/// Shared libraries mapped into this process: where to attach uprobes to library functions.
public enum SharedLibraries {
    /// The path of the first mapped file whose name contains `fragment` (e.g. `libc.so`), from
    /// /proc/self/maps, or another process's `maps` file (the path as that process sees it).
    public static func path(containing fragment: String, maps file: String = "/proc/self/maps") -> String? {
        guard let maps = SystemFile.read(file) else { return nil }
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            if path.split(separator: "/").last?.contains(fragment) == true { return path }
        }
        return nil
    }
}
