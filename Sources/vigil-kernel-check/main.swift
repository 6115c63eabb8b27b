// vigil-kernel-check: runs inside another kernel (make test-kernels boots Debian's 6.1 and 6.12
// under qemu) and checks that the hook kinds this host lacks (kprobe, fentry, lsm) are probed as
// available there, that each variant chain picks its first variant, and that the chosen program
// fires and delivers events through the ring. Prints one line per check and
// "kernel-check: N checks ok, M failed"; exits non-zero on any failure.
import CVigilABI
import VigilBPF
import VigilEnrichment
import VigilEvents
import VigilRules
import VigilSeccomp
import VigilSensors
#if canImport(Glibc)
import Glibc
#endif

var passed = 0, failed = 0
/// Runs a program and waits for it; returns its pid. (posix_spawn: Foundation's Process needs a
/// run-loop socket pair that minimal guests refuse.)
func spawnAndWait(_ argv: [String]) -> pid_t {
    var pid = pid_t()
    let cArgs = argv.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) } }
    guard posix_spawn(&pid, argv[0], nil, nil, cArgs, environ) == 0 else { return -1 }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return pid
}

@MainActor func check(_ name: String, _ ok: Bool, _ detail: @autoclosure () -> String = "") {
    if ok { passed += 1 } else { failed += 1 }
    print("\(ok ? "ok  " : "FAIL") \(name)\(ok ? "" : ": " + detail())")
}

var uname = utsname()
_ = Glibc.uname(&uname)
let release = withUnsafeBytes(of: uname.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
print("kernel \(release)")

// Which features must be available here: the arguments (e.g. attach:kprobe attach:fentry attach:lsm).
let required = CommandLine.arguments.dropFirst().compactMap { Feature(rawValue: $0) }
for feature in required {
    let result = FeatureProbes.shared.result(feature)
    check("probe \(feature.rawValue) available", result.isAvailable, result.description)
}

// Every variant chain starting at a required hook kind must choose that kind and fire.
for (index, variant) in Selftest.openVariants.enumerated() {
    guard required.contains(where: { variant.requires.contains($0) }) else { continue }
    do {
        let loaded = try Selftest.loadOpenHook(variants: Array(Selftest.openVariants[index...]))
        let active = loaded.activeVariant(of: "file-open") ?? "none"
        check("chain from \(variant.name) chooses \(variant.name)", active == variant.name,
              "chose \(active): \(loaded.reports)")
        let events = try Selftest.triggerOpens(loaded.object, count: 3)
        let kind = Selftest.hookKind(ofVariant: active)
        check("\(active) delivers its events", events.count >= 3 && events.allSatisfy { $0.hook == kind },
              "\(events.count) events, hooks \(events.map(\.hook))")
    } catch {
        check("chain from \(variant.name) loads", false, "\(error)")
    }
}
// A kretprobe: the kprobe program attached to the function's return.
if required.contains(.attachKprobe) {
    do {
        let object = try Selftest.open()
        try object.program(named: "open_kprobe").autoload = true
        try object.load()
        let link = try object.program(named: "open_kprobe").attachKprobe(function: "do_sys_openat2", returnProbe: true)
        let events = try Selftest.triggerOpens(object, count: 3)
        check("kretprobe fires", events.count >= 3 && events.allSatisfy { $0.hook == Selftest.hookKind(ofVariant: "kprobe") },
              "\(events.count) events")
        link.detach()
    } catch {
        check("kretprobe attaches", false, "\(error)")
    }
}

// Vigil's own sensors: the best variant of each hook, and real events through the whole pipeline.
do {
    var filter = KernelFilter()
    filter.ignorePID = 0
    let sensors = try Sensors(kinds: Sensor.process.kinds.union(Sensor.file.kinds), filter: filter)
    let active = Dictionary(uniqueKeysWithValues: sensors.reports.map { ("\($0.sensor)/\($0.report.hook)", $0.report.active) })
    print("sensors: \(active.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
    if required.contains(.attachFentry) {
        check("file sensor chooses fexit", active["file/open"] == "fexit", "\(active)")
    }
    let stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: nil), kinds: KindSet.all)
    let child = spawnAndWait(["/bin/cat", "/etc/hostname", "/nonexistent-kernel-check"])
    var events: [Event] = []
    try stream.drain { events.append($0) }
    let mine = events.filter { $0.pid == UInt32(child) }
    let exec = mine.first { $0.kind == .exec }
    check("exec event decoded", exec.map { if case .exec(let x) = $0.payload { return x.arguments == ["/bin/cat", "/etc/hostname", "/nonexistent-kernel-check"] } else { return false } } ?? false,
          "\(mine.map(\.kind))")
    let opens = mine.compactMap { event -> Payload.Open? in if case .open(let o) = event.payload { return o } else { return nil } }
    check("open events decoded", opens.contains { $0.path == "/etc/hostname" && $0.result >= 0 }
              && opens.contains { $0.path == "/nonexistent-kernel-check" && $0.result == -2 }, "\(opens.map(\.path))")
    check("header namespaces", exec.map { $0.mountNamespace != 0 && $0.pidNamespace != 0 } ?? false)
} catch {
    check("sensors load", false, "\(error)")
}

