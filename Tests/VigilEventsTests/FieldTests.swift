import CVigilABI
import Foundation
import VigilEvents
import XCTest

final class FieldTests: XCTestCase {
    func testDocsFieldsIsGeneratedFromTheCatalogue() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/fields.md")
        let committed = try String(contentsOf: docs, encoding: .utf8)
        XCTAssertEqual(committed, Fields.markdown(), "docs/fields.md is stale: run 'make generate'")
    }

    func testNamesAreUniqueAndFalcoNamesPresent() {
        XCTAssertEqual(Set(Fields.names).count, Fields.names.count)
        for name in ["evt.type", "evt.time", "evt.res", "proc.pid", "proc.ppid", "proc.name", "proc.pname", "proc.aname",
                     "proc.exepath", "proc.cmdline", "proc.args", "proc.cwd", "proc.tty", "user.uid", "user.name",
                     "group.gid", "fd.name", "fd.directory", "fd.filename", "fd.flags", "container.id",
                     "container.full_id", "container.name", "container.image", "k8s.pod.uid"] {
            XCTAssertNotNil(Fields.named(name), name)
        }
    }

    private func openEvent(name: String, base: String, result: Int64) -> Event {
        var e = Event(bootTimeNs: 1, timeNs: 2, cgroupID: 3, pid: 10, tid: 11, ppid: 1, uid: 0, gid: 0, cpu: 0,
                      mountNamespace: 0, pidNamespace: 0, comm: "cat",
                      payload: .open(.init(syscall: "openat", name: ByteString(name),
                                           path: PathResolution.resolve(ByteString(name), against: ByteString(base)),
                                           flags: 0o2000000, mode: 0, dirfd: -100, result: result, truncated: false)))
        e.process.ancestorNames = ["bash", "sshd"]
        e.process.ancestorPIDs = [1, 0]
        e.process.arguments = ["cat", "-n", "x"]
        return e
    }

    func testExtraction() {
        let e = openEvent(name: "x", base: "/etc", result: -2)
        func v(_ name: String, _ arg: String? = nil) -> FieldValue? { Fields.named(name)?.extract(e, arg) }
        XCTAssertEqual(v("fd.name"), .string("/etc/x"))
        XCTAssertEqual(v("evt.res"), .string("ENOENT"))
        XCTAssertEqual(v("fd.num"), .int(-1))
        XCTAssertEqual(v("proc.aname", "0"), .string("cat"))
        XCTAssertEqual(v("proc.aname", "2"), .string("sshd"))
        XCTAssertNil(v("proc.aname", "3"))
        XCTAssertEqual(v("proc.cmdline"), .string("cat -n x"))
        XCTAssertEqual(v("proc.args"), .string("-n x"))
        XCTAssertEqual(v("container.id"), .string("host"))
        XCTAssertNil(v("proc.exitcode"), "exit fields are not on open events")
    }

    /// proc.duration is the process's age at every event (Falco's meaning), not only at exit:
    /// the event's boot time minus the start the exec carries or the process table knows.
    func testProcessDurationIsTheAgeOnEveryEvent() {
        func duration(_ e: Event) -> FieldValue? { Fields.named("proc.duration")?.extract(e, nil) }
        let field = Fields.named("proc.duration")
        XCTAssertEqual(field.map { EventKind.allCases.filter($0.applies) }, EventKind.allCases, "on every kind")

        var open = openEvent(name: "x", base: "/etc", result: 3)
        XCTAssertNil(duration(open), "start unknown: no value (<NA>), as Falco without a clone time")
        open.bootTimeNs = 9_000_000_000
        open.process.startTimeNs = 2_000_000_000
        XCTAssertEqual(duration(open), .uint(7_000_000_000))
        open.process.startTimeNs = 9_500_000_000
        XCTAssertNil(duration(open), "a start after the event is not an age")

        var exec = Event(bootTimeNs: 6_000_000_000, timeNs: 2, cgroupID: 3, pid: 10, tid: 10, ppid: 1, uid: 0, gid: 0, cpu: 0,
                         mountNamespace: 0, pidNamespace: 0, comm: "nginx",
                         payload: .exec(.init(filename: "/usr/sbin/nginx", executablePath: "/usr/sbin/nginx", arguments: ["nginx"],
                                              argumentsTruncated: false, cwd: "/", tty: "", ttyNumber: 0, loginUID: 0,
                                              startTimeNs: 1_000_000_000)))
        XCTAssertEqual(duration(exec), .uint(5_000_000_000), "the exec's own start (the clone's, kept across exec)")
        exec.process.startTimeNs = 3
        XCTAssertEqual(duration(exec), .uint(5_000_000_000), "the exec's start wins over an older record")

        let exit = Event(bootTimeNs: 6_000_000_000, timeNs: 2, cgroupID: 3, pid: 10, tid: 10, ppid: 1, uid: 0, gid: 0, cpu: 0,
                         mountNamespace: 0, pidNamespace: 0, comm: "nginx",
                         payload: .exit(.init(status: 0, startTimeNs: 1_000_000_000, durationNs: 4_321)))
        XCTAssertEqual(duration(exit), .uint(4_321), "exit: how long it ran, as the kernel measured")
    }

    func testJSONIsOneParsableObjectWithFieldNames() throws {
        let line = EventFormat.json(openEvent(name: "a b", base: "/tmp", result: 3))
        XCTAssertFalse(line.contains("\n"))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(object["fd.name"] as? String, "/tmp/a b")
        XCTAssertEqual(object["evt.type"] as? String, "openat")
        XCTAssertEqual(object["proc.anames"] as? [String], ["bash", "sshd"])
        XCTAssertNil(object["proc.exitcode"])
    }

    func testDecoderRejectsShortAndUnknownRecords() {
        var decoder = EventDecoder(bootToEpochNs: 0)
        var header = vigil_event_header()
        header.kind = 99
        header.size = UInt32(MemoryLayout<vigil_event_header>.size)
        withUnsafeBytes(of: header) { XCTAssertNil(decoder.decode($0), "unknown kind") }
        header.kind = UInt32(VIGIL_EVENT_OPEN.rawValue)
        withUnsafeBytes(of: header) { XCTAssertNil(decoder.decode($0), "open record shorter than its struct") }
        var open = vigil_open_event()
        open.hdr.kind = UInt32(VIGIL_EVENT_OPEN.rawValue)
        open.hdr.size = UInt32(MemoryLayout<vigil_open_event>.size)
        open.name_len = 10 // claims bytes the record does not have
        withUnsafeBytes(of: open) { XCTAssertNil(decoder.decode($0)) }
    }
    /// A connect of a UDP socket to a DNS server as the syscalls sensor and fd table give it,
    /// and a unix socket's sendmsg.
    private func socketEvent(_ call: String, fd: FDInfo) throws -> Event {
        let index = try XCTUnwrap(Syscalls.index(named: call))
        var e = Event(bootTimeNs: 1, timeNs: 2, cgroupID: 3, pid: 10, tid: 10, ppid: 1, uid: 0, gid: 0, cpu: 0,
                      mountNamespace: 0, pidNamespace: 0, comm: "dig",
                      payload: .syscall(.init(index: index, result: 0, latencyNs: 0, args: [3, 0x1000, 16, 0, 0, 0, 0, 0])))
        e.setFD(fd)
        return e
    }

    /// fd.port is either end's port (Falco: matches the client's or the server's); fd.sockfamily
    /// is ip for IPv4 and IPv6 sockets, unix for unix sockets, none for other fds.
    func testPortOfEitherEndAndSocketFamily() throws {
        let udp = SocketInfo(l4proto: .udp, local: SocketAddress(ip: try XCTUnwrap(IPAddress("10.0.0.2")), port: 40000),
                             remote: SocketAddress(ip: try XCTUnwrap(IPAddress("10.0.0.9")), port: 53), role: .client, connected: true)
        let connect = try socketEvent("connect", fd: FDInfo(number: 3, type: .ipv4, name: "10.0.0.2:40000->10.0.0.9:53", socket: udp))
        func v(_ e: Event, _ name: String) -> FieldValue? { Fields.named(name)?.extract(e, nil) }
        XCTAssertEqual(v(connect, "fd.port"), .uints([40000, 53]), "the client's, then the server's")
        XCTAssertEqual(v(connect, "fd.sockfamily"), .string("ip"))
        let unix = try socketEvent("sendmsg", fd: FDInfo(number: 3, type: .unix, name: "/run/x.sock",
                                                          socket: SocketInfo(local: SocketAddress(path: "/run/x.sock"))))
        XCTAssertEqual(v(unix, "fd.sockfamily"), .string("unix"))
        XCTAssertNil(v(unix, "fd.port"), "a unix socket has no ports")
        let pipe = try socketEvent("write", fd: FDInfo(number: 3, type: .pipe, name: "pipe:[7]"))
        XCTAssertNil(v(pipe, "fd.sockfamily"))
        XCTAssertNil(v(pipe, "fd.port"))
    }

    /// proc.vpid, proc.is_vpgid_leader and proc.env come from what the process table read in
    /// /proc (status's NSpid and NSpgid, environ): a container's first process is 1 in its pid
    /// namespace and leads its group; unknown details give no value.
    func testNamespacePidGroupLeaderAndEnvironment() {
        var e = openEvent(name: "x", base: "/etc", result: 3)
        func v(_ name: String) -> FieldValue? { Fields.named(name)?.extract(e, nil) }
        XCTAssertNil(v("proc.vpid"))
        XCTAssertNil(v("proc.is_vpgid_leader"))
        XCTAssertNil(v("proc.env"))
        var details = ProcessDetails()
        details.vpid = 1
        details.vpgid = 1
        details.environment = ["PATH=/usr/bin:/bin", "HTTP_PROXY=http://proxy:3128", "HOME=/root"]
        e.process.details = details
        XCTAssertEqual(v("proc.vpid"), .uint(1))
        XCTAssertEqual(v("proc.is_vpgid_leader"), .bool(true))
        XCTAssertEqual(v("proc.env"), .string("PATH=/usr/bin:/bin HTTP_PROXY=http://proxy:3128 HOME=/root"))
        details.vpid = 7
        e.process.details = details
        XCTAssertEqual(v("proc.is_vpgid_leader"), .bool(false), "a member of group 1, not its leader")
    }

    /// container.mounts and container.mount.dest[...] come from the runtime's mounts: by index,
    /// or by the first whose host source matches a glob; none on the host or without a match.
    func testContainerMounts() {
        var e = openEvent(name: "x", base: "/etc", result: 3)
        func v(_ name: String, _ arg: String? = nil) -> FieldValue? { Fields.named(name)?.extract(e, arg) }
        XCTAssertNil(v("container.mounts"), "the host")
        XCTAssertNil(v("container.mount.dest", "0"))
        e.container = ContainerContext(fullID: String(repeating: "ab", count: 32), runtime: "docker", name: "web", image: "nginx:1",
                                       labels: [:], podUID: "")
        XCTAssertNil(v("container.mounts"), "the runtime did not say")
        e.container.details = ContainerDetails(mounts: [
            ContainerMount(source: "/var/run/docker.sock", destination: "/var/run/docker.sock", readWrite: true, propagation: "rprivate"),
            ContainerMount(source: "/proc/sys", destination: "/host/proc/sys", mode: "ro", readWrite: false, propagation: "rprivate"),
        ])
        XCTAssertEqual(v("container.mounts"), .string("/var/run/docker.sock:/var/run/docker.sock::true:rprivate,/proc/sys:/host/proc/sys:ro:false:rprivate"))
        XCTAssertEqual(v("container.mount.dest", "1"), .string("/host/proc/sys"))
        XCTAssertNil(v("container.mount.dest", "2"))
        XCTAssertEqual(v("container.mount.dest", "/var/run/docker.sock"), .string("/var/run/docker.sock"))
        XCTAssertEqual(v("container.mount.dest", "/proc*"), .string("/host/proc/sys"), "a glob on the source")
        XCTAssertNil(v("container.mount.dest", "/etc"))
        e.container.details = ContainerDetails(mounts: [])
        XCTAssertEqual(v("container.mounts"), .string(""), "known: no mounts")
    }
    /// Runtimes' RFC 3339 start times read back as what Timestamp.iso8601 writes; the zero time
    /// of a container never started and other text give nothing; container.start_ts is the
    /// runtime's start time of a container, none on the host.
    func testContainerStartTime() {
        for ns: UInt64 in [0, 1_000_000_000, 1_733_366_442_123_456_789, 951_782_400_000_000_001 /* 2000-02-29 */, 4_102_444_800_000_000_000] {
            XCTAssertEqual(Timestamp.parseISO8601(Timestamp.iso8601(ns)), ns, Timestamp.iso8601(ns))
        }
        XCTAssertEqual(Timestamp.parseISO8601("2024-12-05T02:40:42Z"), 1_733_366_442_000_000_000)
        XCTAssertEqual(Timestamp.parseISO8601("2024-12-05T02:40:42.5Z"), 1_733_366_442_500_000_000)
        XCTAssertNil(Timestamp.parseISO8601("0001-01-01T00:00:00Z"), "Docker's never started")
        for bad in ["", "2024-12-05 02:40:42Z", "2024-12-05T02:40:42+01:00", "2024-13-05T02:40:42Z", "2024-12-05T02:40:42.Z",
                    "2024-12-05T02:40:42.1234567890Z"] {
            XCTAssertNil(Timestamp.parseISO8601(bad), bad)
        }
        var e = openEvent(name: "x", base: "/etc", result: 3)
        XCTAssertNil(Fields.named("container.start_ts")?.extract(e, nil), "the host")
        e.container = ContainerContext(fullID: String(repeating: "ab", count: 32), runtime: "docker", name: "web", image: "nginx:1",
                                       labels: [:], podUID: "")
        XCTAssertNil(Fields.named("container.start_ts")?.extract(e, nil), "the runtime did not say")
        e.container.details = ContainerDetails(startTimeNs: 1_733_366_442_123_456_789)
        XCTAssertEqual(Fields.named("container.start_ts")?.extract(e, nil), .uint(1_733_366_442_123_456_789))
    }
}
