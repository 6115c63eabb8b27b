import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// One program of a `BPFObject` (wraps `struct bpf_program`). Keeps its object alive.
public struct BPFProgram {
    /// The object the program belongs to.
    public let object: BPFObject
    let handle: OpaquePointer

    init(object: BPFObject, handle: OpaquePointer) {
        self.object = object
        self.handle = handle
    }

    /// The C function name (wraps `bpf_program__name`).
    public var name: String { String(cString: bpf_program__name(handle)) }

    /// The ELF section, e.g. `tracepoint/syscalls/sys_enter_close` (wraps `bpf_program__section_name`).
    public var section: String { String(cString: bpf_program__section_name(handle)) }

    /// Whether `load()` loads this program (wraps `bpf_program__autoload` and
    /// `bpf_program__set_autoload`). Sections starting with "?" default to off.
    public var autoload: Bool {
        get { bpf_program__autoload(handle) }
        nonmutating set { bpf_program__set_autoload(handle, newValue) }
    }

    /// The program's fd once loaded, or nil (wraps `bpf_program__fd`).
    public var fd: Int32? {
        let fd = bpf_program__fd(handle)
        return fd >= 0 ? fd : nil
    }

    /// The kernel program type (wraps `bpf_program__type`).
    public var type: bpf_prog_type { bpf_program__type(handle) }

    private var target: String { "\(object.name)/\(name)" }

    private func link(_ operation: String, _ hook: String, _ make: () -> OpaquePointer?) throws -> BPFLink {
        guard fd != nil else {
            throw BPFError(.invalidArgument, operation: operation, target: target,
                           message: "program is not loaded (autoload off, or object not loaded)")
        }
        let link = make()
        guard let link, libbpf_get_error(UnsafeRawPointer(link)) == 0 else {
            var error = BPFError.libbpf(.attach, operation, target, "cannot attach to \(hook)")
            error.program = name
            throw error
        }
        return BPFLink(object: object, handle: link, description: "\(target) -> \(hook)")
    }

    /// Attaches as its ELF section says (tp_btf, fentry/fexit, lsm, kprobe/kretprobe with a
    /// function, tracepoint with a name, raw_tp with a name) (wraps `bpf_program__attach`).
    public func attach() throws -> BPFLink {
        try link("bpf_program__attach", section) { bpf_program__attach(handle) }
    }

    /// Attaches to a perf tracepoint such as `syscalls`/`sys_enter_openat` (wraps
    /// `bpf_program__attach_tracepoint`). Needs tracefs mounted.
    public func attachTracepoint(category: String, name tracepoint: String) throws -> BPFLink {
        try link("bpf_program__attach_tracepoint", "tracepoint \(category)/\(tracepoint)") {
            bpf_program__attach_tracepoint(handle, category, tracepoint)
        }
    }

    /// Attaches to a raw tracepoint such as `sys_enter` (wraps `bpf_program__attach_raw_tracepoint`).
    public func attachRawTracepoint(_ tracepoint: String) throws -> BPFLink {
        try link("bpf_program__attach_raw_tracepoint", "raw_tp \(tracepoint)") {
            bpf_program__attach_raw_tracepoint(handle, tracepoint)
        }
    }

    /// Attaches a BTF-typed program (tp_btf, fentry, fexit, fmod_ret) to the target it was
    /// loaded for (wraps `bpf_program__attach_trace`).
    public func attachTrace() throws -> BPFLink {
        try link("bpf_program__attach_trace", section) { bpf_program__attach_trace(handle) }
    }

    /// Attaches a BPF-LSM program to its security hook (wraps `bpf_program__attach_lsm`).
    public func attachLSM() throws -> BPFLink {
        try link("bpf_program__attach_lsm", section) { bpf_program__attach_lsm(handle) }
    }

    /// Attaches to a kernel function entry, or its return with `returnProbe` (wraps
    /// `bpf_program__attach_kprobe`).
    public func attachKprobe(function: String, returnProbe: Bool = false) throws -> BPFLink {
        try link("bpf_program__attach_kprobe", "\(returnProbe ? "kretprobe" : "kprobe") \(function)") {
            bpf_program__attach_kprobe(handle, returnProbe, function)
        }
    }

