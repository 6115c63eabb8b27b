import Foundation
import Yams

/// Reads Falco-style YAML rule files: a sequence of `- rule:`, `- macro:`, `- list:` items (and
/// `required_engine_version`, ignored), with `append:` / `override:`.
public enum YAMLRules {
    /// The items of one file, in order. Errors name FILE:LINE:COL; every item's error is
    /// reported (`RuleError.all`), not only the first.
    public static func load(_ text: String, file: String) throws(RuleError) -> [RuleItem] {
        let composed: Result<Node?, any Error> = Result { try Yams.compose(yaml: text) }
        let root: Node?
        switch composed {
        case .success(let node): root = node
        case .failure(let error as YamlError): throw Self.error(error, file: file)
        case .failure(let error): throw RuleError(location: SourceLocation(file: file, line: 1, column: 1), message: "\(error)")
        }
        guard let root else { return [] }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let reader = Reader(file: file, lines: lines)
        guard case .sequence(let items) = root else {
            throw reader.error(root, "a rules file is a YAML sequence of '- rule:', '- macro:' and '- list:' items")
        }
        var result: [RuleItem] = []
        var errors: [RuleError] = []
        for node in items {
            do {
                if let item = try reader.item(node) { result.append(item) }
            } catch {
                errors.append(error)
            }
        }
        if let error = RuleError.combined(errors) { throw error }
        return result
    }

