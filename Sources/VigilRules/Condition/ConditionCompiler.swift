import VigilEvents

/// Compiles Falco-style conditions into `CompiledCondition` plans.
///
/// The language is Falco's: `and`, `or`, `not` (precedence not > and > or), parentheses,
/// comparisons `field op value` with `=` (or `==`), `!=`, `<`, `<=`, `>`, `>=`, `contains`,
/// `icontains`, `startswith`, `endswith`, `glob`, `iglob`, `regex`, `exists`, and the list
/// operators `in`, `intersects`, `pmatch` taking `(v1, v2, ...)` or a list's name. Values are bare
/// words (`/etc/shadow`, `sshd`), quoted strings with escapes, or numbers. A bare identifier where
/// a comparison could stand names a macro; a bare item inside a list that names a list expands
/// to its items. Fields may carry a bracket argument (`proc.aname[2]`, `container.label[app]`) and
/// be wrapped in `tolower()`, `toupper()` or `basename()`.
public enum ConditionCompiler {
    /// Up to `limit` known field names (and pseudo-fields) nearest to `name`, nearest first:
    /// the "did you mean" of an unknown field.
    public static func closestFieldNames(to name: String, limit: Int) -> [String] {
        let candidates = Fields.names + ConditionPseudoField.allCases.map(\.rawValue).filter { Fields.named($0) == nil }
        return closestNames(name, in: candidates, limit: limit)
    }

    /// Parses, checks and compiles `text`, which starts at `location` in its file, resolving
    /// macros and lists from `context`.
    /// - Throws: `RuleError` at the exact line and column of the problem (inside the macro's own
    ///   text for an error in a macro).
    public static func compile(_ text: String, at location: SourceLocation, context: ConditionContext) throws(RuleError) -> CompiledCondition {
        try compile(text, segments: [SourceSegment(offset: 0, start: location)], context: context)
    }

    /// Compiles a text joined from parts written in different places (`segments`).
    static func compile(_ text: String, segments: [SourceSegment], context: ConditionContext) throws(RuleError) -> CompiledCondition {
        let source = ConditionSource(text, segments: segments)
        let expression = try ConditionParser.parse(source)
        var builder = PlanBuilder(context: context)
        let root = try builder.build(expression, in: source)
        return CompiledCondition(root: root, text: text)
    }
}

/// Fields Falco rules use that Vigil's catalogue lacks, but whose comparisons are decidable
/// when compiling: every Vigil event is both the entry and the exit of its call (`evt.dir` is
/// `<` and `>`: a test true for either is true), and event numbers
/// start at 1 (`evt.num=0` is Falco's `never_true`, `evt.num>=0` its `always_true`). Used only
/// while the catalogue has no field of that name.
enum ConditionPseudoField: String, CaseIterable {
    case direction = "evt.dir"
    case number = "evt.num"

    var type: FieldType { self == .direction ? .string : .uint }
}

/// Turns parsed expressions into plan nodes: resolves fields, macros and lists, checks types
/// and operators, converts values, and folds constants.
struct PlanBuilder {
    let context: ConditionContext
    /// The macros being expanded, outermost first, to report recursion.
    private var expanding: [String] = []

    init(context: ConditionContext) { self.context = context }

    mutating func build(_ expression: ConditionExpression, in source: ConditionSource) throws(RuleError) -> PlanNode {
        switch expression {
        case .and(let children, let range):
            var nodes: [PlanNode] = []
            for child in children { nodes.append(try build(child, in: source)) }
            return ConditionFold.and(nodes, source: source.text(range))
        case .or(let children, let range):
            var nodes: [PlanNode] = []
            for child in children { nodes.append(try build(child, in: source)) }
            return ConditionFold.or(nodes, source: source.text(range))
        case .not(let child, let range):
            return ConditionFold.not(try build(child, in: source), source: source.text(range))
        case .macro(let name, let range):
            return try buildMacro(name, at: range, in: source)
        case .check(let check):
            return try buildCheck(check, in: source)
        }
    }