// The syscalls sensor, in each variant this kernel can run (kprobe.multi, kprobe, per-syscall
// tracepoints, generic sys_enter/sys_exit; a required feature's absence fails its probe check
// above): paired into one record, its arguments decoded by the table (a path at entry, a result
// at exit), only the syscalls asked for (a getpid made here does not arrive).
/// The syscalls sensor alone on `variant`, capturing `capture` of every process (`pids`: of
/// these alone), this one's included, and its stream, drained.
func syscallsSensor(_ variant: Variant, capturing capture: SyscallCapture, pids: Set<UInt32> = []) throws -> (Sensors, EventStream, KernelFilter) {
    var filter = KernelFilter()
    filter.ignorePID = 0
    filter.pids = pids
    filter.syscalls = capture
    let sensors = try Sensors(kinds: Sensor.syscalls.kinds, filter: filter, hooks: [Sensor.syscalls.name: [Hook("syscalls", variants: [variant])]])
    let stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: nil), kinds: [.syscall])
    try stream.drain { _ in }
    return (sensors, stream, filter)
}

/// The variants of the syscalls sensor's hook for `capture` this kernel can run; the others are
/// named as not here.
func runnableVariants(for capture: SyscallCapture) -> [Variant] {
    Sensors.syscallHooks(for: capture)[0].variants.filter { variant in
        guard let missing = variant.requires.first(where: { !FeatureProbes.shared.result($0).isAvailable }) else { return true }
        print("syscalls \(variant.name): not here (\(missing.rawValue) \(FeatureProbes.shared.result(missing)))")
        return false
    }
}

