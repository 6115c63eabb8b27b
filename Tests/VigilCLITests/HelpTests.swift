import Foundation
import VigilTestSupport
import XCTest

/// The help text of every command (hidden options included), as a user reads it: flag names
/// spelled for people, not derived from Swift property names (`ringMiB` once became
/// `--ring-mi-b`), and the same thing spelled the same way in every command.
final class HelpTests: XCTestCase {
    /// One option or flag as a help screen lists it.
    struct Option: Hashable, CustomStringConvertible {
        var command: String
        var name: String
        var value: String?
        var description: String { "vigil \(command) \(name)\(value.map { " <\($0)>" } ?? "")" }
    }

    /// Every command path (`trace`, `rules validate`, ...) found by walking the SUBCOMMANDS
    /// sections from `vigil --help` down.
    static func commands(under path: [String] = []) throws -> [[String]] {
        let help = try CLITests.vigil(path + ["--help"])
        XCTAssertEqual(help.status, 0, "vigil \(path.joined(separator: " ")) --help: \(help.stderr)")
        var found: [[String]] = [path]
        var inSubcommands = false
        for line in help.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("SUBCOMMANDS:") { inSubcommands = true; continue }
            if inSubcommands, line.isEmpty || !line.hasPrefix(" ") { inSubcommands = false }
            guard inSubcommands, line.hasPrefix("  "), !line.hasPrefix("   "),
                  let name = line.split(separator: " ").first.map(String.init), name.first?.isLetter == true
            else { continue }
            found += try commands(under: path + [name])
        }
        return found
    }

    /// The options of one command's `--help-hidden` screen.
    static func options(of command: [String]) throws -> [Option] {
        let help = try CLITests.vigil(command + ["--help-hidden"])
        XCTAssertEqual(help.status, 0, "vigil \(command.joined(separator: " ")) --help-hidden: \(help.stderr)")
        let pattern = try NSRegularExpression(pattern: #"^ {2,4}(?:-[a-zA-Z], )?(--[^\s,]+)(?: <([^>]+)>)?"#)
        return help.stdout.split(separator: "\n").compactMap { line in
            let text = String(line)
            guard let match = pattern.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
                  let name = Range(match.range(at: 1), in: text).map({ String(text[$0]) }) else { return nil }
            let value = Range(match.range(at: 2), in: text).map { String(text[$0]) }
            return Option(command: command.joined(separator: " "), name: name, value: value)
        }
    }

    func testEveryFlagOfEveryCommandReadsWell() throws {
        let commands = try Self.commands()
        XCTAssertTrue(commands.contains(["rules", "validate"]) && commands.contains(["trace"]), "the walk found the commands: \(commands)")
        var all: [Option] = []
        for command in commands { all += try Self.options(of: command) }
        XCTAssertTrue(all.contains { $0.name == "--ring-mib" && $0.command == "trace" }, "trace's ring size is --ring-mib")

        for option in all {
            let words = option.name.dropFirst(2).split(separator: "-", omittingEmptySubsequences: false)
            // argument-parser splits a property's camel case at every capital: ringMiB -> ring-mi-b.
            XCTAssertFalse(words.contains { $0.count == 1 }, "\(option): a one-letter word, split from a property name")
            XCTAssertEqual(option.name, option.name.lowercased(), "\(option): lower case")
            // Its value name, by default the flag's own name again (`--rules-dir <rules-dir>`):
            // a word for what to give instead.
            if let value = option.value, words.count > 1 {
                XCTAssertNotEqual(value, String(option.name.dropFirst(2)), "\(option): name the value (<dir>, <file>, <kinds>...)")
            }
            // One spelling for "no": --no-X, as `vigil daemon --no-default-rules`.
            XCTAssertFalse(option.name.hasPrefix("--without-"), "\(option): spell it --no-...")
        }
        // The same option is spelled the same way wherever it appears.
        let defaultRules = Set(all.filter { $0.name.contains("default") }.map(\.name))
        XCTAssertEqual(defaultRules, ["--no-default-rules"], "\(all.filter { $0.name.contains("default") })")
    }

    func testTheRingFlagIsParsedUnderItsName() throws {
        // Refused by validation (not a power of two), before any kernel work: the name parsed.
        let result = try CLITests.vigil(["trace", "--ring-mib", "3"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--ring-mib must be a power of two"), result.stderr)
    }
}
