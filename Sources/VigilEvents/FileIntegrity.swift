extension Payload {
    /// A watched file changed (file integrity monitoring: docs/fim.md). No ring record carries
    /// it: the daemon's FIMMonitor makes it after re-reading a file the fim sensor reported, or
    /// at start for a change made while Vigil was down. The event's header (pid, comm, uid, ...)
    /// is the syscall that made the change, when known; Vigil's own process otherwise.
    public struct FIM: Sendable {
        /// What happened to the path: created, removed, modified (content), attributes (mode,
        /// owner or mtime only).
        public var change: String
        /// The path.
        public var path: String
        /// The watch (or profile) that covers it: its path or glob as configured.
        public var profile: String
        /// SHA-256 of the content before and after (hex; empty when the file did not exist, or is not a regular file).
        public var sha256Old: String, sha256: String
        /// Size, mode (permission bits and type), owner uid:gid after the change (before it, for a removal).
        public var size: UInt64, mode: UInt32, uid: UInt32, gid: UInt32
        /// What the change means, one line each (the semantic diff of an account or access file, attribute changes).
        public var diff: [String]
        /// `diff -u`'s lines, for a small text file that holds no secret (empty otherwise).
        public var unified: [String]
        /// The semantic diff's parts: users (or groups) added and removed, the uid 0 accounts
        /// other than root after the change, whether one of them is new, sudo rules and SSH keys
        /// (`TYPE FINGERPRINT COMMENT`, never the key) added and removed.
        public var usersAdded: [String], usersRemoved: [String], uidZero: [String], newUIDZero: Bool
        public var sudoRulesAdded: [String], sudoRulesRemoved: [String], keysAdded: [String], keysRemoved: [String]
        /// The change was made while Vigil was down (found by comparing with the saved baseline at start).
        public var whileDown: Bool
        /// `PATH CHANGE: diff; ...; sha256 OLD -> NEW`, then the unified diff's first lines.
        public var summary: String
        /// For a rename (change `renamed`): the old and the new name; empty otherwise.
        public var renamedFrom = "", renamedTo = ""

        /// Creates the payload.
        public init(change: String, path: String, profile: String = "", sha256Old: String = "", sha256: String = "",
                    size: UInt64 = 0, mode: UInt32 = 0, uid: UInt32 = 0, gid: UInt32 = 0, diff: [String] = [], unified: [String] = [],
                    usersAdded: [String] = [], usersRemoved: [String] = [], uidZero: [String] = [], newUIDZero: Bool = false,
                    sudoRulesAdded: [String] = [], sudoRulesRemoved: [String] = [], keysAdded: [String] = [], keysRemoved: [String] = [],
                    whileDown: Bool = false, summary: String = "", renamedFrom: String = "", renamedTo: String = "") {
            self.change = change; self.path = path; self.profile = profile; self.sha256Old = sha256Old; self.sha256 = sha256
            self.size = size; self.mode = mode; self.uid = uid; self.gid = gid; self.diff = diff; self.unified = unified
            self.usersAdded = usersAdded; self.usersRemoved = usersRemoved; self.uidZero = uidZero; self.newUIDZero = newUIDZero
            self.sudoRulesAdded = sudoRulesAdded; self.sudoRulesRemoved = sudoRulesRemoved; self.keysAdded = keysAdded
            self.keysRemoved = keysRemoved; self.whileDown = whileDown; self.summary = summary
            self.renamedFrom = renamedFrom; self.renamedTo = renamedTo
        }
    }
}

/// The fields of file integrity events (kind `fim`). Falco has none: Vigil's names.
public enum FIMFields {
    static func fim(_ e: Event) -> Payload.FIM? { if case .fim(let f) = e.payload { return f }; return nil }
    static func text(_ s: String) -> FieldValue { .string(ByteString(s)) }
    /// A list field: nil (the field is absent, `exists` false) when empty.
    static func list(_ items: [String]) -> FieldValue? { items.isEmpty ? nil : .strings(items.map { ByteString($0) }) }