    /// Attaches one link to the entries of every kernel function of `functions`, or to their
    /// returns with `returnProbe` (a `kprobe.multi`/`kretprobe.multi` program; wraps
    /// `bpf_program__attach_kprobe_multi_opts` with `syms`). Needs a kernel with fprobe (5.18+).
    /// `cookie`, when given, is every function's `bpf_get_attach_cookie` (`cookies`).
    public func attachKprobeMulti(functions: [String], returnProbe: Bool = false, cookie: UInt64? = nil) throws -> BPFLink {
        let hook = "\(returnProbe ? "kretprobe.multi" : "kprobe.multi") \(functions.joined(separator: ","))"
        var names = functions.map { strdup($0) }
        defer { names.forEach { free($0) } }
        var cookies = cookie.map { Array(repeating: $0, count: functions.count) } ?? []
        return try link("bpf_program__attach_kprobe_multi_opts", hook) {
            names.withUnsafeMutableBufferPointer { buffer in
                // No function: no link (the kernel refuses an empty set too).
                guard let base = buffer.baseAddress, !buffer.isEmpty else { return nil }
                return base.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { syms in
                    var opts = bpf_kprobe_multi_opts()
                    opts.sz = MemoryLayout<bpf_kprobe_multi_opts>.size
                    opts.syms = syms
                    opts.cnt = buffer.count
                    opts.retprobe = returnProbe
                    return cookies.withUnsafeMutableBufferPointer { cookies in
                        opts.cookies = UnsafePointer(cookies.baseAddress)
                        return bpf_program__attach_kprobe_multi_opts(handle, nil, &opts)
                    }
                }
            }
        }
    }

    /// Attaches to a user function by symbol (`function`) or file `offset` in `binary`; `pid`
    /// nil means every process (wraps `bpf_program__attach_uprobe_opts`).
    public func attachUprobe(binary: String, function: String? = nil, offset: Int = 0,
                             pid: Int32? = nil, returnProbe: Bool = false) throws -> BPFLink {
        var opts = bpf_uprobe_opts()
        opts.sz = MemoryLayout<bpf_uprobe_opts>.size
        opts.retprobe = returnProbe
        let hook = "\(returnProbe ? "uretprobe" : "uprobe") \(binary):\(function ?? "+\(offset)")"
        return try link("bpf_program__attach_uprobe_opts", hook) {
            if let function {
                return function.withCString { cfn in
                    opts.func_name = cfn
                    return bpf_program__attach_uprobe_opts(handle, pid ?? -1, binary, offset, &opts)
                }
            }
            return bpf_program__attach_uprobe_opts(handle, pid ?? -1, binary, offset, &opts)
        }
    }
}

/// An attached program (wraps `struct bpf_link`). The program stays attached while the link
/// lives; `detach()` or deinit detaches it (`bpf_link__destroy`).
public final class BPFLink {
    /// The object whose program is attached; kept alive by the link.
    public let object: BPFObject
    private var handle: OpaquePointer?
    /// What is attached to what, e.g. `selftest/close_seq -> tracepoint syscalls/sys_enter_close`.
    public let description: String

    init(object: BPFObject, handle: OpaquePointer, description: String) {
        self.object = object
        self.handle = handle
        self.description = description
    }

    /// The link's fd, or nil once detached (wraps `bpf_link__fd`).
    public var fd: Int32? { handle.map { bpf_link__fd($0) } }

    /// Detaches now (wraps `bpf_link__destroy`). Idempotent.
    public func detach() {
        if let handle { bpf_link__destroy(handle) }
        handle = nil
    }

    /// Detaches `links` from up to 64 threads at once and returns when all are detached.
    /// Releasing a tracepoint's perf event waits for an RCU tasks-trace grace period (~0.15 s
    /// per syscall tracepoint on 6.18: one by one, the default rules' ~116 links took ~17 s);
    /// releases that wait together share the grace periods.
    public static func detachTogether(_ links: [BPFLink]) {
        guard links.count > 1 else { links.first?.detach(); return }
        final class Work: @unchecked Sendable {
            let links: [BPFLink], stride: Int
            init(_ links: [BPFLink], _ stride: Int) { self.links = links; self.stride = stride }
        }
        let work = Work(links, min(links.count, 64))
        var threads: [pthread_t] = []
        for first in 0..<work.stride {
            let context = Unmanaged.passRetained(Box((work, first))).toOpaque()
            var thread = pthread_t()
            let started = pthread_create(&thread, nil, { raw in
                let box = Unmanaged<Box<(Work, Int)>>.fromOpaque(raw!).takeRetainedValue()
                let (work, first) = box.value
                var i = first
                while i < work.links.count { work.links[i].detach(); i += work.stride }
                return nil
            }, context)
            if started == 0 {
                threads.append(thread)
            } else { // no thread: detach its share here
                Unmanaged<Box<(Work, Int)>>.fromOpaque(context).release()
                var i = first
                while i < links.count { links[i].detach(); i += work.stride }
            }
        }
        for thread in threads { pthread_join(thread, nil) }
    }

    /// A value handed to a thread.
    private final class Box<T>: @unchecked Sendable {
        let value: T
        init(_ value: T) { self.value = value }
    }

    deinit { detach() }
}
