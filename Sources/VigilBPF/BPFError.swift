import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// An error from the kernel or libbpf, with enough context to act on: what was being done, to
/// which object, the errno, and, for a program the verifier refused, the verifier's log.
public struct BPFError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What kind of step failed.
    public enum Kind: String, Sendable, Equatable {
        /// Opening or parsing an ELF object (corrupt or not an ELF file, bad BTF, ...).
        case open
        /// Loading an object into the kernel for a reason other than the verifier.
        case load
        /// The verifier refused a program; `verifierLog` holds its log.
        case verifier
        /// Attaching a program to its hook (missing tracepoint or function, kind unsupported).
        case attach
        /// A map operation (lookup, update, delete, mmap).
        case map
        /// A program, map or global variable of that name is not in the object.
        case notFound
        /// A caller error detected before calling the kernel (sizes, states).
        case invalidArgument
        /// A plain system call failed (epoll, mmap, mount, ...).
        case system
    }

    /// The kind of step that failed.
    public var kind: Kind
    /// The libbpf function or system call that failed, e.g. `bpf_object__load`.
    public var operation: String
    /// What it was applied to, e.g. `selftest`, `selftest/close_seq`, `map counters`.
    public var target: String
    /// The error number (0 when none applies).
    public var errno: Int32
    /// A sentence saying what is wrong, without the errno text.
    public var message: String
    /// The program that failed to load or attach, when one did.
    public var program: String?
    /// The verifier log of a refused program (the full log, libbpf's retry at log level 1).
    public var verifierLog: String?

    /// Creates an error; prefer the static helpers that read `errno`.
    public init(_ kind: Kind, operation: String, target: String, errno: Int32 = 0, message: String,
                program: String? = nil, verifierLog: String? = nil) {
        self.kind = kind
        self.operation = operation
        self.target = target
        self.errno = errno
        self.message = message
        self.program = program
        self.verifierLog = verifierLog
    }

    /// The errno's symbolic name and text, e.g. `ENOENT (No such file or directory)`.
    public var errnoDescription: String {
        guard errno != 0 else { return "" }
        let text = String(cString: strerror(errno))
        return "\(Errno.name(errno)) (\(text))"
    }

    /// The verifier's reason in one line: the last line of its log before the statistics
    /// ("processed N insns ..."), e.g. `R0 invalid mem access 'map_value_or_null'`.
    public var verifierReason: String? {
        verifierLog?.split(separator: "\n").last { !$0.hasPrefix("processed ") && !$0.trimmingPrefix(" ").isEmpty }.map(String.init)
    }

    public var description: String {
        var s = "\(operation) \(target): \(message)"
        if errno != 0 { s += ": \(errnoDescription)" }
        if let log = verifierLog, !log.isEmpty {
            s += "\nverifier log (last lines):\n" + log.split(separator: "\n").suffix(20).joined(separator: "\n")
        }
        return s
    }

    /// An error from a libbpf call that returned NULL or a negative number, reading errno.
    static func libbpf(_ kind: Kind, _ operation: String, _ target: String, _ message: String,
                       code: Int32? = nil) -> BPFError {
        let err = code.map { $0 < 0 ? -$0 : $0 } ?? clibbpf_errno()
        return BPFError(kind, operation: operation, target: target, errno: err, message: message)
    }
}

/// Symbolic errno names for messages (`strerror` gives only the text).
public enum Errno {
    /// The symbolic name of an errno value, e.g. 2 -> "ENOENT".
    public static func name(_ value: Int32) -> String {
        switch value {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case ESRCH: return "ESRCH"
        case EINTR: return "EINTR"
        case EIO: return "EIO"
        case E2BIG: return "E2BIG"
        case ENOEXEC: return "ENOEXEC"
        case EBADF: return "EBADF"
        case EAGAIN: return "EAGAIN"
        case ENOMEM: return "ENOMEM"
        case EACCES: return "EACCES"
        case EFAULT: return "EFAULT"
        case EBUSY: return "EBUSY"
        case EEXIST: return "EEXIST"
        case ENODEV: return "ENODEV"
        case EINVAL: return "EINVAL"
        case ENOSPC: return "ENOSPC"
        case ERANGE: return "ERANGE"
        case ENOSYS: return "ENOSYS"
        case ENOTSUP: return "EOPNOTSUPP"
        case ENOTSOCK: return "ENOTSOCK"
        case ESRCH: return "ESRCH"
        case 524: return "ENOTSUPP"
        case 4007: return "LIBBPF_ERRNO__FORMAT"
        default: return "errno \(value)"
        }
    }
}
