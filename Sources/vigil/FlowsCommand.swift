import ArgumentParser
import Dispatch
import Foundation
import VigilContainers
import VigilEnrichment
import VigilEvents
import VigilSensors

/// `vigil flows`: TCP connections per source and destination, live.
struct Flows: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show TCP connections per source (container or host process) and destination, live.",
        discussion: """
        Loads the conn sensor (TCP state tracepoints) and counts connections per pair: outgoing ones \
        by the container (or `host`) and process that connected and the destination address and \
        port, incoming ones from peers off this host by the peer's address. A destination that is \
        a local Docker container's address is named by the container's name. Columns: connections, \
        open now, failed connects, payload bytes sent and received (of closed connections), last \
        seen. Refreshed every second on a terminal; printed once at the end otherwise (--duration, \
        Ctrl-C or SIGTERM).
        """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var tasks: TaskFilterOptions
    @OptionGroup var sources: MetadataSourceOptions
    @Option(name: .long, help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?

    func run() throws {
        let setup = try TracingSetup(global: global, tasks: tasks, sources: sources)
        defer { setup.watcher.stop() }
        let docker = setup.docker
        let sensors = try Sensors(kinds: Sensor.conn.kinds, filter: setup.filter)
        let stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: setup.metadata), kinds: [.conn])
        for (sensor, report) in sensors.reports where sensor == Sensor.conn.name { Log.info("\(sensor)/\(report.hook): \(report.active)") }
        Log.info("tracing TCP connections; Ctrl-C or SIGTERM stops and prints the table")

        var flows = FlowTable()
        func refreshNames() {
            var names: [IPAddress: String] = [:]
            for c in (try? docker.containers()) ?? [] {
                for address in c.addresses { if let ip = IPAddress(address) { names[ip] = c.names.first ?? String(c.id.prefix(12)) } }
            }
            flows.addressNames = names
        }
        refreshNames()
        let live = isatty(STDOUT_FILENO) == 1
        let out = FileHandle.standardOutput
        if live { out.write(Data("\u{1B}[2J\u{1B}[H".utf8)) }
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = duration.map { start + UInt64($0 * 1e9) }
        var nextDraw = start + 1_000_000_000
        var nextNames = start + 2_000_000_000
        try stream.run(shouldStop: {
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= nextNames {
                nextNames = now + 2_000_000_000
                refreshNames()
            }
            if live && now >= nextDraw {
                nextDraw = now + 1_000_000_000
                out.write(Data(("\u{1B}[H\u{1B}[J" + flows.table()).utf8))
            }
            return StopSignal.requested || deadline.map { now >= $0 } ?? false
        }) { flows.add($0) }
        sensors.detach()
        try stream.drain { flows.add($0) }
        refreshNames()
        out.write(Data(((live ? "\u{1B}[H\u{1B}[J" : "") + flows.table()).utf8))
    }
}