let smallSet = SyscallCapture(names: ["openat", "close"])
for variant in runnableVariants(for: smallSet) {
    do {
        let (sensors, stream, _) = try syscallsSensor(variant, capturing: smallSet)
        let child = spawnAndWait(["/bin/cat", "/etc/hostname", "/nonexistent-kernel-check"])
        _ = getpid() // a real syscall (glibc caches no pid)
        var calls: [Payload.Syscall] = [], own: [String] = []
        try stream.drain { event in
            guard case .syscall(let s) = event.payload else { return }
            if event.pid == UInt32(child) { calls.append(s) }
            if event.pid == UInt32(getpid()) { own.append(s.descriptor.nameString) }
        }
        let opens = calls.filter { $0.descriptor.nameString == "openat" }
        let text = opens.map { SyscallArguments.text($0, 1) + "=" + String($0.result) }
        check("syscalls \(variant.name): openat decoded with its path and result",
              opens.contains { SyscallArguments.text($0, 1) == "/etc/hostname" && $0.result >= 0 }
                  && opens.contains { SyscallArguments.text($0, 1) == "/nonexistent-kernel-check" && $0.result == -2 }, "\(text)")
        let names = Set(calls.map(\.descriptor.nameString))
        check("syscalls \(variant.name): only the syscalls asked for", names == ["openat", "close"], "\(names)")
        check("syscalls \(variant.name): a getpid not asked for does not arrive", !own.contains("getpid"), "\(own)")
        sensors.detach()
    } catch {
        check("syscalls \(variant.name): loads", false, "\(error)")
    }
}
// Nothing lost silently: 30 threads of this process blocked in read at once, then released at once.
// A kretprobe keeps max(10, 2 x CPUs) returns pending (the kprobe variant): the other calls' exits
// never run, and the sensor counts their events lost (at the thread's exit). Every variant: the
// events delivered plus those counted lost cover the reads; the tracepoint hooks deliver every one.
let readSet = SyscallCapture(names: ["read"])
for variant in runnableVariants(for: readSet) {
    do {
        let (sensors, stream, _) = try syscallsSensor(variant, capturing: readSet, pids: [UInt32(getpid())])
        let (reads, delivered, lost) = try BlockedReads.measure(sensors, stream, threads: 30)
        print("syscalls \(variant.name): 30 blocked reads: \(reads) made, \(delivered) delivered, \(lost) lost")
        check("syscalls \(variant.name): blocked reads delivered or counted lost", reads == 30 && delivered + Int(lost) >= reads,
              "\(reads) reads, \(delivered) delivered, \(lost) lost")
        if variant.name == Sensors.kprobeVariantName {
            check("syscalls kprobe: returns past the kretprobe's instances are counted lost", lost > 0, "\(delivered) delivered, \(lost) lost")
        } else if variant.name != Sensors.kprobeMultiVariantName {
            check("syscalls \(variant.name): tracepoints deliver every blocked read, none lost", delivered == reads && lost == 0,
                  "\(delivered) delivered, \(lost) lost")
        }
        sensors.detach()
    } catch {
        check("syscalls \(variant.name): blocked reads", false, "\(error)")
    }
}
// DNS alone (VIGIL_SPEC_DNS_ONLY), every variant: recvfrom is captured at its exit alone (no
// entry program under the per-syscall hooks); one on a UDP socket bound to port 53 is kept, one on
// another port is dropped in the kernel - by plain loads of the socket where the kernel has
// bpf_rdonly_cast (6.2+), by probe reads before. The ring's records are replayed with every
// syscall shown. Then recvfrom is asked for: `apply` attaches its entry too (the kprobe and
// kprobe.multi retargets, per program), and every call arrives, timed; then for DNS alone again.
/// A datagram of `bytes` bytes from one loopback UDP socket to another bound to `port` (0: any),
/// received with recvfrom without a source address; whether it arrived.
func udpDatagram(port: UInt16, bytes: Int) -> Bool {
    let receiver = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0), sender = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(sender); close(receiver) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    address.sin_port = port.bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let buffer = [UInt8](repeating: 0x61, count: bytes)
    let sent = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in
            bind(receiver, a, length) == 0 && getsockname(receiver, a, &length) == 0 && sendto(sender, buffer, bytes, 0, a, length) == bytes
        }
    }
    var received = [UInt8](repeating: 0, count: bytes)
    return sent && recvfrom(receiver, &received, bytes, 0, nil, nil) == bytes
}
_ = spawnAndWait(["/usr/sbin/ip", "link", "set", "lo", "up"]) // the guest's loopback starts down
let dnsSet = SyscallCapture(names: [], messages: [.dns: MessageCapture(wanted: true)])
for variant in runnableVariants(for: dnsSet) {
    do {
        var (sensors, stream, filter) = try syscallsSensor(variant, capturing: dnsSet, pids: [UInt32(getpid())])
        /// Two datagrams, to port 53 and another port; every recvfrom of this process the ring
        /// held (replayed with every syscall shown) as "RESULT/timed" or "RESULT/untimed".
        func exchange() throws -> (exchanged: Bool, recvfroms: [String]) {
            try stream.drain { _ in }
            let recorder = RingRecorder()
            stream.recorder = recorder
            defer { stream.recorder = nil }
            let exchanged = udpDatagram(port: 53, bytes: 2) && udpDatagram(port: 0, bytes: 1)
            try stream.drain { _ in }
            var recvfroms: [String] = []
            RecordPipeline(enricher: Enricher(metadata: nil), kinds: KindSet.all).replay(recorder.recording) { event in
                guard case .syscall(let s) = event.payload, event.pid == UInt32(getpid()), s.descriptor.nameString == "recvfrom" else { return }
                recvfroms.append("\(s.result)/\(s.latencyNs > 0 ? "timed" : "untimed")")
            }
            return (exchanged, recvfroms)
        }
        let alone = try exchange()
        check("syscalls \(variant.name): DNS alone keeps the recvfrom on port 53 (at exit alone), drops the other in the kernel",
              alone.exchanged && alone.recvfroms == ["2/untimed"], "\(alone)")
        filter.syscalls = SyscallCapture(names: ["recvfrom"], messages: dnsSet.messages)
        try sensors.apply(filter)
        let asked = try exchange()
        check("syscalls \(variant.name): recvfrom asked for is captured at entry and exit, every call",
              asked.exchanged && asked.recvfroms == ["2/timed", "1/timed"], "\(asked)")
        filter.syscalls = dnsSet
        try sensors.apply(filter)
        let again = try exchange()
        check("syscalls \(variant.name): for DNS alone again, at exit alone", again.exchanged && again.recvfroms == ["2/untimed"], "\(again)")
        sensors.detach()
    } catch {
        check("syscalls \(variant.name): DNS capture loads", false, "\(error)")
    }
}
// A small set chooses the first per-syscall variant this kernel runs by default (kprobe.multi where
// the check requires attach:kprobe.multi, else kprobe where it requires attach:kprobe, else the
// per-syscall tracepoints), and `apply` retargets it (adding getppid, made here, then dropping it
// while openat stays) and moves to the generic hook past the limit.
do {
    var filter = KernelFilter()
    filter.ignorePID = 0
    filter.syscalls = smallSet
    let sensors = try Sensors(kinds: Sensor.syscalls.kinds, filter: filter)
    func active() -> String { sensors.reports.first { $0.sensor == Sensor.syscalls.name }?.report.active ?? "none" }
    let expected = required.contains(.attachKprobeMulti) ? Sensors.kprobeMultiVariantName
        : required.contains(.attachKprobe) ? Sensors.kprobeVariantName : Sensors.perSyscallVariantName
    check("syscalls: a small set chooses \(expected)", active() == expected, "\(sensors.reports)")
    let chosen = active()
    print("syscalls: not on this kernel: \(sensors.syscallsNotCaptured)")
    let stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: nil), kinds: [.syscall])
    filter.syscalls = SyscallCapture(names: ["openat", "close", "getppid"])
    try sensors.apply(filter)
    try stream.drain { _ in }
    _ = getppid()
    var seen: [String] = []
    try stream.drain { event in if event.pid == UInt32(getpid()), case .syscall(let s) = event.payload { seen.append(s.descriptor.nameString) } }
    check("syscalls \(chosen): apply attaches a new syscall", active() == chosen && seen.contains("getppid"), "\(active()) \(seen)")
    filter.syscalls = smallSet
    try sensors.apply(filter)
    try stream.drain { _ in }
    _ = getppid()
    let opened = open("/etc/hostname", O_RDONLY)
    if opened >= 0 { close(opened) }
    seen = []
    try stream.drain { event in if event.pid == UInt32(getpid()), case .syscall(let s) = event.payload { seen.append(s.descriptor.nameString) } }
    check("syscalls \(chosen): apply drops a syscall, keeps the others", active() == chosen && !seen.contains("getppid") && seen.contains("openat"),
          "\(active()) \(seen)")
    let large = Syscalls.all.compactMap { $0.number() }.filter { !smallSet.numbers.contains($0) }.prefix(Sensors.perSyscallLimit + 1)
    filter.syscalls = SyscallCapture(numbers: smallSet.numbers.union(large))
    try sensors.apply(filter)
    check("syscalls: past the limit apply moves to the generic hook", !Sensors.perSyscallVariantNames.contains(active()), active())
    sensors.detach()
} catch {
    check("syscalls: per-syscall hooks by set size", false, "\(error)")
}

