import Foundation
import VigilEvents
import XCTest

final class ByteStringTests: XCTestCase {
    func testTerminalEscapesControlsAndInvalidUTF8() {
        let s = ByteString([0x61, 0x0a, 0x1b, 0x5b, 0x33, 0x31, 0x6d, 0xff, 0x5c, 0x09] + Array("é".utf8))
        XCTAssertEqual(s.escapedForTerminal, "a\\n\\e[31m\\xff\\\\\\té")
        XCTAssertEqual(ByteString([0xc2, 0x9b]).escapedForTerminal, "\\x9b", "C1 controls (CSI) are escaped too")
        XCTAssertEqual(ByteString("a\u{2028}b\u{202E}c\u{2066}d\u{061C}e").escapedForTerminal, "a\\u{2028}b\\u{202e}c\\u{2066}d\\u{61c}e",
                       "a line separator or a bidi control cannot end or reorder the line")
        var json = ""
        ByteString("a\u{9b}b\u{2028}c\u{202E}d").appendJSON(to: &json)
        XCTAssertEqual(json, "\"a\\u009bb\\u2028c\\u202ed\"", "JSON writes the same characters as \\uXXXX")
    }

    func testJSONKeepsValidTextAndEscapesInvalidBytesReversibly() throws {
        let bytes: [UInt8] = Array("a b\nc\"\\".utf8) + [0xff, 0xc3] + Array("ü/😀".utf8) + [0xed, 0xa0, 0x80]
        var json = ""
        ByteString(bytes).appendJSON(to: &json)
        XCTAssertTrue(json.contains("\\udcff\\udcc3"), json)
        XCTAssertTrue(json.contains("ü/😀"))
        // Decode as a JSON parser sees it (UTF-16 units, lone surrogates kept), then back to bytes.
        XCTAssertEqual(ByteString(jsonUTF16: Self.parseJSONStringUTF16(json)).bytes, bytes)
        // Valid UTF-8 parses with a strict parser to the same text.
        var valid = ""
        ByteString("path with spaces\tand \u{7f}").appendJSON(to: &valid)
        XCTAssertEqual(try JSONSerialization.jsonObject(with: Data("[\(valid)]".utf8)) as? [String], ["path with spaces\tand \u{7f}"])
    }

