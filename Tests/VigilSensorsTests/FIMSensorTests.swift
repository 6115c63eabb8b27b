import Foundation
import VigilBPF
import VigilEvents
import VigilSensors
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The fim sensor loaded into this kernel, driven by real syscalls and real tools on files in a
/// temporary directory.
final class FIMSensorTests: XCTestCase {
    /// A loaded sensor and a marker file: a write to the marker, once seen, means every change
    /// made before it has been read (one ring, records in order).
    struct Harness {
        let sensor: FIMSensor
        let dir: String
        let marker: String
        static let markerWatch: UInt32 = 9999

        init(variants: [String]? = nil) throws {
            try requireKernel(.attachTracepoint, .mapRingBuffer)
            sensor = try FIMSensor(maxWatches: 4096, ringBytes: 1 << 20, variants: variants)
            dir = try temporaryDirectory()
            marker = dir + "/marker"
            XCTAssertTrue(FileManager.default.createFile(atPath: marker, contents: nil))
            try sensor.watchFile(marker, id: Self.markerWatch)
        }

        /// Runs `body`, then writes the marker and returns every change read before the marker's.
        func collect(_ body: () throws -> Void) throws -> [FIMKernelChange] {
            try body()
            let fd = open(marker, O_WRONLY | O_APPEND)
            XCTAssertGreaterThanOrEqual(fd, 0)
            XCTAssertEqual(write(fd, "m", 1), 1)
            close(fd)
            var changes: [FIMKernelChange] = []
            var done = false
            for _ in 0..<400 where !done {
                try sensor.poll(timeoutMilliseconds: 50) { change in
                    if change.watch == Self.markerWatch && change.event.syscall?.descriptor.nameString == "write" { done = true }
                    else if !done { changes.append(change) }
                }
            }
            XCTAssertTrue(done, "the marker's write never arrived")
            return changes
        }

        /// Two files in `dir` holding `contents`: `watched` (watch 1) and `other` (not watched).
        func watchedAndOther(contents: Data? = nil) throws -> (watched: String, other: String) {
            let watched = dir + "/watched", other = dir + "/other"
            for path in [watched, other] { FileManager.default.createFile(atPath: path, contents: contents) }
            try sensor.watchFile(watched, id: 1)
            return (watched, other)
        }

        func fileID(_ path: String) -> FileID {
            var st = stat()
            XCTAssertEqual(stat(path, &st), 0, path)
            return FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        }

        /// Runs `script` in `dir`; its exit status must be 0.
        func sh(_ script: String) throws {
            let result = try runCapturing("/bin/sh", ["-c", "cd \"$1\" && \(script)", "sh", dir])
            XCTAssertEqual(result.status, 0, "\(script): \(result.stderr)")
        }
    }

    private func names(_ changes: [FIMKernelChange], watch: UInt32) -> [String] {
        changes.filter { $0.watch == watch }.compactMap { $0.event.syscall?.descriptor.nameString }
    }

    func testTheChainTriesFexitThenTracepoints() throws {
        XCTAssertEqual(Sensor.fim.hooks[0].variants.map(\.name), ["fexit", "tracepoint"])
        let h = try Harness()
        let fexit = Sensor.fim.hooks[0].variants[0].requires.allSatisfy { FeatureProbes.shared.result($0).isAvailable }
        XCTAssertEqual(h.sensor.variants.reports.first?.active, fexit ? "fexit" : "tracepoint", "\(h.sensor.variants.reports)")
    }

    /// Each variant this kernel runs (the fexit one where trampolines work: make test-kernels
    /// runs it on 6.1 and 6.12; this host refuses them).
    func testWritesToAWatchedFileAreReportedAndOthersDroppedAndCountedInTheKernel() throws {
        var ran = 0
        for variant in Sensor.fim.hooks[0].variants where variant.requires.allSatisfy({ FeatureProbes.shared.result($0).isAvailable }) {
            try writes(variant: variant.name)
            ran += 1
        }
        XCTAssertGreaterThan(ran, 0)
    }

