import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// One map of a `BPFObject` (wraps `struct bpf_map`). Keeps its object alive. Use `TypedMap`
/// or `PerCPUMap` for element access.
public struct BPFMap {
    /// The object the map belongs to.
    public let object: BPFObject
    let handle: OpaquePointer

    init(object: BPFObject, handle: OpaquePointer) {
        self.object = object
        self.handle = handle
    }

    /// The map's name; internal maps carry the object prefix, e.g. `selftes.rodata` (wraps `bpf_map__name`).
    public var name: String { String(cString: bpf_map__name(handle)) }
    /// The kernel map type (wraps `bpf_map__type`).
    public var type: bpf_map_type { bpf_map__type(handle) }
    /// Key size in bytes (wraps `bpf_map__key_size`).
    public var keySize: Int { Int(bpf_map__key_size(handle)) }
    /// Value size in bytes (wraps `bpf_map__value_size`).
    public var valueSize: Int { Int(bpf_map__value_size(handle)) }
    /// Capacity; for a ring buffer its size in bytes (wraps `bpf_map__max_entries`).
    public var maxEntries: Int { Int(bpf_map__max_entries(handle)) }
    /// The map's fd once the object is loaded, or nil (wraps `bpf_map__fd`).
    public var fd: Int32? {
        let fd = bpf_map__fd(handle)
        return fd >= 0 ? fd : nil
    }
    /// Whether libbpf made this map for a data section (.rodata, .data, .bss, .kconfig).
    public var isInternal: Bool { bpf_map__is_internal(handle) }
    /// Whether each CPU has its own copy of a value (per-CPU hash, array, LRU hash).
    public var isPerCPU: Bool {
        [BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH].contains(type)
    }

    /// Sets the capacity before load; for a ring buffer, a power-of-two multiple of the page
    /// size (wraps `bpf_map__set_max_entries`).
    public func setMaxEntries(_ entries: Int) throws {
        let rc = bpf_map__set_max_entries(handle, UInt32(entries))
        guard rc == 0 else {
            throw BPFError.libbpf(.map, "bpf_map__set_max_entries", "map \(name)", "cannot set max entries to \(entries)", code: rc)
        }
    }

    /// Makes this map, before load, use the existing kernel map `fd` instead of creating its own:
    /// two objects then share one ring or one filter map (wraps `bpf_map__reuse_fd`).
    public func reuse(fd: Int32) throws {
        let rc = bpf_map__reuse_fd(handle, fd)
        guard rc == 0 else {
            throw BPFError.libbpf(.map, "bpf_map__reuse_fd", "map \(name)", "cannot reuse map fd \(fd)", code: rc)
        }
    }

    /// Creates, before load, a kernel map with this map's definition (type, key and value size,
    /// capacity, flags) for several objects to share through `reuse(fd:)`, so that they can load
    /// at once instead of one after another. The caller owns the returned fd (each object that
    /// reuses it holds a duplicate). Wraps `bpf_map_create`.
    public func createForSharing() throws -> Int32 {
        var options = bpf_map_create_opts()
        options.sz = MemoryLayout<bpf_map_create_opts>.size
        options.map_flags = bpf_map__map_flags(handle)
        let fd = bpf_map_create(type, name, UInt32(keySize), UInt32(valueSize), UInt32(maxEntries), &options)
        guard fd >= 0 else {
            throw BPFError.libbpf(.map, "bpf_map_create", "map \(name)", "cannot create the map to share", code: fd)
        }
        return fd
    }

    func requireFD(_ operation: String) throws -> Int32 {
        guard let fd else {
            throw BPFError(.invalidArgument, operation: operation, target: "map \(name)",
                           message: "the object is not loaded")
        }
        return fd
    }
}

/// How `update` treats an existing or missing key (BPF_ANY, BPF_NOEXIST, BPF_EXIST).
public enum MapUpdate: UInt64, Sendable {
    /// Create or replace (BPF_ANY).
    case any = 0
    /// Create only; fails with EEXIST when present (BPF_NOEXIST).
    case createOnly = 1
    /// Replace only; fails with ENOENT when absent (BPF_EXIST).
    case replaceOnly = 2
}

/// Typed access to a hash, array or LRU map whose key and value are plain Swift values with the
/// same layout as the C types (wraps `bpf_map_lookup_elem`, `bpf_map_update_elem`,
/// `bpf_map_delete_elem`, `bpf_map_get_next_key`).
public struct TypedMap<Key: BitwiseCopyable, Value: BitwiseCopyable> {
    /// The underlying map.
    public let map: BPFMap

