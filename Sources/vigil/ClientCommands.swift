import ArgumentParser
import Foundation
import VigilDaemon
import VigilEvents
import VigilSensors

/// Options of the commands that talk to the daemon.
struct ClientOptions: ParsableArguments {
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: ArgumentHelp("The daemon's socket (default $VIGIL_SOCKET, else $VIGIL_ROOT/run/vigil/vigil.sock, else /run/vigil/vigil.sock).",
                                            valueName: "path"))
    var socket: String = ProcessInfo.processInfo.environment["VIGIL_SOCKET"] ?? DaemonClient.defaultSocketPath

    var client: DaemonClient { DaemonClient(socketPath: socket) }

    /// Prints the error in one line on standard error; the exit code to throw.
    func fail(_ error: DaemonClientError) -> ExitCode {
        FileHandle.standardError.write(Data("vigil: \(error)\n".utf8))
        return ExitCode(1)
    }
}

/// `vigil create FILE...`: send rule files to the daemon.
struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Add (or replace) rule sets or program bundles in the running daemon, one per file.",
        discussion: """
            A file's name without its extension names the rule set. The daemon checks the new rules with the running ones; a bad file is refused with FILE:LINE:COL and changes nothing.

            A directory holding bundle.yaml, or a bundle manifest itself, is a program bundle (docs/bundles.md): the manifest and its CO-RE object are sent to the daemon, which loads the programs (the first variant of each hook that loads and attaches), reads the record struct's members from the object's BTF as fields prog.NAME.MEMBER, and keeps the bundle in its state directory for its next start. A bundle the kernel's verifier refuses is refused with the verifier's log; nothing running changes. Only root and members of the daemon's socket group may load bundles (as for everything the API does). `vigil rm NAME` unloads it.
            """)
    @OptionGroup var options: ClientOptions
    @Argument(help: "Rule files: .yaml/.yml (Falco-style) or .toml (bpfd); or program bundles: a directory with bundle.yaml, or the manifest.")
    var files: [String]

    /// Whether `path` is a program bundle: a directory (with bundle.yaml) or a bundle manifest.
    static func isBundle(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return false }
        if isDirectory.boolValue { return true }
        guard let data = FileManager.default.contents(atPath: path) else { return false }
        return (try? BundleManifest.parse(String(decoding: data, as: UTF8.self))) != nil
    }

    /// Sends the bundle at `path` (checked here first: manifest, object, BTF) to the daemon.
    func createBundle(_ path: String) throws(DaemonClientError) {
        let source: BundleSource
        let manifestText: String
        do {
            source = try BundleSource(path: path)
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            manifestText = try String(contentsOfFile: isDirectory.boolValue ? path + "/bundle.yaml" : path, encoding: .utf8)
        } catch {
            throw .refused(status: 400, message: "\(path): \(error)")
        }
        let upload = ["manifest": manifestText, "object": Data(source.object).base64EncodedString()]
        let body = (try? JSONSerialization.data(withJSONObject: upload)) ?? Data()
        let (status, answer) = try options.client.request("POST", "/v1/bundles", body: Array(body), contentType: "application/json")
        let summary = (try? JSONSerialization.jsonObject(with: Data(answer))) as? [String: Any] ?? [:]
        let hooks = (summary["hooks"] as? [[String: Any]] ?? []).map { "\($0["hook"] as? String ?? ""): \($0["active"] as? String ?? "")" }
        let fields = summary["fields"] as? [String] ?? []
        print("\(status == 201 ? "loaded" : "replaced") bundle \(source.manifest.name) (\(hooks.joined(separator: ", "))): \(fields.joined(separator: ", "))")
    }
    @Option(name: .long, help: "The rule set's name (only with one file).")
    var name: String?

    func validate() throws {
        if name != nil && files.count != 1 { throw ValidationError("--name takes exactly one file") }
        for file in files where RuleFormat(fileName: file) == nil && !Self.isBundle(file) {
            throw ValidationError("\(file): unknown rule file type: use .yaml/.yml (Falco-style) or .toml (bpfd)")
        }
    }

    func run() throws {
        options.global.bootstrapLogging()
        var failed = false
        /// Runs one request: a daemon that is not there or refuses the socket ends the command,
        /// any other error is reported and the next file is tried.
        func attempt(_ work: () throws(DaemonClientError) -> Void) throws {
            do {
                try work()
            } catch .notRunning(let path, let stale) {
                throw options.fail(.notRunning(path: path, stale: stale))
            } catch .permissionDenied(let path) {
                throw options.fail(.permissionDenied(path: path))
            } catch {
                FileHandle.standardError.write(Data("vigil: \(error)\n".utf8))
                failed = true
            }
        }
        for file in files {
            if Self.isBundle(file) {
                try attempt { () throws(DaemonClientError) in try createBundle(file) }
                continue
            }
            guard let data = FileManager.default.contents(atPath: file) else {
                FileHandle.standardError.write(Data("vigil: \(file): cannot read the file\n".utf8))
                failed = true
                continue
            }
            let base = (file as NSString).lastPathComponent
            let setName = name ?? String(base.prefix(upTo: base.lastIndex(of: ".") ?? base.endIndex))
            let format = RuleFormat(fileName: file) ?? .yaml
            let target = "/v1/rules?name=\(DaemonClient.queryValue(setName))&format=\(format.rawValue)&source=\(DaemonClient.queryValue(file))"
            try attempt { () throws(DaemonClientError) in
                let (status, body) = try options.client.request("POST", target, body: Array(data), contentType: "application/\(format.rawValue)")
                let answer = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
                let rules = answer?["rules"] as? [String] ?? [], skipped = answer?["skipped"] as? [String] ?? []
                print("\(status == 201 ? "created" : "replaced") \(setName): \(rules.count) rule\(rules.count == 1 ? "" : "s")\(rules.isEmpty ? "" : " (" + rules.joined(separator: ", ") + ")")"
                      + (skipped.isEmpty ? "" : ", \(skipped.count) skipped:"))
                for line in skipped { print("  \(line)") }
            }
        }
        if failed { throw ExitCode(1) }
    }
}