    private func writes(variant: String) throws {
        let h = try Harness(variants: [variant])
        XCTAssertEqual(h.sensor.variants.reports.first?.active, variant)
        let (watched, other) = try h.watchedAndOther()
        let before = try h.sensor.counters()
        let changes = try h.collect {
            let o = open(other, O_WRONLY)
            for _ in 0..<100 { XCTAssertEqual(write(o, "x", 1), 1) }
            close(o)
            let w = open(watched, O_WRONLY)
            XCTAssertEqual(pwrite(w, "abc", 3, 0), 3)
            XCTAssertEqual(write(w, "d", 1), 1)
            close(w)
        }
        let after = try h.sensor.counters()
        XCTAssertEqual(names(changes, watch: 1), ["pwrite64", "write"], variant)
        let change = try XCTUnwrap(changes.first { $0.watch == 1 })
        XCTAssertEqual(change.file, h.fileID(watched))
        XCTAssertEqual(change.how, .byInode)
        XCTAssertEqual(change.event.pid, UInt32(getpid()))
        XCTAssertEqual(change.event.syscall?.result, 3)
        XCTAssertEqual(change.event.syscall?.args[2], 3, "\(variant): the count argument, from the saved user registers")
        XCTAssertTrue(changes.allSatisfy { $0.file != h.fileID(other) }, "no change of the unwatched file")
        XCTAssertGreaterThanOrEqual(after.filtered - before.filtered, 100, "\(variant): the unwatched writes were dropped and counted")
    }

    /// Where the kernel has bpf_rdonly_cast (6.2 and later: this host) the fd syscalls find the
    /// inode by typed loads, not probe reads; a descriptor past the fd table's first 64 slots
    /// (the table then lives apart from files_struct) still names its file, and the unwatched
    /// file's writes through one are still dropped and counted.
    func testWritesThroughAHighDescriptorAreMatchedByTheTypedFdTableWalk() throws {
        let h = try Harness(variants: ["tracepoint"])
        XCTAssertEqual(try h.sensor.variants.object.global("vigil_rdonly_cast", as: Bool.self), KernelFunctions.rdonlyCast)
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let version = release.split(separator: ".").prefix(2).compactMap { Int($0.prefix { $0.isNumber }) }
        if version.count == 2, (version[0], version[1]) >= (6, 2) {
            XCTAssertTrue(KernelFunctions.rdonlyCast, "\(release): 6.2 and later have bpf_rdonly_cast")
        }
        let (watched, other) = try h.watchedAndOther()
        let before = try h.sensor.counters()
        let changes = try h.collect {
            let w = open(watched, O_WRONLY), o = open(other, O_WRONLY)
            XCTAssertEqual(dup2(w, 1000), 1000)
            XCTAssertEqual(dup2(o, 1001), 1001)
            close(w)
            close(o)
            for _ in 0..<50 { XCTAssertEqual(write(1001, "x", 1), 1) }
            XCTAssertEqual(write(1000, "ab", 2), 2)
            close(1000)
            close(1001)
        }
        let after = try h.sensor.counters()
        XCTAssertEqual(names(changes, watch: 1), ["write"])
        XCTAssertEqual(changes.first { $0.watch == 1 }?.file, h.fileID(watched))
        XCTAssertEqual(changes.first { $0.watch == 1 }?.event.syscall?.args[0], 1000)
        XCTAssertGreaterThanOrEqual(after.filtered - before.filtered, 50)
    }

