import Synchronization
import CVigilABI

/// One event from a sensor: the common header fields, the kind-specific payload, and what
/// enrichment adds (process ancestry, user, container).
public struct Event: Sendable {
    /// The kind (kept with the payload: rules read it per event).
    public private(set) var kind: EventKind
    /// A syscall event's row in `Syscalls.all`, -1 for another kind: kept with the payload, as
    /// `kind` is (`syscallIndex`).
    private var syscallRow: Int32
    /// Nanoseconds since boot (CLOCK_BOOTTIME), as the kernel stamped it.
    public var bootTimeNs: UInt64
    /// Nanoseconds since the Unix epoch (boot time converted with the clock offset at start).
    public var timeNs: UInt64
    /// The inode of the task's cgroup v2 directory.
    public var cgroupID: UInt64
    /// Process id (thread group id), thread id, parent's process id.
    public var pid: UInt32, tid: UInt32, ppid: UInt32
    /// Real user and group id.
    public var uid: UInt32, gid: UInt32
    /// CPU the event happened on.
    public var cpu: UInt32
    /// Mount and pid namespace inode numbers.
    public var mountNamespace: UInt32, pidNamespace: UInt32
    /// The task's command name (at most 15 bytes).
    public var comm: ByteString
    /// The kind-specific part.
    public var payload: Payload { didSet { (kind, syscallRow) = (payload.kind, Self.syscallRow(payload)) } }

    /// A syscall event's row in `Syscalls.all`, nil for another kind. Kept, not read from the
    /// payload: reading a field of the payload enum copies it (~240 bytes) to take it apart.
    @inline(__always)
    public var syscallIndex: Int? { syscallRow < 0 ? nil : Int(syscallRow) }

    /// Calls `body` with this syscall event's payload, taken out of the enum once and lent by
    /// pointer to every writer that reads it (each match would copy it); nil for other kinds.
    @inline(__always)
    public func withSyscallPayload<R>(_ body: (UnsafePointer<Payload.Syscall>?) throws -> R) rethrows -> R {
        if kind == .syscall, case .syscall(let syscall) = payload { return try withUnsafePointer(to: syscall, body) }
        return try body(nil)
    }

    private static func syscallRow(_ payload: Payload) -> Int32 {
        if case .syscall(let s) = payload { return Int32(truncatingIfNeeded: s.index) }
        return -1
    }
    /// Added by enrichment: the process as the process table knows it.
    public var process = ProcessContext()
    /// Added by enrichment: the container the task runs in (`host` when none).
    public var container = ContainerContext.host
    /// Added by enrichment (the fd table): the fd a syscall event acts on, or the fd it created
    /// (an open's, a socket's, a dup's new fd; a pipe's read end); nil when it has none or the
    /// table does not know it.
    /// Set with `setFD`, which keeps `hasFD` and `hasSocketFD` with it.
    public private(set) var fd: FDInfo? = nil
    /// Whether `fd` is set, and whether it is a socket's: kept with it by `setFD`, for the checks
    /// made per event that would otherwise copy the entry to look.
    public private(set) var hasFD = false, hasSocketFD = false

    /// Sets `fd` and the flags that describe it (a setter method rather than an observer: an
    /// observer copied the entry on every assignment, ~4% of the consumer's time).
    /// Tested by pattern, not `!= nil`: FDInfo and SocketInfo are Equatable, and `!=` on their
    /// optionals copied both sides into a tuple through value witnesses (~4% of the consumer).
    public mutating func setFD(_ entry: FDInfo?) {
        if case .none = entry { hasFD = false } else { hasFD = true }
        hasSocketFD = entry?.hasSocket ?? false
        fd = entry
    }
    /// Added by enrichment (the fd table): whether this event changed the name of the fd it acts
    /// on (a connect naming its socket, a datagram to a new destination on an unconnected one).
    public var fdNameChanged = false
    /// Added by enrichment (`DNSNames`): the DNS message this event sent or received (a syscall
    /// on a socket to or from port 53 whose buffer holds one).
    public var dns: DNSMessage? = nil
    /// Added by enrichment (`DNSNames`): the name a DNS answer the host saw gave the local address
    /// of the event's socket (`fd.socket`), nil when none is known (fd.lip.name).
    public var localIPName: String? = nil
    /// Likewise for the socket's remote address (fd.rip.name).
    public var remoteIPName: String? = nil

