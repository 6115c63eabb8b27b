import Foundation
import VigilEnrichment
import VigilEvents
import XCTest

/// `DNSBaseline` on events made here (the daemon tests, DNSBaselineTests, drive it with real
/// containers): the window on the events' clock, what counts as a lookup, the bounds, and a saved
/// file taken back with its window's time so far (a restart in the middle of a window carries on).
final class DNSBaselineUnitTests: XCTestCase {
    private static let second: UInt64 = 1_000_000_000

    /// A query for `name` (wire form) at boot time `at`, by a process of `image` (the host with
    /// nil), on a socket from `localPort` to `remotePort`.
    private func lookup(_ name: String, at: UInt64, image: String? = "app:1", localPort: UInt16 = 40000,
                        remotePort: UInt16 = 53) throws -> Event {
        let labels: [UInt8] = name.split(separator: ".").flatMap { label -> [UInt8] in [UInt8(label.utf8.count)] + Array(label.utf8) }
        let header: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        let bytes: [UInt8] = header + labels + [0, 0, 1, 0, 1]
        var event = Event(bootTimeNs: at, timeNs: at, cgroupID: 1, pid: 10, tid: 10, ppid: 1, uid: 0, gid: 0, cpu: 0,
                          mountNamespace: 1, pidNamespace: 1, comm: "resolver", payload: .exit(.init(status: 0, startTimeNs: 0, durationNs: 1)))
        if let image { event.container = ContainerContext(fullID: String(repeating: "a", count: 64), runtime: "docker", name: "c", image: image, labels: [:], podUID: "") }
        let local = try XCTUnwrap(IPAddress("10.0.0.2")), remote = try XCTUnwrap(IPAddress("10.0.0.1"))
        event.setFD(FDInfo(number: 3, type: .ipv4, socket: SocketInfo(l4proto: .udp, local: SocketAddress(ip: local, port: localPort),
                                                                      remote: SocketAddress(ip: remote, port: remotePort))))
        event.dns = try XCTUnwrap(DNSMessage(bytes: bytes))
        return event
    }

    private func judge(_ baseline: DNSBaseline, _ event: Event) -> Bool? {
        var event = event
        baseline.apply(&event)
        return event.dns?.isNewName
    }

    private func settings(window: UInt64, names: Int = 100, images: Int = 10) -> DNSBaseline.Settings {
        var settings = DNSBaseline.Settings()
        settings.learningNs = window * Self.second
        settings.maxNames = names
        settings.maxImages = images
        return settings
    }

    func testTheWindowStartsAtTheImagesFirstLookupAndANewNameIsNewOnce() throws {
        let baseline = DNSBaseline(settings: settings(window: 10))
        let t = 1000 * Self.second
        XCTAssertEqual(judge(baseline, try lookup("a.example.org", at: t)), false)
        XCTAssertEqual(judge(baseline, try lookup("b.example.org", at: t + 9 * Self.second)), false, "still in the window")
        XCTAssertEqual(baseline.status(at: t + 9 * Self.second, active: true).imagesLearning, 1)
        XCTAssertEqual(baseline.status(at: t + 10 * Self.second, active: true).imagesLearning, 0)
        XCTAssertEqual(judge(baseline, try lookup("a.example.org", at: t + 11 * Self.second)), false, "learned in the window")
        XCTAssertEqual(judge(baseline, try lookup("b.example.org", at: t + 11 * Self.second)), false)
        XCTAssertEqual(judge(baseline, try lookup("c.example.org", at: t + 12 * Self.second)), true)
        XCTAssertEqual(judge(baseline, try lookup("c.example.org", at: t + 13 * Self.second)), false, "new once")
        // Another image has a window of its own, from its own first lookup.
        XCTAssertEqual(judge(baseline, try lookup("c.example.org", at: t + 20 * Self.second, image: "other:2")), false)
        let status = baseline.status(at: t + 20 * Self.second, active: true)
        XCTAssertEqual(status.images, 2)
        XCTAssertEqual(status.imagesLearning, 1)
        XCTAssertEqual(status.names, 4)
        XCTAssertEqual(status.lookups, 7)
        XCTAssertEqual(status.newNames, 1)
    }

