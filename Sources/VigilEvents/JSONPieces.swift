/// Pieces of JSON rendered once into memory never freed, appended per event by index: no
/// escaping, no retain (evt.type, evt.category and evt.kind as string literals; each syscall
/// parameter's `args` entry up to its value).
struct JSONPieces: @unchecked Sendable { // immutable once made
    /// Every piece, one after another, then 8 bytes of padding (`ByteBuffer.appendShort`).
    private let bytes: UnsafeBufferPointer<UInt8>
    /// Where piece i starts; its end is where i + 1 starts.
    private let starts: UnsafeBufferPointer<Int32>

    /// Each text as a JSON string literal (quoted and escaped).
    init(strings texts: [String]) {
        self.init(pieces: texts.map { text in
            var out = ByteBuffer(capacity: 64)
            out.appendJSON(text)
            return out.bytes()
        })
    }

    /// Each piece as given (JSON already).
    init(pieces: [[UInt8]]) {
        var starts: [Int32] = [0]
        for piece in pieces { starts.append(starts[starts.count - 1] + Int32(piece.count)) }
        bytes = .immortal(pieces.flatMap { $0 } + [UInt8](repeating: 0, count: 8))
        self.starts = .immortal(starts)
    }

    /// Appends piece `index`.
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
    /// without retaining anything (`JSONPlan`, `JSONPieces`, the syscall table's parameters).
    static func immortal(_ array: [Element]) -> UnsafeBufferPointer<Element> {
        let memory = UnsafeMutableBufferPointer<Element>.allocate(capacity: Swift.max(1, array.count))
        _ = memory.initialize(from: array)
        return UnsafeBufferPointer(rebasing: memory[0..<array.count])
    }
}