    private mutating func buildMacro(_ name: String, at range: Range<Int>, in source: ConditionSource) throws(RuleError) -> PlanNode {
        guard let macro = context.macros[name] else {
            if context.lists[name] != nil {
                throw source.error("'\(name)' is a list, not a macro; use it after in, intersects or pmatch", at: range.lowerBound)
            }
            let suggestion = closestName(name, in: context.macros.keys).map { "; did you mean '\($0)'?" } ?? ""
            throw source.error("undefined macro '\(name)'\(suggestion)", at: range.lowerBound)
        }
        if let start = expanding.firstIndex(of: name) {
            let cycle = (expanding[start...] + [name]).joined(separator: " -> ")
            throw source.error("macro '\(name)' refers to itself (\(cycle))", at: range.lowerBound)
        }
        expanding.append(name)
        defer { expanding.removeLast() }
        do {
            let (macroSource, body) = try context.parsedMacro(name, text: macro.text, location: macro.location)
            return try build(body, in: macroSource).explained(as: name)
        } catch {
            // The innermost macro is added first: the path reads outermost first.
            var error = error
            error.macroPath.insert(name, at: 0)
            throw error
        }
    }

    // MARK: Comparisons

    /// A value to compare with, after list expansion, with the offset to blame for it.
    private struct Value {
        var bytes: [UInt8]
        var offset: Int
        /// The list it came from, for messages.
        var list: String?
        /// Where that list item was written, when known (it may be in another file).
        var origin: SourceLocation? = nil
        var text: String { String(decoding: bytes, as: UTF8.self) }
        /// The bytes without loss, for plan keys: the length, then the text or, when it is not
        /// UTF-8, the bytes in hex.
        var keyText: String {
            let text = String(validating: bytes, as: UTF8.self).map { "s" + $0 }
                ?? "x" + bytes.map { String($0, radix: 16) }.joined(separator: ".")
            return "\(bytes.count):" + text
        }
    }

    private enum Resolved {
        case field(FieldDefinition)
        case pseudo(ConditionPseudoField)

        var name: String {
            switch self {
            case .field(let definition): definition.name
            case .pseudo(let pseudo): pseudo.rawValue
            }
        }
        var type: FieldType {
            switch self {
            case .field(let definition): definition.type
            case .pseudo(let pseudo): pseudo.type
            }
        }
        var takesArgument: Bool {
            if case .field(let definition) = self { return definition.takesArgument }
            return false
        }
    }

    /// Ancestor fields: a number in brackets picks one; without it, any ancestor (Falco).
    private static let ancestorFields: Set<String> = ["proc.aname", "proc.apid"]

