/// A position in a rules file: the file's name, and a 1-based line and column.
public struct SourceLocation: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The file's name or path, as the user gave it.
    public var file: String
    /// The line, from 1.
    public var line: Int
    /// The column, from 1, counted in Unicode scalars.
    public var column: Int

    /// Creates a location.
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `FILE:LINE:COL`.
    public var description: String { "\(file):\(line):\(column)" }
}

/// An error in a rule, macro, list or condition, with the position it concerns.
public struct RuleError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where the problem is.
    public var location: SourceLocation
    /// What is wrong, in one sentence (no location).
    public var message: String
    /// When what is wrong is a field Vigil does not have (in a condition, a macro it uses, an
    /// exception or the output): that field's name. A rule with `skip-if-unknown-filter: true`
    /// is skipped for such an error instead of failing the load.
    public var unknownField: String?

    /// Creates an error.
    public init(location: SourceLocation, message: String, unknownField: String? = nil) {
        self.location = location
        self.message = message
        self.unknownField = unknownField
    }

    /// `FILE:LINE:COL: message`, as compilers print errors.
    public var description: String { "\(location): \(message)" }
}

/// Condition text together with where it starts in its file: turns byte offsets into the
/// file's lines and columns, and slices of the text back into source text.
struct ConditionSource: Sendable {
    /// The text as given.
    let text: String
    /// Its UTF-8 bytes, which the lexer reads.
    let bytes: [UInt8]
    /// Where the text's first character is in its file.
    let start: SourceLocation

    init(_ text: String, at start: SourceLocation) {
        self.text = text
        self.bytes = Array(text.utf8)
        self.start = start
    }

    /// The file position of the byte at `offset` (or of the end of the text): the line advances
    /// by the newlines before it; on the first line the column continues from `start.column`,
    /// on later lines it counts from the last newline.
    func location(at offset: Int) -> SourceLocation {
        let end = min(max(offset, 0), bytes.count)
        var line = start.line
        var lineStart = 0
        for i in 0..<end where bytes[i] == UInt8(ascii: "\n") {
            line += 1
            lineStart = i + 1
        }
        var scalars = 0
        for i in lineStart..<end where bytes[i] & 0xC0 != 0x80 { scalars += 1 }
        let column = lineStart == 0 ? start.column + scalars : scalars + 1
        return SourceLocation(file: start.file, line: line, column: column)
    }

    /// The source text of `range`.
    func text(_ range: Range<Int>) -> String {
        String(decoding: bytes[range.clamped(to: 0..<bytes.count)], as: UTF8.self)
    }

    /// An error at the byte `offset`.
    func error(_ message: String, at offset: Int, unknownField: String? = nil) -> RuleError {
        RuleError(location: location(at: offset), message: message, unknownField: unknownField)
    }
}
