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
    /// Parsed macros, by name; an entry is reused only while its text and location are unchanged.
    let cache = MacroCache()

    /// Creates a context.
    public init(macros: [String: (text: String, location: SourceLocation)] = [:], lists: [String: [String]] = [:]) {
        self.macros = macros
        self.lists = lists
    }

    /// The parsed body of macro `name` (parsed once), with the source it was parsed from.
    func parsedMacro(_ name: String, text: String, location: SourceLocation) throws(RuleError) -> (ConditionSource, ConditionExpression) {
        try cache.parsed(name, text: text, location: location)
    }
}

/// Parsed macro bodies, shared between copies of a `ConditionContext` and safe to use from
/// several threads (the lock guards the dictionary only; parsing happens outside it).
final class MacroCache: @unchecked Sendable {
    private struct Entry {
        let text: String
        let location: SourceLocation
        let result: Result<(ConditionSource, ConditionExpression), RuleError>
    }
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    func parsed(_ name: String, text: String, location: SourceLocation) throws(RuleError) -> (ConditionSource, ConditionExpression) {
        lock.lock()
        let cached = entries[name]
        lock.unlock()
        if let cached, cached.text == text, cached.location == location { return try cached.result.get() }
        let source = ConditionSource(text, at: location)
        let result: Result<(ConditionSource, ConditionExpression), RuleError>
        do {
            result = .success((source, try ConditionParser.parse(source)))
        } catch {
            result = .failure(error)
        }
        lock.lock()
        entries[name] = Entry(text: text, location: location, result: result)
        lock.unlock()
        return try result.get()
    }
}
