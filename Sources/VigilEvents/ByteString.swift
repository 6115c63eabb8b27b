/// Bytes from the kernel that are usually, but not always, UTF-8 text: paths, arguments, names.
/// Kept exactly; rendered for terminals with escapes and for JSON reversibly.
public struct ByteString: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The exact bytes.
    public var bytes: [UInt8]

    /// Wraps bytes.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    /// Wraps bytes.
    public init(_ bytes: some Sequence<UInt8>) { self.bytes = Array(bytes) }
    /// The UTF-8 bytes of `string`.
    public init(_ string: String) { self.bytes = Array(string.utf8) }
    /// The UTF-8 bytes of a literal.
    public init(stringLiteral value: String) { self.init(value) }
    /// The UTF-8 bytes of static text.
    public init(_ text: StaticString) {
        self.init(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// The bytes as a String, invalid UTF-8 replaced by U+FFFD (for matching and display).
    public var string: String { String(decoding: bytes, as: UTF8.self) }
    public var description: String { string }
    /// Whether there are no bytes.
    public var isEmpty: Bool { bytes.isEmpty }
    /// Whether the bytes are valid UTF-8.
    public var isValidUTF8: Bool { String(validating: bytes, as: UTF8.self) != nil }

    public static func < (a: ByteString, b: ByteString) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    /// For terminals: control characters as \n, \t, \r, \e or \xNN, invalid UTF-8 bytes as \xNN,
    /// backslash as \\, the other characters of `isDisplayControl` as \u{XXXX}; everything else
    /// as is. Nothing printed can move the cursor, change colours, end the line or reorder it.
    /// The one escaping for text (the table, output templates, alert text, logs, syslog MSG).
    public var escapedForTerminal: String {
        if isPlainText { return String(decoding: bytes, as: UTF8.self) }
        var out = ""
        out.reserveCapacity(bytes.count)
        forEachScalarOrInvalidByte { scalar, invalid in
            if let byte = invalid {
                out += "\\x" + hex2(byte)
                return
            }
            guard let scalar else { return }
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\u{1b}": out += "\\e"
            default:
                if Self.isDisplayControl(scalar.value) {
                    out += scalar.value <= 0xff ? "\\x" + hex2(UInt8(scalar.value)) : "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// Appends `escapedForTerminal`'s bytes to `out`.
    public func appendEscapedForTerminal(to out: inout [UInt8]) {
        if isPlainText { out += bytes } else { out += escapedForTerminal.utf8 }
    }

    /// Printable ASCII without a backslash (nearly every name, path and address): its own
    /// terminal form.
    private var isPlainText: Bool { bytes.allSatisfy { $0 >= 0x20 && $0 < 0x7f && $0 != 0x5c } }

    /// The bytes without ASCII white space (space, tab, line breaks) at either end.
    public var trimmingASCIIWhitespace: ByteString {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0d) }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else { return ByteString([]) }
        return ByteString(bytes[first...last])
    }

    /// Characters that change how a line is displayed rather than showing as themselves: C0
    /// controls (newline included), DEL, C1 controls (U+0080...U+009F: U+009B is a CSI, U+0085 a
    /// line end), the line and paragraph separators U+2028 and U+2029, and the bidirectional
    /// controls (U+061C, U+200E, U+200F, U+202A...U+202E, U+2066...U+2069: "Trojan Source").
    /// Terminal text escapes them all; JSON writes them as \uXXXX (the same value, shown safely).
    public static func isDisplayControl(_ scalar: UInt32) -> Bool {
        switch scalar {
        case 0..<0x20, 0x7f...0x9f, 0x061c, 0x200e, 0x200f, 0x2028...0x202e, 0x2066...0x2069: true
        default: false
        }
    }

    /// Wraps a copy of raw bytes (one allocation, one memcpy).
    public init(_ raw: UnsafeRawBufferPointer) {
        bytes = [UInt8](unsafeUninitializedCapacity: raw.count) { buffer, count in
            if let source = raw.baseAddress, raw.count > 0 {
                UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: source, byteCount: raw.count)
            }
            count = raw.count
        }
    }

    /// Wraps a copy of part of raw bytes.
    public init(_ raw: Slice<UnsafeRawBufferPointer>) { self.init(UnsafeRawBufferPointer(rebasing: raw)) }

    /// Appends a JSON string literal of the bytes. Valid UTF-8 is written as JSON text; each byte
    /// that is not valid UTF-8 is written as a lone low surrogate \udcXX (the "surrogateescape"
    /// convention), so the exact bytes can be recovered (`init(jsonEscapedString:)`, Python's
    /// `s.encode("utf-8", "surrogateescape")`).
    public func appendJSON(to out: inout String) {
        var buffer = ByteBuffer(capacity: bytes.count * 6 + 2)
        buffer.appendJSON(self)
        buffer.withUnsafeBytes { out += String(decoding: $0, as: UTF8.self) }
    }

    /// Appends the same JSON string literal as `appendJSON(to: &String)`, as UTF-8 bytes
    /// (`ByteBuffer.appendJSON` is the allocation-free form).
    public func appendJSON(to out: inout [UInt8]) {
        var buffer = ByteBuffer(capacity: bytes.count * 6 + 2)
        buffer.appendJSON(self)
        buffer.withUnsafeBytes { out.append(contentsOf: $0) }
    }

    /// The length of the valid UTF-8 sequence starting at `i` (2...4), or 0 when it is not one
    /// (bad lead or continuation byte, overlong form, surrogate, beyond U+10FFFF).
    static func validUTF8Length(_ b: UnsafeBufferPointer<UInt8>, at i: Int) -> Int {
        let c = b[i]
        let length: Int, low: UInt8, high: UInt8
        switch c {
        case 0xc2...0xdf: (length, low, high) = (2, 0x80, 0xbf)
        case 0xe0: (length, low, high) = (3, 0xa0, 0xbf)
        case 0xe1...0xec, 0xee...0xef: (length, low, high) = (3, 0x80, 0xbf)
        case 0xed: (length, low, high) = (3, 0x80, 0x9f)
        case 0xf0: (length, low, high) = (4, 0x90, 0xbf)
        case 0xf1...0xf3: (length, low, high) = (4, 0x80, 0xbf)
        case 0xf4: (length, low, high) = (4, 0x80, 0x8f)
        default: return 0
        }
        guard i + length <= b.count, b[i + 1] >= low, b[i + 1] <= high else { return 0 }
        for k in 2..<length where b[i + k] & 0xc0 != 0x80 { return 0 }
        return length
    }

    /// Decoded JSON string content whose lone surrogates U+DC80...U+DCFF stand for raw bytes.
    /// `utf16` is the string's UTF-16 code units as parsed from the JSON text.
    public init(jsonUTF16 utf16: [UInt16]) {
        var bytes: [UInt8] = []
        var i = 0
        while i < utf16.count {
            let unit = utf16[i]
            if (0xdc80...0xdcff).contains(unit) {
                bytes.append(UInt8(unit & 0xff))
                i += 1
            } else if (0xd800...0xdbff).contains(unit), i + 1 < utf16.count, (0xdc00...0xdfff).contains(utf16[i + 1]) {
                let value = 0x10000 + ((UInt32(unit) - 0xd800) << 10) + (UInt32(utf16[i + 1]) - 0xdc00)
                bytes.append(contentsOf: String(Unicode.Scalar(value)!).utf8)
                i += 2
            } else {
                bytes.append(contentsOf: String(Unicode.Scalar(unit) ?? "\u{fffd}").utf8)
                i += 1
            }
        }
        self.bytes = bytes
    }

    /// Calls `body` for each scalar of the valid UTF-8 runs, and with the byte for each byte that
    /// is not part of valid UTF-8, in order.
    private func forEachScalarOrInvalidByte(_ body: (Unicode.Scalar?, UInt8?) -> Void) {
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 { body(Unicode.Scalar(b0), nil); i += 1; continue }
            let length: Int
            switch b0 {
            case 0xc2...0xdf: length = 2
            case 0xe0...0xef: length = 3
            case 0xf0...0xf4: length = 4
            default: body(nil, b0); i += 1; continue
            }
            if i + length <= n, let scalar = Self.decode(bytes[i..<(i + length)]) {
                body(scalar, nil)
                i += length
            } else {
                body(nil, b0)
                i += 1
            }
        }
    }

    private static func decode(_ slice: ArraySlice<UInt8>) -> Unicode.Scalar? {
        guard let s = String(validating: slice, as: UTF8.self), s.unicodeScalars.count == 1 else { return nil }
        return s.unicodeScalars.first
    }
}

/// JSON text helpers shared by every encoder in Vigil (all of them write through
/// `ByteBuffer.appendJSONString`).
public enum JSONText {
    /// Appends a JSON string literal of `string` as UTF-8 bytes.
    public static func appendString(_ string: String, to out: inout [UInt8]) {
        var buffer = ByteBuffer(capacity: string.utf8.count * 6 + 2)
        buffer.appendJSON(string)
        buffer.withUnsafeBytes { out.append(contentsOf: $0) }
    }

    /// Appends a JSON string literal of `string`.
    public static func appendString(_ string: String, to out: inout String) {
        var buffer = ByteBuffer(capacity: string.utf8.count * 6 + 2)
        buffer.appendJSON(string)
        buffer.withUnsafeBytes { out += String(decoding: $0, as: UTF8.self) }
    }
}

private let hexDigits = Array("0123456789abcdef")

func hex2(_ byte: UInt8) -> String {
    String([hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xf)]])
}
