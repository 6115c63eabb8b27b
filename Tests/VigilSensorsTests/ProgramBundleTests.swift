import Foundation
import VigilBPF
import VigilEnrichment
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// User-supplied program bundles (docs/bundles.md, issue 17 §3): the example bundle
/// examples/bundles/signals loaded into this kernel, triggered by a real `kill -9`, its record's
/// members as fields in a rule's condition, its output and JSON; a bundle the verifier refuses.
final class ProgramBundleTests: XCTestCase {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/bundles").path

    /// The struct's members come from the object's BTF, typed: integers with their signedness,
    /// char arrays as strings; no privileges needed.
    func testTheEventFieldsComeFromTheObjectsBTF() throws {
        let source = try BundleSource(path: Self.examples + "/signals")
        XCTAssertEqual(source.manifest.name, "signals")
        XCTAssertEqual(source.schema.fields.map(\.name), ["pid", "target_pid", "sig", "result", "code", "group", "comm", "target_comm", "cgroup_id"])
        XCTAssertEqual(source.schema.fields.map(\.type), [.uint, .uint, .int, .int, .int, .uint, .string, .string, .uint])
        XCTAssertEqual(source.schema.fields.first { $0.name == "target_comm" }?.offset, 40)
        XCTAssertEqual(source.schema.size, 64)
        XCTAssertEqual(source.schema.pidField, 0)
    }

    /// A manifest naming a struct member of a type bundles do not decode is refused naming it.
    func testAnUnsupportedMemberIsRefusedByName() throws {
        let object = try Array(Data(contentsOf: URL(fileURLWithPath: Self.examples + "/signals/signals.bpf.o")))
        var manifest = try BundleManifest.parse(String(contentsOfFile: Self.examples + "/signals/bundle.yaml", encoding: .utf8))
        manifest.event = "trace_event_raw_signal_generate"  // its first member is a nested struct (ent)
        XCTAssertThrowsError(try BundleSource(manifest: manifest, object: object)) { error in
            XCTAssertTrue("\(error)".contains("member 'ent'"), "\(error)")
            XCTAssertTrue("\(error)".contains("nested struct"), "\(error)")
        }
        XCTAssertThrowsError(try BundleManifest.parse("name: Bad Name\nobject: x\nring: r\nevent: e\nhooks: []\n")) { error in
            XCTAssertTrue("\(error)".contains("name 'Bad Name'"), "\(error)")
        }
    }

