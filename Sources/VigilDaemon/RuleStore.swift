import Foundation
import VigilActions
import VigilDefaultRules
import VigilEvents
import VigilRules
#if canImport(Glibc)
import Glibc
#endif

/// The two rule formats a rule set may be written in.
public enum RuleFormat: String, Sendable, Codable, CaseIterable {
    /// Falco-style YAML (rules, macros, lists).
    case yaml
    /// A bpfd TOML rule.
    case toml

    /// The file name extension.
    public var fileExtension: String { rawValue }

    /// The format of a file name by its extension (.yaml, .yml, .toml).
    public init?(fileName: String) {
        if fileName.hasSuffix(".yaml") || fileName.hasSuffix(".yml") { self = .yaml }
        else if fileName.hasSuffix(".toml") { self = .toml }
        else { return nil }
    }
}

/// One named rule set: a file of the rules directory, or the embedded defaults.
public struct StoredRuleSet: Sendable, Equatable {
    /// The name (the file name without its extension); `default` for the embedded rules.
    public var name: String
    /// The file's format.
    public var format: RuleFormat
    /// The file (nil for the embedded defaults).
    public var path: String?
    /// The file's text.
    public var text: String
    /// The rules the file defines or changes, in order.
    public var ruleNames: [String]
}

/// Why a rules directory operation was refused.
public enum RuleStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The rules do not load or compile (FILE:LINE:COL: message); nothing changed.
    case invalid(RuleError)
    /// The name is not a valid rule set name.
    case badName(String)
    /// No rule set has that name.
    case notFound(String)
    /// The embedded defaults cannot be changed through the API.
    case builtIn(String)
    /// Writing or removing the file failed.
    case io(String)

    /// One line for the user.
    public var description: String {
        switch self {
        case .invalid(let error): "\(error)"
        case .badName(let name):
            "bad rule set name '\(name)': use letters, digits, '.', '_' and '-' (at most 128, not starting with '.' or '-')"
        case .notFound(let name): "no rule set named '\(name)'"
        case .builtIn(let name): "'\(name)' is the embedded default ruleset: turn it off with 'default_rules: false' in the configuration"
        case .io(let message): message
        }
    }
}

/// The rules directory (one file per rule set name) plus the embedded defaults, compiled into
/// one `RuleSet`. Changes are checked by compiling the whole new set first: a bad rule changes
/// nothing. Files are written atomically (a temporary file, fsync, rename, fsync of the
/// directory), so a crash leaves either the old or the new file. Thread-safe: one change at a time.
public final class RuleStore: @unchecked Sendable {
    /// The name of the embedded default ruleset.
    public static let defaultSetName = "default"

    /// The rules directory.
    public let directory: String
    /// Checks a compiled set beyond the rule language (e.g. that its actions exist).
    public typealias Check = @Sendable (RuleSet) -> RuleError?
    private let check: Check?
    private let lock = NSLock()
    private var includeDefaults: Bool
    private var sets: [StoredRuleSet] = []
    private var compiled: RuleSet?

    /// A store over `directory` (created when missing); call `load()` before use. `check` may
    /// refuse a set that compiles (its error is the refusal's message).
    public init(directory: String, defaults: Bool, check: Check? = nil) {
        self.directory = directory
        includeDefaults = defaults
        self.check = check
    }

    /// Reads every rule file of the directory and compiles them with the defaults. On an error
    /// the store keeps what it had.
    @discardableResult
    public func load(defaults: Bool? = nil) throws(RuleStoreError) -> RuleSet {
        lock.lock()
        defer { lock.unlock() }
        let useDefaults = defaults ?? includeDefaults
        let found = try readDirectory()
        let ruleSet = try compile(found, defaults: useDefaults)
        sets = found
        compiled = ruleSet
        includeDefaults = useDefaults
        return ruleSet
    }

    /// The current compiled rules (empty before `load`).
    public var ruleSet: RuleSet? {
        lock.lock()
        defer { lock.unlock() }
        return compiled
    }

    /// The rules of `set` that the running rules skip because they need a field Vigil does not
    /// have (`RuleSet.skipped`), in rule order.
    public func skipped(in set: StoredRuleSet) -> [SkippedRule] {
        lock.lock()
        defer { lock.unlock() }
        return compiled.map { Self.skipped(in: set, of: $0) } ?? []
    }

