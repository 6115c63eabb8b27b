import Foundation
import XCTest

@testable import VigilContainers

/// The protobuf wire reader on containerd's messages and on hostile bytes.
final class ProtobufWireTests: XCTestCase {
    /// A Container message as containerd encodes one (field numbers of containers.proto).
    static func containerMessage(labels: [(String, String)] = [("io.kubernetes.pod.name", "web-0"), ("app", "web")]) -> [UInt8] {
        var container = ProtobufWriter()
        container.appendString(1, "abc")
        for (key, value) in labels {
            var entry = ProtobufWriter()
            entry.appendString(1, key)
            entry.appendString(2, value)
            container.appendLengthDelimited(2, entry.bytes)
        }
        container.appendString(3, "docker.io/library/busybox:1")
        var runtime = ProtobufWriter()
        runtime.appendString(1, "io.containerd.runc.v2")
        container.appendLengthDelimited(4, runtime.bytes)
        container.appendLengthDelimited(5, Array(repeating: 0x41, count: 300))  // spec (Any), skipped
        var created = ProtobufWriter()
        created.appendVarintField(1, 1_700_000_000)
        created.appendVarintField(2, 5)
        container.appendLengthDelimited(8, created.bytes)
        container.appendVarintField(99, 7)  // an unknown field
        var response = ProtobufWriter()
        response.appendLengthDelimited(1, container.bytes)
        return response.bytes
    }

    func testAGetContainerResponseDecodes() throws {
        let container = try XCTUnwrap(try ContainerdContainer.decodeGetResponse(Self.containerMessage()[...]))
        XCTAssertEqual(container.id, "abc")
        XCTAssertEqual(container.labels, ["io.kubernetes.pod.name": "web-0", "app": "web"])
        XCTAssertEqual(container.image, "docker.io/library/busybox:1")
        XCTAssertEqual(container.runtimeName, "io.containerd.runc.v2")
        XCTAssertEqual(container.createdAtNs, 1_700_000_000_000_000_005)
        XCTAssertNil(try ContainerdContainer.decodeGetResponse([][...]))
    }

