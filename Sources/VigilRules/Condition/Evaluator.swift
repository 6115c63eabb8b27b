import VigilEvents

/// The runtime form of a plan: a tree of immutable objects, each evaluating one node with a
/// virtual call. Built once from a `PlanNode`; evaluating it copies no plan data (the enum plan
/// would copy each test's payload out of its box, with a retain and release per field).
///
/// Every subclass is final and has only `let` properties of Sendable types, hence the unchecked
/// conformance on the base class.
class Evaluator: @unchecked Sendable {
    /// The clause's source text, for `explain`.
    let source: String

    init(source: String) { self.source = source }

    /// Whether `event` satisfies the node.
    func evaluate(_ event: Event) -> Bool { false }

    /// For a node that is false for `event`: the clause to blame. An `and` blames its first
    /// false term (recursively); any other node blames itself.
    func failingClause(_ event: Event) -> String { source }

    /// The evaluator for `node`.
    static func make(_ node: PlanNode) -> Evaluator {
        switch node {
        case .constant(let value, let source): return ConstantEvaluator(value, source: source)
        case .not(let child, let source): return NotEvaluator(make(child), source: source)
        case .and(let children, let source): return JunctionEvaluator(children.map(make), isAnd: true, source: source)
        case .or(let children, let source): return JunctionEvaluator(children.map(make), isAnd: false, source: source)
        case .test(let test): return make(test)
        }
    }

    private static func make(_ test: PlanTest) -> Evaluator {
        switch test.operand {
        case .eventType(let table):
            return EventTypeEvaluator(table, source: test.source)
        case .ancestorNames:
            return AncestorNameEvaluator(test: test.test, transformers: test.transformers, source: test.source)
        case .ancestorPIDs:
            return AncestorPIDEvaluator(test: test.test, source: test.source)
        case .field(let definition, let argument):
            if test.transformers.isEmpty, case .string(let stringTest) = test.test {
                return StringFieldEvaluator(extract: definition.extract, argument: argument, test: stringTest, source: test.source)
            }
            return FieldEvaluator(extract: definition.extract, argument: argument, test: test.test, transformers: test.transformers,
                                  source: test.source)
        }
    }
}

final class ConstantEvaluator: Evaluator, @unchecked Sendable {
    let value: Bool
    init(_ value: Bool, source: String) {
        self.value = value
        super.init(source: source)
    }
    override func evaluate(_ event: Event) -> Bool { value }
}

final class NotEvaluator: Evaluator, @unchecked Sendable {
    let child: Evaluator
    init(_ child: Evaluator, source: String) {
        self.child = child
        super.init(source: source)
    }
    override func evaluate(_ event: Event) -> Bool { !child.evaluate(event) }
}

/// `and` / `or` of children, stopping at the first child that decides (false for `and`,
/// true for `or`).
final class JunctionEvaluator: Evaluator, @unchecked Sendable {
    /// Owns the children.
    let children: [Evaluator]
    /// The same children for calls without a retain/release each (they live as long as `children`).
    private let calls: [Unmanaged<Evaluator>]
    /// True for `and`, false for `or`.
    private let isAnd: Bool
    init(_ children: [Evaluator], isAnd: Bool, source: String) {
        self.children = children
        self.calls = children.map { Unmanaged.passUnretained($0) }
        self.isAnd = isAnd
        super.init(source: source)
    }
    override func evaluate(_ event: Event) -> Bool {
        for child in calls where child._withUnsafeGuaranteedRef({ $0.evaluate(event) }) != isAnd { return !isAnd }
        return isAnd
    }
    /// For `and`, the failing child's own clause; an `or` fails as a whole.
    override func failingClause(_ event: Event) -> String {
        guard isAnd else { return source }
        return children.first { !$0.evaluate(event) }?.failingClause(event) ?? source
    }
}

final class EventTypeEvaluator: Evaluator, @unchecked Sendable {
    let table: EventTypeTest
    init(_ table: EventTypeTest, source: String) {
        self.table = table
        super.init(source: source)
    }
    override func evaluate(_ event: Event) -> Bool { table.evaluate(event) }
}

/// A string field without transformers: the common case, tested without wrapping the value.
final class StringFieldEvaluator: Evaluator, @unchecked Sendable {
    let extract: @Sendable (Event, String?) -> FieldValue?
    let argument: String?
    let test: ConditionStringTest
    init(extract: @escaping @Sendable (Event, String?) -> FieldValue?, argument: String?, test: ConditionStringTest, source: String) {
        self.extract = extract
        self.argument = argument
        self.test = test
        super.init(source: source)
    }
    override func evaluate(_ event: Event) -> Bool {
        guard case .string(let value)? = extract(event, argument) else { return false }
        return test.matches(value)
    }
}

final class FieldEvaluator: Evaluator, @unchecked Sendable {
    let extract: @Sendable (Event, String?) -> FieldValue?
    let argument: String?
    let test: ConditionValueTest
    let transformers: [FieldTransformer]
    init(extract: @escaping @Sendable (Event, String?) -> FieldValue?, argument: String?, test: ConditionValueTest,
         transformers: [FieldTransformer], source: String) {
        self.extract = extract
        self.argument = argument
        self.test = test
        self.transformers = transformers
        super.init(source: source)
    }
    override func evaluate(_ event: Event) -> Bool {
        guard let value = extract(event, argument) else { return false }
        guard !transformers.isEmpty else { return test.matches(value) }
        switch value {
        case .string(let s): return test.matches(.string(transformers.reduce(s) { $1.apply($0) }))
        case .strings(let list): return test.matches(.strings(list.map { s in transformers.reduce(s) { $1.apply($0) } }))
        default: return test.matches(value)
        }
    }
}

final class AncestorNameEvaluator: Evaluator, @unchecked Sendable {
    let test: ConditionValueTest
    let transformers: [FieldTransformer]
    init(test: ConditionValueTest, transformers: [FieldTransformer], source: String) {
        self.test = test
        self.transformers = transformers
        super.init(source: source)
    }
    override func evaluate(_ event: Event) -> Bool {
        for name in event.process.ancestorNames {
            let value = transformers.isEmpty ? name : transformers.reduce(name) { $1.apply($0) }
            if test.matches(string: value) { return true }
        }
        return false
    }
}

final class AncestorPIDEvaluator: Evaluator, @unchecked Sendable {
    let test: ConditionValueTest
    init(test: ConditionValueTest, source: String) {
        self.test = test
        super.init(source: source)
    }
    override func evaluate(_ event: Event) -> Bool {
        for pid in event.process.ancestorPIDs where test.matches(.uint(UInt64(pid))) { return true }
        return false
    }
}
