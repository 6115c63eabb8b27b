/// How JSON writes a syscall's arguments: the `args` array of name, type and value (as ctrace),
/// Falco's `evt.args` text (`name=value ...`), or both. Either way every argument is there once
/// per form; `vigil trace --json-args` chooses.
public enum JSONArguments: Int, Sendable, CaseIterable {
    /// `"args":[{"name":...,"type":...,"value":...},...]` (the default).
    case array
    /// `"evt.args":"name=value ..."`.
    case string
    /// Both.
    case both

    /// The default: the array.
    public static let standard = JSONArguments.array
}

/// How `EventFormat.appendJSON` writes the events of one kind, worked out once from the field
/// catalogue: the fields the kind carries, in catalogue order, each with its `,"name":` key, then
/// `container.labels`. Runs of fields that depend only on the process (or only on the container)
/// form groups whose rendered bytes are kept with the process's (container's) context, so the
/// events that share that context copy them; the fields an open's payload decides form a group
/// that a `JSONMemo` keeps for the payloads seen last.
struct JSONPlan: @unchecked Sendable { // immutable once made; its memory is never freed
    /// One field: where its key is in `keys`, which field, and whether a group starts here.
    struct Step: Sendable {
        let keyStart: Int
        let keyCount: Int
        /// The field's own JSON writer, or nil to write what `extract` returns.
        let json: JSONValueWriter?
        /// The field's writer from a syscall's payload (used on syscall events), or nil.
        let syscallJSON: SyscallJSONWriter?
        let extract: @Sendable (Event, String?) -> FieldValue?
        /// For the first step of a group: the index past its last step; else 0.
        let groupEnd: Int
        let scope: FieldScope
        /// For the first step of a group: which fields the group has (kinds with the same group
        /// share what is rendered for it).
        let signature: Int
        /// For the first of a run of fields that all require `requires` (and nothing else in
        /// the run): the index past the run, skipped whole when the event lacks it; else 0.
        let skipEnd: Int
        let requires: FieldRequirement
        /// For a run of a syscall event's fields written in one step (`SyscallLineField`): where
        /// the run is in `line`; else both 0.
        let lineStart: Int, lineEnd: Int
    }

    /// One field of a run written in one step: its key in `keys`, and which field.
    struct LineItem: Sendable {
        let keyStart: Int32, keyCount: Int32
        let field: SyscallLineField
    }

    /// The steps and every key of the plan (`,"name":`, one after another, then 8 bytes of
    /// padding: keys are copied eight bytes at a time), in memory allocated once and kept for the
    /// life of the process: using a plan retains nothing.
    let steps: UnsafeBufferPointer<Step>
    let keys: UnsafeBufferPointer<UInt8>
    /// The fields of every run written in one step (`Step.lineStart`).
    let line: UnsafeBufferPointer<LineItem>
    /// What the runs read per event, handed down (no `swift_once` per event).
    let tables: SyscallJSONTables

    /// The plan of each kind, indexed by `EventKind.index`, for each way of writing syscall
    /// arguments (indexed by `JSONArguments.rawValue`).
    static let forStyle: [[JSONPlan]] = {
        var signatures: [[String]: Int] = [:]
        return JSONArguments.allCases.map { style in EventKind.allCases.map { JSONPlan(kind: $0, arguments: style, signatures: &signatures) } }
    }()

    /// The plan of each kind with the default arguments (`JSONArguments.standard`).
    static let forKind: [JSONPlan] = forStyle[JSONArguments.standard.rawValue]

    /// Every plan, those of `JSONArguments` case `a` at `a.rawValue * EventKind.allCases.count`
    /// (`JSONMemo.plans`: a writer's copy, read without a `swift_once` per event).
    nonisolated(unsafe) static let all: UnsafeBufferPointer<JSONPlan> = .immortal(forStyle.flatMap { $0 })

    /// Fields left out of JSON (rules, output templates and `vigil fields` have them): long
    /// texts the same for most processes, that would multiply the bytes of every event.
    static let onRequest: Set<String> = ["thread.cap_effective", "thread.cap_permitted", "thread.cap_inheritable"]

