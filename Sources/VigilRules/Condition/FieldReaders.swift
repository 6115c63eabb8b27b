import VigilEvents

// How comparisons read their field. The fields rules test most are read straight from the
// event: bytes in place, numbers as stored, no FieldValue made (the catalogue's closure returns
// one, and for a file field first copies the whole open payload: a retain and a release of each
// of its strings). Every direct reader reads what `Fields` defines for its field, and
// FieldReaderTests checks each against the catalogue on events of every kind. Any other field
// goes through the catalogue once per event (`FieldSlotReader`, cached in the context).

/// A string field read in place.
enum DirectStringField: Sendable, Equatable {
    case procName, parentName, ancestorName(Int), exePath, exe, cwd
    case fdName, fdNameRaw, fdDirectory, fdFilename
    case containerID, containerFullID, containerName, containerImage, containerRuntime

    /// The reader for `field` with its bracket argument, nil when the field is not read directly.
    init?(field: String, argument: String?) {
        switch (field, argument) {
        case ("proc.name", nil): self = .procName
        case ("proc.pname", nil): self = .parentName
        case ("proc.aname", let argument?):
            guard let n = Int(argument), n >= 0 else { return nil }
            self = n == 0 ? .procName : .ancestorName(n - 1)
        case ("proc.exepath", nil): self = .exePath
        case ("proc.exe", nil): self = .exe
        case ("proc.cwd", nil): self = .cwd
        case ("fd.name", nil): self = .fdName
        case ("fd.nameraw", nil): self = .fdNameRaw
        case ("fd.directory", nil): self = .fdDirectory
        case ("fd.filename", nil): self = .fdFilename
        case ("container.id", nil): self = .containerID
        case ("container.full_id", nil): self = .containerFullID
        case ("container.name", nil): self = .containerName
        case ("container.image", nil): self = .containerImage
        case ("container.runtime", nil): self = .containerRuntime
        default: return nil
        }
    }

    /// `body`'s verdict on the value's bytes; false when the event has no value.
    @inline(__always)
    func test(_ event: Event, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        switch self {
        case .procName: return event.comm.bytes.withUnsafeBufferPointer(body)
        case .parentName: return Self.element(0, of: event.process.ancestorNames, body)
        case .ancestorName(let index): return Self.element(index, of: event.process.ancestorNames, body)
        case .exePath:
            guard let path = event.process.executablePath else { return false }
            return path.bytes.withUnsafeBufferPointer(body)
        case .exe:
            guard let arguments = event.process.arguments else { return false }
            return Self.element(0, of: arguments, body)
        case .cwd:
            guard let cwd = event.process.cwd else { return false }
            return cwd.bytes.withUnsafeBufferPointer(body)
        case .fdName:
            guard case .open(let open) = event.payload else { return false }
            return open.path.bytes.withUnsafeBufferPointer(body)
        case .fdNameRaw:
            guard case .open(let open) = event.payload else { return false }
            return open.name.bytes.withUnsafeBufferPointer(body)
        case .fdDirectory:
            guard case .open(let open) = event.payload else { return false }
            return open.directory.bytes.withUnsafeBufferPointer(body)
        case .fdFilename:
            guard case .open(let open) = event.payload else { return false }
            return open.filename.bytes.withUnsafeBufferPointer(body)
        case .containerID: return event.container.idBytes.bytes.withUnsafeBufferPointer(body)
        case .containerFullID: return event.container.fullIDBytes.bytes.withUnsafeBufferPointer(body)
        case .containerName: return event.container.nameBytes.bytes.withUnsafeBufferPointer(body)
        case .containerImage: return event.container.imageBytes.bytes.withUnsafeBufferPointer(body)
        case .containerRuntime: return event.container.runtimeBytes.bytes.withUnsafeBufferPointer(body)
        }
    }

    @inline(__always)
    private static func element(_ index: Int, of list: [ByteString], _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        index < list.count ? list[index].bytes.withUnsafeBufferPointer(body) : false
    }
}

/// An unsigned number field read in place.
enum DirectUIntField: Sendable, Equatable, CaseIterable {
    case pid, tid, ppid, uid, gid, tty, loginUID, rawFlags, mode, cgroupID, mountNamespace, pidNamespace, cpu

