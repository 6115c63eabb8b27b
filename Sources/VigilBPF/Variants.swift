/// One way to implement a hook: which programs of the object to load and how to attach them,
/// and which kernel features it needs (the oxidebpf ProgramGroup idea, decided by probes).
public struct Variant: Sendable {
    /// A short name shown in status, e.g. `fentry`, `kprobe`, `tracepoint`.
    public var name: String
    /// Features that must be available; when a probe says one is not, the variant is skipped
    /// without being tried, and the probe's reason is reported.
    public var requires: [Feature]
    /// Names of the object's programs this variant loads (their autoload is turned on).
    public var programs: [String]
    /// Attaches one of `programs`, as many times as it has targets (e.g. one per-syscall
    /// tracepoint per wanted syscall), and names the targets it skipped because this kernel
    /// lacks them; the default attaches once, as the ELF section says.
    public var attachTargets: @Sendable (BPFProgram) throws -> Attachment

    /// Declares a variant whose programs attach once each (`attach`: as the ELF section says by default).
    public init(_ name: String, requires: [Feature] = [], programs: [String],
                attach: @escaping @Sendable (BPFProgram) throws -> BPFLink = { try $0.attach() }) {
        self.init(name, requires: requires, programs: programs, attachEach: { [try attach($0)] })
    }

    /// Declares a variant whose programs attach to several targets each (`attachEach` returns every
    /// link of one program; throwing releases the ones it made, and the loader the others).
    public init(_ name: String, requires: [Feature] = [], programs: [String],
                attachEach: @escaping @Sendable (BPFProgram) throws -> [BPFLink]) {
        self.init(name, requires: requires, programs: programs, attachTargets: { Attachment(links: try attachEach($0)) })
    }

    /// Declares a variant whose programs attach to several targets each, some of which this
    /// kernel may lack (`attachTargets` returns one program's links and the targets it skipped:
    /// `LoadedVariants.skippedTargets`; throwing releases the links it made, and the loader the others).
    public init(_ name: String, requires: [Feature] = [], programs: [String],
                attachTargets: @escaping @Sendable (BPFProgram) throws -> Attachment) {
        self.name = name
        self.requires = requires
        self.programs = programs
        self.attachTargets = attachTargets
    }
}

/// What attaching one program to its targets made: the links, and the targets skipped because
/// this kernel lacks them (e.g. the syscalls it does not implement).
public struct Attachment {
    /// The links made, one per target attached.
    public var links: [BPFLink]
    /// The targets not attached (this kernel lacks them), in the order tried.
    public var skipped: [String]

    /// An attachment of `links` that skipped `skipped`.
    public init(links: [BPFLink], skipped: [String] = []) {
        self.links = links
        self.skipped = skipped
    }
}

/// A hook of a sensor with its variants, best first.
public struct Hook: Sendable {
    /// The hook's name, e.g. `file-open`.
    public var name: String
    /// The alternatives, tried in this order.
    public var variants: [Variant]

    /// Declares a hook.
    public init(_ name: String, variants: [Variant]) {
        self.name = name
        self.variants = variants
    }

    /// A hook on a BTF tracepoint where those attach, else on the raw tracepoint: the variant
    /// `tp_btf` (programs `P_tp_btf`, needing `attachTpBTF`), then `raw_tp` (`P_raw_tp`, needing
    /// `attachRawTracepoint`), for each `P` of `programs` (`VIGIL_BTF_OR_RAW` in bpf/lib/vigil.bpf.h
    /// makes both programs from one body).
    public static func btfOrRaw(_ name: String, programs: [String]) -> Hook {
        Hook(name, variants: [
            Variant("tp_btf", requires: [.attachTpBTF], programs: programs.map { "\($0)_tp_btf" }),
            Variant("raw_tp", requires: [.attachRawTracepoint], programs: programs.map { "\($0)_raw_tp" }),
        ])
    }

    /// `btfOrRaw(name, programs: [program])`: one program each way.
    public static func btfOrRaw(_ name: String, program: String) -> Hook { btfOrRaw(name, programs: [program]) }
}