    func testHostileBytesThrowAndNeverTrap() {
        XCTAssertThrowsError(try Self.first([0x0A, 0x05, 0x41])) { XCTAssertEqual($0 as? ProtobufWireError, .truncated) }
        XCTAssertThrowsError(try Self.first([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])) {
            XCTAssertEqual($0 as? ProtobufWireError, .truncated)
        }
        XCTAssertThrowsError(try Self.first(Array(repeating: 0xFF, count: 11))) { XCTAssertEqual($0 as? ProtobufWireError, .varintTooLong) }
        XCTAssertThrowsError(try Self.first([0x0B])) { XCTAssertEqual($0 as? ProtobufWireError, .unsupportedWireType(3)) }
        XCTAssertThrowsError(try Self.first([0x02, 0x00])) { XCTAssertEqual($0 as? ProtobufWireError, .invalidFieldNumber) }
        XCTAssertThrowsError(try Self.first([0x09, 0x01])) { XCTAssertEqual($0 as? ProtobufWireError, .truncated) }
        // Every prefix and every one-byte change of a real message: an answer or an error, never a trap.
        let message = Self.containerMessage()
        var generator = SystemRandomNumberGenerator()
        for length in 0...message.count { _ = try? ContainerdContainer.decodeGetResponse(message[..<length]) }
        for _ in 0..<5_000 {
            var mutated = message
            mutated[Int.random(in: 0..<mutated.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            _ = try? ContainerdContainer.decodeGetResponse(mutated[...])
        }
    }

    private static func first(_ bytes: [UInt8]) throws -> (field: UInt64, value: ProtobufValue)? {
        var reader = ProtobufReader(bytes)
        return try reader.next()
    }

    func testAGRPCMessageIsItsLengthPrefixedBytes() throws {
        XCTAssertNil(try GRPCConnection.message(in: [], path: "p"))
        XCTAssertEqual(try GRPCConnection.message(in: [0, 0, 0, 0, 2, 7, 8, 9], path: "p"), [7, 8])
        XCTAssertThrowsError(try GRPCConnection.message(in: [0, 0, 0, 0, 9, 1], path: "p"))
        XCTAssertThrowsError(try GRPCConnection.message(in: [1, 0, 0, 0, 0], path: "p"))
        XCTAssertThrowsError(try GRPCConnection.message(in: [0, 0xFF, 0xFF], path: "p"))
    }

    /// Header frames that break HTTP/2, HPACK or gRPC: each is an error naming what is wrong.
    func testHostileHeaderFramesThrowWhatIsWrong() {
        let grpcStatus5: [UInt8] = [0x00, 0x0B] + Array("grpc-status".utf8) + [0x01, 0x35]  // literal, new name
        let cases: [(String, [HTTP2Frame], String)] = [
            ("a CONTINUATION with no HEADERS", [HTTP2Frame(type: 9, flags: 4, stream: 1, payload: [0x88])], "without a HEADERS"),
            ("DATA inside a header block", [HTTP2Frame(type: 1, flags: 0, stream: 1, payload: [0x88]), HTTP2Frame(type: 0, flags: 0, stream: 1, payload: [])],
             "where a CONTINUATION of stream 1 was due"),
            ("padding longer than the HEADERS", [HTTP2Frame(type: 1, flags: 0x4 | 0x8, stream: 1, payload: [9, 0x88])], "padding and priority longer"),
            ("a PUSH_PROMISE", [HTTP2Frame(type: 5, flags: 4, stream: 1, payload: [0, 0, 0, 2, 0x88])], "PUSH_PROMISE on stream 1"),
            ("a bad HPACK block", [HTTP2Frame(type: 1, flags: 0x5, stream: 1, payload: [0x80])], "HPACK: index 0"),
            ("grpc-status not a number", [HTTP2Frame(type: 1, flags: 0x5, stream: 1, payload: [0x00, 0x0B] + Array("grpc-status".utf8) + [0x01, 0x78])],
             "grpc-status 'x' is not a number"),
            ("no grpc-status", [HTTP2Frame(type: 1, flags: 0x5, stream: 1, payload: [0x88])], "ended without grpc-status"),
            ("status 0 without a message", [HTTP2Frame(type: 1, flags: 0x5, stream: 1, payload: [0x88, 0x00, 0x0B] + Array("grpc-status".utf8) + [0x01, 0x30])],
             "grpc-status 0 with no message"),
            ("status 5", [HTTP2Frame(type: 1, flags: 0x5, stream: 1, payload: grpcStatus5)], "gRPC socket p: NotFound"),
            ("a status of no known name", [HTTP2Frame(type: 1, flags: 0x5, stream: 1, payload: [0x00, 0x0B] + Array("grpc-status".utf8) + [0x02, 0x39, 0x39])],
             "code 99"),
        ]
        for (what, frames, expected) in cases {
            var decoder = HPACKDecoder()
            var reader = GRPCResponseReader(stream: 1, path: "p")
            XCTAssertThrowsError(try frames.forEach { _ = try reader.read($0, decoder: &decoder) }, what) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(what): \(error)")
            }
        }
        // Another stream's block goes through the decoder (its table entry is used next) but is not the call's.
        var decoder = HPACKDecoder()
        var reader = GRPCResponseReader(stream: 3, path: "p")
        XCTAssertEqual(try reader.read(HTTP2Frame(type: 1, flags: 0x5, stream: 1, payload: [0x40, 0x0B] + Array("grpc-status".utf8) + [0x01, 0x35]),
                                       decoder: &decoder), .more)
        XCTAssertThrowsError(try reader.read(HTTP2Frame(type: 1, flags: 0x5, stream: 3, payload: [0xBE]), decoder: &decoder)) { error in
            XCTAssertEqual(error as? GRPCError, .status(path: "p", code: .notFound, message: ""))
        }
    }

    func testGRPCMessagesArePercentDecoded() {
        XCTAssertEqual(GRPCResponseReader.percentDecoded("na%C3%AFve 100%25 %zz %4"), "naïve 100% %zz %4")
        XCTAssertEqual(GRPCResponseReader.percentDecoded(""), "")
    }

    /// The containerd fuzz target's seeds (fuzz/corpus/containerd) read as the client reads
    /// a server's bytes (`GRPCResponseReader` with one HPACK decoder per connection, a new call
    /// on the next stream after each answer): the found answers give the container, the error
    /// answers their gRPC status and percent-decoded message, a reset or GOAWAY aborts.
    func testTheFuzzSeedsReadAsContainerdAnswers() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fuzz/corpus/containerd").path
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        XCTAssertFalse(names.isEmpty)
        let notFound = GRPCError.status(path: "fuzz", code: .notFound, message: #"container "abc" in namespace "k8s.io": not found"#)
        let expected: [String: [String]] = [
            "found.bin": ["app"], "found-padded.bin": ["app"], "found-split-data.bin": ["app"],
            "not-found.bin": ["\(notFound)"],
            "not-found-then-found.bin": ["\(notFound)", "\(notFound)", "app"],
            "invalid-argument.bin": [#"gRPC socket fuzz: InvalidArgument: namespace validation: identifier "naïve" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument"#],
            "http-503-table-size-0.bin": ["gRPC socket fuzz: Unavailable: HTTP status 503"],
            "reset.bin": ["gRPC socket fuzz: call aborted with HTTP/2 error code 2"],
            "goaway.bin": ["gRPC socket fuzz: call aborted with HTTP/2 error code 11"],
        ]
        XCTAssertEqual(Set(names), Set(expected.keys).union(["message-only.bin"]))
        for name in names where name != "message-only.bin" {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name)")))
            XCTAssertEqual(try Self.answers(bytes), expected[name], name)
        }
    }

    /// Each call's answer on one connection: the container's name label, or the error.
    private static func answers(_ bytes: [UInt8]) throws -> [String] {
        var frames = HTTP2FrameReader()
        var decoder = HPACKDecoder()
        var call = GRPCResponseReader(stream: 1, path: "fuzz")
        let readSize = Int(bytes[0]) + 1
        var offset = 1, answers: [String] = []
        while offset < bytes.count {
            frames.append(Array(bytes[offset..<min(offset + readSize, bytes.count)]))
            offset += readSize
            while let frame = try frames.next() {
                let step: GRPCResponseReader.Step
                do throws(GRPCError) {
                    step = try call.read(frame, decoder: &decoder)
                } catch {
                    answers.append("\(error)")
                    guard case .status = error else { return answers }
                    call = GRPCResponseReader(stream: call.stream + 2, path: "fuzz")
                    continue
                }
                guard case .message(let message) = step else { continue }
                let container = try ContainerdContainer.decodeGetResponse(message[...])
                answers.append(container?.labels["io.kubernetes.container.name"] ?? "no container")
                call = GRPCResponseReader(stream: call.stream + 2, path: "fuzz")
            }
        }
        return answers
    }
}
