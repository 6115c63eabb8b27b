import Synchronization
import VigilContainers
import VigilFIM

/// The fim monitor's following of Docker's containers (`fim.containers`): a container that
/// starts gets its watches (through its first process's root, taken from the metadata cache,
/// which inspected the container for that start), one that dies or is destroyed loses them. At
/// each (re)connection every running container is watched and the watches of those gone are
/// dropped (events may have been missed meanwhile).
///
/// The updates come from the watcher that keeps the container metadata
/// (`ContainerMetadataCache.follow`'s `also`, on the watcher's side): no second subscription,
/// no polling. They wait here for the thread that drives the monitor (`apply(to:)`).
final class FIMContainers: Sendable {
    private let updates = Mutex<[DockerEventWatcher.Update]>([])
    private let metadata: ContainerMetadataCache
    private let docker: DockerClient

    /// Follows the containers `metadata` knows (its source `docker`, asked for the running
    /// containers at each connection).
    init(metadata: ContainerMetadataCache, docker: DockerClient) {
        self.metadata = metadata
        self.docker = docker
    }

    /// Queues one update (any thread).
    func append(_ update: DockerEventWatcher.Update) { updates.withLock { $0.append(update) } }

    /// Applies the updates queued since the last call, oldest first, to `fim` (on the thread
    /// that drives it). A container watched again after running on while Vigil was down hands
    /// what changed in it meanwhile to `whileDown`.
    func apply(to fim: FIMMonitor, whileDown: (FIMChange) -> Void) {
        let queued = updates.withLock { queue in defer { queue.removeAll() }; return queue }
        for update in queued {
            switch update {
            case .connected:
                guard let running = try? docker.containers() else { continue }
                let ids = Set(running.map(\.id))
                for id in fim.containers.keys where !ids.contains(id) { fim.forgetContainer(id) }
                fim.forgetSavedContainers(except: ids)
                for container in running { watch(container.id, fim, whileDown) }
            case .event(let event):
                switch event.action {
                case .start: watch(event.id, fim, whileDown)
                case .die, .destroy: fim.forgetContainer(event.id)
                }
            case .disconnected:
                break
            }
        }
    }

    /// Watches `fim.containers` in running container `id`, through its first process's root.
    private func watch(_ id: String, _ fim: FIMMonitor, _ whileDown: (FIMChange) -> Void) {
        guard fim.containers[id] == nil, let container = metadata.cached(id) ?? metadata.fetch(id), let pid = container.pid else { return }
        fim.watchContainer(FIMContainer(id: container.id, name: container.name, image: container.image, runtime: container.runtime,
                                        root: "/proc/\(pid)/root"), whileDown: whileDown)
    }
}
