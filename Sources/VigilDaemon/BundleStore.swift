import Foundation
import Logging
import Synchronization
import VigilBPF
import VigilEnrichment
import VigilEvents
import VigilSensors
import Yams

/// The program bundles the daemon runs (docs/bundles.md): loaded through the API
/// (`POST /v1/bundles`, `vigil create DIR`), kept in STATE_DIR/bundles/NAME (the manifest and
/// the object as sent) so they are loaded again at the next start, before the rules (whose
/// conditions may name their fields), as the rules directory's files are; read by the event
/// thread (`Engine`), whose events go through the same enrichment, streams, rules and actions
/// as the sensors'. `DELETE /v1/bundles/NAME` (`vigil rm NAME`) detaches and frees it and forgets
/// its files.
public final class BundleStore: Sendable {
    /// Where the bundles are kept, one directory per bundle.
    public let directory: String
    private let loaded = Mutex<[String: BundleBox]>([:])
    private let logger: Logger

    /// A bundle as the store holds it, with its own lock: the API thread loads and unloads it,
    /// the event thread reads its ring and consumes its events under this lock only, so a slow
    /// consumer holds up neither the other bundles' API calls nor `list`.
    final class BundleBox: @unchecked Sendable {
        private let bundle: ProgramBundle
        private let lock = NSLock()
        init(_ bundle: ProgramBundle) { self.bundle = bundle }
        /// `body` with the bundle, one caller at a time.
        func with<T>(_ body: (ProgramBundle) throws -> T) rethrows -> T {
            lock.lock()
            defer { lock.unlock() }
            return try body(bundle)
        }
    }

    /// A store over `directory` (not read until `loadSaved`).
    public init(directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// Loads the bundles kept by an earlier run. A bundle that no longer loads is logged and
    /// skipped (its files stay, for `vigil rm`).
    public func loadSaved() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names.sorted() {
            do {
                let source = try BundleSource(path: directory + "/" + name)
                let bundle = try ProgramBundle(source)
                loaded.withLock { $0[source.manifest.name] = BundleBox(bundle) }
                logger.info("bundle \(source.manifest.name) loaded from \(directory)/\(name): \(Self.variants(bundle))")
            } catch {
                logger.error("bundle \(name) in \(directory) does not load: \(error)")
            }
        }
    }

    static func variants(_ bundle: ProgramBundle) -> String {
        bundle.reports.map { "\($0.hook): \($0.active)" }.joined(separator: ", ")
    }

    /// Loads a bundle (manifest text and object bytes), replacing one of the same name once the
    /// new one runs, and keeps its files. Returns whether it replaced one.
    /// - Throws: `BundleError` or `BPFError` (with the verifier's log); nothing running changes.
    public func add(manifest text: String, object: [UInt8]) throws -> (summary: BundleSummary, replaced: Bool) {
        let manifest = try BundleManifest.parse(text)
        let source = try BundleSource(manifest: manifest, object: object)
        let bundle = try ProgramBundle(source)
        let folder = directory + "/" + manifest.name
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            var kept = manifest
            kept.object = manifest.name + ".bpf.o"
            try RuleStore.writeAtomically(try YAMLEncoder().encode(kept), to: folder + "/bundle.yaml",
                                          directory: folder, mode: 0o600)
            let objectPath = folder + "/" + kept.object
            guard FileManager.default.createFile(atPath: objectPath, contents: Data(object), attributes: [.posixPermissions: 0o600]) else {
                throw BundleError.object("cannot write \(objectPath)")
            }
        } catch {
            bundle.unload()
            throw error
        }
        let summary = BundleSummary(bundle)  // before the event thread can read it
        let old = loaded.withLock { bundles -> BundleBox? in
            defer { bundles[manifest.name] = BundleBox(bundle) }
            return bundles[manifest.name]
        }
        old?.with { $0.unload() }
        ProgramSchema.register(source.schema)  // the old one's unload forgot the name
        logger.info("bundle \(manifest.name) \(old == nil ? "loaded" : "replaced"): \(Self.variants(bundle))")
        return (summary, old != nil)
    }

    /// Unloads bundle `name` (links closed, maps freed) and forgets its files; false when no
    /// such bundle is loaded or kept.
    public func remove(_ name: String) -> Bool {
        let box = loaded.withLock { $0.removeValue(forKey: name) }
        box?.with { $0.unload() }
        let folder = directory + "/" + name
        let kept = FileManager.default.fileExists(atPath: folder)
        if kept { try? FileManager.default.removeItem(atPath: folder) }
        if box != nil { logger.info("bundle \(name) unloaded") }
        return box != nil || kept
    }

    /// What runs.
    public func list() -> [BundleSummary] {
        let boxes = loaded.withLock { Array($0.values) }
        return boxes.map { $0.with(BundleSummary.init) }.sorted { $0.name < $1.name }
    }

    /// Whether bundle `name` is loaded.
    public func contains(_ name: String) -> Bool { loaded.withLock { $0[name] != nil } }

    /// The event thread: reads every bundle's ring without waiting (at most
    /// `ProgramBundle.recordsPerPoll` records each), each record an event for `consume`, enriched
    /// by `enricher`. The store's lock is held only to take the bundles.
    func poll(enricher: Enricher, _ consume: (Event) -> Void) {
        let boxes = loaded.withLock { Array($0.values) }
        for box in boxes {
            box.with { bundle in
                do {
                    try bundle.poll(enricher: enricher) { consume($0) }
                } catch {
                    logger.error("bundle \(bundle.name): cannot read its ring: \(error)")
                }
            }
        }
    }
}

/// One loaded bundle as `GET /v1/bundles` and `vigil ls` show it.
public struct BundleSummary: Sendable, Codable, Equatable {
    /// The bundle's name.
    public var name: String
    /// The record's struct and its members (the fields prog.NAME.MEMBER).
    public var event: String
    public var fields: [String]
    /// Per hook: the variant that runs and why the others did not.
    public var hooks: [HookReport]
    /// Events made, records dropped, records not decoded.
    public var counters: BundleCounters

    init(_ bundle: ProgramBundle) {
        name = bundle.name
        event = bundle.source.manifest.event
        fields = bundle.source.schema.fields.map { "prog.\(bundle.name).\($0.name)" }
        hooks = bundle.reports
        counters = bundle.counters
    }
}

