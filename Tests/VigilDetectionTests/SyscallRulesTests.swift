import CVigilABI
import Foundation
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest

/// The syscalls a rule set needs, derived from its conditions and pushed into the syscalls
/// sensor's bitmap; the sensor loaded, updated and unloaded at run time; one exec, one alert.
final class SyscallRulesTests: XCTestCase {
    private func ruleSet(_ yaml: String) throws -> RuleSet {
        try RuleSet(files: [("r.yaml", try YAMLRules.load(yaml, file: "r.yaml"))])
    }

    private func rule(_ name: String, _ condition: String) -> String {
        """
        - rule: \(name)
          desc: d
          condition: \(condition)
          output: "\(name) %proc.name %evt.type"
          priority: WARNING

        """
    }

    func testTheSyscallsOfTheConditionsArePushedDown() throws {
        let set = try ruleSet(rule("a", "evt.type in (ptrace, chmod) and proc.name != gdb")
            + rule("b", "evt.type = unlinkat and evt.arg.pathname startswith /var/log/")
            + rule("c", "evt.type = execve and container.id != host")
            + rule("d", "evt.type in (open, openat) and fd.name = /etc/shadow")
            + rule("e", "proc.name = nc"))
        let pushdown = set.pushdown
        XCTAssertEqual(Set(pushdown.syscalls.names), ["ptrace", "chmod", "unlinkat"])
        XCTAssertEqual(pushdown.everySyscallRules, [])
        XCTAssertTrue(pushdown.kinds.contains(.syscall))
        XCTAssertTrue(pushdown.summary.contains { $0.hasPrefix("syscalls: 3: ") && $0.contains("ptrace") }, "\(pushdown.summary)")
        // A rule with no restriction on syscall fields does not ask for syscalls.
        let generic = try ruleSet(rule("e", "proc.name = nc") + rule("c", "evt.type = execve"))
        XCTAssertTrue(generic.pushdown.syscalls.isEmpty)
        XCTAssertFalse(generic.pushdown.kinds.contains(.syscall))
        XCTAssertTrue(generic.pushdown.summary.contains("syscalls: none (the syscalls sensor is not loaded)"), "\(generic.pushdown.summary)")
    }

    func testARuleNeedingEverySyscallIsReported() throws {
        let set = try ruleSet(rule("failures", "evt.failed = true and proc.name = curl"))
        XCTAssertEqual(set.pushdown.syscalls, .all)
        XCTAssertEqual(set.pushdown.everySyscallRules, ["failures"])
        XCTAssertTrue(set.warnings.contains { $0.message.contains("rule 'failures' asks for every syscall") }, "\(set.warnings)")
        XCTAssertTrue(set.pushdown.syscallSummary.contains("ALL"), set.pushdown.syscallSummary)
    }

