import Foundation
@testable import VigilActions
import VigilTestSupport
import XCTest

/// The spool's bounds and recovery, with a receiver that is down (a port nothing listens on).
final class SpoolTests: XCTestCase {
    func testADownReceiverFillsTheSpoolToItsBoundAndTheRestIsDroppedAndCounted() throws {
        let directory = try temporaryDirectory()
        let port = try Loopback.freePort()
        var config = try ActionsConfig.decodeYAML("""
        dedup: {window: 0}
        named:
          hook: {type: webhook, url: "http://127.0.0.1:\(port)/", queue_size: 3, backoff: 0.05, max_backoff: 0.1, timeout: 1}
        """)
        config.spoolDirectory = directory
        let dispatcher = try ActionDispatcher(config: config)
        for index in 0..<5 { dispatcher.dispatch(testAlert(testEvent(pid: UInt32(100 + index))), actions: ["hook"]) }
        waitUntil("3 alerts spooled and 2 dropped") {
            let stats = dispatcher.stats().of("hook")
            return stats.spooled == 3 && stats.dropped == 2 && stats.retried > 0
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: directory + "/hook").filter { $0.hasSuffix(".alert") }
        XCTAssertEqual(files.count, 3, "\(files)")
        XCTAssertEqual(dispatcher.stats().of("hook").failed, 0, "a spooled alert is retried, never failed for a down receiver")
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(10)))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory + "/hook").filter { $0.hasSuffix(".alert") }.count, 3,
                       "shutdown leaves them on disk for the next start")

        // The next dispatcher (a restart) delivers them to the receiver, now up, in order.
        let server = try TestHTTPServer()
        try FileManager.default.createFile(atPath: directory + "/hook/00000000000000000001-x.alert.tmp", contents: Data("half".utf8))
        try FileManager.default.createFile(atPath: directory + "/hook/00000000000000000002-y.alert", contents: Data("garbage".utf8))
        config.named["hook"]?.url = server.url + "/"
        let again = try ActionDispatcher(config: config)
        waitUntil("3 alerts delivered") { server.requests.count == 3 }
        let ids = server.requests.compactMap { $0.json?["id"] as? String }
        XCTAssertEqual(ids.count, 3)
        XCTAssertEqual(server.requests.map { $0.headers["x-vigil-alert-id"] ?? "" }, ids)
        XCTAssertEqual(server.requests.compactMap { ($0.json?["output_fields"] as? [String: Any])?["proc.pid"] as? Int }, [100, 101, 102])
        let left = try FileManager.default.contentsOfDirectory(atPath: directory + "/hook").sorted()
        XCTAssertEqual(left, ["00000000000000000002-y.alert.corrupt"], "the cut-short temporary file removed, the bad one set aside")
        XCTAssertTrue(again.shutdown(timeout: .seconds(10)))
    }

    /// Delivery does not wait for the disk: the spooling thread writes an alert's file while the
    /// delivering thread already sends it from memory. Here the file's write blocks for good (its
    /// temporary name is a FIFO nobody reads: the sequence follows a record of an earlier run,
    /// the id is the test's), and the receiver still gets the alert (before the write-behind
    /// spool it waited for the write, and this test timed out); once the write is let go
    /// (it fails: a FIFO cannot be fsync'ed), no file of the delivered alert is left behind.
    func testAnAlertIsDeliveredWhileItsSpoolFileIsStillBeingWritten() throws {
        let directory = try temporaryDirectory()
        let server = try TestHTTPServer()
        try FileManager.default.createDirectory(atPath: directory + "/hook", withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: directory + "/hook/09999999999999999990-old.alert",
                                                    contents: Data("vigil-spool 1\nid old\nrule earlier\n\n{}".utf8)))
        let fifo = directory + "/hook/09999999999999999991-blocked.alert.tmp"
        // Opening the FIFO for reading lets the blocked write go on (to fail at its fsync); the
        // reader stays open until the end, so the write never meets a closed pipe.
        var reader: Int32 = -1
        func release() { if reader < 0 { reader = open(fifo, O_RDONLY | O_NONBLOCK) } }
        defer {
            release()
            usleep(200_000)
            close(reader)
        }
        var config = try ActionsConfig.decodeYAML("""
        dedup: {window: 0}
        named:
          hook: {type: webhook, url: "\(server.url)/", timeout: 5}
        """)
        config.spoolDirectory = directory
        let dispatcher = try ActionDispatcher(config: config)
        // Made after the spool took up the directory (which removes *.tmp files as crash leftovers).
        XCTAssertEqual(mkfifo(fifo, 0o600), 0, String(cString: strerror(errno)))
        var alert = testAlert(testEvent(pid: 4343))
        alert.id = "blocked"
        dispatcher.dispatch(alert, actions: ["hook"])
        waitUntil("the alert delivered while its spool file's write is blocked", seconds: 10) {
            server.requests.contains { $0.headers["x-vigil-alert-id"] == "blocked" }
        }
        XCTAssertEqual(server.requests.map { $0.headers["x-vigil-alert-id"] ?? "" }.prefix(2), ["old", "blocked"], "the earlier run's record first")
        release()
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(10)))
        let left = try FileManager.default.contentsOfDirectory(atPath: directory + "/hook")
        XCTAssertEqual(left, [], "nothing of the delivered alerts is left in the spool")
        XCTAssertEqual(dispatcher.stats().of("hook").sent, 2)
    }
}
