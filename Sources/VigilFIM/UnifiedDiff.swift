/// Unified diffs (`diff -u`'s hunks, without the file headers) of small text files.
public enum UnifiedDiff {
    /// Cells of the line table compared after the common head and tail are set aside; a larger
    /// middle gives no hunks (`nil`), only the hashes.
    public static let maxCells = 4_000_000

    /// The hunks turning `old` into `new`, `context` unchanged lines around each change, as
    /// `diff -u` prints them (`@@ -a,b +c,d @@`, then ` `, `-`, `+` lines); empty when they are
    /// the same; nil when the changed middle is too large to compare.
    public static func hunks(_ old: [String], _ new: [String], context: Int = 3) -> [String]? {
        guard let ops = script(old, new) else { return nil }
        var out: [String] = []
        var i = 0
        while i < ops.count {
            guard ops[i].op != " " else { i += 1; continue }
            // a hunk: from `context` lines before this change to `context` after the last change
            // closer than 2 * context unchanged lines
            let start = max(0, i - context)
            var end = i
            var j = i
            while j < ops.count {
                if ops[j].op != " " { end = j; j += 1; continue }
                var k = j
                while k < ops.count && ops[k].op == " " { k += 1 }
                if k < ops.count && k - j <= 2 * context { j = k; continue }
                break
            }
            let stop = min(ops.count, end + context + 1)
            let slice = ops[start..<stop]
            let oldCount = slice.filter { $0.op != "+" }.count, newCount = slice.filter { $0.op != "-" }.count
            let oldStart = ops[start].old, newStart = ops[start].new
            func range(_ first: Int, _ count: Int) -> String {
                let line = count == 0 ? first : first + 1
                return count == 1 ? "\(line)" : "\(line),\(count)"
            }
            out.append("@@ -\(range(oldStart, oldCount)) +\(range(newStart, newCount)) @@")
            for op in slice { out.append(String(op.op) + op.line) }
            i = stop
        }
        return out
    }

    /// One line of the edit script: kept (` `), removed (`-`) or added (`+`), and how many old
    /// and new lines come before it.
    struct Op {
        var op: Character
        var line: String
        var old: Int
        var new: Int
    }

    /// The edit script: the common head and tail kept, the middle by a longest common
    /// subsequence of lines (removals before additions where both fit, as diff prints them).
    static func script(_ a: [String], _ b: [String]) -> [Op]? {
        var head = 0
        while head < a.count && head < b.count && a[head] == b[head] { head += 1 }
        var tail = 0
        while tail < a.count - head && tail < b.count - head && a[a.count - 1 - tail] == b[b.count - 1 - tail] { tail += 1 }
        let x = Array(a[head..<(a.count - tail)]), y = Array(b[head..<(b.count - tail)])
        guard (x.count + 1) * (y.count + 1) <= maxCells else { return nil }
        // lcs[i][j]: the longest common subsequence of x[i...] and y[j...]
        let width = y.count + 1
        var lcs = [Int32](repeating: 0, count: (x.count + 1) * width)
        if !x.isEmpty && !y.isEmpty {
            for i in stride(from: x.count - 1, through: 0, by: -1) {
                for j in stride(from: y.count - 1, through: 0, by: -1) {
                    lcs[i * width + j] = x[i] == y[j] ? lcs[(i + 1) * width + j + 1] + 1 : max(lcs[(i + 1) * width + j], lcs[i * width + j + 1])
                }
            }
        }
        var ops: [Op] = []
        var o = 0, n = 0
        func emit(_ op: Character, _ line: String) {
            ops.append(Op(op: op, line: line, old: o, new: n))
            if op != "+" { o += 1 }
            if op != "-" { n += 1 }
        }
        for line in a[0..<head] { emit(" ", line) }
        var i = 0, j = 0
        while i < x.count || j < y.count {
            if i < x.count && j < y.count && x[i] == y[j] {
                emit(" ", x[i]); i += 1; j += 1
            } else if i < x.count && (j == y.count || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
                emit("-", x[i]); i += 1
            } else {
                emit("+", y[j]); j += 1
            }
        }
        for line in a[(a.count - tail)...] { emit(" ", line) }
        return ops
    }
}
