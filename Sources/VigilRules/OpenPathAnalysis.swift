import VigilEvents

/// Classes of opens, as the file sensor's path pushdown tells them apart: every open is in
/// exactly one, by its access mode (`flags & O_ACCMODE`: read-only, write-only, read-write, and 3,
/// which the rules treat as read-write) and its result: failed, succeeded, or succeeded and created
/// the file (FMODE_CREATED, evt.is_open_create). Bit `mode + 4 * failed + 8 * created`, the
/// kernel's `VIGIL_OPEN_CLASS`.
public struct OpenClasses: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    /// Classes from their bits.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The class of an open with `flags` that failed or not, and created its file or not.
    public static func of(flags: UInt32, failed: Bool, created: Bool = false) -> OpenClasses {
        OpenClasses(rawValue: 1 << UInt16((flags & 3) + (failed ? 4 : created ? 8 : 0)))
    }
    /// Every open.
    public static let all = OpenClasses(rawValue: 0x0fff)
    /// Opens that returned a file descriptor.
    public static let succeeded = OpenClasses(rawValue: 0x0f0f)
    /// Opens that failed.
    public static let failed = OpenClasses(rawValue: 0x00f0)
    /// Opens that created their file (evt.is_open_create: O_CREAT found no file).
    public static let created = OpenClasses(rawValue: 0x0f00)
    /// Opens for reading (evt.is_open_read: O_RDONLY, O_RDWR, and mode 3).
    public static let reading = OpenClasses(rawValue: 0x0ddd)
    /// Opens for writing (evt.is_open_write: O_WRONLY, O_RDWR, and mode 3).
    public static let writing = OpenClasses(rawValue: 0x0eee)

    /// `any open`, `opens for reading`, `successful opens for writing`, ... for summaries.
    public var summary: String {
        if self == .all { return "any open" }
        if isEmpty { return "no open" }
        let modes = (rawValue | rawValue >> 4 | rawValue >> 8) & 0x0f
        let access = switch modes {
        case 0x0f: "opens"
        case 0x0d: "opens for reading"
        case 0x0e: "opens for writing"
        default: "opens of access modes " + (0..<4).filter { modes & (1 << $0) != 0 }.map(String.init).joined(separator: ",")
        }
        if isSubset(of: .created) { return access + " that created the file" }
        if isSubset(of: OpenClasses.succeeded.subtracting(.created)) { return "successful " + access + " that created no file" }
        if isSubset(of: .succeeded) { return "successful " + access }
        if isSubset(of: .failed) { return "failed " + access }
        return access
    }
}

/// What every open a condition can match satisfies (a necessary condition, used to drop opens in
/// the kernel): its class is in `any`, or its path is one of `exact`, starts with one of
/// `prefixes`, or its last component is one of `basenames`, with the entry's classes. Paths are
/// bytes of fd.name (absolute, `.`/`..` folded).
struct OpenPathConstraint: Equatable, Sendable {
    var any: OpenClasses = []
    var exact: [[UInt8]: OpenClasses] = [:]
    var prefixes: [[UInt8]: OpenClasses] = [:]
    var basenames: [[UInt8]: OpenClasses] = [:]

    /// No open matches.
    static let never = OpenPathConstraint()
    /// Any open may match.
    static let anything = OpenPathConstraint(any: .all)

    var hasPaths: Bool { !exact.isEmpty || !prefixes.isEmpty || !basenames.isEmpty }

    /// Every class this constraint keeps for some path.
    var entryClasses: OpenClasses {
        var c: OpenClasses = []
        for (_, v) in exact { c.formUnion(v) }
        for (_, v) in prefixes { c.formUnion(v) }
        for (_, v) in basenames { c.formUnion(v) }
        return c
    }

    /// Only opens of `classes`.
    func masked(_ classes: OpenClasses) -> OpenPathConstraint {
        func mask(_ d: [[UInt8]: OpenClasses]) -> [[UInt8]: OpenClasses] {
            d.compactMapValues { v in let m = v.intersection(classes); return m.isEmpty ? nil : m }
        }
        return OpenPathConstraint(any: any.intersection(classes), exact: mask(exact), prefixes: mask(prefixes), basenames: mask(basenames)).normalized()
    }

    /// Opens either constraint keeps.
    func union(_ other: OpenPathConstraint) -> OpenPathConstraint {
        OpenPathConstraint(any: any.union(other.any), exact: exact.merging(other.exact) { $0.union($1) },
                           prefixes: prefixes.merging(other.prefixes) { $0.union($1) },
                           basenames: basenames.merging(other.basenames) { $0.union($1) }).normalized()
    }

