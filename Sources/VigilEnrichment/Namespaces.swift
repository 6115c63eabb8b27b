#if canImport(Glibc)
import Glibc
#endif

/// Namespace identities as the kernel reports them in events (inode numbers).
public enum Namespaces {
    /// The inode of the host's pid namespace: init's (/proc/1/ns/pid), or where that cannot be
    /// read (a sandbox), Vigil's own, which must then run in the host's pid namespace.
    public static let hostPID: UInt32 = {
        var st = stat()
        for path in ["/proc/1/ns/pid", "/proc/self/ns/pid"] where stat(path, &st) == 0 {
            return UInt32(truncatingIfNeeded: st.st_ino)
        }
        return 0
    }()
}
