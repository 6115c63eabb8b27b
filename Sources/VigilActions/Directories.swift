import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Creating the directories the daemon writes to (the rules directory, the API socket's
/// directory, a file action's directory) on a machine where they do not exist yet.
public enum Directories {
    /// Why a directory could not be made: the path and the reason.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The path that could not be created or is in the way.
        public var path: String
        /// What is wrong (strerror, or "exists and is not a directory").
        public var reason: String
        /// `PATH: reason`.
        public var description: String { "\(path): \(reason)" }
    }

    /// Creates `path` and every missing parent with `mode`, as `mkdir -p -m MODE` does (each
    /// directory created gets `mode` whatever the umask; existing ones keep theirs). Wraps
    /// mkdir(2) and chmod(2). Throws `Failure` naming the first path that cannot be made, or that
    /// exists and is not a directory.
    public static func create(_ path: String, mode: mode_t = 0o755) throws(Failure) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, mode) == 0 {
                guard chmod(prefix, mode) == 0 else { throw Failure(path: prefix, reason: String(cString: strerror(errno))) }
                continue
            }
            let code = errno
            var info = stat()
            guard code == EEXIST, stat(prefix, &info) == 0 else { throw Failure(path: prefix, reason: String(cString: strerror(code))) }
            guard info.st_mode & S_IFMT == S_IFDIR else { throw Failure(path: prefix, reason: "exists and is not a directory") }
        }
    }
}