// The rules' path pushdown and kernel_kill, in each file variant this kernel can run: an open no
// rule names is dropped, a named one arrives, and a process opening the honeypot dies by SIGKILL.
/// Runs a program, waits, and returns its pid and wait status.
func spawnStatus(_ argv: [String]) -> (pid: pid_t, status: Int32) {
    var pid = pid_t()
    let cArgs = argv.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) } }
    guard posix_spawn(&pid, argv[0], nil, nil, cArgs, environ) == 0 else { return (-1, 0) }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return (pid, status)
}
let dir = "/tmp/vigil-kernel-check-pushdown"
mkdir(dir, 0o755)
// A tmpfs of its own: under qemu /tmp is an overlay whose layers are on different file systems,
// where stat's device and inode are not the kernel's f_inode (docs/rules.md), and hard links
// are matched by them.
let mounted = mount("tmpfs", dir, "tmpfs", 0, nil) == 0
/// stat's device and inode of `path` (for messages).
func fileID(_ path: String) -> String {
    var st = stat()
    return stat(path, &st) == 0 ? "\(st.st_dev):\(st.st_ino)" : "errno \(errno)"
}
for name in ["watched", "other", "honeypot"] { let fd = creat("\(dir)/\(name)", 0o644); if fd >= 0 { close(fd) } }
// Other names of the watched files: the kernel resolves a symlink, the inode names a hard link.
for name in ["sym", "hard", "hard-honeypot", "new", "made"] { unlink("\(dir)/\(name)") }
symlink("\(dir)/watched", "\(dir)/sym")
link("\(dir)/watched", "\(dir)/hard")
link("\(dir)/honeypot", "\(dir)/hard-honeypot")
let yaml = """
- rule: watched
  desc: d
  condition: fd.name = \(dir)/watched
  output: o
  priority: WARNING
- rule: honeypot
  desc: d
  condition: fd.name = \(dir)/honeypot and evt.is_open_read = true
  output: o
  priority: CRITICAL
  actions: [kernel_kill]
- rule: created
  desc: d
  condition: fd.name = \(dir)/new
  output: o
  priority: WARNING
- rule: creations only
  desc: d
  condition: fd.name = \(dir)/made and evt.is_open_create = true
  output: o
  priority: WARNING
"""
for variant in Sensor.file.hooks[0].variants where variant.requires.allSatisfy({ FeatureProbes.shared.result($0).isAvailable }) {
    do {
        for name in ["new", "made"] { unlink("\(dir)/\(name)") } // created below, by each variant
        let rules = try RuleSet(files: [("kernel-check.yaml", try YAMLRules.load(yaml, file: "kernel-check.yaml"))])
        var filter = KernelFilter()
        filter.openPaths = rules.openPaths
        let sensors = try Sensors(kinds: Sensor.file.kinds, filter: filter, hooks: [Sensor.file.name: [Hook("open", variants: [variant])]])
        let stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: nil), kinds: [.open])
        try stream.drain { _ in }
        let reader = spawnStatus(["/bin/cat", "\(dir)/watched", "\(dir)/other"])
        let victim = spawnStatus(["/bin/cat", "\(dir)/honeypot"])
        let linkReader = spawnStatus(["/bin/cat", "\(dir)/sym", "\(dir)/hard"])
        let linkVictim = spawnStatus(["/bin/cat", "\(dir)/hard-honeypot"])
        let creator = spawnStatus(["/bin/sh", "-c", ": > \(dir)/new; : > \(dir)/new"])
        let maker = spawnStatus(["/bin/sh", "-c", ": > \(dir)/made; : > \(dir)/made"])
        var opens: [(pid: UInt32, open: Payload.Open)] = []
        try stream.drain { event in if case .open(let o) = event.payload { opens.append((event.pid, o)) } }
        let read = opens.filter { $0.pid == UInt32(reader.pid) }.map(\.open.path.string)
        check("\(variant.name): pushdown keeps the named path, drops the other", read == ["\(dir)/watched"], "\(read)")
        let signal = victim.status & 0x7f
        check("\(variant.name): kernel_kill kills the opener with SIGKILL", signal == SIGKILL, "wait status \(victim.status)")
        let killed = opens.first { $0.pid == UInt32(victim.pid) }?.open
        check("\(variant.name): the killed open reaches userspace marked", killed?.killedInKernel == true, "\(String(describing: killed))")
        let throughLinks = opens.filter { $0.pid == UInt32(linkReader.pid) }.map { "\($0.open.name) -> \($0.open.path)" }
        check("\(variant.name): a symlink and a hard link to the watched file are kept as it",
              throughLinks == ["\(dir)/sym -> \(dir)/watched", "\(dir)/hard -> \(dir)/watched"],
              "\(throughLinks); stat: \(fileID("\(dir)/watched")) \(fileID("\(dir)/hard")); the kernel: "
                + "\(opens.filter { $0.pid == UInt32(linkReader.pid) }.map { ($0.open.device, $0.open.inode) })")
        check("\(variant.name): kernel_kill through a hard link", linkVictim.status & 0x7f == SIGKILL, "wait status \(linkVictim.status)")
        let created = opens.filter { $0.pid == UInt32(creator.pid) || $0.open.path.string == "\(dir)/new" }.map(\.open.created)
        check("\(variant.name): FMODE_CREATED on the creating open only", created == [true, false], "\(created)")
        let made = opens.filter { $0.pid == UInt32(maker.pid) }.map(\.open.created)
        check("\(variant.name): a rule on creations keeps the creating open, the kernel drops the next", made == [true], "\(made)")
        sensors.detach()
    } catch {
        check("\(variant.name): pushdown loads", false, "\(error)")
    }
}