    /// Creates an event (decoders and tests).
    public init(bootTimeNs: UInt64, timeNs: UInt64, cgroupID: UInt64, pid: UInt32, tid: UInt32, ppid: UInt32,
                uid: UInt32, gid: UInt32, cpu: UInt32, mountNamespace: UInt32, pidNamespace: UInt32,
                comm: ByteString, payload: Payload) {
        self.bootTimeNs = bootTimeNs
        self.timeNs = timeNs
        self.cgroupID = cgroupID
        self.pid = pid; self.tid = tid; self.ppid = ppid
        self.uid = uid; self.gid = gid; self.cpu = cpu
        self.mountNamespace = mountNamespace; self.pidNamespace = pidNamespace
        self.comm = comm
        self.payload = payload
        self.kind = payload.kind
        syscallRow = Self.syscallRow(payload)
    }
}

/// The kind-specific part of an event.
public enum Payload: Sendable {
    case exec(Exec)
    case fork(Fork)
    case exit(Exit)
    case open(Open)
    /// Any syscall of the table, entry and exit paired (the syscalls sensor).
    case syscall(Syscall)
    /// A TCP connection opened or closed (the conn sensor; Connection.swift).
    case conn(Conn)
    /// The kernel dropped a TCP packet (the conn sensor).
    case tcpdrop(TCPDrop)
    /// A watched file changed (made in userspace by the daemon's FIMMonitor; FileIntegrity.swift).
    case fim(FIM)
    /// A line an interactive bash read (the shell sensor; ShellLine.swift).
    case shell(ShellLine)
    /// A record of a user-supplied program bundle (ProgramRecord.swift, docs/bundles.md).
    case program(ProgramRecord)

    /// A program was executed (sched_process_exec).
    public struct Exec: Sendable {
        /// The filename given to execve, as given.
        public var filename: ByteString
        /// The executable's absolute path (filename resolved against cwd).
        public var executablePath: ByteString
        /// argv, argv[0] included.
        public var arguments: [ByteString]
        /// Whether argv was longer than the bound (VIGIL_ARGS_MAX bytes) and was cut.
        public var argumentsTruncated: Bool
        /// The working directory.
        public var cwd: ByteString
        /// The controlling terminal's name (e.g. `pts0`), empty when none.
        public var tty: String
        /// The controlling terminal as a number (like tty_nr in /proc/PID/stat), 0 when none.
        public var ttyNumber: UInt32
        /// The audit login uid (4294967295 when unset).
        public var loginUID: UInt32
        /// Process start time, ns since boot.
        public var startTimeNs: UInt64

        /// Creates the payload.
        public init(filename: ByteString, executablePath: ByteString, arguments: [ByteString], argumentsTruncated: Bool, cwd: ByteString, tty: String, ttyNumber: UInt32, loginUID: UInt32, startTimeNs: UInt64) {
            self.startTimeNs = startTimeNs
            self.filename = filename
            self.executablePath = executablePath
            self.arguments = arguments
            self.argumentsTruncated = argumentsTruncated
            self.cwd = cwd
            self.tty = tty
            self.ttyNumber = ttyNumber
            self.loginUID = loginUID
        }
    }

    /// A process or thread was created; the event's own fields are the parent's.
    public struct Fork: Sendable {
        public var childPID: UInt32
        public var childTID: UInt32
        /// A thread of the same process (CLONE_THREAD) rather than a new process.
        public var isThread: Bool
        public var childStartTimeNs: UInt64

        /// Creates the payload.
        public init(childPID: UInt32, childTID: UInt32, isThread: Bool, childStartTimeNs: UInt64) {
            self.childStartTimeNs = childStartTimeNs
            self.childPID = childPID
            self.childTID = childTID
            self.isThread = isThread
        }
    }

