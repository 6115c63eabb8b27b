import Foundation
@testable import VigilActions
import VigilRules
import VigilTestSupport
import XCTest

/// Issue 17 §6: the `nats` action against a real nats-server (Debian's 2.9.10) with JetStream.
final class NATSTests: XCTestCase {
    /// What the stream holds now, read over a connection of its own.
    func stored(_ server: TestNATSServer, stream: String = "VIGIL") throws -> [NATSConnection.StoredMessage] {
        let credentials = server.credentials.map { NATSCredentials.password(user: $0.user, password: $0.password) }
        let connection = try NATSConnection(try NATSServerURL(server.url), tls: nil, credentials: credentials, timeout: .seconds(10))
        return try connection.storedMessages(stream)
    }

    func testTheParserSplitsServerMessagesFedInPieces() throws {
        var parser = NATSParser()
        let wire = Array("INFO {\"server_id\":\"x\",\"headers\":true}\r\nPING\r\n+OK\r\nMSG a.b 1 _INBOX.x.1 5\r\nhello\r\n".utf8)
            + Array("HMSG c.d 2 12 14\r\nNATS/1.0\r\n\r\nhi\r\n-ERR 'Authorization Violation'\r\nPONG\r\n".utf8)
        var messages: [NATSServerMessage] = []
        for chunk in stride(from: 0, to: wire.count, by: 7) {  // split anywhere, a line or a payload cut in two
            parser.feed(Array(wire[chunk..<min(chunk + 7, wire.count)]))
            while let message = try parser.next() { messages.append(message) }
        }
        XCTAssertEqual(messages, [
            .info("{\"server_id\":\"x\",\"headers\":true}"), .ping, .ok,
            .msg(subject: "a.b", sid: "1", reply: "_INBOX.x.1", headers: nil, payload: Array("hello".utf8)),
            .msg(subject: "c.d", sid: "2", reply: nil, headers: Array("NATS/1.0\r\n\r\n".utf8), payload: Array("hi".utf8)),
            .err("Authorization Violation"), .pong,
        ])
        XCTAssertEqual(NATSParser.status(Array("NATS/1.0 503\r\n\r\n".utf8)), 503)
        var bad = NATSParser()
        bad.feed(Array("HELLO there\r\n".utf8))
        XCTAssertThrowsError(try bad.next())
    }

    func testSubjectsAreHostPriorityAndRuleTokens() {
        XCTAssertEqual(NATSSubject.alert(prefix: "vigil", host: "web-1.prod.example", priority: .warning, rule: "Write below /etc (by a shell)"),
                       "vigil.web-1-prod-example.alerts.warning.write-below-etc-by-a-shell")
        XCTAssertEqual(NATSSubject.token("***"), "_")
        XCTAssertTrue(NATSSubject.isValidPrefix("fleet.vigil"))
        XCTAssertFalse(NATSSubject.isValidPrefix("vigil.>"))
        XCTAssertFalse(NATSSubject.isValidPrefix("a..b"))
    }

