import Foundation
import VigilBPF
import VigilEvents
@testable import VigilSensors
import VigilTestSupport
import XCTest

/// Walks the sensor registry (`Sensor.builtIn`) against the embedded objects and this kernel:
/// every sensor's object and programs exist, every kind has the one sensor that emits it, and each
/// sensor of the shared ring loads and attaches here for its kinds.
final class SensorRegistryTests: XCTestCase {
    /// Embedded objects that are not sensors: the feature probes' test programs (`Selftest`).
    static let notSensors: Set<String> = ["selftest"]

    /// Every hook a sensor may attach: its own, and those its driver adds (the syscalls sensor's
    /// per-syscall variant, `vigil seccomp verify`'s exit hook).
    static func everyHook(of sensor: Sensor) -> [Hook] {
        switch sensor.name {
        case Sensor.syscalls.name: Sensors.syscallHooks(for: SyscallCapture(names: ["getppid"]))
        case Sensor.seccomp.name: sensor.hooks + SeccompRecorder.verifyHooks
        default: sensor.hooks
        }
    }

    /// A hook as text: its name, then each variant's name, required features and programs.
    static func shape(_ hooks: [Hook]) -> [String] {
        hooks.map { hook in
            hook.name + ": " + hook.variants.map { "\($0.name) \($0.requires.map(\.rawValue)) \($0.programs)" }.joined(separator: " | ")
        }
    }

    /// The hooks that run on a BTF tracepoint, else the raw tracepoint (`Hook.btfOrRaw`): each is
    /// the variant tp_btf (program `NAME_tp_btf`, needing attach:tp_btf), then raw_tp (`NAME_raw_tp`,
    /// needing attach:raw_tp), as they were when each was written out by hand.
    func testTheBTFOrRawHooksAreTpBTFThenRawTp() {
        func twin(_ hook: String, _ programs: [String]) -> String {
            "\(hook): tp_btf [\"attach:tp_btf\"] \(programs.map { $0 + "_tp_btf" }) | raw_tp [\"attach:raw_tp\"] \(programs.map { $0 + "_raw_tp" })"
        }
        XCTAssertEqual(Self.shape(Sensor.process.hooks), ["exec", "fork", "exit"].map { twin($0, [$0]) })
        let conn = Self.shape(Sensor.conn.hooks)
        XCTAssertEqual(conn.first, twin("state", ["state"]))
        XCTAssertEqual(conn.last, twin("retransmit", ["retransmit"]))
        XCTAssertEqual(Self.shape(Sensor.syscalls.hooks), [twin("syscalls", ["sys_exit", "task_exit", "sys_enter"])])
        // seccomp's enter: fentry on the syscall dispatch first (x86_64), then the twin on sys_enter.
        #if arch(x86_64)
        let fentry = "fentry [\"attach:fentry\"] [\"seccomp_enter_x64\", \"seccomp_enter_ia32\", \"seccomp_enter_x32\"] | "
        #else
        let fentry = ""
        #endif
        let enter = twin("enter", ["seccomp_enter"])
        XCTAssertEqual(Self.shape(Sensor.seccomp.hooks), ["enter: " + fentry + enter.dropFirst("enter: ".count), twin("exec", ["seccomp_exec"]),
                                                          twin("attach", ["seccomp_attach"])])
        XCTAssertEqual(Self.shape(SeccompRecorder.hooks(verify: true)), [enter, twin("exec", ["seccomp_exec"]), twin("attach", ["seccomp_attach"]),
                                                                         twin("exit", ["seccomp_exit"])], "verify's enter stays on sys_enter")
        #if arch(x86_64)
        XCTAssertEqual(SeccompRecorder.enterHook(dispatching: ["x64_sys_call"]).variants[0].programs, ["seccomp_enter_x64"])
        XCTAssertEqual(SeccompRecorder.enterHook(dispatching: []).variants[0].programs, ["seccomp_enter_x64"],
                       "x64_sys_call is always tried: a kernel without it refuses the variant with the reason")
        #endif
        // --enter-hook: sys_enter keeps the twin alone, fentry the fentry variant alone; verify stays on sys_enter.
        XCTAssertEqual(Self.shape(SeccompRecorder.hooks(verify: false, forcing: .sysEnter)), [enter, twin("exec", ["seccomp_exec"]), twin("attach", ["seccomp_attach"])])
        #if arch(x86_64)
        XCTAssertEqual(SeccompRecorder.hooks(verify: false, forcing: .fentry).map { $0.variants.map(\.name) }, [["fentry"], ["tp_btf", "raw_tp"], ["tp_btf", "raw_tp"]])
        #endif
        XCTAssertEqual(Self.shape(SeccompRecorder.hooks(verify: true, forcing: .sysEnter)), Self.shape(SeccompRecorder.hooks(verify: true)))
        XCTAssertEqual(Self.shape(SeccompRecorder.verifyHooks), [twin("exit", ["seccomp_exit"])])
        XCTAssertEqual(Hook.btfOrRaw("h", program: "p").variants.map(\.programs), [["p_tp_btf"], ["p_raw_tp"]])
    }