    /// `container.labels`: not a catalogue field (the catalogue has container.label[KEY]); an
    /// object of every label, sorted by key.
    static let labels = FieldDefinition("container.labels", .string, scope: .container, "Every label.", json: { event, out in
        let labels = event.container.labels
        guard !labels.isEmpty else { return false }
        out.append(0x7b)
        for (i, key) in labels.keys.sorted().enumerated() {
            if i > 0 { out.append(0x2c) }
            out.appendJSON(key)
            out.append(0x3a)
            out.appendJSON(labels[key] ?? "")
        }
        out.append(0x7d)
        return true
    }) { _, _ in nil }

    private init(kind: EventKind, arguments: JSONArguments, signatures: inout [[String]: Int]) {
        var fields: [FieldDefinition] = []
        for field in Fields.all where !field.takesArgument && field.applies(to: kind) && !Self.onRequest.contains(field.name) {
            if field.name == "evt.args" && arguments == .array { continue }
            fields.append(field)
        }
        fields.append(Self.labels)
        if kind == .syscall && arguments != .string { fields.append(SyscallFields.argsArray) }
        var keys: [UInt8] = []
        var steps: [Step] = []
        // Runs of event fields with the same requirement: the first one's skipEnd.
        var skipEnds = [Int](repeating: 0, count: fields.count)
        var run = 0
        while run < fields.count {
            var end = run + 1
            if fields[run].scope == .event && fields[run].requires != .nothing {
                while end < fields.count && fields[end].scope == .event && fields[end].requires == fields[run].requires { end += 1 }
                skipEnds[run] = end
            }
            run = end
        }
        // A syscall event's runs of event fields that `SyscallLineField` writes (each with a
        // value on every syscall event): one step each. A run of one too: every field the
        // payload decides is then written from the payload borrowed in place, never copied out.
        var lineEnds = [Int](repeating: 0, count: fields.count)
        if kind == .syscall {
            func inLine(_ i: Int) -> Bool {
                i < fields.count && fields[i].scope == .event && fields[i].requires == .nothing && SyscallLineField(name: fields[i].name) != nil
            }
            var i = 0
            while i < fields.count {
                var end = i
                while inLine(end) { end += 1 }
                if end > i { lineEnds[i] = end }
                i = max(end, i + 1)
            }
        }
        // Steps are made with field indices for their ends, then given step indices.
        var stepOf = [Int](repeating: 0, count: fields.count + 1)
        var line: [LineItem] = []
        func key(_ field: FieldDefinition) -> (start: Int, count: Int) {
            var key = ByteBuffer(capacity: 64)
            key.append(0x2c)
            key.appendJSON(field.name)
            key.append(0x3a)
            let start = keys.count
            keys += key.bytes()
            return (start, key.count)
        }
        var index = 0
        while index < fields.count {
            if lineEnds[index] > 0 {
                for field in index..<lineEnds[index] { stepOf[field] = steps.count }
                let start = line.count
                for field in index..<lineEnds[index] {
                    let (keyStart, keyCount) = key(fields[field])
                    line.append(LineItem(keyStart: Int32(keyStart), keyCount: Int32(keyCount), field: SyscallLineField(name: fields[field].name)!))
                }
                steps.append(Step(keyStart: 0, keyCount: 0, json: nil, syscallJSON: nil, extract: fields[index].extract,
                                  groupEnd: 0, scope: .event, signature: 0, skipEnd: 0, requires: .nothing,
                                  lineStart: start, lineEnd: line.count))
                index = lineEnds[index]
                continue
            }
            let scope = fields[index].scope
            var end = index + 1
            if scope != .event {
                while end < fields.count && fields[end].scope == scope { end += 1 }
            }
            let names = fields[index..<end].map(\.name)
            let signature = signatures[names] ?? signatures.count
            signatures[names] = signature
            for field in index..<end {
                stepOf[field] = steps.count
                let (keyStart, keyCount) = key(fields[field])
                steps.append(Step(keyStart: keyStart, keyCount: keyCount, json: fields[field].json,
                                  syscallJSON: kind == .syscall ? fields[field].syscallJSON : nil, extract: fields[field].extract,
                                  groupEnd: field == index && scope != .event ? end : 0, scope: scope, signature: signature,
                                  skipEnd: skipEnds[field], requires: fields[field].requires, lineStart: 0, lineEnd: 0))
            }
            index = end
        }
        stepOf[fields.count] = steps.count
        steps = steps.map {
            Step(keyStart: $0.keyStart, keyCount: $0.keyCount, json: $0.json, syscallJSON: $0.syscallJSON, extract: $0.extract,
                 groupEnd: $0.groupEnd > 0 ? stepOf[$0.groupEnd] : 0, scope: $0.scope, signature: $0.signature,
                 skipEnd: $0.skipEnd > 0 ? stepOf[$0.skipEnd] : 0, requires: $0.requires, lineStart: $0.lineStart, lineEnd: $0.lineEnd)
        }
        self.steps = .immortal(steps)
        self.keys = .immortal(keys + [UInt8](repeating: 0, count: 8))
        self.line = .immortal(line)
        self.tables = .shared
    }

