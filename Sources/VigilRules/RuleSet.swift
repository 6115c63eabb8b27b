import Foundation
import VigilEvents

/// A compiled rule: its definition, condition plan and output template. A class: each match
/// hands the rule on (to an alert, an action), and a reference is one retain where the struct's
/// every string and array was one each.
public final class CompiledRule: Sendable {
    public let rule: Rule
    public let condition: CompiledCondition
    public let output: OutputTemplate

    init(rule: Rule, condition: CompiledCondition, output: OutputTemplate) {
        self.rule = rule
        self.condition = condition
        self.output = output
    }
}

/// What the loaded rules let the kernel do for them (kernel pushdown).
public struct KernelPushdown: Sendable, Equatable {
    /// Event kinds some rule can match: only their sensors/hooks need to run.
    public var kinds: KindSet
    /// Every rule requires a container (container.id != host, proc.is_container = true, ...).
    public var containersOnly: Bool
    /// Every rule requires proc.name to be one of these (nil: no such common restriction).
    public var comms: Set<String>?
    /// The file sensor's path filter and in-kernel kills (`OpenPathPushdown`).
    public var openPaths: OpenPathPushdown
    /// The syscalls (rows of `Syscalls.all`) the syscalls sensor must capture for the rules: the
    /// kernel's per-syscall bitmap. Empty: the sensor is not loaded (its generic hook taxes every
    /// syscall on the host). Never holds a syscall a dedicated sensor reports for a rule that
    /// matches that sensor's events (`RuleSet.dedicatedSyscalls`).
    public var syscalls: SyscallRows = SyscallRows()
    /// The rules that ask for every syscall (syscall fields with no evt.type restriction).
    public var everySyscallRules: [String] = []
    /// The socket messages the rules read (dns.*, fd.sip.name, ...; net.stratum.*: in a condition
    /// or an output), each `only` when every rule asking for its syscalls needs the message
    /// (`CompiledCondition.onlyMessages`): the kernel may then drop the calls that carry none.
    public var messages = MessageCaptures()
    /// The network syscalls (connect, sendto, sendmsg, bind, listen; by name) whose calls the
    /// rules may match only for some addresses or ports (`NetworkPushdown`): every rule asking
    /// for that syscall is limited so. A syscall absent here: some rule wants every call.
    /// Whether the kernel may drop the other calls depends on the other consumers too
    /// (`SyscallCapture`).
    public var networkCalls: [String: NetworkCallFilter] = [:]
    /// The network syscalls of `NetworkPushdown` the rules ask for that have no such set, each
    /// with the rules that may match any of its calls (empty: each rule is bounded, but not all
    /// alike, an address beside a port).
    public var unboundedNetworkCalls: [String: [String]] = [:]

    /// Creates a pushdown.
    public init(kinds: KindSet, containersOnly: Bool, comms: Set<String>?, openPaths: OpenPathPushdown,
                syscalls: SyscallRows = SyscallRows(), everySyscallRules: [String] = []) {
        self.kinds = kinds
        self.containersOnly = containersOnly
        self.comms = comms
        self.openPaths = openPaths
        self.syscalls = syscalls
        self.everySyscallRules = everySyscallRules
    }

    /// This arch's numbers of `syscalls` (the bitmap's bits).
    public var syscallNumbers: Set<Int> { Set(syscalls.indices.compactMap { Syscalls.all[$0].number() }) }

    /// The `syscalls:` line of the summary.
    public var syscallSummary: String {
        if syscalls.isEmpty { return "syscalls: none (the syscalls sensor is not loaded)" }
        let names = syscalls.names
        let all = syscalls == .all
        let list = all ? "ALL \(names.count)" : names.count > 40 ? "\(names.count) (" + names.prefix(40).joined(separator: ", ") + ", ...)"
            : "\(names.count): " + names.joined(separator: ", ")
        return "syscalls: " + list + " (in kernel: the syscalls sensor's bitmap; its hook, per syscall or generic by the set's size, is in `vigil status`)"
            + (everySyscallRules.isEmpty ? "" : "; every syscall is asked for by: " + everySyscallRules.map { "'\($0)'" }.joined(separator: ", "))
    }

