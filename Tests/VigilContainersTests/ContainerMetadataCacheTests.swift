import Dispatch
import Synchronization
import XCTest

@testable import VigilContainers

/// A metadata source with scripted answers that records what it was asked.
private final class ScriptedSource: ContainerMetadataSource {
    let known = Mutex<[String: ContainerMetadata]>([:])
    let failure = Mutex<DockerClientError?>(nil)
    let requests = Mutex<[String]>([])
    /// When set, each request waits for a signal first.
    let gate = Mutex<DispatchSemaphore?>(nil)

    func metadata(forContainerID id: String) throws -> ContainerMetadata? {
        requests.withLock { $0.append(id) }
        gate.withLock { $0 }?.wait()
        if let failure = failure.withLock({ $0 }) { throw failure }
        return known.withLock { $0[id] }
    }

    func add(_ id: String, name: String) {
        known.withLock { $0[id] = ContainerMetadata(id: id, name: name, image: "img:\(name)", labels: ["n": name], runtime: .docker) }
    }

    var requestCount: Int { requests.withLock { $0.count } }
}

final class ContainerMetadataCacheTests: XCTestCase {
    private let idA = String(repeating: "a", count: 64)
    private let idB = String(repeating: "b", count: 64)

    func testLookupFetchesUnknownIDInTheBackgroundOnce() {
        let source = ScriptedSource()
        source.add(idA, name: "web")
        let cache = ContainerMetadataCache(source: source)

        XCTAssertNil(cache.cached(idA))
        XCTAssertNil(cache.lookup(idA), "an unknown id is never fetched on the caller's thread")
        cache.waitForPendingFetches()
        XCTAssertEqual(cache.cached(idA)?.name, "web")
        XCTAssertEqual(cache.lookup(idA)?.image, "img:web")
        XCTAssertEqual(source.requestCount, 1)
        XCTAssertEqual(cache.sourceStatus, .available)
    }

    func testConcurrentRequestsForOneIDShareOneFetch() {
        let source = ScriptedSource()
        source.add(idA, name: "web")
        let gate = DispatchSemaphore(value: 0)
        source.gate.withLock { $0 = gate }
        let cache = ContainerMetadataCache(source: source)

        DispatchQueue.concurrentPerform(iterations: 100) { [idA] _ in _ = cache.lookup(idA) }
        gate.signal()
        cache.waitForPendingFetches()
        XCTAssertEqual(source.requestCount, 1)
        XCTAssertEqual(cache.cached(idA)?.name, "web")
    }

    func testUnknownIDsAreRememberedForTheRetryInterval() {
        let source = ScriptedSource()
        let patient = ContainerMetadataCache(source: source, retryInterval: .seconds(3600))
        _ = patient.lookup(idB)
        patient.waitForPendingFetches()
        _ = patient.lookup(idB)
        patient.waitForPendingFetches()
        XCTAssertEqual(source.requestCount, 1)

        let eager = ContainerMetadataCache(source: source, retryInterval: .zero)
        _ = eager.lookup(idB)
        eager.waitForPendingFetches()
        _ = eager.lookup(idB)
        eager.waitForPendingFetches()
        XCTAssertEqual(source.requestCount, 3)
    }

    func testStartRefreshesDestroyEvictsDieKeeps() {
        let source = ScriptedSource()
        source.add(idA, name: "before")
        let cache = ContainerMetadataCache(source: source)
        XCTAssertEqual(cache.fetch(idA)?.name, "before")

        source.add(idA, name: "after")
        cache.apply(ContainerEvent(action: .start, id: idA))
        cache.waitForPendingFetches()
        XCTAssertEqual(cache.cached(idA)?.name, "after")

        cache.apply(ContainerEvent(action: .die, id: idA))
        XCTAssertEqual(cache.cached(idA)?.name, "after")

        cache.apply(ContainerEvent(action: .destroy, id: idA))
        XCTAssertNil(cache.cached(idA))
    }

    func testStartOfAPreviouslyUnknownIDFetchesAtOnce() {
        let source = ScriptedSource()
        let cache = ContainerMetadataCache(source: source, retryInterval: .seconds(3600))
        XCTAssertNil(cache.fetch(idB))
        source.add(idB, name: "late")
        cache.apply(ContainerEvent(action: .start, id: idB))
        cache.waitForPendingFetches()
        XCTAssertEqual(cache.cached(idB)?.name, "late")
    }

    func testUnavailableSourceIsLoggedOnceAndNeverThrows() {
        let source = ScriptedSource()
        source.failure.withLock { $0 = .socketUnavailable(path: "/nonexistent/docker.sock", errno: ENOENT) }
        let lines = Mutex<[String]>([])
        let cache = ContainerMetadataCache(source: source, retryInterval: .seconds(3600)) { line in
            lines.withLock { $0.append(line) }
        }

        for _ in 0..<50 {
            XCTAssertNil(cache.lookup(idA))
            XCTAssertNil(cache.lookup(idB))
        }
        cache.waitForPendingFetches()
        XCTAssertEqual(source.requestCount, 1, "while the source is down, nothing else is asked")
        guard case .unavailable(let reason) = cache.sourceStatus else {
            return XCTFail("status \(cache.sourceStatus)")
        }
        XCTAssertTrue(reason.contains("/nonexistent/docker.sock"), reason)
        XCTAssertEqual(lines.withLock { $0.count }, 1)
        XCTAssertTrue(lines.withLock { $0.first ?? "" }.contains("name and image fields stay empty"))

        // The engine returns: its start event clears the back-off.
        source.failure.withLock { $0 = nil }
        source.add(idA, name: "back")
        cache.apply(ContainerEvent(action: .start, id: idA))
        cache.waitForPendingFetches()
        XCTAssertEqual(cache.cached(idA)?.name, "back")
        XCTAssertEqual(cache.sourceStatus, .available)
        XCTAssertEqual(lines.withLock { $0.count }, 2)
    }

    func testMissingDockerSocketGivesEmptyFieldsAndOneLogLine() {
        let lines = Mutex<[String]>([])
        let cache = ContainerMetadataCache(source: DockerClient(socketPath: "/nonexistent/vigil/docker.sock")) { line in
            lines.withLock { $0.append(line) }
        }
        for _ in 0..<100 { XCTAssertNil(cache.lookup(idA)) }
        cache.waitForPendingFetches()
        XCTAssertNil(cache.cached(idA))
        XCTAssertEqual(lines.withLock { $0 }.count, 1)
        XCTAssertEqual(
            cache.sourceStatus,
            .unavailable("Docker Engine socket /nonexistent/vigil/docker.sock unavailable: connect: No such file or directory"))
    }

    func testEntriesAreBounded() {
        let source = ScriptedSource()
        let ids = (0..<4).map { String(repeating: "\($0)", count: 64) }
        for id in ids[..<3] { source.add(id, name: id) }
        let cache = ContainerMetadataCache(source: source, maximumEntries: 2)
        _ = cache.fetch(ids[0])
        _ = cache.fetch(ids[1])
        _ = cache.fetch(ids[3])  // unknown: the remembered miss goes first
        XCTAssertNotNil(cache.cached(ids[0]))
        XCTAssertNotNil(cache.cached(ids[1]))
        _ = cache.fetch(ids[2])
        XCTAssertEqual(ids[..<3].filter { cache.cached($0) != nil }.count, 2)
    }
}
