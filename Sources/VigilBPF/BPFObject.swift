import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// An eBPF ELF object opened by libbpf: its programs, maps and global variables, before and
/// after loading into the kernel (wraps `struct bpf_object`).
///
/// Open, adjust (autoload, map sizes, `const volatile` globals), `load()`, then attach programs.
/// Closing (deinit) releases every program, map and BTF fd of the object; links keep their
/// object alive. One thread at a time drives an object.
public final class BPFObject {
    let handle: OpaquePointer
    /// The object's name (for messages and map-name prefixes).
    public let name: String
    /// Owned copy of the ELF bytes when opened from a Swift buffer (libbpf reads them lazily).
    private let ownedBytes: UnsafeMutableRawBufferPointer?
    /// Whether `load()` succeeded.
    public private(set) var isLoaded = false

    /// Opens an object from ELF bytes, named `name` (wraps `bpf_object__open_mem`).
    ///
    /// - Throws: `BPFError` of kind `.open` naming the object when the bytes are not a valid
    ///   BPF ELF object.
    public convenience init(bytes: some Collection<UInt8>, name: String) throws {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        _ = copy.initializeMemory(as: UInt8.self, from: bytes)
        do {
            try self.init(unowned: UnsafeRawBufferPointer(copy), name: name, owned: copy)
        } catch {
            copy.deallocate()
            throw error
        }
    }

    /// Opens an object from bytes that outlive it, such as a static embedded object, without
    /// copying (wraps `bpf_object__open_mem`).
    public convenience init(staticBytes: UnsafeRawBufferPointer, name: String) throws {
        try self.init(unowned: staticBytes, name: name, owned: nil)
    }

    private init(unowned bytes: UnsafeRawBufferPointer, name: String,
                 owned: UnsafeMutableRawBufferPointer?) throws {
        self.name = name
        self.ownedBytes = owned
        var opts = bpf_object_open_opts()
        opts.sz = MemoryLayout<bpf_object_open_opts>.size
        let object = name.withCString { cname -> OpaquePointer? in
            opts.object_name = cname
            return bpf_object__open_mem(bytes.baseAddress, bytes.count, &opts)
        }
        guard let object, libbpf_get_error(UnsafeRawPointer(object)) == 0 else {
            throw BPFError.libbpf(.open, "bpf_object__open_mem", name,
                                  "not a valid BPF ELF object (\(bytes.count) bytes)")
        }
        handle = object
    }

    /// Opens an object from an ELF file (wraps `bpf_object__open_file`).
    public init(path: String, name: String? = nil) throws {
        let objectName = name ?? String(path.split(separator: "/").last ?? Substring(path))
        self.name = objectName
        self.ownedBytes = nil
        var opts = bpf_object_open_opts()
        opts.sz = MemoryLayout<bpf_object_open_opts>.size
        let object = objectName.withCString { cname -> OpaquePointer? in
            opts.object_name = cname
            return bpf_object__open_file(path, &opts)
        }
        guard let object, libbpf_get_error(UnsafeRawPointer(object)) == 0 else {
            throw BPFError.libbpf(.open, "bpf_object__open_file", path, "cannot open BPF object file")
        }
        handle = object
    }

    deinit {
        bpf_object__close(handle)
        ownedBytes?.deallocate()
    }

    // MARK: Programs and maps

    /// Every program in the object, in ELF order (wraps `bpf_object__next_program`).
    public var programs: [BPFProgram] {
        var result: [BPFProgram] = []
        var prog = bpf_object__next_program(handle, nil)
        while let p = prog {
            result.append(BPFProgram(object: self, handle: p))
            prog = bpf_object__next_program(handle, p)
        }
        return result
    }

    /// Every map in the object, including the internal .rodata/.data/.bss maps (wraps
    /// `bpf_object__next_map`).
    public var maps: [BPFMap] {
        var result: [BPFMap] = []
        var map = bpf_object__next_map(handle, nil)
        while let m = map {
            result.append(BPFMap(object: self, handle: m))
            map = bpf_object__next_map(handle, m)
        }
        return result
    }