    func testOnlyAContainersLookupsAreJudged() throws {
        let baseline = DNSBaseline(settings: settings(window: 0))
        XCTAssertNil(judge(baseline, try lookup("h.example.org", at: 1, image: nil)), "a host process")
        XCTAssertNil(judge(baseline, try lookup("s.example.org", at: 1, localPort: 53, remotePort: 40000)), "a DNS server's traffic")
        XCTAssertNil(judge(baseline, try lookup("n.example.org", at: 1, image: "")), "no image name")
        XCTAssertEqual(judge(baseline, try lookup("n.example.org", at: 1)), true, "no window: every name is new")
        let status = baseline.status(at: 1, active: true)
        XCTAssertEqual(status.lookupsWithoutImage, 1)
        XCTAssertEqual(status.lookups, 1)
    }

    func testWhatDoesNotFitIsCounted() throws {
        let baseline = DNSBaseline(settings: settings(window: 1, names: 1, images: 1))
        XCTAssertEqual(judge(baseline, try lookup("a.example.org", at: 1)), false)
        XCTAssertEqual(judge(baseline, try lookup("b.example.org", at: 2)), false, "in the window, not kept")
        XCTAssertNil(judge(baseline, try lookup("a.example.org", at: 3, image: "other:1")), "over the image bound")
        let later = 5 * Self.second
        XCTAssertEqual(judge(baseline, try lookup("b.example.org", at: later)), true, "not in the baseline")
        XCTAssertEqual(judge(baseline, try lookup("b.example.org", at: later + 1)), true, "still not in it: new again")
        let status = baseline.status(at: later, active: true)
        XCTAssertEqual(status.names, 1)
        XCTAssertEqual(status.namesNotKept, 3)
        XCTAssertEqual(status.lookupsOverImageBound, 1)
    }

    /// Saved 4 s into a 10 s window, taken back at another boot time: 6 s of window are left.
    func testASavedWindowCarriesOnFromWhereItStopped() throws {
        let first = DNSBaseline(settings: settings(window: 10))
        XCTAssertEqual(judge(first, try lookup("a.example.org", at: 100 * Self.second)), false)
        XCTAssertTrue(first.hasChanges)
        let files = first.takeChanged(at: 104 * Self.second)
        XCTAssertFalse(first.hasChanges)
        XCTAssertEqual(files.count, 1)
        let file = try XCTUnwrap(files.first)
        XCTAssertTrue(file.file.hasPrefix("app%3A1-") && file.file.hasSuffix(".json"), file.file)
        XCTAssertEqual(first.takeChanged(at: 105 * Self.second).count, 0, "nothing changed since")
        XCTAssertEqual(first.takeChanged(at: 105 * Self.second, learning: true).count, 1, "a learning image's window time")

        let second = DNSBaseline(settings: settings(window: 10))
        XCTAssertTrue(try second.load(file.data, at: 500 * Self.second))
        XCTAssertEqual(second.status(at: 505 * Self.second, active: true).imagesLearning, 1, "4 + 5 s of 10")
        XCTAssertEqual(judge(second, try lookup("b.example.org", at: 505 * Self.second)), false)
        XCTAssertEqual(judge(second, try lookup("c.example.org", at: 507 * Self.second)), true, "4 + 7 s: the window ended")
        XCTAssertEqual(judge(second, try lookup("a.example.org", at: 508 * Self.second)), false, "the saved name")

        // A window that ended stays ended, whatever the next run's window.
        let ended = try XCTUnwrap(second.takeChanged(at: 508 * Self.second).first)
        let third = DNSBaseline(settings: settings(window: 1000))
        XCTAssertTrue(try third.load(ended.data, at: 0))
        XCTAssertEqual(third.status(at: 0, active: true).imagesLearning, 0)
        XCTAssertThrowsError(try third.load(Data("{".utf8), at: 0))
    }
}
