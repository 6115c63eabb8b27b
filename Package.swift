// swift-tools-version: 6.1
import PackageDescription

/// Vigil: an eBPF runtime-security and tracing daemon. See docs/ARCHITECTURE.md.
let package = Package(
    name: "vigil",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "VigilBPF", targets: ["VigilBPF"]),
        .executable(name: "vigil", targets: ["vigil"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // The one kernel<->userspace ABI: event kinds and structs, shared with bpf/*.bpf.c.
        .target(name: "CVigilABI"),
        // libbpf (system library, Debian's libbpf-dev) plus tiny C shims Swift cannot express.
        .target(
            name: "CLibbpf",
            // C23 with GNU extensions (shim.c's syscall()) for #embed: sanitizer_defaults.c embeds
            // sanitize/tsan.supp.
            cSettings: [.unsafeFlags(["-std=gnu23"])],
            linkerSettings: [.linkedLibrary("bpf")]
        ),
        // The system's OpenSSL (Debian's libssl-dev headers; libssl3 at run time, opened with dlopen
        // by the first TLS action) behind a small C shim: TLS for the network actions on their
        // blocking sockets. No BoringSSL build.
        .target(name: "CVigilTLS"),
        // Committed, generated BPF objects embedded with C23 #embed (make generate).
        .target(
            name: "VigilBPFObjects",
            exclude: ["objects"],
            cSettings: [.unsafeFlags(["-std=c23"])]
        ),
        // VigilBPF's own feature-probe objects (bpf/library), embedded the same way.
        .target(
            name: "CVigilBPFProbes",
            exclude: ["objects"],
            cSettings: [.unsafeFlags(["-std=c23"])]
        ),
        // The Swift eBPF library: objects, programs, links, maps, ring reader, probes, variants.
        .target(
            name: "VigilBPF",
            dependencies: [
                "CLibbpf", "CVigilBPFProbes",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Event value types, decoding of the ABI structs, the field catalogue, JSON and table forms.
        // Pure: no libbpf.
        .target(name: "VigilEvents", dependencies: ["CVigilABI"]),
        // The rules engine: bpfd TOML and Falco-style YAML, the condition language, compiled plans.
        // Pure: no libbpf.
        .target(name: "VigilRules", dependencies: ["VigilEvents", "VigilDefaultRules", .product(name: "Yams", package: "Yams")]),
        // rules/default.yaml embedded with C23 #embed.
        .target(name: "VigilDefaultRules", cSettings: [.unsafeFlags(["-std=c23"])]),
        // Process table (seeded from /proc) and container enrichment of events.
        .target(name: "VigilEnrichment", dependencies: ["VigilEvents", "VigilContainers"]),
        // File integrity monitoring (issue 14): hashes, semantic diffs of account and access files,
        // the baseline. Pure: no libbpf (the kernel side is VigilSensors' FIMSensor).
        .target(name: "VigilFIM"),
        // Vigil's sensors: embedded objects, variant chains, decoders.
        .target(
            name: "VigilSensors",
            dependencies: ["VigilBPF", "VigilBPFObjects", "CVigilABI", "VigilEvents", "VigilEnrichment", "VigilRules", "VigilSeccomp",
                           .product(name: "Yams", package: "Yams")]
        ),
        // Least-privilege seccomp profiles: OCI/Docker JSON from a recording, merge, diff, the
        // per-image store. Pure: no libbpf (the recorder is VigilSensors' SeccompRecorder).
        .target(name: "VigilSeccomp", dependencies: ["VigilEvents", "VigilActions"]),
        // Runs inside other kernels under qemu (make test-kernels): checks variants and probes.
        .executableTarget(
            name: "vigil-kernel-check",
            dependencies: ["VigilBPF", "VigilSensors", "VigilSeccomp", "VigilEvents", "VigilEnrichment", "VigilRules", "CVigilABI"]
        ),
        // make bench: ring delivery and hook cost, side by side with a run without BPF.
        .executableTarget(
            name: "vigil-bench",
            dependencies: ["VigilBPF", "VigilSensors", "VigilEvents", "VigilEnrichment", "CVigilABI"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"])]
        ),
        // make bench: rules evaluation per event and compilation time.
        .executableTarget(
            name: "vigil-rules-bench",
            dependencies: ["VigilRules", "VigilEvents", "VigilSensors", "VigilEnrichment", "VigilBPF"]
        ),
        // make fuzz: libFuzzer targets (VIGIL_FUZZ_TARGET picks one) over the parsers that read untrusted
        // input. Built with -sanitize=fuzzer,address -DFUZZING by scripts/fuzz.sh; FUZZING.md.
        .executableTarget(
            name: "vigil-fuzz",
            dependencies: [
                "VigilRules", "VigilEvents", "VigilContainers", "VigilDaemon",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // cgroup -> container id/runtime/pod, and runtime APIs (Docker Engine) for names and images.
        // Pure parsing plus a socket client: no libbpf.
        .target(name: "VigilContainers", dependencies: ["VigilEvents"]),
        // Alerts and what acts on them: sinks (stdout, file, syslog, webhook, Slack, email, exec)
        // and enforcement (kill, Docker pause/stop/kill), behind bounded queues with dedup.
        .target(
            name: "VigilActions",
            dependencies: ["VigilEvents", "VigilRules", "VigilContainers", "CVigilTLS", .product(name: "Logging", package: "swift-log")]
        ),
        // The daemon: services (swift-service-lifecycle), the engine (sensors -> rules -> alert
        // consumers), the rules directory, the control API over a unix socket and /metrics (NIO).
        .target(
            name: "VigilDaemon",
            dependencies: [
                "VigilBPF", "VigilSensors", "VigilEvents", "VigilEnrichment", "VigilContainers", "VigilRules",
                "VigilDefaultRules", "VigilActions", "VigilFIM", "VigilSeccomp", "CVigilABI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "vigil",
            dependencies: [
                "VigilBPF", "VigilSensors", "VigilEvents", "VigilEnrichment", "VigilContainers", "VigilRules", "VigilActions",
                "VigilDaemon", "VigilSeccomp",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Helpers shared by the test targets: kernel gates, fd counts, the Docker test engine.
        .target(name: "VigilTestSupport", dependencies: ["VigilBPF", "VigilSensors", "VigilEnrichment", "VigilEvents", "VigilContainers"]),
        .testTarget(
            name: "VigilBPFTests",
            dependencies: [
                "VigilBPF", "VigilSensors", "CVigilABI", "CLibbpf", "VigilTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "VigilSensorsTests",
            dependencies: ["VigilSensors", "VigilEvents", "VigilEnrichment", "VigilContainers", "VigilBPF", "VigilTestSupport", "VigilRules"]
        ),
        .testTarget(name: "VigilCLITests", dependencies: ["vigil", "VigilBPF", "VigilTestSupport"]),
        // The daemon as a child process, driven by the CLI, curl and the OpenAPI document.
        .testTarget(
            name: "VigilDaemonTests",
            dependencies: ["vigil", "VigilDaemon", "VigilActions", "VigilFIM", "VigilRules", "VigilTestSupport", .product(name: "Yams", package: "Yams"), .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "VigilRulesTests", dependencies: ["VigilRules", "VigilEvents", "CVigilABI"]),
        // Profiles from recordings (pure), and recording, applying and verifying real containers.
        .testTarget(name: "VigilSeccompTests", dependencies: ["VigilSeccomp", "VigilSensors", "VigilBPF", "VigilEvents", "VigilTestSupport", "vigil"]),
        // Semantic diffs and hashes against files written by the real tools (useradd --prefix, ...).
        .testTarget(name: "VigilFIMTests", dependencies: ["VigilFIM", "VigilTestSupport"]),
        // The default rules against real events: each detection triggered for real, and a benign look-alike.
        .testTarget(name: "VigilDetectionTests", dependencies: ["VigilRules", "VigilEvents", "VigilSensors", "VigilTestSupport", "CVigilABI"]),
        .testTarget(name: "VigilEventsTests", dependencies: ["VigilEvents", "CVigilABI"]),
        // The enricher's per-process contexts against exec, fork, exit and re-parenting (no kernel needed).
        .testTarget(name: "VigilEnrichmentTests", dependencies: ["VigilEnrichment", "VigilEvents", "VigilContainers", "VigilTestSupport"]),
        .testTarget(name: "VigilContainersTests", dependencies: ["VigilContainers", "VigilTestSupport"]),
        // Every action against a real receiver: HTTP and SMTP servers, a syslog socket, Docker.
        .testTarget(
            name: "VigilActionsTests",
            dependencies: [
                "VigilActions", "VigilEvents", "VigilRules", "VigilContainers", "VigilSensors", "VigilTestSupport",
                .product(name: "Logging", package: "swift-log"), .product(name: "Yams", package: "Yams"),
            ]
        ),
    ]
)
