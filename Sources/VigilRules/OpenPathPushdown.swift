import VigilEvents

/// What the kernel does for one path, basename or prefix of the file sensor's path maps.
public struct OpenPathEntry: Sendable, Equatable {
    /// Opens some rule may match: sent to userspace.
    public var pass: OpenClasses = []
    /// Opens a `kernel_kill` rule matches: the caller gets SIGKILL from the sensor itself.
    public var kill: OpenClasses = []
    /// Index in `OpenPathPushdown.killRules` of the kill rule whose command-name condition
    /// applies to `kill`; nil when no condition on the command name applies.
    public var killRule: Int?

    /// An entry.
    public init(pass: OpenClasses = [], kill: OpenClasses = [], killRule: Int? = nil) {
        self.pass = pass
        self.kill = kill
        self.killRule = killRule
    }
}

/// A rule with the `kernel_kill` action, as the kernel decides it.
public struct KernelKillRule: Sendable, Equatable {
    /// Which command names the kill applies to (`proc.name in (...)` / `not proc.name in (...)`).
    public enum Commands: Sendable, Equatable {
        case any
        case only(Set<String>)
        case except(Set<String>)
    }

    /// The rule's name.
    public var name: String
    /// Its condition on the command name.
    public var commands: Commands
    /// Where the rule was defined.
    public var location: SourceLocation
}

/// One entry of the kernel's LPM trie of paths.
public struct OpenTrieEntry: Sendable, Equatable {
    /// The path or prefix bytes (without a NUL).
    public var path: [UInt8]
    /// Exact: matches only this path (stored with its NUL); else a prefix of names.
    public var exact: Bool
    /// What the kernel does for names whose longest match this is: the union of every entry
    /// that covers it (the trie returns only the longest match).
    public var entry: OpenPathEntry
}

/// The file sensor's path pushdown derived from the rules (docs/rules.md, "What runs in the
/// kernel"): which opens the kernel may drop because no rule can match them, and which it kills.
///
/// After a successful open the kernel compares the opened file's path (fd.name, walked from the
/// new descriptor) and the file's device and inode against the files the exact paths name (hard
/// links); after a failed one, the name as given when it is absolute and in normal form (then it
/// equals fd.name). Other names always reach userspace, and are never killed in the kernel.
public struct OpenPathPushdown: Sendable, Equatable {
    /// Whether the kernel drops opens no rule can match (false when a rule keeps opens of any path
    /// of every class: `unconstrainedRules` names them).
    public var filtering: Bool
    /// Rules that can match an open of any path, whatever its access and result.
    public var unconstrainedRules: [String]
    /// Open classes some rule keeps whatever the path, and the rules that do.
    public var anyPath: OpenClasses
    /// Rules contributing to `anyPath`.
    public var anyPathRules: [String]
    /// Exact paths, prefixes and basenames some rule needs, with what the kernel does for each.
    public var exact: [[UInt8]: OpenPathEntry]
    public var prefixes: [[UInt8]: OpenPathEntry]
    public var basenames: [[UInt8]: OpenPathEntry]
    /// The `kernel_kill` rules, in rule order.
    public var killRules: [KernelKillRule]

    /// Bounds of the kernel's keys (vigil_abi.h): longer names always reach userspace.
    public static let maximumPathBytes = 255, maximumBasenameBytes = 63

    /// No rule matches opens: the kernel drops them all.
    public init() {
        filtering = true
        unconstrainedRules = []
        anyPath = []
        anyPathRules = []
        exact = [:]
        prefixes = [:]
        basenames = [:]
        killRules = []
    }

