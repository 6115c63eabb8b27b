import Foundation
import VigilEvents

/// A set of bytes (256 bits), for glob bracket expressions.
struct GlobByteSet: Sendable, Equatable {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    static func == (a: GlobByteSet, b: GlobByteSet) -> Bool { a.words == b.words }

    mutating func insert(_ byte: UInt8) {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        case 2: words.2 |= bit
        default: words.3 |= bit
        }
    }

    func contains(_ byte: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: return words.0 & bit != 0
        case 1: return words.1 & bit != 0
        case 2: return words.2 & bit != 0
        default: return words.3 & bit != 0
        }
    }
}

@inline(__always) func conditionASCIILower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

/// A shell-style pattern as Falco's `glob` evaluates it (fnmatch(3) with no flags): `*` matches
/// any bytes including `/`, `?` any one byte, `[...]` a set (`!` or `^` negates, ranges, POSIX
/// classes such as `[:digit:]`), and `\` escapes the next byte. Split into elements once.
struct GlobPattern: Sendable {
    enum Element: Sendable {
        case byte(UInt8)
        case anyByte
        case anySequence
        /// Bytes listed or in ranges (folded when case-insensitive), bytes of classes (not folded).
        case set(GlobByteSet, classes: GlobByteSet, negated: Bool)
    }
    let elements: [Element]
    let caseInsensitive: Bool

    /// Whether `pattern` has any glob metacharacter (Falco's test for pmatch components).
    static func hasWildcards(_ pattern: [UInt8]) -> Bool {
        pattern.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") }
    }

    init(_ pattern: [UInt8], caseInsensitive: Bool = false) {
        self.caseInsensitive = caseInsensitive
        var elements: [Element] = []
        var i = 0
        while i < pattern.count {
            let b = pattern[i]
            switch b {
            case UInt8(ascii: "*"):
                if case .anySequence? = elements.last {} else { elements.append(.anySequence) }
                i += 1
            case UInt8(ascii: "?"):
                elements.append(.anyByte)
                i += 1
            case UInt8(ascii: "["):
                if let (set, classes, negated, next) = Self.parseBracket(pattern, from: i, caseInsensitive: caseInsensitive) {
                    elements.append(.set(set, classes: classes, negated: negated))
                    i = next
                } else {
                    elements.append(.byte(caseInsensitive ? conditionASCIILower(b) : b))
                    i += 1
                }
            case UInt8(ascii: "\\"):
                guard i + 1 < pattern.count else {
                    // A pattern ending in a lone backslash matches nothing (glibc).
                    elements.append(.set(GlobByteSet(), classes: GlobByteSet(), negated: false))
                    i += 1
                    continue
                }
                elements.append(.byte(caseInsensitive ? conditionASCIILower(pattern[i + 1]) : pattern[i + 1]))
                i += 2
            default:
                elements.append(.byte(caseInsensitive ? conditionASCIILower(b) : b))
                i += 1
            }
        }
        self.elements = elements
    }

