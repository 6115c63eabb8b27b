import VigilEvents

/// Conditions compiled for speed, per event kind: each condition's plan is specialized to the
/// kind (comparisons the kind decides fold to constants, e.g. `evt.type = execve` or a file field
/// on an exec event), the terms of every `and`/`or` are ordered cheapest and most decisive first
/// (`and`, `or` and `not` are pure: the order changes the work, not the result), and a
/// subcondition that occurs in several places (a macro such as `open_write` used by several
/// rules) is evaluated once per event. Catalogue fields are read once per event whatever the
/// number of comparisons on them. `explain` does not use this form: it walks the plan in source
/// order (`CompiledCondition.explain`).
final class EvaluationProgram: Sendable {
    /// Per event kind, in `EventKind.allCases` order.
    let kinds: [KindProgram]
    /// The same, for calls without a retain and release each.
    private let calls: [Unmanaged<KindProgram>]

    /// Compiles `roots`; condition `i` of the program is `roots[i]`. With `kinds`, condition `i`
    /// is evaluated only for events of the kinds in `kinds[i]` (a rule set's index by kind).
    init(_ roots: [PlanNode], kinds: [KindSet]? = nil) {
        self.kinds = EventKind.allCases.map { kind in
            KindProgram(roots, kind: kind, only: kinds.map { kinds in roots.indices.filter { kinds[$0].contains(kind) } })
        }
        calls = self.kinds.map { Unmanaged.passUnretained($0) }
    }

    /// Calls `body` with the index of each condition `event` satisfies, in condition order.
    @inline(__always)
    func forEachMatch(_ event: Event, _ body: (Int) throws -> Void) rethrows {
        try calls[event.kind.index]._withUnsafeGuaranteedRef { try $0.forEachMatch(event, body) }
    }
}

/// The conditions that can match one event kind, ready to run.
final class KindProgram: @unchecked Sendable {
    /// A condition that can be true for the kind, and its evaluator.
    struct Entry {
        let index: Int
        let root: Unmanaged<Evaluator>
    }
    /// In condition order.
    let entries: [Entry]
    /// Catalogue field slots in the per-event context, and memo slots used.
    let fieldSlots: Int, memoSlots: Int
    /// Owns every evaluator the entries use.
    private let owners: [Evaluator]

    /// The program for `roots` on events of `kind`, limited to the conditions `only` when given.
    init(_ roots: [PlanNode], kind: EventKind, only: [Int]? = nil) {
        var builder = EvaluatorBuilder(optimized: true)
        let plans = (only ?? Array(roots.indices)).map { ($0, roots[$0].specialized(for: kind).ordered()) }
        for (_, plan) in plans { builder.count(plan) }
        var entries: [Entry] = []
        var owners: [Evaluator] = []
        for (index, plan) in plans {
            if case .constant(false, _) = plan { continue }
            let root = builder.make(plan)
            owners.append(root)
            entries.append(Entry(index: index, root: Unmanaged.passUnretained(root)))
        }
        self.entries = entries
        self.owners = owners
        self.fieldSlots = builder.fieldSlotCount
        self.memoSlots = builder.memoSlotCount
    }

    /// Per condition that can match, its index and evaluator's `outline` (tests, debugging).
    var outlines: [(index: Int, outline: String)] {
        entries.map { ($0.index, $0.root.takeUnretainedValue().outline) }
    }

    /// Calls `body` with the index of each condition `event` satisfies, in condition order.
    @inline(__always)
    func forEachMatch(_ event: Event, _ body: (Int) throws -> Void) rethrows {
        var context = EvaluationContext(fieldSlots: fieldSlots)
        // Indexes, not `for entry in entries`: the iterator would retain the array.
        for i in entries.indices {
            let entry = entries[i]
            if entry.root._withUnsafeGuaranteedRef({ $0.evaluate(event, &context) }) { try body(entry.index) }
        }
    }
}

/// Turns plan nodes into evaluators. Optimized: the plans given to `count` first, then each
/// node built once per distinct subcondition (the same text from the same macros and lists
/// means the same thing within one rule set), with a memo slot when it occurs more than once
/// and costs more than the memo's check. Source order (for `explain`): the plan as it is.
struct EvaluatorBuilder {
    let optimized: Bool
    private var fieldSlots: [String: (slot: Int, reader: FieldSlotReader)] = [:]
    private var occurrences: [String: Int] = [:]
    private var built: [String: Evaluator] = [:]
    private(set) var memoSlotCount = 0
    var fieldSlotCount: Int { fieldSlots.count }

