import VigilEvents

/// What the evaluators of one event share, on the stack for the duration of the event: the
/// results of memoized subconditions (macros common to several rules), and the values of
/// catalogue fields read so far (one slot per field, argument and transformers: each is read
/// once per event, not once per comparison). Passed `inout` down the evaluator tree; evaluation
/// uses no closure that captures the event, since a closure's capture copies it (a retain and a
/// release of each of its strings and arrays).
struct EvaluationContext {
    /// At most this many memo slots per program; further shared subconditions are evaluated
    /// at each use.
    static let memoCapacity = 64
    /// Bit i set when memo slot i is evaluated; `results` bit i is then its result.
    private var known: UInt64 = 0, results: UInt64 = 0
    /// Catalogue field values: slots 0 and 1 in place (most programs read one or two fields,
    /// and an event then allocates nothing), the others by slot - 2, allocated at the first read
    /// of such a slot in the event.
    private var slot0 = CachedField.unread, slot1 = CachedField.unread
    private var fields: [CachedField]?
    private let fieldSlots: Int
    /// For an open event: the index of its syscall's name in `EventTypeTest.openNames`, -1 for
    /// another name, -2 while not looked up (every `evt.type` comparison needs it).
    private var openSyscall: Int8 = -2

    /// A fresh context for a program with `fieldSlots` catalogue field slots.
    init(fieldSlots: Int) { self.fieldSlots = fieldSlots }

    /// The memoized result of slot `slot`, nil when not evaluated yet.
    @inline(__always)
    func memo(_ slot: Int) -> Bool? {
        let bit = UInt64(1) << UInt64(slot)
        return known & bit == 0 ? nil : results & bit != 0
    }

    /// Records the result of memo slot `slot`.
    @inline(__always)
    mutating func setMemo(_ slot: Int, _ result: Bool) {
        let bit = UInt64(1) << UInt64(slot)
        known |= bit
        if result { results |= bit }
    }

    /// The value of catalogue slot `slot`, read with `reader` the first time in this event.
    mutating func field(_ slot: Int, _ reader: FieldSlotReader, _ event: Event) -> FieldValue? {
        switch slot {
        case 0: return Self.value(of: &slot0, reader, event)
        case 1: return Self.value(of: &slot1, reader, event)
        default:
            if fields == nil { fields = Array(repeating: .unread, count: fieldSlots - 2) }
            return Self.value(of: &fields![slot - 2], reader, event)
        }
    }

    /// The value `cached` holds, or the one `reader` reads, then kept there.
    @inline(__always)
    private static func value(of cached: inout CachedField, _ reader: FieldSlotReader, _ event: Event) -> FieldValue? {
        if case .read(let value) = cached { return value }
        let value = reader.read(event)
        cached = .read(value)
        return value
    }

    /// The index of the open event's syscall name in `EventTypeTest.openNames` (-1: not there),
    /// looked up once per event.
    @inline(__always)
    mutating func openSyscallIndex(_ open: Payload.Open) -> Int {
        if openSyscall == -2 { openSyscall = Int8(EventTypeTest.openNameIndex(open.syscall)) }
        return Int(openSyscall)
    }
}

/// A catalogue field's value for the current event, once read.
enum CachedField {
    case unread
    case read(FieldValue?)
}

/// The runtime form of a plan: a tree of immutable objects, each evaluating one node with a
/// virtual call. Built once from a `PlanNode` (by `EvaluatorBuilder`); evaluating it copies no
/// plan data and no event data.
///
/// Every subclass is final and has only `let` properties of Sendable types, hence the unchecked
/// conformance on the base class.
class Evaluator: @unchecked Sendable {
    /// The clause's source text, for `explain`.
    let source: String

    init(source: String) { self.source = source }

    /// Whether `event` satisfies the node.
    func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool { false }

    /// For a node that is false for `event`: the clause to blame. An `and` blames its first
    /// false term (recursively); any other node blames itself.
    func failingClause(_ event: Event, _ context: inout EvaluationContext) -> String { source }

    /// The tree as it runs, for tests and debugging: comparisons by their source text, `and`,
    /// `or` and `not` with their terms in evaluation order, `memo N{...}` for a shared node.
    var outline: String { source }
}

final class ConstantEvaluator: Evaluator, @unchecked Sendable {
    let value: Bool
    init(_ value: Bool, source: String) {
        self.value = value
        super.init(source: source)
    }
    override func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool { value }
    override var outline: String { value ? "true" : "false" }
}

