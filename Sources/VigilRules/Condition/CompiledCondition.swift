import Foundation
import VigilEvents

/// One plain `field op constant(s)` term of a condition's top-level AND, for pushing filters
/// into the kernel (`container.id != host`, `proc.name in (sh, bash)`, `not fd.name pmatch (/proc)`).
public struct Predicate: Sendable, Equatable {
    /// The field, with its bracket argument when written (`proc.aname[2]`, `container.label[app]`).
    /// `proc.aname`/`proc.apid` without an argument mean "any ancestor".
    public var field: String
    /// The operator as Falco spells it: `=` (also for `==`), `!=`, `<`, `<=`, `>`, `>=`, `in`,
    /// `intersects`, `pmatch`, `contains`, `icontains`, `startswith`, `endswith`, `glob`, `iglob`,
    /// `regex` or `exists`.
    public var op: String
    /// The constants, lists expanded (none for `exists`).
    public var values: [String]
    /// Whether the term is `not field op ...`.
    public var negated: Bool

    /// Creates a predicate.
    public init(field: String, op: String, values: [String], negated: Bool) {
        self.field = field
        self.op = op
        self.values = values
        self.negated = negated
    }
}

/// A condition compiled into an evaluation plan: fields resolved to readers, values converted
/// once (numbers parsed, lists turned into sets, globs split, regexes compiled), macros inlined
/// and constant parts folded away. Evaluating it parses nothing: `matches` runs the plan
/// specialized to the event's kind with its terms ordered by cost (`EvaluationProgram`),
/// `explain` walks it in source order.
public struct CompiledCondition: Sendable {
    /// The plan, for analysis.
    let root: PlanNode
    /// The runtime forms, made at first use (a `RuleSet` runs all its rules' plans compiled
    /// together, so most conditions never need their own).
    private let runtime: ConditionRuntime
    /// The plan compiled for speed, alone.
    var program: EvaluationProgram { runtime.forms.program }
    /// The condition text as compiled.
    public let text: String
    /// The event kinds the condition can possibly match (from `evt.type` restrictions and from
    /// fields that only some kinds carry); every kind when nothing restricts it.
    public let kinds: KindSet
    /// The fields the plan reads (without bracket arguments).
    public let fields: Set<String>
    /// The top-level AND terms that are plain `field op constant(s)`, possibly negated.
    public let conjuncts: [Predicate]
    /// The `evt.type` names the condition compares with that no Vigil event has (`connect`,
    /// `ptrace`, ...): when `kinds` is empty because of them, the rule never matches.
    public let unproducedEventTypes: [String]
    /// The syscall events (rows of `Syscalls.all`, by their evt.type) the condition can match:
    /// every row when nothing restricts evt.type, none when it needs another kind.
    public let syscalls: SyscallRows
    /// Whether the condition reads a field only syscall events carry (evt.arg.*, evt.failed, ...).
    public let readsSyscallFields: Bool
    /// The socket messages the condition can be true for only (it requires a dns.* or a
    /// net.stratum.* field): the kernel may drop the calls of their syscalls that carry none.
    public let onlyMessages: Set<SocketMessage>

    init(root: PlanNode, text: String) {
        self.root = root
        self.runtime = ConditionRuntime(root)
        self.text = text
        self.kinds = root.kindSets.whenTrue
        self.syscalls = kinds.contains(.syscall) ? root.syscallSets.whenTrue : SyscallRows()
        self.readsSyscallFields = root.readsSyscallOnlyField
        self.onlyMessages = Set(SocketMessage.allCases.filter { root.messageSets($0.isMessageField).whenTrue == .message })
        var fields = Set<String>()
        root.collectFields(into: &fields)
        self.fields = fields
        var unproduced: [String] = []
        root.collectUnproducedEventTypes(into: &unproduced)
        self.unproducedEventTypes = unproduced
        let terms: [PlanNode] = if case .and(let children, _) = root { children } else { [root] }
        self.conjuncts = terms.compactMap { term in
            switch term {
            case .test(let test): return test.predicate
            case .not(.test(let test), _):
                guard var predicate = test.predicate else { return nil }
                predicate.negated = true
                return predicate
            default: return nil
            }
        }
    }

    /// The condition's value for every event when it folded to a constant (a rule that is
    /// `never_true`), nil when it depends on the event.
    public var constantValue: Bool? {
        if case .constant(let value, _) = root { return value }
        return nil
    }