    /// Writes the object: every field with a leading comma, the first comma then replaced by
    /// the opening brace (so groups rendered once carry their commas and fit anywhere). Open
    /// payload groups are looked up in `memo` when one is given. A syscall event's payload is
    /// taken out of the enum once (each match copies it, ~240 bytes), borrowed for every field
    /// it decides.
    func append(_ event: Event, to out: inout ByteBuffer, memo: JSONMemo?) {
        if event.kind == .syscall, case .syscall(let syscall) = event.payload {
            append(event, syscall, to: &out, memo: memo)
        } else {
            append(event, Self.noSyscall, to: &out, memo: memo) // a plan for its kind writes no payload field
        }
    }

    /// The payload handed for an event of another kind, whose plan has no line and no
    /// `syscallJSON` step.
    private static let noSyscall = Payload.Syscall(index: 0, result: 0, latencyNs: 0, args: .zero)

    /// `append(_:to:memo:)` with the payload of a syscall event (`noSyscall` for another kind).
    private func append(_ event: Event, _ syscall: borrowing Payload.Syscall, to out: inout ByteBuffer, memo: JSONMemo?) {
        let start = out.count
        // Every process group's key, and every open group's: made once per event.
        let processKey = ProcessKey(event)
        let openKey = memo == nil ? nil : OpenKey(event)
        do {
            do {
                var i = 0
                while i < steps.count {
                    let skipEnd = steps[i].skipEnd
                    if skipEnd > 0 && !steps[i].requires.isMet(by: event) {
                        i = skipEnd // none of the run has a value
                        continue
                    }
                    if steps[i].lineEnd > 0 {
                        writeLine(steps[i].lineStart, steps[i].lineEnd, event, syscall, memo?.second, &out)
                        i += 1
                        continue
                    }
                    let groupEnd = steps[i].groupEnd
                    guard groupEnd > 0 else {
                        Self.write(steps.baseAddress! + i, event, syscall, keys, &out)
                        i += 1
                        continue
                    }
                    let signature = steps[i].signature
                    let groupStart = out.count
                    func render() {
                        for j in i..<groupEnd { Self.write(steps.baseAddress! + j, event, syscall, keys, &out) }
                    }
                    switch steps[i].scope {
                    case .process, .container:
                        let scope = steps[i].scope
                        if let key = scope == .process ? processKey : ProcessKey.none {
                            // This writer's memo first (no lock), then what the context keeps
                            // (shared by every writer), then rendering.
                            if memo?.append(signature, event.renderedOwner(scope), key, to: &out) != true {
                                if !event.appendRendered(scope, signature, key: key, to: &out) {
                                    render()
                                    out.withUnsafeBytes {
                                        event.storeRendered(scope, signature, key: key, bytes: UnsafeRawBufferPointer(rebasing: $0[groupStart...]))
                                    }
                                }
                                out.withUnsafeBytes {
                                    memo?.store(signature, event.renderedStorage(scope), key, bytes: UnsafeRawBufferPointer(rebasing: $0[groupStart...]))
                                }
                            }
                        } else {
                            render()
                        }
                    case .open:
                        if let memo, let key = openKey {
                            if !memo.append(signature, key, to: &out) {
                                render()
                                let strings: (path: ByteString, name: ByteString)
                                if event.kind == .open, case .open(let open) = event.payload {
                                    strings = (open.path, open.name)
                                } else {
                                    strings = (event.fd?.name ?? "", "")
                                }
                                out.withUnsafeBytes {
                                    memo.store(signature, key, path: strings.path, name: strings.name,
                                               bytes: UnsafeRawBufferPointer(rebasing: $0[groupStart...]))
                                }
                            }
                        } else {
                            render()
                        }
                    case .event:
                        render()
                    }
                    i = groupEnd
                }
            }
        }
        if out.count > start {
            out.replace(at: start, with: 0x7b)
        } else {
            out.append(0x7b)
        }
        out.append(0x7d)
    }

