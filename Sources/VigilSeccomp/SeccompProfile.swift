import Foundation
import VigilEvents

/// An OCI/Docker seccomp profile (the JSON `docker run --security-opt seccomp=FILE` and the
/// kubelet's Localhost profiles read; libseccomp's names). Made from a recording
/// (`init(recording:complain:)`), read from JSON (`init(json:)`), merged, compared and written.
public struct SeccompProfile: Sendable, Equatable, Codable {
    /// `SCMP_ACT_ERRNO` (enforcing) or `SCMP_ACT_LOG` (`--complain`: everything runs, the kernel logs what the profile would refuse).
    public var defaultAction: String
    /// The errno a refused syscall returns (1, EPERM); nil with `SCMP_ACT_LOG`.
    public var defaultErrnoRet: UInt32?
    /// libseccomp's architectures: the native one first, then the ones it can run.
    public var architectures: [String]
    /// The rules, in order.
    public var syscalls: [Rule]

    /// One rule: names, an action and the conditions on arguments (all must hold).
    public struct Rule: Sendable, Equatable, Codable {
        /// Syscall names (libseccomp's, as the syscall table names them).
        public var names: [String]
        /// `SCMP_ACT_ALLOW`, `SCMP_ACT_ERRNO`, ...
        public var action: String
        /// The errno for `SCMP_ACT_ERRNO`.
        public var errnoRet: UInt32?
        /// Conditions on arguments.
        public var args: [Argument]?