    private mutating func buildCheck(_ check: ConditionCheck, in source: ConditionSource) throws(RuleError) -> PlanNode {
        let operand = check.operand
        let clause = source.text(check.range)
        let label = source.text(operand.range)
        let opText = source.text(check.opRange)

        // The field and its argument.
        let resolved: Resolved
        if let definition = Fields.named(operand.field) {
            resolved = .field(definition)
        } else if let pseudo = ConditionPseudoField(rawValue: operand.field) {
            resolved = .pseudo(pseudo)
        } else {
            let suggestion = ConditionCompiler.closestFieldNames(to: operand.field, limit: 1).first.map { "; did you mean '\($0)'?" } ?? ""
            throw source.error("unknown field '\(operand.field)'\(suggestion)", at: operand.fieldRange.lowerBound, unknownField: operand.field)
        }
        let isAncestorField = Self.ancestorFields.contains(resolved.name)
        if let argumentRange = operand.argumentRange, let argument = operand.argument {
            guard resolved.takesArgument else {
                throw source.error("\(resolved.name) takes no argument in brackets", at: argumentRange.lowerBound)
            }
            if isAncestorField, UInt(argument) == nil {
                throw source.error("\(resolved.name) takes an ancestor number in brackets (0 the process, 1 its parent, ...), '\(argument)' is not one",
                                   at: argumentRange.lowerBound + 1)
            }
        } else if resolved.takesArgument, !isAncestorField {
            throw source.error("\(resolved.name) needs an argument in brackets: \(resolved.name)[KEY]", at: operand.fieldRange.upperBound)
        }
        let anyAncestor = isAncestorField && operand.argument == nil

        // Transformers work on strings (and on each string of a list).
        for (transformer, range) in operand.transformers where resolved.type != .string && resolved.type != .strings {
            throw source.error("\(transformer.rawValue)() applies to strings, and \(resolved.name) is \(Self.describe(resolved.type))", at: range.lowerBound)
        }

        // The operator for the type.
        let type = resolved.type
        try checkOperator(check.op, type: type, label: label, opText: opText, at: check.opRange.lowerBound, in: source)

        // The values, lists expanded.
        let values = try resolveValues(check.rhs, in: source)
        let test = try makeTest(check.op, type: type, values: values, label: label, in: source)

        if case .pseudo(let pseudo) = resolved {
            return .constant(try pseudoResult(pseudo, op: check.op, test: test, values: values, transformers: operand.transformers.map(\.0),
                                              at: operand.fieldRange.lowerBound, in: source), source: clause)
        }
        guard case .field(let definition) = resolved else { return .constant(false, source: clause) }

        // `x in ()` (an empty list reference) is never true for a single value.
        if values.isEmpty, check.op == .intersects || ((check.op == .in || check.op == .pmatch) && type != .strings) {
            return .constant(false, source: clause)
        }

        let transformers = operand.transformers.map(\.0)
        let planOperand: PlanOperand
        if anyAncestor {
            planOperand = resolved.name == "proc.aname" ? .ancestorNames : .ancestorPIDs
        } else if definition.name == "evt.type", transformers.isEmpty {
            planOperand = .eventType(EventTypeTest(op: check.op, values: values.map { ByteString($0.bytes) }, test: test))
        } else {
            planOperand = .field(definition, argument: operand.argument)
        }
        let predicate = transformers.isEmpty
            ? Predicate(field: definition.name + (operand.argument.map { "[\($0)]" } ?? ""), op: check.op.rawValue,
                        values: values.map(\.text), negated: false)
            : nil
        let key = transformers.map { $0.rawValue + "(" }.joined() + definition.name + (operand.argument.map { "[\($0)]" } ?? "")
            + " " + check.op.rawValue + " " + values.map(\.keyText).joined(separator: ",")
        return .test(PlanTest(source: clause, operand: planOperand, transformers: transformers, test: test,
                              fieldName: definition.name, fieldKinds: definition.kinds, predicate: predicate,
                              op: check.op, valueCount: values.count, key: key))
    }

    static func describe(_ type: FieldType) -> String {
        switch type {
        case .string: "a string"
        case .uint: "a number (uint)"
        case .int: "a number (int)"
        case .bool: "a boolean"
        case .strings: "a list of strings"
        case .ipaddr: "an IP address"
        case .ipnet: "an IP network"
        }
    }

    /// Falco's operator/type rules (filter_compare.cpp), plus `contains` on lists.
    private func checkOperator(_ op: ComparisonOperator, type: FieldType, label: String, opText: String, at offset: Int,
                               in source: ConditionSource) throws(RuleError) {
        if op == .exists { return }
        switch type {
        case .string:
            return
        case .strings:
            if op == .in || op == .intersects || op == .contains { return }
            throw source.error("'\(opText)' does not apply to the list field \(label); use in, intersects, contains or exists", at: offset)
        case .uint, .int:
            if op == .equal || op == .notEqual || op.isOrdering || op == .in || op == .intersects { return }
            throw source.error("'\(opText)' applies to strings, and \(label) is \(Self.describe(type))", at: offset)
        case .ipaddr, .ipnet:
            if op == .equal || op == .notEqual || op == .in || op == .intersects { return }
            throw source.error("'\(opText)' does not apply to \(label), \(Self.describe(type)); use =, !=, in or exists (with addresses or CIDR networks)", at: offset)
        case .bool:
            if op == .equal || op == .notEqual || op == .in || op == .intersects { return }
            let applies = op.isOrdering ? "numbers and strings" : "strings"
            throw source.error("'\(opText)' applies to \(applies), and \(label) is a boolean", at: offset)
        }
    }

