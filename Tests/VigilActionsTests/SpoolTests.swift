import Foundation
@testable import VigilActions
import XCTest

/// The spool's bounds and recovery, with a receiver that is down (a port nothing listens on).
final class SpoolTests: XCTestCase {
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "vigil-spool-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testADownReceiverFillsTheSpoolToItsBoundAndTheRestIsDroppedAndCounted() throws {
        let directory = try temporaryDirectory()
        let port = try TestSMTPServer.freePort()
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
}