    /// Whether `event` matches.
    public func matches(_ event: Event) -> Bool {
        var matched = false
        program.forEachMatch(event) { _ in matched = true }
        return matched
    }

    /// Nil when `event` matches; otherwise the source text of the clause that made it fail: along
    /// the chain of `and`s the first term, in source order, that is false, descending into `and`s
    /// (also inside macros), and stopping at a comparison, a `not`, an `or` (as a whole) or a
    /// macro whose body is not an `and` (named by the macro). E.g. `proc.name in (shell_binaries)`.
    public func explain(_ event: Event) -> String? {
        let forms = runtime.forms
        var context = EvaluationContext(fieldSlots: forms.explainerFieldSlots)
        return forms.explainer.evaluate(event, &context) ? nil : forms.explainer.failingClause(event, &context)
    }
}

/// A condition's own runtime forms, made once at first use (thread-safe).
final class ConditionRuntime: @unchecked Sendable {
    struct Forms {
        /// The plan compiled for speed.
        let program: EvaluationProgram
        /// The plan in source order, for `explain`, and the size of its context.
        let explainer: Evaluator, explainerFieldSlots: Int
    }
    private let root: PlanNode
    private let lock = NSLock()
    private var made: Forms?

    init(_ root: PlanNode) { self.root = root }

    var forms: Forms {
        lock.lock()
        defer { lock.unlock() }
        if let made { return made }
        var builder = EvaluatorBuilder(optimized: false)
        let explainer = builder.make(root)
        let forms = Forms(program: EvaluationProgram([root]), explainer: explainer, explainerFieldSlots: builder.fieldSlotCount)
        made = forms
        return forms
    }
}

/// A node of the evaluation plan. `source` is the clause's text for `explain`.
indirect enum PlanNode: Sendable {
    case constant(Bool, source: String)
    case test(PlanTest)
    case not(PlanNode, source: String)
    case and([PlanNode], source: String)
    case or([PlanNode], source: String)

    var source: String {
        switch self {
        case .constant(_, let source), .not(_, let source), .and(_, let source), .or(_, let source): source
        case .test(let test): test.source
        }
    }

    /// The same node explained as `source` (a macro reference shows the macro's name).
    func explained(as source: String) -> PlanNode {
        switch self {
        case .constant(let value, _): .constant(value, source: source)
        case .not(let child, _): .not(child, source: source)
        case .or(let children, _): .or(children, source: source)
        case .and, .test: self
        }
    }

    /// The kinds for which the node may be true, and those for which it may be false.
    var kindSets: (whenTrue: KindSet, whenFalse: KindSet) {
        truthSets { $0.kindSets }
    }

    /// The syscall events (by row) for which the node may be true, and those for which it may be
    /// false: `kindSets` at the grain of single syscalls.
    var syscallSets: (whenTrue: SyscallRows, whenFalse: SyscallRows) {
        truthSets { test in
            if case .eventType(let table) = test.operand {
                return (SyscallRows(table.syscalls), SyscallRows(table.syscalls.map { !$0 }))
            }
            let carried = test.fieldKinds.isEmpty || test.fieldKinds.contains(.syscall)
            // A DNS message, a stratum request: read from the syscalls that message is captured from.
            if carried, let message = SocketMessage.allCases.first(where: { $0.isMessageField(test.fieldName) }) {
                return (message.rows, .all)
            }
            return (carried ? .all : SyscallRows(), .all)
        }
    }

    /// Whether the node may be true for the messages whose fields `isMessageField` names only (DNS
    /// messages, first payloads), for other traffic too, or neither.
    func messageSets(_ isMessageField: (String) -> Bool) -> (whenTrue: MessageTraffic, whenFalse: MessageTraffic) {
        truthSets { test in (isMessageField(test.fieldName) ? .message : .all, .all) }
    }

    /// The events for which the node may be true, and those for which it may be false, given
    /// each test's (`leaf`): not swaps them, and/or combine the children's.
    func truthSets<S: TruthSet>(_ leaf: (PlanTest) -> (S, S)) -> (whenTrue: S, whenFalse: S) {
        switch self {
        case .constant(let value, _):
            return value ? (.all, S()) : (S(), .all)
        case .test(let test):
            return leaf(test)
        case .not(let child, _):
            let sets = child.truthSets(leaf)
            return (sets.whenFalse, sets.whenTrue)
        case .and(let children, _):
            var whenTrue = S.all, whenFalse = S()
            for child in children {
                let sets = child.truthSets(leaf)
                whenTrue.formIntersection(sets.whenTrue)
                whenFalse.formUnion(sets.whenFalse)
            }
            return (whenTrue, whenFalse)
        case .or(let children, _):
            var whenTrue = S(), whenFalse = S.all
            for child in children {
                let sets = child.truthSets(leaf)
                whenTrue.formUnion(sets.whenTrue)
                whenFalse.formIntersection(sets.whenFalse)
            }
            return (whenTrue, whenFalse)
        }
    }

    /// Whether some comparison reads a field that, of the kinds with fd tables, only syscall
    /// events carry (the network fields also apply to connection events, which carry their ends).
    var readsSyscallOnlyField: Bool {
        switch self {
        case .constant: false
        case .test(let test): !test.fieldKinds.isEmpty && test.fieldKinds.subtracting([.conn, .tcpdrop]) == [.syscall]
        case .not(let child, _): child.readsSyscallOnlyField
        case .and(let children, _), .or(let children, _): children.contains { $0.readsSyscallOnlyField }
        }
    }

    /// The `evt.type` names compared with that no Vigil event has, in source order.
    func collectUnproducedEventTypes(into names: inout [String]) {
        switch self {
        case .constant: break
        case .test(let test):
            if case .eventType(let table) = test.operand {
                for name in table.unproduced where !names.contains(name) { names.append(name) }
            }
        case .not(let child, _): child.collectUnproducedEventTypes(into: &names)
        case .and(let children, _), .or(let children, _):
            for child in children { child.collectUnproducedEventTypes(into: &names) }
        }
    }

    func collectFields(into fields: inout Set<String>) {
        switch self {
        case .constant: break
        case .test(let test): fields.insert(test.fieldName)
        case .not(let child, _): child.collectFields(into: &fields)
        case .and(let children, _), .or(let children, _):
            for child in children { child.collectFields(into: &fields) }
        }
    }
}

