import NIOCore
import NIOHTTP1

/// The last handler of a pooled upstream connection: sends one request at a time and streams each response to
/// its waiter, with the `first_byte` and read timeouts, back-pressure from the reader, and the connection's
/// return to its pool once a kept-alive response has ended.
///
/// Every method runs on the connection's event loop.
final class UpstreamExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// A request to send and where its response goes.
    struct Exchange: Sendable {
        var head: HTTPRequestHead
        var body: ByteBuffer
        /// When the response head must have arrived.
        var headDeadline: NIODeadline
        /// When the whole body must have arrived, if the pool enforces that.
        var bodyDeadline: NIODeadline?
        var response: EventLoopPromise<UpstreamResponse>
    }

    private enum State {
        /// In the pool, or just connected.
        case idle
        case awaitingHead(EventLoopPromise<UpstreamResponse>, timer: Scheduled<Void>)
        case streaming(UpstreamBody.ConnectionStream.Source, keepAlive: Bool)
        case closed
    }

    private let pool: UpstreamConnectionPool
    private let readTimeout: TimeAmount
    private var state = State.idle
    private var context: ChannelHandlerContext?
    /// Counts exchanges, so a late signal from a finished body's reader cannot touch the next exchange.
    private var generation: UInt64 = 0
    /// Whether the reader wants more of the body; reads from the socket stop while it does not.
    private var readerWantsMore = true
    private var readHeldBack = false
    private var lastRead = NIODeadline.now()
    private var readTimer: Scheduled<Void>?
    private var bodyDeadline: NIODeadline?
    /// Whether the whole request has gone out: a provider may answer (a 413, say) before reading all of it, and
    /// the connection can then not carry another request.
    private var requestWritten = false

    init(pool: UpstreamConnectionPool, readTimeout: TimeAmount) {
        self.pool = pool
        self.readTimeout = readTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: - Sending

    /// Sends `exchange` when the connection is free; fails its promise otherwise.
    func start(_ exchange: Exchange) {
        guard case .idle = state, let context, context.channel.isActive else {
            exchange.response.fail(UpstreamConnectionError.closed)
            return
        }
        generation &+= 1
        let generation = self.generation
        let loop = context.eventLoop.assumeIsolated()
        let timer = loop.scheduleTask(deadline: exchange.headDeadline) { [self] in
            guard generation == self.generation, case .awaitingHead(let promise, _) = state else { return }
            fail(promise: promise, UpstreamConnectionError.headTimeout)
        }
        state = .awaitingHead(exchange.response, timer: timer)
        bodyDeadline = exchange.bodyDeadline
        requestWritten = false
        readerWantsMore = true
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(exchange.body))), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { [self] result in
            guard generation == self.generation else { return }
            switch result {
            case .success: requestWritten = true
            case .failure(let error):
                guard case .awaitingHead(let promise, _) = state else { return }
                fail(promise: promise, error)
            }
        }
    }

    /// Fails the exchange waiting for its head. A reset, a broken pipe or an end of stream all mean the same
    /// there: the connection closed before any answer (which the pool may retry on a new connection).
    private func fail(promise: EventLoopPromise<UpstreamResponse>, _ error: any Error) {
        if case .awaitingHead(_, let timer) = state { timer.cancel() }
        state = .closed
        promise.fail(error is IOError || error is ChannelError ? UpstreamConnectionError.closed : error)
        context?.close(promise: nil)
    }

    // MARK: - Receiving

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .awaitingHead(let promise, let timer) = state else { return protocolViolation(context: context) }
            // Informational answers (103 Early Hints) precede the real one.
            if (100..<200).contains(head.status.code) && head.status != .switchingProtocols { return }
            timer.cancel()
            let body = UpstreamBody.ConnectionStream.makeSequence(
                backPressureStrategy: .init(lowWatermark: 4, highWatermark: 32), finishOnDeinit: true,
                delegate: UpstreamBodyDemand(handler: NIOLoopBound(self, eventLoop: context.eventLoop), generation: generation))
            state = .streaming(body.source, keepAlive: head.isKeepAlive)
            armReadTimer(context: context)
            promise.succeed(UpstreamResponse(
                status: head.status, headers: head.headers,
                body: UpstreamBody(storage: .connection(body.sequence), endsAtDeadline: bodyDeadline != nil)))
        case .body(let part):
            guard case .streaming(let source, _) = state else { return protocolViolation(context: context) }
            lastRead = .now()
            switch source.yield(part) {
            case .produceMore: break
            case .stopProducing: readerWantsMore = false
            case .dropped: closeMidBody(context: context, nil)
            }
        case .end:
            guard case .streaming(let source, let keepAlive) = state else { return protocolViolation(context: context) }
            readTimer?.cancel()
            readTimer = nil
            // The connection is free before the reader hears that the body ended, so a request the reader sends
            // next finds it in the pool; and finishing the body may call `readerLeft` at once, which must see the
            // exchange already over.
            if keepAlive && requestWritten && context.channel.isActive {
                state = .idle
                readerWantsMore = true
                flushHeldBackRead(context: context)
                pool.release(UpstreamConnectionPool.Connection(channel: context.channel, handler: NIOLoopBound(self, eventLoop: context.eventLoop)))
            } else {
                state = .closed
                context.close(promise: nil)
            }
            source.finish()
        }
    }

    private func protocolViolation(context: ChannelHandlerContext) {
        closeMidBody(context: context, UpstreamConnectionError.protocolViolation)
    }

    /// Ends the exchange in flight, if any, with `error`, and closes the connection.
    private func closeMidBody(context: ChannelHandlerContext, _ error: (any Error)?) {
        let error = error ?? UpstreamConnectionError.closed
        switch state {
        case .awaitingHead(let promise, _): fail(promise: promise, error)
        case .streaming(let source, _):
            state = .closed
            readTimer?.cancel()
            source.finish(error)
            context.close(promise: nil)
        case .idle:
            state = .closed
            context.close(promise: nil)
        case .closed: break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closeMidBody(context: context, error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeMidBody(context: context, UpstreamConnectionError.closed)
        pool.closed()
        context.fireChannelInactive()
    }

    // MARK: - Back-pressure and the read timeout

    func read(context: ChannelHandlerContext) {
        if case .streaming = state, !readerWantsMore {
            readHeldBack = true
        } else {
            context.read()
        }
    }

    private func flushHeldBackRead(context: ChannelHandlerContext) {
        guard readHeldBack else { return }
        readHeldBack = false
        context.read()
    }

    /// The body's reader wants more (called through `UpstreamBodyDemand`).
    func readerDemands(generation: UInt64) {
        guard generation == self.generation, case .streaming = state, let context else { return }
        readerWantsMore = true
        lastRead = .now()
        flushHeldBackRead(context: context)
    }

    /// The body's reader stopped before the end: the rest of the body is never read, so the connection cannot be reused.
    func readerLeft(generation: UInt64) {
        guard generation == self.generation, case .streaming = state, let context else { return }
        closeMidBody(context: context, CancellationError())
    }

    /// Fails the body when nothing arrived for `readTimeout` while the reader was waiting for it, or when the body
    /// deadline passes. The timer is re-armed from the last read when it fires, instead of at every read.
    private func armReadTimer(context: ChannelHandlerContext) {
        lastRead = .now()
        scheduleReadTimer(at: lastRead + readTimeout, context: context)
    }

    private func scheduleReadTimer(at deadline: NIODeadline, context: ChannelHandlerContext) {
        let generation = self.generation
        readTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: min(deadline, bodyDeadline ?? deadline)) { [self] in
            readTimerFired(generation: generation)
        }
    }

    private func readTimerFired(generation: UInt64) {
        guard generation == self.generation, case .streaming = state, let context else { return }
        let due = lastRead + readTimeout
        if let bodyDeadline, bodyDeadline <= .now() {
            closeMidBody(context: context, UpstreamConnectionError.bodyTimeout)
        } else if !readerWantsMore {
            // A slow reader is not a silent provider; look again once it could have read.
            scheduleReadTimer(at: .now() + readTimeout, context: context)
        } else if due <= .now() {
            closeMidBody(context: context, UpstreamConnectionError.readTimeout)
        } else {
            scheduleReadTimer(at: due, context: context)
        }
    }
}

/// Tells a pooled connection's handler what the reader of a streamed body does, from whatever thread it runs on.
struct UpstreamBodyDemand: NIOAsyncSequenceProducerDelegate {
    let handler: NIOLoopBound<UpstreamExchangeHandler>
    let generation: UInt64

    func produceMore() {
        let (handler, generation) = (handler, generation)
        onLoop { handler.value.readerDemands(generation: generation) }
    }

    func didTerminate() {
        let (handler, generation) = (handler, generation)
        onLoop { handler.value.readerLeft(generation: generation) }
    }

    private func onLoop(_ action: @escaping @Sendable () -> Void) {
        if handler.eventLoop.inEventLoop { action() } else { handler.eventLoop.execute(action) }
    }
}