    static let fields: [FieldDefinition] = [
        .init("fim.path", .string, [.fim], "The watched file that changed (absolute path).") { e, _ in fim(e).map { text($0.path) } },
        .init("fim.change", .string, [.fim], "What happened to it: created, removed, modified (its content; its attributes may have changed too), attributes (only mode, owner or mtime) or renamed (a rename whose ends the kernel reported: a file moved over the watched name, `sed -i`, `mv` within or out of a watch; fim.rename.from and fim.rename.to name both ends, fim.path the watched one).") { e, _ in fim(e).map { text($0.change) } },
        .init("fim.rename.from", .string, [.fim], "For a rename (fim.change renamed): the old name (absent otherwise).") { e, _ in
            fim(e).flatMap { $0.renamedFrom.isEmpty ? nil : text($0.renamedFrom) }
        },
        .init("fim.rename.to", .string, [.fim], "For a rename (fim.change renamed): the new name (absent otherwise).") { e, _ in
            fim(e).flatMap { $0.renamedTo.isEmpty ? nil : text($0.renamedTo) }
        },
        .init("fim.profile", .string, [.fim], "The watch that covers the file: the path, directory or glob of `fim:` (or of a profile) it matched.") { e, _ in fim(e).map { text($0.profile) } },
        .init("fim.sha256", .string, [.fim], "SHA-256 of the content after the change, hex (absent for a removal or a file that is not regular).") { e, _ in
            fim(e).flatMap { $0.sha256.isEmpty ? nil : text($0.sha256) }
        },
        .init("fim.sha256.old", .string, [.fim], "SHA-256 of the content before the change, hex (absent for a creation).") { e, _ in
            fim(e).flatMap { $0.sha256Old.isEmpty ? nil : text($0.sha256Old) }
        },
        .init("fim.size", .uint, [.fim], "Size in bytes after the change (before it, for a removal).") { e, _ in fim(e).map { .uint($0.size) } },
        .init("fim.mode", .uint, [.fim], "st_mode after the change (before it, for a removal): type and permission bits; in outputs as a number (0o100644 is 33188).") { e, _ in fim(e).map { .uint(UInt64($0.mode)) } },
        .init("fim.owner", .string, [.fim], "Owner after the change (before it, for a removal), `uid:gid`.") { e, _ in fim(e).map { text("\($0.uid):\($0.gid)") } },
        .init("fim.diff", .string, [.fim], "What the change means and the content diff: the semantic lines (`user added: eve (uid 0, ...)`, `password changed: bob`, `sudo rule added: ...`, `mode 644 -> 4755`), then the unified diff of a small text file that holds no secret, one line each. Never a secret: a password change is named, not shown; shadow files get no unified diff.") { e, _ in
            fim(e).map { f in text((f.diff + f.unified).joined(separator: "\n")) }
        },
        .init("fim.summary", .string, [.fim], "One line for an alert: `PATH CHANGE: diff; ...; sha256 OLD -> NEW`, then the first lines of the unified diff.") { e, _ in fim(e).map { text($0.summary) } },
        .init("fim.users_added", .strings, [.fim], "passwd/group files: the users (or groups) added.") { e, _ in fim(e).flatMap { list($0.usersAdded) } },
        .init("fim.users_removed", .strings, [.fim], "passwd/group files: the users (or groups) removed.") { e, _ in fim(e).flatMap { list($0.usersRemoved) } },
        .init("fim.uid0_users", .strings, [.fim], "passwd: the accounts with uid 0 other than root after the change.") { e, _ in fim(e).flatMap { list($0.uidZero) } },
        .init("fim.new_uid0", .bool, [.fim], "passwd: an account with uid 0 other than root appeared with this change.") { e, _ in fim(e).map { .bool($0.newUIDZero) } },
        .init("fim.sudo_rules_added", .strings, [.fim], "sudoers: the rules added, one logical line each.") { e, _ in fim(e).flatMap { list($0.sudoRulesAdded) } },
        .init("fim.sudo_rules_removed", .strings, [.fim], "sudoers: the rules removed.") { e, _ in fim(e).flatMap { list($0.sudoRulesRemoved) } },
        .init("fim.ssh_keys_added", .strings, [.fim], "authorized_keys: the keys added, `TYPE FINGERPRINT COMMENT` as `ssh-keygen -lf` shows them (never the key itself).") { e, _ in fim(e).flatMap { list($0.keysAdded) } },
        .init("fim.ssh_keys_removed", .strings, [.fim], "authorized_keys: the keys removed, `TYPE FINGERPRINT COMMENT`.") { e, _ in fim(e).flatMap { list($0.keysRemoved) } },
        .init("fim.while_down", .bool, [.fim], "The change was made while Vigil was down (found at start against the saved baseline): the event's process is then Vigil's own.") { e, _ in fim(e).map { .bool($0.whileDown) } },
    ]
}
