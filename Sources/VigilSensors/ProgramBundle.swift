import CLibbpf
import Foundation
import VigilBPF
import VigilEnrichment
import VigilEvents
import Yams

/// A program bundle's manifest (`bundle.yaml`, docs/bundles.md): the object, its ring, the
/// record's struct and the hooks with their variants in order.
public struct BundleManifest: Sendable, Codable, Equatable {
    /// One attach point with its alternatives, tried in order through `VariantLoader`.
    public struct HookSpec: Sendable, Codable, Equatable {
        /// One way to attach: a program of the object, attached as its ELF section says.
        public struct VariantSpec: Sendable, Codable, Equatable {
            /// The name reported (`tracepoint`, `raw_tp`, `kprobe`, ...); its feature probe
            /// decides whether the variant is tried.
            public var name: String
            /// The program's function name in the object.
            public var program: String
        }
        /// The hook's name (status, reports).
        public var name: String
        /// Its variants, best first.
        public var variants: [VariantSpec]
    }
    /// The bundle's name: evt.type of its events, `prog.NAME.FIELD`, `vigil rm NAME`.
    public var name: String
    /// The object file, relative to the manifest's directory.
    public var object: String
    /// The BPF_MAP_TYPE_RINGBUF map the programs write.
    public var ring: String
    /// The struct of each record, read from the object's BTF.
    public var event: String
    /// The member holding the pid that made the record: the event's pid, from which the enricher
    /// fills proc.*, user.* and container.*; nil: the record names no process.
    public var pidField: String?
    /// The member holding the command name of that process (a char array): proc.name when the
    /// process table does not know the pid (it exited before the record was read).
    public var commField: String?
    /// The member holding the cgroup v2 id of that process (bpf_get_current_cgroup_id): the
    /// container the enricher names (container.*).
    public var cgroupField: String?
    /// The hooks.
    public var hooks: [HookSpec]

    enum CodingKeys: String, CodingKey {
        case name, object, ring, event, pidField = "pid_field", commField = "comm_field", cgroupField = "cgroup_field", hooks
    }

    /// Reads a manifest.
    /// - Throws: `BundleError.manifest` saying what is wrong.
    public static func parse(_ text: String) throws -> BundleManifest {
        let manifest: BundleManifest
        do {
            manifest = try YAMLDecoder().decode(BundleManifest.self, from: text)
        } catch {
            throw BundleError.manifest("cannot read the manifest: \(error)")
        }
        guard manifest.name.range(of: "^[a-z][a-z0-9_]{0,31}$", options: .regularExpression) != nil else {
            throw BundleError.manifest("name '\(manifest.name)': lower-case letters, digits and _, at most 32, starting with a letter")
        }
        guard !manifest.hooks.isEmpty, manifest.hooks.allSatisfy({ !$0.variants.isEmpty }) else {
            throw BundleError.manifest("every bundle needs at least one hook, and every hook at least one variant")
        }
        for variant in manifest.hooks.flatMap(\.variants) where Self.feature(of: variant.name) == nil {
            throw BundleError.manifest("variant '\(variant.name)': one of \(Self.features.keys.sorted().joined(separator: ", "))")
        }
        return manifest
    }

    /// The variant names a manifest may use, and the feature each needs.
    static let features: [String: Feature] = [
        "tracepoint": .attachTracepoint, "raw_tp": .attachRawTracepoint, "tp_btf": .attachTpBTF,
        "kprobe": .attachKprobe, "kretprobe": .attachKprobe, "fentry": .attachFentry, "fexit": .attachFentry,
    ]

    static func feature(of variant: String) -> Feature? { features[variant] }
}

/// Why a bundle was refused.
public enum BundleError: Error, CustomStringConvertible, Sendable {
    /// The manifest is wrong.
    case manifest(String)
    /// The object or its BTF does not fit the manifest.
    case object(String)

    public var description: String {
        switch self {
        case .manifest(let m): "bundle manifest: \(m)"
        case .object(let m): "bundle object: \(m)"
        }
    }
}

/// A bundle read from disk, not loaded: its manifest, the object's bytes and the record's schema
/// from the object's BTF. Reading needs no privileges.
public struct BundleSource: Sendable {
    /// The manifest.
    public var manifest: BundleManifest
    /// The object's bytes.
    public var object: [UInt8]
    /// The record's layout.
    public var schema: ProgramSchema
    /// The members named by `comm_field` and `cgroup_field`, by index in `schema.fields`.
    var commIndex: Int?, cgroupIndex: Int?