/// A set of events a condition may be true or false for: event kinds, or syscall rows.
protocol TruthSet {
    /// Every event.
    static var all: Self { get }
    /// No event.
    init()
    mutating func formUnion(_ other: Self)
    mutating func formIntersection(_ other: Self)
}

extension KindSet: TruthSet {}

extension SyscallRows: TruthSet {}

/// Traffic a condition can be true for: messages of one protocol (DNS messages, first payloads)
/// and everything else. A condition true for such messages alone lets the kernel drop the calls
/// that carry none (`KernelPushdown.messages`, `MessageCapture.only`).
public struct MessageTraffic: OptionSet, Sendable, TruthSet {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init() { rawValue = 0 }
    public static let message = MessageTraffic(rawValue: 1)
    public static let other = MessageTraffic(rawValue: 2)
    public static let all: MessageTraffic = [.message, .other]
}

extension SocketMessage {
    /// The rows of the syscalls the message is read from (`syscalls`).
    var rows: SyscallRows {
        switch self {
        case .dns: Self.dnsRows
        case .firstPayload: Self.payloadRows
        }
    }
    private static let dnsRows = SyscallRows(names: SocketMessage.dns.syscalls)
    private static let payloadRows = SyscallRows(names: SocketMessage.firstPayload.syscalls)
}

/// A set of rows of `Syscalls.all` (a bitset; the table has a few hundred rows).
public struct SyscallRows: Sendable, Equatable, Hashable {
    private var words: [UInt64]

    /// No row.
    public init() { words = Array(repeating: 0, count: (Syscalls.all.count + 63) / 64) }

    /// The rows whose flag is true (`flags[i]` for row i).
    init(_ flags: [Bool]) {
        self.init()
        for (i, flag) in flags.enumerated() where flag { insert(i) }
    }

    /// The rows named (table names; unknown names are left out).
    public init(names: some Sequence<String>) {
        self.init()
        for name in names { if let i = Syscalls.index(named: name) { insert(i) } }
    }

    /// Every row of the table.
    public static let all: SyscallRows = SyscallRows(Array(repeating: true, count: Syscalls.all.count))