    /// A process exited.
    public struct Exit: Sendable {
        /// The raw wait status: (code << 8) | signal.
        public var status: UInt32
        public var startTimeNs: UInt64
        public var durationNs: UInt64
        /// The exit code when it exited normally.
        public var exitCode: UInt32 { (status >> 8) & 0xff }
        /// The signal that killed it, 0 when none.
        public var signal: UInt32 { status & 0x7f }

        /// Creates the payload.
        public init(status: UInt32, startTimeNs: UInt64, durationNs: UInt64) {
            self.status = status
            self.startTimeNs = startTimeNs
            self.durationNs = durationNs
        }
    }

    /// open, openat or openat2 returned.
    public struct Open: Sendable {
        /// open, openat or openat2.
        public var syscall: String
        /// The name as given to the syscall.
        public var name: ByteString
        /// The absolute path (fd.name). After a success, the path of the file the descriptor refers
        /// to, as the kernel walked it (symlinks resolved); a file some rule names by exact path
        /// and that was opened through another hard link gets that name (`linkedName` says so).
        /// After a failure: the name resolved against cwd or dirfd, `.` and `..` folded.
        public var path: ByteString {
            didSet { (directory, filename) = (PathParts.directory(path), PathParts.filename(path)) }
        }
        /// The directory part of `path` (fd.directory), computed once.
        public private(set) var directory: ByteString
        /// The last component of `path` (fd.filename), computed once.
        public private(set) var filename: ByteString
        /// Open flags (O_*), as given.
        public var flags: UInt32
        /// Creation mode.
        public var mode: UInt32
        /// The directory fd (-100 = AT_FDCWD).
        public var dirfd: Int32
        /// The new fd, or -errno.
        public var result: Int64
        /// The path was cut (too deep or too long).
        public var truncated: Bool
        /// A `kernel_kill` rule matched in the kernel: the sensor sent the caller SIGKILL before
        /// it returned to user mode (VIGIL_OPEN_KILLED).
        public var killedInKernel: Bool = false
        /// The opened file's device (as stat's st_dev) and inode; 0 when unknown (a failed open).
        public var device: UInt64 = 0, inode: UInt64 = 0
        /// This open created the file (FMODE_CREATED): O_CREAT found no file there.
        public var created = false
        /// `path` is the name a rule gives this file (by device and inode), not the path it was
        /// opened by (another hard link, or a name whose symlinks lead to it).
        public var linkedName = false

        /// Creates the payload.
        public init(syscall: String, name: ByteString, path: ByteString, flags: UInt32, mode: UInt32, dirfd: Int32, result: Int64, truncated: Bool) {
            self.truncated = truncated
            self.syscall = syscall
            self.name = name
            self.path = path
            self.flags = flags
            self.mode = mode
            self.dirfd = dirfd
            self.result = result
            self.directory = PathParts.directory(path)
            self.filename = PathParts.filename(path)
        }

        /// Creates the payload with `path`'s parts already made (the decoder's, shared).
        init(syscall: String, name: ByteString, path: ByteString, directory: ByteString, filename: ByteString,
             flags: UInt32, mode: UInt32, dirfd: Int32, result: Int64, truncated: Bool, killedInKernel: Bool,
             device: UInt64, inode: UInt64, created: Bool, linkedName: Bool) {
            self.truncated = truncated
            self.killedInKernel = killedInKernel
            self.device = device
            self.inode = inode
            self.created = created
            self.linkedName = linkedName
            self.syscall = syscall
            self.name = name
            self.path = path
            self.flags = flags
            self.mode = mode
            self.dirfd = dirfd
            self.result = result
            self.directory = directory
            self.filename = filename
        }
    }
}