    /// A superset of the opens both keep. Classes intersect exactly (an open has one class); two
    /// sets of paths are approximated by the narrower one.
    func intersection(_ other: OpenPathConstraint) -> OpenPathConstraint {
        let (kept, dropped) = breadth <= other.breadth ? (self, other) : (other, self)
        var result = OpenPathConstraint(any: any.intersection(other.any))
        // Paths of one side and any path of the other; then the kept side's paths with any class
        // the other side allows at all.
        result = result.union(other.masked(any).clearingAny).union(self.masked(other.any).clearingAny)
        guard hasPaths && other.hasPaths else { return result }
        return result.union(kept.masked(dropped.any.union(dropped.entryClasses)).clearingAny)
    }

    /// The same paths, without the classes kept for any path.
    var clearingAny: OpenPathConstraint { var c = self; c.any = []; return c }

    /// How much a side's paths let through, to choose the narrower side of an `and`: a short
    /// prefix is widest, then prefixes, basenames and exact paths by count.
    private var breadth: (Int, Int, Int, Int) {
        (prefixes.keys.contains { $0.count <= 1 } ? 1 : 0, prefixes.count, basenames.count, exact.count)
    }

    /// Entries whose classes `any` already keeps are dropped.
    func normalized() -> OpenPathConstraint {
        var c = self
        func prune(_ d: [[UInt8]: OpenClasses]) -> [[UInt8]: OpenClasses] {
            d.compactMapValues { v in let m = v.subtracting(any); return m.isEmpty ? nil : m }
        }
        c.exact = prune(exact)
        c.prefixes = prune(prefixes)
        c.basenames = prune(basenames)
        return c
    }
}

/// The necessary-condition analysis of conditions over open events (`OpenPathConstraint`), and
/// the exact one for `kernel_kill` rules.
enum OpenPathAnalysis {
    /// What every open `node` can match satisfies.
    static func constraint(_ node: PlanNode) -> OpenPathConstraint {
        switch node {
        case .constant(let value, _):
            return value ? .anything : .never
        case .test(let test):
            return leaf(test) ?? .anything
        case .not(let child, _):
            if case .test(let test) = child, let classes = classTest(test) {
                return OpenPathConstraint(any: OpenClasses.all.subtracting(classes))
            }
            return .anything
        case .and(let children, _):
            return children.reduce(OpenPathConstraint.anything) { $0.intersection(constraint($1)) }
        case .or(let children, _):
            return children.reduce(OpenPathConstraint.never) { $0.union(constraint($1)) }
        }
    }

    /// A comparison's constraint on opens; nil when it constrains nothing.
    private static func leaf(_ test: PlanTest) -> OpenPathConstraint? {
        // False for every open (a field opens lack, evt.type = execve, ...).
        guard test.kindSets.whenTrue.contains(.open) else { return .never }
        if let classes = classTest(test) { return OpenPathConstraint(any: classes) }
        guard let paths = pathTest(test, exactOnly: false) else { return nil }
        return paths
    }

