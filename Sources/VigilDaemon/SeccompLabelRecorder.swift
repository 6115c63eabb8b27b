import Foundation
import Logging
import ServiceLifecycle
import VigilContainers
import VigilSeccomp
import VigilSensors
#if canImport(Glibc)
import Glibc
#endif

/// `seccomp.record.label`: records every container with the label from its start and merges
/// what it made into its image's kept profile when it stops (docs/seccomp.md).
///
/// The seccomp sensor watches the container runtime's parent cgroups (`docker`, and
/// `system.slice` for the systemd driver): the kernel records each new cgroup under them from its
/// first exec (the entrypoint). Every 100 ms the cgroups found are told apart: a container with
/// the label is kept, anything else ignored (the kernel drops it); containers with the label
/// already running at the start are recorded from then. A kept cgroup that is gone
/// (the container stopped) is read, merged into STATE_DIR/seccomp/IMAGE.json and forgotten.
/// One thread drives the sensor.
public final class SeccompLabelRecorder: @unchecked Sendable {
    /// The label: `KEY` or `KEY=VALUE`.
    public let label: String
    /// Where the profiles are kept.
    public let store: ProfileStore
    private let logger: Logger
    private let recorder: SeccompRecorder
    private let stopped = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var running = true
    private let lock = NSLock()

    /// Loads the seccomp sensor and starts watching; throws when it cannot load.
    public init(label: String, store: ProfileStore, logger: Logger) throws {
        self.label = label
        self.store = store
        self.logger = logger
        recorder = try SeccompRecorder()
        var parents: [String] = []
        let docker = recorder.cgroupMount + "/docker"
        if !FileManager.default.fileExists(atPath: docker) { _ = mkdir(docker, 0o755) }
        parents.append(docker)
        let systemd = recorder.cgroupMount + "/system.slice"
        if FileManager.default.fileExists(atPath: systemd) { parents.append(systemd) }
        for parent in parents { try recorder.watchChildren(of: try SeccompRecorder.cgroupID(ofDirectory: parent)) }
        logger.info("seccomp: recording containers labelled \(label) (new cgroups under \(parents.joined(separator: ", "))) into \(store.directory)")
        let thread = Thread { [self] in loop() }
        thread.name = "vigil-seccomp"
        thread.start()
    }

    /// Stops the thread. A recording is kept when its container stops: what a container still
    /// running made so far is dropped.
    public func stop() {
        lock.withLock { running = false }
        stopped.signal()
        finished.wait()
    }

    private struct Kept {
        var container: String
        var name: String
        var image: String
    }

    private func loop() {
        defer { finished.signal() }
        let docker = DockerClient()
        let resolver = CgroupResolver()
        let (key, value) = label.firstIndex(of: "=").map { (String(label[..<$0]), Optional(String(label[label.index(after: $0)...]))) } ?? (label, nil)
        var kept: [UInt64: Kept] = [:]
        var decided: Set<UInt64> = []
        // Containers with the label already running: recorded from now (under their filter when
        // they run under one), so their startup is not in what they add.
        for container in (try? docker.containers()) ?? [] where container.labels[key].map({ value == nil || $0 == value }) ?? false {
            let pid = (try? docker.inspect(container.id))?.pid
            let start: SeccompRecorder.Start = pid.map(SeccompRecorder.underFilter) ?? true ? .underFilter : .now
            let name = container.names.first.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 } ?? String(container.id.prefix(12))
            for id in resolver.cgroupIDs(ofContainer: container.id) {
                do {
                    try recorder.watch(cgroup: id, from: start)
                    kept[id] = Kept(container: container.id, name: name, image: container.image)
                    decided.insert(id)
                } catch {
                    logger.error("seccomp: cannot record container \(name): \(error)")
                }
            }
            logger.info("seccomp: recording running container \(name) (\(container.id.prefix(12))) of \(container.image) from now")
        }
        while lock.withLock({ running }) {
            do {
                for id in try recorder.discovered() where !decided.contains(id) {
                    decided.insert(id)
                    if let container = resolver.identity(forCgroupID: id)?.id, !container.isEmpty,
                       let details = try? docker.inspect(container), details.labels[key].map({ value == nil || $0 == value }) ?? false {
                        kept[id] = Kept(container: container, name: details.name, image: details.image)
                        logger.info("seccomp: recording container \(details.name) (\(container.prefix(12))) of \(details.image)")
                    } else {
                        try recorder.ignore(cgroup: id)
                    }
                }
                for (id, container) in kept where resolver.exists(cgroupID: id) == false {
                    kept[id] = nil
                    decided.remove(id)
                    defer { try? recorder.forget(cgroup: id) }
                    guard let recording = try recorder.recording(of: id), !recording.native.isEmpty || !recording.x32.isEmpty else {
                        logger.warning("seccomp: container \(container.name) (\(container.container.prefix(12))) stopped with nothing recorded")
                        continue
                    }
                    let profile = try store.save(SeccompProfile(recording: recording), for: container.image)
                    logger.notice("seccomp: container \(container.name) of \(container.image) stopped: \(recording.names.count) syscalls merged into \(store.path(for: container.image)) (\(profile.allowedNames.count) allowed)")
                }
            } catch {
                logger.error("seccomp: \(error)")
            }
            _ = stopped.wait(timeout: .now() + .milliseconds(100))
        }
    }
}

/// The label recorder as a service: stopped at shutdown.
struct SeccompRecorderService: Service {
    let recorder: SeccompLabelRecorder

    func run() async throws {
        try? await gracefulShutdown()
        recorder.stop()
    }
}
