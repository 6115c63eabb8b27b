import VigilEvents

/// The comparison operators of the condition language (Falco's, plus `==` as a synonym of `=`).
enum ComparisonOperator: String, Sendable, CaseIterable {
    case equal = "="
    case notEqual = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
    case contains, icontains, startswith, endswith, glob, iglob, regex
    case `in`, intersects, pmatch
    case exists

    /// Whether the right-hand side is a list: `(a, b, ...)` or a list's name.
    var takesList: Bool { self == .in || self == .intersects || self == .pmatch }
    /// Whether it takes no right-hand side.
    var isUnary: Bool { self == .exists }
    /// Whether it orders values.
    var isOrdering: Bool { self == .less || self == .lessOrEqual || self == .greater || self == .greaterOrEqual }

    /// The word operators (matched as whole words, so `in` never takes the start of `intersects`).
    static let words: [String: ComparisonOperator] = [
        "contains": .contains, "icontains": .icontains, "startswith": .startswith, "endswith": .endswith,
        "glob": .glob, "iglob": .iglob, "regex": .regex, "in": .in, "intersects": .intersects,
        "pmatch": .pmatch, "exists": .exists,
    ]
    /// Falco operators Vigil does not implement, with the reason given in the error.
    static let unsupportedWords: [String: String] = [
        "bcontains": "operator 'bcontains' (hex bytes) is not supported; use contains with \\xHH escapes",
        "bstartswith": "operator 'bstartswith' (hex bytes) is not supported; use startswith with \\xHH escapes",
    ]
    /// Symbolic operators, longest first so `<=` wins over `<`.
    static let symbols: [(String, ComparisonOperator)] = [
        ("==", .equal), ("!=", .notEqual), ("<=", .lessOrEqual), (">=", .greaterOrEqual),
        ("=", .equal), ("<", .less), (">", .greater),
    ]
}

/// The field transformers: `tolower(field)`, `toupper(field)`, `basename(field)`.
enum FieldTransformer: String, Sendable {
    case tolower, toupper, basename

    /// Applies the transformer to one string (ASCII case mapping, as Falco's C `tolower`).
    func apply(_ value: ByteString) -> ByteString {
        switch self {
        case .tolower:
            return ByteString(value.bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 })
        case .toupper:
            return ByteString(value.bytes.map { $0 >= 0x61 && $0 <= 0x7A ? $0 & ~0x20 : $0 })
        case .basename:
            // Falco: everything after the last '/', "" when the path ends with '/'.
            guard let slash = value.bytes.lastIndex(of: UInt8(ascii: "/")) else { return value }
            return ByteString(value.bytes[(slash + 1)...])
        }
    }
}

/// Reads the condition's bytes piece by piece for the parser: blanks, words (keywords,
/// identifiers, field names), operators, and quoted or bare strings. The parser decides what
/// to read next (a value after an operator may be `<` or `and`), so the lexer has no modes,
/// only entry points; every piece carries its byte range for error positions and clause text.
struct ConditionLexer {
    /// The condition and its place in the file, for errors.
    let source: ConditionSource
    private var bytes: [UInt8] { source.bytes }
    /// The next byte to read.
    private(set) var offset = 0

    init(_ source: ConditionSource) { self.source = source }

    /// Whether everything has been read.
    var isAtEnd: Bool { offset >= source.bytes.count }
    /// The next byte, nil at the end.
    var current: UInt8? { offset < source.bytes.count ? source.bytes[offset] : nil }