    private static let classes: [String: @Sendable (UInt8) -> Bool] = [
        "alpha": { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) },
        "digit": { $0 >= 0x30 && $0 <= 0x39 },
        "alnum": { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) },
        "upper": { $0 >= 0x41 && $0 <= 0x5A },
        "lower": { $0 >= 0x61 && $0 <= 0x7A },
        "space": { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0D) },
        "blank": { $0 == 0x20 || $0 == 0x09 },
        "punct": { ($0 >= 0x21 && $0 <= 0x2F) || ($0 >= 0x3A && $0 <= 0x40) || ($0 >= 0x5B && $0 <= 0x60) || ($0 >= 0x7B && $0 <= 0x7E) },
        "xdigit": { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x46) || ($0 >= 0x61 && $0 <= 0x66) },
        "cntrl": { $0 < 0x20 || $0 == 0x7F },
        "print": { $0 >= 0x20 && $0 < 0x7F },
        "graph": { $0 > 0x20 && $0 < 0x7F },
    ]

    /// Parses `[...]` at `start`; nil when it is not closed (then `[` is an ordinary byte).
    private static func parseBracket(_ p: [UInt8], from start: Int, caseInsensitive: Bool) -> (GlobByteSet, GlobByteSet, Bool, Int)? {
        var i = start + 1
        var negated = false
        if i < p.count, p[i] == UInt8(ascii: "!") || p[i] == UInt8(ascii: "^") {
            negated = true
            i += 1
        }
        // Case folding as glibc does it: literal bytes and range ends are lowered and tested
        // against the lowered byte; classes are tested against the byte as it is.
        var set = GlobByteSet(), classSet = GlobByteSet()
        func fold(_ b: UInt8) -> UInt8 { caseInsensitive ? conditionASCIILower(b) : b }
        var first = true
        while i < p.count {
            var b = p[i]
            if b == UInt8(ascii: "]"), !first { return (set, classSet, negated, i + 1) }
            first = false
            if b == UInt8(ascii: "["), i + 1 < p.count, p[i + 1] == UInt8(ascii: ":") {
                let nameStart = i + 2
                var j = nameStart
                while j + 1 < p.count, !(p[j] == UInt8(ascii: ":") && p[j + 1] == UInt8(ascii: "]")) { j += 1 }
                if j + 1 < p.count, let test = classes[String(decoding: p[nameStart..<j], as: UTF8.self)] {
                    for c in 0...255 where test(UInt8(c)) { classSet.insert(UInt8(c)) }
                    i = j + 2
                    continue
                }
            }
            if b == UInt8(ascii: "\\"), i + 1 < p.count {
                i += 1
                b = p[i]
            }
            if i + 2 < p.count, p[i + 1] == UInt8(ascii: "-"), p[i + 2] != UInt8(ascii: "]") {
                var high = p[i + 2]
                var next = i + 3
                if high == UInt8(ascii: "\\"), i + 3 < p.count {
                    high = p[i + 3]
                    next = i + 4
                }
                let (low, top) = (fold(b), fold(high))
                if low <= top { for c in low...top { set.insert(c) } }
                i = next
                continue
            }
            set.insert(fold(b))
            i += 1
        }
        return nil
    }

    /// Whether the whole of `bytes[from..<to]` matches.
    func matches(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Bool {
        var p = 0, i = from
        var starElement = -1, starByte = from
        let n = elements.count
        while i < to {
            if p < n {
                let b = caseInsensitive ? conditionASCIILower(bytes[i]) : bytes[i]
                switch elements[p] {
                case .anySequence:
                    starElement = p
                    starByte = i
                    p += 1
                    continue
                case .anyByte:
                    p += 1; i += 1
                    continue
                case .byte(let expected) where expected == b:
                    p += 1; i += 1
                    continue
                case .set(let set, let classes, let negated) where (set.contains(b) || classes.contains(bytes[i])) != negated:
                    p += 1; i += 1
                    continue
                default:
                    break
                }
            }
            guard starElement >= 0 else { return false }
            p = starElement + 1
            starByte += 1
            i = starByte
        }
        while p < n, case .anySequence = elements[p] { p += 1 }
        return p == n
    }

    /// Whether all of `bytes` matches.
    func matches(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool { matches(bytes, from: 0, to: bytes.count) }

    /// Whether all of `bytes` matches.
    func matches(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBufferPointer { matches($0) } }
}

/// Falco's `pmatch`: whether a path equals one of the prefixes or lies below one, compared
/// component by component (empty components ignored, so `/etc/` is `/etc`; `/etc` matches
/// `/etc/passwd` but not `/etcx`). A prefix component with `*`, `?` or `[` is a glob that
/// matches within one component.
struct PathPrefixSet: Sendable {
    enum Component: Sendable {
        case literal([UInt8])
        case glob(GlobPattern)

        func matches(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Bool {
            switch self {
            case .literal(let expected):
                guard to - from == expected.count else { return false }
                var k = 0
                while k < expected.count {
                    if bytes[from + k] != expected[k] { return false }
                    k += 1
                }
                return true
            case .glob(let pattern):
                return pattern.matches(bytes, from: from, to: to)
            }
        }
    }
    let prefixes: [[Component]]

    init(_ items: [[UInt8]]) {
        prefixes = items.map { item in
            item.split(separator: UInt8(ascii: "/")).map { part in
                let bytes = Array(part)
                return GlobPattern.hasWildcards(bytes) ? .glob(GlobPattern(bytes)) : .literal(bytes)
            }
        }
    }

    /// Whether `path` equals or lies below one of the prefixes.
    func matches(_ path: [UInt8]) -> Bool { path.withUnsafeBufferPointer { matches($0) } }

    /// Whether `path` equals or lies below one of the prefixes.
    func matches(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
        let slash = UInt8(ascii: "/")
        for prefix in prefixes {
            var matched = 0
            var position = 0
            var failed = false
            while matched < prefix.count {
                while position < path.count, path[position] == slash { position += 1 }
                guard position < path.count else { break }
                let start = position
                while position < path.count, path[position] != slash { position += 1 }
                guard prefix[matched].matches(path, from: start, to: position) else {
                    failed = true
                    break
                }
                matched += 1
            }
            if !failed, matched == prefix.count { return true }
        }
        return false
    }
}

/// A regular expression compiled once, matched against the whole value (Falco's `regex` is a
/// full match). `NSRegularExpression` is immutable and documented as safe to share between
/// threads, hence the unchecked conformance.
struct CompiledRegex: @unchecked Sendable {
    let pattern: String
    private let expression: NSRegularExpression

    /// Compiles `pattern`; the error text says what is wrong with it.
    init(_ pattern: String) throws(RegexCompileError) {
        do {
            _ = try NSRegularExpression(pattern: pattern)
            expression = try NSRegularExpression(pattern: "\\A(?:" + pattern + ")\\z")
        } catch {
            // NSRegularExpression's own message is generic ("The value is invalid."); Swift's
            // regex parser says what and where, for the common syntax both share.
            var detail = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            if #available(macOS 13, *) {
                do { _ = try Regex(pattern) } catch { detail = String(describing: error) }
            }
            throw RegexCompileError(message: detail)
        }
        self.pattern = pattern
    }

    /// Whether all of `value` matches (invalid UTF-8 replaced by U+FFFD first, as Falco does).
    func matches(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        let text = String(decoding: value, as: UTF8.self)
        return expression.firstMatch(in: text, options: [], range: NSRange(location: 0, length: text.utf16.count)) != nil
    }
}

/// Why a regular expression does not compile.
struct RegexCompileError: Error {
    let message: String
}

/// A set of byte strings for `in`/`intersects`, looked up with the value's bytes in place (no
/// copy, no allocation): an open-addressing table over the members' bytes laid end to end,
/// hashed eight bytes at a time. A value whose length no member has is rejected before hashing.
/// The table never changes after `init`, so a lookup's probe sequence is bounded by the members,
/// whatever the input.
struct ByteStringSet: Sendable {
    /// The members' bytes, one after the other.
    private let storage: [UInt8]
    /// Where each member's bytes lie in `storage`.
    private let bounds: [Range<Int>]
    /// Member index + 1 per slot (0: empty); the count is a power of two.
    private let table: [Int32]
    /// Bit n set when a member is n bytes long (n < 63); bit 63 for every longer member.
    private let lengths: UInt64
    /// How many distinct members.
    var count: Int { bounds.count }

    init(_ values: some Sequence<[UInt8]>) {
        var storage: [UInt8] = [], bounds: [Range<Int>] = [], lengths: UInt64 = 0
        var seen = Set<[UInt8]>()
        for value in values where seen.insert(value).inserted {
            bounds.append(storage.count..<(storage.count + value.count))
            storage += value
            lengths |= Self.lengthBit(value.count)
        }
        var size = 4
        while size < bounds.count * 2 { size <<= 1 }
        var table = [Int32](repeating: 0, count: size)
        storage.withUnsafeBufferPointer { all in
            for (index, range) in bounds.enumerated() {
                var slot = Int(truncatingIfNeeded: Self.hash(UnsafeBufferPointer(rebasing: all[range]))) & (size - 1)
                while table[slot] != 0 { slot = (slot + 1) & (size - 1) }
                table[slot] = Int32(index + 1)
            }
        }
        self.storage = storage
        self.bounds = bounds
        self.table = table
        self.lengths = lengths
    }

    @inline(__always) private static func lengthBit(_ count: Int) -> UInt64 { 1 << UInt64(min(count, 63)) }

    /// A 64-bit hash of `bytes`: eight bytes at a time, then the tail, each mixed by a multiply.
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let n = bytes.count
        var h = 0x9E37_79B9_7F4A_7C15 &* UInt64(n &+ 1)
        guard let base = bytes.baseAddress else { return h }
        let raw = UnsafeRawPointer(base)
        var i = 0
        while i &+ 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i &+= 8
        }
        var tail: UInt64 = 0, shift: UInt64 = 0
        while i < n {
            tail |= UInt64(base[i]) << shift
            shift &+= 8
            i &+= 1
        }
        h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        return h ^ (h >> 29)
    }

    /// Whether `value` is a member.
    func contains(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        guard lengths & Self.lengthBit(value.count) != 0 else { return false }
        return table.withUnsafeBufferPointer { table in
            storage.withUnsafeBufferPointer { storage in
                let mask = table.count - 1
                var slot = Int(truncatingIfNeeded: Self.hash(value)) & mask
                while true {
                    let entry = Int(table[slot])
                    if entry == 0 { return false }
                    let range = bounds[entry - 1]
                    if range.count == value.count, bytesEqual(UnsafeBufferPointer(rebasing: storage[range]), value) { return true }
                    slot = (slot + 1) & mask
                }
            }
        }
    }

    /// Whether `value` is a member.
    func contains(_ value: ByteString) -> Bool { value.bytes.withUnsafeBufferPointer { contains($0) } }
}

