/// One header field of an HTTP/2 header block.
public struct HPACKHeader: Sendable, Hashable, CustomStringConvertible {
    /// Its name (lowercase in HTTP/2).
    public var name: String
    /// Its value.
    public var value: String

    /// A header `name: value`.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    /// `name: value`.
    public var description: String { "\(name): \(value)" }
}

/// Why a header block does not decode (RFC 7541's COMPRESSION_ERROR): the text names what is
/// wrong and where.
public struct HPACKError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong.
    public var reason: String

    /// An error saying `reason`.
    public init(_ reason: String) { self.reason = reason }

    /// `HPACK: <reason>`.
    public var description: String { "HPACK: \(reason)" }
}

/// An HPACK decoder (RFC 7541): integers, string literals (raw and Huffman-coded), the static
/// table, the dynamic table and its size updates, indexed and literal header fields.
///
/// One decoder per connection and direction: the dynamic table carries over from one header
/// block to the next, so blocks must be decoded in the order they arrived. Safe on hostile
/// bytes: every length is checked against the bytes left, and a block whose fields add up to
/// more than `maximumHeaderListSize` (RFC 7541 §4.1's size: name + value + 32 per field) is an
/// error, never a large allocation.
public struct HPACKDecoder: Sendable {
    /// The largest dynamic table the peer may ask for (SETTINGS_HEADER_TABLE_SIZE we announced;
    /// HTTP/2's default 4096).
    public let maximumTableSize: Int
    /// The largest decoded header list accepted (the size of RFC 7541 §4.1, summed over a block).
    public let maximumHeaderListSize: Int
    /// The dynamic table's current maximum size (changed by the peer's size updates).
    public private(set) var tableSize: Int
    /// The dynamic table's entries, newest first.
    public var dynamicTable: [HPACKHeader] { entries.map(\.header) }
    /// The dynamic table's size (RFC 7541 §4.1).
    public private(set) var dynamicTableBytes = 0
    private var entries: [Field] = []

    /// A field with the lengths of its name and value as sent: sizes count octets, and a name
    /// or value that is not UTF-8 is repaired in the `String` (U+FFFD), never in the size, so
    /// the table evicts exactly as the peer's encoder does.
    private struct Field {
        var header: HPACKHeader
        var nameBytes: Int
        var valueBytes: Int
        /// RFC 7541 §4.1's size.
        var size: Int { nameBytes + valueBytes + 32 }
    }

    /// A decoder with an empty dynamic table of at most `maximumTableSize` bytes.
    public init(maximumTableSize: Int = 4096, maximumHeaderListSize: Int = 64 << 10) {
        self.maximumTableSize = maximumTableSize
        self.maximumHeaderListSize = maximumHeaderListSize
        tableSize = maximumTableSize
    }

    /// Decodes one whole header block (a HEADERS frame's fragment and its CONTINUATIONs');
    /// updates the dynamic table. After an error the decoder's table is no longer the peer's:
    /// the connection must not be used for more blocks (HTTP/2 treats it as a connection error).
    public mutating func decode(_ block: some Collection<UInt8>) throws(HPACKError) -> [HPACKHeader] {
        var input = Array(block)[...]
        var headers: [HPACKHeader] = []
        var listSize = 0
        var fieldsSeen = false
        while let first = input.first {
            if first & 0x80 != 0 {  // Indexed header field (§6.1).
                let index = try Self.integer(&input, prefixBits: 7, what: "index")
                try append(try field(index), to: &headers, listSize: &listSize)
            } else if first & 0xC0 == 0x40 {  // Literal with incremental indexing (§6.2.1).
                let field = try literal(&input, prefixBits: 6)
                try append(field, to: &headers, listSize: &listSize)
                insert(field)
            } else if first & 0xE0 == 0x20 {  // Dynamic table size update (§6.3).
                guard !fieldsSeen else { throw HPACKError("dynamic table size update after a header field (RFC 7541 §4.2)") }
                let size = try Self.integer(&input, prefixBits: 5, what: "table size")
                guard size <= maximumTableSize else {
                    throw HPACKError("dynamic table size update to \(size) bytes, above the \(maximumTableSize) allowed")
                }
                tableSize = size
                evict(toFit: 0)
                continue
            } else {  // Literal without indexing (0000) or never indexed (0001) (§6.2.2, §6.2.3).
                try append(try literal(&input, prefixBits: 4), to: &headers, listSize: &listSize)
            }
            fieldsSeen = true
        }
        return headers
    }