    /// The skipped rules of `ruleSet` that `set` defines or changes.
    static func skipped(in set: StoredRuleSet, of ruleSet: RuleSet) -> [SkippedRule] {
        let names = Set(set.ruleNames)
        return ruleSet.skipped.filter { names.contains($0.name) }
    }

    /// The rule sets: the defaults first (when on), then the files by name.
    public func list() -> [StoredRuleSet] {
        lock.lock()
        defer { lock.unlock() }
        return (includeDefaults ? [Self.defaultSet] : []) + sets
    }

    /// The rule set called `name`.
    public func get(_ name: String) -> StoredRuleSet? {
        list().first { $0.name == name }
    }

    /// Creates or replaces rule set `name`. `source` names the text in error messages (the
    /// client's file name); `NAME.EXT` when nil. `apply` gets the new rules before the store
    /// commits them. A file whose rules are all skipped (each needs a field Vigil does not
    /// have) is refused with one line per rule: nothing of it would run. One with some rules
    /// that load keeps them; `skipped(in:)` lists the others.
    /// - Returns: the stored set and whether it is new.
    public func put(name: String, format: RuleFormat, text: String, source: String?,
                    apply: (RuleSet) -> Void) throws(RuleStoreError) -> (set: StoredRuleSet, created: Bool) {
        try Self.checkName(name)
        lock.lock()
        defer { lock.unlock() }
        let path = directory + "/" + name + "." + format.fileExtension
        // Errors name the client's file when its extension says the same format, else NAME.EXT.
        let label = source.flatMap { RuleFormat(fileName: $0) == format ? $0 : nil } ?? (name + "." + format.fileExtension)
        let items: [RuleItem]
        do { items = try RuleFiles.items(text: text, file: label) } catch { throw .invalid(error) }
        let entry = StoredRuleSet(name: name, format: format, path: path, text: text, ruleNames: Self.ruleNames(items))
        var candidate = sets.filter { $0.name != name }
        candidate.append(entry)
        candidate.sort { $0.name < $1.name }
        let ruleSet = try compile(candidate, defaults: includeDefaults, parsed: [name: (label, items)])
        let skipped = Self.skipped(in: entry, of: ruleSet)
        if !entry.ruleNames.isEmpty, skipped.count == Set(entry.ruleNames).count {
            // Nothing of it would run: refuse it with the line of each rule.
            var refusal = RuleError(location: SourceLocation(file: label, line: 1, column: 1),
                                    message: "nothing of this file would run: every rule of it needs a field Vigil does not have")
            refusal.more = skipped.map { RuleError(location: $0.location, message: $0.message, unknownField: $0.field) }
            throw .invalid(refusal)
        }
        let created = !sets.contains { $0.name == name }
        try Self.writeAtomically(text, to: path, directory: directory)
        for other in RuleFormat.allCases where other != format {
            unlink(directory + "/" + name + "." + other.fileExtension)
        }
        unlink(directory + "/" + name + ".yml")
        apply(ruleSet)
        sets = candidate
        compiled = ruleSet
        return (entry, created)
    }

    /// Removes rule set `name` (its file). `apply` gets the remaining rules first.
    public func delete(name: String, apply: (RuleSet) -> Void) throws(RuleStoreError) {
        if name == Self.defaultSetName { throw .builtIn(name) }
        lock.lock()
        defer { lock.unlock() }
        guard let entry = sets.first(where: { $0.name == name }) else { throw .notFound(name) }
        let remaining = sets.filter { $0.name != name }
        let ruleSet = try compile(remaining, defaults: includeDefaults)
        if let path = entry.path, unlink(path) != 0, errno != ENOENT {
            throw .io("cannot remove \(path): \(String(cString: strerror(errno)))")
        }
        Self.syncDirectory(directory)
        apply(ruleSet)
        sets = remaining
        compiled = ruleSet
    }

    // MARK: - Files