/// Whether two byte buffers of the same length hold the same bytes.
@inline(__always) func bytesEqual(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    guard a.count > 0, let pa = a.baseAddress, let pb = b.baseAddress else { return true }
    return memcmp(pa, pb, a.count) == 0
}

/// Tests one string value.
enum ConditionStringTest: Sendable {
    case equal(ByteString)
    case notEqual(ByteString)
    case ordered(ComparisonOperator, ByteString)
    case oneOf(ByteStringSet)
    case contains([UInt8])
    /// The needle is lowercased already.
    case containsIgnoringCase([UInt8])
    case startsWith([UInt8])
    case endsWith([UInt8])
    case glob(GlobPattern)
    case pathPrefix(PathPrefixSet)
    case regex(CompiledRegex)

    /// Whether `value` passes.
    func matches(_ value: ByteString) -> Bool { value.bytes.withUnsafeBufferPointer { matches($0) } }

    /// Whether the bytes `value` pass (compared in place).
    func matches(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        switch self {
        case .equal(let expected): return expected.bytes.withUnsafeBufferPointer { bytesEqual($0, value) }
        case .notEqual(let expected): return !expected.bytes.withUnsafeBufferPointer { bytesEqual($0, value) }
        case .ordered(let op, let bound):
            return bound.bytes.withUnsafeBufferPointer { bound in
                switch op {
                case .less: return value.lexicographicallyPrecedes(bound)
                case .lessOrEqual: return !bound.lexicographicallyPrecedes(value)
                case .greater: return bound.lexicographicallyPrecedes(value)
                default: return !value.lexicographicallyPrecedes(bound)
                }
            }
        case .oneOf(let set): return set.contains(value)
        case .contains(let needle): return needle.withUnsafeBufferPointer { Self.find($0, in: value, ignoringCase: false) }
        case .containsIgnoringCase(let needle): return needle.withUnsafeBufferPointer { Self.find($0, in: value, ignoringCase: true) }
        case .startsWith(let prefix):
            return value.count >= prefix.count
                && prefix.withUnsafeBufferPointer { bytesEqual($0, UnsafeBufferPointer(rebasing: value[..<$0.count])) }
        case .endsWith(let suffix):
            return value.count >= suffix.count
                && suffix.withUnsafeBufferPointer { bytesEqual($0, UnsafeBufferPointer(rebasing: value[(value.count - $0.count)...])) }
        case .glob(let pattern): return pattern.matches(value)
        case .pathPrefix(let prefixes): return prefixes.matches(value)
        case .regex(let regex): return regex.matches(value)
        }
    }