    func testConfigurationRefusesPlainTextCredentialsToARemoteServerAndBadNames() throws {
        let cases: [(String, String)] = [
            ("bus: {type: nats, servers: [\"nats://bus.example:4222\"], username: u, password_env: P}", "plain text"),
            ("bus: {type: nats, servers: [\"nats://bus.example:4222\"], token_env: T}", "plain text"),
            ("bus: {type: nats, servers: [\"nats://127.0.0.1:4222\"], ca_file: /etc/hostname}", "tls://"),
            ("bus: {type: nats, servers: [\"http://127.0.0.1\"]}", "nats://"),
            ("bus: {type: nats, servers: [\"nats://u:p@127.0.0.1\"]}", "credentials in the URL"),
            ("bus: {type: nats, servers: [\"nats://127.0.0.1\"], stream: a.b}", "stream name"),
            ("bus: {type: nats, servers: [\"nats://127.0.0.1\"], subject_prefix: \"v.*\"}", "subject tokens"),
            ("bus: {type: nats}", "servers"),
        ]
        for (yaml, expected) in cases {
            XCTAssertThrowsError(try ActionsConfig.decodeYAML("named:\n  \(yaml)"), yaml) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(yaml): \(error)")
            }
        }
        XCTAssertNoThrow(try ActionsConfig.decodeYAML("named:\n  bus: {type: nats, servers: [\"tls://bus.example\"], username: u, password_env: P}"))
        XCTAssertNoThrow(try ActionsConfig.decodeYAML("named:\n  bus: {type: nats, servers: [\"nats://127.0.0.1:4222\"], username: u, password_env: P}"))
    }

    /// Three hosts' dispatchers (each its own host name and spool) publish to one server: the
    /// fleet subscriber sees each alert with its host, the stream holds each once under
    /// PREFIX.HOST.alerts.PRIORITY.RULE with its id as Nats-Msg-Id.
    func testAlertsOfThreeHostsReachTheStreamAndTheFleetSubscriber() throws {
        let server = try TestNATSServer()
        let hosts = ["alpha", "beta.lan", "gamma"]
        let spools = try hosts.map { _ in try temporaryDirectory() }
        var dispatchers: [ActionDispatcher] = []
        for (host, spool) in zip(hosts, spools) {
            var config = try ActionsConfig.decodeYAML("""
            dedup: {window: 0}
            named:
              bus: {type: nats, servers: ["\(server.url)"], backoff: 0.05, max_backoff: 0.2, timeout: 5}
            """)
            config.hostname = host
            config.spoolDirectory = spool
            dispatchers.append(try ActionDispatcher(config: config))
        }
        // The first publish creates the stream; the subscriber is live from its start on.
        dispatchers[0].dispatch(testAlert(rule: "Warm up"), actions: ["bus"])
        waitUntil("the first alert sent") { dispatchers[0].stats().of("bus").sent == 1 }
        let subscriber = try NATSAlertSubscriber(url: server.url, host: nil, minPriority: .error, credentials: nil, caFile: nil, insecureSkipVerify: false)
        let received = ObservedPayloads()
        let reader = Thread {
            while let (subject, json) = subscriber.next() { received.append(subject, json) }
        }
        reader.start()
        var ids: [String] = []
        for (index, dispatcher) in dispatchers.enumerated() {
            let alert = testAlert(testEvent(pid: UInt32(500 + index)), rule: "Shell in container", priority: .critical)
            ids.append(alert.id)
            dispatcher.dispatch(alert, actions: ["bus"])
            dispatcher.dispatch(testAlert(rule: "Quiet one", priority: .notice), actions: ["bus"])  // below --priority ERROR
        }
        waitUntil("3 critical alerts at the subscriber") { received.all.count >= 3 }
        let seen = received.all
        XCTAssertEqual(Set(seen.map(\.subject)), Set(["vigil.alpha.alerts.critical.shell-in-container", "vigil.beta-lan.alerts.critical.shell-in-container",
                                                       "vigil.gamma.alerts.critical.shell-in-container"]))
        XCTAssertEqual(Set(seen.compactMap { $0.json["hostname"] as? String }), Set(hosts))
        XCTAssertEqual(Set(seen.compactMap { $0.json["id"] as? String }), Set(ids))
        XCTAssertFalse(seen.contains { ($0.json["priority"] as? String) == "NOTICE" }, "below the subscriber's priority")

        waitUntil("every alert acknowledged") { dispatchers.allSatisfy { $0.stats().of("bus").sent >= 2 } && dispatchers[0].stats().of("bus").sent == 3 }
        let messages = try stored(server)
        XCTAssertEqual(messages.count, 7, "\(messages.map(\.subject))")
        for (host, id) in zip(["alpha", "beta-lan", "gamma"], ids) {
            let message = messages.first { $0.headers.contains("Nats-Msg-Id: \(id)") }
            XCTAssertEqual(message?.subject, "vigil.\(host).alerts.critical.shell-in-container")
            let json = message.flatMap { try? JSONSerialization.jsonObject(with: Data($0.data)) as? [String: Any] }
            XCTAssertEqual(json?["id"] as? String, id, "the body is the webhook's alert JSON")
            XCTAssertEqual(json?["rule"] as? String, "Shell in container")
        }
        for dispatcher in dispatchers { XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(10))) }
        XCTAssertEqual(spools.map { (try? FileManager.default.contentsOfDirectory(atPath: $0 + "/bus"))?.filter { $0.hasSuffix(".alert") }.count ?? -1 }, [0, 0, 0])
    }

    /// The server goes away: alerts wait in the spool (bounded: the overflow is dropped and
    /// counted); it comes back on the same store: every spooled alert arrives once. A resend
    /// of an alert the stream has (an ack lost) is acknowledged as a duplicate and not stored.
    func testAlertsRaisedWhileTheServerIsAwayArriveOnceAfterItComesBack() throws {
        let server = try TestNATSServer()
        let spool = try temporaryDirectory()
        var config = try ActionsConfig.decodeYAML("""
        dedup: {window: 0}
        named:
          bus: {type: nats, servers: ["\(server.url)"], queue_size: 6, backoff: 0.05, max_backoff: 0.2, timeout: 2}
        """)
        config.hostname = "edge"
        config.spoolDirectory = spool
        let dispatcher = try ActionDispatcher(config: config)
        let first = testAlert(rule: "Before the outage")
        dispatcher.dispatch(first, actions: ["bus"])
        waitUntil("the first alert acknowledged") { dispatcher.stats().of("bus").sent == 1 }

        server.stop()
        var ids: [String] = []
        for index in 0..<8 {
            let alert = testAlert(testEvent(pid: UInt32(700 + index)), rule: "During the outage")
            if index < 6 { ids.append(alert.id) }
            dispatcher.dispatch(alert, actions: ["bus"])
        }
        waitUntil("6 alerts spooled, 2 dropped") {
            let stats = dispatcher.stats().of("bus")
            return stats.spooled == 6 && stats.dropped == 2 && stats.retried > 0
        }
        XCTAssertEqual(dispatcher.stats().of("bus").failed, 0, "a spooled alert waits, it does not fail")

        try server.start()
        waitUntil("the spool emptied", seconds: 60) { dispatcher.stats().of("bus").sent == 7 && dispatcher.stats().of("bus").spooled == 0 }
        let messages = try stored(server)
        XCTAssertEqual(messages.count, 7, "\(messages.map(\.subject))")
        let storedIDs = messages.compactMap { message in
            (try? JSONSerialization.jsonObject(with: Data(message.data)) as? [String: Any])?["id"] as? String
        }
        XCTAssertEqual(storedIDs, [first.id] + ids, "in order, each once")
        XCTAssertTrue(messages.dropFirst().allSatisfy { $0.subject == "vigil.edge.alerts.warning.during-the-outage" })

        // An ack lost: the same alert sent again is a duplicate the stream drops.
        let action = NATSAction(servers: [try NATSServerURL(server.url)], stream: "VIGIL", prefix: "vigil", credentials: nil, tls: nil,
                                timeout: .seconds(5), duplicateWindow: 3600)
        var again = testAlert(rule: "During the outage")
        again.hostname = "edge"
        again.id = ids[2]
        let detail = try action.send(action.payload(again), id: again.id)
        XCTAssertTrue(detail.hasSuffix("(duplicate)"), detail)
        XCTAssertEqual(try stored(server).count, 7, "no duplicate in the stream")
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(10)))
    }

    /// A server started with --user/--pass: the right password publishes, a wrong one is
    /// refused for good (not retried) with the server's reason.
    func testUserAndPasswordAuthentication() throws {
        let server = try TestNATSServer(credentials: (user: "vigil", password: "s3cret-\(UUID().uuidString.prefix(6))"))
        let passwordFile = try temporaryDirectory() + "/password"
        try (server.credentials?.password ?? "").write(toFile: passwordFile, atomically: true, encoding: .utf8)
        let wrongFile = passwordFile + ".wrong"
        try "not-it\n".write(toFile: wrongFile, atomically: true, encoding: .utf8)
        let dispatcher = try makeDispatcher("""
        dedup: {window: 0}
        named:
          good: {type: nats, servers: ["\(server.url)"], username: vigil, password_file: \(passwordFile), spool: false, retries: 1, backoff: 0.05}
          bad: {type: nats, servers: ["\(server.url)"], username: vigil, password_file: \(wrongFile), spool: false, retries: 3, backoff: 0.05}
          anonymous: {type: nats, servers: ["\(server.url)"], spool: false, retries: 3, backoff: 0.05}
        """)
        let alert = testAlert(rule: "Authenticated")
        dispatcher.dispatch(alert, actions: ["good", "bad", "anonymous"])
        waitUntil("all three done") {
            let stats = dispatcher.stats()
            return stats.of("good").sent + stats.of("good").failed == 1 && stats.of("bad").failed == 1 && stats.of("anonymous").failed == 1
        }
        let stats = dispatcher.stats()
        XCTAssertEqual(stats.of("good").sent, 1, stats.of("good").lastError ?? "")
        for name in ["bad", "anonymous"] {
            XCTAssertTrue(stats.of(name).lastError?.contains("Authorization Violation") ?? false, stats.of(name).lastError ?? "no error")
            XCTAssertEqual(stats.of(name).retried, 0, "refused credentials are not retried")
        }
        XCTAssertEqual(try stored(server).compactMap { String(decoding: $0.data, as: UTF8.self).contains(alert.id) ? $0.subject : nil },
                       ["vigil.test-host.alerts.warning.authenticated"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(10)))
    }

    /// A server started with --auth: `token_env` publishes, a wrong token is refused.
    func testTokenAuthentication() throws {
        let token = "tok-\(UUID().uuidString.prefix(8))"
        let server = try TestNATSServer(token: token)
        let good = "VIGIL_TEST_NATS_TOKEN_\(UUID().uuidString.prefix(6))", bad = good + "_BAD"
        setenv(good, token, 1)
        setenv(bad, "not-the-token", 1)
        defer { unsetenv(good); unsetenv(bad) }
        let dispatcher = try makeDispatcher("""
        dedup: {window: 0}
        named:
          good: {type: nats, servers: ["\(server.url)"], token_env: \(good), spool: false, retries: 1, backoff: 0.05}
          bad: {type: nats, servers: ["\(server.url)"], token_env: \(bad), spool: false, retries: 3, backoff: 0.05}
        """)
        dispatcher.dispatch(testAlert(rule: "Token"), actions: ["good", "bad"])
        waitUntil("both done") {
            let stats = dispatcher.stats()
            return stats.of("good").sent + stats.of("good").failed == 1 && stats.of("bad").failed == 1
        }
        XCTAssertEqual(dispatcher.stats().of("good").sent, 1, dispatcher.stats().of("good").lastError ?? "")
        XCTAssertTrue(dispatcher.stats().of("bad").lastError?.contains("Authorization Violation") ?? false, dispatcher.stats().of("bad").lastError ?? "no error")
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(10)))
    }

    /// The connection is kept between alerts; when the server restarted meanwhile, the publish
    /// on the dead connection is tried once more on a fresh one (not a retry: retries 0).
    func testAKeptConnectionThatDiedIsReplacedWithoutLosingTheAlert() throws {
        let server = try TestNATSServer()
        let dispatcher = try makeDispatcher("""
        dedup: {window: 0}
        named:
          bus: {type: nats, servers: ["\(server.url)"], spool: false, retries: 0}
        """)
        dispatcher.dispatch(testAlert(rule: "First"), actions: ["bus"])
        waitUntil("the first alert sent") { dispatcher.stats().of("bus").sent == 1 }
        server.stop()
        try server.start()
        dispatcher.dispatch(testAlert(rule: "Second"), actions: ["bus"])
        waitUntil("the second alert done") { dispatcher.stats().of("bus").sent + dispatcher.stats().of("bus").failed == 2 }
        XCTAssertEqual(dispatcher.stats().of("bus").sent, 2, dispatcher.stats().of("bus").lastError ?? "")
        XCTAssertEqual(dispatcher.stats().of("bus").retried, 0)
        XCTAssertEqual(try stored(server).map(\.subject), ["vigil.test-host.alerts.warning.first", "vigil.test-host.alerts.warning.second"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(10)))
    }

    /// An alert larger than the server's max_payload is refused for good (the server would
    /// close the connection at every try), so the spooled alerts behind it still go out.
    func testAnAlertOverTheServersMaxPayloadDoesNotHoldTheSpool() throws {
        let server = try TestNATSServer(configuration: "max_payload: 4096\n")
        let spool = try temporaryDirectory()
        var config = try ActionsConfig.decodeYAML("""
        dedup: {window: 0}
        named:
          bus: {type: nats, servers: ["\(server.url)"], backoff: 0.05, max_backoff: 0.2, timeout: 2}
        """)
        config.spoolDirectory = spool
        let dispatcher = try ActionDispatcher(config: config)
        dispatcher.dispatch(testAlert(rule: "Too large", output: String(repeating: "x", count: 8000)), actions: ["bus"])
        let small = testAlert(rule: "Small")
        dispatcher.dispatch(small, actions: ["bus"])
        waitUntil("both done") { dispatcher.stats().of("bus").sent + dispatcher.stats().of("bus").failed == 2 }
        let stats = dispatcher.stats().of("bus")
        XCTAssertEqual(stats.sent, 1)
        XCTAssertEqual(stats.failed, 1)
        XCTAssertTrue(stats.lastError?.contains("max_payload (4096)") ?? false, stats.lastError ?? "no error")
        XCTAssertEqual(try stored(server).map(\.subject), ["vigil.test-host.alerts.warning.small"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(10)))
    }

    /// A server that requires TLS (a throw-away CA's certificate) and a password: a tls://
    /// action trusting that CA (`ca_file`) publishes; one trusting the system store fails the
    /// certificate check; a nats:// action is told to use tls://.
    func testTLSWithAPrivateCAAndAPassword() throws {
        let certificates = try TestCertificates()
        let server = try TestNATSServer(credentials: (user: "vigil", password: "tls-\(UUID().uuidString.prefix(6))"),
                                        tls: (certificates.certificateFile, certificates.keyFile))
        let passwordFile = try temporaryDirectory() + "/password"
        try (server.credentials?.password ?? "").write(toFile: passwordFile, atomically: true, encoding: .utf8)
        let secure = "tls://127.0.0.1:\(server.port)"
        let dispatcher = try makeDispatcher("""
        dedup: {window: 0}
        named:
          trusted: {type: nats, servers: ["\(secure)"], ca_file: \(certificates.caFile), username: vigil, password_file: \(passwordFile), spool: false, retries: 1, backoff: 0.05}
          untrusted: {type: nats, servers: ["\(secure)"], username: vigil, password_file: \(passwordFile), spool: false, retries: 0}
          plain: {type: nats, servers: ["\(server.url)"], spool: false, retries: 0}
        """)
        let alert = testAlert(rule: "Over TLS")
        dispatcher.dispatch(alert, actions: ["trusted", "untrusted", "plain"])
        waitUntil("all three done") {
            let stats = dispatcher.stats()
            return ["trusted", "untrusted", "plain"].allSatisfy { stats.of($0).sent + stats.of($0).failed == 1 }
        }
        let stats = dispatcher.stats()
        XCTAssertEqual(stats.of("trusted").sent, 1, stats.of("trusted").lastError ?? "")
        XCTAssertTrue(stats.of("trusted").transport?.contains("certificate verified against \(certificates.caFile)") ?? false,
                      stats.of("trusted").transport ?? "no transport")
        XCTAssertTrue(stats.of("untrusted").lastError?.contains("certificate verify failed") ?? false, stats.of("untrusted").lastError ?? "no error")
        XCTAssertTrue(stats.of("plain").lastError?.contains("requires TLS") ?? false, stats.of("plain").lastError ?? "no error")
        let tls = try TLSContext(TLSVerification(caFile: certificates.caFile, skipVerify: false))
        let connection = try NATSConnection(try NATSServerURL(secure), tls: tls,
                                            credentials: .password(user: "vigil", password: server.credentials?.password ?? ""), timeout: .seconds(10))
        XCTAssertEqual(try connection.storedMessages("VIGIL").map(\.subject), ["vigil.test-host.alerts.warning.over-tls"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(10)))
    }
}

/// What a subscriber received: subjects and parsed JSON.
final class ObservedPayloads: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [(subject: String, json: [String: Any])] = []
    func append(_ subject: String, _ payload: [UInt8]) {
        let json = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any] ?? [:]
        lock.withLock { items.append((subject, json)) }
    }
    var all: [(subject: String, json: [String: Any])] { lock.withLock { items } }
}