    /// Writes the fields `line[start..<end]` of a syscall event, each with its key.
    @inline(__always)
    private func writeLine(_ start: Int, _ end: Int, _ event: Event, _ syscall: borrowing Payload.Syscall,
                           _ second: UnsafeMutablePointer<Timestamp.SecondText>?, _ out: inout ByteBuffer) {
        let keyBase = self.keys.baseAddress!
        var k = start
        while k < end {
            let item = line[k]
            out.appendShort(keyBase + Int(item.keyStart), count: Int(item.keyCount))
            item.field.write(event, syscall, tables, second: second, to: &out)
            k += 1
        }
    }

    /// Writes one field (through a pointer: copying a step would retain its closures).
    @inline(__always)
    private static func write(_ step: UnsafePointer<Step>, _ event: Event, _ syscall: borrowing Payload.Syscall,
                              _ keys: UnsafeBufferPointer<UInt8>, _ out: inout ByteBuffer) {
        let mark = out.count
        out.appendShort(keys.baseAddress! + step.pointee.keyStart, count: step.pointee.keyCount)
        let written: Bool
        if let syscallJSON = step.pointee.syscallJSON {
            written = syscallJSON(syscall, &out) // only a syscall plan's steps have one
        } else if let json = step.pointee.json {
            written = json(event, &out)
        } else if let value = step.pointee.extract(event, nil) {
            out.appendJSON(value)
            written = true
        } else {
            written = false
        }
        if !written { out.truncate(to: mark) }
    }
}

/// What decides the fields of `FieldScope.open`: on an open event, the payload's values, its
/// path and name by storage (the decoder shares the storage of a path it has seen), and the pid;
/// on a syscall event, its fd-table entry (`Event.fd`: number, type, device, inode, and its name
/// by storage, which the fd table shares with every event on that fd).
struct OpenKey: Equatable {
    /// Which of the two: the fields of an open and of a syscall's fd are never each other's.
    var isSyscall: Bool
    var pid: UInt32, flags: UInt32, mode: UInt32, dirfd: Int32
    var result: Int64
    var truncated: Bool, killed: Bool, created: Bool, linked: Bool
    var device: UInt64, inode: UInt64
    var path: UnsafeRawPointer?, pathCount: Int
    var name: UnsafeRawPointer?, nameCount: Int