/// What happened to one variant of a hook.
public struct VariantAttempt: Sendable, Codable, Equatable {
    /// How a variant ended.
    public enum Outcome: String, Sendable, Codable {
        /// It runs.
        case active
        /// Not tried: a feature it requires is unsupported here.
        case skipped
        /// Tried, and loading or attaching failed; everything it created was released.
        case failed
        /// Not reached: an earlier variant works.
        case notTried = "not-tried"
    }
    /// The variant's name.
    public var variant: String
    /// How it ended.
    public var outcome: Outcome
    /// Why it was skipped or failed.
    public var reason: String?
}

/// The result of choosing a variant for one hook.
public struct HookReport: Sendable, Codable, Equatable {
    /// The hook's name.
    public var hook: String
    /// The variant that runs.
    public var active: String
    /// Every variant of the hook in order, with its outcome.
    public var attempts: [VariantAttempt]
}

/// An object loaded with one working variant per hook, attached. Releasing it detaches
/// everything and closes the object.
public final class LoadedVariants {
    /// The loaded object (maps are read through it).
    public let object: BPFObject
    /// The attachments of every active variant.
    public private(set) var links: [BPFLink]
    /// Per hook: which variant runs, and why each earlier one did not.
    public let reports: [HookReport]
    /// The targets the active variants' attaches skipped because this kernel lacks them
    /// (`Attachment.skipped`, each once, in the order tried); whoever retargets the variant
    /// keeps it current.
    public var skippedTargets: [String]

    init(object: BPFObject, links: [BPFLink], reports: [HookReport], skippedTargets: [String] = []) {
        self.object = object
        self.links = links
        self.reports = reports
        self.skippedTargets = skippedTargets
    }

    /// The active variant of `hook`.
    public func activeVariant(of hook: String) -> String? {
        reports.first { $0.hook == hook }?.active
    }

    /// Adds links made after load to the object's programs (a hook whose targets change while it
    /// runs, e.g. per-syscall tracepoints); they are detached with the others.
    public func add(_ more: [BPFLink]) {
        links.append(contentsOf: more)
    }

    /// Detaches the links `which` selects, in their order, and forgets them.
    public func detach(where which: (BPFLink) -> Bool) {
        BPFLink.detachTogether(links.filter(which))
        links.removeAll { $0.fd == nil }
    }

    /// Detaches every program now (the object and its maps stay until released).
    public func detach() {
        BPFLink.detachTogether(links)
        links.removeAll()
    }

    /// Released without `detach()`: the links are detached together, not one by one as each
    /// link's own deinit would (one grace period each).
    deinit { BPFLink.detachTogether(links) }
}

/// Loads an object choosing, per hook, the first variant that works on this kernel.
///
/// For each try the object is opened anew, `configure` runs (globals, map sizes), the programs of
/// the current variant of every hook are enabled, the object is loaded and each hook attached.
/// When a program fails to load or attach, the hook that owns it moves to its next variant and
/// everything of the failed try (links, program and map fds) is released before the next one.
public struct VariantLoader {
    /// Opens a fresh copy of the object.
    public var open: () throws -> BPFObject
    /// The hooks, each with its variants in order of preference.
    public var hooks: [Hook]
    /// Adjusts a freshly opened object before load (globals, map sizes, extra programs).
    public var configure: (BPFObject) throws -> Void
    /// Runs after a successful load and before anything is attached: fill maps (filters) so the
    /// first event already meets them.
    public var beforeAttach: (BPFObject) throws -> Void
    /// The probes consulted for `Variant.requires`.
    public var probes: FeatureProbes

    /// Declares a loader.
    public init(open: @escaping () throws -> BPFObject, hooks: [Hook], probes: FeatureProbes = .shared,
                configure: @escaping (BPFObject) throws -> Void = { _ in },
                beforeAttach: @escaping (BPFObject) throws -> Void = { _ in }) {
        self.open = open
        self.hooks = hooks
        self.configure = configure
        self.beforeAttach = beforeAttach
        self.probes = probes
    }