    private static let defaultSet: StoredRuleSet = {
        let items = (try? RuleFiles.defaultItems()) ?? []
        return StoredRuleSet(name: defaultSetName, format: .yaml, path: nil, text: String(cString: vigil_default_rules()),
                             ruleNames: ruleNames(items))
    }()

    private func readDirectory() throws(RuleStoreError) -> [StoredRuleSet] {
        do { try Directories.create(directory) } catch {
            throw .io("cannot create the rules directory \(directory): \(error)")
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw .io("cannot read the rules directory \(directory): \(error.localizedDescription)")
        }
        var found: [StoredRuleSet] = []
        // What a write cut short by a crash left (`writeAtomically`): never loaded, removed.
        for file in names where Self.isTemporary(file) { unlink(directory + "/" + file) }
        for file in names.sorted() where !file.hasPrefix(".") {
            guard let format = RuleFormat(fileName: file) else { continue }
            let path = directory + "/" + file
            var stem = String(file.prefix(upTo: file.lastIndex(of: ".") ?? file.endIndex))
            if found.contains(where: { $0.name == stem }) || stem == Self.defaultSetName { stem = file }
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw .invalid(RuleError(location: SourceLocation(file: path, line: 1, column: 1), message: "cannot read the file (or it is not UTF-8)"))
            }
            let items: [RuleItem]
            do { items = try RuleFiles.items(text: text, file: path) } catch { throw .invalid(error) }
            found.append(StoredRuleSet(name: stem, format: format, path: path, text: text, ruleNames: Self.ruleNames(items)))
        }
        return found
    }

    /// Compiles the defaults plus `sets` in order; `parsed` holds items already read (by name).
    private func compile(_ sets: [StoredRuleSet], defaults: Bool,
                         parsed: [String: (label: String, items: [RuleItem])] = [:]) throws(RuleStoreError) -> RuleSet {
        var files: [(file: String, items: [RuleItem])] = []
        do throws(RuleError) {
            if defaults { files.append((RuleFiles.defaultName, try RuleFiles.defaultItems())) }
            for set in sets {
                if let known = parsed[set.name] {
                    files.append((known.label, known.items))
                } else {
                    let label = set.path ?? set.name + "." + set.format.fileExtension
                    files.append((label, try RuleFiles.items(text: set.text, file: label)))
                }
            }
            let ruleSet = try RuleSet(files: files)
            if let refusal = check?(ruleSet) { throw refusal }
            return ruleSet
        } catch {
            throw .invalid(error)
        }
    }

    /// Checks a rule set name: letters, digits, '.', '_', '-'; at most 128; no leading '.' or '-'.
    static func checkName(_ name: String) throws(RuleStoreError) {
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2e || c == 0x5f || c == 0x2d
        }
        guard allowed, !name.isEmpty, name.utf8.count <= 128, !name.hasPrefix("."), !name.hasPrefix("-") else { throw .badName(name) }
        if name == defaultSetName { throw .builtIn(name) }
    }

    private static func ruleNames(_ items: [RuleItem]) -> [String] {
        items.compactMap { if case .rule(let partial, _) = $0 { partial.name } else { nil } }
    }

    /// The name of a temporary file of `writeAtomically`: `.vigil-XXXXXXXX.tmp`.
    static func isTemporary(_ file: String) -> Bool { file.hasPrefix(".vigil-") && file.hasSuffix(".tmp") }

    /// Writes `text` to `path` (with `mode`) through a temporary file in the same directory
    /// (`.vigil-XXXXXXXX.tmp`, removed on failure) and rename(2).
    static func writeAtomically(_ text: String, to path: String, directory: String, mode: mode_t = 0o644) throws(RuleStoreError) {
        let temporary = directory + "/.vigil-\(UUID().uuidString.prefix(8)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .io("cannot write \(path): cannot create a file in \(directory): \(String(cString: strerror(errno)))") }
        var failure = FileOutput.writeAll(fd, Array(text.utf8))
        if failure == 0, fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == 0, rename(temporary, path) != 0 { failure = errno }
        guard failure == 0 else {
            unlink(temporary)
            throw .io("cannot write \(path): \(String(cString: strerror(failure)))")
        }
        syncDirectory(directory)
    }

    /// fsync(2) of a directory, so a rename or unlink in it survives a crash.
    static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