    /// Checks that `Key` and `Value` match the map's key and value sizes and that the map is
    /// not per-CPU (use `PerCPUMap`).
    public init(_ map: BPFMap) throws {
        guard !map.isPerCPU else {
            throw BPFError(.invalidArgument, operation: "TypedMap", target: "map \(map.name)",
                           message: "map is per-CPU: use PerCPUMap")
        }
        try checkLayout(map, key: Key.self, value: Value.self)
        self.map = map
    }

    /// The value for `key`, or nil when absent (wraps `bpf_map_lookup_elem`).
    public func lookup(_ key: Key) throws -> Value? {
        let fd = try map.requireFD("bpf_map_lookup_elem")
        var key = key
        return try withUnsafeTemporaryAllocation(of: Value.self, capacity: 1) { value in
            let rc = bpf_map_lookup_elem(fd, &key, value.baseAddress!)
            if rc == 0 { return value[0] }
            let err = clibbpf_errno()
            if err == ENOENT { return nil }
            throw BPFError(.map, operation: "bpf_map_lookup_elem", target: "map \(map.name)", errno: err, message: "lookup failed")
        }
    }

    /// Stores `value` under `key` (wraps `bpf_map_update_elem`).
    public func update(_ key: Key, _ value: Value, _ mode: MapUpdate = .any) throws {
        let fd = try map.requireFD("bpf_map_update_elem")
        var key = key, value = value
        guard bpf_map_update_elem(fd, &key, &value, mode.rawValue) == 0 else {
            throw BPFError.libbpf(.map, "bpf_map_update_elem", "map \(map.name)", "update failed")
        }
    }

    /// Removes `key`; returns false when it was absent (wraps `bpf_map_delete_elem`). Array
    /// maps cannot delete (EINVAL).
    @discardableResult
    public func delete(_ key: Key) throws -> Bool {
        let fd = try map.requireFD("bpf_map_delete_elem")
        var key = key
        if bpf_map_delete_elem(fd, &key) == 0 { return true }
        let err = clibbpf_errno()
        if err == ENOENT { return false }
        throw BPFError(.map, operation: "bpf_map_delete_elem", target: "map \(map.name)", errno: err, message: "delete failed")
    }

    /// Every key, in the kernel's iteration order (wraps `bpf_map_get_next_key`).
    public func keys() throws -> [Key] {
        try mapKeys(map, Key.self)
    }

    /// Every key with its value. Entries deleted during the walk are skipped.
    public func entries() throws -> [(key: Key, value: Value)] {
        try keys().compactMap { key in try lookup(key).map { (key, $0) } }
    }
}

/// Typed access to a per-CPU map: one value per possible CPU (wraps the same calls as
/// `TypedMap`; values are laid out every round_up(value_size, 8) bytes).
public struct PerCPUMap<Key: BitwiseCopyable, Value: BitwiseCopyable> {
    /// The underlying map.
    public let map: BPFMap
    /// Number of possible CPUs (wraps `libbpf_num_possible_cpus`).
    public let cpuCount: Int
    private let stride: Int

    /// Checks the sizes and that the map is per-CPU.
    public init(_ map: BPFMap) throws {
        guard map.isPerCPU else {
            throw BPFError(.invalidArgument, operation: "PerCPUMap", target: "map \(map.name)",
                           message: "map is not per-CPU: use TypedMap")
        }
        try checkLayout(map, key: Key.self, value: Value.self)
        let cpus = libbpf_num_possible_cpus()
        guard cpus > 0 else {
            throw BPFError.libbpf(.system, "libbpf_num_possible_cpus", "map \(map.name)", "cannot count CPUs", code: cpus)
        }
        self.map = map
        self.cpuCount = Int(cpus)
        self.stride = (MemoryLayout<Value>.size + 7) & ~7
    }

    /// One value per CPU for `key`, or nil when absent (wraps `bpf_map_lookup_elem`).
    public func lookup(_ key: Key) throws -> [Value]? {
        let fd = try map.requireFD("bpf_map_lookup_elem")
        var key = key
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: stride * cpuCount, alignment: 8)
        defer { buffer.deallocate() }
        guard bpf_map_lookup_elem(fd, &key, buffer.baseAddress!) == 0 else {
            let err = clibbpf_errno()
            if err == ENOENT { return nil }
            throw BPFError(.map, operation: "bpf_map_lookup_elem", target: "map \(map.name)", errno: err, message: "lookup failed")
        }
        return (0..<cpuCount).map { buffer.loadUnaligned(fromByteOffset: $0 * stride, as: Value.self) }
    }

    /// Stores one value per CPU (`values.count` must be `cpuCount`) (wraps `bpf_map_update_elem`).
    public func update(_ key: Key, _ values: [Value], _ mode: MapUpdate = .any) throws {
        let fd = try map.requireFD("bpf_map_update_elem")
        guard values.count == cpuCount else {
            throw BPFError(.invalidArgument, operation: "bpf_map_update_elem", target: "map \(map.name)",
                           message: "\(values.count) values given for \(cpuCount) CPUs")
        }
        var key = key
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: stride * cpuCount, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        for (cpu, value) in values.enumerated() { buffer.storeBytes(of: value, toByteOffset: cpu * stride, as: Value.self) }
        guard bpf_map_update_elem(fd, &key, buffer.baseAddress!, mode.rawValue) == 0 else {
            throw BPFError.libbpf(.map, "bpf_map_update_elem", "map \(map.name)", "update failed")
        }
    }

    /// Every key (wraps `bpf_map_get_next_key`).
    public func keys() throws -> [Key] {
        try mapKeys(map, Key.self)
    }
}