    /// Tries variants until every hook has a working one.
    /// - Throws: `BPFError` of kind `.load` when a hook has no working variant; its message
    ///   lists every variant with why it did not work, and it carries the program and verifier
    ///   log of the last variant the kernel refused (the whole log, for a user-supplied bundle).
    public func load() throws -> LoadedVariants {
        var choice = Array(repeating: 0, count: hooks.count)
        var attempts: [[VariantAttempt]] = hooks.map { _ in [] }
        var lastRefusal: [BPFError?] = hooks.map { _ in nil }

        func reject(_ h: Int, _ outcome: VariantAttempt.Outcome, _ reason: String, _ error: BPFError? = nil) throws {
            if let error, error.verifierLog != nil { lastRefusal[h] = error }
            attempts[h].append(VariantAttempt(variant: hooks[h].variants[choice[h]].name, outcome: outcome, reason: reason))
            choice[h] += 1
            try skipUnsupported(h)
        }
        func skipUnsupported(_ h: Int) throws {
            while choice[h] < hooks[h].variants.count {
                let variant = hooks[h].variants[choice[h]]
                guard let missing = variant.requires.first(where: { !probes.result($0).isAvailable }) else { return }
                attempts[h].append(VariantAttempt(variant: variant.name, outcome: .skipped,
                                                  reason: "\(missing.rawValue) \(probes.result(missing))"))
                choice[h] += 1
            }
            let tried = attempts[h].map { "\($0.variant): \($0.reason ?? $0.outcome.rawValue)" }.joined(separator: "; ")
            throw BPFError(.load, operation: "VariantLoader.load", target: hooks[h].name,
                           message: "no variant of hook '\(hooks[h].name)' works on this kernel (\(tried))",
                           program: lastRefusal[h]?.program, verifierLog: lastRefusal[h]?.verifierLog)
        }
        func owner(ofProgram program: String) -> Int? {
            hooks.indices.first { hooks[$0].variants[choice[$0]].programs.contains(program) }
        }

        for h in hooks.indices { try skipUnsupported(h) }
        while true {
            let object = try open()
            try configure(object)
            for (h, hook) in hooks.enumerated() {
                for name in hook.variants[choice[h]].programs { try object.program(named: name).autoload = true }
            }
            do {
                try LibbpfLog.quietly { try object.load() }
            } catch let error as BPFError {
                guard let program = error.program, let h = owner(ofProgram: program) else { throw error }
                try reject(h, .failed, Self.reason(error), error)
                continue
            }
            try beforeAttach(object)
            var links: [BPFLink] = []
            var skipped: [String] = []
            var failedHook: (Int, BPFError)?
            attaching: for (h, hook) in hooks.enumerated() {
                let variant = hook.variants[choice[h]]
                for name in variant.programs {
                    do {
                        let program = try object.program(named: name)
                        let attachment = try LibbpfLog.quietly { try variant.attachTargets(program) }
                        links.append(contentsOf: attachment.links)
                        skipped += attachment.skipped.filter { !skipped.contains($0) }
                    } catch let error as BPFError {
                        failedHook = (h, error)
                        break attaching
                    }
                }
            }
            if let (h, error) = failedHook {
                BPFLink.detachTogether(links)
                try reject(h, .failed, Self.reason(error))
                continue
            }
            let reports = hooks.enumerated().map { h, hook in
                var list = attempts[h]
                list.append(VariantAttempt(variant: hook.variants[choice[h]].name, outcome: .active, reason: nil))
                for later in hook.variants.dropFirst(choice[h] + 1) {
                    list.append(VariantAttempt(variant: later.name, outcome: .notTried, reason: nil))
                }
                return HookReport(hook: hook.name, active: hook.variants[choice[h]].name, attempts: list)
            }
            return LoadedVariants(object: object, links: links, reports: reports, skippedTargets: skipped)
        }
    }

    private static func reason(_ error: BPFError) -> String {
        var text = "\(error.operation) \(error.target): \(error.message)"
        if error.errno != 0 { text += ": \(error.errnoDescription)" }
        if let reason = error.verifierReason { text += " (verifier: \(reason))" }
        return text
    }
}