    /// The program with this function name (wraps `bpf_object__find_program_by_name`).
    /// - Throws: `.notFound` listing the programs the object has.
    public func program(named name: String) throws -> BPFProgram {
        guard let p = bpf_object__find_program_by_name(handle, name) else {
            let known = programs.map(\.name).joined(separator: ", ")
            throw BPFError(.notFound, operation: "bpf_object__find_program_by_name", target: self.name,
                           errno: ENOENT, message: "no program named '\(name)' (programs: \(known))")
        }
        return BPFProgram(object: self, handle: p)
    }

    /// The map with this name (wraps `bpf_object__find_map_by_name`).
    /// - Throws: `.notFound` listing the maps the object has.
    public func map(named name: String) throws -> BPFMap {
        guard let m = bpf_object__find_map_by_name(handle, name) else {
            let known = maps.map(\.name).joined(separator: ", ")
            throw BPFError(.notFound, operation: "bpf_object__find_map_by_name", target: self.name,
                           errno: ENOENT, message: "no map named '\(name)' (maps: \(known))")
        }
        return BPFMap(object: self, handle: m)
    }

    // MARK: Globals

    /// Sets a global variable (`const volatile` in .rodata, or .data/.bss) before `load()`, found
    /// by name through the object's BTF (wraps `bpf_map__initial_value`).
    ///
    /// Setting `const volatile` values before load lets the verifier remove code they disable.
    /// - Throws: `.notFound` when no such variable exists, `.invalidArgument` when the size of
    ///   `T` differs from the variable's or the object is already loaded.
    public func setGlobal<T: BitwiseCopyable>(_ variable: String, to value: T) throws {
        guard !isLoaded else {
            throw BPFError(.invalidArgument, operation: "bpf_map__initial_value", target: "\(name)/\(variable)",
                           message: "globals must be set before load()")
        }
        let location = try globalLocation(variable)
        guard location.size == MemoryLayout<T>.size else {
            throw BPFError(.invalidArgument, operation: "bpf_map__initial_value", target: "\(name)/\(variable)",
                           message: "variable has \(location.size) bytes, value has \(MemoryLayout<T>.size)")
        }
        var size = 0
        guard let data = bpf_map__initial_value(location.map, &size), location.offset + location.size <= size else {
            throw BPFError.libbpf(.map, "bpf_map__initial_value", "\(name)/\(variable)", "no initial value area")
        }
        UnsafeMutableRawPointer(mutating: data).storeBytes(of: value, toByteOffset: location.offset, as: T.self)
    }

    /// Reads a global variable's initial (pre-load) value.
    public func global<T: BitwiseCopyable>(_ variable: String, as type: T.Type = T.self) throws -> T {
        let location = try globalLocation(variable)
        guard location.size == MemoryLayout<T>.size else {
            throw BPFError(.invalidArgument, operation: "bpf_map__initial_value", target: "\(name)/\(variable)",
                           message: "variable has \(location.size) bytes, type has \(MemoryLayout<T>.size)")
        }
        var size = 0
        guard let data = bpf_map__initial_value(location.map, &size) else {
            throw BPFError.libbpf(.map, "bpf_map__initial_value", "\(name)/\(variable)", "no initial value area")
        }
        return data.loadUnaligned(fromByteOffset: location.offset, as: T.self)
    }

    private struct GlobalLocation { var map: OpaquePointer; var offset: Int; var size: Int }

