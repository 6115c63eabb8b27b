import CVigilABI
import VigilBPF
#if canImport(Glibc)
import Glibc
#endif

/// One way the kernel side of the sensors differs from what Vigil put there (`Sensors.checkIntegrity`).
public struct IntegrityFinding: Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: String, Sendable, Equatable {
        /// A link is gone or holds another program: a hook no longer reports.
        case programDetached = "program detached"
        /// A filter map holds something Vigil did not write.
        case filterChanged = "filter changed"
    }

    /// What went wrong.
    public var kind: Kind
    /// The link or map, e.g. `process/exec_tp_btf -> tp_btf/sched_process_exec` or `comm_exclude`.
    public var target: String
    /// The difference, e.g. `added key "cat"`.
    public var detail: String

    /// A finding.
    public init(kind: Kind, target: String, detail: String) {
        self.kind = kind
        self.target = target
        self.detail = detail
    }

    /// `TARGET: DETAIL`.
    public var description: String { "\(target): \(detail)" }
}

/// What Vigil wrote to the filter maps and which links it made, to compare the kernel with.
struct IntegrityBaseline {
    /// A link as it was after attach.
    struct LinkRecord {
        let link: BPFLink
        let sensor: String
        let id: UInt32
        let programID: UInt32
    }

    /// Per watched map (by name), its contents right after Vigil last wrote it.
    var maps: [String: [[UInt8]: [UInt8]]] = [:]
    var links: [LinkRecord] = []
}

extension Sensors {
    /// The watched maps, by name: those whose contents only Vigil writes (the kernel programs
    /// only read them): the shared filter maps, and each loaded sensor's own (`Sensor.watchedMaps`:
    /// the file sensor's path maps).
    func watchedMaps() throws -> [(name: String, map: BPFMap)] {
        var maps = try Self.sharedMapNames.filter { $0 != "events" }.map { ($0, try sharedMapsObject.map(named: $0)) }
        for sensor in loaded {
            maps += try sensor.sensor.watchedMaps.map { ($0, try sensor.variants.object.map(named: $0)) }
        }
        return maps
    }

    /// Reads the watched maps back as the new baseline: called after every write of Vigil's own.
    func recordMaps() throws {
        var maps: [String: [[UInt8]: [UInt8]]] = [:]
        for (name, map) in try watchedMaps() { maps[name] = try map.rawContents() }
        baseline.maps = maps
    }

    /// Records every link and the program it holds, as attached now.
    func recordLinks() throws {
        baseline.links = try loaded.flatMap { sensor in
            try sensor.variants.links.map { link in
                let info = try link.info()
                return IntegrityBaseline.LinkRecord(link: link, sensor: sensor.name, id: info.id, programID: info.programID)
            }
        }
    }

    /// Compares the kernel with what Vigil made: every link still valid (its fd still a link,
    /// the same link id, the same program) and every watched map holding exactly what Vigil last
    /// wrote. Returns one finding per link gone and per map changed (empty: intact). Callable
    /// from any thread (the daemon's integrity thread): it holds the lock that `apply`,
    /// `refreshLinkedNames`, `noteExec` and `detach` hold while they change what it reads.
    public func checkIntegrity() -> [IntegrityFinding] {
        integrityLock.withLock { _ in checkIntegrityLocked() }
    }

    private func checkIntegrityLocked() -> [IntegrityFinding] {
        var findings: [IntegrityFinding] = []
        for record in baseline.links {
            guard let fd = record.link.fd else {
                findings.append(IntegrityFinding(kind: .programDetached, target: record.link.description, detail: "link \(record.id) was detached"))
                continue
            }
            do {
                let info = try BPFLinkInfo(fd: fd, target: record.link.description)
                if info.id != record.id || info.programID != record.programID {
                    findings.append(IntegrityFinding(kind: .programDetached, target: record.link.description,
                                                     detail: "fd \(fd) is link \(info.id) of program \(info.programID), not link \(record.id) of program \(record.programID)"))
                }
            } catch {
                findings.append(IntegrityFinding(kind: .programDetached, target: record.link.description,
                                                 detail: "link \(record.id) (program \(record.programID)) is gone: \(error)"))
            }
        }
        let maps: [(name: String, map: BPFMap)]
        do { maps = try watchedMaps() } catch {
            return findings + [IntegrityFinding(kind: .filterChanged, target: "filter maps", detail: "cannot find them: \(error)")]
        }
        for (name, map) in maps {
            do {
                let now = try map.rawContents()
                if let difference = Self.difference(map: name, expected: baseline.maps[name] ?? [:], actual: now) {
                    findings.append(IntegrityFinding(kind: .filterChanged, target: name, detail: difference))
                }
            } catch {
                findings.append(IntegrityFinding(kind: .filterChanged, target: name, detail: "cannot read it: \(error)"))
            }
        }
        return findings
    }

    /// The difference between two contents of map `map`, in words (nil: equal): keys added,
    /// removed, values changed, each key shown as the map's type reads (command name, pid, ...).
    static func difference(map: String, expected: [[UInt8]: [UInt8]], actual: [[UInt8]: [UInt8]]) -> String? {
        guard expected != actual else { return nil }
        var parts: [String] = []
        let added = actual.keys.filter { expected[$0] == nil }.map { describeKey($0, map: map) }.sorted()
        let removed = expected.keys.filter { actual[$0] == nil }.map { describeKey($0, map: map) }.sorted()
        let changed = actual.compactMap { key, value -> String? in
            guard let old = expected[key], old != value else { return nil }
            return "\(describeKey(key, map: map)) \(describeValue(old, map: map)) -> \(describeValue(value, map: map))"
        }.sorted()
        if !added.isEmpty { parts.append("added " + added.joined(separator: ", ")) }
        if !removed.isEmpty { parts.append("removed " + removed.joined(separator: ", ")) }
        if !changed.isEmpty { parts.append("changed " + changed.joined(separator: ", ")) }
        return parts.joined(separator: "; ")
    }

    /// A key as its map reads it: a command name quoted, a pid/uid/cgroup id in decimal, else hex.
    static func describeKey(_ key: [UInt8], map: String) -> String {
        switch map {
        case "comm_include", "comm_exclude":
            return quoted(key)
        case "pids", "uids", "filter":
            return key.count == 4 ? "\(key.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })" : hex(key)
        case "cgroups":
            return key.count == 8 ? "\(key.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })" : hex(key)
        default:
            return hex(key)
        }
    }

    /// A value as its map reads it: the filter record's fields, else hex.
    static func describeValue(_ value: [UInt8], map: String) -> String {
        guard map == "filter", value.count == MemoryLayout<vigil_filter_config>.size else { return hex(value) }
        let config = value.withUnsafeBytes { $0.loadUnaligned(as: vigil_filter_config.self) }
        return "{flags 0x\(String(config.flags, radix: 16)), host_pid_ns \(config.host_pid_ns), open_classes 0x\(String(config.open_classes, radix: 16))}"
    }

    private static func quoted(_ bytes: [UInt8]) -> String {
        let name = bytes.prefix { $0 != 0 }
        guard name.allSatisfy({ (0x20..<0x7f).contains($0) && $0 != 0x22 && $0 != 0x5c }) else { return hex(bytes) }
        return "\"" + String(decoding: name, as: UTF8.self) + "\""
    }

    /// Hex, at most 48 bytes of it (then `...`).
    private static func hex(_ bytes: [UInt8]) -> String {
        "0x" + bytes.prefix(48).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() + (bytes.count > 48 ? "..." : "")
    }
}