    /// Adds row `i`.
    public mutating func insert(_ i: Int) { words[i >> 6] |= 1 << UInt64(i & 63) }
    /// Removes row `i`.
    public mutating func remove(_ i: Int) { words[i >> 6] &= ~(1 << UInt64(i & 63)) }
    /// Whether row `i` is in.
    public func contains(_ i: Int) -> Bool { words[i >> 6] & (1 << UInt64(i & 63)) != 0 }
    /// Adds every row of `other`.
    public mutating func formUnion(_ other: SyscallRows) { for i in words.indices { words[i] |= other.words[i] } }
    /// Keeps only the rows also in `other`.
    public mutating func formIntersection(_ other: SyscallRows) { for i in words.indices { words[i] &= other.words[i] } }
    /// Removes the rows of `other`.
    public mutating func subtract(_ other: SyscallRows) { for i in words.indices { words[i] &= ~other.words[i] } }
    /// Whether no row is in both.
    public func isDisjoint(with other: SyscallRows) -> Bool { words.indices.allSatisfy { words[$0] & other.words[$0] == 0 } }
    /// How many rows are in.
    public var count: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }
    /// Whether no row is in.
    public var isEmpty: Bool { words.allSatisfy { $0 == 0 } }
    /// The rows in, in table order.
    public var indices: [Int] { Syscalls.all.indices.filter(contains) }
    /// The table names of the rows in, in table order.
    public var names: [String] { indices.map { Syscalls.all[$0].nameString } }
}

/// Where a comparison's value comes from.
enum PlanOperand: Sendable {
    /// A catalogue field, with its bracket argument.
    case field(FieldDefinition, argument: String?)
    /// `proc.aname` without an index: every ancestor's name, parent first (true when any matches).
    case ancestorNames
    /// `proc.apid` without an index: every ancestor's pid.
    case ancestorPIDs
    /// `evt.type` without transformers: decided per kind (see `EventTypeTest`).
    case eventType(EventTypeTest)
}

/// `evt.type` compared with constants. Vigil's exec, fork and exit events each stand for
/// several syscalls (an exec event is an execve or an execveat), so `=`/`in`/`intersects` are
/// true when any of the kind's syscall names matches and `!=` when none equals the value;
/// other operators test the name Vigil reports (execve, clone, procexit). Open events carry
/// their syscall's name, and connection events their phase's, so they are tested by name. Results are computed when compiling. The
/// names are each kind's `types` in bpf/syscalls/kinds.table (`EventKindDescriptor`).
struct EventTypeTest: Sendable {
    /// The syscall names each kind stands for; the first is the one Vigil reports.
    static let names: [EventKind: [String]] = Dictionary(uniqueKeysWithValues:
        EventKindDescriptor.all.filter { !$0.types.isEmpty }.map { ($0.kind, $0.types) })

    /// The result for every event of a kind whose evt.type is `fixed`, by `EventKind.index`;
    /// nil for the kinds whose events decide it (`record`, `syscall`).
    let fixed: [Bool?]
    /// The result for a syscall event, by its row in `Syscalls.all` (its name is its evt.type).
    let syscalls: [Bool]
    /// The result for each known open syscall name (`openNames` order).
    let open: [(name: String, result: Bool)]
    /// For the other kinds whose records say which of their `types` they are (a connection:
    /// tcp_connect, tcp_accept, tcp_close), the result per type, by `EventKind.index`; nil for the rest.
    let recordTypes: [[Bool]?]
    /// For an open syscall name not known when compiling.
    let fallback: ConditionValueTest
    /// The names compared with that no Vigil event has (`connect`, `ptrace`, ...).
    let unproduced: [String]
    /// The values and operator (a program bundle's event is tested by its bundle's name).
    let values: [ByteString]
    let op: ComparisonOperator

    /// The open syscalls' names, as bytes.
    static let openNames: [[UInt8]] = EventKind.open.descriptor.types.map { Array($0.utf8) }

    /// The index of `syscall` in `openNames`, -1 when it is not there.
    static func openNameIndex(_ syscall: String) -> Int {
        let index: Int? = syscall.utf8.withContiguousStorageIfAvailable { name in
            for (index, known) in openNames.enumerated() where known.count == name.count {
                if known.withUnsafeBufferPointer({ bytesEqual($0, name) }) { return index }
            }
            return -1
        }
        return index ?? openNames.firstIndex(of: Array(syscall.utf8)) ?? -1
    }

