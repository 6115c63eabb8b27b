import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import VigilEvents
#if canImport(Glibc)
import Glibc
#endif

/// The credentials of the process at the other end of a unix socket (SO_PEERCRED: as they were
/// when it connected). Laid out as the kernel's `struct ucred`.
public struct PeerCredentials: Sendable, Equatable, BitwiseCopyable {
    /// Process id.
    public var pid: Int32
    /// Effective user id.
    public var uid: UInt32
    /// Effective group id.
    public var gid: UInt32
}

/// A request as a router sees it.
public struct HTTPRequest: Sendable {
    /// `GET`, `POST`, `DELETE`, ...
    public var method: String
    /// The path without the query, percent-decoded.
    public var path: String
    /// The query parameters, percent-decoded (a repeated name keeps its last value).
    public var query: [String: String]
    /// Header names lowercased.
    public var headers: [String: String]
    /// The body.
    public var body: [UInt8]
    /// The peer, on a unix socket.
    public var peer: PeerCredentials?
}

/// What a router answers.
public enum HTTPReply: Sendable {
    /// A complete response.
    case body(status: Int, contentType: String, text: String)
    /// A chunked stream of JSON lines fed by a subscription; `ended` runs when the connection closes.
    case stream(Subscription, ended: @Sendable () -> Void)

    /// A JSON response.
    public static func json(_ status: Int, _ text: String) -> HTTPReply { .body(status: status, contentType: "application/json", text: text) }

    /// `{"message": ...}` with the status.
    public static func error(_ status: Int, _ message: String) -> HTTPReply {
        var text = "{\"message\":"
        JSONText.appendString(message, to: &text)
        return .json(status, text + "}")
    }
}

/// HTTP/1.1 on NIO, for the control API (unix socket, peers checked with SO_PEERCRED) and the
/// metrics listener (TCP). Requests go to an async router off the event loop; streams are written
/// as the subscription's buffer fills, and only while the connection can take more.
public final class HTTPServer: Sendable {
    /// The largest request body accepted (413 beyond).
    public static let maximumBodyBytes = 1 << 20

    /// The router: every request of an authorised peer.
    public typealias Router = @Sendable (HTTPRequest) async -> HTTPReply
    /// Decides whether a peer may talk to the server; nil: everyone (TCP).
    public typealias Authorizer = @Sendable (PeerCredentials) -> Bool

    private let group: any EventLoopGroup
    private let router: Router
    private let authorize: Authorizer?
    private let limits: HTTPLimits
    private let counters: HTTPServerCounters

    /// A server on `group`, holding its clients to `limits` (refusals counted in `counters`).
    public init(group: any EventLoopGroup, authorize: Authorizer?, limits: HTTPLimits = HTTPLimits(),
                counters: HTTPServerCounters = HTTPServerCounters(), router: @escaping Router) {
        self.group = group
        self.router = router
        self.authorize = authorize
        self.limits = limits
        self.counters = counters
    }

    /// Listens on a unix socket at `path` (which must not exist).
    public func bind(unixPath path: String) async throws -> any Channel {
        try await bootstrap(peerCredentials: true).bind(unixDomainSocketPath: path).get()
    }

    /// Listens on TCP `host`:`port`.
    public func bind(host: String, port: Int) async throws -> any Channel {
        try await bootstrap(peerCredentials: false).bind(host: host, port: port).get()
    }

    /// NIO's HTTP/1.1 server handlers as every connection gets them: the request decoder held to
    /// `limits.maxHeaderBytes`, the response encoder, 400 on a malformed request. Must run on the
    /// channel's event loop. The fuzz target (`vigil-fuzz http`) parses requests through it.
    package static func configureHTTPPipeline(_ channel: any Channel, limits: HTTPLimits) throws {
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withErrorHandling: true, withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
    }

    private func bootstrap(peerCredentials: Bool) -> ServerBootstrap {
        let router = self.router, authorize = self.authorize, limits = self.limits, counters = self.counters
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard counters.openConnection(limit: limits.maxConnections) else {
                    counters.refuse(.connections, "refused a connection: \(limits.maxConnections) are open (api.max_connections)")
                    let message = "too many connections: \(limits.maxConnections) are open (api.max_connections)"
                    return channel.eventLoop.submit {
                        try channel.pipeline.syncOperations.addHandler(RefusingHandler(message: message))
                    }
                }
                channel.closeFuture.whenComplete { _ in counters.closeConnection() }
                let credentials: EventLoopFuture<PeerCredentials?>
                if peerCredentials, let provider = channel as? any SocketOptionProvider {
                    // struct ucred (pid, uid, gid): PeerCredentials has its layout.
                    credentials = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
                        .map { (cred: PeerCredentials) in cred }
                } else {
                    credentials = channel.eventLoop.makeSucceededFuture(nil)
                }
                return credentials.flatMapThrowing { peer in
                    let allowed = peer.map { peer in authorize?(peer) ?? true } ?? !peerCredentials
                    try Self.configureHTTPPipeline(channel, limits: limits)
                    try channel.pipeline.syncOperations.addHandler(
                        HTTPConnectionHandler(router: router, peer: peer, allowed: allowed, limits: limits, counters: counters))
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: false)
    }
}

/// A connection over `api.max_connections`: answered 503 with `Connection: close` as soon as it
/// is active, then closed; what it sends is ignored.
final class RefusingHandler: ChannelInboundHandler {
    typealias InboundIn = NIOCore.ByteBuffer
    typealias OutboundOut = NIOCore.ByteBuffer
    let message: String

    init(message: String) { self.message = message }

