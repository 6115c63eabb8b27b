import Foundation
import VigilBPF
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The rules' path pushdown in the real kernel: opens no rule can match are dropped (and
/// counted), a rule change swaps the maps without losing an event, and `kernel_kill` rules kill
/// in the kernel.
final class OpenPathFilterTests: XCTestCase {
    /// A fresh directory whose path is in normal form (the kernel compares such names).
    private func directory() throws -> String {
        let path = NSTemporaryDirectory() + "vigil-pushdown-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func rules(_ yaml: String, defaults: Bool = false) throws -> RuleSet {
        var files: [(file: String, items: [RuleItem])] = []
        if defaults { files.append((RuleFiles.defaultName, try RuleFiles.defaultItems())) }
        files.append(("test.yaml", try YAMLRules.load(yaml, file: "test.yaml")))
        return try RuleSet(files: files)
    }

    private func rule(_ name: String, _ condition: String, actions: String = "") -> String {
        "- rule: \(name)\n  desc: d\n  condition: '\(condition)'\n  output: o\n  priority: WARNING\n" + (actions.isEmpty ? "" : "  actions: [\(actions)]\n")
    }

    /// A harness tracing this process's own opens, filtered by `set`'s pushdown.
    private func harness(_ set: RuleSet) throws -> TraceHarness {
        var filter = KernelFilter()
        filter.ignorePID = 0
        filter.openPaths = set.openPaths
        return try TraceHarness(filter: filter)
    }

    private func touch(_ path: String) {
        FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
    }


    private func paths(_ events: [Event]) -> [String] { events.compactMap { $0.open?.path.string } }

    private func counters(_ harness: TraceHarness) throws -> SensorCounters {
        try XCTUnwrap(harness.sensors.counters()["file"])
    }

    /// An open a rule's path entry matched in the kernel wakes the reader at once (its alert
    /// does not wait for the reader's timer); other opens wait for the wakeup threshold.
    func testAnOpenARuleMatchedInTheKernelWakesTheReader() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let dir = try directory()
        touch("\(dir)/watched")
        var filter = KernelFilter()
        filter.ignorePID = 0
        filter.openPaths = try rules(rule("exact", "fd.name = \(dir)/watched")).openPaths
        // A threshold no burst of the host's execs reaches during the test.
        let sensors = try Sensors(kinds: Sensor.file.kinds, filter: filter, ringBytes: 1 << 24, wakeupBytes: 1 << 23)
        let reader = try RingBufferReader(map: sensors.ring)
        try reader.drain { _ in }
        _ = try reader.awaitWakeup(timeoutMilliseconds: 0)

        // A relative name that fails: the kernel cannot compare it, userspace decides (passed).
        let relative = "vigil-wake-\(UUID().uuidString.prefix(8))"
        XCTAssertEqual(open(relative, O_RDONLY), -1)
        XCTAssertFalse(try reader.awaitWakeup(timeoutMilliseconds: 300), "a passed open waits for the threshold")
        XCTAssertGreaterThan(try reader.drain { _ in }, 0, "the passed open is in the ring")

        let fd = open("\(dir)/watched", O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        XCTAssertTrue(try reader.awaitWakeup(timeoutMilliseconds: 10_000), "the matched open woke the reader")
        XCTAssertGreaterThan(try reader.drain { _ in }, 0)
    }