    private static func error(_ error: YamlError, file: String) -> RuleError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return RuleError(location: SourceLocation(file: file, line: mark.line, column: mark.column), message: "YAML: \(problem)")
        default:
            return RuleError(location: SourceLocation(file: file, line: 1, column: 1), message: "YAML: \(error)")
        }
    }

    /// Turns nodes into items, with locations for every error.
    struct Reader {
        let file: String
        let lines: [Substring]

        func location(_ node: Node) -> SourceLocation {
            SourceLocation(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1)
        }

        func error(_ node: Node, _ message: String) -> RuleError { RuleError(location: location(node), message: message) }

        /// Where a scalar's text starts: after the quote, or on the line after a block indicator.
        func textLocation(_ node: Node) -> SourceLocation {
            var at = location(node)
            guard case .scalar(let scalar) = node else { return at }
            switch scalar.style {
            case .singleQuoted, .doubleQuoted:
                at.column += 1
            case .literal, .folded:
                at.line += 1
                if at.line - 1 < lines.count {
                    at.column = (lines[at.line - 1].firstIndex { $0 != " " }.map { lines[at.line - 1].distance(from: lines[at.line - 1].startIndex, to: $0) } ?? 0) + 1
                }
            default: break
            }
            return at
        }

        func string(_ node: Node, _ key: String) throws(RuleError) -> String {
            guard case .scalar(let scalar) = node else { throw error(node, "'\(key)' must be a string") }
            return scalar.string
        }

        func strings(_ node: Node, _ key: String) throws(RuleError) -> [String] {
            guard case .sequence(let seq) = node else { throw error(node, "'\(key)' must be a list") }
            return try seq.map { (item) throws(RuleError) -> String in
                guard case .scalar(let s) = item else { throw error(item, "items of '\(key)' must be strings") }
                return s.string
            }
        }

        func bool(_ node: Node, _ key: String) throws(RuleError) -> Bool {
            guard case .scalar(let s) = node, let value = Bool(s.string.lowercased()) else {
                throw error(node, "'\(key)' must be true or false")
            }
            return value
        }

        func item(_ node: Node) throws(RuleError) -> RuleItem? {
            guard case .mapping(let mapping) = node else { throw error(node, "each item must be a mapping ('- rule: NAME', ...)") }
            var fields: [String: Node] = [:]
            var order: [(String, Node)] = []
            for (keyNode, value) in mapping {
                let key = try string(keyNode, "key")
                if fields[key] != nil { throw error(keyNode, "key '\(key)' appears twice") }
                fields[key] = value
                order.append((key, keyNode))
            }
            let merge = try self.merge(fields)
            if let name = fields["list"] {
                try allow(order, ["list", "items", "append", "override"], kind: "list")
                guard let items = fields["items"] else { throw error(node, "list '\(try string(name, "list"))' has no 'items'") }
                return .list(RuleList(name: try string(name, "list"), items: try strings(items, "items"), location: location(name)), merge)
            }
            if let name = fields["macro"] {
                try allow(order, ["macro", "condition", "append", "override"], kind: "macro")
                guard let condition = fields["condition"] else { throw error(node, "macro '\(try string(name, "macro"))' has no 'condition'") }
                return .macro(RuleMacro(name: try string(name, "macro"), condition: try string(condition, "condition"),
                                        location: textLocation(condition)), merge)
            }
            if let name = fields["rule"] {
                try allow(order, ["rule", "desc", "condition", "output", "priority", "tags", "enabled", "exceptions",
                                  "actions", "append", "override", "source", "warn_evttypes", "skip-if-unknown-filter"], kind: "rule")
                var rule = PartialRule(name: try string(name, "rule"), location: location(name))
                rule.description = try fields["desc"].map { (n) throws(RuleError) in try string(n, "desc") }
                rule.condition = try fields["condition"].map { (n) throws(RuleError) in (try string(n, "condition"), textLocation(n)) }
                rule.output = try fields["output"].map { (n) throws(RuleError) in (try string(n, "output"), textLocation(n)) }
                if let p = fields["priority"] {
                    let text = try string(p, "priority")
                    guard let priority = Priority(parsing: text) else {
                        throw error(p, "unknown priority '\(text)' (use \(Priority.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    rule.priority = priority
                }
                rule.tags = try fields["tags"].map { (n) throws(RuleError) in try strings(n, "tags") }
                rule.enabled = try fields["enabled"].map { (n) throws(RuleError) in try bool(n, "enabled") }
                rule.actions = try fields["actions"].map { (n) throws(RuleError) in try strings(n, "actions") }
                rule.exceptions = try fields["exceptions"].map { (n) throws(RuleError) in try exceptions(n) }
                rule.skipIfUnknownFilter = try fields["skip-if-unknown-filter"].map { (n) throws(RuleError) in try bool(n, "skip-if-unknown-filter") }
                return .rule(rule, merge)
            }
            if fields["required_engine_version"] != nil || fields["required_plugin_versions"] != nil { return nil }
            throw error(node, "unknown item: expected 'rule', 'macro' or 'list' (found \(order.map(\.0).joined(separator: ", ")))")
        }

        func allow(_ keys: [(String, Node)], _ allowed: Set<String>, kind: String) throws(RuleError) {
            for (key, node) in keys where !allowed.contains(key) {
                throw error(node, "unknown key '\(key)' in a \(kind) (valid: \(allowed.sorted().joined(separator: ", ")))")
            }
        }

        func merge(_ fields: [String: Node]) throws(RuleError) -> Merge {
            if let override = fields["override"] {
                guard case .mapping(let m) = override else { throw error(override, "'override' maps keys to append or replace") }
                var modes: [String: OverrideMode] = [:]
                for (k, v) in m {
                    let mode = try string(v, "override")
                    guard let parsed = OverrideMode(rawValue: mode) else { throw error(v, "override mode must be append or replace, not '\(mode)'") }
                    modes[try string(k, "override key")] = parsed
                }
                return .override(modes)
            }
            if let append = fields["append"], try bool(append, "append") { return .append }
            return .define
        }

        func exceptions(_ node: Node) throws(RuleError) -> [RuleException] {
            guard case .sequence(let seq) = node else { throw error(node, "'exceptions' must be a list") }
            return try seq.map { (item) throws(RuleError) -> RuleException in
                guard case .mapping(let m) = item else { throw error(item, "an exception is a mapping with name, fields, comps, values") }
                var name = "", fields: [String] = [], comps: [String]? = nil, values: [[String]] = []
                var singleField = false
                for (k, v) in m {
                    switch try string(k, "exception key") {
                    case "name": name = try string(v, "name")
                    case "fields":
                        if case .scalar(let s) = v { fields = [s.string]; singleField = true } else { fields = try strings(v, "fields") }
                    case "comps":
                        if case .scalar(let s) = v { comps = [s.string] } else { comps = try strings(v, "comps") }
                    case "values":
                        guard case .sequence(let rows) = v else { throw error(v, "'values' must be a list") }
                        values = try rows.map { (row) throws(RuleError) -> [String] in
                            if case .scalar(let s) = row { return [s.string] }
                            return try strings(row, "values")
                        }
                    case let other: throw error(k, "unknown key '\(other)' in an exception (valid: comps, fields, name, values)")
                    }
                }
                if singleField {
                    // fields: one field, values: a flat list -> field in (values)
                    let list = values.flatMap { $0 }
                    return RuleException(name: name, fields: fields, comps: [comps?.first ?? "in"],
                                         values: list.isEmpty ? [] : [["(" + list.map(quote).joined(separator: ", ") + ")"]],
                                         location: location(item))
                }
                let ops = comps ?? Array(repeating: "=", count: fields.count)
                guard ops.count == fields.count else { throw error(item, "exception '\(name)' has \(fields.count) fields but \(ops.count) comps") }
                for row in values where row.count != fields.count {
                    throw error(item, "exception '\(name)' has \(fields.count) fields but a value row with \(row.count) values")
                }
                return RuleException(name: name, fields: fields, comps: ops,
                                     values: values.map { $0.map(quote) }, location: location(item))
            }
        }
    }
}

/// A value as a condition literal: quoted unless it is a plain word or a parenthesised list.
func quote(_ value: String) -> String {
    if value.hasPrefix("(") && value.hasSuffix(")") { return value }
    let plain = !value.isEmpty && value.allSatisfy { $0.isLetter || $0.isNumber || "/._-:*".contains($0) }
    return plain ? value : "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}
