import Foundation

/// Reads bpfd's TOML rule files unchanged and turns each into a Vigil rule.
///
/// bpfd's meaning is kept: `program` (or `tracer`) names the event source (exec or open); with no
/// filters every event of it passes; the values of all keys are OR-ed and each matches as a
/// substring; `containerRuntimes` must match exactly. Keys map to fields: command -> proc.name,
/// argv -> proc.cmdline, filename -> fd.name (open), returnval -> evt.rawres (open).
public enum BpfdRules {
    /// bpfd's programs and the condition selecting their events.
    static let programs: [String: String] = [
        "exec": "evt.type = execve",
        "open": "evt.type in (open, openat, openat2)",
    ]

    /// bpfd's event keys, per program, and the Vigil field each means.
    static let keys: [String: [String: String]] = [
        "exec": ["command": "proc.name", "argv": "proc.cmdline"],
        "open": ["command": "proc.name", "filename": "fd.name", "returnval": "evt.rawres"],
    ]

    /// Parses one TOML file into a rule named `name =` or the file name without `.toml`.
    public static func load(_ text: String, file: String) throws(RuleError) -> Rule {
        let table = try TOMLSubsetParser.parse(text, file: file)
        let start = SourceLocation(file: file, line: 1, column: 1)
        let topKeys: Set<String> = ["program", "tracer", "name", "actions", "filterEvents", "searchEvents", "containerRuntimes",
                                    "description", "priority"]
        for entry in table.entries where !topKeys.contains(entry.key) {
            throw RuleError(location: entry.keyLocation, message: "unknown key '\(entry.key)' (valid: \(topKeys.sorted().joined(separator: ", ")))")
        }
        guard let programValue = table["program"] ?? table["tracer"] else {
            throw RuleError(location: start, message: "missing 'program' (or 'tracer'): which events the rule filters (\(programs.keys.sorted().joined(separator: ", ")))")
        }
        let program = try string(programValue, "program")
        guard let selector = programs[program], let programKeys = keys[program] else {
            throw RuleError(location: programValue.location, message: "program '\(program)' is not available in Vigil (available: \(programs.keys.sorted().joined(separator: ", ")))")
        }
        let fileName = (file as NSString).lastPathComponent
        let name = try table["name"].map { (v) throws(RuleError) in try string(v, "name") }
            ?? (fileName.hasSuffix(".toml") ? String(fileName.dropLast(5)) : fileName)
        let actions = try table["actions"].map { (v) throws(RuleError) in try strings(v, "actions") } ?? []

        var clauses: [String] = []
        var runtimes: [String] = try table["containerRuntimes"].map { (v) throws(RuleError) in try strings(v, "containerRuntimes") } ?? []
        for sectionName in ["filterEvents", "searchEvents"] {
            guard let section = table[sectionName] else { continue }
            guard case .table(let filters) = section else {
                throw RuleError(location: section.location, message: "'\(sectionName)' must be a table of [\(sectionName).KEY] tables")
            }
            for entry in filters.entries {
                if entry.key == "containerRuntimes" {
                    runtimes += try strings(entry.value, "containerRuntimes")
                    continue
                }
                guard let field = programKeys[entry.key] else {
                    throw RuleError(location: entry.keyLocation, message: "unknown key '\(entry.key)' for program \(program) (valid: \((programKeys.keys.sorted() + ["containerRuntimes"]).joined(separator: ", ")))")
                }
                guard case .table(let filter) = entry.value else {
                    throw RuleError(location: entry.keyLocation, message: "'\(entry.key)' must be a table with 'values'")
                }
                for item in filter.entries where !["values", "containerRuntimes"].contains(item.key) {
                    throw RuleError(location: item.keyLocation, message: "unknown key '\(item.key)' in [\(sectionName).\(entry.key)] (valid: containerRuntimes, values)")
                }
                if let r = filter["containerRuntimes"] { runtimes += try strings(r, "containerRuntimes") }
                for value in try filter["values"].map({ (v) throws(RuleError) in try strings(v, "values") }) ?? [] {
                    if field == "evt.rawres" {
                        guard Int64(value) != nil else {
                            throw RuleError(location: filter["values"]?.location ?? entry.keyLocation, message: "returnval values are numbers, not '\(value)'")
                        }
                        clauses.append("\(field) = \(value)")
                    } else {
                        clauses.append("\(field) contains \(quote(value))")
                    }
                }
            }
        }
        var condition = selector
        if !clauses.isEmpty { condition += " and (" + clauses.joined(separator: " or ") + ")" }
        if !runtimes.isEmpty {
            let known = ["docker", "containerd", "crio", "podman", "kube", "lxc", "nspawn", "garden", "host"]
            for runtime in runtimes where !known.contains(runtime) {
                throw RuleError(location: start, message: "unknown container runtime '\(runtime)' (valid: \(known.joined(separator: ", ")))")
            }
            condition += " and container.runtime in (" + Array(Set(runtimes)).sorted().joined(separator: ", ") + ")"
        }
        let output = program == "exec"
            ? "bpfd rule \(name) matched: exec %proc.exepath %proc.args (user=%user.name pid=%proc.pid parent=%proc.pname container=%container.id image=%container.image)"
            : "bpfd rule \(name) matched: open %fd.name by %proc.name (user=%user.name pid=%proc.pid result=%evt.res container=%container.id image=%container.image)"
        return Rule(name: name, description: "Converted from the bpfd rule \(fileName).", condition: condition,
                    conditionLocation: start, output: output, outputLocation: start, priority: .warning,
                    tags: ["bpfd"], enabled: true, exceptions: [], actions: actions, location: start)
    }

    private static func string(_ value: TOMLValue, _ key: String) throws(RuleError) -> String {
        guard case .string(let s, _) = value else { throw RuleError(location: value.location, message: "'\(key)' must be a string, not \(value.typeName)") }
        return s
    }

    private static func strings(_ value: TOMLValue, _ key: String) throws(RuleError) -> [String] {
        guard case .array(let items, _) = value else { throw RuleError(location: value.location, message: "'\(key)' must be an array of strings, not \(value.typeName)") }
        return try items.map { (item) throws(RuleError) -> String in try string(item, key) }
    }

    /// The rule as a Falco-style YAML item (`vigil rules convert`).
    public static func yaml(_ rule: Rule) -> String {
        func scalar(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        var out = "- rule: \(scalar(rule.name))\n  desc: \(scalar(rule.description))\n  condition: \(scalar(rule.condition))\n"
        out += "  output: \(scalar(rule.output))\n  priority: \(rule.priority.rawValue)\n  tags: [\(rule.tags.joined(separator: ", "))]\n"
        if !rule.actions.isEmpty { out += "  actions: [\(rule.actions.map(scalar).joined(separator: ", "))]\n" }
        return out
    }
}
