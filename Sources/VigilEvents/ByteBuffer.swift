/// A growable byte buffer for output on the hot path: one allocation, reused for every event and
/// batch (`removeAll` keeps it), appends without copy-on-write or uniqueness checks. Not
/// copyable: it has one owner, which writes it out (for example with one write(2) per batch).
public struct ByteBuffer: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Bytes written so far.
    public private(set) var count = 0

    /// An empty buffer with room for `capacity` bytes before it first grows.
    public init(capacity: Int = 1 << 12) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// Whether nothing has been written.
    public var isEmpty: Bool { count == 0 }

    /// Forgets the bytes, keeps the memory.
    public mutating func removeAll() { count = 0 }

    /// Forgets the bytes after the first `count` (undoes a partial write).
    public mutating func truncate(to count: Int) {
        precondition(count >= 0 && count <= self.count, "ByteBuffer.truncate beyond the written bytes")
        self.count = count
    }

    /// Makes room for `extra` more bytes.
    @inline(__always)
    mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(to: count + extra) }
    }

    private mutating func grow(to needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        grown.update(from: base, count: count)
        base.deallocate()
        base = grown
        capacity = newCapacity
    }

    /// Appends one byte.
    @inline(__always)
    public mutating func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    /// Appends bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        UnsafeMutableRawPointer(base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    /// Appends bytes.
    public mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) { append(UnsafeRawBufferPointer(bytes)) }

    /// Appends bytes.
    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Appends the UTF-8 bytes of a literal (no escaping).
    public mutating func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends the bytes of another buffer.
    public mutating func append(_ other: borrowing ByteBuffer) {
        other.withUnsafeBytes { append($0) }
    }

    /// Appends `value` in decimal.
    @inline(__always)
    public mutating func append(decimal value: UInt64) {
        let digits = Self.decimalDigits(value)
        reserve(digits)
        Self.writePadded(value, digits: digits, at: base + count)
        count += digits
    }

    /// Appends `value` in decimal, with a minus sign when negative.
    public mutating func append(decimal value: Int64) {
        if value < 0 { append(0x2d) }
        append(decimal: value.magnitude)
    }

    /// Appends `value` in decimal, zero padded to `width` digits.
    mutating func append(decimal value: UInt64, width: Int) {
        let digits = Self.decimalDigits(value)
        let total = max(digits, width)
        reserve(total)
        let o = base + count
        for i in 0..<(total - digits) { o[i] = 0x30 }
        Self.writePadded(value, digits: digits, at: o + (total - digits))
        count += total
    }

    /// How many decimal digits `value` has (1 for 0).
    @inline(__always)
    static func decimalDigits(_ value: UInt64) -> Int {
        var digits = 1, v = value
        while v >= 10_000 { v /= 10_000; digits += 4 }
        if v >= 100 { digits += v >= 1000 ? 3 : 2 } else if v >= 10 { digits += 1 }
        return digits
    }

    /// Writes the last `digits` decimal digits of `value` at `o`, zero padded (no padding when
    /// `digits` is `decimalDigits(value)`), two at a time from the end.
    @inline(__always)
    static func writePadded(_ value: UInt64, digits: Int, at o: UnsafeMutablePointer<UInt8>) {
        var v = value, i = digits
        let pairs = twoDigits.utf8Start
        while i >= 2 {
            let pair = Int(v % 100) * 2
            v /= 100
            i -= 2
            o[i] = pairs[pair]
            o[i + 1] = pairs[pair + 1]
        }
        if i == 1 { o[0] = UInt8(truncatingIfNeeded: v % 10) &+ 0x30 }
    }

    /// "00" "01" ... "99", one after another. A literal, not a global array: every use of a
    /// global made at first use asks whether it was made yet (swift_once), per number written.
    @inline(__always)
    private static var twoDigits: StaticString {
        """
        00010203040506070809101112131415161718192021222324\
        25262728293031323334353637383940414243444546474849\
        50515253545556575859606162636465666768697071727374\
        75767778798081828384858687888990919293949596979899
        """
    }

    /// Lets `body` write exactly `count` bytes at the end.
    @inline(__always)
    mutating func withUnfilled(_ count: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Void) {
        reserve(count)
        body(base + self.count)
        self.count += count
    }

    /// Appends `count` bytes from `source` (at most 64), copying eight at a time: `source` must
    /// be readable up to the next multiple of eight bytes.
    @inline(__always)
    mutating func appendShort(_ source: UnsafePointer<UInt8>, count n: Int) {
        reserve(n + 8)
        let o = UnsafeMutableRawPointer(base + count)
        var i = 0
        while i < n {
            o.storeBytes(of: UnsafeRawPointer(source + i).loadUnaligned(as: UInt64.self), toByteOffset: i, as: UInt64.self)
            i += 8
        }
        count += n
    }

    /// Calls `body` with the bytes written.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// A copy of the bytes from `start` to the end.
    public func bytes(from start: Int = 0) -> [UInt8] {
        precondition(start >= 0 && start <= count, "ByteBuffer.bytes(from:) beyond the written bytes")
        return Array(UnsafeBufferPointer(start: base + start, count: count - start))
    }

    /// Replaces the byte at `index` (written before).
    mutating func replace(at index: Int, with byte: UInt8) {
        precondition(index >= 0 && index < count, "ByteBuffer.replace beyond the written bytes")
        base[index] = byte
    }

    // MARK: JSON strings

    /// Appends a JSON string literal of `bytes`: valid UTF-8 as JSON text (quote, backslash and
    /// controls escaped, DEL as \u007f), each byte that is not part of valid UTF-8 as a lone low
    /// surrogate \udcXX, so the exact bytes can be recovered (see `ByteString.appendJSON`).
    /// Runs of plain ASCII are copied eight bytes at a time.
    public mutating func appendJSONString(_ bytes: UnsafeBufferPointer<UInt8>) {
        append(0x22)
        appendJSONStringContent(bytes)
        append(0x22)
    }

    /// Appends a JSON string literal of what `body` appends: the same bytes as `appendJSONString`
    /// of them, written in place when they are plain ASCII (nothing to escape), else moved aside
    /// and escaped.
    @inline(__always)
    mutating func appendJSONString(writtenBy body: (inout ByteBuffer) -> Void) {
        append(0x22)
        let start = count
        body(&self)
        var i = start
        while i < count {
            let c = base[i]
            if c < 0x20 || c >= 0x7f || c == 0x22 || c == 0x5c { break }
            i += 1
        }
        if i < count { // moved aside (on the stack when small) and escaped back in place
            let n = count - start
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: n) { raw in
                _ = raw.initialize(from: UnsafeBufferPointer(start: base + start, count: n))
                count = start
                appendJSONStringContent(UnsafeBufferPointer(raw))
            }
        }
        append(0x22)
    }

    /// The escaped content of a JSON string, without the quotes (to join several parts).
    public mutating func appendJSONStringContent(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let s = bytes.baseAddress else { return }
        let n = bytes.count
        reserve(n * 6) // the worst case: every byte becomes \u00XX or \udcXX
        var o = base + count
        var i = 0
        while i < n {
            if i + 8 <= n {
                let word = UnsafeRawPointer(s + i).loadUnaligned(as: UInt64.self)
                if !Self.mayNeedEscaping(word) {
                    UnsafeMutableRawPointer(o).storeBytes(of: word, as: UInt64.self)
                    o += 8
                    i += 8
                    continue
                }
            } else if n >= 8 {
                // Fewer than 8 bytes left: the last 8 bytes of the string, when all plain, were
                // (up to i) and are (from i) copied one for one; store them ending where the
                // string ends.
                let word = UnsafeRawPointer(s + n - 8).loadUnaligned(as: UInt64.self)
                if !Self.mayNeedEscaping(word) {
                    o += n - i
                    UnsafeMutableRawPointer(o - 8).storeBytes(of: word, as: UInt64.self)
                    i = n
                    break
                }
            }
            let c = s[i]
            if c >= 0x20 && c < 0x7f && c != 0x22 && c != 0x5c {
                o.pointee = c
                o += 1
                i += 1
            } else if c < 0x80 {
                o = Self.writeEscapedASCII(c, at: o)
                i += 1
            } else {
                let length = ByteString.validUTF8Length(bytes, at: i)
                if length > 0, (c == 0xc2 || c == 0xd8 || c == 0xe2), case let scalar = Self.scalarValue(s + i, length),
                   ByteString.isDisplayControl(scalar) {
                    // C1 controls, line separators, bidi controls: \uXXXX (same value, never raw)
                    o = Self.writeHexEscape(prefix: Self.hexDigit(UInt8(scalar >> 12)), Self.hexDigit(UInt8((scalar >> 8) & 0xf)),
                                            UInt8(scalar & 0xff), at: o)
                    i += length
                } else if length > 0 {
                    o.update(from: s + i, count: length)
                    o += length
                    i += length
                } else {
                    o = Self.writeHexEscape(prefix: 0x64, 0x63, c, at: o) // \udcXX
                    i += 1
                }
            }
        }
        count = o - base
    }

    /// Whether any of the 8 bytes of `word` is below 0x20, a quote, a backslash, or 0x7f and
    /// above (the exact test for "all plain ASCII"; false positives only send bytes to the slow
    /// path).
    @inline(__always)
    static func mayNeedEscaping(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ v: UInt64) -> UInt64 { (v &- ones) & ~v & highs }
        let control = (word &- ones &* 0x20) & ~word & highs
        let quote = hasZeroByte(word ^ (ones &* 0x22))
        let backslash = hasZeroByte(word ^ (ones &* 0x5c))
        let high = ((word &+ ones) | word) & highs // 0x7f...0xff
        return (control | quote | backslash | high) != 0
    }

    /// The scalar value of the valid UTF-8 sequence of `length` (2 or 3) bytes at `p`.
    @inline(__always)
    static func scalarValue(_ p: UnsafePointer<UInt8>, _ length: Int) -> UInt32 {
        length == 2 ? UInt32(p[0] & 0x1f) << 6 | UInt32(p[1] & 0x3f)
            : UInt32(p[0] & 0x0f) << 12 | UInt32(p[1] & 0x3f) << 6 | UInt32(p[2] & 0x3f)
    }

    /// Writes the escape of an ASCII byte that cannot stand as is in a JSON string.
    @inline(__always)
    static func writeEscapedASCII(_ c: UInt8, at o: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        let short: UInt8
        switch c {
        case 0x22: short = 0x22
        case 0x5c: short = 0x5c
        case 0x0a: short = 0x6e
        case 0x0d: short = 0x72
        case 0x09: short = 0x74
        default: return writeHexEscape(prefix: 0x30, 0x30, c, at: o) // \u00XX
        }
        o[0] = 0x5c
        o[1] = short
        return o + 2
    }

    /// Writes \u, two prefix characters, and `c` as two hex digits.
    @inline(__always)
    static func writeHexEscape(prefix p0: UInt8, _ p1: UInt8, _ c: UInt8, at o: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        o[0] = 0x5c
        o[1] = 0x75
        o[2] = p0
        o[3] = p1
        o[4] = hexDigit(c >> 4)
        o[5] = hexDigit(c & 0xf)
        return o + 6
    }

    @inline(__always)
    static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x57 + v }

    /// Appends `v` in lower-case hex without leading zeros (at least one digit), no prefix: the
    /// one hex writer of flags, pointers and IPv6 groups.
    mutating func appendHexDigits(_ v: UInt64) {
        var started = false
        for shift in stride(from: 60, through: 0, by: -4) {
            let digit = UInt8((v >> UInt64(shift)) & 0xf)
            if digit != 0 || started || shift == 0 {
                append(Self.hexDigit(digit))
                started = true
            }
        }
    }
}

