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
    /// exception or the output): that field's name. A rule is skipped for such an error instead
    /// of failing the load (`RuleSet.skipped`).
    public var unknownField: String?
    /// The macros the problem is inside, outermost first (empty: in the rule's own text).
    public var macroPath: [String] = []
    /// Further errors found in the same load (`vigil rules validate` reports every error of
    /// every file, not only the first).
    public var more: [RuleError] = []

    /// Creates an error.
    public init(location: SourceLocation, message: String, unknownField: String? = nil) {
        self.location = location
        self.message = message
        self.unknownField = unknownField
    }

    /// This error and every further one, each alone.
    public var all: [RuleError] {
        var first = self
        first.more = []
        return [first] + more.flatMap(\.all)
    }

    /// The errors of `errors` as one (the first, with the others in `more`); nil when empty.
    public static func combined(_ errors: [RuleError]) -> RuleError? {
        let flat = errors.flatMap(\.all)
        guard var first = flat.first else { return nil }
        first.more = Array(flat.dropFirst())
        return first
    }

    /// `FILE:LINE:COL: message`, as compilers print errors; one line per error.
    public var description: String {
        all.map { "\($0.location): \($0.message)" }.joined(separator: "\n")
    }
}

/// A part of a condition's text that comes from its own place in a file: a macro appended to
/// in another file, an exception. `offset` is in UTF-8 bytes from the start of the joined text.
struct SourceSegment: Sendable, Equatable {
    var offset: Int
    var start: SourceLocation
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
    /// Where each part of a joined text comes from, by offset (the first at 0 is `start`).
    let segments: [SourceSegment]

    init(_ text: String, at start: SourceLocation) {
        self.init(text, segments: [SourceSegment(offset: 0, start: start)])
    }

    /// A text joined from parts written in different places (`segments`, by offset).
    init(_ text: String, segments: [SourceSegment]) {
        self.text = text
        self.bytes = Array(text.utf8)
        let sorted = segments.sorted { $0.offset < $1.offset }
        self.segments = sorted.isEmpty ? [SourceSegment(offset: 0, start: SourceLocation(file: "", line: 1, column: 1))] : sorted
        self.start = self.segments[0].start
    }

    /// The file position of the byte at `offset` (or of the end of the text), in the part it
    /// belongs to: the line advances by the newlines before it; on the part's first line the
    /// column continues from the part's start column, on later lines it counts from the last newline.
    func location(at offset: Int) -> SourceLocation {
        let end = min(max(offset, 0), bytes.count)
        let segment = segments.last { $0.offset <= end } ?? segments[0]
        let from = min(segment.offset, end)
        var line = segment.start.line
        var lineStart = from
        for i in from..<end where bytes[i] == UInt8(ascii: "\n") {
            line += 1
            lineStart = i + 1
        }
        var scalars = 0
        for i in lineStart..<end where bytes[i] & 0xC0 != 0x80 { scalars += 1 }
        let column = lineStart == from ? segment.start.column + scalars : scalars + 1
        return SourceLocation(file: segment.start.file, line: line, column: column)
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