    /// One line per filter, for `vigil rules validate`.
    public var summary: [String] {
        var lines = ["event kinds: " + (kinds.isEmpty ? "none" : EventKind.allCases.filter(kinds.contains).map(\.rawValue).joined(separator: ", "))]
        lines.append(syscallSummary)
        for message in messages.wanted {
            let read = "read from \(message.syscalls.joined(separator: ", ")) (\(message.bytes)-byte buffers)"
            switch message {
            case .dns: lines.append("dns: answers \(read) for fd.sip.name and dns.* fields"
                + (messages[message].only ? "; only port 53's (in kernel; read only on UDP sockets connected to port 53)" : ""))
            case .firstPayload: lines.append("payloads: what clients write \(read) for net.stratum.* fields"
                + (messages[message].only ? "; only each TCP connection's first payload (in kernel)" : ""))
            }
        }
        for (name, filter) in networkCalls.sorted(by: { $0.key < $1.key }) {
            lines.append("\(name): rules match only \(filter) (derived from the rules; the kernel does not filter by it yet)")
        }
        for (name, rules) in unboundedNetworkCalls.sorted(by: { $0.key < $1.key }) {
            lines.append("\(name): no address or port set" + (rules.isEmpty ? " (the rules bound it by different fields)"
                : "; any call may match " + rules.map { "'\($0)'" }.joined(separator: ", ")))
        }
        lines.append("containers only: " + (containersOnly ? "yes (in kernel)" : "no"))
        lines.append("command names: " + (comms.map { "only " + $0.sorted().joined(separator: ", ") + " (in kernel)" } ?? "all"))
        if kinds.contains(.open) || !openPaths.killRules.isEmpty { lines += openPaths.summary }
        return lines
    }
}

/// A rule left out because it (or a macro, list or exception it uses) names a field Vigil does
/// not have: every such rule is skipped with one warning line, with or without Falco's
/// `skip-if-unknown-filter: true` (issue 12 section 5: one rule written for a field Vigil lacks
/// never stops the file from loading). Any other error still fails the load.
public struct SkippedRule: Sendable, Equatable, CustomStringConvertible {
    /// The rule's name.
    public let name: String
    /// Where the rule was defined.
    public let location: SourceLocation
    /// The compile error (`unknownField` names the field, `location` where it is written).
    public let error: RuleError
    /// The known field names closest to the unknown one, nearest first (at most three).
    public let suggestions: [String]

    /// Creates a skipped rule; `suggestions` are looked up from `error.unknownField`.
    public init(name: String, location: SourceLocation, error: RuleError) {
        self.name = name
        self.location = location
        self.error = error
        suggestions = error.unknownField.map { ConditionCompiler.closestFieldNames(to: $0, limit: 3) } ?? []
    }

    /// The field Vigil does not have.
    public var field: String { error.unknownField ?? "" }

    /// `rule 'NAME' skipped: Vigil has no field 'F' (FILE:LINE:COL[, in macro 'M']); did you
    /// mean 'A', 'B'?` (no location of the rule: `description` and `RuleWarning` add it).
    public var message: String {
        let place = "\(error.location)" + RuleSet.macroContext(error).replacingOccurrences(of: " in macro", with: ", in macro")
        let guesses = suggestions.isEmpty ? "" : "; did you mean " + suggestions.map { "'\($0)'" }.joined(separator: ", ") + "?"
        return "rule '\(name)' skipped: Vigil has no field '\(field)' (\(place))" + guesses
    }

    /// `FILE:LINE:COL: ` + `message`, the rule's own location first.
    public var description: String { "\(location): \(message)" }

    /// The warning it is in `RuleSet.warnings` (`FILE:LINE:COL: warning: ` + `message`).
    public var warning: RuleWarning { RuleWarning(location: location, rule: name, message: message) }
}

