import VigilEvents

/// A rule's output line with %field references resolved to extractors once (Falco's syntax:
/// `%proc.name`, `%proc.aname[2]`, `%container.label[app]`; `%container.info` names the container).
/// A field the event lacks prints `<NA>`, as in Falco, and so does a field Vigil does not have
/// at all (Falco's `%evt.arg.flags`, ...): it never fails the rule, it is listed in `unknownFields`.
public struct OutputTemplate: Sendable {
    enum Piece: Sendable {
        /// Literal text, as UTF-8.
        case text([UInt8])
        case field(FieldPiece)
        case containerInfo
        /// A field the catalogue does not have: always `<NA>`.
        case missing
    }
    let pieces: [Piece]
    /// The template as written.
    public let source: String
    /// The names of the fields it prints.
    public var fieldNames: Set<String> {
        Set(pieces.compactMap { if case .field(let f) = $0 { f.field.name } else { nil } })
    }
    /// The `%fields` the catalogue does not have, in order, each once, with where it is: they
    /// print `<NA>`.
    public let unknownFields: [UnknownField]
    /// The fields it prints as Falco's `output_fields` keys, each once, in order.
    let outputFields: [OutputField]
    /// The keys `appendFieldsJSON` writes, in order.
    public var outputFieldKeys: [String] { outputFields.map(\.key) }

    /// A `%field` of the template. Classes (here and `OutputField`): a piece is bound once per
    /// alert, one retain for the field and its argument together.
    final class FieldPiece: Sendable {
        let field: FieldDefinition
        let argument: String?
        init(_ field: FieldDefinition, _ argument: String?) { self.field = field; self.argument = argument }
    }

    /// One key of Falco's `output_fields`: `proc.name`, `proc.aname[2]`; `%container.info` is
    /// `container.id` and `container.name`; a name the catalogue does not have (`field` nil)
    /// keeps its key, with the value null.
    final class OutputField: Sendable {
        let key: String
        /// `"key":` as JSON.
        let keyJSON: [UInt8]
        let field: FieldDefinition?
        let argument: String?

        init(key: String, field: FieldDefinition?, argument: String?) {
            self.key = key
            var json = ByteBuffer(capacity: key.utf8.count + 8)
            json.appendJSON(key)
            json.append(UInt8(ascii: ":"))
            keyJSON = json.withUnsafeBytes { Array($0) }
            self.field = field
            self.argument = argument
        }
    }

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
        var fields: [OutputField] = []
        func addField(_ key: String, _ field: FieldDefinition?, _ argument: String?) {
            if !fields.contains(where: { $0.key == key }) { fields.append(OutputField(key: key, field: field, argument: argument)) }
        }
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
            if !text.isEmpty { pieces.append(.text(Array(text.utf8))); text = "" }
            if name == "container.info" {
                pieces.append(.containerInfo)
                for name in ["container.id", "container.name"] { addField(name, Fields.named(name), nil) }
                continue
            }
            let key = argument.map { "\(name)[\($0)]" } ?? name
            guard let field = Fields.named(name) else {
                addField(key, nil, nil)
                if !unknown.contains(where: { $0.name == name }) {
                    var at = location
                    at.column += start
                    unknown.append(UnknownField(name: name, location: at))
                }
                pieces.append(.missing)
                continue
            }
            pieces.append(.field(FieldPiece(field, argument)))
            addField(key, field, argument)
        }
        if !text.isEmpty { pieces.append(.text(Array(text.utf8))) }
        self.pieces = pieces
        self.unknownFields = unknown
        self.outputFields = fields
    }

    /// Appends Falco's `output_fields` object for `event`: `{"key":value,...}` of the fields this
    /// template prints, each once, in order; null for a field the event lacks. Each field is
    /// written by its own JSON writer (no FieldValue made), a syscall's payload taken out once.
    public func appendFieldsJSON(_ event: Event, to out: inout ByteBuffer) {
        event.withSyscallPayload { appendFieldsJSON(event, syscall: $0, to: &out) }
    }

    private func appendFieldsJSON(_ event: Event, syscall: UnsafePointer<Payload.Syscall>?, to out: inout ByteBuffer) {
        out.append(UInt8(ascii: "{"))
        for (index, f) in outputFields.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            f.keyJSON.withUnsafeBytes { out.append($0) }
            let mark = out.count
            if f.field?.appendJSON(event, syscall: syscall, argument: f.argument, to: &out) != true {
                out.truncate(to: mark)
                out.append("null")
            }
        }
        out.append(UInt8(ascii: "}"))
    }

    /// The output line for `event` (control characters escaped), built as bytes: one String at
    /// the end instead of one append per piece.
    public func render(_ event: Event) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        for piece in pieces {
            switch piece {
            case .text(let t): out += t
            case .missing: out += Self.na
            case .containerInfo:
                out += Self.containerID
                ByteString(event.container.id).appendEscapedForTerminal(to: &out)
                out += Self.containerName
                if event.container.name.isEmpty { out += Self.na } else { ByteString(event.container.name).appendEscapedForTerminal(to: &out) }
            case .field(let f):
                guard let value = f.field.extract(event, f.argument) else { out += Self.na; continue }
                switch value {
                case .string(let s): s.appendEscapedForTerminal(to: &out)
                case .uint(let v): Self.appendDecimal(v, negative: false, to: &out)
                case .int(let v): Self.appendDecimal(v.magnitude, negative: v < 0, to: &out)
                case .bool(let v): out += v ? Self.trueText : Self.falseText
                case .strings(let list):
                    out.append(UInt8(ascii: "("))
                    for (i, s) in list.enumerated() {
                        if i > 0 { out.append(UInt8(ascii: ",")) }
                        s.appendEscapedForTerminal(to: &out)
                    }
                    out.append(UInt8(ascii: ")"))
                case .uints(let list):
                    out.append(UInt8(ascii: "("))
                    for (i, v) in list.enumerated() {
                        if i > 0 { out.append(UInt8(ascii: ",")) }
                        Self.appendDecimal(v, negative: false, to: &out)
                    }
                    out.append(UInt8(ascii: ")"))
                }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let na = Array("<NA>".utf8), trueText = Array("true".utf8), falseText = Array("false".utf8)
    private static let containerID = Array("container_id=".utf8), containerName = Array(" container_name=".utf8)

    /// Appends `v` in decimal (after a minus sign when `negative`).
    private static func appendDecimal(_ v: UInt64, negative: Bool, to out: inout [UInt8]) {
        if negative { out.append(UInt8(ascii: "-")) }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0) // 20 digits at most, least significant first
        var n = v, count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[count] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
                count += 1
            } while n > 0
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(d[i]) }
        }
    }
}
