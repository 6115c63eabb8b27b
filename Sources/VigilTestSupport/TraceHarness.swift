import Foundation
import Synchronization
import VigilBPF
import VigilContainers
import VigilEnrichment
import VigilEvents
import VigilSensors
import XCTest

/// Loads the real sensors into the kernel and collects the enriched events a piece of work causes.
public final class TraceHarness {
    public let sensors: Sensors
    public let stream: EventStream

    /// Loads the sensors `kinds` and `filter` ask for (`Sensors.init`: by default the process and
    /// file sensors) with `filter`, taking cgroup ids from `cgroupHierarchy`; `metadata` asks
    /// Docker for names and images (`metadataSource`, when given, is asked instead); `cgroups` replaces the enricher's cgroup resolver; `syscalls`
    /// is the syscalls sensor's selection in place of the filter's (nil: the filter's); `hooks`
    /// replaces a sensor's hooks by name (`Sensors.init`).
    public init(kinds: KindSet = Sensor.process.kinds.union(Sensor.file.kinds), filter: KernelFilter = KernelFilter(), metadata: Bool = false,
                cgroupHierarchy: CgroupHierarchy = .onThisHost, cgroups: CgroupResolver = CgroupResolver(),
                syscalls: SyscallCapture? = nil, hooks: [String: [Hook]] = [:], metadataSource: (any ContainerMetadataSource)? = nil) throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        var filter = filter
        if let syscalls { filter.syscalls = syscalls }
        sensors = try Sensors(kinds: kinds, filter: filter, ringBytes: 1 << 24, cgroupHierarchy: cgroupHierarchy, hooks: hooks)
        stream = try EventStream(sensors: sensors,
                                 enricher: Enricher(metadata: metadataSource.map { ContainerMetadataCache(source: $0) }
                                                        ?? (metadata ? ContainerMetadataCache(source: DockerClient()) : nil), cgroups: cgroups),
                                 kinds: KindSet.all)
    }

    /// The most events one `collect` keeps before it fails the test instead of filling memory.
    public static let eventLimit = 1_000_000

    /// Runs `work`, then returns every event the ring holds (ring order).
    public func collect(_ work: () throws -> Void) throws -> [Event] {
        try stream.drain { _ in } // what happened before belongs to no test
        try work()
        var events: [Event] = []
        try stream.drain {
            events.append($0)
            // A capture the host outruns (every write of every process) would drain forever.
            if events.count > Self.eventLimit { throw HarnessOverflow(limit: Self.eventLimit) }
        }
        return events
    }

    /// Runs `work` on another thread while this one reads and enriches the ring as `vigil trace`
    /// does (every 5 ms, while what the events name, processes and cgroups, still exists), then
    /// returns what `work` returned and every event (ring order).
    public func collectWhileRunning<T: Sendable>(_ work: @escaping @Sendable () throws -> T) throws -> (T, [Event]) {
        try stream.drain { _ in } // what happened before belongs to no test
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let thread = Thread {
            let result = Result { try work() }
            outcome.withLock { $0 = result }
        }
        thread.start()
        var events: [Event] = []
        try stream.run(pollMilliseconds: 5, shouldStop: { outcome.withLock { $0 != nil } }) { events.append($0) }
        let result = try XCTUnwrap(outcome.withLock { $0 }).get()
        return (result, events)
    }
}

/// Runs a program to completion and returns its pid.
@discardableResult
public func runProgram(_ path: String, _ arguments: [String], cwd: String? = nil) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    try process.run()
    process.waitUntilExit()
    return process.processIdentifier
}

/// A fresh temporary directory whose name contains a space.
public func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "vigil test \(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

extension Event {
    public var exec: Payload.Exec? { if case .exec(let x) = payload { return x }; return nil }
    public var open: Payload.Open? { if case .open(let x) = payload { return x }; return nil }
    public var exit: Payload.Exit? { if case .exit(let x) = payload { return x }; return nil }
    public var fork: Payload.Fork? { if case .fork(let x) = payload { return x }; return nil }
    public var syscall: Payload.Syscall? { if case .syscall(let x) = payload { return x }; return nil }
    public var conn: Payload.Conn? { if case .conn(let x) = payload { return x }; return nil }
    public var tcpdrop: Payload.TCPDrop? { if case .tcpdrop(let x) = payload { return x }; return nil }
    /// The payload of a shell line.
    public var shellLine: Payload.ShellLine? { if case .shell(let x) = payload { return x }; return nil }
}

/// This test process's comm, as the kernel reports it.
public var ownComm: String {
    (try? String(contentsOfFile: "/proc/self/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines) ?? ""
}

/// A `collect` that read more than `TraceHarness.eventLimit` events: its filter lets the whole
/// host's activity through.
public struct HarnessOverflow: Error, CustomStringConvertible {
    public let limit: Int
    public var description: String { "more than \(limit) events while draining: narrow the test's filter (pids or comms)" }
}
