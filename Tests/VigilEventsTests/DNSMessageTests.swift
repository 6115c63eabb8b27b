import VigilEvents
import XCTest

/// The DNS parser on well-formed messages (compression, CNAME chains, AAAA, TCP's length prefix)
/// and on hostile ones (pointer loops, forward pointers, labels past the end, names over 255
/// bytes, lying counts): it answers nil or what it could read, never traps.
final class DNSMessageTests: XCTestCase {
    /// The wire form of `name` (labels, then 0).
    private func wire(_ name: String) -> [UInt8] {
        name.split(separator: ".").flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) } + [0]
    }

    private func header(id: UInt16, response: Bool, rcode: UInt8 = 0, questions: UInt16 = 1, answers: UInt16) -> [UInt8] {
        let flags: UInt16 = (response ? 0x8180 : 0x0100) | UInt16(rcode)
        return [UInt8(id >> 8), UInt8(id & 0xff), UInt8(flags >> 8), UInt8(flags & 0xff),
                0, UInt8(questions), 0, UInt8(answers), 0, 0, 0, 0]
    }

    /// An answer record: NAME (bytes), TYPE, CLASS IN, TTL, RDATA.
    private func record(_ name: [UInt8], type: UInt16, ttl: UInt32, _ data: [UInt8]) -> [UInt8] {
        name + [UInt8(type >> 8), UInt8(type & 0xff), 0, 1,
                UInt8(ttl >> 24), UInt8(ttl >> 16 & 0xff), UInt8(ttl >> 8 & 0xff), UInt8(ttl & 0xff),
                UInt8(data.count >> 8), UInt8(data.count & 0xff)] + data
    }

    /// www.Example.COM A? -> CNAME edge.example.net (compressed) -> A 93.184.216.34, AAAA 2606:2800::1.
    private var response: [UInt8] {
        var m = header(id: 0xbeef, response: true, answers: 3)
        m += wire("www.Example.COM") + [0, 1, 0, 1]
        let edge = wire("edge.example.net")
        m += record([0xc0, 12], type: 5, ttl: 300, edge)
        let edgeOffset = UInt8(m.count - edge.count)
        m += record([0xc0, edgeOffset], type: 1, ttl: 60, [93, 184, 216, 34])
        m += record([0xc0, edgeOffset], type: 28, ttl: 60, [0x26, 0x06, 0x28, 0] + Array(repeating: 0, count: 11) + [1])
        return m
    }

    func testResponseWithCompressionAndCNAME() throws {
        let m = try XCTUnwrap(DNSMessage(bytes: response))
        XCTAssertEqual(m.id, 0xbeef)
        XCTAssertTrue(m.isResponse)
        XCTAssertEqual(m.rcode, 0)
        XCTAssertEqual(m.name, "www.example.com", "lowercased, no final dot")
        XCTAssertEqual(m.questions.map(\.type), [1])
        XCTAssertEqual(m.answers.map(\.type), [5, 1, 28])
        XCTAssertEqual(m.answers[0].alias, "edge.example.net")
        XCTAssertEqual(m.answers[1].name, "edge.example.net")
        XCTAssertEqual(m.answers[1].ttl, 60)
        XCTAssertEqual(m.addresses.map(\.description), ["93.184.216.34", "2606:2800::1"])
    }

    func testQueryAndTCPLengthPrefix() throws {
        let query = header(id: 7, response: false, answers: 0) + wire("pool.example") + [0, 28, 0, 1]
        let m = try XCTUnwrap(DNSMessage(bytes: query))
        XCTAssertFalse(m.isResponse)
        XCTAssertEqual(DNSMessage.typeName(m.questions[0].type), "AAAA")
        let overTCP = [UInt8(response.count >> 8), UInt8(response.count & 0xff)] + response + [0xff, 0xff]
        XCTAssertEqual(DNSMessage(bytes: overTCP, stream: true), DNSMessage(bytes: response), "the length says where it ends")
        XCTAssertNil(DNSMessage(bytes: response, stream: true), "read as TCP, the id is taken for a length")
    }

    func testNXDomain() throws {
        let m = try XCTUnwrap(DNSMessage(bytes: header(id: 1, response: true, rcode: 3, answers: 0) + wire("nope.invalid") + [0, 1, 0, 1]))
        XCTAssertEqual(DNSMessage.rcodeName(m.rcode), "NXDOMAIN")
        XCTAssertEqual(m.addresses, [])
    }

    func testHostileMessages() {
        let question = wire("a.b") + [0, 1, 0, 1]
        // A name that points at itself, and one that points forward.
        XCTAssertNil(DNSMessage(bytes: header(id: 1, response: true, answers: 0) + [0xc0, 12, 0, 1, 0, 1]))
        XCTAssertNil(DNSMessage(bytes: header(id: 1, response: true, answers: 0) + [0xc0, 14, 0, 1, 0, 1, 1, 0x61, 0]))
        // A label running past the end; a reserved label type (0x40).
        XCTAssertNil(DNSMessage(bytes: header(id: 1, response: true, answers: 0) + [10, 0x61, 0x62]))
        XCTAssertNil(DNSMessage(bytes: header(id: 1, response: true, answers: 0) + [0x41, 0, 0, 1, 0, 1]))
        // Over 255 bytes of name.
        let label: [UInt8] = [63] + Array(repeating: 0x61, count: 63)
        let long: [UInt8] = Array(repeating: label, count: 5).flatMap { $0 } + [0, 0, 1, 0, 1]
        XCTAssertNil(DNSMessage(bytes: header(id: 1, response: true, answers: 0) + long))
        // No question; too short; an opcode other than QUERY.
        XCTAssertNil(DNSMessage(bytes: header(id: 1, response: true, questions: 0, answers: 0)))
        XCTAssertNil(DNSMessage(bytes: [0x12, 0x34, 0x81]))
        var update = header(id: 1, response: false, answers: 0) + question
        update[2] = 0x28 // opcode 5 (UPDATE)
        XCTAssertNil(DNSMessage(bytes: update))
        // Counts that lie: 200 answers claimed, one there; an answer whose data runs past the end.
        let one = record([0xc0, 12], type: 1, ttl: 5, [10, 0, 0, 1])
        let lying = DNSMessage(bytes: header(id: 1, response: true, answers: 200) + question + one)
        XCTAssertEqual(lying?.addresses.map(\.description), ["10.0.0.1"])
        let cut = DNSMessage(bytes: header(id: 1, response: true, answers: 1) + question + one.dropLast(2))
        XCTAssertEqual(cut?.answers, [], "a record cut by the capture's bound is left out")
        // Every prefix of a good response parses or is nil, never traps.
        for n in 0...response.count { _ = DNSMessage(bytes: response.prefix(n)) }
        // Random bytes.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...80, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = DNSMessage(bytes: header(id: 1, response: true, answers: 3) + bytes)
        }
    }
}