    private func resolveValues(_ rhs: ConditionRightHandSide, in source: ConditionSource) throws(RuleError) -> [Value] {
        func expand(_ name: String, _ items: [String], at offset: Int) -> [Value] {
            let origins = context.listItemLocations[name]
            return items.enumerated().map { index, item in
                Value(bytes: Self.listItemValue(item), offset: offset, list: name,
                      origin: origins.flatMap { index < $0.count ? $0[index] : nil })
            }
        }
        switch rhs {
        case .none:
            return []
        case .value(let literal):
            return [Value(bytes: literal.bytes, offset: literal.range.lowerBound, list: nil)]
        case .list(let literals, _):
            var values: [Value] = []
            for literal in literals {
                let text = String(decoding: literal.bytes, as: UTF8.self)
                if literal.isBare, let items = context.lists[text] {
                    values += expand(text, items, at: literal.range.lowerBound)
                } else {
                    values.append(Value(bytes: literal.bytes, offset: literal.range.lowerBound, list: nil))
                }
            }
            return values
        case .listName(let name, let range):
            guard let items = context.lists[name] else {
                let suggestion = closestName(name, in: context.lists.keys).map { "; did you mean '\($0)'?" } ?? ""
                throw source.error("undefined list '\(name)'\(suggestion)", at: range.lowerBound)
            }
            return expand(name, items, at: range.lowerBound)
        }
    }

    /// A list item's value. Falco pastes list items into the condition text, so an item written
    /// with condition-language quotes (YAML `'"(systemd)"'`, `'"10.0.0.0/8"'`) is that quoted
    /// string's content; any other item is taken as it is.
    static func listItemValue(_ item: String) -> [UInt8] {
        let bytes = Array(item.utf8)
        guard bytes.count >= 2, let quote = bytes.first, quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'"),
              bytes.last == quote else { return bytes }
        var lexer = ConditionLexer(ConditionSource(item, at: SourceLocation(file: "", line: 1, column: 1)))
        guard let quoted = try? lexer.readQuoted(), lexer.isAtEnd else { return bytes }
        return quoted.bytes
    }

    private func typeError(_ value: Value, _ message: String, in source: ConditionSource) -> RuleError {
        source.error(message + (value.list.map { " (an item of list '\($0)'" + (value.origin.map { " at \($0)" } ?? "") + ")" } ?? ""), at: value.offset)
    }

    private func unsigned(_ value: Value, label: String, in source: ConditionSource) throws(RuleError) -> UInt64 {
        var text = value.text
        if text.hasPrefix("+") { text.removeFirst() }
        let parsed = text.hasPrefix("0x") || text.hasPrefix("0X") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        guard let parsed else { throw typeError(value, "\(label) is a number (uint), '\(value.text)' is not", in: source) }
        return parsed
    }

    private func signed(_ value: Value, label: String, in source: ConditionSource) throws(RuleError) -> Int64 {
        var text = value.text
        var negative = false
        if text.hasPrefix("+") || text.hasPrefix("-") {
            negative = text.hasPrefix("-")
            text.removeFirst()
        }
        let magnitude = text.hasPrefix("0x") || text.hasPrefix("0X") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        guard let magnitude, let parsed = negative
            ? (magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil)
            : Int64(exactly: magnitude)
        else { throw typeError(value, "\(label) is a number (int), '\(value.text)' is not", in: source) }
        return parsed
    }

    private func boolean(_ value: Value, label: String, in source: ConditionSource) throws(RuleError) -> UInt8 {
        switch value.text {
        case "true": return 1
        case "false": return 0
        default: throw typeError(value, "\(label) is a boolean, '\(value.text)' is not (use true or false)", in: source)
        }
    }