    init(op: ComparisonOperator, values: [ByteString], test: ConditionValueTest) {
        func decide(_ kind: EventKind) -> Bool {
            let names = kind.descriptor.types.map { ByteString($0) }
            switch op {
            case .equal, .in, .intersects: return names.contains { test.matches(string: $0) }
            case .notEqual: return !names.contains { values.contains($0) }
            default: return names.first.map { test.matches(string: $0) } ?? false
            }
        }
        // A program bundle's events are named by their bundle: decided per event.
        fixed = EventKindDescriptor.all.map { $0.eventType == .fixed && $0.kind != .program ? decide($0.kind) : nil }
        self.values = values
        self.op = op
        open = EventKind.open.descriptor.types.map { ($0, test.matches(string: ByteString($0))) }
        recordTypes = EventKindDescriptor.all.map { d in
            d.eventType == .record && d.kind != .open ? d.types.map { test.matches(string: ByteString($0)) } : nil
        }
        syscalls = Syscalls.all.map { d in
            op == .notEqual ? !values.contains(ByteString(d.name)) : test.matches(string: ByteString(d.name))
        }
        fallback = test
        let produced = Set(Self.names.values.joined())
        unproduced = values.map(\.string).filter { !produced.contains($0) && ProgramSchema.registered($0) == nil }
    }

    /// The result for every event of `kind`, nil when it depends on the event (open events
    /// carry their syscall's name).
    func result(for kind: EventKind) -> Bool? { fixed[kind.index] }

    /// The result for `event` (an open event's syscall name looked up once per event, in `context`).
    func evaluate(_ event: Event, _ context: inout EvaluationContext) -> Bool {
        switch event.payload {
        case .open(let o):
            let index = context.openSyscallIndex(o)
            return index >= 0 ? open[index].result : fallback.matches(string: ByteString(o.syscall))
        case .syscall(let s):
            return syscalls[s.index]
        case .conn(let c):
            return recordTypes[event.kind.index]?[Int(c.phase.rawValue)] ?? false
        case .program(let p):
            let name = ByteString(p.schema.name)
            return op == .notEqual ? !values.contains(name) : fallback.matches(string: name)
        default:
            return fixed[event.kind.index] ?? false
        }
    }

    var kindSets: (whenTrue: KindSet, whenFalse: KindSet) {
        var whenTrue = KindSet(), whenFalse = KindSet()
        for kind in EventKind.allCases {
            guard let result = fixed[kind.index] else { continue }
            if result { whenTrue.insert(kind) } else { whenFalse.insert(kind) }
        }
        for kind in EventKind.allCases {
            guard let results = recordTypes[kind.index] else { continue }
            if results.contains(true) { whenTrue.insert(kind) }
            if results.contains(false) { whenFalse.insert(kind) }
        }
        if open.contains(where: \.result) { whenTrue.insert(.open) }
        if open.contains(where: { !$0.result }) { whenFalse.insert(.open) }
        // A program bundle's event is named by its bundle: `=`/`in` can be true only for a bundle
        // loaded when the rule compiles; `!=` is true for every bundle not named, and a pattern
        // (startswith, glob, ...) may be true for any bundle.
        let equality: Set<ComparisonOperator> = [.equal, .in, .intersects]
        if !equality.contains(op) || values.contains(where: { ProgramSchema.registered($0.string) != nil }) {
            whenTrue.insert(.program)
        }
        if op != .notEqual || values.contains(where: { ProgramSchema.registered($0.string) != nil }) {
            whenFalse.insert(.program)
        }
        if syscalls.contains(true) { whenTrue.insert(.syscall) }
        if syscalls.contains(false) { whenFalse.insert(.syscall) }
        return (whenTrue, whenFalse)
    }
}

/// One comparison of the plan.
struct PlanTest: Sendable {
    /// The clause's source text.
    let source: String
    let operand: PlanOperand
    /// Applied in order to string values before testing.
    let transformers: [FieldTransformer]
    let test: ConditionValueTest
    /// The field's name (without argument), for `fields`.
    let fieldName: String
    /// The kinds that carry the field (empty: all).
    let fieldKinds: KindSet
    /// The comparison as a pushdown predicate; nil when transformed.
    let predicate: Predicate?
    /// The operator and how many values it compares with (lists expanded).
    let op: ComparisonOperator
    let valueCount: Int
    /// The comparison in full (transformers, field, argument, operator, values): equal keys
    /// compare alike.
    let key: String

    var kindSets: (whenTrue: KindSet, whenFalse: KindSet) {
        if case .eventType(let table) = operand { return table.kindSets }
        let all = KindSet.all
        // A comparison on a field the event lacks is false: only the carrying kinds can make it true.
        return (fieldKinds.isEmpty ? all : fieldKinds, all)
    }
}