    /// Reads a bundle from a directory holding `bundle.yaml`, or from the manifest's path.
    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw BundleError.manifest("no such file or directory: \(path)")
        }
        let manifestPath = isDirectory.boolValue ? path + "/bundle.yaml" : path
        guard let data = FileManager.default.contents(atPath: manifestPath) else {
            throw BundleError.manifest("cannot read \(manifestPath)")
        }
        let manifest = try BundleManifest.parse(String(decoding: data, as: UTF8.self))
        let directory = (manifestPath as NSString).deletingLastPathComponent
        let objectPath = manifest.object.hasPrefix("/") ? manifest.object : (directory.isEmpty ? "." : directory) + "/" + manifest.object
        guard let bytes = FileManager.default.contents(atPath: objectPath) else {
            throw BundleError.object("cannot read \(objectPath)")
        }
        try self.init(manifest: manifest, object: Array(bytes))
    }

    /// A bundle from its manifest and object bytes (the API's form: the CLI sends both).
    public init(manifest: BundleManifest, object: [UInt8]) throws {
        self.manifest = manifest
        self.object = object
        let opened = try BPFObject(bytes: object, name: manifest.name)
        let layout = try opened.structMembers(manifest.event)
        let fields = layout.members.map { member -> ProgramSchema.Field in
            switch member.type {
            case .integer(let size, let signed): .init(name: member.name, offset: member.offset, decoding: .integer(size: size, signed: signed))
            case .string(let size): .init(name: member.name, offset: member.offset, decoding: .string(size: size))
            case .array(let count, let size, let signed): .init(name: member.name, offset: member.offset, decoding: .integers(count: count, size: size, signed: signed))
            }
        }
        for (key, member, sizes) in [("pid_field", manifest.pidField, [4, 8]), ("cgroup_field", manifest.cgroupField, [8]), ("comm_field", manifest.commField, [])] {
            guard let member else { continue }
            guard let field = fields.first(where: { $0.name == member }) else {
                throw BundleError.object("\(key) '\(member)' is not a member of struct \(manifest.event) (members: \(fields.map(\.name).joined(separator: ", ")))")
            }
            switch field.decoding {
            case .integer(let size, _) where sizes.contains(size): break
            case .string where sizes.isEmpty: break
            default: throw BundleError.object("\(key) '\(member)' must be \(sizes.isEmpty ? "a char array" : "an integer of \(sizes.map(String.init).joined(separator: " or ")) bytes")")
            }
        }
        let ring = try opened.map(named: manifest.ring)
        guard ring.type == BPF_MAP_TYPE_RINGBUF else {
            throw BundleError.object("map '\(manifest.ring)' is not a BPF_MAP_TYPE_RINGBUF")
        }
        for variant in manifest.hooks.flatMap(\.variants) { _ = try opened.program(named: variant.program) }
        schema = ProgramSchema(name: manifest.name, structName: manifest.event, size: layout.size, fields: fields, pidField: manifest.pidField)
        commIndex = manifest.commField.flatMap(schema.index(of:))
        cgroupIndex = manifest.cgroupField.flatMap(schema.index(of:))
    }
}

/// Counters of a loaded bundle.
public struct BundleCounters: Sendable, Codable, Equatable {
    /// Records read and made into events.
    public var events: UInt64 = 0
    /// Records shorter than the struct (not decoded).
    public var undecodable: UInt64 = 0
    /// Records the kernel could not write because the ring was full (bpf_ringbuf_reserve failed
    /// is not seen by Vigil: this counts the ring's discarded records).
    public var drops: UInt64 = 0
}

/// A bundle loaded into the kernel and attached: its object with the chosen variant per hook, and
/// a reader of its ring that makes `program` events. Releasing it (deinit, `unload`) detaches
/// every link and frees its maps. One thread drives it.
public final class ProgramBundle {
    /// What it was loaded from.
    public let source: BundleSource
    /// The object and its links.
    public private(set) var loaded: LoadedVariants?
    /// Its ring's reader (it holds the object too: dropped with it).
    private var reader: RingBufferReader?
    /// Counters so far.
    public private(set) var counters = BundleCounters()
    private let bootToEpochNs: Int64

    /// The bundle's name.
    public var name: String { source.manifest.name }
    /// Per hook: the variant that runs and why the others did not.
    public var reports: [HookReport] { loaded?.reports ?? [] }

