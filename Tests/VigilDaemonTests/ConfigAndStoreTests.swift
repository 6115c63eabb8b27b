import Foundation
import VigilDaemon
import VigilRules
import XCTest

/// The configuration file and the rules directory, without a kernel.
final class ConfigAndStoreTests: XCTestCase {
    func testEveryKeyIsReadAndMissingOnesKeepTheirDefaults() throws {
        let config = try DaemonConfig.parse("""
        socket: /run/x/v.sock
        socket_group: adm
        rules_dir: /srv/rules
        default_rules: false
        ring_mib: 16
        kernel_pushdown: false
        stream_buffer_kib: 128
        log_level: debug
        metrics:
          enabled: true
          address: 0.0.0.0
          port: 9999
        actions:
          default_actions: [stdout, log]
          named:
            hook: {type: webhook, url: "http://127.0.0.1:1/"}
        """, file: "vigil.yaml")
        XCTAssertEqual(config.socketPath, "/run/x/v.sock")
        XCTAssertEqual(config.socketGroup, "adm")
        XCTAssertEqual(config.rulesDirectory, "/srv/rules")
        XCTAssertFalse(config.defaultRules)
        XCTAssertEqual(config.ringMiB, 16)
        XCTAssertFalse(config.kernelPushdown)
        XCTAssertEqual(config.streamBufferBytes, 128 << 10)
        XCTAssertEqual(config.logLevel, "debug")
        XCTAssertEqual(config.metrics.address, "0.0.0.0")
        XCTAssertEqual(config.metrics.port, 9999)
        XCTAssertTrue(config.metrics.enabled)
        XCTAssertEqual(config.actions.defaultActions, ["stdout", "log"], "the actions section is VigilActions' configuration")
        XCTAssertEqual(config.actions.named["hook"]?.kind, .webhook)

        let defaults = try DaemonConfig.parse("", file: "empty.yaml")
        XCTAssertEqual(defaults, DaemonConfig())
        XCTAssertEqual(defaults.socketPath, "/run/vigil/vigil.sock")
        XCTAssertEqual(defaults.rulesDirectory, "/etc/vigil/rules.d")
        XCTAssertFalse(defaults.metrics.enabled)
        XCTAssertEqual(defaults.metrics.address, "127.0.0.1")
    }

    func testBadKeysAndValuesNameTheirLocation() {
        let cases: [(String, String)] = [
            ("sockett: /x\n", "c.yaml:1:1: unknown key 'sockett'"),
            ("ring_mib: 3\n", "c.yaml:1:11: 'ring_mib' must be a power of two"),
            ("metrics:\n  enabled: maybe\n", "c.yaml:2:12: 'metrics.enabled' must be true or false"),
            ("metrics:\n  bogus: 1\n", "c.yaml:2:3: unknown key 'metrics.bogus'"),
            ("rules_dir: relative\n", "c.yaml:1:12: 'rules_dir' must be an absolute path"),
            ("socket: [\n", "c.yaml:2:1: YAML:"),
            ("actions:\n  queue_sise: 5\n", "c.yaml:2:3: actions.queue_sise: unknown key 'queue_sise'"),
            ("actions:\n  named:\n    ops: {type: webhook, url: 'ftp://x'}\n", "c.yaml:3:31: actions.named.ops.url: 'ftp://x' is not an http:// URL"),
            ("actions:\n  default_actions: [nosuch]\n", "c.yaml:2:20: actions.default_actions: unknown action 'nosuch'"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try DaemonConfig.parse(text, file: "c.yaml"), text) { error in
                XCTAssertTrue("\(error)".hasPrefix(expected), "\(error) should start with \(expected)")
            }
        }
    }

    func testTheStoreRefusesABadRuleAndKeepsWhatRuns() throws {
        let directory = NSTemporaryDirectory() + "vigil-store-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = RuleStore(directory: directory, defaults: false)
        XCTAssertEqual(try store.load().rules.count, 0)
        let good = "- rule: r1\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n"
        var applied: RuleSet?
        let (set, created) = try store.put(name: "one", format: .yaml, text: good, source: "one.yaml") { applied = $0 }
        XCTAssertTrue(created)
        XCTAssertEqual(set.ruleNames, ["r1"])
        XCTAssertEqual(applied?.rules.map(\.rule.name), ["r1"])
        XCTAssertEqual(try String(contentsOfFile: directory + "/one.yaml", encoding: .utf8), good)

        applied = nil
        XCTAssertThrowsError(try store.put(name: "two", format: .yaml, text: "- rule: r1\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n",
                                           source: "/home/me/two.yaml") { applied = $0 }) { error in
            XCTAssertTrue("\(error)".hasPrefix("/home/me/two.yaml:1:9: duplicate rule 'r1'"), "\(error)")
        }
        XCTAssertNil(applied, "nothing applied")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/two.yaml"), "nothing written")
        XCTAssertEqual(store.list().map(\.name), ["one"])

        XCTAssertThrowsError(try store.put(name: "../etc", format: .yaml, text: good, source: nil) { _ in })
        XCTAssertThrowsError(try store.delete(name: "default") { _ in }) { XCTAssertEqual($0 as? RuleStoreError, .builtIn("default")) }

        // A new store over the same directory (a restart) has the rules.
        let again = RuleStore(directory: directory, defaults: true)
        let reloaded = try again.load()
        XCTAssertTrue(reloaded.rules.contains { $0.rule.name == "r1" })
        XCTAssertEqual(again.list().map(\.name), ["default", "one"])
        try again.delete(name: "one") { _ in }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/one.yaml"))
    }
}
