import VigilEvents

/// A rule's output line with %field references resolved to extractors once (Falco's syntax:
/// `%proc.name`, `%proc.aname[2]`, `%container.label[app]`; `%container.info` names the container).
/// A field the event lacks prints `<NA>`, as in Falco.
public struct OutputTemplate: Sendable {
    enum Piece: Sendable {
        case text(String)
        case field(FieldDefinition, String?)
        case containerInfo
    }
    let pieces: [Piece]
    /// The template as written.
    public let source: String

    /// Parses `template`; `location` is where it starts, for errors.
    public init(_ template: String, at location: SourceLocation) throws(RuleError) {
        source = template
        var pieces: [Piece] = []
        var text = ""
        let chars = Array(template)
        var i = 0
        while i < chars.count {
            guard chars[i] == "%", i + 1 < chars.count, chars[i + 1].isLetter else {
                text.append(chars[i]); i += 1; continue
            }
            let start = i
            i += 1
            var name = ""
            while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "." || chars[i] == "_" { name.append(chars[i]); i += 1 }
            while name.hasSuffix(".") { name.removeLast(); i -= 1 }
            var argument: String?
            if i < chars.count, chars[i] == "[", let close = chars[i...].firstIndex(of: "]") {
                argument = String(chars[(i + 1)..<close])
                i = close + 1
            }
            if !text.isEmpty { pieces.append(.text(text)); text = "" }
            if name == "container.info" { pieces.append(.containerInfo); continue }
            guard let field = Fields.named(name) else {
                var at = location
                at.column += start
                let suggestion = Fields.names.min { editDistance($0, name) < editDistance($1, name) }.map { "; did you mean '%\($0)'?" } ?? ""
                throw RuleError(location: at, message: "unknown field '%\(name)' in the output\(suggestion)", unknownField: name)
            }
            pieces.append(.field(field, argument))
        }
        if !text.isEmpty { pieces.append(.text(text)) }
        self.pieces = pieces
    }

    /// The output line for `event` (control characters escaped).
    public func render(_ event: Event) -> String {
        var out = ""
        for piece in pieces {
            switch piece {
            case .text(let t): out += t
            case .containerInfo:
                out += "container_id=\(event.container.id) container_name=\(event.container.name.isEmpty ? "<NA>" : event.container.name)"
            case .field(let field, let argument):
                guard let value = field.extract(event, argument) else { out += "<NA>"; continue }
                switch value {
                case .string(let s): out += s.escapedForTerminal
                case .uint(let v): out += String(v)
                case .int(let v): out += String(v)
                case .bool(let v): out += v ? "true" : "false"
                case .strings(let list): out += "(" + list.map(\.escapedForTerminal).joined(separator: ",") + ")"
                }
            }
        }
        return out
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            let current = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return row[b.count]
}
