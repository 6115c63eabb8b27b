/// What kind of file a watched path is, for its diff: account and access files get a semantic
/// diff, secret ones never show their content.
public enum FileFormat: String, Sendable, Codable, CaseIterable {
    /// /etc/passwd: users.
    case passwd
    /// /etc/shadow: passwords (secret).
    case shadow
    /// /etc/group: groups and members.
    case group
    /// /etc/gshadow: group passwords and administrators (secret).
    case gshadow
    /// sudoers and sudoers.d files: rules.
    case sudoers
    /// authorized_keys: SSH public keys.
    case authorizedKeys = "authorized_keys"
    /// Anything else: a unified diff for small text files that hold no secret, else hashes only.
    case other

    /// The format of `path` by its name.
    public static func of(_ path: String) -> FileFormat {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        switch name {
        case "passwd", "passwd-": return .passwd
        case "shadow", "shadow-": return .shadow
        case "group", "group-": return .group
        case "gshadow", "gshadow-": return .gshadow
        case "sudoers": return .sudoers
        case "authorized_keys", "authorized_keys2": return .authorizedKeys
        default: return path.contains("/sudoers.d/") ? .sudoers : .other
        }
    }

    /// Whether the content is secret: no content, no diff, no hashes of fields in alerts.
    public var isSecret: Bool { self == .shadow || self == .gshadow }
}

/// A file's content as the semantic diff keeps it in the baseline: for secret formats each
/// password field is replaced by a digest of it (so "password changed" can be told without
/// keeping the hash), for the others the lines themselves.
public struct SemanticState: Sendable, Codable, Equatable {
    /// The lines, with secret fields replaced by `sha256=` digests (no colon: the fields stay where they were).
    public var lines: [String]

    /// A state of these lines (secret fields already replaced).
    public init(lines: [String]) { self.lines = lines }

    /// The state of `content` in `format` (nil for `.other`).
    public static func of(_ content: [UInt8], format: FileFormat) -> SemanticState? {
        guard format != .other else { return nil }
        let text = String(decoding: content, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        if format.isSecret {
            lines = lines.map { line in
                var fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                if fields.count > 1 { fields[1] = SemanticDiff.secretDigest(fields[1]) }
                return fields.joined(separator: ":")
            }
        }
        return SemanticState(lines: lines)
    }
}

/// The meaning of a change to an account or access file: users, groups, passwords (never their
/// values), sudo rules, SSH keys.
public struct SemanticDiff: Sendable, Codable, Equatable {
    /// One line of the diff, e.g. `user added: eve (uid 0, gid 0, home /root, shell /bin/sh)`.
    public var changes: [String] = []
    /// Users (or groups) added.
    public var usersAdded: [String] = []
    /// Users (or groups) removed.
    public var usersRemoved: [String] = []
    /// Accounts with uid 0 other than root, after the change.
    public var uidZero: [String] = []
    /// Whether a uid-0 account other than root appeared with this change.
    public var newUIDZero = false
    /// SSH keys added, as `TYPE FINGERPRINT COMMENT`.
    public var keysAdded: [String] = []
    /// SSH keys removed, as `TYPE FINGERPRINT COMMENT`.
    public var keysRemoved: [String] = []
    /// sudo rules added and removed (sudoers), one logical line each.
    public var sudoRulesAdded: [String] = [], sudoRulesRemoved: [String] = []

    /// A digest standing for a secret field: `sha256=` (no colon, which would shift the fields
    /// after it) and 16 hex digits of SHA-256 over it, after a lock's `!` (kept in front, so a
    /// lock or unlock is told apart from a new password), or the field itself when it holds no
    /// password (empty, `*`, `!`, `!*`, `!!`, `x`). Kept in the baseline only; alerts say
    /// "password changed", never this.
    public static func secretDigest(_ field: String) -> String {
        if field.isEmpty || field == "*" || field == "!" || field == "!*" || field == "x" || field == "!!" { return field }
        let locked = field.hasPrefix("!") ? "!" : ""
        return locked + "sha256=" + SHA256.hex(Array(field.utf8.dropFirst(locked.count))).prefix(16)
    }

    /// The diff from `old` to `new` in `format`.
    public static func between(_ old: SemanticState, _ new: SemanticState, format: FileFormat) -> SemanticDiff {
        switch format {
        case .passwd: return accounts(old, new, kind: "user", describe: describePasswd, compare: comparePasswd, uidField: 2)
        case .shadow: return accounts(old, new, kind: "shadow entry", describe: { _ in "" }, compare: compareShadow, uidField: nil)
        case .group: return accounts(old, new, kind: "group", describe: describeGroup, compare: compareGroup, uidField: nil)
        case .gshadow: return accounts(old, new, kind: "gshadow entry", describe: { _ in "" }, compare: compareGshadow, uidField: nil)
        case .sudoers: return sudoers(old, new)
        case .authorizedKeys: return keys(old, new)
        case .other: return SemanticDiff()
        }
    }

