import Foundation
@testable import VigilActions
import VigilTestSupport
import XCTest

/// Issue 17 §6: three real daemons (each its own host name and state directory) publish their
/// alerts to one real nats-server with JetStream; `vigil fleet alerts` shows them live with
/// their hosts; the server goes away and comes back: nothing lost, nothing twice in the stream.
final class FleetNATSTests: XCTestCase {
    /// The stream's messages now, over a connection of the test's own.
    func stored(_ server: TestNATSServer) throws -> [(subject: String, alert: [String: Any])] {
        let connection = try NATSConnection(try NATSServerURL(server.url), tls: nil, credentials: nil, timeout: .seconds(10))
        return try connection.storedMessages("VIGIL").map { message in
            (message.subject, (try? JSONSerialization.jsonObject(with: Data(message.data)) as? [String: Any]) ?? [:])
        }
    }

    func testThreeDaemonsPublishToOneJetStreamAndFleetAlertsShowsEveryHost() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let server = try TestNATSServer()
        let tag = UUID().uuidString.prefix(8).lowercased()
        let hosts = ["fleet-a-\(tag)", "fleet-b-\(tag)", "fleet-c-\(tag)"]
        var daemons: [TestDaemon] = []
        for host in hosts {
            daemons.append(try TestDaemon(extraConfig: """
            hostname: \(host)
            actions:
              dedup: {window: 0}
              named:
                bus: {type: nats, servers: ["\(server.url)"], backoff: 0.05, max_backoff: 0.5, timeout: 2}
            """))
        }
        for daemon in daemons {
            let created = try daemon.createRules("""
            - rule: Fleet marker \(tag)
              desc: the test's marker files were opened, seen by every daemon
              condition: evt.type in (open, openat, openat2) and fd.name startswith /tmp/vigil-fleet-\(tag)-
              output: "fleet marker %fd.name opened by %proc.name"
              priority: ERROR
              actions: [bus]
            """, name: "fleet-\(tag).yaml")
            XCTAssertEqual(created.status, 0, created.stderr)
        }
        func trigger(_ marker: String) throws {
            try runProgram("/bin/sh", ["-c", "cat /tmp/vigil-fleet-\(tag)-\(marker) 2>/dev/null; true"])
        }
        func markerFile(_ alert: [String: Any]) -> String? { (alert["output_fields"] as? [String: Any])?["fd.name"] as? String }

        // Live: one open, three daemons, three alerts; the fleet client (subscribed at some
        // point after its start) sees a marker from every host.
        let fleet = try StreamClient(["fleet", "alerts", "--server", server.url, "--json", "--priority", "ERROR"])
        var round = 0
        let allHosts = waitUntil(seconds: 60) {
            round += 1
            try? trigger("live-\(round)")
            let seen = Dictionary(grouping: fleet.objects.filter { ($0["rule"] as? String) == "Fleet marker \(tag)" }) { markerFile($0) ?? "" }
            return seen.values.contains { Set($0.compactMap { $0["hostname"] as? String }) == Set(hosts) } || !fleet.process.isRunning
        }
        XCTAssertTrue(allHosts, "fleet alerts saw: \(fleet.objects.compactMap { $0["hostname"] })\n\(fleet.stderr)\n\(daemons.map(\.diagnostics).joined(separator: "\n"))")

        // The stream holds each (host, marker) once, under vigil.HOST.alerts.error.RULE.
        let subject = "fleet-marker-\(tag)"
        let liveDelivered = waitUntil(seconds: 60) { (try? self.stored(server).count) == 3 * round }
        XCTAssertTrue(liveDelivered, "stream: \(String(describing: try? stored(server).count)), rounds: \(round)")
        for (subjectName, alert) in try stored(server) {
            let host = alert["hostname"] as? String ?? ""
            XCTAssertTrue(hosts.contains(host), host)
            XCTAssertEqual(subjectName, "vigil.\(host).alerts.error.\(subject)")
        }

        // The server goes away: each daemon spools its alert; it comes back: each arrives once.
        server.stop()
        try trigger("outage")
        for daemon in daemons {
            let spooled = waitUntil(seconds: 60) { (try? daemon.request("GET", "/v1/status").body.contains("\"spooled\":1")) ?? false }
            XCTAssertTrue(spooled, daemon.diagnostics)
        }
        try server.start()
        let outageFile = "/tmp/vigil-fleet-\(tag)-outage"
        let arrived = waitUntil(seconds: 60) { ((try? self.stored(server)) ?? []).filter { markerFile($0.alert) == outageFile }.count >= 3 }
        XCTAssertTrue(arrived, daemons.map(\.diagnostics).joined(separator: "\n"))
        let messages = try stored(server)
        let outage = messages.filter { markerFile($0.alert) == outageFile }
        XCTAssertEqual(outage.compactMap { $0.alert["hostname"] as? String }.sorted(), hosts, "one per host, none twice")
        let ids = messages.compactMap { $0.alert["id"] as? String }
        XCTAssertEqual(Set(ids).count, ids.count, "no alert twice in the stream")
        XCTAssertEqual(messages.count, 3 * round + 3)
        for daemon in daemons {
            XCTAssertTrue(try daemon.request("GET", "/v1/status").body.contains("\"spooled\":0"), daemon.diagnostics)
        }

        // `vigil fleet alerts` outlived the outage: it subscribed again and shows new alerts.
        var after = 0
        let again = waitUntil(seconds: 60) {
            after += 1
            try? trigger("after-\(after)")
            let seen = fleet.objects.filter { (markerFile($0) ?? "").contains("-after-") }
            return hosts.allSatisfy { host in seen.contains { ($0["hostname"] as? String) == host } } || !fleet.process.isRunning
        }
        XCTAssertTrue(again && fleet.process.isRunning, "after the outage: \(fleet.stderr)")
        XCTAssertTrue(fleet.stderr.contains("reconnecting"), fleet.stderr)
        fleet.stop()
    }
}
