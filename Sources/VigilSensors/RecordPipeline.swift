import Foundation
import VigilEnrichment
import VigilEvents

/// The userspace half of the one way through the data, for raw ring records from any source:
/// decode -> enrich -> the state-change filters (which the kernel never applies to them) -> the
/// requested kinds -> the consumer. `EventStream` feeds it the ring's batches; tests feed it a
/// `RingRecording` (records captured from a kernel earlier), so the pipeline runs without one.
public final class RecordPipeline {
    /// Adds process, fd table and container context to each event.
    public let enricher: Enricher
    /// Kinds handed to the consumer (a bit per kind: any number of kinds).
    public var kinds: KindSet
    /// When set, every record read is copied to it before it is decoded (`RingRecording`).
    public var recorder: RingRecorder?
    /// What was done with the records so far.
    public internal(set) var statistics = StreamStatistics()
    /// Sees every exec after enrichment, before filters and kinds (`Sensors.noteExec` for a live
    /// stream: the shell sensor's probes follow the shells executed).
    var execObserver: ((Event) -> Void)?
    /// The filters as they apply to state changes (`Sensors.stateChangeFilter` for a live stream).
    var filter: StateChangeFilter
    /// Per row of `Syscalls.all`: whether its events are shown (`Sensors.shownSyscalls`).
    var shownSyscalls: [Bool]
    /// The decoder, with its cache of byte strings, in plain memory: the per-event path mutates
    /// it without exclusivity checks on a class property (notes/performance.md).
    let decoder: UnsafeMutablePointer<EventDecoder>
    /// Where the decoder builds each event (`EventDecoder.decode(_:into:)`), moved out at once.
    private let decoded: UnsafeMutablePointer<Event>

    /// A pipeline handing `kinds` to its consumer, with `filter`'s state-change half applied after
    /// enrichment and every syscall event shown (`Sensors` narrows that for a live stream).
    public convenience init(enricher: Enricher, kinds: KindSet, filter: KernelFilter = KernelFilter(),
                            bootToEpochNs: Int64 = BootClock.offsetToEpochNs()) {
        self.init(enricher: enricher, kinds: kinds, filter: StateChangeFilter(filter),
                  shownSyscalls: Array(repeating: true, count: Syscalls.all.count), bootToEpochNs: bootToEpochNs)
    }

    init(enricher: Enricher, kinds: KindSet, filter: StateChangeFilter, shownSyscalls: [Bool], bootToEpochNs: Int64) {
        self.enricher = enricher
        self.kinds = kinds
        self.filter = filter
        self.shownSyscalls = shownSyscalls
        decoder = .allocate(capacity: 1)
        decoder.initialize(to: EventDecoder(bootToEpochNs: bootToEpochNs))
        decoded = .allocate(capacity: 1)
    }

    deinit {
        decoder.deinitialize(count: 1)
        decoder.deallocate()
        decoded.deallocate()
    }

    /// Runs every record of `records` through the pipeline, handing the events kept to `consume`.
    public func replay(_ recording: RingRecording, _ consume: (Event) throws -> Void) rethrows {
        var children: [UInt32] = []
        for record in recording.records {
            try record.withUnsafeBytes { bytes in
                try handle(CollectionOfOne(bytes), parent: 0, children: &children, consume)
            }
        }
    }

