import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Where a plain-HTTP provider lives, read once from its `base_url`.
struct UpstreamTarget: Sendable, Equatable {
    /// The host to connect to (an IPv6 address without its brackets).
    var host: String
    var port: Int
    /// The `Host` header: the URL's authority as written.
    var authority: String
    /// The base URL's path, without a trailing slash; request paths are appended to it.
    var pathPrefix: String

    /// Reads an `http://` URL; nil for any other scheme or for a URL with credentials, a query or a fragment,
    /// which are left to AsyncHTTPClient.
    init?(baseURL: String) {
        guard baseURL.lowercased().hasPrefix("http://") else { return nil }
        let rest = baseURL.dropFirst("http://".count)
        guard !rest.contains("@"), !rest.contains("?"), !rest.contains("#") else { return nil }
        let authority = rest.prefix { $0 != "/" }
        var path = rest.dropFirst(authority.count)
        while path.hasSuffix("/") { path = path.dropLast() }
        let hasPort = authority.hasPrefix("[") ? authority.contains("]:") : authority.contains(":")
        guard case .success(let address) = ListenAddress.parse(hasPort ? String(authority) : authority + ":80") else { return nil }
        host = address.host
        port = address.port
        self.authority = String(authority)
        pathPrefix = String(path)
    }
}

/// Kept-alive HTTP/1.1 connections to one plain-HTTP provider, all on one event loop.
///
/// The gateway's own client for `http://` providers (vLLM, Ollama and other servers on the host or the LAN),
/// where the client's cost shows next to the provider's: a request's head and body leave in one write, and the
/// response is read by one handler with no hop to another thread. A request takes an idle connection or opens
/// one; the connection returns when its response has been read to the end and both sides keep it alive.
/// Connections idle for a minute are closed.
final class UpstreamConnectionPool: Sendable {
    /// A connection and its handler.
    struct Connection: Sendable {
        var channel: any Channel
        var handler: NIOLoopBound<UpstreamExchangeHandler>
    }

    private struct Idle {
        var connection: Connection
        var since: NIODeadline
    }

    private struct State {
        var idle: [Idle] = []
        var open = 0
        var retired = false
    }

    let loop: any EventLoop
    let target: UpstreamTarget
    private let connectTimeout: TimeAmount
    private let readTimeout: TimeAmount
    private let maximumConnections: Int
    private let state = NIOLockedValueBox(State())
    private let sweeper = NIOLockedValueBox<RepeatedTask?>(nil)
    /// How long an unused connection stays open.
    static let idleTimeout = TimeAmount.seconds(60)
    /// How often idle connections are looked at.
    private static let sweepInterval = TimeAmount.seconds(30)

    /// - Parameters:
    ///   - maximumConnections: connections open at once (one per request in flight); requests past it fail over.
    init(target: UpstreamTarget, loop: any EventLoop, connectTimeout: TimeAmount, readTimeout: TimeAmount, maximumConnections: Int) {
        self.target = target
        self.loop = loop
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
        self.maximumConnections = maximumConnections
        let sweep = loop.scheduleRepeatedTask(initialDelay: Self.sweepInterval, delay: Self.sweepInterval) { [weak self] _ in
            self?.closeIdle(olderThan: Self.idleTimeout)
        }
        sweeper.withLockedValue { $0 = sweep }
    }

    /// Connections open now, busy or idle.
    var openConnections: Int { state.withLockedValue { $0.open } }

    /// Connections open now and waiting in the pool for a request.
    var idleConnections: Int { state.withLockedValue { $0.idle.count } }