/// `vigil ls`: the rule sets the daemon runs.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the daemon's rule sets and their rules, and its program bundles (variant and counters).")
    @OptionGroup var options: ClientOptions
    @Flag(name: .long, help: "Print the API's JSON.")
    var json = false

    func run() throws {
        options.global.bootstrapLogging()
        do {
            let (_, body) = try options.client.request("GET", "/v1/rules")
            if json {
                print(String(decoding: body, as: UTF8.self))
                return
            }
            let sets = ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any])?["rule_sets"] as? [[String: Any]] ?? []
            func column(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
            print(column("NAME", 24) + " " + column("FORMAT", 6) + " " + column("ORIGIN", 9) + " RULES")
            for set in sets {
                let rules = set["rules"] as? [String] ?? []
                let name = column(set["name"] as? String ?? "", 24)
                let format = column(set["format"] as? String ?? "", 6)
                let origin = column(set["origin"] as? String ?? "", 9)
                let skipped = set["skipped"] as? [String] ?? []
                print("\(name) \(format) \(origin) \(rules.count) \(rules.count == 1 ? "rule" : "rules")" + (skipped.isEmpty ? "" : " (\(skipped.count) skipped)"))
                for line in skipped { print("  skipped: \(line)") }
                for rule in rules { print("  \(rule)") }
            }
            let bundleBody = try options.client.request("GET", "/v1/bundles").body
            let bundles = ((try? JSONSerialization.jsonObject(with: Data(bundleBody))) as? [String: Any])?["bundles"] as? [[String: Any]] ?? []
            if !bundles.isEmpty {
                print("\n" + column("BUNDLE", 24) + " " + column("VARIANTS", 24) + " EVENTS DROPS FIELDS")
                for bundle in bundles {
                    let hooks = (bundle["hooks"] as? [[String: Any]] ?? []).map { "\($0["hook"] as? String ?? ""): \($0["active"] as? String ?? "")" }
                    let counters = bundle["counters"] as? [String: Any] ?? [:]
                    print(column(bundle["name"] as? String ?? "", 24) + " " + column(hooks.joined(separator: ", "), 24) + " "
                          + column("\(counters["events"] as? Int ?? 0)", 6) + " " + column("\(counters["drops"] as? Int ?? 0)", 5) + " "
                          + (bundle["fields"] as? [String] ?? []).joined(separator: ", "))
                }
            }
        } catch {
            throw options.fail(error)
        }
    }
}