    /// The key of an open event, or of a syscall event with an fd-table entry; nil for other
    /// events (nothing to keep: their open-scoped fields have no value).
    init?(_ event: borrowing Event) {
        // The kind first: matching the payload copies it.
        if event.kind == .open, case .open(let o) = event.payload {
            isSyscall = false
            pid = event.pid; flags = o.flags; mode = o.mode; dirfd = o.dirfd
            result = o.result; truncated = o.truncated; killed = o.killedInKernel
            created = o.created; linked = o.linkedName; device = o.device; inode = o.inode
            (path, pathCount) = o.path.bytes.withUnsafeBytes { (UnsafeRawPointer($0.baseAddress), $0.count) }
            (name, nameCount) = o.name.bytes.withUnsafeBytes { (UnsafeRawPointer($0.baseAddress), $0.count) }
        } else if event.kind == .syscall {
            guard let fd = event.fd else { return nil }
            isSyscall = true
            pid = event.pid; flags = UInt32(fd.type.rawValue); mode = 0; dirfd = 0
            result = Int64(fd.number); truncated = false; killed = false
            created = false; linked = false; device = fd.device; inode = fd.inode
            (path, pathCount) = fd.name.bytes.withUnsafeBytes { (UnsafeRawPointer($0.baseAddress), $0.count) }
            (name, nameCount) = (nil, 0)
        } else {
            return nil
        }
    }
}

/// The JSON of groups of fields rendered recently, kept per writer: the fields an open's payload
/// decides (`fd.*`, `evt.is_open_*`; on a syscall event the fd's), so that a process opening the
/// same file again and again (what floods a tracer) has them copied instead of rendered; and the
/// process and container groups, found here without `RenderedJSON`'s lock and scan. One per
/// thread that formats events (`EventOutput` has one); not thread-safe.
public final class JSONMemo {
    /// Open groups, keyed by the payload's values and its path's and name's storage (which an
    /// entry keeps alive, so that no other string can have that address meanwhile).
    private let opens = RenderedSlots<OpenKey>()
    /// Process and container groups, keyed by the context's storage (`Event.renderedOwner`) and
    /// the `ProcessKey`. An entry keeps the storage alive, so no other storage can have its
    /// address meanwhile, and the context cannot change in place (changing a context that is
    /// not uniquely referenced copies it).
    private let contexts = RenderedSlots<ContextKey>()
    /// The text of the second of the last evt.time written (in memory of its own: written per
    /// event without an exclusivity check).
    let second: UnsafeMutablePointer<Timestamp.SecondText> = {
        let second = UnsafeMutablePointer<Timestamp.SecondText>.allocate(capacity: 1)
        second.initialize(to: Timestamp.SecondText())
        return second
    }()
    /// `JSONPlan.all` and the number of kinds, read per event from here.
    private let plans = JSONPlan.all, kinds = EventKind.allCases.count

    /// The plan of `kind` with `arguments`.
    @inline(__always)
    func plan(_ kind: EventKind, _ arguments: JSONArguments) -> UnsafePointer<JSONPlan> {
        plans.baseAddress! + arguments.rawValue * kinds + kind.index
    }

    private struct ContextKey: Equatable {
        var owner: UnsafeRawPointer
        var process: ProcessKey
    }

    /// An empty memo.
    public init() {}

    deinit { second.deallocate() }

    /// A slot from a hash of a key's words (the group counts: a syscall event has two groups of
    /// fd fields with the same key, which must not take each other's slot).
    private static func slot(_ signature: Int, _ a: UInt64, _ b: UInt64) -> Int {
        var h = a &* 0x9e37_79b9_7f4a_7c15
        h ^= b &+ UInt64(bitPattern: Int64(signature)) << 20
        h = (h ^ (h >> 29)) &* 0xbf58_476d_1ce4_e5b9
        return Int(truncatingIfNeeded: h >> 58) & (RenderedSlots<OpenKey>.count - 1)
    }

    private static func slot(_ signature: Int, _ key: OpenKey) -> Int {
        slot(signature, UInt64(UInt(bitPattern: key.path)), UInt64(bitPattern: key.result) &+ UInt64(key.pid) << 32 &+ UInt64(key.flags))
    }

    private static func slot(_ signature: Int, _ key: ContextKey) -> Int {
        slot(signature, UInt64(UInt(bitPattern: key.owner)), UInt64(key.process.pid) << 32 &+ key.process.comm.0)
    }