/// What the process table knows about the event's process and its ancestors.
///
/// A copy-on-write value: one reference, so handing the same context to every event of a
/// process costs one retain. It also keeps the JSON of its fields once rendered
/// (`EventFormat.appendJSON`), which changing any field drops.
public struct ProcessContext: Sendable {
    /// The executable's absolute path.
    public var executablePath: ByteString? {
        get { current.executablePath }
        set { mutableStorage().executablePath = newValue }
    }
    /// argv (argv[0] included).
    public var arguments: [ByteString]? {
        get { current.arguments }
        set { mutableStorage().arguments = newValue }
    }
    /// Working directory: at the last exec, then as chdir and fchdir set it.
    public var cwd: ByteString? {
        get { current.cwd }
        set { mutableStorage().cwd = newValue }
    }
    /// Controlling tty number, 0 when none.
    public var ttyNumber: UInt32? {
        get { current.ttyNumber }
        set { mutableStorage().ttyNumber = newValue }
    }
    /// Audit login uid.
    public var loginUID: UInt32? {
        get { current.loginUID }
        set { mutableStorage().loginUID = newValue }
    }
    /// The parent's argv, when the process table knows it.
    public var parentArguments: [ByteString]? {
        get { current.parentArguments }
        set { mutableStorage().parentArguments = newValue }
    }
    /// Names of the ancestors: [0] the parent, [1] the grandparent, ...
    public var ancestorNames: [ByteString] {
        get { current.ancestorNames }
        set { mutableStorage().ancestorNames = newValue }
    }
    /// Pids of the ancestors, in the same order.
    public var ancestorPIDs: [UInt32] {
        get { current.ancestorPIDs }
        set { mutableStorage().ancestorPIDs = newValue }
    }
    /// The user's name (from the host's passwd), nil when unknown.
    public var userName: String? {
        get { current.userName }
        set { mutableStorage().userName = newValue }
    }
    /// The login user's name.
    public var loginUserName: String? {
        get { current.loginUserName }
        set { mutableStorage().loginUserName = newValue }
    }
    /// The group's name.
    public var groupName: String? {
        get { current.groupName }
        set { mutableStorage().groupName = newValue }
    }
    /// When the process started (its clone), ns since boot like `Event.bootTimeNs`; nil when
    /// unknown. `proc.duration` is the event's time minus this.
    public var startTimeNs: UInt64? {
        // Not through `current`, whose result is retained and released: read per event (proc.duration).
        get {
            guard let storage else { return Self.empty.startTimeNs }
            return storage.startTimeNs
        }
        set { mutableStorage().startTimeNs = newValue }
    }

    /// Session, process group, capabilities and executable file (`ProcessDetails`).
    public var details: ProcessDetails {
        get { current.details }
        set { mutableStorage().details = newValue }
    }
    /// argv[0] of the ancestors, parent first (empty where unknown).
    public var ancestorExes: [ByteString] {
        get { current.ancestorExes }
        set { mutableStorage().ancestorExes = newValue }
    }
    /// Executable paths of the ancestors, parent first (empty where unknown).
    public var ancestorExecutablePaths: [ByteString] {
        get { current.ancestorExecutablePaths }
        set { mutableStorage().ancestorExecutablePaths = newValue }
    }
    /// The session leader's name (proc.sname), nil when the table does not know it.
    public var sessionLeaderName: ByteString? {
        get { current.sessionLeaderName }
        set { mutableStorage().sessionLeaderName = newValue }
    }
    /// The process group leader's name, argv[0] and executable path (proc.vpgid.*).
    public var groupLeaderName: ByteString? {
        get { current.groupLeaderName }
        set { mutableStorage().groupLeaderName = newValue }
    }
    /// The process group leader's argv[0].
    public var groupLeaderExe: ByteString? {
        get { current.groupLeaderExe }
        set { mutableStorage().groupLeaderExe = newValue }
    }
    /// The process group leader's executable path.
    public var groupLeaderExecutablePath: ByteString? {
        get { current.groupLeaderExecutablePath }
        set { mutableStorage().groupLeaderExecutablePath = newValue }
    }

    /// An empty context.
    public init() { storage = nil }

    /// The fields; nil for an empty context (an event not enriched: nothing to count).
    fileprivate var storage: Storage?
    fileprivate static let empty = Storage()
    private var current: Storage { storage ?? Self.empty }

    /// The storage holding what was rendered for this context (`RenderedJSON`).
    fileprivate var renderedIn: Storage { storage ?? Self.empty }

    private mutating func mutableStorage() -> Storage {
        if isKnownUniquelyReferenced(&storage), let storage {
            storage.rendered.removeAll()
            return storage
        }
        let made = Storage(copying: current)
        storage = made
        return made
    }

