import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// The layout of a C struct as the compiler recorded it in an object's BTF: what a Swift mirror
/// of the struct must match (house rule: the ABI is checked against the compiled objects).
public struct BTFStructLayout: Sendable, Equatable {
    /// One member: name, byte offset and size in bytes (0 when not a sized type).
    public struct Member: Sendable, Equatable {
        public var name: String
        public var offset: Int
        public var size: Int
    }
    /// The struct's name.
    public var name: String
    /// Its size in bytes.
    public var size: Int
    /// Its members in declaration order.
    public var members: [Member]
}

extension BPFObject {
    /// The layout of `struct name` from the object's BTF (wraps `btf__find_by_name_kind`,
    /// `btf_members`, `btf__resolve_size`). Works before load, without privileges.
    public func structLayout(_ structName: String) throws -> BTFStructLayout {
        guard let btf = bpf_object__btf(handle) else {
            throw BPFError(.notFound, operation: "bpf_object__btf", target: name, errno: 2, message: "object has no BTF")
        }
        let id = btf__find_by_name_kind(btf, structName, UInt32(BTF_KIND_STRUCT))
        guard id > 0, let type = btf__type_by_id(btf, UInt32(id)), let members = btf_members(type) else {
            throw BPFError(.notFound, operation: "btf__find_by_name_kind", target: "\(name)/struct \(structName)",
                           errno: 2, message: "no struct \(structName) in the object's BTF")
        }
        let list = (0..<Int(btf_vlen(type))).map { i -> BTFStructLayout.Member in
            let member = members[i]
            let size = btf__resolve_size(btf, member.type)
            return .init(name: String(cString: btf__name_by_offset(btf, member.name_off)),
                         offset: Int(btf_member_bit_offset(type, UInt32(i)) / 8), size: max(0, Int(size)))
        }
        return BTFStructLayout(name: structName, size: Int(type.pointee.size), members: list)
    }

    /// The names of every named struct in the object's BTF, in BTF order (wraps
    /// `btf__type_cnt`, `btf_is_struct`). Works before load, without privileges.
    public func structNames() throws -> [String] {
        guard let btf = bpf_object__btf(handle) else {
            throw BPFError(.notFound, operation: "bpf_object__btf", target: name, errno: 2, message: "object has no BTF")
        }
        return (1..<btf__type_cnt(btf)).compactMap { id in
            guard let type = btf__type_by_id(btf, id), btf_is_struct(type), type.pointee.name_off != 0 else { return nil }
            return String(cString: btf__name_by_offset(btf, type.pointee.name_off))
        }
    }
}

/// Types of the running kernel's BTF (/sys/kernel/btf/vmlinux).
public enum KernelBTF {
    /// The constants of `enum name` in the running kernel's BTF, by value (wraps
    /// `btf__load_vmlinux_btf`, `btf__find_by_name_kind`, `btf_enum`): names whose numbering
    /// changes between kernel versions (enum skb_drop_reason).
    public static func enumValues(_ enumName: String) throws -> [Int64: String] {
        guard let btf = btf__load_vmlinux_btf() else {
            throw BPFError(.notFound, operation: "btf__load_vmlinux_btf", target: "vmlinux", errno: errno, message: "no kernel BTF")
        }
        defer { btf__free(btf) }
        let id = btf__find_by_name_kind(btf, enumName, UInt32(BTF_KIND_ENUM))
        guard id > 0, let type = btf__type_by_id(btf, UInt32(id)), let values = btf_enum(type) else {
            throw BPFError(.notFound, operation: "btf__find_by_name_kind", target: "vmlinux/enum \(enumName)",
                           errno: 2, message: "no enum \(enumName) in the kernel's BTF")
        }
        var out: [Int64: String] = [:]
        for i in 0..<Int(btf_vlen(type)) {
            out[Int64(values[i].val)] = String(cString: btf__name_by_offset(btf, values[i].name_off))
        }
        return out
    }
}