    // MARK: account files (name:field:field...)

    private static func fields(_ line: String) -> [String] {
        line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
    }

    private static func table(_ state: SemanticState) -> [(name: String, fields: [String])] {
        state.lines.filter { !$0.hasPrefix("#") && $0.contains(":") }.map { line in
            let f = fields(line)
            return (f[0], f)
        }
    }

    private static func field(_ f: [String], _ i: Int) -> String { i < f.count ? f[i] : "" }

    private static func describePasswd(_ f: [String]) -> String {
        " (uid \(field(f, 2)), gid \(field(f, 3)), home \(field(f, 5)), shell \(field(f, 6)))"
    }

    private static func describeGroup(_ f: [String]) -> String {
        " (gid \(field(f, 2)), members \(field(f, 3).isEmpty ? "none" : field(f, 3)))"
    }

    private static func comparePasswd(_ name: String, _ a: [String], _ b: [String]) -> [String] {
        var out: [String] = []
        for (i, what) in [(2, "uid"), (3, "gid"), (4, "gecos"), (5, "home"), (6, "shell")] where field(a, i) != field(b, i) {
            out.append("user \(name): \(what) changed from \(field(a, i)) to \(field(b, i))")
        }
        if field(a, 1) != field(b, 1) { out.append("user \(name): password field changed") }
        return out
    }

    private static func passwordChange(_ kind: String, _ name: String, _ a: String, _ b: String) -> [String] {
        guard a != b else { return [] }
        let wasLocked = a.hasPrefix("!"), isLocked = b.hasPrefix("!")
        if !wasLocked && isLocked && a == String(b.dropFirst()) { return ["\(kind) \(name): password locked"] }
        if wasLocked && !isLocked && b == String(a.dropFirst()) { return ["\(kind) \(name): password unlocked"] }
        if b.isEmpty { return ["\(kind) \(name): password removed (empty: no password needed)"] }
        return ["\(kind) \(name): password changed"]
    }

    private static func compareShadow(_ name: String, _ a: [String], _ b: [String]) -> [String] {
        var out = passwordChange("user", name, field(a, 1), field(b, 1))
        for (i, what) in [(2, "last change"), (3, "minimum age"), (4, "maximum age"), (5, "warning period"),
                          (6, "inactivity period"), (7, "expiry date")] where field(a, i) != field(b, i) {
            out.append("user \(name): \(what) changed from \(field(a, i).isEmpty ? "none" : field(a, i)) to \(field(b, i).isEmpty ? "none" : field(b, i))")
        }
        return out
    }

    private static func members(_ s: String) -> Set<String> { Set(s.split(separator: ",").map(String.init)) }

    private static func memberChanges(_ kind: String, _ name: String, _ role: String, _ a: String, _ b: String) -> [String] {
        let before = members(a), after = members(b)
        return after.subtracting(before).sorted().map { "\(kind) \(name): \(role) added: \($0)" }
            + before.subtracting(after).sorted().map { "\(kind) \(name): \(role) removed: \($0)" }
    }

    private static func compareGroup(_ name: String, _ a: [String], _ b: [String]) -> [String] {
        var out: [String] = []
        if field(a, 2) != field(b, 2) { out.append("group \(name): gid changed from \(field(a, 2)) to \(field(b, 2))") }
        return out + memberChanges("group", name, "member", field(a, 3), field(b, 3))
    }

    private static func compareGshadow(_ name: String, _ a: [String], _ b: [String]) -> [String] {
        passwordChange("group", name, field(a, 1), field(b, 1))
            + memberChanges("group", name, "administrator", field(a, 2), field(b, 2))
            + memberChanges("group", name, "member", field(a, 3), field(b, 3))
    }

    private static func accounts(_ old: SemanticState, _ new: SemanticState, kind: String, describe: ([String]) -> String,
                                 compare: (String, [String], [String]) -> [String], uidField: Int?) -> SemanticDiff {
        var diff = SemanticDiff()
        let before = table(old), after = table(new)
        let beforeByName = Dictionary(before.map { ($0.name, $0.fields) }, uniquingKeysWith: { a, _ in a })
        let afterByName = Dictionary(after.map { ($0.name, $0.fields) }, uniquingKeysWith: { a, _ in a })
        for (name, f) in after where beforeByName[name] == nil {
            diff.usersAdded.append(name)
            diff.changes.append("\(kind) added: \(name)\(describe(f))")
        }
        for (name, _) in before where afterByName[name] == nil {
            diff.usersRemoved.append(name)
            diff.changes.append("\(kind) removed: \(name)")
        }
        for (name, f) in after {
            if let g = beforeByName[name] { diff.changes += compare(name, g, f) }
        }
        if let uid = uidField {
            func zero(_ t: [(name: String, fields: [String])]) -> Set<String> {
                Set(t.filter { field($0.fields, uid) == "0" && $0.name != "root" }.map(\.name))
            }
            let z = zero(after)
            diff.uidZero = z.sorted()
            let appeared = z.subtracting(zero(before))
            if !appeared.isEmpty {
                diff.newUIDZero = true
                diff.changes.append("a second uid 0 account: \(appeared.sorted().joined(separator: ", "))")
            }
        }
        return diff
    }