    /// A subcondition is memoized only when evaluating it costs more than this (see `PlanNode.estimate`).
    static let memoCost = 4.0

    init(optimized: Bool) { self.optimized = optimized }

    /// Counts the subconditions of `node` (not those inside one already seen: a repeated
    /// macro counts once, not its parts again).
    mutating func count(_ node: PlanNode) {
        let key = node.key
        occurrences[key, default: 0] += 1
        guard occurrences[key] == 1 else { return }
        switch node {
        case .constant, .test: break
        case .not(let child, _): count(child)
        case .and(let children, _), .or(let children, _): for child in children { count(child) }
        }
    }

    /// The evaluator for `node`.
    mutating func make(_ node: PlanNode) -> Evaluator {
        guard optimized else { return construct(node) }
        let key = node.key
        if let existing = built[key] { return existing }
        var evaluator = construct(node)
        if occurrences[key, default: 0] > 1, node.estimate.cost > Self.memoCost, memoSlotCount < EvaluationContext.memoCapacity {
            evaluator = MemoEvaluator(evaluator, slot: memoSlotCount)
            memoSlotCount += 1
        }
        built[key] = evaluator
        return evaluator
    }

    private mutating func construct(_ node: PlanNode) -> Evaluator {
        switch node {
        case .constant(let value, let source): return ConstantEvaluator(value, source: source)
        case .not(let child, let source): return NotEvaluator(make(child), source: source)
        case .and(let children, let source): return JunctionEvaluator(children.map { make($0) }, isAnd: true, source: source)
        case .or(let children, let source): return JunctionEvaluator(children.map { make($0) }, isAnd: false, source: source)
        case .test(let test): return construct(test)
        }
    }

    private mutating func construct(_ test: PlanTest) -> Evaluator {
        switch test.operand {
        case .eventType(let table):
            return EventTypeEvaluator(table, source: test.source)
        case .ancestorNames:
            return AncestorNameEvaluator(test: test.test, transformers: test.transformers, source: test.source)
        case .ancestorPIDs:
            return AncestorPIDEvaluator(test: test.test, source: test.source)
        case .field(let definition, let argument):
            if test.transformers.isEmpty, let direct = Self.direct(definition.name, argument, test.test, source: test.source) {
                return direct
            }
            let key = test.fieldKey
            let slot: (slot: Int, reader: FieldSlotReader)
            if let existing = fieldSlots[key] {
                slot = existing
            } else {
                slot = (fieldSlots.count, FieldSlotReader(extract: definition.extract, argument: argument, transformers: test.transformers))
                fieldSlots[key] = slot
            }
            return CachedFieldEvaluator(slot.reader, slot: slot.slot, test: test.test, source: test.source)
        }
    }

    /// An evaluator reading the field in place, when there is a direct reader for it.
    static func direct(_ field: String, _ argument: String?, _ test: ConditionValueTest, source: String) -> Evaluator? {
        switch test {
        case .string(let test): DirectStringField(field: field, argument: argument).map { DirectStringEvaluator($0, test: test, source: source) }
        case .unsigned(let test): DirectUIntField(field: field, argument: argument).map { DirectScalarEvaluator(.unsigned($0, test), source: source) }
        case .signed(let test): DirectIntField(field: field, argument: argument).map { DirectScalarEvaluator(.signed($0, test), source: source) }
        case .boolean(let test): DirectBoolField(field: field, argument: argument).map { DirectScalarEvaluator(.boolean($0, test), source: source) }
        case .exists, .list, .network: nil
        }
    }
}

extension PlanNode {
    /// Identifies the subcondition: equal keys, equal meaning (within one rule set, whose
    /// macros and lists are fixed).
    var key: String {
        switch self {
        case .constant(let value, _): value ? "T" : "F"
        case .test(let test): test.key
        case .not(let child, _): "!(" + child.key + ")"
        case .and(let children, _): "&(" + children.map(\.key).joined(separator: ",") + ")"
        case .or(let children, _): "|(" + children.map(\.key).joined(separator: ",") + ")"
        }
    }