    /// The fields, changed only while uniquely referenced (copy on write).
    fileprivate final class Storage: @unchecked Sendable {
        var executablePath: ByteString?
        var arguments: [ByteString]?
        var cwd: ByteString?
        var ttyNumber: UInt32?
        var loginUID: UInt32?
        var parentArguments: [ByteString]?
        var ancestorNames: [ByteString] = []
        var ancestorPIDs: [UInt32] = []
        var userName: String?
        var loginUserName: String?
        var groupName: String?
        var startTimeNs: UInt64?
        var details = ProcessDetails()
        var ancestorExes: [ByteString] = []
        var ancestorExecutablePaths: [ByteString] = []
        var sessionLeaderName: ByteString?
        var groupLeaderName: ByteString?
        var groupLeaderExe: ByteString?
        var groupLeaderExecutablePath: ByteString?
        let rendered = RenderedJSON()

        init() {}

        init(copying other: Storage) {
            executablePath = other.executablePath
            arguments = other.arguments
            cwd = other.cwd
            ttyNumber = other.ttyNumber
            loginUID = other.loginUID
            parentArguments = other.parentArguments
            ancestorNames = other.ancestorNames
            ancestorPIDs = other.ancestorPIDs
            userName = other.userName
            loginUserName = other.loginUserName
            groupName = other.groupName
            startTimeNs = other.startTimeNs
            details = other.details
            ancestorExes = other.ancestorExes
            ancestorExecutablePaths = other.ancestorExecutablePaths
            sessionLeaderName = other.sessionLeaderName
            groupLeaderName = other.groupLeaderName
            groupLeaderExe = other.groupLeaderExe
            groupLeaderExecutablePath = other.groupLeaderExecutablePath
        }
    }
}

/// The container an event's task runs in.
///
/// A copy-on-write value (one reference per event); it keeps its texts as bytes and the JSON of
/// its fields once rendered.
public struct ContainerContext: Sendable, Equatable {
    /// Full id (64 hex for most runtimes), empty for the host.
    public var fullID: String {
        get { current.fullID }
        set { mutableStorage().fullID = newValue }
    }
    /// Runtime name: docker, containerd, crio, podman, kube, lxc, nspawn, garden, host or unknown.
    public var runtime: String {
        get { current.runtime }
        set { mutableStorage().runtime = newValue }
    }
    /// Container name, empty when unknown.
    public var name: String {
        get { current.name }
        set { mutableStorage().name = newValue }
    }
    /// Image, empty when unknown.
    public var image: String {
        get { current.image }
        set { mutableStorage().image = newValue }
    }
    /// Labels.
    public var labels: [String: String] {
        get { current.labels }
        set { mutableStorage().labels = newValue }
    }
    /// The Kubernetes pod uid, when derivable.
    public var podUID: String {
        get { current.podUID }
        set { mutableStorage().podUID = newValue }
    }
    /// What the runtime said beyond name, image and labels (image id, privileged, upper layer).
    public var details: ContainerDetails {
        get { current.details }
        set { mutableStorage().details = newValue }
    }

    /// The 12-character id as bytes (container.id), made once per container.
    public var idBytes: ByteString { current.bytes.id }
    /// The full id as bytes.
    public var fullIDBytes: ByteString { current.bytes.fullID }
    /// The runtime as bytes.
    public var runtimeBytes: ByteString { current.bytes.runtime }
    /// The name as bytes.
    public var nameBytes: ByteString { current.bytes.name }
    /// The image as bytes.
    public var imageBytes: ByteString { current.bytes.image }

    /// The host (no container).
    public static let host = ContainerContext(storage: nil)
    /// In a container's namespaces, but not (yet) in a container's cgroup, and gone before /proc
    /// could name it: a container runtime's init process during setup.
    public static let unidentified = ContainerContext(fullID: "", runtime: "unknown", name: "", image: "", labels: [:], podUID: "")

    /// Creates a context.
    public init(fullID: String, runtime: String, name: String, image: String, labels: [String: String], podUID: String) {
        storage = Storage(fullID: fullID, runtime: runtime, name: name, image: image, labels: labels, podUID: podUID)
    }

