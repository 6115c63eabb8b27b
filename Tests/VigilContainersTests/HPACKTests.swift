import Foundation
import VigilTestSupport
import XCTest

@testable import VigilContainers

/// The HPACK decoder against RFC 7541's own examples (Appendix C) and an independent encoder
/// (PyPI's hpack, installed by scripts/setup.sh --test), and on hostile blocks.
final class HPACKTests: XCTestCase {
    private static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.filter { !$0.isWhitespace })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    private static func headers(_ pairs: [(String, String)]) -> [HPACKHeader] { pairs.map { HPACKHeader($0.0, $0.1) } }

    /// C.2: one field of each representation.
    func testTheLiteralExamplesOfC2() throws {
        var decoder = HPACKDecoder()
        XCTAssertEqual(try decoder.decode(Self.bytes("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")),
                       [HPACKHeader("custom-key", "custom-header")])
        XCTAssertEqual(decoder.dynamicTable, [HPACKHeader("custom-key", "custom-header")])
        XCTAssertEqual(decoder.dynamicTableBytes, 55)
        decoder = HPACKDecoder()
        XCTAssertEqual(try decoder.decode(Self.bytes("040c 2f73 616d 706c 652f 7061 7468")), [HPACKHeader(":path", "/sample/path")])
        XCTAssertEqual(try decoder.decode(Self.bytes("1008 7061 7373 776f 7264 0673 6563 7265 74")), [HPACKHeader("password", "secret")])
        XCTAssertEqual(try decoder.decode(Self.bytes("82")), [HPACKHeader(":method", "GET")])
        XCTAssertEqual(decoder.dynamicTable, [], "without indexing, never indexed and indexed fields add nothing")
    }

    private static let requests = [
        headers([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")]),
        headers([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com"), ("cache-control", "no-cache")]),
        headers([(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"), ("custom-key", "custom-value")]),
    ]
    private static let requestTables = [
        headers([(":authority", "www.example.com")]),
        headers([("cache-control", "no-cache"), (":authority", "www.example.com")]),
        headers([("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")]),
    ]

    /// C.3 (raw strings) and C.4 (Huffman-coded): three requests on one connection.
    func testTheRequestExamplesOfC3AndC4() throws {
        for (section, blocks) in [("C.3", ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865",
                                           "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"]),
                                  ("C.4", ["828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf",
                                           "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"])] {
            var decoder = HPACKDecoder()
            for (index, block) in blocks.enumerated() {
                XCTAssertEqual(try decoder.decode(Self.bytes(block)), Self.requests[index], "\(section).\(index + 1)")
                XCTAssertEqual(decoder.dynamicTable, Self.requestTables[index], "\(section).\(index + 1)")
            }
            XCTAssertEqual(decoder.dynamicTableBytes, 164, section)
        }
    }

    /// C.5 (raw) and C.6 (Huffman-coded): three responses with a 256-byte table, so entries are evicted.
    func testTheResponseExamplesOfC5AndC6WithEviction() throws {
        let date21 = "Mon, 21 Oct 2013 20:13:21 GMT", date22 = "Mon, 21 Oct 2013 20:13:22 GMT", location = "https://www.example.com"
        let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
        let responses = [
            Self.headers([(":status", "302"), ("cache-control", "private"), ("date", date21), ("location", location)]),
            Self.headers([(":status", "307"), ("cache-control", "private"), ("date", date21), ("location", location)]),
            Self.headers([(":status", "200"), ("cache-control", "private"), ("date", date22), ("location", location),
                          ("content-encoding", "gzip"), ("set-cookie", cookie)]),
        ]
        let tables = [
            Self.headers([("location", location), ("date", date21), ("cache-control", "private"), (":status", "302")]),
            Self.headers([(":status", "307"), ("location", location), ("date", date21), ("cache-control", "private")]),
            Self.headers([("set-cookie", cookie), ("content-encoding", "gzip"), ("date", date22)]),
        ]
        for (section, blocks) in [("C.5", ["4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
                                           "4803333037c1c0bf",
                                           "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31"]),
                                  ("C.6", ["488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
                                           "4883640effc1c0bf",
                                           "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"])] {
            var decoder = HPACKDecoder(maximumTableSize: 256)
            for (index, block) in blocks.enumerated() {
                XCTAssertEqual(try decoder.decode(Self.bytes(block)), responses[index], "\(section).\(index + 1)")
                XCTAssertEqual(decoder.dynamicTable, tables[index], "\(section).\(index + 1)")
            }
            XCTAssertEqual(decoder.dynamicTableBytes, 215, section)
        }
    }

    /// PyPI's hpack encodes random header lists (static and new names, UTF-8 values, Huffman or
    /// not, never-indexed fields, table size changes between blocks) on one connection; every
    /// block decodes to exactly its list, in order, with one decoder.
    func testRandomHeaderListsFromAnIndependentEncoderDecodeExactly() throws {
        let script = #"""
            import json, random, sys
            try:
                from hpack import Encoder, NeverIndexedHeaderTuple
            except ImportError:
                sys.exit(3)
            rng = random.Random(int(sys.argv[1]))
            static = [":authority", ":method", ":path", ":status", "content-type", "date", "user-agent", "cookie", "set-cookie", "location"]
            def text(n):
                alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_.:/ %=;,~!\"'{}" + "\u00e9\u00fc\u6f22\U0001f600"
                return "".join(rng.choice(alphabet) for _ in range(n))
            encoder = Encoder()
            for block in range(300):
                if rng.random() < 0.1:
                    encoder.header_table_size = rng.choice([0, 64, 256, 1024, 4096])
                fields = []
                for _ in range(rng.randint(0, 12)):
                    name = rng.choice(static) if rng.random() < 0.5 else "x-" + text(rng.randint(0, 20)).lower()
                    value = rng.choice(["", "GET", "200", "application/grpc", text(rng.randint(0, 200))])
                    if fields and rng.random() < 0.2:
                        name, value = fields[rng.randrange(len(fields))]
                    fields.append((name, value))
                sensitive = [NeverIndexedHeaderTuple(n, v) if rng.random() < 0.1 else (n, v) for n, v in fields]
                encoded = encoder.encode(sensitive, huffman=rng.random() < 0.5)
                print(json.dumps({"block": encoded.hex(), "headers": fields}))
            """#
        for seed in [1, 2, 3] {
            let result = try runCapturing("/usr/bin/env", ["python3", "-c", script, String(seed)])
            if result.status == 3 { throw cannotRun("needs PyPI's hpack for python3 (scripts/setup.sh --test installs it)") }
            XCTAssertEqual(result.status, 0, result.stderr)
            var decoder = HPACKDecoder()
            var blocks = 0
            for line in result.stdout.split(separator: "\n") {
                let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                let expected = try XCTUnwrap(object["headers"] as? [[String]]).map { HPACKHeader($0[0], $0[1]) }
                let block = Self.bytes(try XCTUnwrap(object["block"] as? String))
                XCTAssertEqual(try decoder.decode(block), expected, "seed \(seed), block \(blocks)")
                blocks += 1
            }
            XCTAssertEqual(blocks, 300)
        }
    }

    /// Hostile blocks: each is an error that names what is wrong, never a trap.
    func testHostileBlocksThrowWhatIsWrong() {
        let cases: [(String, [UInt8], String)] = [
            ("index 0", [0x80], "index 0"),
            ("an index past both tables", [0xBE], "index 62 beyond"),
            ("an integer cut short", [0xFF], "cut short"),
            ("an integer too long", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], "larger than"),
            ("zero continuation bytes forever", [0xFF] + [UInt8](repeating: 0x80, count: 20) + [0x01], "continuation bytes"),
            ("a string longer than the block", [0x40, 0x05, 0x61], "longer than the 1 bytes left"),
            ("a name missing", [0x40], "name missing"),
            ("a value missing", [0x04], "value of :path missing"),
            ("a size update above the limit", [0x3F, 0xE2, 0x1F], "above the 4096 allowed"),
            ("a size update after a field", [0x82, 0x20], "after a header field"),
            ("Huffman padding of zeros", [0x04, 0x81, 0x00], "padding"),
            ("Huffman padding of 8 ones", [0x04, 0x82, 0x1F, 0xFF], "padding"),
            ("Huffman EOS", [0x04, 0x84, 0xFF, 0xFF, 0xFF, 0xFF], "EOS"),
        ]
        for (what, block, expected) in cases {
            var decoder = HPACKDecoder()
            XCTAssertThrowsError(try decoder.decode(block), what) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(what): \(error)")
            }
        }
        var small = HPACKDecoder(maximumHeaderListSize: 100)
        XCTAssertThrowsError(try small.decode([0x04, 0x7F, 0x00] + [UInt8](repeating: 0x61, count: 127))) { error in
            XCTAssertTrue("\(error)".contains("header list larger than 100 bytes"), "\(error)")
        }
    }

    /// A field larger than the whole table empties it and is not added (RFC 7541 §4.4); a size
    /// update to 0 empties it.
    func testAFieldLargerThanTheTableEmptiesItAndASizeUpdateEvicts() throws {
        var decoder = HPACKDecoder(maximumTableSize: 64)
        _ = try decoder.decode([0x41, 0x01, 0x61])  // :authority: a, 43 bytes
        XCTAssertEqual(decoder.dynamicTable, [HPACKHeader(":authority", "a")])
        _ = try decoder.decode([0x41, 0x20] + [UInt8](repeating: 0x62, count: 32))  // 75 bytes > 64
        XCTAssertEqual(decoder.dynamicTable, [])
        _ = try decoder.decode([0x41, 0x01, 0x61])
        XCTAssertEqual(decoder.dynamicTable.count, 1)
        XCTAssertEqual(try decoder.decode([0x20, 0x82]), [HPACKHeader(":method", "GET")], "a size update to 0 at the block's start, then a field")
        XCTAssertEqual(decoder.dynamicTable, [])
        XCTAssertEqual(decoder.tableSize, 0)
        XCTAssertThrowsError(try decoder.decode([0xBE]), "the entry was evicted")
    }

    /// Sizes count the octets sent: a value that is not UTF-8 (30 octets of Latin-1 é, 0xE9)
    /// takes 63 bytes of a 70-byte table and stays there for the next block to index, as in the
    /// peer's encoder, though its String holds 30 U+FFFD (90 UTF-8 bytes).
    func testTableSizesCountTheOctetsSentNotTheRepairedString() throws {
        var decoder = HPACKDecoder(maximumTableSize: 70)
        let value = [UInt8](repeating: 0xE9, count: 30)
        let first = try decoder.decode([0x40, 0x01, 0x61, 0x1E] + value)
        XCTAssertEqual(first, [HPACKHeader("a", String(decoding: value, as: UTF8.self))])
        XCTAssertEqual(decoder.dynamicTableBytes, 63)
        XCTAssertEqual(try decoder.decode([0xBE]), first)
    }
}