/// `vigil rm NAME...`: remove rule sets.
struct RemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove rule sets from the daemon (and its rules directory), or unload program bundles (links closed, maps freed).")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Rule set or bundle names (as `vigil ls` shows them).")
    var names: [String]

    func run() throws {
        options.global.bootstrapLogging()
        var failed = false
        let bundles: Set<String>
        do throws(DaemonClientError) {
            let body = try options.client.request("GET", "/v1/bundles").body
            let list = ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any])?["bundles"] as? [[String: Any]] ?? []
            bundles = Set(list.compactMap { $0["name"] as? String })
        } catch {
            throw options.fail(error)
        }
        for name in names {
            do {
                if bundles.contains(name) {
                    _ = try options.client.request("DELETE", "/v1/bundles/\(DaemonClient.queryValue(name))")
                    print("unloaded bundle \(name)")
                    continue
                }
                _ = try options.client.request("DELETE", "/v1/rules/\(DaemonClient.queryValue(name))")
                print("removed \(name)")
            } catch .refused(_, let message) {
                FileHandle.standardError.write(Data("vigil: \(message)\n".utf8))
                failed = true
            } catch {
                throw options.fail(error)
            }
        }
        if failed { throw ExitCode(1) }
    }
}

/// `vigil status`: what the daemon runs.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the daemon's sensors (active variants and why others failed), counters, rules and uptime.")
    @OptionGroup var options: ClientOptions
    @Flag(name: .long, help: "Print the API's JSON.")
    var json = false

    func run() throws {
        options.global.bootstrapLogging()
        let status: [String: Any]
        let body: [UInt8]
        do {
            body = try options.client.request("GET", "/v1/status").body
            status = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
        } catch {
            throw options.fail(error)
        }
        if json {
            print(String(decoding: body, as: UTF8.self))
            return
        }
        print(Self.render(status))
    }

    /// The human form of the status.
    static func render(_ status: [String: Any]) -> String {
        func int(_ object: Any?, _ key: String) -> UInt64 { ((object as? [String: Any])?[key] as? NSNumber)?.uint64Value ?? 0 }
        var lines: [String] = []
        let uptime = (status["uptime_seconds"] as? NSNumber)?.doubleValue ?? 0
        lines.append("vigil daemon \(status["version"] as? String ?? "?") (pid \(status["pid"] as? Int ?? 0)), up \(Self.duration(uptime))")
        for sensor in status["sensors"] as? [[String: Any]] ?? [] {
            lines.append("sensor \(sensor["name"] as? String ?? ""): \(int(sensor, "emitted")) emitted, \(int(sensor, "filtered")) filtered in kernel, \(int(sensor, "lost")) lost, \(int(sensor, "killed")) killed in kernel"
                         + (int(sensor, "unfollowed") > 0 ? ", \(int(sensor, "unfollowed")) forks not followed (pids map full)" : ""))
            for hook in sensor["hooks"] as? [[String: Any]] ?? [] {
                let others = (hook["attempts"] as? [[String: Any]] ?? []).filter { ["skipped", "failed"].contains($0["outcome"] as? String ?? "") }
                    .map { "\($0["variant"] as? String ?? ""): \($0["reason"] as? String ?? $0["outcome"] as? String ?? "")" }
                lines.append("  \(hook["hook"] as? String ?? ""): \(hook["active"] as? String ?? "")" + (others.isEmpty ? "" : " (not " + others.joined(separator: "; ") + ")"))
            }
            if let missing = sensor["not_captured"] as? [String], !missing.isEmpty {
                lines.append("  not captured (no tracepoint or function on this kernel, which does not implement them): \(missing.joined(separator: ", "))")
            }
        }
        let rules = status["rules"] as? [String: Any] ?? [:]
        let skippedRules = rules["skipped"] as? [String] ?? []
        lines.append("rules: \(int(rules, "enabled")) enabled, \(int(rules, "disabled")) disabled" + (skippedRules.isEmpty ? "" : ", \(skippedRules.count) skipped")
            + " in \(int(rules, "rule_sets")) rule sets (\(rules["directory"] as? String ?? "")\((rules["default_rules"] as? Bool) == true ? " + embedded defaults" : ""))")
        for line in skippedRules { lines.append("  skipped: \(line)") }
        let pushdown = status["pushdown"] as? [String: Any] ?? [:]
        lines.append("kernel pushdown \((pushdown["applied"] as? Bool) == true ? "applied" : "not applied"): " + ((pushdown["summary"] as? [String]) ?? []).joined(separator: "; "))
        let stream = status["stream"] as? [String: Any]
        lines.append("events: \(int(stream, "records")) read, \(int(stream, "delivered")) checked, \(int(stream, "filtered")) filtered after enrichment, \(int(stream, "undecodable")) undecodable; alerts: \(int(status["alerts"], "total"))")
        if let actions = (status["consumers"] as? [String: Any])?["actions"] as? [String: Any] {
            let rows = (actions["actions"] as? [[String: Any]] ?? []).map { action in
                "\(action["name"] as? String ?? "") \(int(action, "sent")) sent, \(int(action, "failed")) failed, \(int(action, "dropped")) dropped"
            }
            lines.append("actions: " + (rows.isEmpty ? "none used yet" : rows.joined(separator: "; ")) + "; \(int(actions, "suppressed")) alerts aggregated")
            if let policy = actions["policy"] as? [String: Any] {
                lines.append("policy \(policy["url"] as? String ?? "") (failure: \(policy["failure"] as? String ?? "")): \(int(policy, "allowed")) allowed, "
                    + "\(int(policy, "denied")) denied, \(int(policy, "failed_open")) failed open, \(int(policy, "failed_closed")) failed closed, \(int(policy, "queued")) waiting")
                if let denied = policy["last_denied"] as? String { lines.append("  last denied: \(denied)") }
                if let error = policy["last_error"] as? String { lines.append("  last error: \(error)") }
            }
            for tap in actions["event_taps"] as? [[String: Any]] ?? [] {
                var line = "event tap \(tap["name"] as? String ?? "") (\(tap["filter"] as? String ?? "")): \(int(tap, "matched")) matched, \(int(tap, "sent")) sent, "
                    + "\(int(tap, "failed")) failed, \(int(tap, "dropped")) dropped, \(int(tap, "queued")) waiting"
                if tap["name"] as? String == "policy", let policy = actions["policy"] as? [String: Any] {
                    line += "; \(int(policy, "events_allowed")) allowed, \(int(policy, "events_denied")) denied"
                }
                lines.append(line)
                if let error = tap["last_error"] as? String { lines.append("  last error: \(error)") }
            }
        }
        let integrity = status["integrity"] as? [String: Any] ?? [:]
        let findings = integrity["current"] as? [String] ?? []
        lines.append("integrity: \(int(integrity, "heartbeats_returned"))/\(int(integrity, "heartbeats_sent")) heartbeats back, \(int(integrity, "heartbeats_silent")) silent; "
                     + (findings.isEmpty ? "links and filter maps intact" : "TAMPERED: " + findings.joined(separator: "; ")))
        let dns = status["dns_baseline"] as? [String: Any] ?? [:]
        if (dns["active"] as? Bool) == true || int(dns, "images") > 0 {
            lines.append("dns baseline\((dns["active"] as? Bool) == true ? "" : " (no rule reads dns.name.new)"): \(int(dns, "images")) images (\(int(dns, "images_learning")) learning), \(int(dns, "names")) names; "
                         + "\(int(dns, "lookups")) lookups judged, \(int(dns, "new_names")) new; not kept: \(int(dns, "names_not_kept")) names (max_names \(int(dns, "max_names"))), "
                         + "\(int(dns, "lookups_over_image_bound")) lookups over max_images \(int(dns, "max_images")), \(int(dns, "lookups_without_image")) without an image name")
        }
        if let docker = status["docker"] as? [String: Any] {
            let events = docker["events"] as? [String: Any] ?? [:], metadata = docker["metadata"] as? [String: Any] ?? [:]
            lines.append("docker \(docker["socket"] as? String ?? ""): events \((events["connected"] as? Bool) == true ? "subscribed" : "NOT SUBSCRIBED") "
                         + "(\(int(events, "connections")) connections, \(int(events, "failures")) failures); metadata \(int(metadata, "found")) found, "
                         + "\(int(metadata, "not_found")) not found, \(int(metadata, "failed")) failed")
            if let last = events["last_error"] as? String { lines.append("  events' last error: \(last)") }
            if let last = metadata["last_failure"] as? String { lines.append("  metadata's last failure: \(last)") }
        }
        // The runtime APIs asked for containers Docker does not know.
        for runtime in ["containerd", "cri"] {
            guard let counters = status[runtime] as? [String: Any] else { continue }
            let lookups = int(counters, "lookups"), found = int(counters, "found"), failed = int(counters, "failures")
            let kinds = (counters["failures_by_kind"] as? [String: Any] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key) \(int(counters["failures_by_kind"], $0.key))" }
            lines.append("\(runtime): \(lookups) lookups, \(found) found, \(lookups >= found + failed ? lookups - found - failed : 0) not found, \(failed) failed"
                         + (kinds.isEmpty ? "" : " (" + kinds.joined(separator: ", ") + ")"))
            if let last = counters["last_failure"] as? String { lines.append("  last failure: \(last)") }
        }
        let subscribers = status["subscribers"] as? [String: Any] ?? [:]
        lines.append("streams: \((subscribers["events"] as? [Any])?.count ?? 0) event, \((subscribers["alerts"] as? [Any])?.count ?? 0) alert subscribers; \(int(subscribers, "dropped_lines")) lines dropped for slow clients")
        let api = status["api"] as? [String: Any] ?? [:]
        let refused = api["refused"]
        lines.append("api: \(int(api, "connections")) connections, \(int(api, "subscribers")) stream subscribers; refused or closed at a limit: "
            + "\(int(refused, "connections")) connections, \(int(refused, "header_too_large")) heads too large, \(int(refused, "timeout")) timed out, "
            + "\(int(refused, "subscribers")) subscribers")
        return lines.joined(separator: "\n")
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds)
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}

