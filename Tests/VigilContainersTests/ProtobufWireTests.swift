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

    /// The containerd fuzz target's seeds (fuzz/corpus/containerd) read as the client reads
    /// a server's bytes: the found answers give the container, the others no message.
    func testTheFuzzSeedsReadAsContainerdAnswers() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fuzz/corpus/containerd").path
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        XCTAssertFalse(names.isEmpty)
        for name in names where name != "message-only.bin" {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name)")))
            var reader = HTTP2FrameReader()
            let readSize = Int(bytes[0]) + 1
            var offset = 1, data: [UInt8] = [], ended = false
            var container: ContainerdContainer?
            while offset < bytes.count {
                reader.append(Array(bytes[offset..<min(offset + readSize, bytes.count)]))
                offset += readSize
                while let frame = try reader.next() {
                    if frame.type == 0 { data += try XCTUnwrap(frame.data) }
                    if frame.stream == 1, frame.flags & 0x1 != 0 {
                        ended = true
                        container = try GRPCConnection.message(in: data, path: name).flatMap { try ContainerdContainer.decodeGetResponse($0[...]) }
                    }
                }
            }
            if name.hasPrefix("found") {
                XCTAssertEqual(container?.labels["io.kubernetes.container.name"], "app", name)
                XCTAssertEqual(container?.image, "docker.io/library/busybox:1", name)
            } else {
                XCTAssertNil(container, name)
                XCTAssertEqual(ended, name == "not-found.bin", name)
            }
        }
    }
}
