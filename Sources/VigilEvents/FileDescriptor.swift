/// What an fd refers to, with Falco's names (`fd.type`) and letters (`fd.typechar`, libsinsp's
/// CHAR_FD_*).
public enum FDType: UInt8, Sendable, CaseIterable {
    case unknown, file, directory, ipv4, ipv6, unix, pipe, event, signalfd, eventpoll, inotify, timerfd, memfd,
         netlink, bpf, userfaultfd, ioUring, pidfd, socket

    /// Falco's fd.type name.
    public var name: StaticString {
        switch self {
        case .unknown: "unknown"
        case .file: "file"
        case .directory: "directory"
        case .ipv4: "ipv4"
        case .ipv6: "ipv6"
        case .unix: "unix"
        case .pipe: "pipe"
        case .event: "event"
        case .signalfd: "signalfd"
        case .eventpoll: "eventpoll"
        case .inotify: "inotify"
        case .timerfd: "timerfd"
        case .memfd: "memfd"
        case .netlink: "netlink"
        case .bpf: "bpf"
        case .userfaultfd: "userfaultfd"
        case .ioUring: "io_uring"
        case .pidfd: "pidfd"
        case .socket: "socket"
        }
    }

    /// Falco's fd.typechar letter (o: unknown, or a socket of another family).
    public var typechar: StaticString {
        switch self {
        case .unknown, .socket: "o"
        case .file: "f"
        case .directory: "d"
        case .ipv4: "4"
        case .ipv6: "6"
        case .unix: "u"
        case .pipe: "p"
        case .event: "e"
        case .signalfd: "s"
        case .eventpoll: "l"
        case .inotify: "i"
        case .timerfd: "t"
        case .memfd: "m"
        case .netlink: "n"
        case .bpf: "b"
        case .userfaultfd: "u"
        case .ioUring: "r"
        case .pidfd: "P"
        }
    }

    /// The type of a socket of address family `family` (AF_*).
    public init(addressFamily family: UInt64) {
        switch family {
        case 1: self = .unix
        case 2: self = .ipv4
        case 10: self = .ipv6
        case 16: self = .netlink
        default: self = .socket
        }
    }

    /// The type of the anonymous fd that a syscall named `name` creates (eventfd2, signalfd4,
    /// timerfd_create, epoll_create1, inotify_init1, memfd_create, bpf, userfaultfd, io_uring_setup,
    /// pidfd_open...): by the name's stem, the same stem the kernel gives the anon inode
    /// (anon_inode:[eventfd]); nil for a syscall whose fd is none of these.
    public init?(creatingSyscall name: String) {
        let stems: [(String, FDType)] = [("eventfd", .event), ("signalfd", .signalfd), ("timerfd", .timerfd),
                                         ("epoll", .eventpoll), ("inotify", .inotify), ("memfd", .memfd), ("bpf", .bpf),
                                         ("userfaultfd", .userfaultfd), ("io_uring", .ioUring), ("pidfd", .pidfd),
                                         ("pipe", .pipe)]
        guard let found = stems.first(where: { name.hasPrefix($0.0) }) else { return nil }
        self = found.1
    }

    /// The type /proc/PID/fd/N's link names (`pipe:[ino]`, `anon_inode:[eventfd]`,
    /// `/memfd:NAME (deleted)`...); `socket:[ino]` gives `.socket` (its family is not in the
    /// link); a path gives `.file` (the caller tells directories by stat).
    public init(procLink link: String) {
        if link.hasPrefix("/memfd:") { self = .memfd; return }
        if link.hasPrefix("/") { self = .file; return }
        if link.hasPrefix("pipe:") { self = .pipe; return }
        if link.hasPrefix("socket:") { self = .socket; return }
        guard link.hasPrefix("anon_inode:") else { self = .unknown; return }
        var kind = link.dropFirst("anon_inode:".count)
        if kind.hasPrefix("[") && kind.hasSuffix("]") { kind = kind.dropFirst().dropLast() }
        switch kind {
        case "eventfd": self = .event
        case "signalfd": self = .signalfd
        case "timerfd": self = .timerfd
        case "eventpoll": self = .eventpoll
        case "inotify": self = .inotify
        case "userfaultfd": self = .userfaultfd
        case "io_uring": self = .ioUring
        case "pidfd": self = .pidfd
        default: self = kind.hasPrefix("bpf") ? .bpf : .unknown
        }
    }
}

/// One entry of a process's fd table: what the fd refers to (`fd.*` of events on it).
public struct FDInfo: Sendable, Equatable {
    /// The fd number (fd.num).
    public var number: Int32
    /// What it refers to.
    public var type: FDType
    /// Closed by exec (O_CLOEXEC, FD_CLOEXEC).
    public var closeOnExec: Bool
    /// fd.name: a file's path, `pipe:[ino]`, `socket:[ino]`, `anon_inode:[eventfd]`... (empty
    /// when not known).
    public var name: ByteString
    /// The inode (fd.ino), 0 when not known.
    public var inode: UInt64
    /// The device (fd.dev, encoded as stat's st_dev), 0 when not known.
    public var device: UInt64
    /// A socket's protocol, ends and role (fd.sip, fd.l4proto, ...), nil for other fds and
    /// sockets the table knows nothing of.
    public var socket: SocketInfo? {
        get { socketBox?.value }
        set { socketBox = newValue.map(SocketBox.init) }
    }
    /// `socket`, boxed: an entry is copied out of the fd table into every event on its fd, and
    /// a `SocketInfo?` held inline (optional addresses in an optional) made each copy and
    /// destroy of an `FDInfo?` go through the runtime's generic value witnesses; a box is one
    /// retain. Never changed in place (setting `socket` makes a new box).
    private var socketBox: SocketBox?

    /// An entry.
    public init(number: Int32, type: FDType, closeOnExec: Bool = false, name: ByteString = ByteString([UInt8]()),
                inode: UInt64 = 0, device: UInt64 = 0, socket: SocketInfo? = nil) {
        self.number = number
        self.type = type
        self.closeOnExec = closeOnExec
        self.name = name
        self.inode = inode
        self.device = device
        self.socket = socket
    }

    /// Whether fd.directory and fd.filename apply (a path).
    public var hasPath: Bool { type == .file || type == .directory }

    /// Whether `socket` is set (a pattern test: `socket != nil` compares two `SocketInfo?`).
    public var hasSocket: Bool {
        if case .none = socketBox { return false }
        return true
    }

    /// Equal fields, the socket by value.
    public static func == (a: FDInfo, b: FDInfo) -> Bool {
        a.number == b.number && a.type == b.type && a.closeOnExec == b.closeOnExec && a.name == b.name && a.inode == b.inode
            && a.device == b.device && a.socket == b.socket
    }
}

/// An `FDInfo`'s socket (`FDInfo.socketBox`).
private final class SocketBox: Sendable {
    let value: SocketInfo
    init(_ value: SocketInfo) { self.value = value }
}