// The fim sensor (its own object and ring): a write to a watched file, sed -i's temporary file
// renamed over it (the kernel re-keys the name to the new inode) and a write to that new inode.
// On a tmpfs of its own, as above: stat's device and inode are the kernel's there.
let fimDir = "/tmp/vigil-kernel-check-fim"
mkdir(fimDir, 0o755)
let fimMounted = mount("tmpfs", fimDir, "tmpfs", 0, nil) == 0
let fimChain = Sensor.fim.hooks[0].variants.map(\.name)
for (index, variant) in fimChain.enumerated() where Sensor.fim.hooks[0].variants[index].requires.allSatisfy({ FeatureProbes.shared.result($0).isAvailable }) {
    do {
        unlink("\(fimDir)/sudoers")
        let created = creat("\(fimDir)/sudoers", 0o644)
        if created >= 0 { close(created) }
        // the chain from this variant on: it must choose this one
        let sensor = try FIMSensor(maxWatches: 1024, ringBytes: 1 << 20, variants: Array(fimChain[index...]))
        let fimActive = sensor.variants.reports.first?.active ?? "none"
        check("fim chain from \(variant) chooses \(variant)", fimActive == variant, "\(sensor.variants.reports)")
        try sensor.watchFile("\(fimDir)/sudoers", id: 1)
        _ = spawnAndWait(["/bin/sh", "-c", "cd \(fimDir) && echo a >> sudoers && sed -i s/a/b/ sudoers && echo c >> sudoers"])
        var seen: [String] = []
        for _ in 0..<20 where seen.count < 3 {
            try sensor.poll(timeoutMilliseconds: 50) { change in
                guard change.watch == 1, case .syscall(let call) = change.event.payload else { return }
                seen.append(call.descriptor.nameString + (change.how.contains(.rekeyed) ? "+rekeyed" : ""))
            }
        }
        check("fim \(variant): a write, sed -i's rename re-keyed, the next write", seen == ["write", "rename+rekeyed", "write"], "\(seen)")
        check("fim \(variant): the other writes dropped and counted in the kernel", (try sensor.counters()).filtered > 0)
    } catch {
        check("fim \(variant) loads", false, "\(error)")
    }
}
if required.contains(.attachFentry) {
    check("fim: the fexit variant ran here", Sensor.fim.hooks[0].variants[0].requires.allSatisfy { FeatureProbes.shared.result($0).isAvailable })
}
if fimMounted { umount(fimDir) }