/// `vigil events` / `vigil alerts`: follow a live stream of the daemon.
struct StreamOptions: ParsableArguments {
    @OptionGroup var options: ClientOptions
    @Option(name: .long, help: ArgumentHelp("Only what matches this condition (rule language, e.g. \"proc.name = cat and fd.name startswith /etc\").",
                                            valueName: "condition"))
    var filter: String?
    @Option(name: [.customShort("o"), .customLong("format")], help: "Output: text or json (one object per line).")
    var format: Format = .text

    enum Format: String, ExpressibleByArgument { case text, json }

    func follow(_ endpoint: String, text: @escaping (String) -> String?) throws {
        options.global.bootstrapLogging()
        let target = endpoint + (filter.map { "?filter=" + DaemonClient.queryValue($0) } ?? "")
        let out = FileHandle.standardOutput
        do {
            try options.client.lines(target) { line in
                if format == .json {
                    out.write(Data(line + [0x0a]))
                } else if let rendered = text(String(decoding: line, as: UTF8.self)) {
                    out.write(Data((rendered + "\n").utf8))
                }
            }
        } catch {
            throw options.fail(error)
        }
    }
}

/// `vigil events`.
struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Follow the daemon's live events (filtered in the daemon with --filter).")
    @OptionGroup var stream: StreamOptions

    func run() throws {
        try stream.follow("/v1/events") { line in
            guard let event = try? EventJSON.event(line) else { return line }
            return EventFormat.tableRow(event)
        }
    }
}

/// `vigil alerts`.
struct AlertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts", abstract: "Follow the daemon's live alerts (--filter applies to the event that raised them).")
    @OptionGroup var stream: StreamOptions

    func run() throws {
        try stream.follow("/v1/alerts") { line in
            guard let alert = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else { return line }
            return "\(alert["time"] as? String ?? "") \(alert["priority"] as? String ?? "") \(alert["rule"] as? String ?? ""): \(alert["output"] as? String ?? "")"
        }
    }
}