    private init(storage: Storage?) { self.storage = storage }

    public static func == (a: ContainerContext, b: ContainerContext) -> Bool {
        if a.storage === b.storage { return true } // the same storage, or both the host's
        return a.fullID == b.fullID && a.runtime == b.runtime && a.name == b.name && a.image == b.image
            && a.labels == b.labels && a.podUID == b.podUID && a.details == b.details
    }

    /// The 12-character id (Falco's container.id), `host`, or `unknown` for an unidentified one.
    public var id: String { Self.id(fullID: fullID, runtime: runtime) }
    /// Whether this is a container rather than the host.
    public var isContainer: Bool { storage?.isContainer ?? false }

    /// The storage holding what was rendered for this context (`RenderedJSON`).
    fileprivate var renderedIn: Storage { storage ?? Self.hostStorage }

    /// The fields; nil for the host (the default of every event: nothing to count).
    fileprivate var storage: Storage?
    fileprivate static let hostStorage = Storage(fullID: "", runtime: "host", name: "host", image: "", labels: [:], podUID: "")
    private var current: Storage { storage ?? Self.hostStorage }

    private static func id(fullID: String, runtime: String) -> String {
        fullID.isEmpty ? (runtime != "host" ? "unknown" : "host") : String(fullID.prefix(12))
    }

    private mutating func mutableStorage() -> Storage {
        if isKnownUniquelyReferenced(&storage), let storage {
            storage.rendered.removeAll()
            return storage
        }
        let from = current
        let made = Storage(fullID: from.fullID, runtime: from.runtime, name: from.name, image: from.image,
                           labels: from.labels, podUID: from.podUID)
        made.details = from.details
        storage = made
        return made
    }

    /// The texts as bytes, made once per change (fields read them per event).
    fileprivate struct Bytes {
        var id: ByteString, fullID: ByteString, runtime: ByteString, name: ByteString, image: ByteString
    }

    /// The fields, changed only while uniquely referenced (copy on write).
    fileprivate final class Storage: @unchecked Sendable {
        var fullID: String { didSet { refresh() } }
        var runtime: String { didSet { refresh() } }
        var name: String { didSet { refresh() } }
        var image: String { didSet { refresh() } }
        var labels: [String: String]
        var podUID: String
        var details = ContainerDetails()
        private(set) var bytes: Bytes
        /// runtime != "host" (read per event).
        private(set) var isContainer: Bool
        let rendered = RenderedJSON()

        init(fullID: String, runtime: String, name: String, image: String, labels: [String: String], podUID: String) {
            self.fullID = fullID; self.runtime = runtime; self.name = name
            self.image = image; self.labels = labels; self.podUID = podUID
            bytes = Self.bytes(fullID: fullID, runtime: runtime, name: name, image: image)
            isContainer = runtime != "host"
        }

        private func refresh() {
            bytes = Self.bytes(fullID: fullID, runtime: runtime, name: name, image: image)
            isContainer = runtime != "host"
        }

        private static func bytes(fullID: String, runtime: String, name: String, image: String) -> Bytes {
            Bytes(id: ByteString(ContainerContext.id(fullID: fullID, runtime: runtime)), fullID: ByteString(fullID),
                  runtime: ByteString(runtime), name: ByteString(name), image: ByteString(image))
        }
    }
}

/// What a container runtime says about a container beyond its name, image and labels.
public struct ContainerDetails: Sendable, Equatable {
    /// The image's id as the runtime gives it (`sha256:...`), empty when not known.
    public var imageID = ""
    /// Whether the container runs privileged.
    public var privileged = false
    /// The writable (upper) layer of its root file system on the host, empty when not known.
    public var upperDir = ""
    /// Its mounts in the runtime's order (Docker's `Mounts`: volumes and bind mounts); nil when
    /// the runtime did not say.
    public var mounts: [ContainerMount]?
    /// When it started, ns since the epoch (Docker's `State.StartedAt`); nil when not known.
    public var startTimeNs: UInt64?
    /// The labels of its Kubernetes pod (k8s.pod.labels), without the runtime's io.kubernetes.*
    /// keys; empty when not known.
    public var podLabels: [String: String] = [:]