    /// Runs a batch of raw records through the pipeline. The pids of records whose parent is
    /// `parent` (Vigil's own pid: its heartbeat children; 0: none) are appended to `children`
    /// before filters and kinds apply, once per run of records of one pid (`EventStream.childSeen`).
    @inline(__always)
    func handle<Records: Collection>(_ records: Records, parent: UInt32, children: inout [UInt32],
                                     _ consume: (Event) throws -> Void) rethrows where Records.Element == UnsafeRawBufferPointer {
        // Counted locally, added once per batch: no class property written per event.
        var counts = StreamStatistics()
        defer {
            statistics.records += counts.records
            statistics.delivered += counts.delivered
            statistics.suppressed += counts.suppressed
            statistics.undecodable += counts.undecodable
            statistics.filtered += counts.filtered
        }
        let decoder = decoder, decoded = decoded, enricher = enricher, kinds = kinds, filter = filter, recorder = recorder
        let execObserver = execObserver
        let shownSyscalls = shownSyscalls
        for record in records {
            counts.records += 1
            recorder?.record(record)
            guard decoder.pointee.decode(record, into: decoded) else {
                counts.undecodable += 1
                continue
            }
            var event = decoded.move()
            if event.ppid == parent && parent != 0 && children.last != event.pid { children.append(event.pid) }
            enricher.enrich(&event)
            if event.kind == .exec, let execObserver { execObserver(event) }
            guard filter.keeps(event) else {
                counts.filtered += 1
                continue
            }
            guard kinds.contains(event.kind) else {
                counts.suppressed += 1
                continue
            }
            if event.kind == .syscall, let index = event.syscallIndex, !shownSyscalls[index] {
                counts.suppressed += 1
                continue
            }
            counts.delivered += 1
            try consume(event)
        }
    }
}

/// Raw ring records as read, kept in order (`RingRecorder` makes one, `RecordPipeline.replay`
/// runs one). The file form: the 8 bytes `VIGILREC`, a little-endian UInt32 version (1), then per
/// record a little-endian UInt32 length and that many bytes.
public struct RingRecording: Sendable, Equatable {
    /// The records, each exactly as the ring held it.
    public var records: [[UInt8]]

    /// The file's first bytes.
    static let magic = Array("VIGILREC".utf8)
    /// The file format's version.
    static let version: UInt32 = 1

    /// A recording of `records`.
    public init(records: [[UInt8]] = []) { self.records = records }

    /// Reads the file form. Errors name the file, the byte offset and what is wrong.
    public init(bytes: [UInt8], file: String) throws(RecordingError) {
        func fail(_ offset: Int, _ message: String) -> RecordingError { RecordingError(description: "\(file): byte \(offset): \(message)") }
        guard bytes.count >= 12, Array(bytes[0..<8]) == Self.magic else { throw fail(0, "not a Vigil ring recording (no VIGILREC header)") }
        let version = Self.load(bytes, at: 8)
        guard version == Self.version else { throw fail(8, "recording version \(version), this Vigil reads \(Self.version)") }
        var offset = 12
        records = []
        while offset < bytes.count {
            guard offset + 4 <= bytes.count else { throw fail(offset, "a record length cut short (\(bytes.count - offset) of 4 bytes)") }
            let length = Int(Self.load(bytes, at: offset))
            guard offset + 4 + length <= bytes.count else {
                throw fail(offset, "record \(records.count) claims \(length) bytes, \(bytes.count - offset - 4) are left")
            }
            records.append(Array(bytes[(offset + 4)..<(offset + 4 + length)]))
            offset += 4 + length
        }
    }

    /// Reads a recording file.
    public init(path: String) throws(RecordingError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RecordingError(description: "\(path): cannot read the recording (\(String(cString: strerror(errno))))")
        }
        try self.init(bytes: Array(data), file: path)
    }

    /// The file form.
    public var bytes: [UInt8] {
        var out = Self.magic
        Self.append(Self.version, to: &out)
        for record in records {
            Self.append(UInt32(record.count), to: &out)
            out += record
        }
        return out
    }

    /// Writes the file form to `path`.
    public func write(to path: String) throws(RecordingError) {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw RecordingError(description: "\(path): cannot write the recording (\(String(cString: strerror(errno))))")
        }
    }

    private static func load(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    private static func append(_ value: UInt32, to out: inout [UInt8]) {
        for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))) }
    }
}

/// A recording that could not be read or written: the file, where and what.
public struct RecordingError: Error, CustomStringConvertible, Equatable {
    /// `FILE: byte N: what is wrong`.
    public let description: String
}

/// Copies raw ring records as they are read (`RecordPipeline.recorder`, `EventStream.recorder`).
public final class RingRecorder {
    /// What was recorded so far.
    public private(set) var recording = RingRecording()

    /// An empty recorder.
    public init() {}

    /// Keeps a copy of `record`.
    public func record(_ record: UnsafeRawBufferPointer) { recording.records.append(Array(record)) }
}
