import CLibbpf

/// Functions the running kernel's BTF names (/sys/kernel/btf/vmlinux): whether a kfunc a program
/// calls exists, so code calling it can be left out (a `const volatile` flag) where it does not.
public enum KernelFunctions {
    /// Whether the kernel's BTF has a function named `name` (false without kernel BTF).
    public static func has(_ name: String) -> Bool { !present([name]).isEmpty }

    /// Those of `names` the kernel's BTF has as functions (none without kernel BTF); reads the
    /// BTF once for all of them.
    public static func present(_ names: [String]) -> Set<String> {
        guard let btf = btf__load_vmlinux_btf(), libbpf_get_error(UnsafeRawPointer(btf)) == 0 else { return [] }
        defer { btf__free(btf) }
        return Set(names.filter { btf__find_by_name_kind(btf, $0, UInt32(BTF_KIND_FUNC as Int32)) > 0 })
    }

    /// `bpf_rdonly_cast` (6.2 and later): what bpf/lib/vigil.bpf.h's `vigil_rdonly_cast` says.
    public static let rdonlyCast = has("bpf_rdonly_cast")
}