        /// A rule.
        public init(names: [String], action: String = SeccompProfile.allow, errnoRet: UInt32? = nil, args: [Argument]? = nil) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
            self.args = args
        }
    }

    /// A condition on argument `index` (libseccomp's `scmp_arg_cmp`).
    public struct Argument: Sendable, Equatable, Codable {
        /// The argument's index (0-5).
        public var index: UInt32
        /// The value compared with (the mask for SCMP_CMP_MASKED_EQ).
        public var value: UInt64
        /// The second value (what the masked argument must equal, for SCMP_CMP_MASKED_EQ).
        public var valueTwo: UInt64
        /// `SCMP_CMP_EQ`, `SCMP_CMP_MASKED_EQ`, ...
        public var op: String

        private enum CodingKeys: String, CodingKey { case index, value, valueTwo, op }

        /// Decodes a condition (`valueTwo` may be absent: 0).
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = try c.decode(UInt32.self, forKey: .index)
            value = try c.decode(UInt64.self, forKey: .value)
            valueTwo = try c.decodeIfPresent(UInt64.self, forKey: .valueTwo) ?? 0
            op = try c.decode(String.self, forKey: .op)
        }

        /// A condition.
        public init(index: UInt32, value: UInt64, valueTwo: UInt64 = 0, op: String) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }
    }

    /// `SCMP_ACT_ALLOW`.
    public static let allow = "SCMP_ACT_ALLOW"
    /// EPERM, the errno refused syscalls get.
    public static let eperm: UInt32 = 1
    /// ENOSYS: what clone3 gets when its flags (in memory, out of seccomp's reach) cannot be checked, so libc falls back to clone.
    public static let enosys: UInt32 = 38
    /// The clone flags that make namespaces (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
    /// NEWPID, NEWNET, NEWTIME): refused unless recorded, as Docker's default profile does.
    public static let namespaceFlags: UInt64 = 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000 | 0x80

    private enum CodingKeys: String, CodingKey { case defaultAction, defaultErrnoRet, architectures, archMap, syscalls }
    private struct ArchMapEntry: Decodable { var architecture: String }

    /// Decodes a profile; Docker's own default profile lists its architectures as `archMap`.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        defaultAction = try c.decode(String.self, forKey: .defaultAction)
        defaultErrnoRet = try c.decodeIfPresent(UInt32.self, forKey: .defaultErrnoRet)
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
            ?? (try c.decodeIfPresent([ArchMapEntry].self, forKey: .archMap) ?? []).map(\.architecture)
        syscalls = try c.decodeIfPresent([Rule].self, forKey: .syscalls) ?? []
    }

    /// Encodes the OCI form (`architectures`, never `archMap`).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(defaultAction, forKey: .defaultAction)
        try c.encodeIfPresent(defaultErrnoRet, forKey: .defaultErrnoRet)
        try c.encode(architectures, forKey: .architectures)
        try c.encode(syscalls, forKey: .syscalls)
    }

    /// libseccomp's architectures for a profile of `arch`: x86_64 with x86 and x32, aarch64 with arm.
    public static func architectures(for arch: SyscallArch) -> [String] {
        switch arch {
        case .x86_64: return ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        case .arm64: return ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
        }
    }

    /// A profile with these fields.
    public init(defaultAction: String, defaultErrnoRet: UInt32?, architectures: [String], syscalls: [Rule]) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.syscalls = syscalls
    }

    /// Allowed in every profile made from a recording, seen or not: refusing them only turns a
    /// signal handler's return or an exit into a crash (runc's init, Go, catching a signal
    /// between the filter's install and the entrypoint's exec died on a refused rt_sigreturn).
    public static let alwaysAllowed: Set<String> = ["exit", "exit_group", "rt_sigreturn"]

    /// The least-privilege profile for what `recording` saw (and `alwaysAllowed`): everything else gets EPERM (or, with
    /// `complain`, is allowed and logged). clone is allowed only without namespace flags unless
    /// one was recorded; clone3 (whose flags seccomp cannot see) gets ENOSYS unless a namespace
    /// flag was recorded, so libc falls back to clone (also when only clone was recorded: the
    /// recording's filter may have refused clone3 with ENOSYS, unseen); personality only with
    /// the values seen.
    public init(recording: SeccompRecording, complain: Bool = false) {
        self.init(allowed: Set(recording.names).union(Self.alwaysAllowed), arch: recording.arch, cloneFlags: recording.cloneFlags,
                  personalities: recording.personalityOverflow ? nil : recording.personalities, complain: complain)
    }

    /// A profile allowing `allowed` with the argument filters `cloneFlags` (the clone flags seen)
    /// and `personalities` (nil: any) imply.
    public init(allowed: Set<String>, arch: SyscallArch, cloneFlags: UInt64, personalities: [UInt32]?, complain: Bool = false) {
        var plain = allowed
        var rules: [Rule] = []
        let namespaces = cloneFlags & Self.namespaceFlags != 0
        if !namespaces {
            let clone = plain.remove("clone") != nil
            if clone {
                rules.append(Rule(names: ["clone"], args: [Argument(index: Self.cloneFlagsIndex(arch), value: Self.namespaceFlags, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ")]))
            }
            // Also when only clone was seen: under a filter that refuses clone3 with ENOSYS
            // (Docker's default) the refusal never reaches the recorder and libc fell back to
            // clone; EPERM would stop that fallback (glibc's pthread_create would fail).
            if plain.remove("clone3") != nil || clone {
                rules.append(Rule(names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: Self.enosys))
            }
        }
        if let personalities, plain.remove("personality") != nil {
            for value in personalities.sorted() {
                rules.append(Rule(names: ["personality"], args: [Argument(index: 0, value: UInt64(value), op: "SCMP_CMP_EQ")]))
            }
        }
        rules.insert(Rule(names: plain.sorted()), at: 0)
        self.init(defaultAction: complain ? "SCMP_ACT_LOG" : "SCMP_ACT_ERRNO", defaultErrnoRet: complain ? nil : Self.eperm,
                  architectures: Self.architectures(for: arch), syscalls: rules)
    }

    /// clone's flags argument: the first on x86_64 and aarch64 (s390 would differ).
    private static func cloneFlagsIndex(_ arch: SyscallArch) -> UInt32 { 0 }

    /// Reads a profile from JSON; errors name `source` and what is wrong.
    public init(json: Data, source: String) throws {
        do {
            self = try JSONDecoder().decode(SeccompProfile.self, from: json)
        } catch let error as DecodingError {
            throw ProfileError(source: source, message: Self.describe(error))
        }
        guard !architectures.isEmpty || !syscalls.isEmpty else { throw ProfileError(source: source, message: "no architectures and no syscalls: not a seccomp profile") }
    }

    /// Reads the profile in `path`.
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ProfileError(source: path, message: "cannot read the file: \(String(cString: strerror(errno)))")
        }
        try self.init(json: data, source: path)
    }

    /// The profile as JSON (keys sorted, indented, ending in a newline).
    public func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings and integers cannot fail.
        return ((try? encoder.encode(self)) ?? Data()) + Data("\n".utf8)
    }

    /// Writes the profile to `path` (a temporary file renamed over it).
    public func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        do { try json().write(to: url, options: .atomic) } catch {
            throw ProfileError(source: path, message: "cannot write the profile: \(error.localizedDescription)")
        }
    }

    /// Whether every syscall in the profile runs unconditionally or with conditions.
    public var allowedNames: Set<String> {
        Set(syscalls.filter { $0.action == Self.allow }.flatMap(\.names))
    }

    /// Names allowed with no condition.
    public var unconditionalNames: Set<String> {
        Set(syscalls.filter { $0.action == Self.allow && ($0.args ?? []).isEmpty }.flatMap(\.names))
    }

    /// Whether clone may make namespaces: allowed with no condition on its flags.
    public var cloneNamespacesAllowed: Bool { unconditionalNames.contains("clone") }

    /// The personality() values allowed; nil: any (or none, when personality is not allowed).
    public var personalityValues: [UInt32]? {
        if unconditionalNames.contains("personality") { return nil }
        let values = syscalls.filter { $0.action == Self.allow && $0.names == ["personality"] }
            .compactMap { $0.args?.first { $0.index == 0 && $0.op == "SCMP_CMP_EQ" }.map { UInt32(truncatingIfNeeded: $0.value) } }
        return values.isEmpty && !allowedNames.contains("personality") ? [] : values
    }

    /// The arch this profile is for, from its first architecture.
    public var arch: SyscallArch { architectures.first == "SCMP_ARCH_AARCH64" ? .arm64 : .x86_64 }

    /// The union of profiles (runs of the same workload): every name any allows, clone's
    /// namespaces when any allows them, personality's values of all (any when one allows any).
    /// Enforcing unless every profile complains.
    public static func merge(_ profiles: [SeccompProfile]) -> SeccompProfile {
        let allowed = profiles.reduce(into: Set<String>()) { $0.formUnion($1.allowedNames) }
        let namespaces = profiles.contains { $0.cloneNamespacesAllowed || ($0.syscalls.contains { $0.names == ["clone3"] && $0.action == allow && ($0.args ?? []).isEmpty }) }
        var personalities: [UInt32]? = []
        for profile in profiles {
            guard let values = profile.personalityValues else { personalities = nil; break }
            for value in values where !(personalities ?? []).contains(value) { personalities?.append(value) }
        }
        // clone3 refused with ENOSYS comes back with clone (init(allowed:...)); allowed only when one allows it.
        let complain = !profiles.isEmpty && profiles.allSatisfy { $0.defaultAction == "SCMP_ACT_LOG" }
        return SeccompProfile(allowed: allowed, arch: profiles.first?.arch ?? .current, cloneFlags: namespaces ? namespaceFlags : 0,
                              personalities: personalities, complain: complain)
    }

    /// How two profiles differ.
    public struct Difference: Sendable, Equatable {
        /// Names `a` allows and `b` does not.
        public var onlyInA: [String]
        /// Names `b` allows and `a` does not.
        public var onlyInB: [String]
        /// Names both allow, with different conditions.
        public var conditionsDiffer: [String]
        /// The default actions, when they differ.
        public var defaultActions: (String, String)?

        /// Whether the profiles allow the same.
        public var isEmpty: Bool { onlyInA.isEmpty && onlyInB.isEmpty && conditionsDiffer.isEmpty && defaultActions == nil }

        /// Equal when every part is.
        public static func == (x: Difference, y: Difference) -> Bool {
            x.onlyInA == y.onlyInA && x.onlyInB == y.onlyInB && x.conditionsDiffer == y.conditionsDiffer
                && x.defaultActions?.0 == y.defaultActions?.0 && x.defaultActions?.1 == y.defaultActions?.1
        }
    }

    /// What `a` and `b` allow differently.
    public static func diff(_ a: SeccompProfile, _ b: SeccompProfile) -> Difference {
        let namesA = a.allowedNames, namesB = b.allowedNames
        func conditions(_ p: SeccompProfile, _ name: String) -> [String] {
            p.syscalls.filter { $0.names.contains(name) }.map { rule in
                "\(rule.action)\(rule.errnoRet.map { "(\($0))" } ?? "") " + (rule.args ?? []).map { "\($0.index) \($0.op) \($0.value) \($0.valueTwo)" }.joined(separator: ",")
            }.sorted()
        }
        let both = namesA.intersection(namesB).filter { conditions(a, $0) != conditions(b, $0) }
        return Difference(onlyInA: namesA.subtracting(namesB).sorted(), onlyInB: namesB.subtracting(namesA).sorted(),
                          conditionsDiffer: both.sorted(),
                          defaultActions: a.defaultAction == b.defaultAction ? nil : (a.defaultAction, b.defaultAction))
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            return "at \(path(c).isEmpty ? "top level" : path(c)): \(c.debugDescription)"
        case .keyNotFound(let key, let c):
            return "at \(path(c).isEmpty ? "top level" : path(c)): missing key '\(key.stringValue)'"
        @unknown default:
            return "\(error)"
        }
    }
}

