import VigilEvents

/// A rule's output line with %field references resolved to extractors once (Falco's syntax:
/// `%proc.name`, `%proc.aname[2]`, `%container.label[app]`; `%container.info` names the container).
/// A field the event lacks prints `<NA>`, as in Falco, and so does a field Vigil does not have
/// at all (Falco's `%evt.arg.flags`, ...): it never fails the rule, it is listed in `unknownFields`.
public struct OutputTemplate: Sendable {
    enum Piece: Sendable {
        case text(String)
        case field(FieldDefinition, String?)
        case containerInfo
        /// A field the catalogue does not have: always `<NA>`.
        case missing
    }
    let pieces: [Piece]
    /// The template as written.
    public let source: String
    /// The names of the fields it prints.
    public var fieldNames: Set<String> {
        Set(pieces.compactMap { if case .field(let field, _) = $0 { field.name } else { nil } })
    }
    /// The `%fields` the catalogue does not have, in order, each once, with where it is: they
    /// print `<NA>`.
    public let unknownFields: [UnknownField]

    /// A `%field` the catalogue does not have.
    public struct UnknownField: Sendable {
        public let name: String
        public let location: SourceLocation
        /// The closest known name ("did you mean"), worked out when asked: only a warning needs
        /// it, and a template full of unknown names (a hostile file, the fuzzer) would otherwise
        /// pay a distance to every field name for each.
        public var suggestion: String? { closestName(name, in: Fields.names) }
    }

    /// Parses `template`; `location` is where it starts, for errors.
    public init(_ template: String, at location: SourceLocation) {
        source = template
        var unknown: [UnknownField] = []
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
                if !unknown.contains(where: { $0.name == name }) {
                    var at = location
                    at.column += start
                    unknown.append(UnknownField(name: name, location: at))
                }
                pieces.append(.missing)
                continue
            }
            pieces.append(.field(field, argument))
        }
        if !text.isEmpty { pieces.append(.text(text)) }
        self.pieces = pieces
        self.unknownFields = unknown
    }

    /// The output line for `event` (control characters escaped).
    public func render(_ event: Event) -> String {
        var out = ""
        for piece in pieces {
            switch piece {
            case .text(let t): out += t
            case .missing: out += "<NA>"
            case .containerInfo:
                let name = event.container.name.isEmpty ? "<NA>" : ByteString(event.container.name).escapedForTerminal
                out += "container_id=\(ByteString(event.container.id).escapedForTerminal) container_name=\(name)"
            case .field(let field, let argument):
                guard let value = field.extract(event, argument) else { out += "<NA>"; continue }
                switch value {
                case .string(let s): out += s.escapedForTerminal
                case .uint(let v): out += String(v)
                case .int(let v): out += String(v)
                case .bool(let v): out += v ? "true" : "false"
                case .strings(let list): out += "(" + list.map(\.escapedForTerminal).joined(separator: ",") + ")"
                case .uints(let list): out += "(" + list.map(String.init).joined(separator: ",") + ")"
                }
            }
        }
        return out
    }
}