    /// The node for events of `kind` only: comparisons the kind decides (`evt.type` on exec,
    /// fork and exit events; any comparison on a field the kind does not carry, which is false)
    /// become constants, and constants fold.
    func specialized(for kind: EventKind) -> PlanNode {
        switch self {
        case .constant: return self
        case .test(let test):
            if case .eventType(let table) = test.operand, let result = table.result(for: kind) {
                return .constant(result, source: test.source)
            }
            if !test.fieldKinds.isEmpty, !test.fieldKinds.contains(kind) { return .constant(false, source: test.source) }
            return self
        case .not(let child, let source): return ConditionFold.not(child.specialized(for: kind), source: source)
        case .and(let children, let source): return ConditionFold.and(children.map { $0.specialized(for: kind) }, source: source)
        case .or(let children, let source): return ConditionFold.or(children.map { $0.specialized(for: kind) }, source: source)
        }
    }

    /// The same node with the terms of each `and` ordered by cost per chance of being false
    /// (that is where an `and` stops) and those of each `or` by cost per chance of being true;
    /// ties keep source order.
    func ordered() -> PlanNode {
        switch self {
        case .constant, .test: return self
        case .not(let child, let source): return .not(child.ordered(), source: source)
        case .and(let children, let source): return .and(Self.sort(children.map { $0.ordered() }, stopWhen: false), source: source)
        case .or(let children, let source): return .or(Self.sort(children.map { $0.ordered() }, stopWhen: true), source: source)
        }
    }

    private static func sort(_ nodes: [PlanNode], stopWhen stop: Bool) -> [PlanNode] {
        let ranked = nodes.enumerated().map { index, node in
            let (cost, probability) = node.estimate
            let stopping = max(stop ? probability : 1 - probability, 0.01)
            return (rank: cost / stopping, index: index, node: node)
        }
        return ranked.sorted { ($0.rank, $0.index) < ($1.rank, $1.index) }.map(\.node)
    }

    /// A rough expected cost of evaluating the node (1 is a comparison of a number read in place)
    /// and the chance that it is true, for ordering terms. Comparisons of equality kinds are
    /// guessed rarely true, `!=` mostly true, orderings and booleans even.
    var estimate: (cost: Double, probability: Double) {
        switch self {
        case .constant(let value, _):
            return (0, value ? 1 : 0)
        case .test(let test):
            return (test.cost, test.probability)
        case .not(let child, _):
            let (cost, probability) = child.estimate
            return (cost, 1 - probability)
        case .and(let children, _), .or(let children, _):
            let isAnd = if case .and = self { true } else { false }
            var cost = 0.0, reach = 1.0, allTrue = 1.0, allFalse = 1.0
            for child in children {
                let (childCost, probability) = child.estimate
                cost += reach * childCost
                reach *= isAnd ? probability : 1 - probability
                allTrue *= probability
                allFalse *= 1 - probability
            }
            return (cost, isAnd ? allTrue : 1 - allFalse)
        }
    }
}

extension PlanTest {
    /// The field with its argument and transformers: what a catalogue read is cached under.
    var fieldKey: String {
        transformers.map { $0.rawValue + "(" }.joined() + fieldName + (argument.map { "[\($0)]" } ?? "")
    }

    /// The comparison's bracket argument, if any.
    var argument: String? {
        if case .field(_, let argument) = operand { return argument }
        return nil
    }

    /// See `PlanNode.estimate`.
    var cost: Double {
        let read: Double
        switch operand {
        case .eventType: return 1
        case .ancestorNames, .ancestorPIDs: read = 10
        case .field(let definition, let argument):
            let direct = transformers.isEmpty && EvaluatorBuilder.direct(definition.name, argument, test, source: "") != nil
            read = direct ? 0 : 20 + 20 * Double(transformers.count)
        }
        let compare: Double = switch op {
        case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual, .exists: 1
        case .startswith, .endswith: 2
        case .in, .intersects: 3
        case .pmatch: 2 + Double(valueCount)
        case .contains: 5
        case .icontains, .glob, .iglob: 8
        case .regex: 100
        }
        return read + compare
    }

    /// See `PlanNode.estimate`.
    var probability: Double {
        if case .eventType(let table) = operand {
            return table.open.isEmpty ? 0.5 : Double(table.open.filter(\.result).count) / Double(table.open.count)
        }
        if case .boolean = test { return 0.5 }
        return switch op {
        case .notEqual, .exists: 0.9
        case .less, .lessOrEqual, .greater, .greaterOrEqual: 0.5
        default: 0.1
        }
    }
}