    /// Creates details.
    public init(imageID: String = "", privileged: Bool = false, upperDir: String = "", mounts: [ContainerMount]? = nil,
                startTimeNs: UInt64? = nil, podLabels: [String: String] = [:]) {
        self.podLabels = podLabels
        self.imageID = imageID
        self.privileged = privileged
        self.upperDir = upperDir
        self.mounts = mounts
        self.startTimeNs = startTimeNs
    }
}

/// One mount of a container, as its runtime describes it (Docker's `Mounts` entry).
public struct ContainerMount: Sendable, Hashable {
    /// Where it comes from on the host (a bind mount's path, a volume's directory).
    public var source: String
    /// Where it is in the container.
    public var destination: String
    /// The mode the runtime gives (`ro`, `z`, ..., often empty).
    public var mode: String
    /// Whether it is writable.
    public var readWrite: Bool
    /// Its propagation (`rprivate`, `shared`, ..., often empty).
    public var propagation: String

    /// A mount.
    public init(source: String, destination: String, mode: String = "", readWrite: Bool = true, propagation: String = "") {
        self.source = source; self.destination = destination; self.mode = mode; self.readWrite = readWrite; self.propagation = propagation
    }

    /// Falco's text of a mount: `SOURCE:DEST:MODE:RDWR:PROPAGATION` (RDWR true or false).
    public var text: String { "\(source):\(destination):\(mode):\(readWrite):\(propagation)" }
}

/// An image reference split as Falco's container.image.* fields do:
/// `REPOSITORY[:TAG][@DIGEST]`, where a `:` before the last `/` belongs to a registry's port.
public struct ImageReference: Sendable, Equatable {
    /// Everything before the tag and digest (`registry:5000/team/app`).
    public var repository: Substring
    /// The tag; `latest` when the reference names neither a tag nor a digest (Docker's default).
    public var tag: Substring
    /// The digest (`sha256:...`), empty when not named.
    public var digest: Substring

    /// Splits `reference`.
    public init(_ reference: String) {
        var rest = Substring(reference)
        digest = ""
        if let at = rest.firstIndex(of: "@") {
            digest = rest[rest.index(after: at)...]
            rest = rest[..<at]
        }
        let lastSlash = rest.lastIndex(of: "/") ?? rest.startIndex
        if let colon = rest[lastSlash...].lastIndex(of: ":") {
            repository = rest[..<colon]
            tag = rest[rest.index(after: colon)...]
        } else {
            repository = rest
            tag = digest.isEmpty && !rest.isEmpty ? "latest" : ""
        }
    }
}

extension Event {
    /// Appends what was rendered for a process or container group (`RenderedJSON`) and returns
    /// true, or returns false when nothing was. Reads the storage in place: no copy of the
    /// context, no retain.
    func appendRendered(_ scope: FieldScope, _ signature: Int, key: ProcessKey, to out: inout ByteBuffer) -> Bool {
        if scope == .process {
            if let found = process.storage?.rendered.append(signature, key: key, to: &out) { return found }
            return ProcessContext.empty.rendered.append(signature, key: key, to: &out)
        }
        if let found = container.storage?.rendered.append(signature, key: key, to: &out) { return found }
        return ContainerContext.hostStorage.rendered.append(signature, key: key, to: &out)
    }

    /// The storage of the context a process or container group depends on, where what is
    /// rendered for it is kept (`JSONMemo` keeps it alive with its own copy of the bytes).
    func renderedStorage(_ scope: FieldScope) -> AnyObject {
        scope == .process ? process.renderedIn : container.renderedIn
    }

    /// `renderedStorage(scope)`'s address (no retain): what `JSONMemo` keys the group by.
    func renderedOwner(_ scope: FieldScope) -> UnsafeRawPointer {
        if scope == .process {
            return UnsafeRawPointer(Unmanaged.passUnretained(process.storage ?? ProcessContext.empty).toOpaque())
        }
        return UnsafeRawPointer(Unmanaged.passUnretained(container.storage ?? ContainerContext.hostStorage).toOpaque())
    }

