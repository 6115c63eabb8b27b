import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// What the kernel says about a loaded program (the fields of `struct bpf_prog_info` Vigil
/// checks): read with `BPFProgram.info()`.
public struct BPFProgramInfo: Sendable, Equatable {
    /// The program's kernel id (as `bpftool prog` shows it).
    public var id: UInt32
    /// The kernel program type (`enum bpf_prog_type`).
    public var type: UInt32
    /// The name the kernel keeps (at most 15 bytes of the C function name).
    public var name: String
}

/// What the kernel says about a link (the fields of `struct bpf_link_info` Vigil checks): read
/// with `BPFLink.info()`.
public struct BPFLinkInfo: Sendable, Equatable {
    /// The link's kernel id (as `bpftool link` shows it).
    public var id: UInt32
    /// The link type (`enum bpf_link_type`: 1 raw_tracepoint, 2 tracing, 5 perf_event, ...).
    public var type: UInt32
    /// The id of the program the link holds.
    public var programID: UInt32
}

extension BPFProgram {
    /// The kernel's view of this program (wraps `bpf_obj_get_info_by_fd` on the program's fd;
    /// newer libbpf names it `bpf_prog_get_info_by_fd`).
    public func info() throws -> BPFProgramInfo {
        guard let fd else {
            throw BPFError(.invalidArgument, operation: "bpf_obj_get_info_by_fd", target: "\(object.name)/\(name)",
                           message: "program is not loaded")
        }
        return try BPFProgramInfo(fd: fd, target: "\(object.name)/\(name)")
    }
}

extension BPFProgramInfo {
    /// Reads the info of the program behind `fd` (wraps `bpf_obj_get_info_by_fd`); `target`
    /// names it in errors.
    public init(fd: Int32, target: String) throws {
        var info = bpf_prog_info()
        try objectInfo(fd: fd, &info, target: target)
        let name = withUnsafeBytes(of: info.name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        self.init(id: info.id, type: info.type, name: name)
    }
}

extension BPFLinkInfo {
    /// Reads the info of the link behind `fd` (wraps `bpf_obj_get_info_by_fd`; newer libbpf
    /// names it `bpf_link_get_info_by_fd`); `target` names it in errors. Fails (EBADF) when `fd`
    /// is no longer a link.
    public init(fd: Int32, target: String) throws {
        var info = bpf_link_info()
        try objectInfo(fd: fd, &info, target: target)
        self.init(id: info.id, type: info.type, programID: info.prog_id)
    }
}

extension BPFLink {
    /// The kernel's view of this link (wraps `bpf_obj_get_info_by_fd` on the link's fd); fails
    /// once detached here.
    public func info() throws -> BPFLinkInfo {
        guard let fd else {
            throw BPFError(.invalidArgument, operation: "bpf_obj_get_info_by_fd", target: description, message: "link is detached")
        }
        return try BPFLinkInfo(fd: fd, target: description)
    }
}

/// `bpf_obj_get_info_by_fd` into `info` (zeroed by the caller: pointer fields stay NULL, so
/// the kernel fills only the fixed part).
private func objectInfo<Info>(fd: Int32, _ info: inout Info, target: String) throws {
    var length = UInt32(MemoryLayout<Info>.size)
    let rc = bpf_obj_get_info_by_fd(fd, &info, &length)
    guard rc == 0 else {
        throw BPFError.libbpf(.attach, "bpf_obj_get_info_by_fd", target, "cannot read the kernel object's info (fd \(fd))", code: rc)
    }
}