    func testJSONWriterMatchesAByteByByteReference() {
        // Lengths around the 8-byte steps of the fast path, special bytes anywhere in them.
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [0x00, 0x09, 0x0a, 0x1f, 0x20, 0x22, 0x41, 0x5c, 0x7e, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xa9, 0xe0, 0xa0,
                                 0xed, 0xa0, 0x80, 0xef, 0xbf, 0xbd, 0xf0, 0x9f, 0x98, 0x80, 0xf4, 0x90, 0xff, 0xe2, 0x80, 0xa8,
                                 0xae, 0x81, 0xa6, 0xd8, 0x9c, 0x9b, 0x85]
        for _ in 0..<4000 {
            let plain = Int.random(in: 0...3, using: &generator) == 0 ? 0 : Int.random(in: 1...20, using: &generator)
            var bytes = (0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            bytes.insert(contentsOf: Array(repeating: 0x61, count: plain), at: Int.random(in: 0...bytes.count, using: &generator))
            var raw: [UInt8] = []
            ByteString(bytes).appendJSON(to: &raw)
            XCTAssertEqual(raw, Self.referenceJSON(bytes), "\(bytes)")
            XCTAssertEqual(ByteString(jsonUTF16: Self.parseJSONStringUTF16(String(decoding: raw, as: UTF8.self))).bytes, bytes)
        }
    }

    /// The JSON string of `bytes` the slow, obvious way: one scalar (or invalid byte) at a time.
    static func referenceJSON(_ bytes: [UInt8]) -> [UInt8] {
        var out = Array("\"".utf8), i = 0
        while i < bytes.count {
            let lead = bytes[i]
            let length = lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0
            let scalar = length > 0 && i + length <= bytes.count
                ? String(validating: bytes[i..<(i + length)], as: UTF8.self).flatMap { $0.unicodeScalars.count == 1 ? $0.unicodeScalars.first : nil }
                : nil
            guard let scalar else {
                out += Array("\\udc".utf8) + Array(String(format: "%02x", lead).utf8)
                i += 1
                continue
            }
            switch scalar {
            case "\"": out += Array("\\\"".utf8)
            case "\\": out += Array("\\\\".utf8)
            case "\n": out += Array("\\n".utf8)
            case "\r": out += Array("\\r".utf8)
            case "\t": out += Array("\\t".utf8)
            default:
                out += ByteString.isDisplayControl(scalar.value) ? Array(String(format: "\\u%04x", scalar.value).utf8) : Array(String(scalar).utf8)
            }
            i += length
        }
        return out + Array("\"".utf8)
    }

    /// A minimal JSON string-literal parser returning UTF-16 code units (lone surrogates kept).
    static func parseJSONStringUTF16(_ literal: String) -> [UInt16] {
        var units: [UInt16] = []
        var chars = Array(literal.unicodeScalars.dropFirst().dropLast())[...]
        while let c = chars.popFirst() {
            guard c == "\\" else { units.append(contentsOf: String(c).utf16); continue }
            let e = chars.popFirst()!
            switch e {
            case "n": units.append(10)
            case "t": units.append(9)
            case "r": units.append(13)
            case "u":
                let hex = String(String.UnicodeScalarView(chars.prefix(4)))
                chars.removeFirst(4)
                units.append(UInt16(hex, radix: 16)!)
            default: units.append(contentsOf: String(e).utf16)
            }
        }
        return units
    }

    func testPathResolution() {
        func r(_ name: String, _ base: String) -> String { PathResolution.resolve(ByteString(name), against: ByteString(base)).string }
        XCTAssertEqual(r("/etc//passwd", "/x"), "/etc/passwd")
        XCTAssertEqual(r("b/./c", "/a"), "/a/b/c")
        XCTAssertEqual(r("../../../x", "/a/b"), "/x")
        XCTAssertEqual(r("vtest/../vtest/rel.txt", "/tmp"), "/tmp/vtest/rel.txt")
        XCTAssertEqual(r(".", "/"), "/")
        XCTAssertEqual(r("x", ""), "x", "no base: stays relative")
        XCTAssertEqual(r("/a/./b/../c//d/", "/x"), "/a/c/d")
        XCTAssertEqual(r("/..", ""), "/")
        XCTAssertEqual(r("a/../..", ""), "..")
        XCTAssertEqual(r("../x", ""), "../x")
        XCTAssertEqual(r("", ""), ".")
        XCTAssertEqual(r("..", "/"), "/")
        XCTAssertEqual(r("/a/.b/..c/...", ""), "/a/.b/..c/...", "names that only start with dots are names")
        let clean = ByteString("/usr/lib/os-release")
        let resolved = PathResolution.resolve(clean, against: "/tmp")
        XCTAssertEqual(resolved, clean)
        XCTAssertTrue(clean.bytes.withUnsafeBufferPointer { a in resolved.bytes.withUnsafeBufferPointer { $0.baseAddress == a.baseAddress } },
                      "a clean absolute name is the path itself, not a copy")
        XCTAssertEqual(PathParts.directory("/etc/passwd"), "/etc")
        XCTAssertEqual(PathParts.directory("/passwd"), "/")
        XCTAssertEqual(PathParts.filename("/etc/passwd"), "passwd")
    }

    func testOpenFlagsAndErrnoNames() {
        XCTAssertEqual(OpenFlags.describe(0o2000000), "O_RDONLY|O_CLOEXEC")
        XCTAssertEqual(OpenFlags.describe(0o1101), "O_WRONLY|O_CREAT|O_TRUNC")
        XCTAssertEqual(OpenFlags.describe(0o4010002), "O_RDWR|O_SYNC")
        XCTAssertEqual(OpenFlags.describe(0o20200000 | 2), "O_RDWR|O_TMPFILE")
        XCTAssertEqual(OpenFlags.describe(0xffff_ffff), "O_ACCMODE|O_CREAT|O_EXCL|O_NOCTTY|O_TRUNC|O_APPEND|O_NONBLOCK|O_SYNC|O_ASYNC"
            + "|O_DIRECT|O_LARGEFILE|O_TMPFILE|O_NOFOLLOW|O_NOATIME|O_CLOEXEC|O_PATH|0xff80003c", "unknown bits in hex at the end")
        XCTAssertEqual(ErrnoNames.name(2), "ENOENT")
        XCTAssertEqual(ErrnoNames.name(999), "E999")
    }

    func testTimestamps() {
        XCTAssertEqual(Timestamp.iso8601(0), "1970-01-01T00:00:00.000000000Z")
        XCTAssertEqual(Timestamp.iso8601(1_795_390_514_463_098_509), "2026-11-22T23:35:14.463098509Z")
        XCTAssertEqual(Timestamp.iso8601(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z")
        XCTAssertEqual(Timestamp.iso8601(4_102_444_799_999_999_999), "2099-12-31T23:59:59.999999999Z")
        XCTAssertEqual(Timestamp.iso8601(UInt64.max), "2554-07-21T23:34:33.709551615Z")
    }
}
