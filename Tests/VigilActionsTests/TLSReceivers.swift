import Foundation
import VigilTestSupport
import XCTest

/// A throw-away CA and a server certificate it signed (EC P-256, two days), made with the
/// `openssl` CLI (`scripts/setup.sh --test` installs it) in a directory removed on deinit.
final class TestCertificates {
    let directory: String
    var caFile: String { directory + "/ca.pem" }
    var certificateFile: String { directory + "/server.pem" }
    var keyFile: String { directory + "/server.key" }

    /// `names`: the server certificate's subjectAltName entries (`DNS:localhost`, `IP:127.0.0.1`).
    init(names: [String] = ["DNS:localhost", "IP:127.0.0.1"]) throws {
        guard let openssl = ["/usr/bin/openssl", "/bin/openssl"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw cannotRun("needs the openssl CLI (scripts/setup.sh --test installs it)")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "subjectAltName=\(names.joined(separator: ","))\n".write(toFile: directory + "/san.ext", atomically: true, encoding: .utf8)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for argv in [
            [openssl, "req", "-x509"] + ec + ["-keyout", directory + "/ca.key", "-out", caFile, "-days", "2", "-subj", "/CN=Vigil Test CA"],
            [openssl, "req"] + ec + ["-keyout", keyFile, "-out", directory + "/server.csr", "-subj", "/CN=vigil-test-server"],
            [openssl, "x509", "-req", "-in", directory + "/server.csr", "-CA", caFile, "-CAkey", directory + "/ca.key",
             "-CAcreateserial", "-out", certificateFile, "-days", "2", "-extfile", directory + "/san.ext"],
        ] {
            let result = DockerTestEngine.run(argv)
            guard result.status == 0 else { throw TestSetupFailure(description: "\(argv.joined(separator: " ")): \(result.errors)") }
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

/// A child process of Debian's /usr/bin/python3 running `script` with `arguments`, stopped on
/// deinit; ready once `port` on 127.0.0.1 accepts connections.
final class TestPythonServer {
    let port: UInt16
    private let process = Process()
    private let errors = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-python-\(UUID().uuidString.prefix(8)).err")

    init(script: String, arguments: [String], port: UInt16, requiresModule module: String? = nil) throws {
        let python = "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else { throw cannotRun("needs Debian's /usr/bin/python3") }
        if let module, DockerTestEngine.run([python, "-c", "import \(module)"]).status != 0 {
            throw cannotRun("needs Debian's python3-\(module) (scripts/setup.sh --test installs it)")
        }
        self.port = port
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script] + arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        waitUntil("the python server to listen on 127.0.0.1:\(port)") { Loopback.accepts(port) || !process.isRunning }
        guard process.isRunning else {
            let text = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
            throw TestSetupFailure(description: "python server exited with status \(process.terminationStatus): \(text)")
        }
    }

    deinit {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: errors)
    }
}

/// A real HTTPS server: python3's `http.server` behind `ssl`, with `certificates`' server
/// certificate; it answers 200 to each POST and appends its path and body to a JSON-lines log.
final class TestHTTPSServer {
    let log: String
    private let server: TestPythonServer

    private static let script = """
    import http.server, json, ssl, sys
    cert, key, port, log = sys.argv[1:5]
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
            with open(log, 'a') as f:
                f.write(json.dumps({'path': self.path, 'body': body.decode()}) + '\\n')
            self.send_response(200)
            self.send_header('Content-Length', '2')
            self.end_headers()
            self.wfile.write(b'ok')
        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(('127.0.0.1', int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
    """

    init(_ certificates: TestCertificates) throws {
        log = certificates.directory + "/requests.jsonl"
        let port = try Loopback.freePort()
        server = try TestPythonServer(
            script: Self.script, arguments: [certificates.certificateFile, certificates.keyFile, String(port), log], port: port)
    }

    var port: UInt16 { server.port }

    /// The POSTs received: path and body.
    var requests: [(path: String, body: String)] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String] else { return nil }
            return (object["path"] ?? "", object["body"] ?? "")
        }
    }
}

/// A real SMTP server with TLS and AUTH: Debian's aiosmtpd (`aiosmtpd.controller` with
/// `tls_context` and `require_starttls=True` for STARTTLS, `ssl_context` for implicit TLS),
/// AUTH required, accepting only `username`/`password`; mail goes to a Maildir.
final class TestTLSSMTPServer {
    let maildir: String
    private let server: TestPythonServer

    private static let script = """
    import signal, ssl, sys
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox
    from aiosmtpd.smtp import AuthResult, LoginPassword
    mode, port, cert, key, maildir, user, password = sys.argv[1:8]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    def authenticate(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and data.login == user.encode() and data.password == password.encode()
        return AuthResult(success=ok, handled=False)
    options = dict(hostname='127.0.0.1', port=int(port), authenticator=authenticate, auth_required=True)
    if mode == 'starttls':
        options.update(tls_context=context, require_starttls=True)
    else:
        options.update(ssl_context=context, auth_require_tls=False)
    controller = Controller(Mailbox(maildir), **options)
    controller.start()
    signal.sigwait([signal.SIGTERM, signal.SIGINT])
    controller.stop()
    """

    /// `mode`: `starttls` or `implicit`.
    init(mode: String, certificates: TestCertificates, username: String, password: String) throws {
        maildir = certificates.directory + "/mail"
        let port = try Loopback.freePort()
        server = try TestPythonServer(
            script: Self.script,
            arguments: [mode, String(port), certificates.certificateFile, certificates.keyFile, maildir, username, password],
            port: port, requiresModule: "aiosmtpd")
    }

    var port: UInt16 { server.port }

    /// The messages delivered so far (Maildir `new/`), as text.
    var messages: [String] {
        let directory = maildir + "/new"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().compactMap { try? String(contentsOfFile: directory + "/" + $0, encoding: .utf8) }
    }
}
