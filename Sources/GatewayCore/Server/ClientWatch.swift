import NIOConcurrencyHelpers
import NIOCore
import NIOHTTPTypes

/// Cancels work when the client's connection closes, without consuming the request stream
/// (so keep-alive connections stay usable for the next request).
enum ClientWatch {
    /// Runs `operation` in a task of its own; if `channel` closes first, cancels it and throws `CancellationError`
    /// once it has stopped.
    static func cancellingOnDisconnect<Value: Sendable>(
        _ channel: (any Channel)?, _ operation: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        guard let channel else { return try await operation() }
        return try await withOutsideCancellation(throwing: CancellationError()) { cancel in
            let watch = DisconnectWatch(channel: channel)
            watch.start(onClose: cancel)
            return { watch.stop() }
        } operation: {
            try await operation()
        }
    }
}

/// Calls back once when the client's connection closes: the connection's `ClientConnectionHandler` tells it, so
/// it needs no task and no timer of its own, and an open stream keeps nothing alive beside it.
///
/// ```swift
/// let watch = DisconnectWatch(channel: context.channel)
/// let work = Task { defer { watch.stop() }; ... }
/// watch.start { work.cancel() }
/// ```
final class DisconnectWatch: Sendable {
    private struct State {
        var stopped = false
        var onClose: (@Sendable () -> Void)?
        var handler: ClientConnectionHandler?
    }

    private let channel: (any Channel)?
    private let state = NIOLockedValueBox(State())

    init(channel: (any Channel)?) {
        self.channel = channel
    }

    /// Calls `onClose` once when the connection has closed (at once when it already has); never after `stop()`.
    /// A channel without a `ClientConnectionHandler` is not watched.
    func start(onClose: @escaping @Sendable () -> Void) {
        guard let channel else { return }
        if channel.eventLoop.inEventLoop {
            attach(to: channel, onClose: onClose)
        } else {
            channel.eventLoop.execute { self.attach(to: channel, onClose: onClose) }
        }
    }

    /// Registers with the connection's handler; runs on the channel's event loop, where the pipeline can be read.
    private func attach(to channel: any Channel, onClose: @escaping @Sendable () -> Void) {
        // A closed channel's pipeline has lost its handlers.
        let handler = try? channel.pipeline.syncOperations.handler(type: ClientConnectionHandler.self)
        if handler == nil, channel.isActive { return }
        let closed = state.withLockedValue { state -> Bool in
            guard !state.stopped else { return false }
            state.onClose = onClose
            guard let handler, handler.add(self) else { return true }
            state.handler = handler
            return false
        }
        if closed { connectionClosed() }
    }

    /// Called by the handler when the connection has closed.
    fileprivate func connectionClosed() {
        let onClose = state.withLockedValue { state -> (@Sendable () -> Void)? in
            guard !state.stopped else { return nil }
            state.stopped = true
            state.handler = nil
            defer { state.onClose = nil }
            return state.onClose
        }
        onClose?()
    }

    /// Stops watching.
    func stop() {
        let handler = state.withLockedValue { state -> ClientConnectionHandler? in
            state.stopped = true
            state.onClose = nil
            defer { state.handler = nil }
            return state.handler
        }
        handler?.remove(self)
    }
}

/// One per client connection: tells its `DisconnectWatch`es when the connection closes, and treats the client's
/// half-close (FIN) as the client leaving.
///
/// Hummingbird allows half-closed connections; an HTTP client that stops sending has, in practice,
/// given up on the answer (as proxies like nginx assume too).
final class ClientConnectionHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    private struct State {
        var closed = false
        /// Usually none or one: a connection serves one request at a time.
        var watches: [DisconnectWatch] = []
    }

    private let state = NIOLockedValueBox(State())

    /// Adds `watch`; false when the connection has already closed.
    fileprivate func add(_ watch: DisconnectWatch) -> Bool {
        state.withLockedValue { state in
            guard !state.closed else { return false }
            state.watches.append(watch)
            return true
        }
    }

    /// Watches registered now.
    var watching: Int {
        state.withLockedValue { $0.watches.count }
    }

    fileprivate func remove(_ watch: DisconnectWatch) {
        state.withLockedValue { state in state.watches.removeAll { $0 === watch } }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let watches = state.withLockedValue { state -> [DisconnectWatch] in
            state.closed = true
            defer { state.watches = [] }
            return state.watches
        }
        for watch in watches { watch.connectionClosed() }
        context.fireChannelInactive()
    }
}

/// Closes a new connection that has not sent its first request's complete head within `timeout`, then leaves the
/// pipeline. Later requests on the connection are bounded by `server.idle_timeout` (Hummingbird's idle handler,
/// which counts only whole request parts as activity, so a head that trickles in byte by byte ends there too).
final class FirstHeadTimeout: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(_ timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            timer?.cancel()
            timer = nil
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard timer == nil else { return }
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }
}
