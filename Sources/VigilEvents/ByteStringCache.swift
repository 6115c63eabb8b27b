/// Byte strings the decoder has made recently, so that the same bytes arriving again (a command
/// name, a path opened over and over, its directory and file name) share one allocation instead
/// of each event making its own; a path keeps its directory and file name with it. Direct-mapped:
/// each byte sequence has one slot (by hash), a newer string replaces an older one there. Only
/// short strings are kept, so the table stays small (about `slotCount` x `maxLength` bytes).
public struct ByteStringCache: Sendable {
    /// Slots in the table (a power of two).
    public static let slotCount = 1024
    /// Longer strings are made anew each time.
    public static let maxLength = 256

    /// The cached strings by slot, and for a path the directory and file name made from it
    /// (parallel arrays: a lookup touches only the string it may return).
    private var strings: [ByteString?]
    /// Where each slot's string keeps its bytes, 0 for none (to tell a path by its storage
    /// without touching it: the slot keeps that string alive, so no other has that address).
    private var addresses: [UInt]
    private var parts: [(directory: ByteString, filename: ByteString)?]
    /// Scratch space for strings built in parts (a folded path), before they are looked up.
    var scratch: [UInt8] = []

    /// An empty table.
    public init() {
        strings = Array(repeating: nil, count: Self.slotCount)
        addresses = Array(repeating: 0, count: Self.slotCount)
        parts = Array(repeating: nil, count: Self.slotCount)
        scratch.reserveCapacity(1024)
    }

    /// A byte string with the bytes of `raw`: the cached one when the same bytes were seen in
    /// its slot, else a new one (kept there when short enough).
    public mutating func string(_ raw: UnsafeRawBufferPointer) -> ByteString { interned(raw).string }

    /// `string(raw)` and the slot that holds it (nil when it is too long to keep).
    mutating func interned(_ raw: UnsafeRawBufferPointer) -> (string: ByteString, slot: Int?) {
        let n = raw.count
        guard n <= Self.maxLength, let base = raw.baseAddress else { return (ByteString(raw), nil) }
        let slot = Int(truncatingIfNeeded: Self.hash(base, n)) & (Self.slotCount - 1)
        if let cached = strings[slot], cached.bytes.withUnsafeBytes({ $0.count == n && memoryEqual($0.baseAddress, base, n) }) {
            return (cached, slot)
        }
        let made = ByteString(raw)
        strings[slot] = made
        addresses[slot] = Self.address(made)
        parts[slot] = nil
        return (made, slot)
    }

    /// The cached string with the bytes of `scratch`, and its slot.
    mutating func internedScratch() -> (string: ByteString, slot: Int?) {
        let bytes = scratch
        return bytes.withUnsafeBytes { interned($0) }
    }

    /// The directory and file name kept for `path`, when `slot` still holds this very string.
    func parts(of path: ByteString, slot: Int?) -> (directory: ByteString, filename: ByteString)? {
        guard let slot, addresses[slot] != 0, addresses[slot] == Self.address(path) else { return nil }
        return parts[slot]
    }

    /// Keeps the directory and file name of `path` with it, when `slot` still holds this string.
    mutating func keep(_ parts: (directory: ByteString, filename: ByteString), of path: ByteString, slot: Int?) {
        guard let slot, addresses[slot] != 0, addresses[slot] == Self.address(path) else { return }
        self.parts[slot] = parts
    }

    /// Where `s` keeps its bytes (0 when it has none).
    private static func address(_ s: ByteString) -> UInt {
        s.bytes.withUnsafeBytes { $0.count > 0 ? UInt(bitPattern: $0.baseAddress) : 0 }
    }

    /// FNV-1a over 8-byte words, then over the tail bytes.
    @inline(__always)
    private static func hash(_ p: UnsafeRawPointer, _ n: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var i = 0
        while i + 8 <= n {
            h = (h ^ p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x0000_0100_0000_01b3
            i += 8
        }
        while i < n {
            h = (h ^ UInt64(p.load(fromByteOffset: i, as: UInt8.self))) &* 0x0000_0100_0000_01b3
            i += 1
        }
        return h ^ (h >> 29)
    }
}

/// Whether `n` bytes at `a` and `b` are equal.
@inline(__always)
private func memoryEqual(_ a: UnsafeRawPointer?, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
    guard let a else { return n == 0 }
    var i = 0
    while i + 8 <= n {
        if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
        i += 8
    }
    while i < n {
        if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
        i += 1
    }
    return true
}
