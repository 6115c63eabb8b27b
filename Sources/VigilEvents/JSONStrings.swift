/// A list of texts rendered once as JSON string literals (quoted and escaped) into memory never
/// freed, appended per event by index: no escaping, no retain (the names of evt.type,
/// evt.category and evt.kind).
struct JSONStrings: @unchecked Sendable { // immutable once made
    /// Every literal, one after another, then 8 bytes of padding (`ByteBuffer.appendShort`).
    private let bytes: UnsafeBufferPointer<UInt8>
    /// Where literal i starts; its end is where i + 1 starts.
    private let starts: UnsafeBufferPointer<Int32>

    init(_ texts: [String]) {
        var out = ByteBuffer(capacity: 1024)
        var starts: [Int32] = []
        for text in texts {
            starts.append(Int32(out.count))
            out.appendJSON(text)
        }
        starts.append(Int32(out.count))
        bytes = .immortal(out.bytes() + [UInt8](repeating: 0, count: 8))
        self.starts = .immortal(starts)
    }

    /// Appends literal `index`.
    @inline(__always)
    func append(_ index: Int, to out: inout ByteBuffer) {
        let start = Int(starts[index]), count = Int(starts[index + 1]) - start
        if count <= 64 {
            out.appendShort(bytes.baseAddress! + start, count: count)
        } else {
            out.append(UnsafeBufferPointer(rebasing: bytes[start..<(start + count)]))
        }
    }
}

extension UnsafeBufferPointer {
    /// A copy of `array` in memory that is never freed: tables made once and read per event
    /// without retaining anything (`JSONPlan`, `JSONStrings`, the syscall table's parameters).
    static func immortal(_ array: [Element]) -> UnsafeBufferPointer<Element> {
        let memory = UnsafeMutableBufferPointer<Element>.allocate(capacity: Swift.max(1, array.count))
        _ = memory.initialize(from: array)
        return UnsafeBufferPointer(rebasing: memory[0..<array.count])
    }
}
