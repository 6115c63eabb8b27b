/// Why protobuf bytes could not be read.
public enum ProtobufWireError: Error, Sendable, Equatable {
    /// The bytes end inside a field (a varint, a length or a length-delimited value).
    case truncated
    /// A varint longer than 10 bytes.
    case varintTooLong
    /// A wire type protobuf does not define (groups, 3 and 4, included: nothing Vigil reads uses them).
    case unsupportedWireType(UInt8)
    /// Field number 0, which protobuf forbids.
    case invalidFieldNumber
}

/// One field of a protobuf message as it is on the wire.
public enum ProtobufValue: Sendable, Equatable {
    /// Wire type 0.
    case varint(UInt64)
    /// Wire type 1.
    case fixed64(UInt64)
    /// Wire type 2: strings, bytes, embedded messages, packed repeated fields.
    case lengthDelimited(ArraySlice<UInt8>)
    /// Wire type 5.
    case fixed32(UInt32)
}

/// Reads the fields of a protobuf message from untrusted bytes, one at a time, without a schema
/// (the protobuf encoding: https://protobuf.dev/programming-guides/encoding/). Every read is
/// bounds-checked: hostile bytes make it throw, never trap or read past the end.
public struct ProtobufReader: Sendable {
    private let bytes: ArraySlice<UInt8>
    private var position: Int

    /// A reader over `bytes` (a message's whole encoding).
    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        position = bytes.startIndex
    }

    /// A reader over `bytes`.
    public init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    /// Calls `body` with each field of the message `bytes`, in order.
    public static func forEachField(in bytes: ArraySlice<UInt8>,
                                    _ body: (UInt64, ProtobufValue) throws(ProtobufWireError) -> Void) throws(ProtobufWireError) {
        var reader = ProtobufReader(bytes)
        while let (field, value) = try reader.next() { try body(field, value) }
    }

    /// Whether every field has been read.
    public var isAtEnd: Bool { position >= bytes.endIndex }

    /// The next field's number and value; nil at the end of the message.
    public mutating func next() throws(ProtobufWireError) -> (field: UInt64, value: ProtobufValue)? {
        guard !isAtEnd else { return nil }
        let key = try readVarint()
        let field = key >> 3
        guard field != 0 else { throw .invalidFieldNumber }
        switch UInt8(key & 7) {
        case 0:
            return (field, .varint(try readVarint()))
        case 1:
            return (field, .fixed64(try readLittleEndian(8)))
        case 2:
            let length = try readVarint()
            guard length <= UInt64(bytes.endIndex - position) else { throw .truncated }
            let start = position
            position += Int(length)
            return (field, .lengthDelimited(bytes[start..<position]))
        case 5:
            return (field, .fixed32(UInt32(truncatingIfNeeded: try readLittleEndian(4))))
        case let other:
            throw .unsupportedWireType(other)
        }
    }

    private mutating func readVarint() throws(ProtobufWireError) -> UInt64 {
        var result: UInt64 = 0
        for index in 0..<10 {
            guard position < bytes.endIndex else { throw .truncated }
            let byte = bytes[position]
            position += 1
            result |= UInt64(byte & 0x7F) << (7 * UInt64(index))
            if byte & 0x80 == 0 { return result }
        }
        throw .varintTooLong
    }

    private mutating func readLittleEndian(_ count: Int) throws(ProtobufWireError) -> UInt64 {
        guard bytes.endIndex - position >= count else { throw .truncated }
        var result: UInt64 = 0
        for index in 0..<count { result |= UInt64(bytes[position + index]) << (8 * UInt64(index)) }
        position += count
        return result
    }
}

extension ProtobufValue {
    /// The value as a UTF-8 string (invalid sequences repaired); nil unless length-delimited.
    public var string: String? {
        guard case .lengthDelimited(let bytes) = self else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The bytes of a length-delimited value (an embedded message); nil otherwise.
    public var message: ArraySlice<UInt8>? {
        guard case .lengthDelimited(let bytes) = self else { return nil }
        return bytes
    }

    /// String field `number` of the embedded message this value holds (the last one when it
    /// repeats, as protobuf reads a scalar); nil when absent or not length-delimited.
    public func embeddedString(_ number: UInt64) throws(ProtobufWireError) -> String? {
        var found: String?
        try ProtobufReader.forEachField(in: message ?? []) { field, value in
            if field == number { found = value.string ?? found }
        }
        return found
    }

    /// The key and value of a `map<string, string>` entry (an embedded message: key = 1,
    /// value = 2, either absent when empty); nil unless length-delimited.
    public func stringMapEntry() throws(ProtobufWireError) -> (key: String, value: String)? {
        guard let entry = message else { return nil }
        var key = "", value = ""
        try ProtobufReader.forEachField(in: entry) { field, entryValue in
            if field == 1 { key = entryValue.string ?? key }
            if field == 2 { value = entryValue.string ?? value }
        }
        return (key, value)
    }
}

/// Writes protobuf fields (the few requests Vigil sends).
public struct ProtobufWriter: Sendable {
    /// The message's encoding so far.
    public private(set) var bytes: [UInt8] = []

    /// An empty message.
    public init() {}

    /// Appends string field `field` (wire type 2).
    public mutating func appendString(_ field: UInt64, _ value: String) {
        appendLengthDelimited(field, Array(value.utf8))
    }

    /// Appends a length-delimited field (bytes or an embedded message).
    public mutating func appendLengthDelimited(_ field: UInt64, _ value: [UInt8]) {
        appendVarint(field << 3 | 2)
        appendVarint(UInt64(value.count))
        bytes += value
    }

    /// Appends an embedded message.
    public mutating func appendMessage(_ field: UInt64, _ message: ProtobufWriter) {
        appendLengthDelimited(field, message.bytes)
    }

    /// Appends a `map<string, string>` field: one entry message per key, in key order.
    public mutating func appendStringMap(_ field: UInt64, _ map: [String: String]) {
        for (key, value) in map.sorted(by: { $0.key < $1.key }) {
            var entry = ProtobufWriter()
            entry.appendString(1, key)
            entry.appendString(2, value)
            appendMessage(field, entry)
        }
    }

    /// Appends varint field `field` (wire type 0).
    public mutating func appendVarintField(_ field: UInt64, _ value: UInt64) {
        appendVarint(field << 3)
        appendVarint(value)
    }

    private mutating func appendVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }
}