    /// A burst of matched opens on one CPU wakes the reader at most once per millisecond (a
    /// forced wakeup is an IPI, microseconds on a VM); the others wait for that wakeup's drain or
    /// the reader's timer, and every one of them is delivered.
    func testABurstOfMatchedOpensWakesTheReaderAtMostOncePerMillisecond() throws {
        let dir = try directory()
        touch("\(dir)/watched")
        let harness = try harness(try rules(rule("exact", "fd.name = \(dir)/watched")))
        let object = try XCTUnwrap(harness.sensors.loaded.first { $0.name == Sensor.file.name }).variants.object
        let wakes = try PerCPUMap<UInt32, UInt64>(object.map(named: "match_wakes"))
        func count(_ key: UInt32) throws -> UInt64 { try wakes.lookup(key)?.reduce(0, +) ?? 0 }
        let (forcedBefore, deferredBefore) = (try count(1), try count(2))
        var child: Int32 = 0
        let events = try harness.collect {
            child = try runProgram("/usr/bin/taskset", ["-c", "0", "/usr/bin/python3", "-c",
                                   "import os, sys\nfor _ in range(200): os.close(os.open(sys.argv[1], os.O_RDONLY))", "\(dir)/watched"])
        }
        let forced = try count(1) - forcedBefore, deferred = try count(2) - deferredBefore
        XCTAssertEqual(forced + deferred, 200, "every matched open counted once")
        XCTAssertGreaterThanOrEqual(deferred, 100, "\(forced) forced wakeups for 200 opens in a burst")
        XCTAssertEqual(events.filter { $0.pid == UInt32(child) && $0.open?.path.string == "\(dir)/watched" }.count, 200, "every one delivered")
    }

    func testOpensNoRuleCanMatchAreDroppedInTheKernel() throws {
        let dir = try directory()
        for name in ["watched", "other", "id_rsa", "below"] { touch("\(dir)/\(name)") }
        try FileManager.default.createDirectory(atPath: "\(dir)/sub", withIntermediateDirectories: true)
        touch("\(dir)/sub/x")
        let set = try rules(rule("exact", "fd.name = \(dir)/watched") + rule("key", "fd.filename = id_rsa")
                            + rule("tree", "evt.is_open_write = true and fd.name startswith \(dir)/sub/"))
        XCTAssertTrue(set.openPaths.filtering)
        let harness = try harness(set)
        let before = try counters(harness).filtered
        let dirfd = open(dir, O_RDONLY | O_DIRECTORY)
        defer { close(dirfd) }
        let events = try harness.collect {
            openClose("\(dir)/watched")
            openClose("\(dir)/other")                 // no rule: dropped
            openClose("\(dir)/id_rsa")                // by its basename
            openClose("\(dir)/sub/x")                 // read, the rule wants writes: dropped
            openClose("\(dir)/sub/x", O_WRONLY)       // write below the prefix
            // After a success the kernel compares the opened file's path, whatever the name.
            openClose("\(dir)/./other")               // not in normal form: still dropped
            let fd = openat(dirfd, "other", O_RDONLY) // relative: still dropped
            if fd >= 0 { close(fd) }
            openClose("\(dir)/./watched")             // kept
            // After a failure only the name is known: compared when absolute and normal.
            openClose("\(dir)/./missing")             // not in normal form: userspace decides
            let missing = openat(dirfd, "missing", O_RDONLY) // relative: userspace decides
            if missing >= 0 { close(missing) }
            openClose("\(dir)/missing")               // normal, no rule: dropped
        }
        let seen = paths(events).filter { $0.hasPrefix(dir) }
        XCTAssertEqual(seen, ["\(dir)/watched", "\(dir)/id_rsa", "\(dir)/sub/x", "\(dir)/watched", "\(dir)/missing", "\(dir)/missing"], "\(seen)")
        XCTAssertEqual(events.compactMap(\.open).filter { $0.path.string == "\(dir)/sub/x" }.map { $0.flags & 3 }, [1])
        XCTAssertGreaterThanOrEqual(try counters(harness).filtered - before, 5, "the dropped opens are counted as filtered")
    }