    /// Substring search on bytes (ASCII case folded when asked; the needle is folded already).
    private static func find(_ needle: UnsafeBufferPointer<UInt8>, in haystack: UnsafeBufferPointer<UInt8>, ignoringCase: Bool) -> Bool {
        if needle.isEmpty { return true }
        guard haystack.count >= needle.count else { return false }
        let first = needle[0]
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            let b = ignoringCase ? conditionASCIILower(haystack[i]) : haystack[i]
            if b == first {
                var k = 1
                while k < needle.count {
                    let c = ignoringCase ? conditionASCIILower(haystack[i + k]) : haystack[i + k]
                    if c != needle[k] { break }
                    k += 1
                }
                if k == needle.count { return true }
            }
            i += 1
        }
        return false
    }
}

/// Tests one number.
enum ConditionNumberTest<Value: FixedWidthInteger & Sendable>: Sendable {
    case compare(ComparisonOperator, Value)
    case oneOf(Set<Value>)

    func matches(_ value: Value) -> Bool {
        switch self {
        case .compare(let op, let bound):
            switch op {
            case .equal: return value == bound
            case .notEqual: return value != bound
            case .less: return value < bound
            case .lessOrEqual: return value <= bound
            case .greater: return value > bound
            default: return value >= bound
            }
        case .oneOf(let set): return set.contains(value)
        }
    }