    func channelActive(context: ChannelHandlerContext) {
        var body = "{\"message\":"
        JSONText.appendString(message, to: &body)
        body += "}"
        let text = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n" + body
        context.writeAndFlush(wrapOutboundOut(NIOCore.ByteBuffer(string: text))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// One connection: collects a request, asks the router, writes the reply (or the stream). The
/// whole request must arrive within `limits.requestTimeout` of the connection opening or the
/// previous response (slowloris); a head over `limits.maxHeaderBytes` ends the connection.
final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: HTTPServer.Router
    private let peer: PeerCredentials?
    private let allowed: Bool
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    private var subscription: Subscription?
    private var streamEnded: (@Sendable () -> Void)?
    private var busy = false
    private let limits: HTTPLimits
    private let counters: HTTPServerCounters
    /// Closes the connection when the request in progress (or the next) is late.
    private var deadline: Scheduled<Void>?

    init(router: @escaping HTTPServer.Router, peer: PeerCredentials?, allowed: Bool, limits: HTTPLimits, counters: HTTPServerCounters) {
        self.router = router
        self.peer = peer
        self.allowed = allowed
        self.limits = limits
        self.counters = counters
    }

    func handlerAdded(context: ChannelHandlerContext) {
        armDeadline(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    /// Starts the clock for the next request.
    private func armDeadline(context: ChannelHandlerContext) {
        deadline?.cancel()
        let timeout = limits.requestTimeout
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000
                                                                    + timeout.components.attoseconds / 1_000_000_000)) {
            let (handler, context) = bound.value
            handler.deadline = nil
            guard !handler.busy, handler.subscription == nil, context.channel.isActive else { return }
            handler.counters.refuse(.timeout, "closed a connection (\(handler.who)): no complete request within \(timeout) (api.request_timeout_seconds)")
            context.close(promise: nil)
        }
    }

    /// The peer for the log.
    private var who: String { peer.map { "uid \($0.uid), pid \($0.pid)" } ?? "TCP peer" }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.removeAll()
            tooLarge = false
        case .body(var buffer):
            if body.count + buffer.readableBytes > HTTPServer.maximumBodyBytes {
                tooLarge = true
            } else if let bytes = buffer.readBytes(length: buffer.readableBytes) {
                body += bytes
            }
        case .end:
            guard let head, !busy, subscription == nil else { return }
            self.head = nil
            deadline?.cancel()
            deadline = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = head.isKeepAlive
        guard allowed else {
            let who = peer.map { "uid \($0.uid), gid \($0.gid), pid \($0.pid)" } ?? "unknown peer"
            write(.error(403, "forbidden: \(who) is neither root nor a member of the daemon's socket group"),
                  version: head.version, keepAlive: keepAlive, context: context)
            return
        }
        if tooLarge {
            write(.error(413, "request body over \(HTTPServer.maximumBodyBytes) bytes"), version: head.version, keepAlive: false, context: context)
            return
        }
        let request = HTTPRequest(head, body: body, peer: peer)
        body = []
        busy = true
        let router = self.router
        context.eventLoop.makeFutureWithTask { await router(request) }
            .assumeIsolated()
            .whenSuccess { reply in
                self.busy = false
                self.write(reply, version: head.version, keepAlive: keepAlive, context: context)
            }
    }

    private func write(_ reply: HTTPReply, version: HTTPVersion, keepAlive: Bool, context: ChannelHandlerContext) {
        guard context.channel.isActive else {
            if case .stream(let subscription, let ended) = reply {
                subscription.close()
                ended()
            }
            return
        }
        switch reply {
        case .body(let status, let contentType, let text):
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: contentType)
            headers.add(name: "content-length", value: String(text.utf8.count))
            if !keepAlive { headers.add(name: "connection", value: "close") }
            let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status), headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            if !text.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil) }
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            } else {
                armDeadline(context: context)  // an idle keep-alive connection is bounded too
            }
        case .stream(let subscription, let ended):
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/x-ndjson")
            headers.add(name: "transfer-encoding", value: "chunked")
            headers.add(name: "cache-control", value: "no-cache")
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .ok, headers: headers))), promise: nil)
            self.subscription = subscription
            streamEnded = ended
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            subscription.onReady {
                loop.execute { bound.value.0.drain(context: bound.value.1) }
            }
            drain(context: context)
        }
    }

    /// Writes what the subscription has buffered while the connection can take it.
    private func drain(context: ChannelHandlerContext) {
        guard let subscription, context.channel.isActive, context.channel.isWritable else { return }
        let (bytes, ended) = subscription.take()
        if !bytes.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: bytes)))), promise: nil)
        }
        if ended {
            self.subscription = nil
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            finishStream()
        } else if !bytes.isEmpty {
            context.flush()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        drain(context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        subscription?.close()
        subscription = nil
        finishStream()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError, error == .headerOverflow {
            counters.refuse(.headerTooLarge, "closed a connection (\(who)): request head over \(limits.maxHeaderBytes) bytes (api.max_header_kib)")
        }
        context.close(promise: nil)
    }

    private func finishStream() {
        let ended = streamEnded
        streamEnded = nil
        ended?()
    }
}

extension HTTPRequest {
    /// The router's view of a decoded request: the path and query split off the URI and
    /// percent-decoded, header names lowercased.
    package init(_ head: HTTPRequestHead, body: [UInt8], peer: PeerCredentials?) {
        let uri = head.uri
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts.first ?? "").removingPercentEncoding ?? String(parts.first ?? "")
        var query: [String: String] = [:]
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let decode = { (s: Substring) in s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
                query[decode(kv[0])] = kv.count > 1 ? decode(kv[1]) : ""
            }
        }
        var headers: [String: String] = [:]
        for (name, value) in head.headers { headers[name.lowercased()] = value }
        self.init(method: head.method.rawValue, path: path, query: query, headers: headers, body: body, peer: peer)
    }
}
