import Synchronization

/// Counters of a runtime API client's lookups (containerd's API, the CRI): `vigil status`'s
/// `containerd` and `cri`, and /metrics' vigil_containerd_* and vigil_cri_* families.
public struct RuntimeLookupCounters: Sendable, Equatable, Encodable {
    /// Lookups asked.
    public var lookups: UInt64 = 0
    /// Lookups the runtime answered with a container.
    public var found: UInt64 = 0
    /// Lookups that failed: the runtime down, slow (timed out), answering garbage, or answering
    /// a gRPC status other than OK and NotFound.
    public var failures: UInt64 = 0
    /// The failures per kind (`GRPCError.kind`: the gRPC code's name, such as
    /// `PermissionDenied`, or `unavailable`, `io`, `timed out`, `malformed`, `aborted`).
    public var failuresByKind: [String: UInt64] = [:]
    /// The last failure's description; nil when none.
    public var lastFailure: String?

    /// Lookups the runtime answered with no such container (NotFound).
    public var notFound: UInt64 { lookups - found - failures }
}

/// Counts a runtime client's lookups, shared by the client's copies and threads, and logs the
/// first failure of each kind (the rest are only counted).
final class RuntimeLookupRecorder: Sendable {
    private let state = Mutex(RuntimeLookupCounters())
    /// What a lookup is called in the log line ("containerd lookup").
    private let what: String
    /// The metric that counts the failures, named in the log line.
    private let metric: String
    private let log: @Sendable (String) -> Void

    init(what: String, metric: String, log: @escaping @Sendable (String) -> Void) {
        self.what = what
        self.metric = metric
        self.log = log
    }

    /// The counts so far.
    var counters: RuntimeLookupCounters { state.withLock { $0 } }

    /// Runs one lookup and counts it: found when it returns a container, a failure (counted per
    /// kind, the first of its kind logged) when it throws.
    func lookup<T>(_ body: () throws(GRPCError) -> T?) throws(GRPCError) -> T? {
        state.withLock { $0.lookups += 1 }
        do {
            let answer = try body()
            if answer != nil { state.withLock { $0.found += 1 } }
            return answer
        } catch {
            let kind = error.kind
            let first = state.withLock { counters in
                counters.failures += 1
                counters.failuresByKind[kind, default: 0] += 1
                counters.lastFailure = error.description
                return counters.failuresByKind[kind] == 1
            }
            if first { log("\(what) failed (\(kind), logged once per kind; counted in \(metric)): \(error)") }
            throw error
        }
    }
}