final class NotEvaluator: Evaluator, @unchecked Sendable {
    /// Owns the child.
    let child: Evaluator
    private let call: Unmanaged<Evaluator>
    init(_ child: Evaluator, source: String) {
        self.child = child
        self.call = Unmanaged.passUnretained(child)
        super.init(source: source)
    }
    override func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool {
        !call._withUnsafeGuaranteedRef { $0.evaluate(event, &context) }
    }
    override var outline: String { "not " + child.outline }
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
    override func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool {
        for child in calls where child._withUnsafeGuaranteedRef({ $0.evaluate(event, &context) }) != isAnd { return !isAnd }
        return isAnd
    }
    /// For `and`, the failing child's own clause; an `or` fails as a whole.
    override func failingClause(_ event: Event, _ context: inout EvaluationContext) -> String {
        guard isAnd else { return source }
        for child in children where !child.evaluate(event, &context) { return child.failingClause(event, &context) }
        return source
    }
    override var outline: String { "(" + children.map(\.outline).joined(separator: isAnd ? " and " : " or ") + ")" }
}

/// A subcondition shared by several rules (or several places of one): evaluated once per
/// event, its result kept in the context's memo slot.
final class MemoEvaluator: Evaluator, @unchecked Sendable {
    let child: Evaluator
    private let call: Unmanaged<Evaluator>
    let slot: Int
    init(_ child: Evaluator, slot: Int) {
        self.child = child
        self.call = Unmanaged.passUnretained(child)
        self.slot = slot
        super.init(source: child.source)
    }
    override func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool {
        if let known = context.memo(slot) { return known }
        let result = call._withUnsafeGuaranteedRef { $0.evaluate(event, &context) }
        context.setMemo(slot, result)
        return result
    }
    override func failingClause(_ event: Event, _ context: inout EvaluationContext) -> String { child.failingClause(event, &context) }
    override var outline: String { "memo \(slot){" + child.outline + "}" }
}

final class EventTypeEvaluator: Evaluator, @unchecked Sendable {
    let table: EventTypeTest
    init(_ table: EventTypeTest, source: String) {
        self.table = table
        super.init(source: source)
    }
    override func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool { table.evaluate(event, &context) }
}

/// A string field read in place (`DirectStringField`), its bytes tested where they lie.
final class DirectStringEvaluator: Evaluator, @unchecked Sendable {
    let field: DirectStringField
    let test: ConditionStringTest
    init(_ field: DirectStringField, test: ConditionStringTest, source: String) {
        self.field = field
        self.test = test
        super.init(source: source)
    }
    override func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool {
        field.test(event) { test.matches($0) }
    }
}

/// A number or boolean field read in place.
final class DirectScalarEvaluator: Evaluator, @unchecked Sendable {
    enum Comparison: Sendable {
        case unsigned(DirectUIntField, ConditionNumberTest<UInt64>)
        case signed(DirectIntField, ConditionNumberTest<Int64>)
        case boolean(DirectBoolField, ConditionNumberTest<UInt8>)
    }
    let comparison: Comparison
    init(_ comparison: Comparison, source: String) {
        self.comparison = comparison
        super.init(source: source)
    }
    override func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool {
        switch comparison {
        case .unsigned(let field, let test): field.value(event).map { test.matches($0) } ?? false
        case .signed(let field, let test): field.value(event).map { test.matches($0) } ?? false
        case .boolean(let field, let test): field.value(event).map { test.matches($0 ? 1 : 0) } ?? false
        }
    }
}

/// Any other field: read through the catalogue once per event into the context's slot.
final class CachedFieldEvaluator: Evaluator, @unchecked Sendable {
    let reader: FieldSlotReader
    let slot: Int
    let test: ConditionValueTest
    init(_ reader: FieldSlotReader, slot: Int, test: ConditionValueTest, source: String) {
        self.reader = reader
        self.slot = slot
        self.test = test
        super.init(source: source)
    }
    override func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool {
        guard let value = context.field(slot, reader, event) else { return false }
        return test.matches(value)
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
    override func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool {
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
    override func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool {
        for pid in event.process.ancestorPIDs where test.matches(.uint(UInt64(pid))) { return true }
        return false
    }
}