// The conn sensor (TCP state changes, accepts, drops), in its first variants and in its last
// (fallback) ones: a loopback connection of this process carrying 5 bytes is seen connected,
// accepted and closed with its byte count.
/// A loopback TCP connection: connects, accepts, sends `bytes` bytes, reads them, closes both.
func loopbackConnection(bytes: Int) -> Bool {
    let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0), client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(client); close(server) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in
            bind(server, a, length) == 0 && listen(server, 1) == 0 && getsockname(server, a, &length) == 0 && connect(client, a, length) == 0
        }
    }
    guard ok else { return false }
    let accepted = accept(server, nil, nil)
    defer { close(accepted) }
    var buffer = [UInt8](repeating: 0x61, count: bytes)
    return accepted >= 0 && write(client, buffer, bytes) == bytes && read(accepted, &buffer, bytes) == bytes
}
// The guest's loopback interface starts down (run-in-kernel.sh brings up nothing); up on a host.
_ = spawnAndWait(["/usr/sbin/ip", "link", "set", "lo", "up"])
for (label, hooks) in [("first", Sensor.conn.hooks), ("fallback", Sensor.conn.hooks.map { Hook($0.name, variants: [$0.variants.last!]) })] {
    do {
        var filter = KernelFilter()
        filter.ignorePID = 0
        filter.pids = [UInt32(getpid())]
        let sensors = try Sensors(kinds: Sensor.conn.kinds, filter: filter, hooks: [Sensor.conn.name: hooks])
        let active = sensors.reports.filter { $0.sensor == Sensor.conn.name }.map { "\($0.report.hook) \($0.report.active)" }
        let stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: nil), kinds: [.conn, .tcpdrop])
        try stream.drain { _ in }
        let connected = loopbackConnection(bytes: 5)
        var phases: [String] = [], closedWithBytes = false
        for _ in 0..<40 where !closedWithBytes {
            try stream.drain { event in
                guard case .conn(let c) = event.payload, event.pid == UInt32(getpid()) else { return }
                phases.append(c.phase.eventType)
                if c.phase == .close, c.bytesSent == 5 { closedWithBytes = true }
            }
            usleep(25_000)
        }
        check("conn \(label) variants \(active): connect, accept and a close with its 5 bytes", connected && closedWithBytes
              && phases.contains("tcp_connect") && phases.contains("tcp_accept"), "connected \(connected), \(phases)")
        sensors.detach()
    } catch {
        check("conn \(label) variants load", false, "\(error)")
    }
}