    static func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0B || b == 0x0C || b == 0x08 }
    static func isLetter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F }
    static func isWordByte(_ b: UInt8) -> Bool { isLetter(b) || (b >= 0x30 && b <= 0x39) }

    /// Skips blanks; returns whether there were any.
    @discardableResult
    mutating func skipBlanks() -> Bool {
        let start = offset
        while let b = current, Self.isBlank(b) { offset += 1 }
        return offset > start
    }

    /// Consumes `byte` when it is next.
    mutating func consume(_ byte: UInt8) -> Bool {
        guard current == byte else { return false }
        offset += 1
        return true
    }

    /// Where a word starting at `start` ends: `[A-Za-z_][A-Za-z0-9_]*` followed by any number of
    /// `.part` with the same shape (a field name such as `k8s.pod.uid`). Nil when none starts there.
    private func wordEnd(from start: Int) -> Int? {
        guard start < bytes.count, Self.isLetter(bytes[start]) else { return nil }
        var i = start + 1
        while i < bytes.count {
            if Self.isWordByte(bytes[i]) {
                i += 1
            } else if bytes[i] == UInt8(ascii: "."), i + 1 < bytes.count, Self.isLetter(bytes[i + 1]) {
                i += 2
            } else {
                break
            }
        }
        return i
    }

    /// The word at the current offset without consuming it.
    func peekWord() -> (text: String, range: Range<Int>)? {
        guard let end = wordEnd(from: offset) else { return nil }
        return (source.text(offset..<end), offset..<end)
    }

    /// Reads a word (identifier, keyword or field name).
    mutating func readWord() -> (text: String, range: Range<Int>)? {
        guard let word = peekWord() else { return nil }
        offset = word.range.upperBound
        return word
    }

    /// Whether the keyword `word` (and, or, not) is next as a whole word.
    func atKeyword(_ word: String) -> Bool {
        guard let next = peekWord() else { return false }
        return next.text == word
    }

    /// Reads a symbolic operator (`=`, `==`, `!=`, `<`, `<=`, `>`, `>=`).
    mutating func readSymbolicOperator() -> (ComparisonOperator, Range<Int>)? {
        for (symbol, op) in ComparisonOperator.symbols {
            let utf8 = Array(symbol.utf8)
            if offset + utf8.count <= bytes.count, Array(bytes[offset..<(offset + utf8.count)]) == utf8 {
                let range = offset..<(offset + utf8.count)
                offset = range.upperBound
                return (op, range)
            }
        }
        return nil
    }

    /// Whether an operator (symbolic or word) starts at the current offset.
    func atOperator() -> Bool {
        var probe = self
        if probe.readSymbolicOperator() != nil { return true }
        guard let word = peekWord() else { return false }
        return ComparisonOperator.words[word.text] != nil || ComparisonOperator.unsupportedWords[word.text] != nil
    }

    /// Reads a single- or double-quoted string, resolving Falco's escapes: `\\`, `\"` (in
    /// double quotes), `\'` (in single quotes), `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\xHH` (a
    /// byte), and Falco's legacy `\ ` (a backslash). Nil when no quote is next.
    mutating func readQuoted() throws(RuleError) -> (bytes: [UInt8], range: Range<Int>)? {
        guard let quote = current, quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") else { return nil }
        let start = offset
        var value: [UInt8] = []
        var i = offset + 1
        while i < bytes.count {
            let b = bytes[i]
            if b == quote {
                offset = i + 1
                return (value, start..<offset)
            }
            guard b == UInt8(ascii: "\\") else {
                value.append(b)
                i += 1
                continue
            }
            guard i + 1 < bytes.count else { break }
            let escaped = bytes[i + 1]
            switch escaped {
            case UInt8(ascii: "b"): value.append(0x08)
            case UInt8(ascii: "f"): value.append(0x0C)
            case UInt8(ascii: "n"): value.append(0x0A)
            case UInt8(ascii: "r"): value.append(0x0D)
            case UInt8(ascii: "t"): value.append(0x09)
            // Falco reads "\ " as a backslash (kept for rules written that way).
            case UInt8(ascii: "\\"), UInt8(ascii: " "): value.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "/"): value.append(UInt8(ascii: "/"))
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                guard escaped == quote else {
                    let other = quote == UInt8(ascii: "\"") ? "double" : "single"
                    throw source.error("invalid escape \\\(Character(Unicode.Scalar(escaped))) in a \(other)-quoted string", at: i)
                }
                value.append(escaped)
            case UInt8(ascii: "x"):
                guard i + 3 < bytes.count, let high = bytes[i + 2].hexDigitValue, let low = bytes[i + 3].hexDigitValue else {
                    throw source.error("invalid escape: \\x needs two hexadecimal digits", at: i)
                }
                let byte = high << 4 | low
                guard byte != 0 else { throw source.error("\\x00 (NUL) is not allowed in a string", at: i) }
                value.append(byte)
                i += 4
                continue
            default:
                throw source.error("unsupported escape sequence \\\(source.text((i + 1)..<min(i + 2, bytes.count)))", at: i)
            }
            i += 2
        }
        throw source.error("unterminated string: missing closing \(quote == UInt8(ascii: "\"") ? "\"" : "'")", at: start)
    }

    /// Reads a bare (unquoted) string as Falco does: any run of bytes other than blanks,
    /// parentheses, quotes, `=` and `,` (so `/etc/shadow`, `sshd`, `<` and `-1` are values).
    mutating func readBare() -> (bytes: [UInt8], range: Range<Int>)? {
        let start = offset
        while let b = current, !Self.isBlank(b), b != UInt8(ascii: "("), b != UInt8(ascii: ")"), b != UInt8(ascii: "\""),
              b != UInt8(ascii: "'"), b != UInt8(ascii: "="), b != UInt8(ascii: ",") {
            offset += 1
        }
        guard offset > start else { return nil }
        return (Array(bytes[start..<offset]), start..<offset)
    }

    /// Reads a field argument after `[`: a quoted string or a run of bytes other than blanks,
    /// brackets and quotes (Falco's rule). Nil when there is none.
    mutating func readFieldArgument() throws(RuleError) -> (bytes: [UInt8], range: Range<Int>)? {
        if let quoted = try readQuoted() { return quoted }
        let start = offset
        while let b = current, !Self.isBlank(b), b != UInt8(ascii: "["), b != UInt8(ascii: "]"), b != UInt8(ascii: "\""),
              b != UInt8(ascii: "'") {
            offset += 1
        }
        guard offset > start else { return nil }
        return (Array(bytes[start..<offset]), start..<offset)
    }

    /// The next token as text, for "unexpected ..." messages: a word, a punctuation byte, a
    /// quoted string or a bare run (at most 40 bytes).
    func describeNext() -> String {
        guard let b = current else { return "end of condition" }
        if let word = peekWord() { return "'\(word.text)'" }
        if b == UInt8(ascii: "(") || b == UInt8(ascii: ")") || b == UInt8(ascii: ",") { return "'\(Character(Unicode.Scalar(b)))'" }
        var probe = self
        if let symbol = probe.readSymbolicOperator() { return "'\(source.text(symbol.1))'" }
        if let quoted = try? probe.readQuoted() { return "string \(source.text(quoted.range))" }
        var end = offset
        while end < bytes.count, end - offset < 40, !Self.isBlank(bytes[end]), bytes[end] != UInt8(ascii: "("),
              bytes[end] != UInt8(ascii: ")") {
            end += 1
        }
        return "'\(source.text(offset..<max(end, offset + 1)))'"
    }
}
