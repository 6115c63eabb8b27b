/// A value of the TOML subset bpfd rule files use, with where it was written.
indirect enum TOMLValue {
    case string(String, SourceLocation)
    case integer(Int64, SourceLocation)
    case bool(Bool, SourceLocation)
    case array([TOMLValue], SourceLocation)
    case table(TOMLTable)

    var location: SourceLocation {
        switch self {
        case .string(_, let l), .integer(_, let l), .bool(_, let l), .array(_, let l): l
        case .table(let t): t.location
        }
    }

    var typeName: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .bool: "a boolean"
        case .array: "an array"
        case .table: "a table"
        }
    }
}

/// A TOML table: keys in the order written, each with its value and the key's location.
struct TOMLTable {
    struct Entry {
        var key: String
        var keyLocation: SourceLocation
        var value: TOMLValue
    }
    var location: SourceLocation
    var entries: [Entry] = []

    subscript(key: String) -> TOMLValue? { entries.first { $0.key == key }?.value }
}

/// Parses the TOML subset of bpfd's rule files: comments, `[a.b]` table headers, `key = value`
/// with basic and literal strings, integers, booleans and (multi-line) arrays. Anything else is
/// an error naming file, line and column.
struct TOMLSubsetParser {
    private let file: String
    private let chars: [Character]
    private var index = 0
    private var line = 1
    private var column = 1
    /// Arrays open around the value being read.
    private var depth = 0
    /// The deepest nesting of arrays accepted: rule files nest two; deeper input (hostile, or
    /// broken) is an error instead of a recursion that could run off the stack.
    static let maximumDepth = 32

    init(text: String, file: String) {
        self.file = file
        self.chars = Array(text)
    }

    static func parse(_ text: String, file: String) throws(RuleError) -> TOMLTable {
        var parser = TOMLSubsetParser(text: text, file: file)
        return try parser.document()
    }

    private var location: SourceLocation { SourceLocation(file: file, line: line, column: column) }
    private var current: Character? { index < chars.count ? chars[index] : nil }

    private mutating func advance() {
        guard let c = current else { return }
        index += 1
        if c == "\n" { line += 1; column = 1 } else { column += 1 }
    }

    private func error(_ message: String, at location: SourceLocation? = nil) -> RuleError {
        RuleError(location: location ?? self.location, message: message)
    }

    /// Skips spaces, tabs and comments; with `newlines`, line ends too.
    private mutating func skipBlank(newlines: Bool) {
        while let c = current {
            if c == " " || c == "\t" || c == "\r" || (newlines && c == "\n") { advance() }
            else if c == "#" { while let d = current, d != "\n" { advance() } }
            else { break }
        }
    }

    private mutating func document() throws(RuleError) -> TOMLTable {
        var root = TOMLTable(location: SourceLocation(file: file, line: 1, column: 1))
        var path: [KeyPart] = []
        while true {
            skipBlank(newlines: true)
            guard let c = current else { break }
            if c == "[" {
                let at = location
                advance()
                if current == "[" { throw error("arrays of tables ([[...]]) are not used by rule files", at: at) }
                path = try dottedKey()
                skipBlank(newlines: false)
                guard current == "]" else { throw error("expected ']' to close the table header") }
                advance()
                try insert(.table(TOMLTable(location: at)), at: path, into: &root, isHeader: true)
            } else {
                let key = try dottedKey()
                skipBlank(newlines: false)
                guard current == "=" else { throw error("expected '=' after key '\(key.map(\.name).joined(separator: "."))'") }
                advance()
                skipBlank(newlines: false)
                let value = try self.value()
                try insert(value, at: path + key, into: &root, isHeader: false)
            }
            skipBlank(newlines: false)
            if let c = current, c != "\n" { throw error("unexpected '\(c)' after the value") }
        }
        return root
    }

    /// One component of a dotted key and where it is written.
    struct KeyPart { var name: String; var location: SourceLocation }