/// A profile that cannot be read or written: the file and what is wrong.
public struct ProfileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file (or other source).
    public var source: String
    /// What is wrong.
    public var message: String
    /// A profile error.
    public init(source: String, message: String) {
        self.source = source
        self.message = message
    }
    /// `SOURCE: MESSAGE`.
    public var description: String { "\(source): \(message)" }
}

extension SeccompProfile {
    /// A profile's size against Docker's default profile (`DockerDefaultProfile`) on one
    /// architecture: names this architecture's syscall table has, on both sides.
    public struct DefaultComparison: Sendable, Equatable {
        /// The names the profile allows (with or without argument conditions).
        public var allowed: Int
        /// The names Docker's default profile allows a container with the default capabilities
        /// that the architecture has.
        public var dockerDefault: Int
        /// Names the profile allows that Docker's default refuses, sorted.
        public var beyondDefault: [String]

        /// `N syscalls allowed, Docker's default allows M` (and what it allows beyond it, if anything).
        public var summary: String {
            "\(allowed) syscalls allowed, Docker's default allows \(dockerDefault)"
                + (beyondDefault.isEmpty ? "" : " (beyond it: \(beyondDefault.joined(separator: ", ")))")
        }
    }

    /// This profile's size against Docker's default profile on `arch`.
    public func comparedWithDockerDefault(on arch: SyscallArch = .current) -> DefaultComparison {
        let docker = (DockerDefaultProfile.allowedNames[arch] ?? []).filter { SeccompRecording.number(of: $0, on: arch) != nil }
        let allowed = allowedNames
        return DefaultComparison(allowed: allowed.count, dockerDefault: docker.count, beyondDefault: allowed.subtracting(docker).sorted())
    }
}