    /// Copies into a watched file without write(2) (coreutils' cp uses copy_file_range; sendfile
    /// and splice move data in the kernel) are changes of it; the same copies into another
    /// file are dropped in the kernel. Made by python3's os module: the syscalls themselves.
    func testCopiesIntoAWatchedFileAreReported() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { throw cannotRun("needs /usr/bin/python3") }
        let h = try Harness()
        let (watched, other) = try h.watchedAndOther(), source = h.dir + "/source"
        FileManager.default.createFile(atPath: source, contents: Data("copied bytes\n".utf8))
        let script = """
        import os, sys
        src = os.open(sys.argv[1], os.O_RDONLY)
        for target in sys.argv[2:]:
            dst = os.open(target, os.O_WRONLY)
            assert os.copy_file_range(src, dst, 13, 0, 0) == 13
            assert os.sendfile(dst, src, 0, 13) == 13
            r, w = os.pipe()
            os.write(w, b"through a pipe")
            assert os.splice(r, dst, 14) == 14
            for fd in (r, w, dst): os.close(fd)
        """
        let changes = try h.collect {
            let result = try runCapturing("/usr/bin/python3", ["-c", script, source, other, watched])
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        XCTAssertEqual(names(changes, watch: 1), ["copy_file_range", "sendfile", "splice"], "\(changes.map { ($0.watch, $0.event.syscall?.descriptor.nameString) })")
        XCTAssertTrue(changes.allSatisfy { $0.file == h.fileID(watched) }, "only the watched file: \(changes.map(\.file))")
    }

    /// The newer (dirfd, path) calls that change a file's mode, owner, xattrs or attributes
    /// (fchmodat2, setxattrat, removexattrat, file_setattr) and fchownat, by path and by fd with an
    /// empty path (AT_EMPTY_PATH), are changes of a watched file; the same calls on another file
    /// are dropped. A call this kernel lacks is skipped when the sensor attaches (named in its
    /// skipped targets), and the test expects it only where the kernel has it. Made through
    /// python3's ctypes: the raw syscalls, as glibc may not wrap them.
    func testTheDirfdAndEmptyPathCallsAreReported() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { throw cannotRun("needs /usr/bin/python3") }
        let h = try Harness()
        let (watched, other) = try h.watchedAndOther()
        let present = ["fchmodat2", "setxattrat", "removexattrat", "file_setattr"].filter {
            access("/sys/kernel/tracing/events/syscalls/sys_exit_\($0)", F_OK) == 0
        }
        XCTAssertEqual(Set(h.sensor.variants.skippedTargets).intersection(present), [],
                       "a call this kernel has is attached")
        // each call made on `other`, then on `watched`; the test checks the call succeeded
        let script = """
        import ctypes, os, struct, sys
        libc = ctypes.CDLL(None, use_errno=True)
        AT_FDCWD, AT_EMPTY_PATH = -100, 0x1000
        def call(n, *args):
            # every integer as a whole register (size_t, long): variadic ints are only 32 bits
            r = libc.syscall(ctypes.c_long(n), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
            if r < 0: sys.exit(f"syscall {n}: errno {ctypes.get_errno()}")
        calls = set(sys.argv[1].split(",")) if sys.argv[1] else set()
        for path in sys.argv[2:]:
            p = path.encode()
            fd = os.open(path, os.O_RDONLY)
            if "fchmodat2" in calls:
                call(452, AT_FDCWD, p, 0o640, 0)
                call(452, fd, b"", 0o600, AT_EMPTY_PATH)
            call(260, fd, b"", os.getuid(), os.getgid(), AT_EMPTY_PATH)  # fchownat
            if "setxattrat" in calls:
                value = ctypes.create_string_buffer(b"v")
                args = struct.pack("QII", ctypes.addressof(value), 1, 0)  # struct xattr_args
                call(463, AT_FDCWD, p, 0, b"user.vigil", args, len(args))
            if "removexattrat" in calls:
                call(466, AT_FDCWD, p, 0, b"user.vigil")
            if "file_setattr" in calls:
                attr = bytes(24)  # struct file_attr: every field 0 (no flags, no project)
                call(469, AT_FDCWD, p, attr, len(attr), 0)
            os.close(fd)
        """
        let changes = try h.collect {
            let result = try runCapturing("/usr/bin/python3", ["-c", script, present.joined(separator: ","), other, watched])
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        var expected = ["fchownat"]
        if present.contains("fchmodat2") { expected = ["fchmodat2", "fchmodat2"] + expected }
        expected += ["setxattrat", "removexattrat", "file_setattr"].filter(present.contains)
        XCTAssertEqual(names(changes, watch: 1), expected, "\(changes.map { ($0.watch, $0.event.syscall?.descriptor.nameString) })")
        XCTAssertTrue(changes.allSatisfy { $0.file == h.fileID(watched) }, "only the watched file: \(changes.map(\.file))")
    }

