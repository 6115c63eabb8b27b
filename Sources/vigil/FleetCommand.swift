import ArgumentParser
import Foundation
import VigilActions
import VigilEvents
import VigilRules

/// `vigil fleet`: what the daemons of many hosts publish to NATS (the `nats` action).
struct FleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet", abstract: "Alerts of many hosts, through the NATS server their daemons publish to.",
        subcommands: [Alerts.self])

    /// `vigil fleet alerts`.
    struct Alerts: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "alerts",
            abstract: "Follow the alerts every host publishes (live, from now on): one line each, with the host.",
            discussion: """
            Subscribes to PREFIX.HOST.alerts.PRIORITY.> on the server (core NATS, so only what is \
            published from now on; the JetStream stream keeps the history). Lines are \
            TIME HOST PRIORITY RULE: OUTPUT, or the alerts' JSON with --json.
            """)

        @Option(help: ArgumentHelp("The NATS server: nats://host:port or tls://host:port.", valueName: "url")) var server = "nats://127.0.0.1:4222"
        @Option(help: ArgumentHelp("Only this host's alerts (its name as the daemons publish it).", valueName: "name")) var host: String?
        @Option(help: ArgumentHelp("Only alerts at least this severe (EMERGENCY ... DEBUG).", valueName: "priority")) var priority: String?
        @Option(help: "The subject prefix the daemons use (their subject_prefix).") var prefix = "vigil"
        @Option(help: ArgumentHelp("User name (the password from --password-env).", valueName: "name")) var user: String?
        @Option(help: ArgumentHelp("The environment variable holding the password.", valueName: "variable")) var passwordEnv: String?
        @Option(help: ArgumentHelp("The environment variable holding an auth token.", valueName: "variable")) var tokenEnv: String?
        @Option(help: ArgumentHelp("A PEM bundle of CAs trusted for a tls:// server.", valueName: "file")) var caFile: String?
        @Flag(help: "Do not check the server's certificate.") var insecureSkipVerify = false
        @Flag(help: "Print each alert's JSON.") var json = false

        func validate() throws {
            if let priority, Priority(parsing: priority) == nil {
                throw ValidationError("unknown priority '\(priority)'; use one of \(Priority.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if user != nil, passwordEnv == nil { throw ValidationError("--user needs --password-env") }
            if passwordEnv != nil, user == nil { throw ValidationError("--password-env needs --user") }
            if tokenEnv != nil, user != nil { throw ValidationError("use --user or --token-env, not both") }
        }

        func run() throws {
            let environment = ProcessInfo.processInfo.environment
            func secret(_ name: String) throws -> String {
                guard let value = environment[name], !value.isEmpty else { throw ValidationError("the environment variable \(name) is not set or empty") }
                return value
            }
            var credentials: NATSCredentials?
            if let user, let passwordEnv { credentials = .password(user: user, password: try secret(passwordEnv)) }
            if let tokenEnv { credentials = .token(try secret(tokenEnv)) }
            func subscribe() throws -> NATSAlertSubscriber {
                try NATSAlertSubscriber(
                    url: server, prefix: prefix, host: host, minPriority: priority.flatMap(Priority.init(parsing:)),
                    credentials: credentials, caFile: caFile, insecureSkipVerify: insecureSkipVerify)
            }
            // The first connection's failure is the user's to fix (address, credentials, TLS);
            // once it worked, a lost connection is tried again every second, said on stderr.
            var subscriber: NATSAlertSubscriber
            do { subscriber = try subscribe() } catch { throw ValidationError("\(error)") }
            let out = FileHandle.standardOutput  // unbuffered: each line as it arrives
            while true {
                while let (subject, payload) = subscriber.next() { write(subject, payload, to: out) }
                FileHandle.standardError.write(Data("vigil fleet alerts: the connection to \(server) ended; reconnecting\n".utf8))
                while true {
                    Thread.sleep(forTimeInterval: 1)
                    if let again = try? subscribe() {
                        subscriber = again
                        FileHandle.standardError.write(Data("vigil fleet alerts: subscribed again (alerts published meanwhile are in the stream, not here)\n".utf8))
                        break
                    }
                }
            }
        }

        /// One alert: its JSON (`--json`), or `TIME HOST PRIORITY RULE: OUTPUT`.
        func write(_ subject: String, _ payload: [UInt8], to out: FileHandle) {
            if json {
                out.write(Data(payload + [0x0a]))
                return
            }
            guard let alert = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any] else {
                out.write(Data((Self.terminalSafe("\(subject): \(String(decoding: payload.prefix(500), as: UTF8.self))") + "\n").utf8))
                return
            }
            let host = alert["hostname"] as? String ?? subject.split(separator: ".").dropFirst().first.map(String.init) ?? "?"
            let line = "\(alert["time"] as? String ?? "") \(host) \(alert["priority"] as? String ?? "") \(alert["rule"] as? String ?? ""): \(alert["output"] as? String ?? "")"
            out.write(Data((Self.terminalSafe(line) + "\n").utf8))
        }

        /// Whoever may publish on the server chooses these bytes: a line with control, line
        /// separator or bidi characters is escaped whole (`ByteString.escapedForTerminal`); Vigil's
        /// own alert text never has them (it is escaped when rendered), so it prints as it is.
        static func terminalSafe(_ line: String) -> String {
            let unsafe = line.unicodeScalars.contains { scalar in
                scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
                    || (0x202a...0x202e).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value) || scalar.value == 0x200e || scalar.value == 0x200f
            }
            return unsafe ? ByteString(line).escapedForTerminal : line
        }
    }
}