    /// The classes a comparison on evt.is_open_read, evt.is_open_write, evt.is_open_create, fd.num
    /// or evt.res keeps (exactly); nil for other comparisons.
    static func classTest(_ test: PlanTest) -> OpenClasses? {
        guard let p = test.predicate else { return nil }
        let values = p.values
        switch p.field {
        case "evt.is_open_read", "evt.is_open_write", "evt.is_open_create":
            let whenTrue: OpenClasses = switch p.field {
            case "evt.is_open_read": .reading
            case "evt.is_open_write": .writing
            default: .created
            }
            func classes(for value: String) -> OpenClasses? {
                switch value {
                case "true": whenTrue
                case "false": OpenClasses.all.subtracting(whenTrue)
                default: nil
                }
            }
            switch p.op {
            case "=", "in", "intersects":
                var c: OpenClasses = []
                for v in values { guard let x = classes(for: v) else { return nil }; c.formUnion(x) }
                return c
            case "!=":
                guard let v = values.first, let x = classes(for: v) else { return nil }
                return OpenClasses.all.subtracting(x)
            default: return nil
            }
        case "fd.num":
            // fd.num is the descriptor (>= 0) after a success, -1 after a failure.
            guard let bound = values.first.flatMap({ Int64($0) }) else { return nil }
            func holds(_ n: Int64) -> Bool {
                switch p.op {
                case "=": n == bound
                case "!=": n != bound
                case "<": n < bound
                case "<=": n <= bound
                case ">": n > bound
                case ">=": n >= bound
                default: true
                }
            }
            if p.op == "in" || p.op == "intersects" {
                let numbers = values.compactMap { Int64($0) }
                return (numbers.contains { $0 >= 0 } ? OpenClasses.succeeded : []).union(numbers.contains(-1) ? .failed : [])
            }
            guard ["=", "!=", "<", "<=", ">", ">="].contains(p.op) else { return nil }
            // Some n >= 0 satisfies it unless it bounds n below 0 or pins it to a negative value.
            let success: Bool = switch p.op {
            case "<": bound > 0
            case "<=", "=": bound >= 0
            default: true
            }
            return (success ? OpenClasses.succeeded : []).union(holds(-1) ? .failed : [])
        case "evt.res":
            func classes(for value: String) -> OpenClasses { value == "SUCCESS" ? .succeeded : .failed }
            switch p.op {
            case "=", "in", "intersects":
                return values.reduce(OpenClasses()) { $0.union(classes(for: $1)) }
            case "!=":
                return values.first == "SUCCESS" ? .failed : .all
            default: return nil
            }
        default:
            return nil
        }
    }

    /// A comparison on fd.name, fd.directory or fd.filename as paths. With `exactOnly`, only
    /// comparisons whose result the kernel's lookups decide exactly, else nil.
    static func pathTest(_ test: PlanTest, exactOnly: Bool) -> OpenPathConstraint? {
        guard let p = test.predicate else { return nil }
        let values = p.values.map { Array($0.utf8) }
        var c = OpenPathConstraint()
        switch (p.field, p.op) {
        case ("fd.name", "="), ("fd.name", "in"):
            for v in values { c.exact[v] = .all }
        case ("fd.name", "startswith"), ("fd.directory", "startswith"):
            // A directory is a prefix of the name: the name starts with whatever it starts with.
            if exactOnly && p.field == "fd.directory" { return nil }
            for v in values { c.prefixes[v] = .all }
        case ("fd.name", "pmatch"):
            for v in values {
                guard let (path, exact) = pmatchPrefix(v) else { return exactOnly ? nil : .anything }
                if exactOnly && !exact { return nil }
                if exact { c.exact[path] = .all }
                c.prefixes[path == [0x2f] ? path : path + [0x2f]] = .all
            }
        case ("fd.directory", "pmatch"):
            for v in values {
                guard let (path, exact) = pmatchPrefix(v) else { return exactOnly ? nil : .anything }
                if exactOnly && !exact { return nil }
                c.prefixes[path == [0x2f] ? path : path + [0x2f]] = .all
            }
        case ("fd.directory", "="), ("fd.directory", "in"):
            // The directory d holds the name: it starts with d/ (no further slash: not exact).
            if exactOnly { return nil }
            for v in values { c.prefixes[v == [0x2f] ? v : v + [0x2f]] = .all }
        case ("fd.filename", "="), ("fd.filename", "in"):
            for v in values { c.basenames[v] = .all }
        case ("fd.name", "glob"), ("fd.directory", "glob"):
            if exactOnly { return nil }
            for v in values {
                let literal = v.prefix { !GlobPattern.hasWildcards([$0]) && $0 != UInt8(ascii: "\\") }
                if literal.isEmpty { return .anything }
                c.prefixes[Array(literal)] = .all
            }
        default:
            return nil
        }
        // An empty prefix is every name.
        if c.prefixes.keys.contains(where: \.isEmpty) { return exactOnly ? nil : .anything }
        return c
    }

    /// A literal pmatch prefix as a path in normal form (`/a/b`), and whether it is exact (no
    /// wildcard component); nil when a component before the first wildcard is missing (the
    /// prefix starts with a wildcard or is `/`, which matches every path). Components after a
    /// wildcard are dropped (the result is then only a prefix, not exact).
    static func pmatchPrefix(_ value: [UInt8]) -> ([UInt8], Bool)? {
        var path: [UInt8] = []
        var exact = true
        for part in value.split(separator: 0x2f) {
            if GlobPattern.hasWildcards(Array(part)) { exact = false; break }
            path += [0x2f] + part
        }
        guard !path.isEmpty else { return nil }
        return (path, exact)
    }
}
