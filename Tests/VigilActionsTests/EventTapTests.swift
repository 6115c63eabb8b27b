import Foundation
import Synchronization
@testable import VigilActions
import VigilEvents
import VigilRules
import XCTest

/// The event tap between the event thread and the stages that take events (nats and policy
/// `events:`): a filter, a bounded queue, drops counted.
final class EventTapTests: XCTestCase {
    func event(pid: UInt32, comm: String) -> Event {
        let exec = Payload.Exec(filename: ByteString("/bin/\(comm)"), executablePath: ByteString("/bin/\(comm)"), arguments: [ByteString(comm)],
                                argumentsTruncated: false, cwd: ByteString("/"), tty: "", ttyNumber: 0, loginUID: UInt32.max, startTimeNs: 0)
        return Event(bootTimeNs: 1, timeNs: 2, cgroupID: 0, pid: pid, tid: pid, ppid: 1, uid: 0, gid: 0, cpu: 0,
                     mountNamespace: 0, pidNamespace: 0, comm: ByteString(comm), payload: .exec(exec))
    }

    func testAFloodThatOverflowsASmallQueueIsCountedAsDroppedAndTheRestDelivered() throws {
        var selection = EventSelection(filter: "evt.type = execve and proc.name = flood")
        selection.queueSize = 4
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let handled = Mutex<[UInt32]>([])
        let tap = EventTap(name: "test", selection: selection, filter: try selection.compiled(at: "test")) { events in
            handled.withLock { $0 += events.map(\.pid) }
            if events.first?.pid == 1 {
                started.signal()
                release.wait()  // the stage is stuck (a slow server): the queue fills
            }
            return (events.count, 0, nil)
        }
        tap.offer(event(pid: 1, comm: "flood"))
        XCTAssertEqual(started.wait(timeout: .now() + 10), .success)
        for pid in 2...101 { tap.offer(event(pid: UInt32(pid), comm: "flood")) }
        for pid in 200...209 { tap.offer(event(pid: UInt32(pid), comm: "other")) }  // not selected: not counted
        var stats = tap.stats
        XCTAssertEqual(stats.matched, 101)
        XCTAssertEqual(stats.queued, 4)
        XCTAssertEqual(stats.dropped, 96, "what did not fit is counted, never silent")
        release.signal()
        XCTAssertTrue(tap.close(until: .now() + 10))
        stats = tap.stats
        XCTAssertEqual(handled.withLock { $0 }, [1, 2, 3, 4, 5], "the first and the four queued, in order")
        XCTAssertEqual(stats.sent, 5)
        XCTAssertEqual(stats.dropped, 96)
        XCTAssertEqual(stats.queued, 0)
        tap.offer(event(pid: 300, comm: "flood"))
        XCTAssertEqual(tap.stats.matched, 101, "a closed tap takes nothing")
    }

    func testABacklogIsHandedOnInBatchesInOrderAndCountedWhileItDrains() throws {
        var selection = EventSelection(filter: "evt.type = execve")
        selection.queueSize = 1000
        let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let batches = Mutex<[[UInt32]]>([])
        let tap = EventTap(name: "test", selection: selection, filter: try selection.compiled(at: "test")) { events in
            let call = batches.withLock { batches in
                batches.append(events.map(\.pid))
                return batches.count
            }
            if call <= 2 {
                entered.signal()
                release.wait()
            }
            return (events.count, 0, nil)
        }
        tap.offer(event(pid: 1, comm: "a"))
        XCTAssertEqual(entered.wait(timeout: .now() + 10), .success)
        for pid in 2...701 { tap.offer(event(pid: UInt32(pid), comm: "a")) }
        XCTAssertEqual(tap.stats.queued, 700)
        release.signal()
        XCTAssertEqual(entered.wait(timeout: .now() + 10), .success)  // the second call holds a full batch
        XCTAssertEqual(tap.stats.queued, 700 - EventTap.batchSize, "taken events are no longer waiting")
        release.signal()
        XCTAssertTrue(tap.close(until: .now() + 10))
        let handed = batches.withLock { $0 }
        XCTAssertEqual(handed.map(\.count), [1, 256, 256, 188])
        XCTAssertEqual(Array(handed.joined()), Array(1...701).map(UInt32.init), "every event once, in order")
        XCTAssertEqual(tap.stats.sent, 701)
        XCTAssertEqual(tap.stats.queued, 0)
        XCTAssertEqual(tap.stats.dropped, 0)
    }

    func testEventsSectionsAreCheckedWhereTheyAre() throws {
        let cases: [(String, String)] = [
            ("named:\n  bus: {type: nats, servers: [\"nats://127.0.0.1\"], events: {filter: \"evt.type = \"}}", "events.filter: filter:1:12: unexpected end of condition"),
            ("named:\n  bus: {type: nats, servers: [\"nats://127.0.0.1\"], events: {filter: \" \"}}", "events.filter: an empty filter"),
            ("named:\n  bus: {type: nats, servers: [\"nats://127.0.0.1\"], events: {filter: \"evt.type = execve\", queue_size: 0}}", "events.queue_size: must be positive"),
            ("named:\n  bus: {type: nats, servers: [\"nats://127.0.0.1\"], events: {filter: \"evt.type = execve\", kinds: [exec]}}", "kinds"),
            ("named:\n  hook: {type: webhook, url: \"http://127.0.0.1:1\", events: {filter: \"evt.type = execve\"}}", "events"),
            ("policy: {url: \"http://127.0.0.1:8181\", path: a/b, events: {filter: \"proc.nope = 1\"}}", "policy.events.filter"),
        ]
        for (yaml, expected) in cases {
            XCTAssertThrowsError(try ActionsConfig.decodeYAML(yaml), yaml) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(yaml): \(error)")
            }
        }
        let good = try ActionsConfig.decodeYAML("named:\n  bus: {type: nats, servers: [\"nats://127.0.0.1\"], events: {filter: \"evt.type in (execve, connect)\"}}")
        XCTAssertEqual(good.definition(of: "bus")?.events, EventSelection(filter: "evt.type in (execve, connect)"))
    }
}
