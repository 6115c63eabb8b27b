import ArgumentParser
import Foundation
import VigilEvents
import VigilRules

/// `vigil rules`: check, replay and convert rule files.
struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate, test and convert rule files (Falco-style YAML, bpfd TOML).",
        subcommands: [Validate.self, Test.self, Convert.self]
    )

    /// Options naming the rule files.
    struct Files: ParsableArguments {
        @Argument(help: "Rule files: .yaml/.yml (Falco-style) or .toml (bpfd).")
        var files: [String] = []
        @Flag(help: "Do not load the embedded default rules first (their macros and lists are then unknown).")
        var noDefaultRules = false

    }

    /// Prints every rule error, one FILE:LINE:COL: message line each (and how many when more
    /// than one), and exits non-zero.
    static func fail(_ error: RuleError) -> ExitCode {
        let count = error.all.count
        FileHandle.standardError.write(Data(("\(error)\n" + (count > 1 ? "\(count) errors\n" : "")).utf8))
        return ExitCode(1)
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check rule files; on success summarise what runs and where.",
            discussion: "Reports every error of every file (FILE:LINE:COL: message, one per line) and exits 1 when there is any; otherwise prints the warnings (rules skipped because they need a field Vigil does not have, one line each with the field and the nearest known names; output fields printed as <NA>; rules that never match the events Vigil produces) and what runs, and exits 0. With --strict, any warning or skipped rule makes it exit 1.")
        @OptionGroup var files: Files
        @Flag(help: "Exit 1 when a rule is skipped or anything is warned about (to catch misspelt fields).")
        var strict = false

        func run() throws {
            let set: RuleSet
            do { set = try RuleFiles.ruleSet(paths: files.files, defaults: !files.noDefaultRules) } catch { throw Rules.fail(error) }
            print("ok: \(set.rules.count) rules enabled, \(set.disabled.count) disabled, \(set.macroCount) macros, \(set.listCount) lists")
            if !set.warnings.isEmpty { print("\(set.warnings.count) warnings (\(set.skipped.count) rules skipped):") }
            for warning in set.warnings { print("  \(warning)") }
            for line in set.pushdown.summary { print("  " + line) }
            for (index, rule) in set.rules.enumerated() {
                let needs = set.eventKinds(ofRule: index)
                let syscalls = needs.syscalls.count > 8 ? "\(needs.syscalls.count) syscalls" : needs.syscalls.joined(separator: ",")
                let kinds = EventKind.allCases.filter(needs.kinds.contains).map { $0 == .syscall ? "syscall (\(syscalls))" : $0.rawValue }
                    .joined(separator: ",")
                print("  rule \"\(rule.rule.name)\" [\(rule.rule.priority.rawValue)] on " + (kinds.isEmpty ? "no event Vigil produces (never matches)" : kinds))
            }
            if strict && !set.warnings.isEmpty {
                FileHandle.standardError.write(Data("--strict: \(set.warnings.count) warnings (\(set.skipped.count) rules skipped)\n".utf8))
                throw ExitCode(1)
            }
        }
    }

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay events recorded with `vigil trace -o json` through rules.",
            discussion: "Prints, per event, the rules that matched; with --explain NAME, for each event the first clause of that rule that failed.")
        @OptionGroup var files: Files
        @Option(help: ArgumentHelp("Events recorded with `vigil trace -o json` (one JSON object per line).", valueName: "file"))
        var events: String
        @Option(help: ArgumentHelp("Explain why this rule did or did not match each event.", valueName: "rule"))
        var explain: String?

        func run() throws {
            let set: RuleSet
            do { set = try RuleFiles.ruleSet(paths: files.files, defaults: !files.noDefaultRules) } catch { throw Rules.fail(error) }
            let explained = try explain.map { name in
                guard let rule = set.rules.first(where: { $0.rule.name == name }) else {
                    throw ValidationError("no enabled rule named '\(name)'")
                }
                return rule
            }
            guard let text = FileManager.default.contents(atPath: events).map({ String(decoding: $0, as: UTF8.self) }) else {
                throw ValidationError("cannot read \(events)")
            }
            var matched = 0, total = 0
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
                let event: Event
                do { event = try EventJSON.event(String(line)) } catch {
                    FileHandle.standardError.write(Data("\(events):\(number + 1): \(error)\n".utf8))
                    throw ExitCode(1)
                }
                total += 1
                let hits = set.matches(event)
                if !hits.isEmpty { matched += 1 }
                let what = "\(event.kind.rawValue) \(event.comm.escapedForTerminal) pid \(event.pid)"
                print("\(events):\(number + 1): \(what): " + (hits.isEmpty ? "no rule matched" : hits.map { "\"\($0.rule.name)\"" }.joined(separator: ", ")))
                for hit in hits { print("    [\(hit.rule.priority.rawValue)] \(hit.output.render(event))") }
                if let explained {
                    print("    explain \"\(explained.rule.name)\": " + (explained.condition.explain(event).map { "failed at: \($0)" } ?? "matched"))
                }
            }
            print("\(matched) of \(total) events matched a rule")
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the Falco-style YAML rule equivalent to a bpfd TOML rule.")
        @Argument(help: "A bpfd .toml rule file.") var file: String

        func run() throws {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            do {
                print(BpfdRules.yaml(try BpfdRules.load(String(decoding: data, as: UTF8.self), file: file)), terminator: "")
            } catch {
                throw Rules.fail(error)
            }
        }
    }
}