/// Something a load found worth saying that does not stop it: a rule skipped for an unknown
/// field, output fields printed as `<NA>`, a rule that can never match the events Vigil produces.
public struct RuleWarning: Sendable, Equatable, CustomStringConvertible {
    /// Where it concerns (the rule's definition, or the field in its output).
    public let location: SourceLocation
    /// The rule it concerns.
    public let rule: String
    /// What is worth saying, in one sentence (no location).
    public let message: String

    /// `FILE:LINE:COL: warning: message`.
    public var description: String { "\(location): warning: \(message)" }
}

/// Rules, macros and lists from any number of files, merged in order and compiled: an event
/// meets only the rules that can match its kind.
public struct RuleSet: Sendable {
    /// The enabled rules, in definition order.
    public let rules: [CompiledRule]
    /// Rules that are defined but disabled.
    public let disabled: [String]
    /// Rules that use a field Vigil does not have (with or without `skip-if-unknown-filter`):
    /// not loaded, each with the field, where it is written and the nearest known names.
    public let skipped: [SkippedRule]
    /// What the load found that does not stop it: rules defined again (first), then in rule order skipped rules, output fields
    /// Vigil lacks (printed as `<NA>`), rules that need events Vigil never produces.
    public let warnings: [RuleWarning]
    /// Every rule's condition compiled together, per event kind: only the rules that can match
    /// the kind, subconditions shared by rules evaluated once per event (`EvaluationProgram`).
    let program: EvaluationProgram
    /// Macros and lists after merging (for `vigil rules validate`).
    public let macroCount: Int, listCount: Int
    /// The file sensor's path pushdown (computed once: it validates `kernel_kill` rules).
    public let openPaths: OpenPathPushdown
    /// Whether a rule's condition or output reads a process's environment (proc.env,
    /// proc.env_truncated): the process table keeps environments only then
    /// (`ProcessTable.readsEnvironment`). Computed once, at load.
    public let readsProcessEnvironment: Bool
    /// Whether a rule's condition or output reads dns.name.new: the daemon keeps the images'
    /// DNS baselines only then (`Enricher.dnsBaseline`). Computed once, at load.
    public let readsDNSBaseline: Bool
    /// Per rule (same order as `rules`), the kinds it is evaluated for: its condition's kinds,
    /// without `.syscall` for a rule that neither restricts evt.type to syscalls nor reads a
    /// syscall field (`proc.name = nc` sees exec, fork, exit and open events, not every syscall).
    let ruleKinds: [KindSet]
    /// Per rule, the syscalls it asks the syscalls sensor for.
    let ruleSyscalls: [SyscallRows]
    /// Per row of `Syscalls.all`: the kind whose dedicated sensor reports that syscall, if any.
    private let dedicatedKindByRow: [EventKind?]

    /// The syscalls a dedicated sensor reports as its own kind: the process sensor's exec and
    /// fork events, the file sensor's open events. A rule that matches those events (evt.type =
    /// execve) does not ask the syscalls sensor for them, and a syscall event of one of them
    /// (`vigil trace --event execve`) is not checked against such a rule: one exec, one alert.
    /// From bpf/syscalls/kinds.table (`EventKindDescriptor.dedicatedSyscalls`).
    public static let dedicatedSyscalls: [EventKind: [String]] = Dictionary(uniqueKeysWithValues:
        EventKindDescriptor.all.filter { !$0.dedicatedSyscalls.isEmpty }.map { ($0.kind, $0.dedicatedSyscalls) })

    /// The event kinds rule `index` (of `rules`) can match as it is evaluated, `.syscall` only when
    /// it asks the syscalls sensor for some syscall; and those syscalls' names.
    public func eventKinds(ofRule index: Int) -> (kinds: KindSet, syscalls: [String]) {
        var kinds = ruleKinds[index]
        if ruleSyscalls[index].isEmpty { kinds.remove(.syscall) }
        return (kinds, ruleSyscalls[index].names)
    }