    /// Finds a global variable in the object's BTF data sections and the internal map holding it.
    private func globalLocation(_ variable: String) throws -> GlobalLocation {
        guard let btf = bpf_object__btf(handle) else {
            throw BPFError(.notFound, operation: "bpf_object__btf", target: name, errno: ENOENT,
                           message: "object has no BTF, so globals cannot be found by name")
        }
        let count = btf__type_cnt(btf)
        for id in 1..<count {
            guard let type = btf__type_by_id(btf, id), btf_is_datasec(type) else { continue }
            let section = String(cString: btf__name_by_offset(btf, type.pointee.name_off))
            guard let infos = btf_var_secinfos(type) else { continue }
            for i in 0..<Int(btf_vlen(type)) {
                let info = infos[i]
                guard let varType = btf__type_by_id(btf, info.type),
                      String(cString: btf__name_by_offset(btf, varType.pointee.name_off)) == variable else { continue }
                // libbpf finds internal maps by their section name (".rodata", ".bss", ...).
                guard let map = bpf_object__find_map_by_name(handle, section) else {
                    throw BPFError(.notFound, operation: "bpf_object__find_map_by_name", target: "\(name)/\(variable)",
                                   errno: ENOENT, message: "no internal map for section \(section)")
                }
                return GlobalLocation(map: map, offset: Int(info.offset), size: Int(info.size))
            }
        }
        throw BPFError(.notFound, operation: "btf__find_by_name", target: name, errno: ENOENT,
                       message: "no global variable named '\(variable)'")
    }

    // MARK: Load

    /// Size of the verifier log buffer given to each program at load time.
    public static let verifierLogSize = 1 << 22

    /// Writes a refused program's whole verifier log to `$VIGIL_VERIFIER_LOG_DIR/NAME.log` when
    /// that variable names a directory (errors carry only its last lines): for finding why an
    /// older kernel's verifier refuses what a newer one accepts.
    static func keepVerifierLog(_ log: UnsafePointer<CChar>, of name: String) {
        guard let directory = getenv("VIGIL_VERIFIER_LOG_DIR").map({ String(cString: $0) }), !directory.isEmpty else { return }
        let fd = open("\(directory)/\(name).log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = write(fd, log, strlen(log))
        close(fd)
    }

    /// Loads every program whose autoload is on, and creates the maps (wraps `bpf_object__load`).
    ///
    /// - Throws: `.verifier` naming the refused program with the verifier's log, or `.load`.
    public func load() throws {
        let autoloaded = programs.filter(\.autoload)
        var logs: [(BPFProgram, UnsafeMutablePointer<CChar>)] = []
        defer { for (_, log) in logs { log.deallocate() } }
        for program in autoloaded {
            let log = UnsafeMutablePointer<CChar>.allocate(capacity: Self.verifierLogSize)
            log[0] = 0
            logs.append((program, log))
            bpf_program__set_log_buf(program.handle, log, Self.verifierLogSize)
        }
        var rc: Int32 = 0
        let (_, warnings) = LibbpfLog.capturingWarnings { rc = bpf_object__load(handle) }
        for program in autoloaded { bpf_program__set_log_buf(program.handle, nil, 0) }
        guard rc == 0 else {
            // On failure libbpf closes every fd; the refused program is the one whose verifier
            // log is filled, or else the one libbpf's warnings name ("prog 'NAME': ...").
            let refused = logs.first(where: { $0.1[0] != 0 })
                ?? logs.first(where: { entry in warnings.contains { $0.contains("prog '\(entry.0.name)'") } })
            if let (program, log) = refused {
                let hasLog = log[0] != 0
                if hasLog { Self.keepVerifierLog(log, of: "\(name)-\(program.name)") }
                let said = warnings.last { $0.contains("prog '\(program.name)'") }
                throw BPFError(hasLog ? .verifier : .load, operation: "bpf_object__load", target: "\(name)/\(program.name)",
                               errno: -rc, message: hasLog ? "the verifier refused program '\(program.name)'"
                                   : "the kernel refused program '\(program.name)' (\(program.section))\(said.map { ": libbpf: \($0)" } ?? "")",
                               program: program.name, verifierLog: hasLog ? String(cString: log) : nil)
            }
            throw BPFError(.load, operation: "bpf_object__load", target: name, errno: -rc,
                           message: "loading the object failed\(warnings.last.map { ": libbpf: \($0)" } ?? "")")
        }
        isLoaded = true
    }
}