    /// dns.* fields exist only on the syscalls DNS is read from (recvfrom, recvmsg): a rule on them
    /// asks for those, not every syscall, and the kernel may drop non-DNS calls while every rule that
    /// asks for recvfrom needs a DNS message. A peer's name (fd.sip.name) turns DNS on for any
    /// socket syscall's rule.
    func testDNSRulesAskForTheDNSSyscallsOfPort53Only() throws {
        let lookup = try ruleSet(rule("lookup", "dns.qr = R and dns.name endswith .duckdns.org"))
        XCTAssertEqual(lookup.pushdown.syscalls.names, ["read", "recvfrom", "recvmsg"])
        XCTAssertTrue(lookup.pushdown.messages[.dns].wanted)
        XCTAssertTrue(lookup.pushdown.messages[.dns].only)
        XCTAssertTrue(lookup.pushdown.summary.contains { $0.hasPrefix("dns: ") }, "\(lookup.pushdown.summary)")
        let capture = SyscallCapture(numbers: lookup.pushdown.syscallNumbers, bounds: SyscallBounds(), asked: [], pushdown: lookup.pushdown)
        let recvfrom = try XCTUnwrap(Syscalls.named("recvfrom"))
        XCTAssertNotEqual(capture.spec(for: recvfrom).flags & UInt16(VIGIL_SPEC_DNS_ONLY.rawValue), 0)
        XCTAssertEqual(capture.spec(for: recvfrom).buf_max, UInt16(SocketMessage.dns.bytes))
        let recvmsg = try XCTUnwrap(Syscalls.named("recvmsg"))
        XCTAssertNotEqual(capture.spec(for: recvmsg).flags & UInt16(VIGIL_SPEC_DNS_ONLY.rawValue), 0)
        XCTAssertEqual(capture.spec(for: recvmsg).buf_max, UInt16(SocketMessage.dns.bytes))
        // read (Go's resolver): only on the UDP sockets connect armed for port 53.
        let read = try XCTUnwrap(Syscalls.named("read")), connect = try XCTUnwrap(Syscalls.named("connect"))
        XCTAssertEqual(capture.spec(for: read).flags & UInt16(VIGIL_SPEC_DNS_ONLY.rawValue | VIGIL_SPEC_DNS_ARMED.rawValue),
                       UInt16(VIGIL_SPEC_DNS_ONLY.rawValue | VIGIL_SPEC_DNS_ARMED.rawValue))
        XCTAssertEqual(capture.spec(for: read).buf_max, UInt16(SocketMessage.dns.bytes))
        XCTAssertNotEqual(capture.spec(for: connect).flags & UInt16(VIGIL_SPEC_ARM_DNS.rawValue), 0)

        // Another rule wants every recvfrom: the kernel keeps them all.
        let both = try ruleSet(rule("lookup", "dns.qr = R and dns.name endswith .duckdns.org")
            + rule("reads", "evt.type = recvfrom and proc.name = curl"))
        XCTAssertTrue(both.pushdown.messages[.dns].wanted)
        XCTAssertFalse(both.pushdown.messages[.dns].only)
        let all = SyscallCapture(numbers: both.pushdown.syscallNumbers, bounds: SyscallBounds(), asked: [], pushdown: both.pushdown)
        XCTAssertEqual(all.spec(for: recvfrom).flags & UInt16(VIGIL_SPEC_DNS_ONLY.rawValue), 0)
        // `not dns...` can be true without DNS.
        XCTAssertFalse(try ruleSet(rule("n", "evt.type = recvfrom and not dns.name = x")).pushdown.messages[.dns].only)

        let pool = try ruleSet(rule("pool", "evt.type = connect and fd.sip.name = pool.example"))
        XCTAssertEqual(pool.pushdown.syscalls.names, ["connect"])
        XCTAssertTrue(pool.pushdown.messages[.dns].wanted)
        XCTAssertTrue(pool.pushdown.messages[.dns].only, "recvfrom is captured for DNS alone")
        // A rule that asks for every read (not for DNS) keeps them all; recvfrom, not asked for,
        // is still captured for DNS alone, and no connect arms anything.
        let reads = try ruleSet(rule("pool", "evt.type = connect and fd.sip.name = pool.example") + rule("r", "evt.type = read and proc.name = cat"))
        let readAll = SyscallCapture(numbers: reads.pushdown.syscallNumbers, bounds: SyscallBounds(), asked: [], pushdown: reads.pushdown)
        XCTAssertEqual(readAll.spec(for: read).flags & UInt16(VIGIL_SPEC_DNS_ONLY.rawValue | VIGIL_SPEC_DNS_ARMED.rawValue), 0)
        XCTAssertNotEqual(readAll.spec(for: recvfrom).flags & UInt16(VIGIL_SPEC_DNS_ONLY.rawValue), 0)
        XCTAssertEqual(readAll.spec(for: connect).flags & UInt16(VIGIL_SPEC_ARM_DNS.rawValue), 0)
        XCTAssertFalse(try ruleSet(rule("c", "evt.type = connect and fd.sport = 53")).pushdown.messages[.dns].wanted)
        XCTAssertTrue(try ruleSet(rule("o", "evt.type = connect") .replacingOccurrences(of: "%evt.type", with: "%fd.sip.name")).pushdown.messages[.dns].wanted,
                      "a name in the output")
    }

    /// net.stratum.* exists only on what a client wrote (write, writev, sendto, sendmsg): a rule on
    /// it asks for those, and while every rule asking for them needs it, the kernel keeps only each
    /// TCP connection's first payload (armed by connect).
    func testStratumRulesAskForFirstPayloadsOnly() throws {
        let stratum = try ruleSet(rule("pool", "net.stratum.method exists"))
        XCTAssertEqual(Set(stratum.pushdown.syscalls.names), ["write", "writev", "sendto", "sendmsg"])
        XCTAssertTrue(stratum.pushdown.messages[.firstPayload].wanted)
        XCTAssertTrue(stratum.pushdown.messages[.firstPayload].only)
        XCTAssertTrue(stratum.pushdown.summary.contains { $0.hasPrefix("payloads: ") && $0.contains("first payload") }, "\(stratum.pushdown.summary)")
        let capture = SyscallCapture(numbers: stratum.pushdown.syscallNumbers, bounds: SyscallBounds(), asked: [], pushdown: stratum.pushdown)
        for name in NetworkFields.payloadSyscalls {
            let spec = capture.spec(for: try XCTUnwrap(Syscalls.named(name)))
            XCTAssertNotEqual(spec.flags & UInt16(VIGIL_SPEC_FIRST_PAYLOAD.rawValue), 0, name)
            XCTAssertEqual(spec.buf_max, UInt16(SocketMessage.firstPayload.bytes), name)
        }
        let connect = try XCTUnwrap(Syscalls.named("connect"))
        XCTAssertTrue(capture.numbers.contains(try XCTUnwrap(connect.number())), "connect arms the connection")
        XCTAssertNotEqual(capture.spec(for: connect).flags & UInt16(VIGIL_SPEC_ARM_PAYLOAD.rawValue), 0)

        // Another rule wants every write: the kernel keeps them all, and connect arms nothing.
        let both = try ruleSet(rule("pool", "net.stratum.method exists") + rule("writes", "evt.type = write and proc.name = dd"))
        XCTAssertFalse(both.pushdown.messages[.firstPayload].only)
        let all = SyscallCapture(numbers: both.pushdown.syscallNumbers, bounds: SyscallBounds(), asked: [], pushdown: both.pushdown)
        XCTAssertEqual(all.spec(for: try XCTUnwrap(Syscalls.named("write"))).flags & UInt16(VIGIL_SPEC_FIRST_PAYLOAD.rawValue), 0)
        XCTAssertEqual(all.spec(for: connect).flags & UInt16(VIGIL_SPEC_ARM_PAYLOAD.rawValue), 0)
        XCTAssertFalse(try ruleSet(rule("n", "evt.type = write and not net.stratum.method = login")).pushdown.messages[.firstPayload].only)
        XCTAssertFalse(try ruleSet(rule("o", "evt.type = connect")).pushdown.messages[.firstPayload].wanted)
    }

