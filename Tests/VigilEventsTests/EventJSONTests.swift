import VigilEvents
import XCTest

final class EventJSONTests: XCTestCase {
    private func sample(_ payload: Payload) -> Event {
        var e = Event(bootTimeNs: 5, timeNs: 1_795_390_514_463_098_509, cgroupID: 77, pid: 10, tid: 12, ppid: 1, uid: 1000, gid: 100,
                      cpu: 1, mountNamespace: 4026531832, pidNamespace: 4026531836, comm: "cat", payload: payload)
        e.process.executablePath = "/usr/bin/cat"
        e.process.arguments = ["cat", ByteString([0x61, 0xff, 0x0a])]
        e.process.cwd = "/tmp/a b"
        e.process.ttyNumber = 34816
        e.process.loginUID = 1000
        e.process.ancestorNames = ["bash", "sshd"]
        e.process.userName = "alice"
        e.container = ContainerContext(fullID: String(repeating: "ab", count: 32), runtime: "docker", name: "web",
                                       image: "nginx:1", labels: ["app": "web", "tier": "front\"end"], podUID: "")
        return e
    }

    func testEveryKindRoundTripsThroughJSONExactly() throws {
        let events = [
            sample(.exec(.init(filename: "/usr/bin/cat", executablePath: "/usr/bin/cat", arguments: ["cat", ByteString([0x61, 0xff, 0x0a])],
                               argumentsTruncated: true, cwd: "/tmp/a b", tty: "pts0", ttyNumber: 34816, loginUID: 1000, startTimeNs: 0))),
            sample(.fork(.init(childPID: 11, childTID: 11, isThread: false, childStartTimeNs: 0))),
            sample(.exit(.init(status: 9 | (3 << 8), startTimeNs: 0, durationNs: 1234))),
            sample(.open(.init(syscall: "openat2", name: ByteString([0x78, 0xfe]), path: ByteString([0x2f, 0x78, 0xfe]), flags: 0o2000101,
                               mode: 0o600, dirfd: 3, result: -13, truncated: false))),
        ]
        for event in events {
            let line = EventFormat.json(event)
            let back = try EventJSON.event(line)
            XCTAssertEqual(EventFormat.json(back), line, "\(event.kind)")
            XCTAssertEqual(back.kind, event.kind)
        }
    }

    /// proc.duration is written for every kind and read back as the process's age.
    func testProcessDurationRoundTripsOnEveryKind() throws {
        var open = sample(.open(.init(syscall: "openat", name: "/etc/shadow", path: "/etc/shadow", flags: 0, mode: 0, dirfd: -100,
                                      result: 3, truncated: false)))
        open.bootTimeNs = 7_000_000_000
        open.process.startTimeNs = 1_000_000_000
        let line = EventFormat.json(open)
        XCTAssertTrue(line.contains("\"proc.duration\":6000000000"), line)
        let back = try EventJSON.event(line)
        XCTAssertEqual(Fields.named("proc.duration")?.extract(back, nil), .uint(6_000_000_000))
        XCTAssertEqual(EventFormat.json(back), line)
    }

    func testBadLinesAreRefusedWithAPosition() {
        XCTAssertThrowsError(try EventJSON.event("{\"evt.kind\": \"exec\"")) { XCTAssertTrue("\($0)".contains("column")) }
        XCTAssertThrowsError(try EventJSON.event("{\"evt.kind\": \"teleport\"}"))
        XCTAssertThrowsError(try EventJSON.event("[1]"))
    }
}
