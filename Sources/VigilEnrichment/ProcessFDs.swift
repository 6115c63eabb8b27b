import VigilEvents

/// One process's fds (`FDTable`'s entry per process): the fds below `direct` in an array
/// indexed by number, so the events on them find their entry without hashing; any above in a
/// dictionary. A class, so the table hands the same one to the events of a process (and to a
/// thread's) without copying it; `copy()` for a forked child. The array grows to the highest
/// low fd the process has had (an `FDInfo?` per slot up to it: bash's fd 255 makes 256 slots),
/// never past `direct` (the usual soft limit of open files).
final class ProcessFDs {
    /// fds below this are kept in `low`.
    static let direct: Int32 = 1024
    private var low: [FDInfo?] = []
    private var high: [Int32: FDInfo] = [:]
    /// How many fds are known.
    private(set) var count = 0

    /// An empty table.
    init() {}

    /// A table of `entries` (read from /proc).
    init(_ entries: [Int32: FDInfo]) {
        for (fd, entry) in entries { self[fd] = entry }
    }

    /// A copy (a forked child's).
    func copy() -> ProcessFDs {
        let copy = ProcessFDs()
        copy.low = low
        copy.high = high
        copy.count = count
        return copy
    }

    /// The entry of `fd`, nil when not known; setting nil removes it.
    subscript(fd: Int32) -> FDInfo? {
        get {
            if fd >= 0 && fd < Self.direct {
                let i = Int(fd)
                return i < low.count ? low[i] : nil
            }
            return high[fd]
        }
        set {
            // Tested by pattern (`isSome`), not `== nil`: FDInfo is Equatable, and comparing its
            // optionals copied both sides through value witnesses.
            let adds = newValue.isSome
            if fd >= 0 && fd < Self.direct {
                let i = Int(fd)
                if i >= low.count {
                    guard adds else { return }
                    low.append(contentsOf: repeatElement(nil, count: i + 1 - low.count))
                }
                if !low[i].isSome { if adds { count += 1 } } else if !adds { count -= 1 }
                low[i] = newValue
            } else {
                let had = (adds ? high.updateValue(newValue!, forKey: fd) : high.removeValue(forKey: fd)).isSome
                if !had { if adds { count += 1 } } else if !adds { count -= 1 }
            }
        }
    }

    /// Every known fd, in no order.
    var numbers: [Int32] {
        var numbers: [Int32] = []
        numbers.reserveCapacity(count)
        for i in low.indices where low[i].isSome { numbers.append(Int32(i)) }
        numbers += high.keys
        return numbers
    }

    /// Every known fd and its entry.
    var entries: [Int32: FDInfo] {
        var entries = high
        for i in low.indices { if let entry = low[i] { entries[Int32(i)] = entry } }
        return entries
    }

    /// Removes the entries for which `drop` is true.
    func removeAll(where drop: (FDInfo) -> Bool) {
        for fd in numbers where self[fd].map(drop) == true { self[fd] = nil }
    }

    /// Whether some entry satisfies `test`.
    func contains(where test: (FDInfo) -> Bool) -> Bool {
        low.contains { $0.map(test) == true } || high.values.contains(where: test)
    }
}

extension Optional where Wrapped == FDInfo {
    /// Whether an entry is there, tested by pattern (`!= nil` on `FDInfo?` compares two optionals).
    @inline(__always)
    var isSome: Bool {
        if case .none = self { return false }
        return true
    }
}