    private mutating func dottedKey() throws(RuleError) -> [KeyPart] {
        var parts: [KeyPart] = []
        repeat {
            if !parts.isEmpty { advance() }
            skipBlank(newlines: false)
            let at = location
            if current == "\"" || current == "'" {
                guard case .string(let s, _) = try value() else { throw error("bad quoted key") }
                parts.append(KeyPart(name: s, location: at))
            } else {
                var key = ""
                while let c = current, c.isLetter || c.isNumber || c == "_" || c == "-" { key.append(c); advance() }
                guard !key.isEmpty else { throw error(current.map { "unexpected '\($0)' where a key was expected" } ?? "a key was expected") }
                parts.append(KeyPart(name: key, location: at))
            }
            skipBlank(newlines: false)
        } while current == "."
        return parts
    }

    private mutating func value() throws(RuleError) -> TOMLValue {
        let at = location
        guard let c = current else { throw error("a value was expected") }
        switch c {
        case "\"":
            advance()
            var s = ""
            while let d = current, d != "\"" {
                if d == "\n" { throw error("newline inside a string", at: location) }
                if d == "\\" {
                    advance()
                    switch current {
                    case "n": s.append("\n")
                    case "t": s.append("\t")
                    case "\\": s.append("\\")
                    case "\"": s.append("\"")
                    case "r": s.append("\r")
                    default: throw error("unsupported escape '\\\(current.map(String.init) ?? "")'")
                    }
                    advance()
                } else { s.append(d); advance() }
            }
            guard current == "\"" else { throw error("unterminated string", at: at) }
            advance()
            return .string(s, at)
        case "'":
            advance()
            var s = ""
            while let d = current, d != "'" {
                if d == "\n" { throw error("newline inside a string", at: location) }
                s.append(d); advance()
            }
            guard current == "'" else { throw error("unterminated string", at: at) }
            advance()
            return .string(s, at)
        case "[":
            guard depth < Self.maximumDepth else { throw error("arrays nested deeper than \(Self.maximumDepth)", at: at) }
            depth += 1
            defer { depth -= 1 }
            advance()
            var items: [TOMLValue] = []
            while true {
                skipBlank(newlines: true)
                if current == "]" { advance(); break }
                items.append(try value())
                skipBlank(newlines: true)
                if current == "," { advance(); continue }
                if current == "]" { advance(); break }
                throw error("expected ',' or ']' in the array")
            }
            return .array(items, at)
        default:
            var word = ""
            while let d = current, d.isLetter || d.isNumber || d == "-" || d == "+" || d == "_" { word.append(d); advance() }
            if word == "true" { return .bool(true, at) }
            if word == "false" { return .bool(false, at) }
            if let n = Int64(word.replacingUnderscores) { return .integer(n, at) }
            throw error(word.isEmpty ? "unexpected '\(c)' where a value was expected" : "unsupported value '\(word)' (strings need quotes)", at: at)
        }
    }

    private func insert(_ value: TOMLValue, at path: [KeyPart], into table: inout TOMLTable, isHeader: Bool) throws(RuleError) {
        guard let part = path.first else { return }
        let first = part.name, keyLocation = part.location
        if let i = table.entries.firstIndex(where: { $0.key == first }) {
            if path.count == 1 {
                if isHeader, case .table = table.entries[i].value { return } // [a] after [a.b]
                throw error("key '\(first)' is defined twice (first at line \(table.entries[i].keyLocation.line))", at: keyLocation)
            }
            guard case .table(var inner) = table.entries[i].value else {
                throw error("'\(first)' is \(table.entries[i].value.typeName), not a table", at: keyLocation)
            }
            try insert(value, at: Array(path.dropFirst()), into: &inner, isHeader: isHeader)
            table.entries[i].value = .table(inner)
        } else if path.count == 1 {
            table.entries.append(TOMLTable.Entry(key: first, keyLocation: keyLocation, value: value))
        } else {
            var inner = TOMLTable(location: keyLocation)
            try insert(value, at: Array(path.dropFirst()), into: &inner, isHeader: isHeader)
            table.entries.append(TOMLTable.Entry(key: first, keyLocation: keyLocation, value: .table(inner)))
        }
    }
}

private extension String {
    var replacingUnderscores: String { filter { $0 != "_" } }
}