    // MARK: - Fields

    /// Entry `index` of the static table (1...61, ASCII) or the dynamic table (62 is the newest).
    private func field(_ index: Int) throws(HPACKError) -> Field {
        guard index > 0 else { throw HPACKError("index 0") }
        if index <= Self.staticTable.count {
            let header = Self.staticTable[index - 1]
            return Field(header: header, nameBytes: header.name.utf8.count, valueBytes: header.value.utf8.count)
        }
        let dynamicIndex = index - Self.staticTable.count - 1
        guard dynamicIndex < entries.count else {
            throw HPACKError("index \(index) beyond the static table and the \(entries.count) dynamic entries")
        }
        return entries[dynamicIndex]
    }

    private func literal(_ input: inout ArraySlice<UInt8>, prefixBits: Int) throws(HPACKError) -> Field {
        let index = try Self.integer(&input, prefixBits: prefixBits, what: "name index")
        var (name, nameBytes) = ("", 0)
        if index == 0 {
            (name, nameBytes) = try string(&input, what: "name")
        } else {
            let named = try field(index)
            (name, nameBytes) = (named.header.name, named.nameBytes)
        }
        let (value, valueBytes) = try string(&input, what: "value of \(name)")
        return Field(header: HPACKHeader(name, value), nameBytes: nameBytes, valueBytes: valueBytes)
    }

    private func append(_ field: Field, to headers: inout [HPACKHeader], listSize: inout Int) throws(HPACKError) {
        listSize += field.size
        guard listSize <= maximumHeaderListSize else {
            throw HPACKError("header list larger than \(maximumHeaderListSize) bytes")
        }
        headers.append(field.header)
    }

    /// Adds `field` to the dynamic table, evicting the oldest entries to make room (§4.4): a
    /// field larger than the table empties it and is not added.
    private mutating func insert(_ field: Field) {
        evict(toFit: field.size)
        guard field.size <= tableSize else { return }
        entries.insert(field, at: 0)
        dynamicTableBytes += field.size
    }

    private mutating func evict(toFit size: Int) {
        while !entries.isEmpty, dynamicTableBytes + size > tableSize {
            dynamicTableBytes -= entries.removeLast().size
        }
    }

    // MARK: - Primitives

    /// The largest integer accepted (far beyond any length or index a block can hold).
    static let maximumInteger = 1 << 24

    /// An integer with an N-bit prefix (§5.1); at most `maximumInteger`.
    static func integer(_ input: inout ArraySlice<UInt8>, prefixBits: Int, what: String) throws(HPACKError) -> Int {
        guard let first = input.popFirst() else { throw HPACKError("\(what) missing at the end of the block") }
        let mask = (1 << prefixBits) - 1
        var value = Int(first) & mask
        guard value == mask else { return value }
        var shift = 0
        while true {
            guard let byte = input.popFirst() else { throw HPACKError("\(what) cut short") }
            guard shift <= 21 else { throw HPACKError("\(what) longer than 4 continuation bytes") }
            value += Int(byte & 0x7F) << shift
            guard value <= maximumInteger else { throw HPACKError("\(what) larger than \(maximumInteger)") }
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    /// A string literal (§5.2), raw or Huffman-coded, and its length in octets once decoded.
    private func string(_ input: inout ArraySlice<UInt8>, what: String) throws(HPACKError) -> (String, Int) {
        guard let first = input.first else { throw HPACKError("\(what) missing at the end of the block") }
        let length = try Self.integer(&input, prefixBits: 7, what: "length of \(what)")
        guard length <= input.count else {
            throw HPACKError("\(what) of \(length) bytes, longer than the \(input.count) bytes left")
        }
        let bytes = input.prefix(length)
        input = input.dropFirst(length)
        if first & 0x80 == 0 { return (String(decoding: bytes, as: UTF8.self), length) }
        // Huffman-coded: at most 8/5 as many symbols as bytes (the shortest code has 5 bits).
        guard length * 8 / 5 <= maximumHeaderListSize else { throw HPACKError("\(what) larger than \(maximumHeaderListSize) bytes") }
        let decoded = try HPACKHuffman.decode(bytes, what: what)
        return (String(decoding: decoded, as: UTF8.self), decoded.count)
    }

    // MARK: - Static table (RFC 7541 Appendix A)

    /// The 61 entries of the static table; index 1 is the first.
    public static let staticTable: [HPACKHeader] = [
        (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
        (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
        (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
        ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
        ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
        ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""), ("date", ""), ("etag", ""),
        ("expect", ""), ("expires", ""), ("from", ""), ("host", ""), ("if-match", ""), ("if-modified-since", ""),
        ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""),
        ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""), ("range", ""),
        ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""), ("set-cookie", ""),
        ("strict-transport-security", ""), ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""), ("via", ""),
        ("www-authenticate", ""),
    ].map { HPACKHeader($0.0, $0.1) }
}

