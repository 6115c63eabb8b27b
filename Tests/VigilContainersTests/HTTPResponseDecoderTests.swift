import XCTest

@testable import VigilContainers

final class HTTPResponseDecoderTests: XCTestCase {
    func testContentLengthBody() throws {
        let response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
        let decoded = try decodeWhole(response)
        XCTAssertEqual(decoded.head?.status, 200)
        XCTAssertEqual(decoded.head?.headers["content-type"], "application/json")
        XCTAssertEqual(decoded.body, "{\"a\":1}")
        XCTAssertTrue(decoded.ended)
    }

    func testChunkedBodyWithExtensionsAndTrailers() throws {
        let response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\n" + "7\r\n, world\r\n" + "0\r\nX-Trailer: yes\r\n\r\n"
        let decoded = try decodeWhole(response)
        XCTAssertEqual(decoded.body, "hello, world")
        XCTAssertTrue(decoded.ended)
    }

    func testEveryByteSplitGivesTheSameResult() throws {
        let response = "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\nA\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n"
        for pieceSize in 1...response.utf8.count {
            let decoded = try decodeWhole(response, pieceSize: pieceSize)
            XCTAssertEqual(decoded.body, "0123456789abc", "piece size \(pieceSize)")
            XCTAssertTrue(decoded.ended, "piece size \(pieceSize)")
        }
    }

    func testBodyUntilCloseAndEmptyBodies() throws {
        var decoder = HTTPResponseDecoder()
        let parts = try decoder.feed(Array("HTTP/1.0 200 OK\r\n\r\nrest of it".utf8))
        XCTAssertEqual(parts.last, .body(Array("rest of it".utf8)))
        XCTAssertFalse(decoder.isComplete)
        XCTAssertEqual(try decoder.finish(), [.end])

        XCTAssertTrue(try decodeWhole("HTTP/1.1 204 No Content\r\n\r\n").ended)
        XCTAssertTrue(try decodeWhole("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").ended)
    }

    func testPipelinedBytesAfterTheResponseAreIgnored() throws {
        var decoder = HTTPResponseDecoder()
        let parts = try decoder.feed(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKextra".utf8))
        XCTAssertEqual(parts.dropFirst(), [.body(Array("OK".utf8)), .end])
        XCTAssertTrue(decoder.isComplete)
    }

    func testMalformedResponses() {
        for response in [
            "SMTP 220 hello\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n",
        ] {
            var decoder = HTTPResponseDecoder()
            XCTAssertThrowsError(try decoder.feed(Array(response.utf8)), response.debugDescription)
        }
    }

    func testTruncatedResponseFailsAtEndOfStream() throws {
        var decoder = HTTPResponseDecoder()
        _ = try decoder.feed(Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".utf8))
        XCTAssertThrowsError(try decoder.finish())
    }

    func testOversizedHeadIsRejected() {
        var decoder = HTTPResponseDecoder()
        let huge = "HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: HTTPResponseDecoder.maximumHeadBytes + 1)
        XCTAssertThrowsError(try decoder.feed(Array(huge.utf8)))
    }

    func testLineSplitterJoinsPiecesAndSkipsBlankLines() throws {
        var splitter = LineSplitter()
        XCTAssertEqual(try splitter.feed(Array("{\"a\"".utf8)), [])
        XCTAssertEqual(try splitter.feed(Array(":1}\n\n{\"b\":2}\n{".utf8)), [Array("{\"a\":1}".utf8), Array("{\"b\":2}".utf8)])
        XCTAssertEqual(try splitter.feed(Array("}\n".utf8)), [Array("{}".utf8)])
        XCTAssertThrowsError(try splitter.feed([UInt8](repeating: 0x61, count: LineSplitter.maximumLineBytes + 1)))
    }

    // MARK: helpers

    private struct Decoded {
        var head: HTTPResponseHead?
        var body = ""
        var ended = false
    }

    private func decodeWhole(_ response: String, pieceSize: Int = .max) throws -> Decoded {
        var decoder = HTTPResponseDecoder()
        var decoded = Decoded()
        var bytes: [UInt8] = []
        let all = Array(response.utf8)
        var parts: [HTTPResponsePart] = []
        for start in stride(from: 0, to: all.count, by: min(pieceSize, all.count)) {
            parts += try decoder.feed(Array(all[start..<min(start + pieceSize, all.count)]))
        }
        if !decoder.isComplete { parts += try decoder.finish() }
        for part in parts {
            switch part {
            case .head(let head): decoded.head = head
            case .body(let piece): bytes += piece
            case .end: decoded.ended = true
            }
        }
        decoded.body = String(decoding: bytes, as: UTF8.self)
        return decoded
    }
}
