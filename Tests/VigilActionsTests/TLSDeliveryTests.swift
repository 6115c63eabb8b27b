import Foundation
import Logging
import Synchronization
import VigilActions
import VigilTestSupport
import XCTest

/// Webhook, Slack and email over TLS against real servers (python3's http.server behind ssl,
/// Debian's aiosmtpd) with certificates made by the test.
final class TLSDeliveryTests: XCTestCase {
    private let passwordVariable = "VIGIL_TEST_SMTP_PASSWORD"

    override func setUp() {
        setenv(passwordVariable, "s3cret pass", 1)
    }

    /// The dispatcher's log lines (`LEVEL message`), kept in memory.
    private final class LogLines: Sendable {
        private let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }

        var logger: Logger {
            Logger(label: "vigil.actions") { _ in
                Handler { line in self.lines.withLock { $0.append(line) } }
            }
        }

        private struct Handler: LogHandler {
            let sink: @Sendable (String) -> Void
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace
            subscript(metadataKey key: String) -> Logger.Metadata.Value? { get { metadata[key] } set { metadata[key] = newValue } }
            func log(event: LogEvent) {
                sink("\(event.level) \(event.message)")
            }
        }
    }

    /// Dispatches one alert to `name`, shuts down, and returns its counters, checking that the
    /// one delivery failed and nothing reached `received`.
    private func failedDelivery(_ dispatcher: ActionDispatcher, _ name: String, received: () -> Int,
                                file: StaticString = #filePath, line: UInt = #line) -> ActionStats {
        dispatcher.dispatch(testAlert(), actions: [name])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)), file: file, line: line)
        let stats = dispatcher.stats().of(name)
        XCTAssertEqual(stats.failed, 1, file: file, line: line)
        XCTAssertEqual(stats.sent, 0, file: file, line: line)
        XCTAssertEqual(received(), 0, file: file, line: line)
        return stats
    }

    /// Dispatches one alert to `name`, waits until `received` counts it, shuts down, and returns
    /// its counters, checking that it was sent.
    private func delivery(_ dispatcher: ActionDispatcher, _ name: String, received: () -> Int,
                          file: StaticString = #filePath, line: UInt = #line) -> ActionStats {
        dispatcher.dispatch(testAlert(), actions: [name])
        waitUntil("delivery by '\(name)'", file: file, line: line) { received() == 1 }
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)), file: file, line: line)
        let stats = dispatcher.stats().of(name)
        XCTAssertEqual(stats.sent, 1, stats.lastError ?? "", file: file, line: line)
        return stats
    }

    func testSlackOverHTTPSTrustingTheCAFileIsDelivered() throws {
        let certificates = try TestCertificates()
        let server = try TestHTTPSServer(certificates)
        let dispatcher = try makeDispatcher("""
        named:
          chat: {type: slack, url: 'https://localhost:\(server.port)/services/T/B/X', ca_file: '\(certificates.caFile)'}
          ops: {type: webhook, url: 'https://127.0.0.1:\(server.port)/falco', ca_file: '\(certificates.caFile)'}
        """)
        let alert = testAlert()
        dispatcher.dispatch(alert, actions: ["chat", "ops"])
        waitUntil("two POSTs over https") { server.requests.count == 2 }
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        let requests = server.requests.sorted { $0.path < $1.path }
        XCTAssertEqual(requests.map(\.path), ["/falco", "/services/T/B/X"])
        XCTAssertEqual(requests.first?.body, alert.json)
        XCTAssertTrue(requests.last?.body.contains("\"text\":\"WARNING Netcat listener") ?? false)
        let chat = dispatcher.stats().of("chat")
        XCTAssertEqual(chat.sent, 1, chat.lastError ?? "")
        XCTAssertEqual(chat.transport, "https, certificate verified against \(certificates.caFile)")
        XCTAssertEqual(dispatcher.stats().of("ops").sent, 1)
    }

    func testAnUntrustedCertificateFailsWithTheVerifyReasonAndIsCountedAfterRetries() throws {
        let certificates = try TestCertificates()
        let server = try TestHTTPSServer(certificates)
        // No ca_file: the system store, which does not know the test's CA.
        let dispatcher = try makeDispatcher("named: {ops: {type: webhook, url: 'https://localhost:\(server.port)/', retries: 1, backoff: 0.05}}")
        let stats = failedDelivery(dispatcher, "ops") { server.requests.count }
        XCTAssertEqual(stats.retried, 1)
        XCTAssertTrue(stats.lastError?.contains("certificate verify failed: unable to get local issuer certificate") ?? false, stats.lastError ?? "")
    }

    func testAHostnameMismatchFails() throws {
        let certificates = try TestCertificates(names: ["DNS:elsewhere.example"])
        let server = try TestHTTPSServer(certificates)
        let dispatcher = try makeDispatcher("""
        named: {ops: {type: webhook, url: 'https://localhost:\(server.port)/', ca_file: '\(certificates.caFile)', retries: 0}}
        """)
        let stats = failedDelivery(dispatcher, "ops") { server.requests.count }
        XCTAssertTrue(stats.lastError?.hasSuffix("hostname mismatch") ?? false, stats.lastError ?? "")
    }

    func testAServerThatNeverAnswersTheHandshakeTimesOut() throws {
        let silent = try TCPReceiver()  // accepts and reads, never writes
        let dispatcher = try makeDispatcher("named: {ops: {type: webhook, url: 'https://127.0.0.1:\(silent.port)/', timeout: 0.2, retries: 0}}")
        let stats = failedDelivery(dispatcher, "ops") { 0 }
        XCTAssertEqual(stats.lastError, "TLS handshake with 127.0.0.1:\(silent.port): timed out")
        XCTAssertTrue(silent.received.starts(with: [0x16, 0x03]), "a TLS ClientHello record was sent")
    }

    func testInsecureSkipVerifyDeliversToAnUntrustedServer() throws {
        let certificates = try TestCertificates(names: ["DNS:elsewhere.example"])
        let server = try TestHTTPSServer(certificates)
        let log = LogLines()
        let config = try ActionsConfig.decodeYAML("named: {ops: {type: webhook, url: 'https://localhost:\(server.port)/', insecure_skip_verify: true}}")
        let dispatcher = try ActionDispatcher(config: config, logger: log.logger)
        XCTAssertTrue(log.all.contains { $0.hasPrefix("warning action 'ops': insecure_skip_verify is on") }, "\(log.all)")
        let stats = delivery(dispatcher, "ops") { server.requests.count }
        XCTAssertEqual(stats.transport, "https, certificate NOT verified (insecure_skip_verify)")
    }

    private func emailConfig(_ port: UInt16, _ extra: String, retries: Int = 0) -> String {
        "named: {mail: {type: email, server: 'localhost:\(port)', from: vigil@test.example, to: [ops@test.example], retries: \(retries), \(extra)}}"
    }

    func testMailOverSTARTTLSWithAUTH() throws {
        let certificates = try TestCertificates()
        let server = try TestTLSSMTPServer(mode: "starttls", certificates: certificates, username: "alice", password: "s3cret pass")
        // tls is left out: starttls is the default once a username is set.
        let dispatcher = try makeDispatcher(emailConfig(server.port, "username: alice, password_env: \(passwordVariable), ca_file: '\(certificates.caFile)'"))
        let stats = delivery(dispatcher, "mail") { server.messages.count }
        XCTAssertEqual(stats.transport, "SMTP localhost:\(server.port), tls: starttls, certificate verified against \(certificates.caFile), AUTH as alice")
        XCTAssertTrue(server.messages.first?.contains("Subject: [vigil] WARNING Netcat listener") ?? false)
    }

    func testMailOverImplicitTLSWithThePasswordFromAFile() throws {
        let certificates = try TestCertificates()
        let server = try TestTLSSMTPServer(mode: "implicit", certificates: certificates, username: "bob", password: "from a file")
        let passwordFile = certificates.directory + "/password"
        try "from a file\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        let dispatcher = try makeDispatcher(emailConfig(
            server.port, "tls: implicit, username: bob, password_file: '\(passwordFile)', ca_file: '\(certificates.caFile)'"))
        XCTAssertEqual(delivery(dispatcher, "mail") { server.messages.count }.transport?.hasPrefix("SMTP localhost:\(server.port), tls: implicit"), true)
    }

    func testAWrongPasswordFailsWithTheServersReplyAndIsNotRetried() throws {
        let certificates = try TestCertificates()
        let server = try TestTLSSMTPServer(mode: "starttls", certificates: certificates, username: "alice", password: "another one")
        let log = LogLines()
        let config = try ActionsConfig.decodeYAML(emailConfig(
            server.port, "username: alice, password_env: \(passwordVariable), ca_file: '\(certificates.caFile)'", retries: 2))
        let dispatcher = try ActionDispatcher(config: config, logger: log.logger)
        let stats = failedDelivery(dispatcher, "mail") { server.messages.count }
        XCTAssertEqual(stats.retried, 0)
        let error = stats.lastError ?? ""
        XCTAssertTrue(error.contains("AUTH PLAIN: 535"), error)
        let secrets = ["s3cret", Data("\u{0}alice\u{0}s3cret pass".utf8).base64EncodedString()]
        XCTAssertTrue(log.all.contains { $0.hasPrefix("info action 'mail': SMTP localhost:\(server.port), tls: starttls") }, "\(log.all)")
        XCTAssertTrue(log.all.contains { $0.contains("AUTH PLAIN: 535") }, "\(log.all)")
        for text in log.all + [error] {
            XCTAssertFalse(secrets.contains { text.contains($0) }, text)
        }
    }

    func testCredentialsAreNeverSentToAServerWithoutSTARTTLS() throws {
        let certificates = try TestCertificates()
        let server = try TestSMTPServer()  // plain aiosmtpd: no STARTTLS offered
        let dispatcher = try makeDispatcher(emailConfig(
            server.port, "tls: starttls, username: alice, password_env: \(passwordVariable), ca_file: '\(certificates.caFile)'"))
        let stats = failedDelivery(dispatcher, "mail") { server.messages.count }
        XCTAssertTrue(stats.lastError?.contains("does not offer STARTTLS (tls: starttls); nothing sent") ?? false, stats.lastError ?? "")
    }

    func testAMissingPasswordVariableIsAStartupErrorNamingTheKey() throws {
        let config = try ActionsConfig.decodeYAML(emailConfig(25, "username: alice, password_env: VIGIL_TEST_UNSET_VARIABLE"))
        XCTAssertThrowsError(try ActionDispatcher(config: config)) { error in
            XCTAssertEqual("\(error)", "actions.named.mail.password_env: the environment variable VIGIL_TEST_UNSET_VARIABLE is not set or empty")
        }
    }

    func testACAFileWithoutCertificatesIsAStartupErrorNamingTheKey() throws {
        let certificates = try TestCertificates()
        let config = try ActionsConfig.decodeYAML("named: {ops: {type: webhook, url: 'https://localhost/', ca_file: '\(certificates.directory)/san.ext'}}")
        XCTAssertThrowsError(try ActionDispatcher(config: config)) { error in
            XCTAssertTrue("\(error)".hasPrefix("actions.named.ops.ca_file: cannot load '\(certificates.directory)/san.ext'"), "\(error)")
        }
    }
}
