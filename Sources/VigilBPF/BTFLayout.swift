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

    /// The members of `struct name` typed for decoding (wraps `btf__resolve_type`, `btf_int_encoding`,
    /// `btf_array`): integers (and enums) of 1, 2, 4 or 8 bytes with their signedness, char arrays
    /// (strings), and fixed arrays of integers. Typedefs and const/volatile are looked through.
    /// Works before load, without privileges.
    /// - Throws: `.notFound` without such a struct, `.invalidArgument` naming the first member of
    ///   a type the decoder does not read (pointer, nested struct or union, bitfield, float, ...).
    public func structMembers(_ structName: String) throws -> (size: Int, members: [BTFMember]) {
        guard let btf = bpf_object__btf(handle) else {
            throw BPFError(.notFound, operation: "bpf_object__btf", target: name, errno: 2, message: "object has no BTF")
        }
        let id = btf__find_by_name_kind(btf, structName, UInt32(BTF_KIND_STRUCT))
        guard id > 0, let type = btf__type_by_id(btf, UInt32(id)) else {
            throw BPFError(.notFound, operation: "btf__find_by_name_kind", target: "\(name)/struct \(structName)",
                           errno: 2, message: "no struct \(structName) in the object's BTF")
        }
        let members = btf_members(type)
        var list: [BTFMember] = []
        for i in 0..<Int(btf_vlen(type)) {
            guard let member = members?[i] else { break }
            let memberName = String(cString: btf__name_by_offset(btf, member.name_off))
            func refuse(_ why: String) -> BPFError {
                BPFError(.invalidArgument, operation: "btf member type", target: "\(name)/struct \(structName).\(memberName)",
                         message: "member '\(memberName)' of struct \(structName): \(why)")
            }
            guard btf_member_bitfield_size(type, UInt32(i)) == 0 else { throw refuse("a bitfield, which bundles do not decode") }
            let offset = Int(btf_member_bit_offset(type, UInt32(i)) / 8)
            let resolved = btf__resolve_type(btf, member.type)
            guard resolved > 0, let memberType = btf__type_by_id(btf, UInt32(resolved)) else { throw refuse("its type does not resolve") }
            if let scalar = Self.scalar(btf, memberType) {
                list.append(BTFMember(name: memberName, offset: offset, type: .integer(size: scalar.size, signed: scalar.signed)))
            } else if btf_is_array(memberType), let array = btf_array(memberType) {
                let element = btf__resolve_type(btf, array.pointee.type)
                guard element > 0, let elementType = btf__type_by_id(btf, UInt32(element)),
                      let scalar = Self.scalar(btf, elementType) else {
                    throw refuse("an array of something other than integers")
                }
                let count = Int(array.pointee.nelems)
                list.append(BTFMember(name: memberName, offset: offset,
                                      type: scalar.isChar ? .string(size: count) : .array(count: count, size: scalar.size, signed: scalar.signed)))
            } else {
                let kind = Int32(btf_kind(memberType))
                let what = kind == Int32(BTF_KIND_PTR) ? "a pointer" : kind == Int32(BTF_KIND_STRUCT) ? "a nested struct"
                    : kind == Int32(BTF_KIND_UNION) ? "a union" : kind == 16 ? "a floating-point number" : "BTF kind \(kind)"
                throw refuse("\(what), which bundles do not decode (integers, enums, char arrays and integer arrays only)")
            }
        }
        return (Int(type.pointee.size), list)
    }

    /// An integer or enum type's size, signedness and whether it is a char (1-byte, BTF_INT_CHAR
    /// or a plain `char`); nil for other types or sizes other than 1, 2, 4, 8.
    private static func scalar(_ btf: OpaquePointer, _ type: UnsafePointer<btf_type>) -> (size: Int, signed: Bool, isChar: Bool)? {
        let size = Int(type.pointee.size)
        guard [1, 2, 4, 8].contains(size) else { return nil }
        if btf_is_int(type) {
            let encoding = btf_int_encoding(type)
            let typeName = String(cString: btf__name_by_offset(btf, type.pointee.name_off))
            let isChar = size == 1 && (encoding & UInt8(BTF_INT_CHAR) != 0 || typeName == "char")
            return (size, encoding & UInt8(BTF_INT_SIGNED) != 0, isChar)
        }
        if btf_is_any_enum(type) { return (size, btf_kflag(type), false) }
        return nil
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

/// One member of a struct typed for decoding (`BPFObject.structMembers`).
public struct BTFMember: Sendable, Equatable {
    /// How the member's bytes are read.
    public enum MemberType: Sendable, Equatable {
        /// An integer or enum of `size` bytes.
        case integer(size: Int, signed: Bool)
        /// A char array of `size` bytes (a NUL-terminated string).
        case string(size: Int)
        /// A fixed array of `count` integers of `size` bytes.
        case array(count: Int, size: Int, signed: Bool)
    }
    /// The member's name.
    public var name: String
    /// Its byte offset.
    public var offset: Int
    /// Its type.
    public var type: MemberType
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