// The shell sensor (uprobes on bash's readline): a line typed into an interactive bash on a pty
// (util-linux script, reading the line from a pipe) is reported exactly.
do {
    var filter = KernelFilter()
    filter.ignorePID = 0
    let sensors = try Sensors(kinds: Sensor.shell.kinds, filter: filter)
    let stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: nil), kinds: Sensor.shell.kinds)
    try stream.drain { _ in }
    let line = "echo vigil-kernel-check-\(getpid())"
    _ = spawnAndWait(["/bin/sh", "-c", "printf '%s\\nexit\\n' '\(line)' | /usr/bin/script -qfc 'bash --norc --noprofile -i' /dev/null >/dev/null 2>&1"])
    var lines: [String] = []
    for _ in 0..<40 where !lines.contains(line) {
        try stream.drain { event in
            if case .shell(let s) = event.payload { lines.append(s.line.string) }
        }
        usleep(25_000)
    }
    check("shell: the line typed into bash on a pty (probes on \(sensors.shellBinaries))", lines.contains(line), "lines \(lines)")
    sensors.detach()
} catch {
    check("shell sensor loads", false, "\(error)")
}

// The seccomp sensor's recording (`vigil seccomp record -- CMD`): its enter hook is fentry on the
// syscall dispatch (x64_sys_call, ia32_sys_call) where fentry attaches, and records what the
// sys_enter tracepoint records (the chain `verify` loads): the same command recorded both ways
// gives the same syscalls, clone flags and, for a 32-bit program, the same compat numbers.
/// A static i386 program of 7 instructions: getpriority(0, 0), then exit(0), by int 0x80
/// (ia32 numbers 96 and 1): a compat task, with no 32-bit libraries needed.
func i386Program(at path: String) -> Bool {
    let code: [UInt8] = [0xb8, 96, 0, 0, 0, 0x31, 0xdb, 0x31, 0xc9, 0xcd, 0x80, // getpriority(0, 0)
                         0xb8, 1, 0, 0, 0, 0x31, 0xdb, 0xcd, 0x80] // exit(0)
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
    func le32(_ v: Int) -> [UInt8] { le16(v & 0xffff) + le16(v >> 16) }
    let base = 0x0804_8000, headers = 52 + 32, size = headers + code.count
    var elf: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 1, 1, 1] + [UInt8](repeating: 0, count: 9) // ELFCLASS32, LSB, v1
    elf += le16(2) + le16(3) + le32(1) + le32(base + headers) + le32(52) + le32(0) // ET_EXEC, EM_386, entry, phoff
    elf += le32(0) + le16(52) + le16(32) + le16(1) + le16(0) + le16(0) + le16(0)
    elf += le32(1) + le32(0) + le32(base) + le32(base) + le32(size) + le32(size) + le32(5) + le32(0x1000) // PT_LOAD r-x
    elf += code
    unlink(path)
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o755)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return write(fd, elf, elf.count) == elf.count
}
/// Records `command` in a fresh cgroup from its exec with the chain `recorder` chose.
func seccompRecording(_ recorder: SeccompRecorder, _ name: String, _ command: [String]) throws -> SeccompRecording? {
    let directory = recorder.cgroupMount + "/vigil-kernel-check-\(name)"
    rmdir(directory)
    guard mkdir(directory, 0o755) == 0 else { throw BPFError(.notFound, operation: "mkdir", target: directory, errno: errno, message: "no cgroup") }
    defer { rmdir(directory) }
    let id = try SeccompRecorder.cgroupID(ofDirectory: directory)
    try recorder.watch(cgroup: id, from: .exec)
    _ = spawnAndWait(["/bin/sh", "-c", "echo $$ > \"$0\" && exec \"$@\"", directory + "/cgroup.procs"] + command)
    return try recorder.recording(of: id)
}
let i386Path = "/tmp/vigil-kernel-check-i386"
let haveI386 = i386Program(at: i386Path)
// nice calls getpriority and setpriority, nproc sched_getaffinity; sh forks its subshell
// (clone, with flags; its commands it starts with vfork).
let seccompCommand = ["/bin/sh", "-c", "/usr/bin/nice -n 1 /usr/bin/nproc >/dev/null; (exit 0); \(i386Path); true"]
func seccompSummary(_ r: SeccompRecording?) -> String {
    guard let r else { return "not watched" }
    return "native \(r.native.sorted()), compat \(r.compat.sorted()), x32 \(r.x32.sorted()), clone flags \(String(r.cloneFlags, radix: 16))"
}
do {
    var recordings: [String: SeccompRecording] = [:]
    for verify in [false, true] { // verify: true loads `enter` on sys_enter
        let recorder = try SeccompRecorder(verify: verify)
        let enter = recorder.reports.first { $0.hook == "enter" }
        let label = verify ? "seccomp (verify's chain)" : "seccomp"
        print("\(label) enter: \(enter?.active ?? "none"): \(enter?.attempts.map { "\($0.variant) \($0.outcome.rawValue)\($0.reason.map { " (\($0))" } ?? "")" } ?? [])")
        if !verify && required.contains(.attachFentry) {
            check("seccomp enter chooses fentry", enter?.active == "fentry", "\(recorder.reports)")
            check("seccomp fentry attaches to x64_sys_call and ia32_sys_call",
                  Set(recorder.variants.object.programs.filter(\.autoload).map(\.name)).isSuperset(of: ["seccomp_enter_x64", "seccomp_enter_ia32"]),
                  "\(recorder.variants.object.programs.filter(\.autoload).map(\.name))")
        }
        if verify { check("seccomp verify's enter stays on sys_enter", enter?.active == "tp_btf" || enter?.active == "raw_tp", "\(recorder.reports)") }
        let recording = try seccompRecording(recorder, verify ? "seccomp-tp" : "seccomp", seccompCommand)
        if let recording { recordings[enter?.active ?? "none"] = recording }
        recorder.detach()
        func number(_ name: String) -> Int { SeccompRecording.number(of: name, on: .current) ?? -1 }
        let native = recording?.native ?? []
        check("\(label) \(enter?.active ?? "none") records the command's syscalls",
              ["execve", "getpriority", "setpriority", "sched_getaffinity", "exit_group"].allSatisfy { native.contains(number($0)) }
                  && !native.contains(number("reboot")) && (recording?.cloneFlags ?? 0) != 0,
              seccompSummary(recording))
        if haveI386 {
            check("\(label) \(enter?.active ?? "none") records the i386 program's compat getpriority (96) and exit (1)",
                  recording?.compat.isSuperset(of: [96, 1]) == true, seccompSummary(recording))
        }
    }
    if recordings.count == 2, let fentry = recordings["fentry"], let (other, tracepoint) = recordings.first(where: { $0.key != "fentry" }) {
        check("seccomp fentry records what \(other) records",
              fentry.native == tracepoint.native && fentry.compat == tracepoint.compat && fentry.x32 == tracepoint.x32
                  && fentry.cloneFlags == tracepoint.cloneFlags && fentry.personalities == tracepoint.personalities,
              "fentry: \(seccompSummary(fentry)); \(other): \(seccompSummary(tracepoint))")
    } else if required.contains(.attachFentry) {
        check("seccomp recorded with fentry and with sys_enter", false, "\(recordings.keys.sorted())")
    }
} catch {
    check("seccomp recorder loads", false, "\(error)")
}
unlink(i386Path)

print("kernel-check: \(passed) checks ok, \(failed) failed")
if mounted { umount(dir) }
exit(failed == 0 && passed > 0 ? 0 : 1)
