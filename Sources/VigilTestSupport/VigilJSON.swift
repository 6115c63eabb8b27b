import Foundation
import VigilEvents

/// JSON that Vigil wrote, read back in tests with Vigil's own parser (`EventJSON.parse`). A
/// host-wide trace can show any process of the machine, and a name, argument or path that is not
/// UTF-8 is written as \udcXX escapes, which JSONSerialization refuses (the whole line then fails
/// to parse). Values come back as JSONSerialization's do: String (bytes decoded leniently), Int
/// (else Double), Bool, NSNull, [Any] and [String: Any].
public enum VigilJSON {
    /// The value of one JSON text.
    public static func value(_ text: some StringProtocol) throws -> Any {
        foundation(try EventJSON.parse(String(text)))
    }

    /// The objects of `text`, one JSON object per non-empty line (`vigil trace -o json`).
    public static func objects(lines text: some StringProtocol) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { line in
            guard let object = try value(line) as? [String: Any] else { throw NotAnObject(line: String(line)) }
            return object
        }
    }

    /// A line of `objects(lines:)` that holds another JSON value.
    public struct NotAnObject: Error {
        /// The line.
        public let line: String
    }

    private static func foundation(_ value: EventJSON.Value) -> Any {
        switch value {
        case .string(let bytes): bytes.string
        case .number(let text): Int(text) ?? Double(text) ?? text
        case .bool(let flag): flag
        case .null: NSNull()
        case .array(let items): items.map(foundation)
        case .object(let members): members.mapValues(foundation)
        }
    }
}