    /// A shared mapping of a watched file that is writable, or can become so by mprotect (the
    /// file open for writing), is reported (mmap: the writes through it make no syscall); private
    /// mappings, a read-only shared mapping of the file open read-only, and every mapping of
    /// another file are dropped in the kernel.
    func testASharedMappingOfAWatchedFileThatCanBeWrittenIsReported() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { throw cannotRun("needs /usr/bin/python3") }
        let h = try Harness()
        let (watched, other) = try h.watchedAndOther(contents: Data("root:x:0:0::/root:/bin/sh\n".utf8))
        let script = """
        import mmap, os, sys
        for path in sys.argv[1:]:
            fd = os.open(path, os.O_RDWR)
            for flags, prot in ((mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE),
                                (mmap.MAP_SHARED, mmap.PROT_READ),
                                (mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)):
                mmap.mmap(fd, 0, flags=flags, prot=prot).close()
            os.close(fd)
            fd = os.open(path, os.O_RDONLY)
            mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ).close()
            os.close(fd)
        """
        let changes = try h.collect {
            let result = try runCapturing("/usr/bin/python3", ["-c", script, other, watched])
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        XCTAssertEqual(names(changes, watch: 1), ["mmap", "mmap"], "\(changes.map { ($0.watch, $0.event.syscall?.descriptor.nameString) })")
        XCTAssertTrue(changes.allSatisfy { $0.file == h.fileID(watched) }, "only the watched file: \(changes.map(\.file))")
    }

    func testARenameOverAWatchedNameRekeysInTheKernelBeforeRenameReturns() throws {
        let h = try Harness()
        let passwd = h.dir + "/passwd", temp = h.dir + "/passwd+"
        FileManager.default.createFile(atPath: passwd, contents: Data("root:x:0:0::/root:/bin/sh\n".utf8))
        try h.sensor.watchFile(passwd, id: 2)
        let old = h.fileID(passwd)
        var new = FileID(device: 0, inode: 0)
        let changes = try h.collect {
            // as shadow's commonio does: create the new file next to it, write, rename over it
            let fd = open(temp, O_CREAT | O_EXCL | O_WRONLY, 0o644)
            XCTAssertGreaterThanOrEqual(fd, 0)
            XCTAssertEqual(write(fd, "root:x:0:0::/root:/bin/sh\n", 26), 26)
            new = h.fileID(temp)
            XCTAssertEqual(rename(temp, passwd), 0)
            // the exit program ran before rename returned: the kernel already watches the new inode
            XCTAssertNotNil(try h.sensor.watch(of: new), "the new inode is watched")
            XCTAssertNil(try h.sensor.watch(of: old), "the old inode is not")
            XCTAssertEqual(try h.sensor.watchedInode(atName: passwd), new)
            // a write through the fd opened before the rename now matches
            XCTAssertEqual(write(fd, "evil:x:0:0::/:/bin/sh\n", 22), 22)
            close(fd)
        }
        XCTAssertEqual(names(changes, watch: 2), ["rename", "write"])
        let renamed = try XCTUnwrap(changes.first { $0.event.syscall?.descriptor.nameString == "rename" })
        XCTAssertTrue(renamed.how.isSuperset(of: [.byName, .second, .rekeyed]), "\(renamed.how)")
        XCTAssertEqual(renamed.file, old)
        XCTAssertEqual(renamed.newFile, new)
        XCTAssertEqual(renamed.event.syscall.flatMap { SyscallArguments.bytes($0, 1).string }, passwd, "the path, as the table says")
    }