    /// The pushdown of `rules`.
    /// - Throws: a `RuleError` at a `kernel_kill` rule whose condition the kernel cannot decide,
    ///   saying why, or at two kill rules that cover one path with different command conditions.
    public init(rules: [CompiledRule]) throws(RuleError) {
        self.init()
        var union = OpenPathConstraint.never
        for rule in rules where rule.condition.kinds.contains(.open) {
            let constraint = OpenPathAnalysis.constraint(rule.condition.root)
            if constraint.any == .all { unconstrainedRules.append(rule.rule.name) }
            if !constraint.any.isEmpty { anyPathRules.append(rule.rule.name) }
            union = union.union(constraint)
        }
        filtering = unconstrainedRules.isEmpty
        anyPath = union.any
        for (path, classes) in union.exact where path.count <= Self.maximumPathBytes - 1 { exact[path, default: .init()].pass = classes }
        for (path, classes) in union.prefixes where path.count <= Self.maximumPathBytes { prefixes[path, default: .init()].pass = classes }
        for (name, classes) in union.basenames where !name.isEmpty && name.count <= Self.maximumBasenameBytes {
            basenames[name, default: .init()].pass = classes
        }

        for rule in rules where rule.rule.actions.contains(Self.killAction) {
            let kill = try Self.killCondition(rule)
            let index = killRules.count
            killRules.append(KernelKillRule(name: rule.rule.name, commands: kill.commands, location: rule.rule.location))
            let owner: Int? = kill.commands == .any ? nil : index
            func add(_ table: inout [[UInt8]: OpenPathEntry], _ key: [UInt8], _ classes: OpenClasses, kind: String) throws(RuleError) {
                var entry = table[key, default: .init()]
                if !entry.kill.isEmpty, entry.killRule != owner {
                    let other = entry.killRule.map { killRules[$0].name } ?? "another kernel_kill rule"
                    throw RuleError(location: rule.rule.location, message: "rule '\(rule.rule.name)': kernel_kill on the \(kind) '\(String(decoding: key, as: UTF8.self))', which the kernel_kill rule '\(other)' also covers with a different proc.name condition; the kernel holds one command condition per path")
                }
                entry.kill.formUnion(classes)
                entry.pass.formUnion(classes) // a killed open always reaches userspace
                entry.killRule = owner
                table[key] = entry
            }
            for (path, classes) in kill.paths.exact { try add(&exact, path, classes, kind: "path") }
            for (path, classes) in kill.paths.prefixes { try add(&prefixes, path, classes, kind: "prefix") }
            for (name, classes) in kill.paths.basenames { try add(&basenames, name, classes, kind: "basename") }
        }
        // A killed open must not be dropped: rule conditions are the same, so the pass union
        // already covers it; the loop above made sure of it.
        _ = try trieEntries()
    }

    /// The action name that asks the kernel to kill.
    public static let killAction = "kernel_kill"

    /// Whether the kernel has anything to look up (paths to filter or kills).
    public var needsLookups: Bool { filtering || !killRules.isEmpty }