    /// The kernel scans the name 8 bytes at a time: every `//`, `/./`, `/../` and trailing `/`,
    /// `/.`, `/..` must be found at every offset in a word and across words, names with dots that
    /// are not `.` or `..` segments are still compared, and the basename is found at every offset.
    func testTheNameScanFindsEveryNonNormalFormAtEveryOffset() throws {
        let dir = try directory()
        let set = try rules(rule("exact", "fd.name = \(dir)/watched") + rule("key", "fd.filename = id_rsa"))
        let harness = try harness(set)
        var passes: [String] = [], drops: [String] = []
        let events = try harness.collect {
            for n in 0...16 {
                let pad = String(repeating: "p", count: n) // moves what follows through every offset mod 8
                for (name, resolved) in [("\(dir)/q\(pad)//a\(n)", "\(dir)/q\(pad)/a\(n)"),
                                         ("\(dir)/q\(pad)/./b\(n)", "\(dir)/q\(pad)/b\(n)"),
                                         ("\(dir)/c\(n)\(pad)/../c\(n)", "\(dir)/c\(n)"),
                                         ("\(dir)/\(pad)d\(n)/", "\(dir)/\(pad)d\(n)"),
                                         ("\(dir)/\(pad)e\(n)/.", "\(dir)/\(pad)e\(n)"),
                                         ("\(dir)/f\(n)/q\(pad)/..", "\(dir)/f\(n)"),
                                         ("\(dir)/q\(pad)/id_rsa", "\(dir)/q\(pad)/id_rsa")] {
                    _ = openClose(name)
                    passes.append(resolved)
                }
                for name in ["\(dir)/q\(pad)/.g\(n)", "\(dir)/q\(pad)/..h\(n)", "\(dir)/q\(pad)/...", "\(dir)/q\(pad).i\(n)/x.",
                             "\(dir)/q\(pad)/id_rsa.pub", "\(dir)/q\(pad)/xid_rsa", "\(dir)/q\(pad)"] {
                    _ = openClose(name)
                    drops.append(name)
                }
            }
        }
        let seen = Set(paths(events).filter { $0.hasPrefix(dir) })
        XCTAssertEqual(passes.filter { !seen.contains($0) }, [], "non-normal names and basename matches reach userspace")
        XCTAssertEqual(drops.filter { seen.contains($0) }, [], "normal names no rule matches are dropped")
    }

    func testTheDefaultRulesDropAPlainReadAndKeepASensitiveOne() throws {
        let set = try RuleFiles.ruleSet(paths: [], defaults: true)
        let harness = try harness(set)
        let events = try harness.collect {
            openClose("/etc/hostname")
            openClose("/etc/shadow")
            openClose("/dev/null", O_WRONLY) // below /dev, but created nothing
        }
        let seen = paths(events)
        XCTAssertTrue(seen.contains("/etc/shadow"), "\(seen)")
        XCTAssertFalse(seen.contains("/etc/hostname"), "\(seen)")
        XCTAssertFalse(seen.contains("/dev/null"), "\(seen)")
    }

    /// A rule on created files keeps only the opens that created one: reopening the file, reading
    /// it and a failed O_CREAT are dropped in the kernel.
    func testARuleOnCreatedFilesKeepsOnlyTheOpenThatCreatedOne() throws {
        let dir = try directory()
        let set = try rules(rule("created", "evt.is_open_create = true and fd.name startswith \(dir)/"))
        let harness = try harness(set)
        let before = try counters(harness).filtered
        let events = try harness.collect {
            openClose("\(dir)/new", O_WRONLY | O_CREAT)    // creates it: kept
            openClose("\(dir)/new", O_WRONLY | O_CREAT)    // it exists: dropped
            openClose("\(dir)/new")                        // a read: dropped
            openClose("\(dir)/none/x", O_WRONLY | O_CREAT) // fails (no such directory): dropped
        }
        let opens = events.compactMap(\.open).filter { $0.path.string.hasPrefix(dir) }
        XCTAssertEqual(opens.map(\.path.string), ["\(dir)/new"])
        XCTAssertEqual(opens.map(\.created), [true])
        XCTAssertGreaterThanOrEqual(try counters(harness).filtered - before, 3, "the dropped opens are counted as filtered")
    }

