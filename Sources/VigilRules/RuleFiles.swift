import Foundation
import VigilDefaultRules

/// Reading rule files from disk and the embedded defaults.
public enum RuleFiles {
    /// The name errors give the embedded default rules.
    public static let defaultName = "rules/default.yaml (embedded)"

    /// The items of the embedded default ruleset (rules/default.yaml).
    public static func defaultItems() throws(RuleError) -> [RuleItem] {
        try YAMLRules.load(String(cString: vigil_default_rules()), file: defaultName)
    }

    /// The items of one file: `.yaml`/`.yml` as Falco-style YAML, `.toml` as a bpfd rule.
    public static func items(path: String) throws(RuleError) -> [RuleItem] {
        let start = SourceLocation(file: path, line: 1, column: 1)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RuleError(location: start, message: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw RuleError(location: start, message: "the file is not UTF-8 text") }
        return try items(text: text, file: path)
    }

    /// The items of a file's text, by its name's extension.
    public static func items(text: String, file: String) throws(RuleError) -> [RuleItem] {
        if file.hasSuffix(".toml") { return [ruleItem(try BpfdRules.load(text, file: file))] }
        if file.hasSuffix(".yaml") || file.hasSuffix(".yml") { return try YAMLRules.load(text, file: file) }
        throw RuleError(location: SourceLocation(file: file, line: 1, column: 1),
                        message: "unknown rule file type: use .yaml/.yml (Falco-style) or .toml (bpfd)")
    }

    /// A complete rule as a defining item.
    public static func ruleItem(_ rule: Rule) -> RuleItem {
        var partial = PartialRule(name: rule.name, location: rule.location)
        partial.description = rule.description
        partial.condition = (rule.condition, rule.conditionLocation)
        partial.output = (rule.output, rule.outputLocation)
        partial.priority = rule.priority
        partial.tags = rule.tags
        partial.enabled = rule.enabled
        partial.exceptions = rule.exceptions
        partial.actions = rule.actions
        partial.skipIfUnknownFilter = rule.skipIfUnknownFilter
        return .rule(partial, .define)
    }

    /// The default rules (unless `defaults` is false) then `paths`, merged and compiled.
    /// - Throws: every error of every file (`RuleError.all`): a file that cannot be read stops
    ///   nothing else from being checked.
    public static func ruleSet(paths: [String], defaults: Bool = true) throws(RuleError) -> RuleSet {
        var files: [(file: String, items: [RuleItem])] = []
        var errors: [RuleError] = []
        if defaults {
            do { files.append((defaultName, try defaultItems())) } catch { errors.append(error) }
        }
        for path in paths {
            do { files.append((path, try items(path: path))) } catch { errors.append(error) }
        }
        let set: RuleSet
        do { set = try RuleSet(files: files) } catch { throw RuleError.combined(errors + [error]) ?? error }
        if let error = RuleError.combined(errors) { throw error }
        return set
    }
}