    /// The LPM trie's entries: every exact path and prefix, each with the union of the prefixes
    /// that cover it (a kill rule's command condition follows the kill it comes with).
    /// - Throws: when two kill rules with different command conditions cover one entry.
    public func trieEntries() throws(RuleError) -> [OpenTrieEntry] {
        let sortedPrefixes = prefixes.sorted { $0.key.count < $1.key.count }
        func covered(_ path: [UInt8], exact isExact: Bool) throws(RuleError) -> OpenPathEntry {
            var entry = (isExact ? exact[path] : prefixes[path]) ?? OpenPathEntry()
            for (prefix, cover) in sortedPrefixes where path.starts(with: prefix) && (isExact || prefix.count < path.count) {
                entry.pass.formUnion(cover.pass)
                if !cover.kill.isEmpty {
                    if !entry.kill.isEmpty, entry.killRule != cover.killRule {
                        let rules = [entry.killRule, cover.killRule].map { $0.map { killRules[$0] } }
                        let names = rules.map { $0.map { "'\($0.name)'" } ?? "with any command" }
                        throw RuleError(location: (rules[1] ?? rules[0])?.location ?? SourceLocation(file: "rules", line: 1, column: 1),
                                        message: "kernel_kill rules \(names[0]) and \(names[1]) both cover '\(String(decoding: path, as: UTF8.self))' with different proc.name conditions; the kernel holds one command condition per path")
                    }
                    entry.kill.formUnion(cover.kill)
                    entry.killRule = cover.killRule
                }
            }
            return entry
        }
        var entries: [OpenTrieEntry] = []
        for path in exact.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            entries.append(OpenTrieEntry(path: path, exact: true, entry: try covered(path, exact: true)))
        }
        for path in prefixes.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            entries.append(OpenTrieEntry(path: path, exact: false, entry: try covered(path, exact: false)))
        }
        return entries
    }

    /// One line per fact, for `vigil rules validate` and `vigil trace --alerts`.
    public var summary: [String] {
        var lines: [String] = []
        if !filtering {
            lines.append("open paths: every open reaches userspace: rule \(unconstrainedRules.map { "'\($0)'" }.joined(separator: ", ")) has no path condition")
        } else if exact.isEmpty && prefixes.isEmpty && basenames.isEmpty && anyPath.isEmpty {
            lines.append("open paths: no rule matches opens; the kernel drops them")
        } else {
            lines.append("open paths (in kernel): \(exact.count) exact paths, \(prefixes.count) prefixes, \(basenames.count) basenames; other opens are dropped")
            if !anyPath.isEmpty {
                lines.append("  and \(anyPath.summary) of any path (rule \(anyPathRules.map { "'\($0)'" }.joined(separator: ", ")))")
            }
        }
        for rule in killRules {
            let commands = switch rule.commands {
            case .any: ""
            case .only(let names): " by " + names.sorted().joined(separator: ", ")
            case .except(let names): " by commands other than " + names.sorted().joined(separator: ", ")
            }
            lines.append("kernel_kill (in kernel): rule '\(rule.name)' kills opens of its paths\(commands) with SIGKILL")
        }
        return lines
    }

    // MARK: - kernel_kill: the exact analysis

    /// The paths and command names a kill rule's condition decides, exactly.
    static func killCondition(_ rule: CompiledRule) throws(RuleError) -> (paths: OpenPathConstraint, commands: KernelKillRule.Commands) {
        func refuse(_ why: String) -> RuleError {
            RuleError(location: rule.rule.location, message: "rule '\(rule.rule.name)': kernel_kill needs a condition the kernel decides (opens of named paths, their access and result, proc.name in or not in a list), but \(why)")
        }
        // fd.* fields also apply to syscall events (the fd table) and to connection events (their
        // ends); a condition on them alone can match those too, which is decided in userspace
        // (alert only): the kill is for the opens.
        let kinds = rule.condition.kinds
        guard kinds.subtracting([.syscall, .conn, .tcpdrop]) == [.open] else {
            let names = EventKind.allCases.filter(kinds.contains).map(\.rawValue).joined(separator: ", ")
            throw refuse(kinds.isEmpty ? "it matches no event" : "it can match \(names) events, and the kernel kills only on opens")
        }
        let root = rule.condition.root
        let terms: [PlanNode] = if case .and(let children, _) = root { children } else { [root] }
        var commands = KernelKillRule.Commands.any
        var others: [PlanNode] = []
        for term in terms {
            guard let names = commandTest(term) else { others.append(term); continue }
            guard commands == .any else { throw refuse("it has two proc.name conditions ('\(term.source)')") }
            commands = names
        }
        let paths: OpenPathConstraint
        do {
            paths = try exactConstraint(others.count == 1 ? others[0] : .and(others, source: root.source))
        } catch {
            throw refuse(error.reason)
        }
        guard paths.any.isEmpty, paths.hasPaths else {
            throw refuse("it has no condition on fd.name or fd.filename, and the kernel kills only on named paths")
        }
        return (paths, commands)
    }

    /// The syscall names open events carry.
    static let reportedSyscalls: Set<String> = Set(EventKind.open.descriptor.syscalls)

    /// Why a clause is not decided in the kernel.
    struct Undecidable: Error { var reason: String }

    /// `proc.name = x`, `proc.name in (...)` and their negations.
    private static func commandTest(_ node: PlanNode) -> KernelKillRule.Commands? {
        var negated = false
        var node = node
        if case .not(let inner, _) = node { negated = true; node = inner }
        guard case .test(let test) = node, let p = test.predicate, p.field == "proc.name", p.op == "=" || p.op == "in" else { return nil }
        // comm holds at most 15 bytes: a longer name never equals it.
        let names = Set(p.values.filter { $0.utf8.count <= 15 })
        return negated ? .except(names) : .only(names)
    }

    /// The opens `node` matches, exactly, as paths and classes.
    private static func exactConstraint(_ node: PlanNode) throws(Undecidable) -> OpenPathConstraint {
        switch node {
        case .constant(let value, _):
            return value ? .anything : .never
        case .test(let test):
            guard test.kindSets.whenTrue.contains(.open) else { return .never }
            if case .eventType(let table) = test.operand {
                // The sensor reports open, openat and openat2 (creat arrives as open or openat).
                if table.open.allSatisfy({ $0.result || !Self.reportedSyscalls.contains($0.name) }) { return .anything }
                throw Undecidable(reason: "'\(test.source)' tells open syscalls apart, and the kernel does not")
            }
            if let classes = OpenPathAnalysis.classTest(test) { return OpenPathConstraint(any: classes) }
            guard let paths = OpenPathAnalysis.pathTest(test, exactOnly: true) else {
                throw Undecidable(reason: "'\(test.source)' is not decided in the kernel")
            }
            for (path, _) in paths.exact where path.first != 0x2f || path.count > maximumPathBytes - 1 || !isNormal(path) {
                throw Undecidable(reason: "'\(String(decoding: path, as: UTF8.self))' in '\(test.source)' is not an absolute path in normal form of at most \(maximumPathBytes - 1) bytes")
            }
            for (path, _) in paths.prefixes where path.first != 0x2f || path.count > maximumPathBytes {
                throw Undecidable(reason: "the prefix '\(String(decoding: path, as: UTF8.self))' in '\(test.source)' is not absolute or is longer than \(maximumPathBytes) bytes")
            }
            for (name, _) in paths.basenames where name.isEmpty || name.count > maximumBasenameBytes || name.contains(0x2f) {
                throw Undecidable(reason: "the file name '\(String(decoding: name, as: UTF8.self))' in '\(test.source)' is empty, has a slash or is longer than \(maximumBasenameBytes) bytes")
            }
            return paths
        case .not(let child, let source):
            if case .test(let test) = child, let classes = OpenPathAnalysis.classTest(test) {
                return OpenPathConstraint(any: OpenClasses.all.subtracting(classes))
            }
            throw Undecidable(reason: "'\(source)' negates a condition the kernel does not negate")
        case .and(let children, let source):
            var result = OpenPathConstraint.anything
            for child in children {
                guard let both = result.exactIntersection(try exactConstraint(child)) else {
                    throw Undecidable(reason: "'\(source)' joins two path conditions with 'and'; the kernel compares one")
                }
                result = both
            }
            return result
        case .or(let children, _):
            var result = OpenPathConstraint.never
            for child in children { result = result.union(try exactConstraint(child)) }
            return result
        }
    }

    /// Absolute, no empty, `.` or `..` component, no trailing slash: what fd.name looks like.
    static func isNormal(_ path: [UInt8]) -> Bool {
        guard path.first == 0x2f else { return false }
        if path == [0x2f] { return true }
        let parts = path.dropFirst().split(separator: 0x2f, omittingEmptySubsequences: false)
        return !parts.contains { $0.isEmpty || $0.elementsEqual([0x2e]) || $0.elementsEqual([0x2e, 0x2e]) }
    }
}

extension OpenPathConstraint {
    /// The opens both keep, exactly; nil when both name paths (their intersection is not a set
    /// of paths, prefixes and basenames).
    func exactIntersection(_ other: OpenPathConstraint) -> OpenPathConstraint? {
        guard !(hasPaths && other.hasPaths) else { return nil }
        return intersection(other)
    }
}