    /// Sends a POST of `body` to `path` (appended to the base URL's path) and waits for the response head.
    /// - Parameters:
    ///   - headDeadline: when the head must have arrived; connecting counts against it too.
    ///   - bodyDeadline: when the whole body must have arrived (reading it then fails with
    ///     `UpstreamConnectionError.bodyTimeout`); nil leaves that to the reader.
    /// - Throws: `UpstreamConnectionError`, `ChannelError.connectTimeout`, a connection error, or
    ///   `CancellationError` when the task is cancelled first (the connection is then closed).
    func post(
        path: String, headers: [(name: String, value: String)], body: ByteBuffer, headDeadline: NIODeadline, bodyDeadline: NIODeadline? = nil
    ) async throws -> UpstreamResponse
    {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: target.pathPrefix + path)
        head.headers.reserveCapacity(headers.count + 2)
        head.headers.add(name: "host", value: target.authority)
        for header in headers { head.headers.add(name: header.name, value: header.value) }
        head.headers.add(name: "content-length", value: String(body.readableBytes))
        let (connection, reused) = try await checkOut(headDeadline: headDeadline, reuse: true)
        do {
            return try await send(head: head, body: body, headDeadline: headDeadline, bodyDeadline: bodyDeadline, on: connection)
        } catch UpstreamConnectionError.closed where reused && !Task.isCancelled && NIODeadline.now() < headDeadline {
            // A kept-alive connection that closed before any answer: usually a server's keep-alive timeout racing
            // the request. The request goes once more, on a new connection; a second failure is final (and the
            // chain may fail over, which would send it again elsewhere anyway).
            let (fresh, _) = try await checkOut(headDeadline: headDeadline, reuse: false)
            return try await send(head: head, body: body, headDeadline: headDeadline, bodyDeadline: bodyDeadline, on: fresh)
        }
    }

    private func send(
        head: HTTPRequestHead, body: ByteBuffer, headDeadline: NIODeadline, bodyDeadline: NIODeadline?, on connection: Connection
    ) async throws -> UpstreamResponse {
        let exchange = UpstreamExchangeHandler.Exchange(
            head: head, body: body, headDeadline: headDeadline, bodyDeadline: bodyDeadline, response: loop.makePromise(of: UpstreamResponse.self))
        let handler = connection.handler
        if loop.inEventLoop {
            handler.value.start(exchange)
        } else {
            loop.execute { handler.value.start(exchange) }
        }
        do {
            return try await withTaskCancellationHandler {
                try await exchange.response.futureResult.get()
            } onCancel: {
                connection.channel.close(promise: nil)
            }
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw error
        }
    }

    /// An idle connection (when `reuse`), or a new one; and whether it was idle.
    private func checkOut(headDeadline: NIODeadline, reuse: Bool) async throws -> (Connection, reused: Bool) {
        let reserved = try state.withLockedValue { state -> Connection? in
            while reuse, let idle = state.idle.popLast() {
                if idle.connection.channel.isActive { return idle.connection }
            }
            guard state.open < maximumConnections else { throw UpstreamConnectionError.tooManyConnections(maximumConnections) }
            state.open += 1
            return nil
        }
        if let reserved { return (reserved, true) }
        do {
            return (try await connect(timeout: min(connectTimeout, headDeadline - .now())), false)
        } catch is ConnectedThenClosed {
            throw UpstreamConnectionError.closed
        } catch {
            state.withLockedValue { $0.open -= 1 }
            throw error
        }
    }

    /// A connection that closed before it could be used; its handler did the counting.
    private struct ConnectedThenClosed: Error {}

    private func connect(timeout: TimeAmount) async throws -> Connection {
        let readTimeout = self.readTimeout
        let channel = try await ClientBootstrap(group: loop)
            .connectTimeout(max(timeout, .milliseconds(1)))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(UpstreamExchangeHandler(pool: self, readTimeout: readTimeout))
                }
            }
            .connect(host: target.host, port: target.port).get()
        do {
            let handler = try await channel.eventLoop.submit {
                NIOLoopBound(try channel.pipeline.syncOperations.handler(type: UpstreamExchangeHandler.self), eventLoop: channel.eventLoop)
            }.get()
            return Connection(channel: channel, handler: handler)
        } catch {
            // Connected, then closed at once (its handler is gone with the pipeline): the handler has counted
            // the connection out, or will as it closes.
            channel.close(promise: nil)
            throw ConnectedThenClosed()
        }
    }

    /// Takes back a connection whose response was read to the end.
    func release(_ connection: Connection) {
        let keep = state.withLockedValue { state in
            guard !state.retired else { return false }
            state.idle.append(Idle(connection: connection, since: .now()))
            return true
        }
        if !keep { connection.channel.close(promise: nil) }
    }

    /// Called by a connection's handler when it has closed.
    func closed() {
        state.withLockedValue { $0.open -= 1 }
    }

    private func closeIdle(olderThan age: TimeAmount) {
        let limit = NIODeadline.now() - age
        let old = state.withLockedValue { state in
            let old = state.idle.filter { $0.since < limit }
            state.idle.removeAll { $0.since < limit }
            return old
        }
        for idle in old { idle.connection.channel.close(promise: nil) }
    }

    /// Closes the idle connections now and the busy ones as their responses end.
    func retire() {
        sweeper.withLockedValue { $0?.cancel(); $0 = nil }
        let idle = state.withLockedValue { state in
            state.retired = true
            defer { state.idle = [] }
            return state.idle
        }
        for entry in idle { entry.connection.channel.close(promise: nil) }
    }
}