    func testCreationAndRemovalInAWatchedDirectory() throws {
        let h = try Harness()
        let cron = h.dir + "/cron.d"
        try FileManager.default.createDirectory(atPath: cron, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: cron + "/old", contents: nil)
        try h.sensor.watchDirectory(cron, id: 3, recursive: false)
        let changes = try h.collect {
            try h.sh("echo '* * * * * root id' > cron.d/job && echo more >> cron.d/job && rm cron.d/old && chmod 600 cron.d/job")
        }
        let seen = names(changes, watch: 3)
        XCTAssertTrue(seen.contains("openat"), "\(seen)")      // created
        XCTAssertTrue(seen.contains("write"), "\(seen)")       // written (watched from its creation)
        XCTAssertTrue(seen.contains("unlinkat") || seen.contains("unlink"), "\(seen)")
        XCTAssertTrue(seen.contains("fchmodat") || seen.contains("chmod"), "\(seen)")
        // "cron.d/old" and "cron.d/job" (relative, with a '/') were resolved in the kernel
        XCTAssertFalse(changes.contains { $0.how.contains(.unresolved) }, "\(changes.map(\.how))")
        let created = try XCTUnwrap(changes.first { $0.how.contains(.created) })
        XCTAssertEqual(created.newFile, h.fileID(cron + "/job"))
    }

    func testRealToolsOnAWatchedFile() throws {
        let h = try Harness()
        let file = h.dir + "/sudoers"
        FileManager.default.createFile(atPath: file, contents: Data("root ALL=(ALL) ALL\n".utf8))
        try h.sensor.watchFile(file, id: 4)
        let renames: Set<String> = ["rename", "renameat", "renameat2"]
        // each tool; the syscalls the kernel must report for it (any of them), and how
        let tools: [(script: String, syscalls: Set<String>, how: FIMMatch)] = [
            // a temporary file created next to it ("./sedXXXXXX"), renamed over it: re-keyed at once
            ("sed -i 's/ALL$/NOPASSWD: ALL/' sudoers", renames, [.byName, .second, .rekeyed]),
            ("echo 'x ALL=(ALL) ALL' >> sudoers", ["write"], .byInode),
            ("cp /etc/hostname copy && cp copy sudoers", ["openat"], .byInode),  // O_TRUNC of the watched file
            ("cp /etc/hostname new && mv new sudoers", renames, [.byName, .second, .rekeyed]),
            ("chmod 640 sudoers", ["fchmodat", "fchmodat2", "chmod"], .byName),
            ("chown 1:1 sudoers", ["fchownat", "chown", "lchown"], .byName),
            // a symlink made elsewhere than by an open: the name's new inode is learnt at its next open
            ("ln -sf /etc/hostname sudoers", renames, [.byName, .second, .stale]),
        ]
        for tool in tools {
            let changes = try h.collect { try h.sh(tool.script) }.filter { $0.watch == 4 }
            let match = changes.first { tool.syscalls.contains($0.event.syscall?.descriptor.nameString ?? "") }
            XCTAssertNotNil(match, "\(tool.script): \(names(changes, watch: 4))")
            if let match { XCTAssertTrue(match.how.isSuperset(of: tool.how), "\(tool.script): \(match.how)") }
            if tool.how.contains(.rekeyed) {
                // the kernel watches the inode now at the name, and the next append is seen
                XCTAssertEqual(try h.sensor.watchedInode(atName: file), h.fileID(file), tool.script)
                let next = try h.collect { try h.sh("echo more >> sudoers") }
                XCTAssertEqual(names(next, watch: 4), ["write"], "after \(tool.script)")
            }
        }
    }
}