    private func makeTest(_ op: ComparisonOperator, type: FieldType, values: [Value], label: String,
                          in source: ConditionSource) throws(RuleError) -> ConditionValueTest {
        if op == .exists { return .exists }
        let first = values.first ?? Value(bytes: [], offset: 0, list: nil)
        switch type {
        case .string:
            let bytes = first.bytes
            switch op {
            case .equal: return .string(.equal(ByteString(bytes)))
            case .notEqual: return .string(.notEqual(ByteString(bytes)))
            case .less, .lessOrEqual, .greater, .greaterOrEqual: return .string(.ordered(op, ByteString(bytes)))
            case .contains: return .string(.contains(bytes))
            case .icontains: return .string(.containsIgnoringCase(bytes.map(conditionASCIILower)))
            case .startswith: return .string(.startsWith(bytes))
            case .endswith: return .string(.endsWith(bytes))
            case .glob: return .string(.glob(GlobPattern(bytes)))
            case .iglob: return .string(.glob(GlobPattern(bytes, caseInsensitive: true)))
            case .regex:
                do {
                    return .string(.regex(try CompiledRegex(first.text)))
                } catch {
                    throw source.error("invalid regular expression '\(first.text)': \(error.message)", at: first.offset)
                }
            case .in, .intersects: return .string(.oneOf(ByteStringSet(values.map(\.bytes))))
            case .pmatch: return .string(.pathPrefix(PathPrefixSet(values.map(\.bytes))))
            case .exists: return .exists
            }
        case .strings:
            let set = ByteStringSet(values.map(\.bytes))
            switch op {
            case .in: return .list(.allIn(set))
            case .intersects: return .list(.anyIn(set))
            default: return .list(.containsElement(ByteString(first.bytes)))
            }
        case .uint:
            if op == .in || op == .intersects {
                var set = Set<UInt64>()
                for value in values { set.insert(try unsigned(value, label: label, in: source)) }
                return .unsigned(.oneOf(set))
            }
            return .unsigned(.compare(op, try unsigned(first, label: label, in: source)))
        case .int:
            if op == .in || op == .intersects {
                var set = Set<Int64>()
                for value in values { set.insert(try signed(value, label: label, in: source)) }
                return .signed(.oneOf(set))
            }
            return .signed(.compare(op, try signed(first, label: label, in: source)))
        case .bool:
            if op == .in || op == .intersects {
                var set = Set<UInt8>()
                for value in values { set.insert(try boolean(value, label: label, in: source)) }
                return .boolean(.oneOf(set))
            }
            return .boolean(.compare(op, try boolean(first, label: label, in: source)))
        case .ipaddr, .ipnet:
            var networks: [IPNetwork] = []
            for value in (op == .in || op == .intersects ? values : [first]) {
                guard let network = IPNetwork(value.text) else {
                    throw typeError(value, "\(label) is \(Self.describe(type)), '\(value.text)' is neither an IP address nor a CIDR network", in: source)
                }
                networks.append(network)
            }
            return .network(ConditionNetworkTest(networks: networks, negated: op == .notEqual))
        }
    }

    /// The constant result of a comparison on a pseudo-field, or an error when it depends on
    /// information Vigil does not have.
    private func pseudoResult(_ pseudo: ConditionPseudoField, op: ComparisonOperator, test: ConditionValueTest, values: [Value],
                              transformers: [FieldTransformer], at offset: Int, in source: ConditionSource) throws(RuleError) -> Bool {
        switch pseudo {
        case .direction:
            // One Vigil event is both halves of a call: the entry's arguments and the exit's
            // result. A test true for either direction is true (Falco's `evt.dir = >` rules,
            // which read arguments, match once per call, as `evt.dir = <` rules do).
            return ["<", ">"].contains { test.matches(.string(transformers.reduce(ByteString($0)) { $1.apply($0) })) }
        case .number:
            // Event numbers are 1, 2, 3, ...: decide when the answer is the same for all of them.
            let bounds = values.compactMap { try? unsigned($0, label: pseudo.rawValue, in: source) }
            let bound = bounds.first ?? 0
            let result: Bool? = switch op {
            case .exists: true
            case .equal: bound == 0 ? false : nil
            case .notEqual: bound == 0 ? true : nil
            case .less: bound <= 1 ? false : nil
            case .lessOrEqual: bound == 0 ? false : nil
            case .greater: bound == 0 ? true : nil
            case .greaterOrEqual: bound <= 1 ? true : nil
            case .in, .intersects: bounds.allSatisfy { $0 == 0 } ? false : nil
            default: nil
            }
            guard let result else {
                throw source.error("evt.num (the event number) is not available in Vigil; only comparisons true for every event or for none, such as Falco's never_true (evt.num=0), are accepted", at: offset)
            }
            return result
        }
    }
}