    /// The reader for `field`, nil when it is not read directly.
    init?(field: String, argument: String?) {
        guard argument == nil else { return nil }
        switch field {
        case "proc.pid": self = .pid
        case "thread.tid": self = .tid
        case "proc.ppid": self = .ppid
        case "user.uid": self = .uid
        case "group.gid": self = .gid
        case "proc.tty": self = .tty
        case "user.loginuid": self = .loginUID
        case "fd.rawflags": self = .rawFlags
        case "fd.mode": self = .mode
        case "proc.cgroup_id": self = .cgroupID
        case "proc.mntns": self = .mountNamespace
        case "proc.pidns": self = .pidNamespace
        case "evt.cpu": self = .cpu
        default: return nil
        }
    }

    /// The value, nil when the event has none.
    @inline(__always)
    func value(_ event: Event) -> UInt64? {
        switch self {
        case .pid: return UInt64(event.pid)
        case .tid: return UInt64(event.tid)
        case .ppid: return UInt64(event.ppid)
        case .uid: return UInt64(event.uid)
        case .gid: return UInt64(event.gid)
        case .tty: return event.process.ttyNumber.map { UInt64($0) }
        case .loginUID: return event.process.loginUID.map { UInt64($0) }
        case .rawFlags:
            guard case .open(let open) = event.payload else { return nil }
            return UInt64(open.flags)
        case .mode:
            guard case .open(let open) = event.payload else { return nil }
            return UInt64(open.mode)
        case .cgroupID: return event.cgroupID
        case .mountNamespace: return UInt64(event.mountNamespace)
        case .pidNamespace: return UInt64(event.pidNamespace)
        case .cpu: return UInt64(event.cpu)
        }
    }
}

/// A signed number field read in place.
enum DirectIntField: Sendable, Equatable, CaseIterable {
    case fdNum, rawResult, dirfd

    /// The reader for `field`, nil when it is not read directly.
    init?(field: String, argument: String?) {
        guard argument == nil else { return nil }
        switch field {
        case "fd.num": self = .fdNum
        case "evt.rawres": self = .rawResult
        case "fd.dirfd": self = .dirfd
        default: return nil
        }
    }

    /// The value, nil when the event has none.
    @inline(__always)
    func value(_ event: Event) -> Int64? {
        switch (self, event.payload) {
        case (.fdNum, .open(let open)): return open.result >= 0 ? open.result : -1
        case (.rawResult, .open(let open)): return open.result
        case (.rawResult, .fork(let fork)): return Int64(fork.childPID)
        case (.dirfd, .open(let open)): return Int64(open.dirfd)
        default: return nil
        }
    }
}

/// A boolean field read in place.
enum DirectBoolField: Sendable, Equatable, CaseIterable {
    case isOpenRead, isOpenWrite, isOtherProcess, isContainer, truncated, isThread

    /// The reader for `field`, nil when it is not read directly.
    init?(field: String, argument: String?) {
        guard argument == nil else { return nil }
        switch field {
        case "evt.is_open_read": self = .isOpenRead
        case "evt.is_open_write": self = .isOpenWrite
        case "fd.is_other_proc": self = .isOtherProcess
        case "proc.is_container": self = .isContainer
        case "fd.truncated": self = .truncated
        case "evt.is_thread": self = .isThread
        default: return nil
        }
    }

    /// The value, nil when the event has none.
    @inline(__always)
    func value(_ event: Event) -> Bool? {
        switch (self, event.payload) {
        case (.isOpenRead, .open(let open)): return open.flags & 3 != 1
        case (.isOpenWrite, .open(let open)): return open.flags & 3 != 0
        case (.isOtherProcess, .open(let open)): return PathParts.otherProcessPID(open.path, own: event.pid) != nil
        case (.isContainer, _): return event.container.isContainer
        case (.truncated, .open(let open)): return open.truncated
        case (.isThread, .fork(let fork)): return fork.isThread
        default: return nil
        }
    }
}

/// A field read through the catalogue (with its argument and transformers applied), once per
/// event: the value is kept in the evaluation context's slot for the other comparisons.
final class FieldSlotReader: Sendable {
    let extract: @Sendable (Event, String?) -> FieldValue?
    let argument: String?
    let transformers: [FieldTransformer]

    init(extract: @escaping @Sendable (Event, String?) -> FieldValue?, argument: String?, transformers: [FieldTransformer]) {
        self.extract = extract
        self.argument = argument
        self.transformers = transformers
    }

    /// The value for `event`, transformers applied (to a string, or to each string of a list).
    func read(_ event: Event) -> FieldValue? {
        guard let value = extract(event, argument) else { return nil }
        guard !transformers.isEmpty else { return value }
        switch value {
        case .string(let s): return .string(transformers.reduce(s) { $1.apply($0) })
        case .strings(let list): return .strings(list.map { s in transformers.reduce(s) { $1.apply($0) } })
        default: return value
        }
    }
}