/// HPACK's Huffman code (RFC 7541 Appendix B).
enum HPACKHuffman {
    /// Decodes a Huffman-coded string literal: the padding must be fewer than 8 bits, all ones
    /// (the EOS code's start), and EOS itself must not appear (§5.2).
    static func decode(_ bytes: some Collection<UInt8>, what: String) throws(HPACKError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 8 / 5)
        var node = 0
        var bitsSinceSymbol = 0, onesSinceSymbol = true
        for byte in bytes {
            for shift in stride(from: 7, through: 0, by: -1) {
                let bit = Int(byte >> UInt8(shift)) & 1
                let next = tree[node][bit]
                guard next != 0 else { throw HPACKError("Huffman-coded \(what) holds a code word that is not in the code") }
                bitsSinceSymbol += 1
                onesSinceSymbol = onesSinceSymbol && bit == 1
                if next < 0 {
                    let symbol = -next - 1
                    guard symbol < 256 else { throw HPACKError("Huffman-coded \(what) contains EOS") }
                    out.append(UInt8(symbol))
                    node = 0
                    bitsSinceSymbol = 0
                    onesSinceSymbol = true
                } else {
                    node = next
                }
            }
        }
        guard bitsSinceSymbol < 8, onesSinceSymbol else {
            throw HPACKError("Huffman-coded \(what) ends in \(bitsSinceSymbol) bits of padding that are not 7 or fewer ones")
        }
        return out
    }

    /// The code as a binary tree: `tree[node][bit]` is the next node (> 0), or a symbol s as
    /// -(s + 1). Every code word ends at a symbol (the code is complete), so no branch is unset.
    static let tree: [[Int]] = {
        var tree: [[Int]] = [[0, 0]]
        for (symbol, (code, length)) in codes.enumerated() {
            var node = 0
            for position in stride(from: length - 1, through: 0, by: -1) {
                let bit = Int(code >> UInt32(position)) & 1
                if position == 0 {
                    tree[node][bit] = -(symbol + 1)
                } else {
                    if tree[node][bit] == 0 {
                        tree.append([0, 0])
                        tree[node][bit] = tree.count - 1
                    }
                    node = tree[node][bit]
                }
            }
        }
        return tree
    }()

    /// Each symbol's code and its length in bits; symbol 256 is EOS.
    static let codes: [(code: UInt32, length: Int)] = [
        (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28), (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),
        (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28), (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),
        (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28), (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
        (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28), (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),
        (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12), (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),
        (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11), (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
        (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6), (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),
        (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8), (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),
        (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7), (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
        (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7), (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),
        (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7), (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),
        (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13), (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
        (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5), (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
        (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7), (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
        (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5), (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
        (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15), (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),
        (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20), (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),
        (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23), (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
        (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23), (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
        (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23), (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),
        (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22), (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
        (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24), (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),
        (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21), (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),
        (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22), (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
        (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19), (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),
        (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27), (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),
        (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27), (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
        (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26), (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),
        (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21), (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
        (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25), (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
        (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26), (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),
        (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27), (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),
        (0x3fffffff, 30),
    ]
}
