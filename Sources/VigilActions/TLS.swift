import CVigilTLS

/// A byte stream an action talks over: a plain `Socket` or a `TLSStream` on one.
protocol ByteStream: AnyObject {
    /// `host:port` of the peer, for messages.
    var peer: String { get }
    /// Sends all of `bytes`.
    func send(_ bytes: [UInt8]) throws(ActionFailure)
    /// Receives what is available; empty at the end of the stream.
    func receive() throws(ActionFailure) -> [UInt8]
}

extension Socket: ByteStream {}

/// How a network action checks the server's certificate (`ca_file`, `insecure_skip_verify`).
struct TLSVerification: Sendable, Equatable, CustomStringConvertible {
    /// A PEM bundle trusted instead of the system's store.
    var caFile: String?
    /// No check of the chain or the host name at all.
    var skipVerify: Bool

    var description: String {
        skipVerify ? "certificate NOT verified (insecure_skip_verify)" : "certificate verified against \(caFile ?? "the system CA store")"
    }
}

/// A client TLS configuration (OpenSSL's `SSL_CTX`, TLS 1.2 or newer) made once per action and
/// shared by its connections: the trusted CAs (`SSL_CTX_load_verify_locations` for `ca_file`,
/// else `SSL_CTX_set_default_verify_paths`) and whether the peer is verified. The first one
/// opens libssl.so.3 (dlopen): a daemon without TLS actions never loads it.
final class TLSContext: @unchecked Sendable {
    // SSL_CTX is safe to share between threads once configured; nothing changes it after init.
    private let context: OpaquePointer  // cvigiltls_context *
    let verification: TLSVerification

    /// Loads the CAs. - Throws: the reason (`ca_file` unreadable or without certificates,
    /// libssl.so.3 missing).
    init(_ verification: TLSVerification) throws(AddressError) {
        var error = [CChar](repeating: 0, count: 256)
        let made: OpaquePointer? = verification.caFile.withOptionalCString { caFile in
            cvigiltls_context_new(caFile, verification.skipVerify ? 0 : 1, &error, error.count)
        }
        guard let made else {
            let source = verification.caFile.map { "'\($0)'" } ?? "the system CA store"
            throw AddressError(message: "cannot load \(source): \(TLSStream.text(error))")
        }
        context = made
        self.verification = verification
    }

    deinit { cvigiltls_context_free(context) }

    /// The TLS handshake (`SSL_connect`) over `socket`, already connected, with SNI `host` and,
    /// unless verification is off, the chain and `host` checked. The socket's timeouts bound it.
    /// - Throws: a transient failure with the reason ("certificate verify failed: ...",
    ///   "hostname mismatch", "timed out").
    func connect(_ socket: Socket, host: String) throws(ActionFailure) -> TLSStream {
        var error = [CChar](repeating: 0, count: 256)
        guard let ssl = cvigiltls_connect(context, socket.fd, host, &error, error.count) else {
            throw .transient("TLS handshake with \(socket.peer): \(TLSStream.text(error))")
        }
        return TLSStream(socket: socket, ssl: ssl)
    }
}

/// A TLS session (OpenSSL's `SSL`) over a connected `Socket`: sends close_notify and frees the
/// session on deinit, before the socket closes. One thread uses it at a time.
final class TLSStream: ByteStream {
    private let socket: Socket
    private let ssl: OpaquePointer

    fileprivate init(socket: Socket, ssl: OpaquePointer) {
        self.socket = socket
        self.ssl = ssl
    }

    deinit { cvigiltls_close(ssl) }

    var peer: String { socket.peer }

    /// Sends all of `bytes` (`SSL_write_ex`; never raises SIGPIPE).
    func send(_ bytes: [UInt8]) throws(ActionFailure) {
        var error = [CChar](repeating: 0, count: 256)
        let result = bytes.withUnsafeBytes { cvigiltls_write(ssl, $0.baseAddress, $0.count, &error, error.count) }
        guard result == 0 else { throw .transient("send to \(peer) (TLS): \(Self.text(error))") }
    }

    /// Receives what is available, up to 64 KiB (`SSL_read_ex`); empty at the end of the stream.
    func receive() throws(ActionFailure) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var error = [CChar](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { cvigiltls_read(ssl, $0.baseAddress, $0.count, &error, error.count) }
        guard count >= 0 else { throw .transient("receive from \(peer) (TLS): \(Self.text(error))") }
        return Array(buffer.prefix(count))
    }

    fileprivate static func text(_ error: [CChar]) -> String {
        String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension Optional where Wrapped == String {
    /// Calls `body` with a C string, or NULL when nil.
    fileprivate func withOptionalCString<R>(_ body: (UnsafePointer<CChar>?) -> R) -> R {
        switch self {
        case .some(let text): text.withCString { body($0) }
        case .none: body(nil)
        }
    }
}
