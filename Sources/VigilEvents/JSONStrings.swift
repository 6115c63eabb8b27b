/// A list of texts rendered once as JSON string literals (quoted and escaped) into memory never
/// freed, appended per event by index: no escaping, no retain (the names of evt.type,
/// evt.category, evt.kind and evt.res).
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
        let rendered = out.bytes() + [UInt8](repeating: 0, count: 8)
        let memory = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: rendered.count)
        _ = memory.initialize(from: rendered)
        bytes = UnsafeBufferPointer(memory)
        let startMemory = UnsafeMutableBufferPointer<Int32>.allocate(capacity: starts.count)
        _ = startMemory.initialize(from: starts)
        self.starts = UnsafeBufferPointer(startMemory)
    }

    /// How many literals there are.
    var count: Int { starts.count - 1 }

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