    /// The kinds a rule is evaluated for and the syscalls it asks for (see `ruleKinds`).
    static func syscallNeeds(_ condition: CompiledCondition) -> (kinds: KindSet, syscalls: SyscallRows) {
        var kinds = condition.kinds
        guard kinds.contains(.syscall) else { return (kinds, SyscallRows()) }
        var rows = condition.syscalls
        if rows == .all && !condition.readsSyscallFields {
            kinds.remove(.syscall)
            return (kinds, SyscallRows())
        }
        for (kind, names) in dedicatedSyscalls where kinds.contains(kind) { rows.subtract(SyscallRows(names: names)) }
        return (kinds, rows)
    }

    /// Merges the files' items in order (append/override; a rule defined again replaces the first
    /// definition, with a warning) and compiles.
    ///
    /// A rule that needs a field Vigil does not have (in its condition, a macro or list it uses,
    /// an exception) is skipped with a warning (`skipped`), never failing the load; a macro with
    /// an unknown field only matters to the rules that use it. Every other error fails the load.
    /// - Throws: every `RuleError` found, as one (`RuleError.all`), each naming FILE:LINE:COL;
    ///   an error inside a macro also names the rule that uses it and where that is.
    public init(files: [(file: String, items: [RuleItem])]) throws(RuleError) {
        var errors: [RuleError] = []
        var lists: [String: RuleList] = [:]
        var macros: [String: RuleMacro] = [:]
        var macroSegments: [String: [SourceSegment]] = [:]
        var listItemLocations: [String: [SourceLocation]] = [:]
        var rules: [Rule] = []
        var redefined: [RuleWarning] = []
        for (_, items) in files {
            for item in items {
                switch item {
                case .list(let list, let merge):
                    let expanded = list.items.flatMap { lists[$0]?.items ?? [$0] }
                    let origins = list.items.flatMap { item -> [SourceLocation] in
                        guard let nested = lists[item] else { return [list.location] }
                        return listItemLocations[item] ?? Array(repeating: nested.location, count: nested.items.count)
                    }
                    if let existing = lists[list.name], merge != .define {
                        let replace = if case .override(let modes) = merge { modes["items"] == .replace } else { false }
                        lists[list.name]?.items = replace ? expanded : existing.items + expanded
                        listItemLocations[list.name] = replace ? origins : (listItemLocations[list.name] ?? []) + origins
                    } else if merge != .define {
                        errors.append(RuleError(location: list.location, message: "list '\(list.name)' is appended to or overridden but was never defined"))
                    } else {
                        var defined = list
                        defined.items = expanded
                        lists[list.name] = defined
                        listItemLocations[list.name] = origins
                    }
                case .macro(let macro, let merge):
                    if let existing = macros[macro.name], merge != .define {
                        let replace = if case .override(let modes) = merge { modes["condition"] == .replace } else { false }
                        if replace {
                            macros[macro.name] = macro
                            macroSegments[macro.name] = nil
                        } else {
                            let parts = macroSegments[macro.name] ?? [SourceSegment(offset: 0, start: existing.location)]
                            macroSegments[macro.name] = parts + [SourceSegment(offset: existing.condition.utf8.count + 1, start: macro.location)]
                            macros[macro.name]?.condition = existing.condition + " " + macro.condition
                        }
                    } else if merge != .define {
                        errors.append(RuleError(location: macro.location, message: "macro '\(macro.name)' is appended to or overridden but was never defined"))
                    } else {
                        macros[macro.name] = macro
                        macroSegments[macro.name] = nil
                    }
                case .rule(let partial, let merge):
                    do { try Self.merge(partial, merge, into: &rules, redefined: &redefined) } catch { errors.append(error) }
                }
            }
        }
        var context = ConditionContext(macros: macros.mapValues { (text: $0.condition, location: $0.location) },
                                       lists: lists.mapValues(\.items))
        context.macroSegments = macroSegments
        context.listItemLocations = listItemLocations
        var compiled: [CompiledRule] = []
        var disabled: [String] = []
        var skipped: [SkippedRule] = []
        var warnings = redefined
        for rule in rules {
            guard rule.enabled else { disabled.append(rule.name); continue }
            let condition: CompiledCondition
            do {
                let source = rule.effectiveSource
                condition = try ConditionCompiler.compile(source.text, segments: source.segments, context: context)
            } catch where error.all.allSatisfy({ $0.unknownField != nil }) {
                let skip = SkippedRule(name: rule.name, location: rule.location, error: error)
                skipped.append(skip)
                warnings.append(skip.warning)
                continue
            } catch {
                errors.append(Self.inRule(error, rule))
                continue
            }
            let output = OutputTemplate(rule.output, at: rule.outputLocation)
            compiled.append(CompiledRule(rule: rule, condition: condition, output: output))
            if !output.unknownFields.isEmpty {
                let names = output.unknownFields.map { field in "%" + field.name + (field.suggestion.map { " (did you mean '%\($0)'?)" } ?? "") }
                warnings.append(RuleWarning(location: output.unknownFields[0].location, rule: rule.name,
                                            message: "rule '\(rule.name)': the output names fields Vigil does not have, printed as <NA>: " + names.joined(separator: ", ")))
            }
            if let never = Self.neverMatches(condition) {
                warnings.append(RuleWarning(location: rule.location, rule: rule.name, message: "rule '\(rule.name)' is loaded but never matches: \(never)"))
            }
        }
        if let error = RuleError.combined(errors) { throw error }
        let needs = compiled.map { Self.syscallNeeds($0.condition) }
        for (rule, need) in zip(compiled, needs) where need.syscalls == .all {
            warnings.append(RuleWarning(location: rule.rule.location, rule: rule.rule.name,
                                        message: "rule '\(rule.rule.name)' asks for every syscall (it reads syscall fields with no evt.type restriction): "
                                            + "the syscalls sensor captures all \(Syscalls.all.count) syscalls of every process on the host, which costs every syscall"))
        }
        self.ruleKinds = needs.map(\.kinds)
        self.ruleSyscalls = needs.map(\.syscalls)
        var dedicated = [EventKind?](repeating: nil, count: Syscalls.all.count)
        for (kind, names) in Self.dedicatedSyscalls { for name in names { if let i = Syscalls.index(named: name) { dedicated[i] = kind } } }
        self.dedicatedKindByRow = dedicated
        self.program = EvaluationProgram(compiled.map(\.condition.root), kinds: needs.map(\.kinds))
        self.rules = compiled
        self.disabled = disabled
        self.skipped = skipped
        self.warnings = warnings
        self.macroCount = macros.count
        self.listCount = lists.count
        self.openPaths = try OpenPathPushdown(rules: compiled)
        self.readsProcessEnvironment = compiled.contains { rule in
            !rule.condition.fields.union(rule.output.fieldNames).isDisjoint(with: ProcessDetails.environmentFields)
        }
        self.readsDNSBaseline = compiled.contains { rule in
            rule.condition.fields.union(rule.output.fieldNames).contains(NetworkFields.dnsNewNameField)
        }
    }