    /// For a field with several values (fd.port: either end's): `!=` when none equals the
    /// bound, any other test when one of them matches.
    func matches(any values: [Value]) -> Bool {
        if case .compare(.notEqual, let bound) = self { return !values.contains(bound) }
        return values.contains { matches($0) }
    }
}

/// Tests a list field's elements (Falco's list semantics).
enum ConditionListTest: Sendable {
    /// `in`: every element is in the set (true for an empty list, as in Falco).
    case allIn(ByteStringSet)
    /// `intersects`: some element is in the set.
    case anyIn(ByteStringSet)
    /// `contains` (a Vigil extension; Falco has no `contains` on lists): some element equals it.
    case containsElement(ByteString)

    func matches(_ list: [ByteString]) -> Bool {
        switch self {
        case .allIn(let set): return list.allSatisfy { set.contains($0) }
        case .anyIn(let set): return list.contains { set.contains($0) }
        case .containsElement(let element): return list.contains(element)
        }
    }
}

/// Tests a field value of any type; a value of another type than expected never matches.
enum ConditionValueTest: Sendable {
    case exists
    case string(ConditionStringTest)
    case unsigned(ConditionNumberTest<UInt64>)
    case signed(ConditionNumberTest<Int64>)
    case boolean(ConditionNumberTest<UInt8>)
    case list(ConditionListTest)
    case network(ConditionNetworkTest)

    func matches(_ value: FieldValue) -> Bool {
        switch (self, value) {
        case (.network(let test), .string(let s)): return test.matches(s)
        case (.network(let test), .strings(let list)): return test.matches(list)
        case (.exists, _): return true
        case (.string(let test), .string(let s)): return test.matches(s)
        case (.unsigned(let test), .uint(let v)): return test.matches(v)
        case (.unsigned(let test), .uints(let list)): return test.matches(any: list)
        case (.signed(let test), .int(let v)): return test.matches(v)
        case (.boolean(let test), .bool(let v)): return test.matches(v ? 1 : 0)
        case (.list(let test), .strings(let list)): return test.matches(list)
        default: return false
        }
    }

    /// Whether `value` matches as a string (for ancestor names).
    func matches(string value: ByteString) -> Bool {
        switch self {
        case .exists: return true
        case .string(let test): return test.matches(value)
        default: return false
        }
    }
}

/// An IP address or network test (fields of type ipaddr and ipnet): whether the field's address
/// lies in any of the networks (an address written alone is a network of one), negated for `!=`.
struct ConditionNetworkTest: Sendable {
    let networks: [IPNetwork]
    let negated: Bool

    /// Whether the address text `value` passes (text that is no address never lies in a network).
    func matches(_ value: ByteString) -> Bool {
        guard let address = IPAddress(String(decoding: value.bytes, as: UTF8.self)) else { return negated }
        return networks.contains { $0.contains(address) } != negated
    }

    /// Whether any address of `list` lies in a network (`!=`: none does).
    func matches(_ list: [ByteString]) -> Bool {
        let any = list.contains { value in
            IPAddress(String(decoding: value.bytes, as: UTF8.self)).map { a in networks.contains { $0.contains(a) } } ?? false
        }
        return any != negated
    }
}
