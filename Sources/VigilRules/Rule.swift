/// How urgent an alert is (Falco's priorities, most severe first).
public enum Priority: String, Sendable, CaseIterable, Codable, Comparable {
    case emergency = "EMERGENCY", alert = "ALERT", critical = "CRITICAL", error = "ERROR"
    case warning = "WARNING", notice = "NOTICE", informational = "INFORMATIONAL", debug = "DEBUG"

    /// Parses a priority case-insensitively; `INFO` means informational.
    public init?(parsing text: String) {
        let upper = text.uppercased()
        if upper == "INFO" { self = .informational; return }
        self.init(rawValue: upper)
    }

    private var severity: Int { Self.allCases.firstIndex(of: self) ?? 0 }
    /// More severe sorts first.
    public static func < (a: Priority, b: Priority) -> Bool { a.severity < b.severity }
}

/// A Falco-style exception: events matching any of its value tuples are not alerts.
public struct RuleException: Sendable, Equatable {
    public var name: String
    /// The fields compared, in order.
    public var fields: [String]
    /// The operator for each field (default `=`, or `in` for a single field with a list).
    public var comps: [String]
    /// Value tuples, one value per field.
    public var values: [[String]]
    /// Where the exception was written.
    public var location: SourceLocation
}

/// A rule as written (YAML or converted from bpfd TOML), before compilation.
public struct Rule: Sendable {
    public var name: String
    public var description: String
    /// The condition text and where it starts in its file.
    public var condition: String
    public var conditionLocation: SourceLocation
    /// The output template with %field references.
    public var output: String
    public var outputLocation: SourceLocation
    public var priority: Priority
    public var tags: [String]
    public var enabled: Bool
    public var exceptions: [RuleException]
    /// Actions to run on alerts (bpfd's `actions = [...]`, YAML `actions:`).
    public var actions: [String]
    /// Where the rule was defined.
    public var location: SourceLocation
    /// Falco's `skip-if-unknown-filter`, read and kept for Falco's files: Vigil skips every rule
    /// that uses a field it does not have (listed in `RuleSet.skipped`) whether or not it says so.
    public var skipIfUnknownFilter = false
    /// Where the parts of `condition` were written when it was appended to in another place
    /// (empty: all of it starts at `conditionLocation`).
    var conditionSegments: [SourceSegment] = []

    /// The condition with the exceptions folded in: `(condition) and not (exception or ...)`.
    public var effectiveCondition: String { effectiveSource.text }

    /// `effectiveCondition` with where each part was written: the condition's parts, and each
    /// exception's clauses at the exception.
    var effectiveSource: (text: String, segments: [SourceSegment]) {
        let own = conditionSegments.isEmpty ? [SourceSegment(offset: 0, start: conditionLocation)] : conditionSegments
        let clauses = exceptions.flatMap { exception in
            exception.values.map { tuple in
                (zip(zip(exception.fields, exception.comps), tuple).map { pair, value in
                    let (field, comp) = pair
                    return "\(field) \(comp) \(value)"
                }.joined(separator: " and "), exception.location)
            }
        }
        guard !clauses.isEmpty else { return (condition, own) }
        var text = "(" + condition + ") and not ("
        var segments = own.map { SourceSegment(offset: $0.offset + 1, start: $0.start) }
        for (index, (clause, location)) in clauses.enumerated() {
            if index > 0 { text += " or " }
            segments.append(SourceSegment(offset: text.utf8.count, start: location))
            text += "(" + clause + ")"
        }
        return (text + ")", segments)
    }
}

/// A named list of values (`- list:`).
public struct RuleList: Sendable {
    public var name: String
    public var items: [String]
    public var location: SourceLocation
}

/// A named condition fragment (`- macro:`).
public struct RuleMacro: Sendable {
    public var name: String
    public var condition: String
    public var location: SourceLocation
}

/// How a later definition changes an earlier one of the same name.
public enum Merge: Sendable, Equatable {
    /// A new definition (an error when the name exists).
    case define
    /// Legacy `append: true`: conditions, items and exceptions are appended.
    case append
    /// `override:` with, per key, append or replace.
    case override([String: OverrideMode])
}

/// `override:` modes.
public enum OverrideMode: String, Sendable, Equatable { case append, replace }

/// One top-level item of a rules file, in file order.
public enum RuleItem: Sendable {
    case list(RuleList, Merge)
    case macro(RuleMacro, Merge)
    case rule(PartialRule, Merge)
}

/// A rule item whose keys may be partial (an append/override or an `enabled:` toggle).
public struct PartialRule: Sendable {
    public var name: String
    public var location: SourceLocation
    public var description: String?
    public var condition: (text: String, location: SourceLocation)?
    public var output: (text: String, location: SourceLocation)?
    public var priority: Priority?
    public var tags: [String]?
    public var enabled: Bool?
    public var exceptions: [RuleException]?
    public var actions: [String]?
    /// `skip-if-unknown-filter`.
    public var skipIfUnknownFilter: Bool?
}