/// Constant folding and flattening of `and`, `or` and `not`.
enum ConditionFold {
    /// Drops true terms, is false as soon as one term is, splices nested `and`s.
    static func and(_ nodes: [PlanNode], source: String) -> PlanNode {
        var kept: [PlanNode] = []
        for node in nodes {
            switch node {
            case .constant(true, _): continue
            case .constant(false, _): return node
            case .and(let inner, _): kept += inner
            default: kept.append(node)
            }
        }
        if kept.isEmpty { return .constant(true, source: source) }
        return kept.count == 1 ? kept[0] : .and(kept, source: source)
    }

    /// Drops false terms, is true as soon as one term is, splices nested `or`s.
    static func or(_ nodes: [PlanNode], source: String) -> PlanNode {
        var kept: [PlanNode] = []
        for node in nodes {
            switch node {
            case .constant(false, _): continue
            case .constant(true, _): return .constant(true, source: source)
            case .or(let inner, _): kept += inner
            default: kept.append(node)
            }
        }
        if kept.isEmpty { return .constant(false, source: source) }
        return kept.count == 1 ? kept[0] : .or(kept, source: source)
    }

    /// Negates constants, removes double negation.
    static func not(_ node: PlanNode, source: String) -> PlanNode {
        switch node {
        case .constant(let value, _): .constant(!value, source: source)
        case .not(let inner, _): inner
        default: .not(node, source: source)
        }
    }
}

/// The candidate closest to `name` by edit distance, when close enough to be a likely typo.
func closestName(_ name: String, in candidates: some Sequence<String>) -> String? {
    closestNames(name, in: candidates, limit: 1).first
}

/// Up to `limit` of `candidates` near enough to `name` to be what was meant, nearest first
/// (ties by name). Cheap for names far from every candidate (hostile rule files, the fuzzer):
/// a candidate whose length alone puts it out of reach is skipped, and a distance stops being
/// computed once it exceeds the threshold.
func closestNames(_ name: String, in candidates: some Sequence<String>, limit: Int) -> [String] {
    let bytes = Array(name.utf8), threshold = max(2, bytes.count / 3)
    var distance = BoundedEditDistance(to: bytes, atMost: threshold)
    let near = candidates.compactMap { candidate in distance.of(candidate).map { (candidate, $0) } }
    return near.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.prefix(limit).map(\.0)
}

/// Levenshtein distances from one byte string, only up to a bound (nil beyond it); its two rows
/// are reused from one candidate to the next.
private struct BoundedEditDistance {
    let target: [UInt8]
    let bound: Int
    private var previous: [Int] = [], current: [Int] = []

    init(to target: [UInt8], atMost bound: Int) {
        self.target = target
        self.bound = bound
    }

    /// The distance from `candidate` to the target, or nil when it exceeds the bound.
    mutating func of(_ candidate: String) -> Int? {
        let b = Array(candidate.utf8), a = target
        guard abs(a.count - b.count) <= bound else { return nil }
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        previous.removeAll(keepingCapacity: true)
        previous.append(contentsOf: 0...b.count)
        current.removeAll(keepingCapacity: true)
        current.append(contentsOf: repeatElement(0, count: b.count + 1))
        for i in 1...a.count {
            current[0] = i
            var rowMinimum = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                rowMinimum = min(rowMinimum, current[j])
            }
            // Every later row is at least this row's minimum.
            if rowMinimum > bound { return nil }
            swap(&previous, &current)
        }
        return previous[b.count] <= bound ? previous[b.count] : nil
    }
}