extension ByteBuffer {
    /// Appends a JSON string literal of `s` (exact bytes, see `appendJSONString`).
    public mutating func appendJSON(_ s: ByteString) {
        s.bytes.withUnsafeBufferPointer { appendJSONString($0) }
    }

    /// Appends a JSON string literal of static text.
    public mutating func appendJSON(_ text: StaticString) {
        appendJSONString(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends a JSON string literal of a Swift string.
    public mutating func appendJSON(_ s: String) {
        if let done: Void = s.utf8.withContiguousStorageIfAvailable({ appendJSONString($0) }) { return done }
        var copy = s
        copy.withUTF8 { appendJSONString($0) }
    }

    /// Appends a JSON array of byte strings.
    public mutating func appendJSON(_ list: [ByteString]) {
        append(0x5b)
        for i in list.indices {
            if i > 0 { append(0x2c) }
            appendJSON(list[i])
        }
        append(0x5d)
    }

    /// Appends a JSON value.
    @inline(__always)
    public mutating func appendJSON(_ value: FieldValue) {
        switch value {
        case .string(let s): appendJSON(s)
        case .uint(let v): append(decimal: v)
        case .int(let v): append(decimal: v)
        case .bool(let v): append(v ? "true" : "false")
        case .strings(let list): appendJSON(list)
        case .uints(let list):
            append(0x5B) // [
            for (i, v) in list.enumerated() {
                if i > 0 { append(0x2C) } // ,
                append(decimal: v)
            }
            append(0x5D) // ]
        }
    }
}

extension UInt8 {
    /// The value of this byte as one hex digit (0-9, a-f, A-F), or nil: the one hex reader of
    /// escapes in conditions (`\x41`) and percent-encoded text (gRPC's grpc-message).
    public var hexDigitValue: UInt8? {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): self - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): self - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): self - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