    /// Why a compiled condition can never be true for an event Vigil produces, or nil.
    static func neverMatches(_ condition: CompiledCondition) -> String? {
        guard condition.kinds.isEmpty || condition.constantValue == false else { return nil }
        if condition.constantValue == false {
            return "its condition is false for every event Vigil produces (it folds to false when compiled: never_true, ...)"
        }
        if !condition.unproducedEventTypes.isEmpty {
            return "its condition needs events Vigil does not produce (evt.type "
                + condition.unproducedEventTypes.joined(separator: ", ") + ")"
        }
        return "its condition asks for fields of different event kinds at once, so no event Vigil produces can match"
    }

    /// ` in macro 'NAME'` (with the path from the rule when nested), or nothing.
    static func macroContext(_ error: RuleError) -> String {
        guard let inner = error.macroPath.last else { return "" }
        return " in macro '\(inner)'" + (error.macroPath.count > 1 ? " (via " + error.macroPath.joined(separator: " -> ") + ")" : "")
    }

    /// `error` with the rule it broke: where the problem is inside a macro or in another file
    /// than the rule, the message names the macro, the rule and where the rule is, so an error
    /// from an interaction (a user file's macro breaking a default rule) names both places.
    static func inRule(_ error: RuleError, _ rule: Rule) -> RuleError {
        var described = error
        if !error.macroPath.isEmpty || error.location.file != rule.location.file {
            described.message = message(error, adding: "\(macroContext(error)), used by rule '\(rule.name)' at \(rule.location)")
        } else {
            described.message += " (rule '\(rule.name)')"
        }
        return described
    }