    /// Appends the bytes kept for an open group's `key` to `out` and returns true, or returns
    /// false when there are none.
    func append(_ signature: Int, _ key: OpenKey, to out: inout ByteBuffer) -> Bool {
        opens.append(Self.slot(signature, key), signature, key, to: &out)
    }

    /// Keeps a copy of `bytes` for an open group's `key`; `path` and `name` are the strings the
    /// key points to.
    func store(_ signature: Int, _ key: OpenKey, path: ByteString, name: ByteString, bytes: UnsafeRawBufferPointer) {
        opens.store(Self.slot(signature, key), signature, key, keeping: (path, name), bytes: bytes)
    }

    /// Appends the bytes kept for a process or container group of the context whose storage is
    /// `owner` (`Event.renderedOwner`) and returns true, or returns false when there are none.
    func append(_ signature: Int, _ owner: UnsafeRawPointer, _ key: ProcessKey, to out: inout ByteBuffer) -> Bool {
        let key = ContextKey(owner: owner, process: key)
        return contexts.append(Self.slot(signature, key), signature, key, to: &out)
    }

    /// Keeps a copy of `bytes` for a process or container group of the context whose storage is
    /// `owner` (`Event.renderedStorage`), keeping the storage alive.
    func store(_ signature: Int, _ owner: AnyObject, _ key: ProcessKey, bytes: UnsafeRawBufferPointer) {
        let key = ContextKey(owner: UnsafeRawPointer(Unmanaged.passUnretained(owner).toOpaque()), process: key)
        contexts.store(Self.slot(signature, key), signature, key, keeping: owner, bytes: bytes)
    }
}

/// A two-way set-associative table of rendered groups (`JSONMemo`'s): a slot names a pair of
/// entries, either of which may hold a key of that slot, and a store replaces the one stored
/// longer ago; so two groups whose keys hash to one slot (a process's and its container's, by
/// their storage's addresses: about one run in 64 with one entry per slot) do not evict each
/// other on every event. Entries are allocated once and read and written in place (no copy of
/// an entry, no exclusivity check), each owning a copy of its bytes (freed when replaced) and
/// keeping alive what its key points to. A lookup compares plain values and copies bytes,
/// retaining nothing.
private final class RenderedSlots<Key: Equatable> {
    struct Entry {
        var signature = -1
        var key: Key?
        var bytes: UnsafeMutableRawBufferPointer?
        var keptAlive: Any?
        /// When it was stored (`stores` then): the older of a pair is replaced.
        var stored = 0
    }

    static var count: Int { 64 }
    private let entries: UnsafeMutablePointer<Entry>
    /// Stores so far.
    private var stores = 0

    init() {
        entries = .allocate(capacity: Self.count)
        entries.initialize(repeating: Entry(), count: Self.count)
    }

    deinit {
        for i in 0..<Self.count { entries[i].bytes?.deallocate() }
        entries.deinitialize(count: Self.count)
        entries.deallocate()
    }

    /// Appends the bytes kept in `slot`'s pair for `signature` and `key`, and says whether it did.
    @inline(__always)
    func append(_ slot: Int, _ signature: Int, _ key: Key, to out: inout ByteBuffer) -> Bool {
        let pair = entries + (slot & ~1)
        for way in 0..<2 {
            let entry = pair + way
            if entry.pointee.signature == signature, entry.pointee.key == key, let bytes = entry.pointee.bytes {
                out.append(UnsafeRawBufferPointer(bytes))
                return true
            }
        }
        return false
    }

    /// Puts a copy of `bytes` in `slot`'s pair for `signature` and `key` (in place of the entry
    /// stored longer ago), keeping `keeping` alive.
    func store(_ slot: Int, _ signature: Int, _ key: Key, keeping: Any, bytes: UnsafeRawBufferPointer) {
        let pair = entries + (slot & ~1)
        let entry = pair.pointee.stored <= pair[1].stored ? pair : pair + 1
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        copy.copyMemory(from: bytes)
        entry.pointee.bytes?.deallocate()
        stores += 1
        entry.pointee = Entry(signature: signature, key: key, bytes: copy, keptAlive: keeping, stored: stores)
    }
}