    func testEverySensorsObjectOpensWithEveryProgramItsHooksName() throws {
        let names = Sensor.builtIn.map(\.name)
        XCTAssertEqual(Set(names).count, names.count, "one entry per name: \(names)")
        XCTAssertEqual(Set(EmbeddedObjects.names).subtracting(Self.notSensors), Set(names),
                       "every embedded object but \(Self.notSensors) is a sensor of the registry")
        for sensor in Sensor.builtIn {
            let object = try EmbeddedObjects.open(sensor.name)
            let programs = Set(object.programs.map(\.name))
            let hooks = Self.everyHook(of: sensor)
            XCTAssertFalse(hooks.isEmpty, sensor.name)
            for hook in hooks {
                XCTAssertFalse(hook.variants.isEmpty, "\(sensor.name)/\(hook.name) has a variant")
                for variant in hook.variants {
                    XCTAssertFalse(variant.programs.isEmpty, "\(sensor.name)/\(hook.name)/\(variant.name)")
                    for program in variant.programs {
                        XCTAssertTrue(programs.contains(program), "\(sensor.name)/\(hook.name)/\(variant.name): no program \(program) in the object")
                    }
                }
            }
            if sensor.ring == .shared {
                for map in Sensors.sharedMapNames {
                    XCTAssertNoThrow(try object.map(named: map), "\(sensor.name) shares map \(map)")
                }
            }
            for map in sensor.watchedMaps {
                XCTAssertNoThrow(try object.map(named: map), "\(sensor.name) watches map \(map)")
            }
        }
    }

    /// What is wrong with how `registry` covers the kinds: a kind of the ring (`hasRecord`) must
    /// be emitted by exactly one sensor of the shared ring, the one its row of kinds.table names;
    /// a kind made in userspace (fim) by the sensor its row names, on a ring of its own, and by
    /// no sensor of the shared ring.
    static func kindProblems(_ registry: [Sensor]) -> [String] {
        var problems: [String] = []
        for descriptor in EventKindDescriptor.all {
            let kind = descriptor.kind
            let shared = registry.filter { $0.ring == .shared && $0.kinds.contains(kind) }.map(\.name)
            if kind == .program {
                // A user-supplied bundle's records (ProgramBundle): no sensor of the registry.
                if !shared.isEmpty { problems.append("\(kind) comes from program bundles, but the ring sensors \(shared) claim it") }
            } else if descriptor.hasRecord {
                if shared != [descriptor.sensor] { problems.append("\(kind): emitted by \(shared), kinds.table says \(descriptor.sensor)") }
            } else {
                if !shared.isEmpty { problems.append("\(kind) is made in userspace, but the ring sensors \(shared) claim it") }
                let own = registry.first { $0.name == descriptor.sensor }
                if own?.ring != .own || own?.kinds.contains(kind) != true {
                    problems.append("\(kind) is made in userspace from \(descriptor.sensor)'s records: that sensor, on a ring of its own, lists it")
                }
            }
        }
        for sensor in registry {
            for kind in sensor.kinds where kind.descriptor.sensor != sensor.name {
                problems.append("\(sensor.name) claims \(kind), kinds.table says \(kind.descriptor.sensor)")
            }
        }
        return problems
    }

    func testEveryKindHasTheOneSensorThatEmitsIt() {
        XCTAssertEqual(Self.kindProblems(Sensor.builtIn), [])
        let userspace = EventKindDescriptor.all.filter { !$0.hasRecord }.map(\.kind)
        XCTAssertEqual(userspace, [.fim, .program], "the kinds made in userspace (program: from a bundle's own records)")
    }