    // MARK: sudoers

    /// The rules and directives of a sudoers file: comments and blank lines dropped, continued lines
    /// joined, whitespace folded. `#include` and `@include` are directives, not comments.
    static func sudoRules(_ state: SemanticState) -> [String] {
        var rules: [String] = []
        var pending = ""
        for raw in state.lines {
            var line = raw.trimmingSpaces
            let directive = line.hasPrefix("#include") || line.hasPrefix("#includedir")
            if line.hasPrefix("#") && !directive { continue }
            if line.hasSuffix("\\") {
                line.removeLast()
                pending += line + " "
                continue
            }
            let rule = (pending + line).split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
            pending = ""
            if !rule.isEmpty { rules.append(rule) }
        }
        return rules
    }

    private static func sudoers(_ old: SemanticState, _ new: SemanticState) -> SemanticDiff {
        var diff = SemanticDiff()
        let before = sudoRules(old), after = sudoRules(new)
        let b = Set(before), a = Set(after)
        diff.sudoRulesAdded = after.filter { !b.contains($0) }
        diff.sudoRulesRemoved = before.filter { !a.contains($0) }
        diff.changes = diff.sudoRulesAdded.map { "sudo rule added: \($0)" } + diff.sudoRulesRemoved.map { "sudo rule removed: \($0)" }
        return diff
    }

    // MARK: authorized_keys

    /// One key of an authorized_keys line: type, fingerprint (OpenSSH's SHA256:base64 of the blob)
    /// and comment, as `ssh-keygen -lf` shows them; the line's options first when it has any.
    public static func describeKey(_ line: String) -> String? {
        let trimmed = line.trimmingSpaces
        guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { return nil }
        let parts = splitKeyLine(trimmed)
        guard let typeIndex = parts.firstIndex(where: { $0.hasPrefix("ssh-") || $0.hasPrefix("ecdsa-") || $0.hasPrefix("sk-") }),
              typeIndex + 1 < parts.count, let blob = Base64.decode(parts[typeIndex + 1]) else { return nil }
        let fingerprint = "SHA256:" + Base64.encode(SHA256.digest(blob)).replacingAll("=", with: "")
        let comment = parts[(typeIndex + 2)...].joined(separator: " ")
        let options = typeIndex > 0 ? " options \(parts[..<typeIndex].joined(separator: " "))" : ""
        return "\(parts[typeIndex]) \(fingerprint)\(comment.isEmpty ? "" : " " + comment)\(options)"
    }

    /// Splits at spaces outside double quotes (options may quote spaces).
    private static func splitKeyLine(_ line: String) -> [String] {
        var parts: [String] = [], current = "", quoted = false
        for ch in line {
            if ch == "\"" { quoted.toggle() }
            if (ch == " " || ch == "\t") && !quoted {
                if !current.isEmpty { parts.append(current); current = "" }
            } else {
                current.append(ch)
            }
        }
        if !current.isEmpty { parts.append(current) }
        return parts
    }

    private static func keys(_ old: SemanticState, _ new: SemanticState) -> SemanticDiff {
        var diff = SemanticDiff()
        let before = old.lines.compactMap(describeKey), after = new.lines.compactMap(describeKey)
        let b = Set(before), a = Set(after)
        for key in after where !b.contains(key) {
            diff.keysAdded.append(key)
            diff.changes.append("SSH key added: \(key)")
        }
        for key in before where !a.contains(key) {
            diff.keysRemoved.append(key)
            diff.changes.append("SSH key removed: \(key)")
        }
        return diff
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return String(s)
    }

    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for ch in self { if ch == target { out += replacement } else { out.append(ch) } }
        return out
    }
}

/// Standard base64 (RFC 4648), for SSH key blobs and fingerprints.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            var v = UInt32(bytes[i]) << 16
            if n > 1 { v |= UInt32(bytes[i + 1]) << 8 }
            if n > 2 { v |= UInt32(bytes[i + 2]) }
            for j in 0..<4 { out.append(j <= n ? alphabet[Int((v >> UInt32(18 - 6 * j)) & 63)] : UInt8(ascii: "=")) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        var lookup = [Int](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { lookup[Int(c)] = i }
        var out: [UInt8] = [], buffer: UInt32 = 0, bits = 0
        for c in text.utf8 {
            if c == UInt8(ascii: "=") { break }
            let v = lookup[Int(c)]
            guard v >= 0 else { return nil }
            buffer = buffer << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        return out.isEmpty ? nil : out
    }
}
