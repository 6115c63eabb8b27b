import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A reporting action whose alerts can wait on disk for delivery (webhook, slack, email, syslog
/// over the network): what it sends is rendered once (`payload`), kept in the action's
/// `AlertSpool`, and sent (`send`) when the receiver answers, perhaps by the next daemon after a
/// crash. Sending the same payload twice sends the same bytes, the alert's id included.
protocol SpooledHandler: ActionHandler {
    /// Whether this action's alerts go through the spool (syslog to a local socket does not).
    var spools: Bool { get }
    /// The bytes `send` delivers for `alert` (its id inside, where the format has room).
    func payload(_ alert: Alert) -> [UInt8]
    /// Delivers a payload; `id` is the alert's (`Alert.id`), for transports that carry it
    /// beside the payload (the webhook's `X-Vigil-Alert-Id` header).
    func send(_ payload: [UInt8], id: String) throws(ActionFailure) -> String
}

extension SpooledHandler {
    /// Spooled by default.
    var spools: Bool { true }

    /// Renders and sends at once (no spool: `vigil trace --alerts`, or a spool that is off).
    func perform(_ alert: Alert) throws(ActionFailure) -> String { try send(payload(alert), id: alert.id) }
}

/// One alert waiting in a spool: on disk (`file`), its file still being written (`writing`,
/// `payload` kept until it is durable), or only in memory when the spool could not write it
/// (`payload` kept; lost if the process dies).
struct SpoolRecord: Sendable {
    /// The alert's id (`Alert.id`).
    var id: String
    /// The rule's name, for the log.
    var rule: String
    /// The file's name in the spool directory, nil for a record kept in memory only.
    var file: String?
    /// The payload of a memory-only record or of one whose file is being written (a durable
    /// file's is read when it is sent).
    var payload: [UInt8]?
    /// Bytes the record takes (its file's size).
    var size: Int
    /// Its file is being written (`AlertSpool.persist`): whoever removes the record leaves the
    /// file to the writer, which removes it once written.
    var writing = false
}

/// A record added to a spool whose file is still to be written (`AlertSpool.add`, then `persist`).
struct PendingSpoolWrite: Sendable {
    /// The file's name.
    var name: String
    /// What the file holds.
    var content: [UInt8]
}

/// The on-disk queue of one action (`actions.spool_dir`/NAME): one file per alert, named
/// `SEQUENCE-ID.alert` (SEQUENCE: 20 decimal digits, increasing, so names sort in order),
/// written as `NAME.tmp`, fsync'ed, renamed, and the directory fsync'ed before the alert counts
/// as spooled; removed once the receiver took it (or refused it for good). A record can be sent
/// from memory while its file is written (`add`, then `persist`): delivery never waits for the
/// disk, and an alert delivered first leaves no file behind. At most `capacity`
/// alerts and `maxBytes` bytes wait; more are refused (the worker counts them dropped). Files of
/// an earlier run are the first records of a new spool, in their order; `*.tmp` files (a write a
/// crash cut short) are removed, unreadable files renamed to `*.corrupt` and logged. Used by one
/// worker: its spooling and its delivering thread share it under its lock.
final class AlertSpool: Sendable {
    /// Why a record is not spooled.
    enum Refusal: Error { case full }

    /// The spool's directory.
    let directory: String
    /// Most records waiting at once.
    let capacity: Int
    /// Most bytes waiting at once.
    let maxBytes: Int
    private let directoryFD: Int32

    private struct State {
        var records: [SpoolRecord] = []
        var bytes = 0
        var sequence: UInt64 = 0
    }
    private let state: Mutex<State>

    private static let magic = Array("vigil-spool 1\n".utf8)

    /// Opens (and makes, with its parents, 0700) the directory and takes up what an earlier run
    /// left there. Throws naming the directory when it cannot be made or opened.
    init(directory: String, capacity: Int, maxBytes: Int, logger: Logger) throws(ActionFailure) {
        do { try Directories.create(directory, mode: 0o700) } catch { throw .permanent("spool \(error)") }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .permanent("spool \(directory): cannot open: \(Socket.errnoText())") }
        self.directory = directory
        self.capacity = capacity
        self.maxBytes = maxBytes
        directoryFD = fd
        var recovered = State()
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        for name in names {
            let path = directory + "/" + name
            if name.hasSuffix(".tmp") {
                unlink(path)  // cut short by a crash before its rename: it never counted as spooled
                continue
            }
            guard name.hasSuffix(".alert") else { continue }
            guard let bytes = FileManager.default.contents(atPath: path).map({ [UInt8]($0) }), let parsed = Self.parse(bytes) else {
                rename(path, path + ".corrupt")
                logger.error("spool \(path): not a spooled alert; renamed to \(name).corrupt and not delivered")
                continue
            }
            recovered.records.append(SpoolRecord(id: parsed.id, rule: parsed.rule, file: name, payload: nil, size: bytes.count))
            recovered.bytes += bytes.count
            if let sequence = UInt64(name.prefix { $0 != "-" }) { recovered.sequence = max(recovered.sequence, sequence) }
        }
        state = Mutex(recovered)
        if !recovered.records.isEmpty {
            logger.notice("spool \(directory): \(recovered.records.count) alert(s) of an earlier run to deliver")
        }
    }

    deinit { close(directoryFD) }

    /// Records waiting (on disk or in memory).
    var count: Int { state.withLock { $0.records.count } }

    /// Records on disk now (durable: not those whose file is being written).
    var onDisk: Int { state.withLock { $0.records.count(where: { $0.file != nil && !$0.writing }) } }

    /// The oldest record, without removing it.
    var first: SpoolRecord? { state.withLock { $0.records.first } }

    /// Stores an alert's payload: written, fsync'ed and renamed into place, the directory
    /// fsync'ed. When that fails (disk full, read-only) the record is kept in memory and the
    /// reason returned (the caller logs and counts it); nil when it is on disk. Throws `.full`
    /// when the spool is at its bounds (a record larger than `maxBytes` fits an empty spool).
    func append(id: String, rule: String, payload: [UInt8]) throws(Refusal) -> String? {
        persist(try add(id: id, rule: rule, payload: payload))
    }

    /// Queues an alert's payload at once, in memory (`first` hands it out: it can be sent now),
    /// and names its file; `persist` writes it. Throws `.full` as `append` does.
    func add(id: String, rule: String, payload: [UInt8]) throws(Refusal) -> PendingSpoolWrite {
        let content = Self.magic + Array("id \(id)\nrule \(Self.escape(rule))\n\n".utf8) + payload
        return try state.withLock { state throws(Refusal) -> PendingSpoolWrite in
            guard state.records.count < capacity, state.bytes + content.count <= maxBytes || state.records.isEmpty else { throw .full }
            state.sequence = max(state.sequence + 1, Self.realtimeNs())
            let digits = String(state.sequence)
            let name = String(repeating: "0", count: max(0, 20 - digits.count)) + digits + "-\(id).alert"
            state.records.append(SpoolRecord(id: id, rule: rule, file: name, payload: payload, size: content.count, writing: true))
            state.bytes += content.count
            return PendingSpoolWrite(name: name, content: content)
        }
    }

    /// Writes the file of a record `add` queued, durably, unless the record was delivered
    /// already (then nothing is written; a file written while it was delivered is removed).
    /// When the write fails (disk full, read-only) the record stays in memory only and the
    /// reason is returned (the caller logs and counts it); nil when it is on disk or delivered.
    func persist(_ pending: PendingSpoolWrite) -> String? {
        let waiting = state.withLock { state in state.records.contains { $0.file == pending.name } }
        guard waiting else { return nil }
        let failure = write(pending.content, as: pending.name)
        let delivered = state.withLock { state -> Bool in
            guard let index = state.records.firstIndex(where: { $0.file == pending.name }) else { return true }
            state.records[index].writing = false
            if failure == nil { state.records[index].payload = nil } else { state.records[index].file = nil }
            return false
        }
        if delivered {
            if failure == nil { unlinkat(directoryFD, pending.name, 0) }
            return nil
        }
        return failure
    }

    /// The payload of `record` (read back from its file), or why it cannot be read.
    func payload(of record: SpoolRecord) -> Result<[UInt8], ActionFailure> {
        if let payload = record.payload { return .success(payload) }
        guard let file = record.file else { return .failure(.permanent("spool: a record without payload")) }
        guard let bytes = FileManager.default.contents(atPath: directory + "/" + file).map({ [UInt8]($0) }), let parsed = Self.parse(bytes) else {
            return .failure(.permanent("spool \(directory)/\(file): cannot be read back"))
        }
        return .success(parsed.payload)
    }

    /// Removes the oldest record (delivered, or refused for good) and its file. A crash before
    /// the unlink reaches the disk sends it again at the next start (at least once).
    func removeFirst() {
        let removed = state.withLock { state -> SpoolRecord? in
            guard !state.records.isEmpty else { return nil }
            let record = state.records.removeFirst()
            state.bytes -= record.size
            return record
        }
        if let removed, let file = removed.file, !removed.writing { unlinkat(directoryFD, file, 0) }
    }

    /// Drops the records kept only in memory (shutdown); returns how many.
    func dropMemoryOnly() -> Int {
        state.withLock { state in
            let dropped = state.records.filter { $0.file == nil }
            state.records.removeAll { $0.file == nil }
            state.bytes -= dropped.reduce(0) { $0 + $1.size }
            return dropped.count
        }
    }

    /// Writes `content` to `name` durably; nil, or why not (nothing of it is left behind then).
    private func write(_ content: [UInt8], as name: String) -> String? {
        let temporary = name + ".tmp"
        let fd = openat(directoryFD, temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return "spool \(directory)/\(temporary): cannot create: \(Socket.errnoText())" }
        var failure: String?
        do { try writeAll(fd, content) } catch { failure = "spool \(directory)/\(temporary): \(error.message)" }
        if failure == nil, fsync(fd) != 0 { failure = "spool \(directory)/\(temporary): fsync: \(Socket.errnoText())" }
        close(fd)
        if failure == nil, renameat(directoryFD, temporary, directoryFD, name) != 0 {
            failure = "spool \(directory)/\(name): rename: \(Socket.errnoText())"
        }
        if failure == nil, fsync(directoryFD) != 0 { failure = "spool \(directory): fsync: \(Socket.errnoText())" }
        if failure != nil {
            unlinkat(directoryFD, temporary, 0)
            unlinkat(directoryFD, name, 0)
        }
        return failure
    }

    /// A rule name on one line: `%` and line breaks percent-encoded.
    static func escape(_ rule: String) -> String {
        rule.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "\n", with: "%0A").replacingOccurrences(of: "\r", with: "%0D")
    }

    /// The id, rule and payload of a spool file, or nil when it is not one.
    static func parse(_ bytes: [UInt8]) -> (id: String, rule: String, payload: [UInt8])? {
        guard bytes.starts(with: magic) else { return nil }
        var lines: [String] = []
        var index = magic.count
        while lines.count < 3 {
            guard let end = bytes[index...].firstIndex(of: 0x0a) else { return nil }
            lines.append(String(decoding: bytes[index..<end], as: UTF8.self))
            index = end + 1
        }
        guard lines[0].hasPrefix("id "), lines[1].hasPrefix("rule "), lines[2].isEmpty else { return nil }
        let rule = String(lines[1].dropFirst(5)).replacingOccurrences(of: "%0A", with: "\n")
            .replacingOccurrences(of: "%0D", with: "\r").replacingOccurrences(of: "%25", with: "%")
        return (String(lines[0].dropFirst(3)), rule, Array(bytes[index...]))
    }

    /// CLOCK_REALTIME in nanoseconds (sequence numbers stay increasing across restarts).
    private static func realtimeNs() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