    func testTheKindCheckCatchesAWrongEntry() {
        // conn claiming opens too: two ring sensors for one kind.
        let twice = Sensor(name: "conn", hooks: Sensor.conn.hooks, kinds: [.conn, .tcpdrop, .open], ring: .shared, needed: nil)
        XCTAssertEqual(Self.kindProblems(Sensor.builtIn.map { $0.name == "conn" ? twice : $0 }),
                       ["open: emitted by [\"file\", \"conn\"], kinds.table says file", "conn claims open, kinds.table says file"])
        // No sensor for tcpdrop.
        let none = Sensor(name: "conn", hooks: Sensor.conn.hooks, kinds: [.conn], ring: .shared, needed: nil)
        XCTAssertEqual(Self.kindProblems(Sensor.builtIn.map { $0.name == "conn" ? none : $0 }),
                       ["tcpdrop: emitted by [], kinds.table says conn"])
        // fim on the shared ring.
        let fim = Sensor(name: "fim", hooks: Sensor.fim.hooks, kinds: [.fim], ring: .shared, needed: nil)
        XCTAssertEqual(Self.kindProblems(Sensor.builtIn.map { $0.name == "fim" ? fim : $0 }),
                       ["fim is made in userspace, but the ring sensors [\"fim\"] claim it",
                        "fim is made in userspace from fim's records: that sensor, on a ring of its own, lists it"])
    }

    /// The filter under which `sensor` is needed by its kinds alone, or, for the syscalls sensor,
    /// by one syscall of the filter.
    static func filter(for sensor: Sensor) -> KernelFilter {
        var filter = KernelFilter()
        if sensor.name == Sensor.syscalls.name { filter.syscalls = SyscallCapture(names: ["getppid"]) }
        return filter
    }

    func testEachRingSensorLoadsAndAttachesHereForItsKinds() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let ringSensors = Sensor.builtIn.filter { $0.ring == .shared }
        XCTAssertEqual(ringSensors.map(\.name), ["process", "file", "conn", "syscalls", "shell"])
        for sensor in ringSensors {
            let sensors = try Sensors(kinds: sensor.kinds, filter: Self.filter(for: sensor), ringBytes: 1 << 20)
            defer { sensors.detach() }
            // The process sensor always (the process table), and the one asked for.
            XCTAssertEqual(sensors.loaded.map(\.name), sensor.name == "process" ? ["process"] : ["process", sensor.name], sensor.name)
            let loaded = try XCTUnwrap(sensors.loaded.first { $0.name == sensor.name })
            XCTAssertEqual(loaded.variants.reports.map(\.hook), Self.everyHook(of: sensor).map(\.name), sensor.name)
            XCTAssertFalse(loaded.variants.links.isEmpty, "\(sensor.name) attached")
            XCTAssertEqual(try sensors.counters().keys.sorted(), sensors.loaded.map(\.name).sorted(), "counters per sensor")
        }
    }

    func testApplyLoadsAndReleasesTheDynamicSensorsInOneLoop() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let sensors = try Sensors(kinds: Sensor.process.kinds, filter: KernelFilter(), ringBytes: 1 << 20)
        defer { sensors.detach() }
        XCTAssertEqual(sensors.loaded.map(\.name), ["process"])
        var filter = KernelFilter()
        filter.connections = true
        filter.syscalls = SyscallCapture(names: ["getppid"])
        filter.shells = true
        try sensors.apply(filter)
        XCTAssertEqual(sensors.loaded.map(\.name), ["process", "shell", "syscalls", "conn"], "apply walks the registry from its end")
        XCTAssertFalse(sensors.shellBinaries.isEmpty, "the shell sensor's probes on the host's bash")
        XCTAssertEqual(sensors.syscallCapture, filter.syscalls)
        XCTAssertEqual(sensors.checkIntegrity(), [], "the baseline follows the links apply made")
        try sensors.apply(KernelFilter())
        XCTAssertEqual(sensors.loaded.map(\.name), ["process"], "released when the filter no longer asks for them")
        XCTAssertNil(sensors.syscallCapture)
        XCTAssertEqual(sensors.checkIntegrity(), [])
    }

    func testASensorTheKindsAskForStaysLoaded() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let sensors = try Sensors(kinds: Sensor.conn.kinds, filter: KernelFilter(), ringBytes: 1 << 20)
        defer { sensors.detach() }
        XCTAssertEqual(sensors.loaded.map(\.name), ["process", "conn"])
        try sensors.apply(KernelFilter())
        XCTAssertEqual(sensors.loaded.map(\.name), ["process", "conn"], "the consumer wants its kinds")
    }
}