    /// Loads and attaches `source` (`VariantLoader`: per hook the first variant that loads and
    /// attaches), and registers its fields (`prog.NAME.FIELD`).
    /// - Throws: `BPFError` (`.verifier` with the verifier's log when the kernel refuses a program).
    public init(_ source: BundleSource, probes: FeatureProbes = .shared) throws {
        self.source = source
        let manifest = source.manifest
        let hooks = manifest.hooks.map { hook in
            Hook(hook.name, variants: hook.variants.map { variant in
                Variant(variant.name, requires: BundleManifest.feature(of: variant.name).map { [$0] } ?? [], programs: [variant.program])
            })
        }
        let bytes = source.object
        let loaded = try VariantLoader(open: { try BPFObject(bytes: bytes, name: manifest.name) }, hooks: hooks, probes: probes,
                                       configure: { object in for program in object.programs { program.autoload = false } }).load()
        self.loaded = loaded
        reader = try RingBufferReader(map: loaded.object.map(named: manifest.ring))
        bootToEpochNs = BootClock.offsetToEpochNs()
        ProgramSchema.register(source.schema)
    }

    /// Detaches every program and frees the maps; the fields are forgotten.
    public func unload() {
        guard loaded != nil else { return }
        loaded?.detach()
        loaded = nil
        reader = nil  // the last reference to the object: its programs and maps are closed now
        ProgramSchema.unregister(name)
    }

    deinit { unload() }

    /// The most records one `poll` hands over, as `EventStream.recordsPerWait` for the sensors'
    /// ring: a bundle whose program floods its ring cannot keep its reader from other duties.
    public static let recordsPerPoll = EventStream.recordsPerWait

    /// Reads what the ring holds (waiting at most `timeoutMilliseconds` for a first record; at most
    /// `recordsPerPoll` records), making one `program` event per record, enriched by `enricher`
    /// from the record's pid when the manifest names a pid member.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32 = 0, enricher: Enricher?, _ consume: (Event) throws -> Void) throws -> Int {
        guard loaded != nil, let reader else { return 0 }
        let read = try reader.poll(timeoutMilliseconds: timeoutMilliseconds, maxRecords: Self.recordsPerPoll) { batch in
            for record in batch {
                guard var event = makeEvent(record) else { counters.undecodable += 1; continue }
                counters.events += 1
                if event.pid != 0, let enricher { Self.enrich(&event, enricher) }
                try consume(event)
            }
        }
        let statistics = try reader.statistics()
        counters.drops = statistics.discarded + statistics.lost
        return read
    }

    /// Fills the header from the process table (name, parent; uid and gid from /proc) and enriches
    /// the event as any other (proc.*, user.*; the container the table knows for the pid).
    static func enrich(_ event: inout Event, _ enricher: Enricher) {
        if let record = enricher.processes.record(event.pid) {
            event.comm = record.comm
            event.ppid = record.ppid
        }
        var st = stat()
        if stat("/proc/\(event.pid)", &st) == 0 { event.uid = st.st_uid; event.gid = st.st_gid }
        enricher.enrich(&event)
        if event.cgroupID != 0 { event.container = enricher.container(cgroupID: event.cgroupID) }
        else if let container = enricher.processes.container(pid: event.pid) { event.container = container }
    }

    /// The event of one record: the header from the record's pid (its process as /proc says when
    /// enriched), the payload the members' values.
    func makeEvent(_ record: UnsafeRawBufferPointer) -> Event? {
        let schema = source.schema
        guard let values = schema.decode(record) else { return nil }
        func number(_ index: Int?) -> UInt64 {
            switch index.map({ values[$0] }) {
            case .uint(let v)?: v
            case .int(let v)?: UInt64(bitPattern: v)
            default: 0
            }
        }
        let pid = UInt32(truncatingIfNeeded: number(schema.pidField))
        var comm = ByteString("")
        if let index = source.commIndex, case .string(let s) = values[index] { comm = s }
        var boot = timespec()
        clock_gettime(CLOCK_BOOTTIME, &boot)
        let bootNs = UInt64(boot.tv_sec) * 1_000_000_000 + UInt64(boot.tv_nsec)
        return Event(bootTimeNs: bootNs, timeNs: UInt64(Int64(bootNs) + bootToEpochNs), cgroupID: number(source.cgroupIndex), pid: pid, tid: pid, ppid: 0,
                     uid: 0, gid: 0, cpu: 0, mountNamespace: 0, pidNamespace: 0, comm: comm,
                     payload: .program(.init(schema: schema, values: values)))
    }
}
