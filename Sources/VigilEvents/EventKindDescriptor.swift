/// One row of bpf/syscalls/kinds.table: everything about an event kind that the decoder, the
/// fields, JSON, the rules and `vigil trace` read, in one place (`EventKind.descriptor`). The
/// rows are generated (Generated/EventKinds.swift); the fields a kind carries are the catalogue's
/// fields whose `kinds` name it (`fields`).
public struct EventKindDescriptor: Sendable {
    /// How a kind's evt.type is decided.
    public enum EventType: Sendable {
        /// Every event of the kind has the first of `types`.
        case fixed
        /// Each record says which of `types` it is (an open event: open, openat, openat2).
        case record
        /// The syscall table's row names it (the `syscall` kind).
        case syscall
    }

    /// The kind this row describes.
    public let kind: EventKind
    /// Its `enum vigil_event_kind` value (`vigil_event_header.kind`).
    public let abi: UInt32
    /// The `vigil trace --set` it belongs to (proc, fs, ...; `syscall` for any syscall).
    public let category: String
    /// The sensor whose capture emits it.
    public let sensor: String
    /// Its record's struct in vigil_abi.h, and that struct's size (the least a record has).
    public let record: String, recordSize: Int
    /// How its evt.type is decided.
    public let eventType: EventType
    /// Falco's evt.type names an `evt.type = NAME` test treats as this kind (the first is what a
    /// `fixed` kind reports).
    public let types: [String]
    /// The rows of the syscall table this kind's capture reports (`vigil trace --set` leaves them
    /// to the kind).
    public let syscalls: [String]

    /// Creates a row (the generated table).
    init(kind: EventKind, abi: UInt32, category: String, sensor: String, record: String, recordSize: Int,
         eventType: EventType, types: [String], syscalls: [String]) {
        self.kind = kind; self.abi = abi; self.category = category; self.sensor = sensor
        self.record = record; self.recordSize = recordSize; self.eventType = eventType
        self.types = types; self.syscalls = syscalls
    }

    /// The syscalls this kind reports under their own evt.type name (`syscalls` that are also in
    /// `types`: execve for exec, not exit_group for exit, whose evt.type is procexit): a syscall
    /// event of one of them is the same call as an event of this kind (one exec, one alert).
    public var dedicatedSyscalls: [String] { syscalls.filter(types.contains) }

    /// The catalogue's fields that events of this kind carry (without bracket arguments).
    public var fields: [FieldDefinition] { Fields.all.filter { $0.applies(to: kind) } }

    /// Every syscall some kind's own capture reports (`syscalls` of every row).
    public static let coveredSyscalls: Set<String> = Set(all.flatMap(\.syscalls))

    /// Whether a ring record carries the kind (its sensor's capture makes it); false for a kind
    /// made in userspace (`fim`: the daemon makes it after re-reading a watched file).
    public var hasRecord: Bool { !record.isEmpty }

    /// The kinds with a capture of their own (every kind but `syscall` and those made in
    /// userspace), which `vigil trace --event NAME` and `--set` select by name.
    public static let ownCapture: [EventKind] = all.filter { $0.eventType != .syscall && $0.hasRecord }.map(\.kind)

    /// The kinds of `category` with a capture of their own (`vigil trace --set proc`: exec, fork,
    /// exit; not the kinds made in userspace).
    public static func kinds(inCategory category: String) -> [EventKind] {
        all.filter { $0.category == category && $0.eventType != .syscall && $0.hasRecord }.map(\.kind)
    }
}

/// A set of event kinds as bits (`EventKind.index`), of any number of kinds (the word count is
/// generated from the table): a test per event is a shift and an and, and no kind is lost to a
/// mask too narrow for it.
public struct KindSet: Sendable, Hashable, SetAlgebra, Sequence, CustomStringConvertible {
    /// A kind.
    public typealias Element = EventKind
    /// A kind (`[.exec, .open]`).
    public typealias ArrayLiteralElement = EventKind
    /// The bits, `EventKind.index` i in word i / 64.
    private var words: Words

    /// No kind.
    public init() { words = Words(repeating: 0) }

    /// Every kind.
    public static var all: KindSet { KindSet(EventKind.allCases) }

    /// Whether `kind` is in.
    @inlinable @inline(__always)
    public func contains(_ kind: EventKind) -> Bool { word(kind.index >> 6) & (1 << UInt64(kind.index & 63)) != 0 }

    @usableFromInline func word(_ i: Int) -> UInt64 { words[i] }

    /// Adds `kind`; returns whether it was new and the member.
    @discardableResult
    public mutating func insert(_ kind: EventKind) -> (inserted: Bool, memberAfterInsert: EventKind) {
        let had = contains(kind)
        words[kind.index >> 6] |= 1 << UInt64(kind.index & 63)
        return (!had, kind)
    }

    /// Removes `kind`; returns it when it was in.
    @discardableResult
    public mutating func remove(_ kind: EventKind) -> EventKind? {
        let had = contains(kind)
        words[kind.index >> 6] &= ~(1 << UInt64(kind.index & 63))
        return had ? kind : nil
    }

    /// Adds `kind` (replacing nothing: kinds have no identity beyond their index).
    @discardableResult
    public mutating func update(with kind: EventKind) -> EventKind? { insert(kind).inserted ? nil : kind }

    /// The kinds in either set.
    public func union(_ other: KindSet) -> KindSet { var s = self; s.formUnion(other); return s }
    /// The kinds in both sets.
    public func intersection(_ other: KindSet) -> KindSet { var s = self; s.formIntersection(other); return s }
    /// The kinds in exactly one of the sets.
    public func symmetricDifference(_ other: KindSet) -> KindSet { var s = self; s.formSymmetricDifference(other); return s }
    /// Adds the kinds of `other`.
    public mutating func formUnion(_ other: KindSet) { for i in 0..<Words.count { words[i] |= other.words[i] } }
    /// Keeps the kinds also in `other`.
    public mutating func formIntersection(_ other: KindSet) { for i in 0..<Words.count { words[i] &= other.words[i] } }
    /// Keeps the kinds in exactly one of the sets.
    public mutating func formSymmetricDifference(_ other: KindSet) { for i in 0..<Words.count { words[i] ^= other.words[i] } }

    /// Whether no kind is in.
    public var isEmpty: Bool { (0..<Words.count).allSatisfy { words[$0] == 0 } }
    /// How many kinds are in.
    public var count: Int { (0..<Words.count).reduce(0) { $0 + words[$1].nonzeroBitCount } }

    /// The kinds in, in table order.
    public func makeIterator() -> IndexingIterator<[EventKind]> { EventKind.allCases.filter(contains).makeIterator() }

    /// The kinds in, as a `Set`.
    public var asSet: Set<EventKind> { Set(self) }

    /// The names of the kinds in, in table order, separated by commas.
    public var description: String { map(\.rawValue).joined(separator: ", ") }

    public static func == (a: KindSet, b: KindSet) -> Bool { (0..<Words.count).allSatisfy { a.words[$0] == b.words[$0] } }

    public func hash(into hasher: inout Hasher) { for i in 0..<Words.count { hasher.combine(words[i]) } }
}