    /// `error`'s message with `context` after what is wrong and before any "did you mean".
    static func message(_ error: RuleError, adding context: String) -> String {
        guard let suggestion = error.message.range(of: "; did you mean") else { return error.message + context }
        return error.message[..<suggestion.lowerBound] + context + error.message[suggestion.lowerBound...]
    }

    /// The rule a full definition makes (condition, output and priority required).
    private static func defined(_ partial: PartialRule) throws(RuleError) -> Rule {
        guard let condition = partial.condition else {
            throw RuleError(location: partial.location, message: "rule '\(partial.name)' has no condition")
        }
        guard let output = partial.output else { throw RuleError(location: partial.location, message: "rule '\(partial.name)' has no output") }
        guard let priority = partial.priority else { throw RuleError(location: partial.location, message: "rule '\(partial.name)' has no priority") }
        return Rule(name: partial.name, description: partial.description ?? "", condition: condition.text,
                    conditionLocation: condition.location, output: output.text, outputLocation: output.location,
                    priority: priority, tags: partial.tags ?? [], enabled: partial.enabled ?? true,
                    exceptions: partial.exceptions ?? [], actions: partial.actions ?? [], location: partial.location,
                    skipIfUnknownFilter: partial.skipIfUnknownFilter ?? false)
    }

    /// Merges one rule item into `rules`. A second full definition of a rule replaces the first
    /// where the first was (as Falco's loader does: Falco's incubating file redefines a rule its
    /// stable file has), and `redefined` gets a warning naming both places.
    private static func merge(_ partial: PartialRule, _ merge: Merge, into rules: inout [Rule],
                              redefined: inout [RuleWarning]) throws(RuleError) {
        let index = rules.firstIndex { $0.name == partial.name }
        guard let index else {
            if merge != .define {
                throw RuleError(location: partial.location, message: "rule '\(partial.name)' is appended to or overridden but was never defined")
            }
            if partial.condition == nil, partial.enabled != nil {
                throw RuleError(location: partial.location, message: "rule '\(partial.name)' is enabled/disabled but was never defined")
            }
            rules.append(try defined(partial))
            return
        }
        if merge == .define {
            // Falco's way of switching a rule off: only `enabled:` with the name.
            if partial.condition == nil, partial.output == nil, let enabled = partial.enabled {
                rules[index].enabled = enabled
                return
            }
            let first = rules[index].location
            rules[index] = try defined(partial)
            redefined.append(RuleWarning(location: partial.location, rule: partial.name,
                                         message: "rule '\(partial.name)' is defined again: this definition replaces the one at \(first.file):\(first.line) (as in Falco; use override or append to change a rule)"))
            return
        }
        func mode(_ key: String) -> OverrideMode? {
            switch merge {
            case .append: return .append
            case .override(let modes): return modes[key]
            case .define: return nil
            }
        }
        var rule = rules[index]
        if let c = partial.condition, let m = mode("condition") {
            if m == .replace {
                rule.condition = c.text
                rule.conditionLocation = c.location
                rule.conditionSegments = []
            } else {
                let own = rule.conditionSegments.isEmpty ? [SourceSegment(offset: 0, start: rule.conditionLocation)] : rule.conditionSegments
                rule.conditionSegments = own.map { SourceSegment(offset: $0.offset + 1, start: $0.start) }
                    + [SourceSegment(offset: rule.condition.utf8.count + 3, start: c.location)]
                rule.condition = "(\(rule.condition)) \(c.text)"
            }
        }
        if let o = partial.output, let m = mode("output") { rule.output = m == .replace ? o.text : rule.output + " " + o.text }
        if let d = partial.description, let m = mode("desc") { rule.description = m == .replace ? d : rule.description + " " + d }
        if let p = partial.priority, mode("priority") != nil { rule.priority = p }
        if let t = partial.tags, let m = mode("tags") { rule.tags = m == .replace ? t : rule.tags + t }
        if let e = partial.exceptions, let m = mode("exceptions") { rule.exceptions = m == .replace ? e : rule.exceptions + e }
        if let a = partial.actions, let m = mode("actions") { rule.actions = m == .replace ? a : rule.actions + a }
        if let enabled = partial.enabled, mode("enabled") != nil || merge == .append { rule.enabled = enabled }
        if let skip = partial.skipIfUnknownFilter, mode("skip-if-unknown-filter") != nil || merge == .append { rule.skipIfUnknownFilter = skip }
        rules[index] = rule
    }

