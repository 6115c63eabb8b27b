import Foundation
import VigilEvents

extension ProcessDetails {
    /// What /proc says of `pid` now (stat, status, exe, and environ when `environment`), nil when
    /// the process is gone. Read when the table is seeded, when it first meets a process, and
    /// after each exec.
    static func read(pid: UInt32, procRoot: String, environment: Bool) -> ProcessDetails? {
        let dir = "\(procRoot)/\(pid)"
        guard let status = try? String(contentsOfFile: "\(dir)/status", encoding: .utf8) else { return nil }
        var details = ProcessDetails()
        for line in status.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon], value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch key {
            case "CapInh": details.capInheritable = UInt64(value, radix: 16)
            case "CapPrm": details.capPermitted = UInt64(value, radix: 16)
            case "CapEff": details.capEffective = UInt64(value, radix: 16)
            // The ids in each pid namespace, outermost first: the last is the process's own view.
            case "NSpgid": details.vpgid = value.split(separator: "\t").last.flatMap { UInt32($0) }
            case "NSpid": details.vpid = value.split(separator: "\t").last.flatMap { UInt32($0) }
            default: break
            }
        }
        if let stat = try? Data(contentsOf: URL(fileURLWithPath: "\(dir)/stat")),
           let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.endIndex {
            // After "comm) ": state ppid pgrp session ...
            let rest = String(decoding: stat[(close + 2)...], as: UTF8.self).split(separator: " ")
            if rest.count > 3 {
                details.pgid = UInt32(rest[2])
                details.sid = UInt32(rest[3])
            }
        }
        if environment { details.readEnvironment(pid: pid, procRoot: procRoot) }
        if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/exe") {
            details.exeFromMemfd = link.hasPrefix("/memfd:")
            var info = stat()
            if stat("\(dir)/exe", &info) == 0 {
                details.exe = ExecutableFile(inode: UInt64(info.st_ino), mode: UInt32(info.st_mode), uid: info.st_uid, gid: info.st_gid,
                                             ctimeNs: UInt64(info.st_ctim.tv_sec) &* 1_000_000_000 &+ UInt64(info.st_ctim.tv_nsec),
                                             mtimeNs: UInt64(info.st_mtim.tv_sec) &* 1_000_000_000 &+ UInt64(info.st_mtim.tv_nsec))
            }
        }
        return details
    }

    /// Reads /proc/PID/environ into `environment` (at most `environmentLimit` bytes of whole
    /// entries) and `environmentTruncated`; leaves them nil when it cannot be read.
    mutating func readEnvironment(pid: UInt32, procRoot: String) {
        guard let file = FileHandle(forReadingAtPath: "\(procRoot)/\(pid)/environ") else { return }
        // One byte more than kept tells whether there was more; never the whole of a huge one.
        let limit = ProcessDetails.environmentLimit
        let environ = (try? file.read(upToCount: limit + 1)) ?? Data()
        try? file.close()
        let truncated = environ.count > limit
        // Whole entries only: up to the last NUL within the limit when cut.
        let kept = truncated ? environ.prefix(limit).lastIndex(of: 0).map { environ[..<$0] } ?? Data() : environ
        environment = kept.split(separator: 0).map { ByteString(Array($0)) }
        environmentTruncated = truncated
    }
}
