import VigilEvents

// How comparisons read their field. The fields rules test most are read straight from the
// event: bytes in place, numbers as stored, no FieldValue made (the catalogue's closure returns
// one, and for a file field first copies the whole open payload: a retain and a release of each
// of its strings). Every direct reader reads what `Fields` defines for its field, and
// FieldReaderTests checks each against the catalogue on events of every kind. Any other field
// goes through the catalogue once per event (`FieldSlotReader`, cached in the context).

/// A string field read in place.
enum DirectStringField: Sendable, Equatable {
    /// A field without argument, named by its raw value.
    enum Named: String, Sendable, CaseIterable, DirectField {
        case procName = "proc.name", parentName = "proc.pname", exePath = "proc.exepath", exe = "proc.exe", cwd = "proc.cwd"
        case fdName = "fd.name", fdNameRaw = "fd.nameraw", fdDirectory = "fd.directory", fdFilename = "fd.filename"
        case containerID = "container.id", containerFullID = "container.full_id", containerName = "container.name"
        case containerImage = "container.image", containerRuntime = "container.runtime"
    }
    case named(Named)
    /// `proc.aname[N]` for N >= 1: `ancestorNames[N - 1]` (N = 0 is `proc.name`).
    case ancestorName(Int)

    /// The reader for `field` with its bracket argument, nil when the field is not read directly.
    init?(field: String, argument: String?) {
        if field == "proc.aname", let n = Fields.ancestorNumber(argument) {
            self = n == 0 ? .named(.procName) : .ancestorName(n - 1)
        } else if let named = Named(field: field, argument: argument) {
            self = .named(named)
        } else {
            return nil
        }
    }

    /// `body`'s verdict on the value's bytes; false when the event has no value.
    @inline(__always)
    func test(_ event: Event, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        switch self {
        case .named(let field): return field.test(event, body)
        case .ancestorName(let index): return Self.element(index, of: event.process.ancestorNames, body)
        }
    }

    @inline(__always)
    static func element(_ index: Int, of list: [ByteString], _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        index < list.count ? list[index].bytes.withUnsafeBufferPointer(body) : false
    }
}

extension DirectStringField.Named {
    /// `body`'s verdict on the value's bytes; false when the event has no value.
    @inline(__always)
    func test(_ event: Event, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        switch self {
        case .procName: return event.comm.bytes.withUnsafeBufferPointer(body)
        case .parentName: return DirectStringField.element(0, of: event.process.ancestorNames, body)
        case .exePath:
            guard let path = event.process.executablePath else { return false }
            return path.bytes.withUnsafeBufferPointer(body)
        case .exe:
            guard let arguments = event.process.arguments else { return false }
            return DirectStringField.element(0, of: arguments, body)
        case .cwd:
            guard let cwd = event.process.cwd else { return false }
            return cwd.bytes.withUnsafeBufferPointer(body)
        case .fdName, .fdNameRaw, .fdDirectory, .fdFilename:
            guard case .open(let open) = event.payload else { return false }
            func test(_ value: ByteString) -> Bool { value.bytes.withUnsafeBufferPointer(body) }
            switch self {
            case .fdNameRaw: return test(open.name)
            case .fdDirectory: return test(open.directory)
            case .fdFilename: return test(open.filename)
            default: return test(open.path)
            }
        case .containerID: return event.container.idBytes.bytes.withUnsafeBufferPointer(body)
        case .containerFullID: return event.container.fullIDBytes.bytes.withUnsafeBufferPointer(body)
        case .containerName: return event.container.nameBytes.bytes.withUnsafeBufferPointer(body)
        case .containerImage: return event.container.imageBytes.bytes.withUnsafeBufferPointer(body)
        case .containerRuntime: return event.container.runtimeBytes.bytes.withUnsafeBufferPointer(body)
        }
    }
}

/// An unsigned number field read in place; the raw value is the field's name.
enum DirectUIntField: String, Sendable, CaseIterable, DirectField {
    case pid = "proc.pid", tid = "thread.tid", ppid = "proc.ppid", uid = "user.uid", gid = "group.gid", tty = "proc.tty"
    case loginUID = "user.loginuid", rawFlags = "fd.rawflags", mode = "fd.mode", cgroupID = "proc.cgroup_id"
    case mountNamespace = "proc.mntns", pidNamespace = "proc.pidns", cpu = "evt.cpu"

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

/// A signed number field read in place; the raw value is the field's name.
enum DirectIntField: String, Sendable, CaseIterable, DirectField {
    case fdNum = "fd.num", rawResult = "evt.rawres", dirfd = "fd.dirfd"

    /// The value, nil when the event has none.
    @inline(__always)
    func value(_ event: Event) -> Int64? {
        switch (self, event.payload) {
        case (.fdNum, .open(let open)): return open.result >= 0 ? open.result : -1
        case (.rawResult, .open(let open)): return open.result
        case (.rawResult, .fork(let fork)): return Int64(fork.childPID)
        case (.rawResult, .syscall(let s)): return s.result
        case (.fdNum, .syscall): return event.fd.map { Int64($0.number) } // as the catalogue's fd.num
        case (.dirfd, .open(let open)): return Int64(open.dirfd)
        default: return nil
        }
    }
}

/// A boolean field read in place; the raw value is the field's name.
enum DirectBoolField: String, Sendable, CaseIterable, DirectField {
    case isOpenRead = "evt.is_open_read", isOpenWrite = "evt.is_open_write", isOtherProcess = "fd.is_other_proc"
    case isContainer = "proc.is_container", truncated = "fd.truncated", isThread = "evt.is_thread"

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

/// A number or boolean field read in place, named by its raw value.
protocol DirectField: RawRepresentable<String> {}

extension DirectField {
    /// The reader for `field`, nil when it is not read directly (or has an argument).
    init?(field: String, argument: String?) {
        guard argument == nil else { return nil }
        self.init(rawValue: field)
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
