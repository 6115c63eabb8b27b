import VigilEvents
@testable import VigilRules
import XCTest

/// The evaluator's own pieces: direct field readers against the catalogue, and the byte-string set.
final class FieldReaderTests: XCTestCase {
    /// Events of every kind and shape: host and container, with and without process information,
    /// successful and failed opens, reads and writes, /proc paths, threads.
    static var events: [Event] {
        var bare = Sample.exec(comm: "sh")
        bare.process = ProcessContext()
        var unidentified = Sample.open("/tmp/x", flags: 0o1101)
        unidentified.container = .unidentified
        let opens = [
            Sample.open("/etc/shadow"), Sample.open("/etc/passwd", flags: 1, result: -13), Sample.open("/var/log/x", flags: 2),
            Sample.open("/proc/123/mem", syscall: "open"), Sample.open("/proc/4242/environ", syscall: "openat2"),
            Sample.open("/proc/self/environ"), Sample.open("relative", syscall: "creat", result: -2), Sample.open("/"),
            Sample.inContainer(Sample.open("/etc/crontab", flags: 0o1101)), unidentified,
        ]
        var truncated = Sample.open("/a/b")
        if case .open(var open) = truncated.payload {
            open.truncated = true
            open.mode = 0o644
            open.dirfd = 7
            truncated.payload = .open(open)
        }
        return [Sample.exec(), Sample.inContainer(Sample.exec(comm: "nc")), bare, Sample.fork(), Sample.fork(thread: true),
                Sample.exit(), Sample.exit(status: 9), truncated] + opens
    }

    /// Every catalogue field with a direct reader, with the arguments worth trying.
    static var directFields: [(name: String, argument: String?)] {
        Fields.all.flatMap { field -> [(String, String?)] in
            let arguments: [String?] = field.takesArgument ? ["0", "1", "2", "3", "app"] : [nil]
            return arguments.map { (field.name, $0) }
        }.filter { name, argument in
            DirectStringField(field: name, argument: argument) != nil || DirectUIntField(field: name, argument: argument) != nil
                || DirectIntField(field: name, argument: argument) != nil || DirectBoolField(field: name, argument: argument) != nil
        }
    }

    func testDirectReadersReadWhatTheCatalogueDefines() throws {
        let fields = Self.directFields
        XCTAssertGreaterThanOrEqual(fields.count, 30, "the fields rules use most are read directly")
        for (name, argument) in fields {
            let definition = try XCTUnwrap(Fields.named(name))
            for (index, event) in Self.events.enumerated() {
                let expected = definition.extract(event, argument)
                let label = "\(name)\(argument.map { "[\($0)]" } ?? "") on event #\(index) (\(event.kind))"
                if let reader = DirectStringField(field: name, argument: argument) {
                    XCTAssertEqual(definition.type, .string, label)
                    var seen: [UInt8]?
                    let present = reader.test(event) { bytes in
                        seen = Array(bytes)
                        return true
                    }
                    XCTAssertEqual(present ? seen.map { FieldValue.string(ByteString($0)) } : nil, expected, label)
                } else if let reader = DirectUIntField(field: name, argument: argument) {
                    XCTAssertEqual(definition.type, .uint, label)
                    XCTAssertEqual(reader.value(event).map(FieldValue.uint), expected, label)
                } else if let reader = DirectIntField(field: name, argument: argument) {
                    XCTAssertEqual(definition.type, .int, label)
                    XCTAssertEqual(reader.value(event).map(FieldValue.int), expected, label)
                } else if let reader = DirectBoolField(field: name, argument: argument) {
                    XCTAssertEqual(definition.type, .bool, label)
                    XCTAssertEqual(reader.value(event).map(FieldValue.bool), expected, label)
                }
            }
        }
    }

    func testEveryDirectReaderIsReachable() {
        // Each case of the readers is made from some catalogue field (no reader for a field
        // that does not exist).
        let fields = Self.directFields
        XCTAssertEqual(Set(fields.compactMap { DirectUIntField(field: $0.name, argument: $0.argument) }), Set(DirectUIntField.allCases))
        XCTAssertEqual(Set(fields.compactMap { DirectIntField(field: $0.name, argument: $0.argument) }), Set(DirectIntField.allCases))
        XCTAssertEqual(Set(fields.compactMap { DirectBoolField(field: $0.name, argument: $0.argument) }), Set(DirectBoolField.allCases))
        let strings = fields.compactMap { DirectStringField(field: $0.name, argument: $0.argument) }
        XCTAssertEqual(Set(strings.compactMap { if case .named(let named) = $0 { named } else { nil } }), Set(DirectStringField.Named.allCases))
        XCTAssertEqual(strings.filter { if case .ancestorName = $0 { true } else { false } }.count, 3, "proc.aname[1...3]")
    }

    func testByteStringSetAgreesWithASetOfArrays() {
        var generator = SystemRandomNumberGenerator()
        for size in [0, 1, 2, 3, 7, 8, 9, 16, 100, 1000] {
            // Members of every length from 0 to 70 bytes, some of them sharing prefixes, plus duplicates.
            let members: [[UInt8]] = (0..<size).map { i in
                let length = i % 71
                return (0..<length).map { k in UInt8(truncatingIfNeeded: (i * 31 + k * 7) % 251) }
            } + (size > 0 ? [[]] : [])
            let reference = Set(members)
            let set = ByteStringSet(members)
            XCTAssertEqual(set.count, reference.count)
            for member in reference {
                XCTAssertTrue(set.contains(ByteString(member)), "member of length \(member.count), set of \(size)")
            }
            for _ in 0..<2000 {
                let probe: [UInt8]
                if let member = members.randomElement(using: &generator), !member.isEmpty, Bool.random(using: &generator) {
                    var changed = member
                    changed[Int.random(in: 0..<changed.count, using: &generator)] &+= 1
                    probe = changed
                } else {
                    probe = (0..<Int.random(in: 0..<80, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                }
                XCTAssertEqual(set.contains(ByteString(probe)), reference.contains(probe), "probe \(probe)")
            }
        }
    }

    func testStringTestsOnBytesInPlace() {
        let value: [UInt8] = Array("/etc/sudoers.d/x".utf8)
        func check(_ test: ConditionStringTest, _ expected: Bool, line: UInt = #line) {
            XCTAssertEqual(value.withUnsafeBufferPointer { test.matches($0) }, expected, line: line)
            XCTAssertEqual([UInt8]().withUnsafeBufferPointer { test.matches($0) }, test.matches(ByteString("")), "empty value", line: line)
        }
        check(.equal("/etc/sudoers.d/x"), true)
        check(.equal("/etc/sudoers.d/"), false)
        check(.notEqual("/etc"), true)
        check(.startsWith(Array("/etc/".utf8)), true)
        check(.startsWith(Array("/etc/sudoers.d/xy".utf8)), false)
        check(.endsWith(Array("d/x".utf8)), true)
        check(.endsWith(Array("/x/".utf8)), false)
        check(.contains(Array("sudo".utf8)), true)
        check(.containsIgnoringCase(Array("sudoers.d".utf8)), true)
        check(.ordered(.less, "/etd"), true)
        check(.ordered(.greaterOrEqual, "/etc/sudoers.d/x"), true)
        check(.oneOf(ByteStringSet([Array("/etc/sudoers.d/x".utf8)])), true)
        check(.pathPrefix(PathPrefixSet([Array("/etc/sudoers.d".utf8)])), true)
        check(.glob(GlobPattern(Array("/etc/*/x".utf8))), true)
    }
}