    /// Keeps the bytes rendered for a process or container group.
    func storeRendered(_ scope: FieldScope, _ signature: Int, key: ProcessKey, bytes: UnsafeRawBufferPointer) {
        if scope == .process {
            process.renderedIn.rendered.store(signature, key: key, bytes: bytes)
        } else {
            container.renderedIn.rendered.store(signature, key: key, bytes: bytes)
        }
    }
}

/// The header fields that stay the same across the events of a process (all but the thread id,
/// CPU and time): with the process context they decide the process-scoped fields.
struct ProcessKey: Equatable, Sendable {
    var pid: UInt32 = 0, ppid: UInt32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
    var mountNamespace: UInt32 = 0, pidNamespace: UInt32 = 0
    var cgroupID: UInt64 = 0
    var isContainer = false
    /// The comm's bytes (a kernel comm has at most 15), zero padded, and its length.
    var comm: (UInt64, UInt64) = (0, 0)
    var commCount = 0

    /// The key of no process (for container groups).
    static let none = ProcessKey()

    private init() {}

    /// The key of `event`'s process, or nil when its comm is longer than 16 bytes (made by hand:
    /// the kernel's has at most 15), which is then not cached.
    init?(_ event: borrowing Event) {
        commCount = event.comm.bytes.count
        guard commCount <= 16 else { return nil }
        pid = event.pid; ppid = event.ppid; uid = event.uid; gid = event.gid
        mountNamespace = event.mountNamespace; pidNamespace = event.pidNamespace
        cgroupID = event.cgroupID
        isContainer = event.container.isContainer
        var words: (UInt64, UInt64) = (0, 0)
        event.comm.bytes.withUnsafeBytes { source in
            withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: source) }
        }
        comm = words
    }

    static func == (a: ProcessKey, b: ProcessKey) -> Bool {
        a.pid == b.pid && a.ppid == b.ppid && a.uid == b.uid && a.gid == b.gid && a.mountNamespace == b.mountNamespace
            && a.pidNamespace == b.pidNamespace && a.cgroupID == b.cgroupID && a.isContainer == b.isContainer
            && a.comm == b.comm && a.commCount == b.commCount
    }
}

/// JSON already rendered for a group of fields that depend only on one context (a process's or a
/// container's), kept with that context so the events that share it copy the bytes instead of
/// rendering them again. Each entry is keyed by the group (`signature`) and, for process fields,
/// the `ProcessKey` of the event (`ProcessKey.none` for container fields). Thread-safe: events are `Sendable`.
struct RenderedJSON: ~Copyable, Sendable {
    /// Its bytes are reached only under the lock: sendable with it.
    private struct Entry: @unchecked Sendable {
        var signature: Int
        var key: ProcessKey
        /// Owned by this object (freed when the entry goes): copying out retains nothing.
        var bytes: UnsafeMutableRawBufferPointer
    }

    /// A few entries: one per field group and key (threads may have names of their own).
    private static let capacity = 8
    private let entries = Mutex<[Entry]>([])

    init() {}

    deinit {
        entries.withLock { entries in
            for entry in entries { entry.bytes.deallocate() }
        }
    }

    /// Appends the bytes rendered for `signature` and `key` to `out` and returns true, or
    /// returns false when there are none.
    func append(_ signature: Int, key: ProcessKey, to out: inout ByteBuffer) -> Bool {
        entries.withLock { entries in
            for i in entries.indices where entries[i].signature == signature && entries[i].key == key {
                out.append(UnsafeRawBufferPointer(entries[i].bytes))
                return true
            }
            return false
        }
    }

    /// Keeps a copy of `bytes` for `signature` and `key` (replacing the oldest entry when full).
    func store(_ signature: Int, key: ProcessKey, bytes: UnsafeRawBufferPointer) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        copy.copyMemory(from: bytes)
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeFirst().bytes.deallocate() }
            entries.append(Entry(signature: signature, key: key, bytes: copy))
        }
    }

    /// Forgets every entry (the context changed).
    func removeAll() {
        entries.withLock { entries in
            for entry in entries { entry.bytes.deallocate() }
            entries.removeAll()
        }
    }
}