extension PerCPUMap where Value: FixedWidthInteger {
    /// The sum over all CPUs of the value for `key` (0 when absent): the usual way to read
    /// per-CPU counters.
    public func sum(_ key: Key) throws -> Value {
        try lookup(key)?.reduce(0, &+) ?? 0
    }
}

private func checkLayout<K, V>(_ map: BPFMap, key: K.Type, value: V.Type) throws {
    guard MemoryLayout<K>.size == map.keySize, MemoryLayout<V>.size == map.valueSize else {
        throw BPFError(.invalidArgument, operation: "typed map", target: "map \(map.name)",
                       message: "map has key \(map.keySize) B / value \(map.valueSize) B; Swift types have key \(MemoryLayout<K>.size) B / value \(MemoryLayout<V>.size) B")
    }
}

private func mapKeys<K: BitwiseCopyable>(_ map: BPFMap, _: K.Type) throws -> [K] {
    let fd = try map.requireFD("bpf_map_get_next_key")
    var keys: [K] = []
    return try withUnsafeTemporaryAllocation(of: K.self, capacity: 2) { pair in
        let previous = pair.baseAddress!, next = pair.baseAddress! + 1
        var rc = bpf_map_get_next_key(fd, nil, next)
        while rc == 0 {
            keys.append(next.pointee)
            previous.pointee = next.pointee
            rc = bpf_map_get_next_key(fd, previous, next)
        }
        let err = clibbpf_errno()
        guard err == ENOENT else {
            throw BPFError(.map, operation: "bpf_map_get_next_key", target: "map \(map.name)", errno: err, message: "iteration failed")
        }
        return keys
    }
}

/// Waiting for BPF programs that are running.
public enum BPFPrograms {
    /// Returns once every BPF program that was running when called has returned: an RCU grace
    /// period, waited for with `membarrier(MEMBARRIER_CMD_GLOBAL)` (synchronize_rcu). Use it
    /// between map updates that programs must not see half done. Where membarrier is missing,
    /// sleeps 100 ms (a grace period is a few milliseconds).
    public static func waitForRunningPrograms() {
        if clibbpf_synchronize_rcu() != 0 { usleep(100_000) }
    }
}

extension BPFMap {
    /// Every entry as raw bytes, key to value (wraps `bpf_map_get_next_key` and
    /// `bpf_map_lookup_elem`): for comparing a map with what was written to it, whatever its
    /// types. Not for per-CPU maps (their values are per CPU). Entries deleted during the walk
    /// are skipped.
    public func rawContents() throws -> [[UInt8]: [UInt8]] {
        guard !isPerCPU else {
            throw BPFError(.invalidArgument, operation: "rawContents", target: "map \(name)", message: "map is per-CPU")
        }
        let fd = try requireFD("bpf_map_get_next_key")
        var contents: [[UInt8]: [UInt8]] = [:]
        var previous: [UInt8]? = nil
        var next = [UInt8](repeating: 0, count: keySize), value = [UInt8](repeating: 0, count: valueSize)
        while true {
            let rc = previous.map { prev in prev.withUnsafeBytes { bpf_map_get_next_key(fd, $0.baseAddress, &next) } }
                ?? bpf_map_get_next_key(fd, nil, &next)
            guard rc == 0 else {
                let err = clibbpf_errno()
                guard err == ENOENT else {
                    throw BPFError(.map, operation: "bpf_map_get_next_key", target: "map \(name)", errno: err, message: "iteration failed")
                }
                return contents
            }
            if bpf_map_lookup_elem(fd, next, &value) == 0 {
                contents[next] = value
            } else if clibbpf_errno() != ENOENT {
                throw BPFError.libbpf(.map, "bpf_map_lookup_elem", "map \(name)", "lookup failed")
            }
            previous = next
        }
    }
}
