import Foundation

/// The macros and lists a condition may refer to. Macros are given as unparsed text with where
/// it starts; each is parsed the first time a condition uses it, and the parse is kept (in a
/// cache shared by copies of the context) for the next conditions. Lists are flattened already
/// (a list's items that name other lists are expanded by the caller).
public struct ConditionContext: Sendable {
    /// Macro name -> condition text and where that text starts in its file.
    public var macros: [String: (text: String, location: SourceLocation)]
    /// List name -> items.
    public var lists: [String: [String]]
    /// Macros joined from parts written in different places (appended to in another file):
    /// where each part starts, so errors point into the right file.
    var macroSegments: [String: [SourceSegment]] = [:]
    /// Where each item of a list was written (parallel to `lists`), so an error on an item
    /// names its place, which may be another file than the rule's.
    var listItemLocations: [String: [SourceLocation]] = [:]
    /// Parsed macros, by name; an entry is reused only while its text and location are unchanged.
    let cache = MacroCache()

    /// Creates a context.
    public init(macros: [String: (text: String, location: SourceLocation)] = [:], lists: [String: [String]] = [:]) {
        self.macros = macros
        self.lists = lists
    }

    /// The parsed body of macro `name` (parsed once), with the source it was parsed from.
    func parsedMacro(_ name: String, text: String, location: SourceLocation) throws(RuleError) -> (ConditionSource, ConditionExpression) {
        try cache.parsed(name, text: text, segments: macroSegments[name] ?? [SourceSegment(offset: 0, start: location)])
    }
}

/// Parsed macro bodies, shared between copies of a `ConditionContext` and safe to use from
/// several threads (the lock guards the dictionary only; parsing happens outside it).
final class MacroCache: @unchecked Sendable {
    private struct Entry {
        let text: String
        let segments: [SourceSegment]
        let result: Result<(ConditionSource, ConditionExpression), RuleError>
    }
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    func parsed(_ name: String, text: String, segments: [SourceSegment]) throws(RuleError) -> (ConditionSource, ConditionExpression) {
        lock.lock()
        let cached = entries[name]
        lock.unlock()
        if let cached, cached.text == text, cached.segments == segments { return try cached.result.get() }
        let source = ConditionSource(text, segments: segments)
        let result: Result<(ConditionSource, ConditionExpression), RuleError>
        do {
            result = .success((source, try ConditionParser.parse(source)))
        } catch {
            result = .failure(error)
        }
        lock.lock()
        entries[name] = Entry(text: text, segments: segments, result: result)
        lock.unlock()
        return try result.get()
    }
}