    func testARuleChangeUpdatesTheMapsInPlaceWithoutLosingEvents() throws {
        let dir = try directory()
        let kept = "\(dir)/kept", added = "\(dir)/added"
        touch(kept)
        touch(added)
        let old = try rules(rule("kept", "fd.name = \(kept)"))
        let new = try rules(rule("kept", "fd.name = \(kept)") + rule("added", "fd.name startswith \(dir)/add"))
        let harness = try harness(old)
        let links = harness.sensors.reports.map(\.report.active)

        // Before: the new rule's path is dropped.
        XCTAssertFalse(paths(try harness.collect { openClose(added) }).contains(added))

        // During the change a thread keeps opening the path both rule sets keep: every open of it
        // must arrive.
        let done = Atomic(false)
        let opened = Atomic(0)
        let events = try harness.collect {
            let thread = Thread {
                while !done.value, opened.value < 20_000 {
                    if openClose(kept) >= 0 { opened.increment() }
                }
            }
            thread.start()
            while opened.value < 200 { usleep(1_000) }
            var filter = KernelFilter()
            filter.ignorePID = 0
            filter.openPaths = new.openPaths
            try harness.sensors.apply(filter)
            for _ in 0..<10 { openClose(added) }
            done.value = true
            while !thread.isFinished { usleep(1_000) }
        }
        let seen = paths(events)
        XCTAssertEqual(seen.filter { $0 == kept }.count, opened.value, "every open of the kept path during the change")
        XCTAssertEqual(seen.filter { $0 == added }.count, 10, "the added rule's opens after the change")
        XCTAssertEqual(try counters(harness).lost, 0)
        XCTAssertEqual(harness.sensors.reports.map(\.report.active), links, "nothing detached or reattached")

        // And back: the removed rule's entries are deleted.
        var filter = KernelFilter()
        filter.ignorePID = 0
        filter.openPaths = old.openPaths
        try harness.sensors.apply(filter)
        XCTAssertFalse(paths(try harness.collect { openClose(added) }).contains(added))
    }

    func testKernelKillStopsTheOpenerBeforeItRunsAnotherInstruction() throws {
        let dir = try directory()
        let honeypot = "\(dir)/honeypot", benign = "\(dir)/benign"
        touch(honeypot)
        touch(benign)
        let set = try rules(rule("honeypot", "fd.name = \(honeypot) and evt.is_open_read = true", actions: "kernel_kill"))
        XCTAssertEqual(set.openPaths.killRules.map(\.name), ["honeypot"])
        let harness = try harness(set)
        // The child opens the file, then writes a marker: only if it survived the open.
        let script = "import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\nopen(sys.argv[2], 'w').write('alive')\n"
        func run(_ target: String, marker: String) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", script, target, marker]
            try process.run()
            process.waitUntilExit()
            return process
        }
        let before = try counters(harness).killed
        var killed: Process?, survivor: Process?
        let events = try harness.collect {
            killed = try run(honeypot, marker: "\(dir)/marker-honeypot")
            survivor = try run(benign, marker: "\(dir)/marker-benign")
        }
        XCTAssertEqual(killed?.terminationReason, .uncaughtSignal)
        XCTAssertEqual(killed?.terminationStatus, SIGKILL)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/marker-honeypot"), "the killed child wrote its marker")
        XCTAssertEqual(survivor?.terminationReason, .exit)
        XCTAssertEqual(survivor?.terminationStatus, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/marker-benign"))
        let open = try XCTUnwrap(events.compactMap(\.open).first { $0.path.string == honeypot }, "the killed open still reaches userspace")
        XCTAssertTrue(open.killedInKernel)
        XCTAssertEqual(try counters(harness).killed - before, 1)
        XCTAssertTrue(set.matches(try XCTUnwrap(events.first { $0.open?.path.string == honeypot })).contains { $0.rule.name == "honeypot" })
    }