    /// Loaded into this kernel, the bundle reports the variant it runs on; a real `kill -9` of a
    /// `sleep` makes an event whose members match a rule, fill its output, and its JSON
    /// (`prog.signals.*`, evt.type signals, the sender's proc.name from the enricher).
    func testTheSignalsBundleSeesARealKillAndARuleAlertsOnIt() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let bundle = try ProgramBundle(try BundleSource(path: Self.examples + "/signals"))
        defer { bundle.unload() }
        XCTAssertEqual(bundle.reports.map(\.active), ["tracepoint"], "\(bundle.reports)")
        let rules = try RuleSet(files: [("b.yaml", RuleFiles.items(text: """
            - rule: SIGKILL to sleep
              desc: a bundle's fields in a condition
              condition: evt.type = signals and prog.signals.sig = 9 and prog.signals.target_comm = "sleep"
              output: "%proc.name killed %prog.signals.target_comm (%prog.signals.target_pid) with %prog.signals.sig"
              priority: WARNING
            """, file: "b.yaml"))])
        let enricher = Enricher(metadata: nil)
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["60"]
        try sleeper.run()
        let target = UInt32(sleeper.processIdentifier)
        let killer = Process()
        killer.executableURL = URL(fileURLWithPath: "/bin/kill")
        killer.arguments = ["-9", String(target)]
        try killer.run()
        killer.waitUntilExit()
        sleeper.waitUntilExit()
        var events: [Event] = []
        for _ in 0..<100 where !events.contains(where: { Self.targets($0, target) }) {
            try bundle.poll(timeoutMilliseconds: 50, enricher: enricher) { events.append($0) }
        }
        let kill = try XCTUnwrap(events.first { Self.targets($0, target) }, "no event for the kill of \(target) in \(events.count) events")
        XCTAssertEqual(kill.kind, .program)
        XCTAssertEqual(Fields.named("evt.type")?.extract(kill, nil), .string("signals"))
        XCTAssertEqual(Fields.named("prog.signals.pid")?.extract(kill, nil), .uint(UInt64(killer.processIdentifier)))
        XCTAssertEqual(kill.pid, UInt32(killer.processIdentifier), "the pid_field is the event's pid")
        let matched = rules.matches(kill)
        XCTAssertEqual(matched.map(\.rule.name), ["SIGKILL to sleep"])
        XCTAssertEqual(matched.first?.output.render(kill), "kill killed sleep (\(target)) with 9")
        let json = EventFormat.json(kill)
        for part in ["\"evt.type\":\"signals\"", "\"evt.kind\":\"program\"", "\"prog.signals.sig\":9", "\"prog.signals.target_comm\":\"sleep\"",
                     "\"prog.signals.target_pid\":\(target)", "\"prog.signals.comm\":\"kill\"", "\"proc.name\":\"kill\"",
                     "\"container.id\":\"host\"", "\"proc.is_container\":false"] {
            XCTAssertTrue(json.contains(part), "\(part) in \(json)")
        }
        let back = try EventJSON.event(json)
        XCTAssertEqual(Fields.named("prog.signals.target_comm")?.extract(back, nil), .string("sleep"), "JSON reads back while the bundle is loaded")
        XCTAssertGreaterThanOrEqual(bundle.counters.events, 1)
        XCTAssertTrue(Self.openProgramIDs().count > 0)
        let held = Self.openProgramIDs()
        bundle.unload()
        XCTAssertNil(Fields.named("prog.signals.sig"), "unloaded, its fields are gone")
        XCTAssertEqual(held.subtracting(Self.openProgramIDs()).count, 1, "its one program is closed")
    }

    /// The broken example reads past a map value: the kernel refuses it with the verifier's
    /// message, and a bundle already loaded keeps running.
    func testABundleTheVerifierRefusesCarriesTheVerifiersMessage() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let running = try ProgramBundle(try BundleSource(path: Self.examples + "/signals"))
        defer { running.unload() }
        XCTAssertThrowsError(try ProgramBundle(try BundleSource(path: Self.examples + "/broken/bundle.yaml"))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("invalid access to map value"), "the verifier's own log, not only its last line: \(text)")
            XCTAssertTrue(text.contains("broken_tp"), text)
        }
        XCTAssertNotNil(Fields.named("prog.signals.sig"), "the loaded bundle's fields stay")
        XCTAssertNil(Fields.named("prog.broken.value"))
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["60"]
        try child.run()
        let target = UInt32(child.processIdentifier)
        kill(Int32(target), SIGTERM)
        child.waitUntilExit()
        var seen = false
        for _ in 0..<100 where !seen {
            try running.poll(timeoutMilliseconds: 50, enricher: nil) { seen = seen || Self.targets($0, target) }
        }
        XCTAssertTrue(seen, "the loaded bundle still reports signals")
    }

    /// The ids of the BPF programs this process holds (its fds' fdinfo; a link's names its program too).
    static func openProgramIDs() -> Set<Int> {
        let directory = "/proc/self/fdinfo"
        return Set(((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap { fd in
            ((try? String(contentsOfFile: directory + "/" + fd, encoding: .utf8)) ?? "").split(separator: "\n")
                .first { $0.hasPrefix("prog_id:") }.flatMap { Int($0.dropFirst(8).trimmingCharacters(in: .whitespaces)) }
        })
    }

    static func targets(_ event: Event, _ pid: UInt32) -> Bool {
        guard case .program(let r) = event.payload else { return false }
        return r.value("target_pid") == .uint(UInt64(pid))
    }
}
