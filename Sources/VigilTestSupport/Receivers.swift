import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// 127.0.0.1 for tests: addresses, a free port, whether something listens.
public enum Loopback {
    /// 127.0.0.1:`port` (0: any free port, for bind).
    public static func address(port: UInt16 = 0) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return address
    }

    /// A TCP port nothing listens on now (bound to 0 and released).
    public static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = address()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw TestSetupFailure(description: "no free port on 127.0.0.1") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    public static func accepts(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = address(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// A receiver the test needed could not be set up (a failure, not a skip: nothing here is optional).
public struct TestSetupFailure: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// A real SMTP server: Debian's aiosmtpd (python3-aiosmtpd, installed by
/// `scripts/setup.sh --test`) as a child process, storing mail in a Maildir.
public final class TestSMTPServer {
    public let port: UInt16
    public let maildir: String
    private let process = Process()

    /// Listens on 127.0.0.1:`port` (nil: a free one); returns once it accepts connections.
    public init(port: UInt16? = nil) throws {
        let python = "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python),
            DockerTestEngine.run([python, "-c", "import aiosmtpd"]).status == 0
        else { throw cannotRun("needs Debian's python3-aiosmtpd (scripts/setup.sh --test installs it)") }
        let port = try port ?? Loopback.freePort()
        self.port = port
        maildir = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-mail-\(UUID().uuidString.prefix(8))").path
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-m", "aiosmtpd", "-n", "-l", "127.0.0.1:\(port)", "-c", "aiosmtpd.handlers.Mailbox", maildir]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let listening = waitUntil(seconds: 30) { Loopback.accepts(port) || !process.isRunning }
        guard listening, process.isRunning else {
            throw TestSetupFailure(description: "aiosmtpd did not listen on 127.0.0.1:\(port) (\(process.isRunning ? "running" : "exit status \(process.terminationStatus)"))")
        }
    }

    deinit {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: maildir)
    }

    /// The messages delivered so far (Maildir `new/`), as text.
    public var messages: [String] {
        messageFiles.compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }
    }

    /// The files of the messages delivered so far.
    public var messageFiles: [String] {
        let directory = maildir + "/new"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().map { directory + "/" + $0 }
    }
}

/// A TCP listener on 127.0.0.1 (`port`, or a random one) that accepts connections one after the
/// other and keeps every byte received, with the number of connections seen.
public final class TCPReceiver: @unchecked Sendable {
    public let port: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    private var accepted = 0

    public init(port: UInt16 = 0) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Loopback.address(port: port)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 4) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard ok else { throw TestSetupFailure(description: "cannot listen on 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }
        self.port = UInt16(bigEndian: address.sin_port)
        Thread { [self] in
            while true {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { break }
                lock.withLock { accepted += 1 }
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = recv(connection, &chunk, chunk.count, 0)
                    guard count > 0 else { break }
                    lock.withLock { bytes += chunk.prefix(count) }
                }
                close(connection)
            }
        }.start()
    }

    deinit {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    public var received: [UInt8] { lock.withLock { bytes } }
    public var connections: Int { lock.withLock { accepted } }
}
