import Foundation
import Synchronization
import VigilTestSupport
import XCTest

@testable import VigilContainers

/// Checks against a real Docker Engine (see `DockerTestEngine`): every test starts its own
/// `vigil-ct-*` container, which its teardown removes.
final class DockerIntegrationTests: XCTestCase {
    private let client = DockerClient()

    func testContainerProcessCgroupFileParsesToItsID() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        let pid = try XCTUnwrap(try client.inspect(container.id)?.pid, "inspect gave no PID")
        let cgroupFile = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)

        let identity = ContainerIdentity(cgroupFile: cgroupFile)
        XCTAssertEqual(identity.id, container.id, cgroupFile)
        XCTAssertEqual(identity.shortID, String(container.id.prefix(12)))
        XCTAssertEqual(identity.runtime, .docker)
        XCTAssertEqual(ContainerIdentity.ofProcess(pid), identity)

        // Every hierarchy that places the process below its root places it in the container.
        let placedLines = cgroupFile.split(separator: "\n").filter { !$0.hasSuffix(":/") }
        XCTAssertFalse(placedLines.isEmpty, cgroupFile)
        for line in placedLines {
            XCTAssertEqual(ContainerIdentity(cgroupFile: line).id, container.id, String(line))
        }
    }

    func testResolverMapsTheContainersCgroupInodeToItsID() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        let resolver = CgroupResolver()
        let mount = try XCTUnwrap(resolver.mount, resolver.unavailableReason ?? "")
        let pid = try XCTUnwrap(try client.inspect(container.id)?.pid)
        let cgroupFile = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
        let v2Path = try XCTUnwrap(
            cgroupFile.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) },
            "no cgroup v2 line in \(cgroupFile)")

        // What bpf_get_current_cgroup_id() reports for the container's processes.
        var info = stat()
        XCTAssertEqual(stat(mount.mountPoint + v2Path, &info), 0, "stat \(mount.mountPoint + v2Path)")
        let cgroupID = UInt64(info.st_ino)

        XCTAssertEqual(resolver.path(forCgroupID: cgroupID), v2Path)
        let identity = try XCTUnwrap(resolver.identity(forCgroupID: cgroupID))
        XCTAssertEqual(identity.id, container.id)
        XCTAssertEqual(identity.runtime, .docker)
        XCTAssertTrue(resolver.cgroupIDs(ofContainer: container.id).contains(cgroupID))
        if mount.mountPoint == "/sys/fs/cgroup/unified" {  // this project's hybrid hosts
            XCTAssertEqual(v2Path, "/docker/\(container.id)")
        }
    }

    /// The cache following the engine hands a start to its followers (`follow(_:also:)`: the fim
    /// monitor's container watches) once the container's metadata is cached, its pid included: a
    /// follower finds it there and never asks the engine a second time.
    func testAFollowerOfTheCacheFindsAStartedContainerCached() throws {
        try DockerTestEngine.require()
        let cache = ContainerMetadataCache(source: client)
        let watcher = DockerEventWatcher(client: client)
        defer { watcher.stop() }
        let connected = Mutex(false)
        let atStart = Mutex<[String: ContainerMetadata?]>([:])  // what the cache held when the follower got the start
        cache.follow(watcher) { update in
            switch update {
            case .connected: connected.withLock { $0 = true }
            case .event(let event) where event.action == .start: atStart.withLock { $0[event.id] = .some(cache.cached(event.id)) }
            default: break
            }
        }
        XCTAssertTrue(waitUntil(seconds: 20) { connected.withLock { $0 } }, "the watcher connects")
        let container = try DockerTestEngine.startContainer(for: self)
        XCTAssertTrue(waitUntil(seconds: 20) { atStart.withLock { $0[container.id] != nil } }, "the follower got the start")
        let metadata = try XCTUnwrap(atStart.withLock { $0[container.id] ?? nil }, "cached before the follower got the start")
        XCTAssertEqual(metadata.name, container.name)
        // with its first process (the fim monitor's way into its files)
        XCTAssertEqual(metadata.pid, try XCTUnwrap(try client.inspect(container.id)?.pid))
    }

    func testClientListsAndInspectsTheContainer() throws {
        let container = try DockerTestEngine.startContainer(for: self)

        let listed = try XCTUnwrap(try client.containers().first { $0.id == container.id }, "not in /containers/json")
        XCTAssertEqual(listed.names, [container.name])
        XCTAssertEqual(listed.image, DockerTestEngine.image)
        XCTAssertEqual(listed.state, "running")

        for reference in [container.id, container.name, String(container.id.prefix(12))] {
            let details = try XCTUnwrap(try client.inspect(reference), reference)
            XCTAssertEqual(details.id, container.id)
            XCTAssertEqual(details.name, container.name)
            XCTAssertEqual(details.image, DockerTestEngine.image)
            XCTAssertTrue(details.running)
            XCTAssertGreaterThan(details.pid ?? 0, 0)
        }
        XCTAssertNil(try client.inspect("vigil-ct-does-not-exist"))
    }

    func testCacheFetchesNameAndImageInTheBackground() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        let cache = ContainerMetadataCache(source: client)

        XCTAssertNil(cache.lookup(container.id))
        cache.waitForPendingFetches()
        let metadata = try XCTUnwrap(cache.cached(container.id))
        XCTAssertEqual(metadata.name, container.name)
        XCTAssertEqual(metadata.image, DockerTestEngine.image)
        XCTAssertEqual(metadata.runtime, .docker)
        XCTAssertEqual(cache.sourceStatus, .available)
    }

    func testWatcherSeesAContainerStartedAfterItBegan() throws {
        try DockerTestEngine.require()
        let connected = expectation(description: "subscribed to /events")
        let started = Mutex<[ContainerEvent]>([])
        let watcher = DockerEventWatcher(client: client)
        watcher.start { update in
            switch update {
            case .connected: connected.fulfill()
            case .event(let event) where event.action == .start: started.withLock { $0.append(event) }
            case .event, .disconnected: break
            }
        }
        defer { watcher.stop() }
        wait(for: [connected], timeout: 10)

        let container = try DockerTestEngine.startContainer(for: self)
        let event = try waitFor("start event for \(container.name)") {
            started.withLock { events in events.first { $0.id == container.id } }
        }
        XCTAssertEqual(event.name, container.name)
        XCTAssertEqual(event.image, DockerTestEngine.image)
    }

    func testCacheFollowingEventsFillsOnStartAndEvictsOnDestroy() throws {
        try DockerTestEngine.require()
        let cache = ContainerMetadataCache(source: client)
        let connected = expectation(description: "subscribed to /events")
        let destroyed = Mutex<Set<String>>([])
        let watcher = DockerEventWatcher(client: client)
        cache.follow(watcher)
        defer { watcher.stop() }
        // A second watcher tells the test when the cache's one has been handed each event.
        let observer = DockerEventWatcher(client: client)
        observer.start { update in
            if case .connected = update { connected.fulfill() }
            if case .event(let event) = update, event.action == .destroy { destroyed.withLock { _ = $0.insert(event.id) } }
        }
        defer { observer.stop() }
        wait(for: [connected], timeout: 10)

        let container = try DockerTestEngine.startContainer(for: self)
        let metadata = try waitFor("cache filled from the start event") { cache.cached(container.id) }
        XCTAssertEqual(metadata.name, container.name)

        XCTAssertEqual(DockerTestEngine.run(["docker", "rm", "-f", container.name]).status, 0)
        _ = try waitFor("destroy event") { destroyed.withLock { $0.contains(container.id) ? true : nil } }
        _ = try waitFor("eviction") { cache.cached(container.id) == nil ? true : nil }
    }

    /// Polls `probe` until it returns a value, for at most `seconds`.
    private func waitFor<T>(_ what: String, seconds: Double = 20, _ probe: () -> T?) throws -> T {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let value = probe() { return value }
            usleep(20_000)
        }
        throw DockerTestEngine.Unavailable(description: "timed out after \(seconds) s waiting for \(what)")
    }
}