    func testSyscallsADedicatedSensorReportsAreNotAskedFor() throws {
        // evt.type = execve matches the process sensor's exec events: execve is not captured again.
        let exec = try ruleSet(rule("x", "evt.type in (execve, execveat, openat, clone, ptrace)"))
        XCTAssertEqual(exec.pushdown.syscalls.names, ["ptrace"])
        // A rule on execve's arguments only matches syscall events: execve is captured for it.
        let args = try ruleSet(rule("y", "evt.type = execve and evt.arg.filename = /bin/true"))
        XCTAssertEqual(args.pushdown.syscalls.names, ["execve"])
    }

    /// Both rules in one set: the syscalls sensor captures execve (for `args`); the exec event and
    /// the execve syscall event of one real exec each meet only their rule.
    func testOneRealExecGivesOneAlert() throws {
        let set = try ruleSet(rule("exec", "evt.type = execve and proc.name = vigil-one-exec")
            + rule("args", "evt.type = execve and evt.arg.filename endswith /vigil-one-exec"))
        XCTAssertEqual(set.pushdown.syscalls.names, ["execve"])
        let dir = try temporaryDirectory()
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: dir + "/vigil-one-exec")
        var filter = KernelFilter()
        filter.ignorePID = 0
        filter.add(set.pushdown, filtering: false)
        let harness = try TraceHarness(filter: filter)
        XCTAssertTrue(harness.sensors.loaded.contains { $0.name == "syscalls" })
        let events = try harness.collect { try runProgram(dir + "/vigil-one-exec", []) }
        let alerts = events.flatMap { e in set.matches(e).map { ($0.rule.name, e.kind) } }
        XCTAssertEqual(alerts.filter { $0.0 == "exec" }.map(\.1), [.exec], "\(alerts)")
        XCTAssertEqual(alerts.filter { $0.0 == "args" }.map(\.1), [.syscall], "\(alerts)")
    }

    /// A rule change at run time: the sensor is loaded, its bitmap changed in place, then unloaded.
    func testApplyLoadsUpdatesAndUnloadsTheSyscallsSensor() throws {
        var filter = KernelFilter()
        filter.ignorePID = 0
        let harness = try TraceHarness(filter: filter)
        XCTAssertFalse(harness.sensors.loaded.contains { $0.name == "syscalls" }, "no rule needs a syscall")
        let dir = try temporaryDirectory()
        func calls(_ work: String) throws -> Set<String> {
            Set(try harness.collect { try runProgram("/bin/sh", ["-c", work], cwd: dir) }.compactMap { $0.syscall?.descriptor.nameString })
        }
        filter.add(try ruleSet(rule("a", "evt.type in (mkdir, mkdirat)")).pushdown)
        try harness.sensors.apply(filter)
        XCTAssertTrue(harness.sensors.loaded.contains { $0.name == "syscalls" })
        let makes: Set<String> = ["mkdir", "mkdirat"], removes: Set<String> = ["rmdir", "unlinkat"]
        var seen = try calls("mkdir d1; rmdir d1")
        XCTAssertFalse(seen.isDisjoint(with: makes), "\(seen)")
        XCTAssertTrue(seen.isDisjoint(with: removes), "\(seen)")
        let object = ObjectIdentifier(try XCTUnwrap(harness.sensors.loaded.first { $0.name == "syscalls" }).variants.object)
        filter.syscalls = nil
        filter.add(try ruleSet(rule("b", "evt.type in (rmdir, unlinkat)")).pushdown)
        try harness.sensors.apply(filter)
        let same = try XCTUnwrap(harness.sensors.loaded.first { $0.name == "syscalls" })
        XCTAssertEqual(ObjectIdentifier(same.variants.object), object, "updated in place, not reloaded")
        seen = try calls("mkdir d2; rmdir d2")
        XCTAssertFalse(seen.isDisjoint(with: removes), "\(seen)")
        XCTAssertTrue(seen.isDisjoint(with: makes), "\(seen)")
        filter.syscalls = nil
        filter.add(try ruleSet(rule("c", "proc.name = nc")).pushdown)
        try harness.sensors.apply(filter)
        XCTAssertFalse(harness.sensors.loaded.contains { $0.name == "syscalls" }, "unloaded")
        XCTAssertTrue(try calls("mkdir d3; rmdir d3").isEmpty)
    }
}
