import Foundation
import VigilDaemon
import VigilFIM
import VigilRules
import VigilSensors
import XCTest
import Yams

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
        api:
          max_header_kib: 4
          request_timeout_seconds: 3
          max_connections: 5
          max_subscribers: 2
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
        XCTAssertEqual(config.api.maxHeaderBytes, 4 << 10)
        XCTAssertEqual(config.api.requestTimeout, .seconds(3))
        XCTAssertEqual(config.api.maxConnections, 5)
        XCTAssertEqual(config.api.maxSubscribers, 2)
        XCTAssertEqual(config.actions.defaultActions, ["stdout", "log"], "the actions section is VigilActions' configuration")
        XCTAssertEqual(config.actions.named["hook"]?.kind, .webhook)

        let defaults = try DaemonConfig.parse("", file: "empty.yaml")
        XCTAssertEqual(defaults, DaemonConfig())
        XCTAssertEqual(defaults.socketPath, "/run/vigil/vigil.sock")
        XCTAssertEqual(defaults.rulesDirectory, "/etc/vigil/rules.d")
        XCTAssertFalse(defaults.metrics.enabled)
        XCTAssertEqual(defaults.metrics.address, "127.0.0.1")
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path

    func testTheDocumentedFileIsEveryKeyWithItsDefault() throws {
        let doc = try String(contentsOfFile: Self.repository + "/docs/config.md", encoding: .utf8)
        let start = try XCTUnwrap(doc.range(of: "```yaml\n"))
        let end = try XCTUnwrap(doc.range(of: "```", range: start.upperBound..<doc.endIndex))
        let documented = try DaemonConfig.parse(String(doc[start.upperBound..<end.lowerBound]), file: "docs/config.md")
        XCTAssertEqual(documented, DaemonConfig(), "docs/config.md's first YAML block is the defaults, key by key")
        let keys = String(doc[start.upperBound..<end.lowerBound]).split(separator: "\n")
            .filter { !$0.hasPrefix("#") && !$0.hasPrefix(" ") && $0.contains(":") }.map { String($0.prefix { $0 != ":" }) }
        XCTAssertEqual(Set(keys), ["socket", "socket_group", "rules_dir", "default_rules", "ring_mib", "kernel_pushdown",
                                   "stream_buffer_kib", "api", "log_level", "metrics", "integrity", "actions",
                                   "syscall_buffer_bytes", "syscall_string_bytes", "state_dir", "fim", "seccomp", "hostname", "output_fields", "dns_baseline", "containerd", "cri", "docker"])
    }

    func testHostnameGoesToEveryAlertWhateverTheKeyOrder() throws {
        XCTAssertNil(try DaemonConfig.parse("", file: "h.yaml").actions.hostname)
        for yaml in ["hostname: web-1.prod\nactions:\n  queue_size: 5\n", "actions:\n  queue_size: 5\nhostname: web-1.prod\n"] {
            let config = try DaemonConfig.parse(yaml, file: "h.yaml")
            XCTAssertEqual(config.hostname, "web-1.prod")
            XCTAssertEqual(config.actions.hostname, "web-1.prod", yaml)
        }
        XCTAssertThrowsError(try DaemonConfig.parse("hostname: \"a b\"\n", file: "h.yaml")) { error in
            XCTAssertTrue("\(error)".contains("h.yaml:1:11: 'hostname' must be 1-255 printable ASCII characters"), "\(error)")
        }
    }

    func testOutputFieldsGoToEveryAlertWhateverTheKeyOrder() throws {
        XCTAssertEqual(try DaemonConfig.parse("", file: "o.yaml").actions.outputFields, .all)
        for yaml in ["output_fields: output\nactions:\n  queue_size: 5\n", "actions:\n  queue_size: 5\noutput_fields: output\n"] {
            let config = try DaemonConfig.parse(yaml, file: "o.yaml")
            XCTAssertEqual(config.outputFields, .output)
            XCTAssertEqual(config.actions.outputFields, .output, yaml)
        }
        XCTAssertThrowsError(try DaemonConfig.parse("hostname: h\noutput_fields: some\n", file: "o.yaml")) { error in
            XCTAssertTrue("\(error)".contains("o.yaml:2:16: 'output_fields' must be one of all, output, not 'some'"), "\(error)")
        }
    }

    func testContainerdCRIAndDockerKeysAndTheirErrors() throws {
        XCTAssertEqual(try DaemonConfig.parse("", file: "c.yaml").dockerSocket, "/var/run/docker.sock")
        XCTAssertEqual(try DaemonConfig.parse("docker:\n  socket: /run/user/1000/docker.sock\n", file: "c.yaml").dockerSocket, "/run/user/1000/docker.sock")
        let defaults = try XCTUnwrap(try DaemonConfig.parse("", file: "c.yaml").containerd, "asked by default")
        XCTAssertEqual(defaults.socket, "/run/containerd/containerd.sock")
        XCTAssertEqual(defaults.namespaces, ["k8s.io", "moby", "default"])
        let config = try XCTUnwrap(try DaemonConfig.parse(
            "containerd:\n  socket: /run/k3s/containerd/containerd.sock\n  namespaces: [k8s.io]\n  timeout_ms: 250\n", file: "c.yaml").containerd)
        XCTAssertEqual(config.client().socketPath, "/run/k3s/containerd/containerd.sock")
        XCTAssertEqual(config.client().namespaces, ["k8s.io"])
        XCTAssertEqual(config.client().timeout, .milliseconds(250))
        XCTAssertNil(try DaemonConfig.parse("containerd:\n  enabled: false\n", file: "c.yaml").containerd)
        let cri = try XCTUnwrap(try DaemonConfig.parse("", file: "c.yaml").cri, "asked by default")
        XCTAssertEqual(cri.client().socketPath, "/var/run/crio/crio.sock")
        XCTAssertEqual(cri.client().runtime, .crio)
        let k3s = try XCTUnwrap(try DaemonConfig.parse("cri:\n  socket: /run/k3s/containerd/containerd.sock\n  timeout_ms: 300\n", file: "c.yaml").cri)
        XCTAssertEqual(k3s.client().socketPath, "/run/k3s/containerd/containerd.sock")
        XCTAssertEqual(k3s.client().timeout, .milliseconds(300))
        XCTAssertNil(try DaemonConfig.parse("cri:\n  enabled: false\n", file: "c.yaml").cri)
        for (text, message) in [("containerd:\n  socket: run/c.sock\n", "c.yaml:2:11: 'containerd.socket' must be an absolute path"),
                                ("containerd:\n  namespaces: []\n", "c.yaml:2:15: 'containerd.namespaces' must list at least one namespace"),
                                ("containerd:\n  timeout_ms: 0\n", "c.yaml:2:15: 'containerd.timeout_ms' must be at least 1"),
                                ("containerd:\n  address: x\n", "c.yaml:2:3: unknown key 'containerd.address'"),
                                ("cri:\n  socket: crio.sock\n", "c.yaml:2:11: 'cri.socket' must be an absolute path"),
                                ("cri:\n  timeout_ms: 0\n", "c.yaml:2:15: 'cri.timeout_ms' must be at least 1"),
                                ("cri:\n  namespaces: [k8s.io]\n", "c.yaml:2:3: unknown key 'cri.namespaces': use enabled, socket, timeout_ms"),
                                ("containerd:\n  address: x\n", "c.yaml:2:3: unknown key 'containerd.address': use enabled, socket, namespaces, timeout_ms"),
                                ("docker:\n  socket: docker.sock\n", "c.yaml:2:11: 'docker.socket' must be an absolute path"),
                                ("docker:\n  host: x\n", "c.yaml:2:3: unknown key 'docker.host': use socket")] {
            XCTAssertThrowsError(try DaemonConfig.parse(text, file: "c.yaml")) { error in
                XCTAssertTrue("\(error)".hasPrefix(message), "\(error)")
            }
        }
    }

    func testDNSBaselineKeysAndTheirErrors() throws {
        let config = try DaemonConfig.parse("dns_baseline:\n  learning_seconds: 5\n  max_names: 2\n  max_images: 3\n", file: "d.yaml")
        XCTAssertEqual(config.dnsBaseline.learningNs, 5_000_000_000)
        XCTAssertEqual(config.dnsBaseline.maxNames, 2)
        XCTAssertEqual(config.dnsBaseline.maxImages, 3)
        let defaults = try DaemonConfig.parse("", file: "d.yaml").dnsBaseline
        XCTAssertEqual(defaults.learningNs, 600_000_000_000, "10 minutes")
        for (text, message) in [("dns_baseline:\n  max_names: 0\n", "d.yaml:2:14: 'dns_baseline.max_names' must be at least 1"),
                                ("dns_baseline:\n  window: 1\n", "d.yaml:2:3: unknown key 'dns_baseline.window'")] {
            XCTAssertThrowsError(try DaemonConfig.parse(text, file: "d.yaml")) { error in
                XCTAssertTrue("\(error)".hasPrefix(message), "\(error)")
            }
        }
    }

    func testFIMWatchLists() throws {
        let config = try DaemonConfig.parse("""
        fim:
          profiles: [users, access]
          paths: /etc/hosts
          directories:
            - /etc/cron.d
            - {path: /etc/systemd/system, recursive: true}
          globs: ["/home/*/.bashrc"]
          diff_max_bytes: 0
        """, file: "f.yaml")
        var expected = WatchSpec(profiles: [.users, .access], paths: ["/etc/hosts"],
                                 directories: [.init("/etc/cron.d"), .init("/etc/systemd/system", recursive: true)],
                                 globs: ["/home/*/.bashrc"])
        expected.diffMaxBytes = 0
        XCTAssertEqual(config.fim, expected)
        XCTAssertTrue(try DaemonConfig.parse("", file: "e.yaml").fim.isEmpty)
        // fim.containers: the same keys, for every container; alone it is not empty
        let containers = try DaemonConfig.parse("fim:\n  containers:\n    profiles: [users]\n    paths: [/etc/hosts]\n", file: "g.yaml")
        XCTAssertEqual(containers.fim.containers, WatchSpec(profiles: [.users], paths: ["/etc/hosts"]))
        XCTAssertTrue(containers.fim.paths.isEmpty)
        XCTAssertFalse(containers.fim.isEmpty)
    }

    func testSeccompRecordLabel() throws {
        XCTAssertEqual(try DaemonConfig.parse("seccomp:\n  record: {label: vigil.seccomp=learn}\n", file: "s.yaml").seccompRecordLabel,
                       "vigil.seccomp=learn")
        XCTAssertEqual(try DaemonConfig.parse("seccomp:\n  record:\n    label: learn\n", file: "s.yaml").seccompRecordLabel, "learn")
        XCTAssertNil(try DaemonConfig.parse("", file: "s.yaml").seccompRecordLabel)
        XCTAssertNil(try DaemonConfig.parse("seccomp:\n  record: {}\n", file: "s.yaml").seccompRecordLabel)
    }

    func testSyscallBoundsAndTheirErrors() throws {
        let config = try DaemonConfig.parse("syscall_buffer_bytes: 0\nsyscall_string_bytes: 64\n", file: "b.yaml")
        XCTAssertEqual(config.syscallBounds, SyscallBounds(bufferBytes: 0, stringBytes: 64))
        XCTAssertThrowsError(try DaemonConfig.parse("syscall_string_bytes: 0\n", file: "b.yaml")) { error in
            XCTAssertTrue("\(error)".contains("b.yaml:1:"), "\(error)")
            XCTAssertTrue("\(error)".contains("syscall_string_bytes"), "\(error)")
        }
        XCTAssertThrowsError(try DaemonConfig.parse("syscall_buffer_bytes: 5000\n", file: "b.yaml")) { error in
            XCTAssertTrue("\(error)".contains("4096"), "\(error)")
        }
    }

    func testIntegrityKeysAndTheirErrors() throws {
        let config = try DaemonConfig.parse("integrity:\n  heartbeat_interval_ms: 500\n  heartbeat_bound_ms: 1500\n  check_interval_ms: 0\n", file: "i.yaml")
        XCTAssertEqual(config.integrity.heartbeatIntervalMs, 500)
        XCTAssertEqual(config.integrity.heartbeatBoundMs, 1500)
        XCTAssertEqual(config.integrity.checkIntervalMs, 0)
        for (text, message) in [("integrity:\n  heartbeat_bound_ms: 50\n", "i.yaml:2:23: 'integrity.heartbeat_bound_ms' must be at least 100"),
                                ("integrity:\n  check_every: 1\n", "i.yaml:2:3: unknown key 'integrity.check_every'")] {
            XCTAssertThrowsError(try DaemonConfig.parse(text, file: "i.yaml")) { error in
                XCTAssertTrue("\(error)".hasPrefix(message), "\(error)")
            }
        }
    }

    func testTheDaemonSetsConfigurationLoads() throws {
        let text = try String(contentsOfFile: Self.repository + "/deploy/daemonset.yaml", encoding: .utf8)
        let documents = try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
        let map = try XCTUnwrap(documents.first { $0["kind"] as? String == "ConfigMap" })
        let yaml = try XCTUnwrap((map["data"] as? [String: Any])?["vigil.yaml"] as? String)
        let config = try DaemonConfig.parse(yaml, file: "deploy/daemonset.yaml")
        XCTAssertTrue(config.metrics.enabled)
        XCTAssertEqual(config.actions.named["stdout"]?.kind, .stdout)
    }

    func testBadKeysAndValuesNameTheirLocation() {
        let cases: [(String, String)] = [
            ("sockett: /x\n", "c.yaml:1:1: unknown key 'sockett'"),
            ("ring_mib: 3\n", "c.yaml:1:11: 'ring_mib' must be a power of two"),
            ("metrics:\n  enabled: maybe\n", "c.yaml:2:12: 'metrics.enabled' must be true or false"),
            ("metrics:\n  bogus: 1\n", "c.yaml:2:3: unknown key 'metrics.bogus'"),
            ("api:\n  max_conections: 1\n", "c.yaml:2:3: unknown key 'api.max_conections'"),
            ("api:\n  max_subscribers: 0\n", "c.yaml:2:20: 'api.max_subscribers' must be at least 1"),
            ("rules_dir: relative\n", "c.yaml:1:12: 'rules_dir' must be an absolute path"),
            ("socket: [\n", "c.yaml:2:1: YAML:"),
            ("actions:\n  queue_sise: 5\n", "c.yaml:2:3: actions.queue_sise: unknown key 'queue_sise'"),
            ("actions:\n  named:\n    ops: {type: webhook, url: 'ftp://x'}\n", "c.yaml:3:31: actions.named.ops.url: 'ftp://x' is not an http:// or https:// URL"),
            ("actions:\n  named:\n    m: {type: email, server: mx, from: a@b, to: [a@b], password_env: P}\n",
             "c.yaml:3:70: actions.named.m.password_env: a password needs 'username'"),
            ("actions:\n  named:\n    ops: {type: webhook, url: 'https://x', ca_file: /nonexistent.pem}\n",
             "c.yaml:3:53: actions.named.ops.ca_file: cannot read '/nonexistent.pem': No such file or directory"),
            ("actions:\n  default_actions: [nosuch]\n", "c.yaml:2:20: actions.default_actions: unknown action 'nosuch'"),
            ("fim:\n  profiles: [users, nosuch]\n", "c.yaml:2:13: 'fim.profiles': unknown profile 'nosuch'"),
            ("fim:\n  paths: [etc/passwd]\n", "c.yaml:2:10: 'fim.paths': 'etc/passwd' must be an absolute path"),
            ("fim:\n  directories:\n    - {path: /etc, recursve: true}\n", "c.yaml:3:20: unknown key 'fim.directories.recursve'"),
            ("fim:\n  watch: [/etc]\n", "c.yaml:2:3: unknown key 'fim.watch'"),
            ("fim:\n  containers:\n    containers: {}\n", "c.yaml:3:5: unknown key 'fim.containers.containers'"),
            ("seccomp:\n  recrd: {label: x}\n", "c.yaml:2:3: unknown key 'seccomp.recrd'"),
            ("seccomp:\n  record: {lable: x}\n", "c.yaml:2:12: unknown key 'seccomp.record.lable'"),
            ("seccomp:\n  record: {label: '=x'}\n", "c.yaml:2:19: 'seccomp.record.label' must be KEY or KEY=VALUE"),
            ("seccomp:\n  record: {label: [a]}\n", "c.yaml:2:19: "),
            ("fim:\n  diff_max_bytes: -1\n", "c.yaml:2:19: 'fim.diff_max_bytes' must be 0 (no diffs) to 4194304"),
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
        XCTAssertThrowsError(try store.put(name: "two", format: .yaml, text: "- rule: r2\n  desc: d\n  condition: evt.type = execve and no_such_macro\n  output: o\n  priority: INFO\n",
                                           source: "/home/me/two.yaml") { applied = $0 }) { error in
            XCTAssertTrue("\(error)".hasPrefix("/home/me/two.yaml:3:"), "\(error)")
            XCTAssertTrue("\(error)".contains("undefined macro 'no_such_macro'"), "\(error)")
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

    /// Issue 12 section 5 in the store: a rule needing a field Vigil lacks is skipped and the
    /// file's other rules run (`skipped(in:)` names it); a file whose rules are all skipped is
    /// refused with one line per rule, nothing written or applied.
    func testTheStoreKeepsTheRulesThatLoadAndRefusesAFileOfOnlySkippedRules() throws {
        let directory = NSTemporaryDirectory() + "vigil-store-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = RuleStore(directory: directory, defaults: false)
        try store.load()
        let mixed = "- rule: good\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n"
            + "- rule: typo\n  desc: d\n  condition: evt.type = execve and proc.nmae = x\n  output: o\n  priority: INFO\n"
        var applied: RuleSet?
        let (set, _) = try store.put(name: "mixed", format: .yaml, text: mixed, source: "mixed.yaml") { applied = $0 }
        XCTAssertEqual(applied?.rules.map(\.rule.name), ["good"])
        XCTAssertEqual(store.skipped(in: set).map(\.description),
                       ["mixed.yaml:6:9: rule 'typo' skipped: Vigil has no field 'proc.nmae' (mixed.yaml:8:36); did you mean 'proc.name', 'proc.aexe', 'proc.aname'?"])

        applied = nil
        let onlySkipped = "- rule: k8s\n  desc: d\n  condition: evt.type = execve and ka.target.namespace = f\n  output: o\n  priority: INFO\n"
        XCTAssertThrowsError(try store.put(name: "k8s", format: .yaml, text: onlySkipped, source: "k8s.yaml") { applied = $0 }) { error in
            XCTAssertEqual("\(error)", "k8s.yaml:1:1: nothing of this file would run: every rule of it needs a field Vigil does not have\n"
                           + "k8s.yaml:1:9: rule 'k8s' skipped: Vigil has no field 'ka.target.namespace' (k8s.yaml:3:36)")
        }
        XCTAssertNil(applied, "nothing applied")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/k8s.yaml"), "nothing written")
        XCTAssertEqual(store.list().map(\.name), ["mixed"])
    }

    func testTheStoreCreatesARulesDirectoryWhoseParentsDoNotExist() throws {
        let root = NSTemporaryDirectory() + "vigil-fresh-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let paths = DaemonPaths(root: root)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root), "the root does not exist yet")
        let store = RuleStore(directory: paths.rulesDirectory, defaults: true)
        XCTAssertGreaterThan(try store.load().rules.count, 0, "the embedded defaults")
        for path in [root + "/etc", root + "/etc/vigil", root + "/etc/vigil/rules.d"] {
            XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, 0o755, path)
        }
    }

    func testTheRootMovesEveryDefaultPathAndExplicitPathsStay() throws {
        XCTAssertEqual(DaemonPaths().configFile, "/etc/vigil/vigil.yaml")
        XCTAssertEqual(DaemonConfig().socketPath, "/run/vigil/vigil.sock")
        XCTAssertEqual(DaemonConfig().rulesDirectory, "/etc/vigil/rules.d")
        let paths = DaemonPaths(root: "/tmp/r/")
        XCTAssertEqual(paths.configFile, "/tmp/r/etc/vigil/vigil.yaml")
        let config = try DaemonConfig.parse("socket: /elsewhere/v.sock\n", file: "t.yaml", paths: paths)
        XCTAssertEqual(config.socketPath, "/elsewhere/v.sock", "a path the file sets is used as it is")
        XCTAssertEqual(config.rulesDirectory, "/tmp/r/etc/vigil/rules.d", "a default moves under the root")
    }
}