    /// Calls `body` for every rule whose condition matches `event`, in definition order (only
    /// rules that can match its kind are evaluated).
    public func forEachMatch(_ event: Event, _ body: (CompiledRule) throws -> Void) rethrows {
        // No closure here captures the event: a capture would copy it.
        if case .syscall(let call) = event.payload, let kind = dedicatedKindByRow[call.index] {
            try program.forEachMatch(event) { if !ruleKinds[$0].contains(kind) { try body(rules[$0]) } }
            return
        }
        try program.forEachMatch(event) { try body(rules[$0]) }
    }

    /// The rules that match `event`.
    public func matches(_ event: Event) -> [CompiledRule] {
        var found: [CompiledRule] = []
        forEachMatch(event) { found.append($0) }
        return found
    }

    /// What the kernel can do for these rules.
    public var pushdown: KernelPushdown {
        var syscalls = SyscallRows()
        for rows in ruleSyscalls { syscalls.formUnion(rows) }
        var kinds = KindSet(ruleKinds.joined())
        if syscalls.isEmpty { kinds.remove(.syscall) }
        let everySyscall = zip(rules, ruleSyscalls).filter { $0.1 == .all }.map(\.0.rule.name)
        let containersOnly = !rules.isEmpty && rules.allSatisfy { rule in
            rule.condition.conjuncts.contains { p in
                (p.field == "container.id" && p.op == "!=" && p.values == ["host"] && !p.negated)
                    || (p.field == "proc.is_container" && p.op == "=" && p.values == ["true"] && !p.negated)
                    || (p.field == "container.id" && p.op == "=" && p.values == ["host"] && p.negated)
            }
        }
        var comms: Set<String>? = nil
        for rule in rules {
            let names = rule.condition.conjuncts.first { p in
                p.field == "proc.name" && !p.negated && (p.op == "=" || p.op == "in")
            }.map { Set($0.values) }
            guard let names else { comms = nil; break }
            comms = (comms ?? []).union(names)
        }
        if rules.isEmpty { comms = nil }
        var pushdown = KernelPushdown(kinds: kinds, containersOnly: containersOnly, comms: comms, openPaths: openPaths,
                                      syscalls: syscalls, everySyscallRules: everySyscall)
        for message in SocketMessage.allCases {
            let wanted = !syscalls.isEmpty && rules.contains { rule in
                !rule.condition.fields.union(rule.output.fieldNames).isDisjoint(with: message.fieldNames)
            }
            let asking = zip(rules, ruleSyscalls).filter { !$0.1.isDisjoint(with: message.rows) }
            pushdown.messages[message] = MessageCapture(wanted: wanted, only: asking.allSatisfy { $0.0.condition.onlyMessages.contains(message) })
        }
        for row in NetworkPushdown.rows where syscalls.contains(row) {
            let asking = zip(rules, ruleSyscalls).filter { $0.1.contains(row) }.map(\.0)
            if let filter = NetworkPushdown.filter(row: row, conditions: asking.map(\.condition)) {
                pushdown.networkCalls[Syscalls.all[row].nameString] = filter
            } else {
                pushdown.unboundedNetworkCalls[Syscalls.all[row].nameString] =
                    asking.filter { NetworkPushdown.unbounded(row: row, condition: $0.condition) }.map(\.rule.name)
            }
        }
        return pushdown
    }
}