    func testOpensThroughASymlinkOrAHardLinkOfAWatchedFileAreKeptAndKilled() throws {
        let dir = try directory()
        let watched = "\(dir)/watched", honeypot = "\(dir)/honeypot"
        for name in [watched, honeypot, "\(dir)/other"] { touch(name) }
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/sym", withDestinationPath: watched)
        try FileManager.default.linkItem(atPath: watched, toPath: "\(dir)/hard")
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/sym-honeypot", withDestinationPath: honeypot)
        try FileManager.default.linkItem(atPath: honeypot, toPath: "\(dir)/hard-honeypot")
        let set = try rules(rule("exact", "fd.name = \(watched)")
                            + rule("honeypot", "fd.name = \(honeypot) and evt.is_open_read = true", actions: "kernel_kill"))
        let harness = try harness(set)
        let filtered = try counters(harness).filtered
        let events = try harness.collect {
            for name in ["sym", "hard", "other"] { openClose("\(dir)/\(name)") }
        }
        let kept = events.compactMap(\.open).filter { $0.path.string == watched }
        XCTAssertEqual(Set(kept.map(\.name.string)), ["\(dir)/sym", "\(dir)/hard"], "\(paths(events))")
        XCTAssertFalse(paths(events).contains("\(dir)/other"), "an open no rule matches is dropped")
        XCTAssertGreaterThan(try counters(harness).filtered, filtered)
        XCTAssertTrue(events.filter { $0.open?.path.string == watched }.allSatisfy { set.matches($0).contains { $0.rule.name == "exact" } })

        // kernel_kill through either kind of link, as through the name.
        let script = "import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\nopen(sys.argv[2], 'w').write('alive')\n"
        for name in ["sym-honeypot", "hard-honeypot"] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", script, "\(dir)/\(name)", "\(dir)/marker-\(name)"]
            let killedEvents = try harness.collect {
                try process.run()
                process.waitUntilExit()
            }
            XCTAssertEqual(process.terminationReason, .uncaughtSignal, name)
            XCTAssertEqual(process.terminationStatus, SIGKILL, name)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/marker-\(name)"), name)
            let open = try XCTUnwrap(killedEvents.first { $0.open?.name.string == "\(dir)/\(name)" }?.open, name)
            XCTAssertTrue(open.killedInKernel, name)
            XCTAssertEqual(open.path.string, honeypot, "\(name): userspace names it as the kernel did")
        }
    }

    /// On btrfs stat's st_dev is a per-subvolume device, not the super block's the kernel keys the
    /// inode by: the watched file's device comes from its mount (statx's mount id, mountinfo).
    func testAHardLinkOnBtrfsIsMatchedByInode() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/mkfs.btrfs") || FileManager.default.isExecutableFile(atPath: "/sbin/mkfs.btrfs") else {
            throw cannotRun("needs mkfs.btrfs (btrfs-progs; scripts/setup.sh --test installs it)")
        }
        let dir = try directory()
        let image = dir + "/btrfs.img", mountpoint = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        try runProgram("/bin/sh", ["-c", "truncate -s 128M '\(image)' && mkfs.btrfs -q '\(image)' && mount -o loop '\(image)' '\(mountpoint)'"])
        addTeardownBlock { try? runProgram("/bin/umount", ["-l", mountpoint]) }
        var st = stat()
        guard mounted("btrfs", at: mountpoint) else { throw cannotRun("could not mount a btrfs image at \(mountpoint)") }
        let watched = mountpoint + "/watched"
        touch(watched)
        try FileManager.default.linkItem(atPath: watched, toPath: mountpoint + "/hard")
        XCTAssertEqual(stat(watched, &st), 0)
        let set = try rules(rule("exact", "fd.name = \(watched)"))
        let harness = try harness(set)
        let events = try harness.collect { openClose(mountpoint + "/hard") }
        let open = try XCTUnwrap(events.compactMap(\.open).first { $0.name.string == mountpoint + "/hard" }, "the kernel dropped it: \(paths(events))")
        XCTAssertEqual(open.path.string, watched)
        XCTAssertTrue(open.linkedName)
        XCTAssertEqual(open.inode, UInt64(st.st_ino))
    }
}

/// Whether a file system of `type` is mounted at `path` (/proc/self/mounts).
private func mounted(_ type: String, at path: String) -> Bool {
    let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
    return mounts.split(separator: "\n").contains { line in
        let fields = line.split(separator: " ")
        return fields.count > 2 && fields[1] == path && fields[2] == type
    }
}

/// Opens `path` and closes it; returns the descriptor it had (or -1).
@discardableResult
private func openClose(_ path: String, _ flags: Int32 = O_RDONLY) -> Int32 {
    let fd = open(path, flags | O_CLOEXEC, 0o644)
    if fd >= 0 { close(fd) }
    return fd
}

/// A value shared with a thread, behind a lock.
private final class Atomic<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

extension Atomic where Value == Int {
    func increment() { lock.withLock { stored += 1 } }
}
