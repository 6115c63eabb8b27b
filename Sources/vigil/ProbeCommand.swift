import ArgumentParser
import Foundation
import VigilBPF

/// `vigil probe`: what this kernel supports for eBPF, and why the rest does not work.
struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Probe the running kernel's eBPF features (program types, attach kinds, maps, helpers).",
        discussion: """
        Every answer comes from a real attempt: a map is created, a program loaded, a hook \
        attached and detached. States: available, unsupported (with the reason), inconclusive \
        (the probe could not tell, e.g. without root). tracefs is mounted when absent and root.
        """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print JSON (an array of {feature, category, state, reason}).")
    var json = false

    func run() throws {
        global.bootstrapLogging()
        let results = FeatureProbes.shared.all()
        if json {
            struct Row: Codable { var feature, category, state: String; var reason: String? }
            let rows = results.map { Row(feature: $0.feature.rawValue, category: $0.feature.category,
                                         state: $0.result.state.rawValue, reason: $0.result.reason) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            return
        }
        let width = results.map(\.feature.rawValue.count).max() ?? 10
        print("FEATURE".padding(toLength: width + 2, withPad: " ", startingAt: 0) + "STATE         REASON")
        for (feature, result) in results {
            print(feature.rawValue.padding(toLength: width + 2, withPad: " ", startingAt: 0)
                  + result.state.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)
                  + (result.reason ?? ""))
        }
        let counts = Dictionary(grouping: results, by: \.result.state).mapValues(\.count)
        print("\n\(counts[.available] ?? 0) available, \(counts[.unsupported] ?? 0) unsupported, \(counts[.inconclusive] ?? 0) inconclusive")
    }
}

/// `vigil version`.
struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print Vigil's version.")
    func run() { print("vigil \(Vigil.version)") }
}
