import NIOCore

/// A command on its way to Redis with the promise its reply completes.
struct RedisCommand: Sendable {
    var arguments: [[UInt8]]
    var reply: EventLoopPromise<RedisValue>
}

/// Writes commands as RESP and completes their promises with the replies, in the order they were written
/// (Redis answers in order), so any number of commands can be pipelined on one connection.
///
/// A command without a reply after `commandTimeout` fails with `.timeout`, and so does every command behind it;
/// the channel is then closed, since the order of replies can no longer be trusted. Once the channel fails or
/// closes, every waiting command fails, and later ones fail with `RedisError.notSent`.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisCommand
    typealias OutboundOut = ByteBuffer

    private struct Waiting {
        var reply: EventLoopPromise<RedisValue>
        var timeout: Scheduled<Void>?
    }

    private let parser = RESPParser()
    private let commandTimeout: Duration
    private var waiting = CircularBuffer<Waiting>()
    /// Set once the connection is unusable: later commands fail with it.
    private var failure: RedisError?

    init(commandTimeout: Duration) {
        self.commandTimeout = commandTimeout
    }

    // MARK: - Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let command = unwrapOutboundIn(data)
        if failure != nil {
            command.reply.fail(RedisError.notSent)
            promise?.fail(RedisError.notSent)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        do throws(RedisError) {
            try RESPFormatter.write(command.arguments, into: &buffer)
        } catch {
            command.reply.fail(error)
            promise?.fail(error)
            return
        }
        let timeout = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(commandTimeout)) { [commandTimeout] in
            self.fail(RedisError(.timeout, "no reply within \(commandTimeout.redisMilliseconds) ms (command_timeout)"), context: context)
        }
        waiting.append(Waiting(reply: command.reply, timeout: timeout))
        // A failed write may have sent part of the command: the connection is done for. Failing the replies here,
        // before the caller's write promise, keeps such a command from being taken as never sent.
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenFailure { error in
            self.fail(RedisError(.connection, "cannot write to Redis: \(error)"), context: context)
        }
        if let promise { written.futureResult.cascade(to: promise) }
        context.write(wrapOutboundOut(buffer), promise: written)
    }

    // MARK: - Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard failure == nil else { return }
        do throws(RedisError) {
            try parser.feed(unwrapInboundIn(data))
            while let value = try parser.next() {
                guard let head = waiting.popFirst() else {
                    throw RedisError(.protocol, "Redis sent a reply nobody asked for (SUBSCRIBE and MONITOR are not supported)")
                }
                head.timeout?.cancel()
                head.reply.succeed(value)
            }
        } catch {
            fail(error, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(failure ?? RedisError(.connection, "connection to Redis closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(RedisError(.connection, "connection to Redis failed: \(error)"), context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(failure ?? RedisError(.connection, "connection to Redis closed"))
    }

    // MARK: - Failure

    /// Closes the channel and fails every waiting command with `error`.
    private func fail(_ error: RedisError, context: ChannelHandlerContext) {
        guard failure == nil else { return }
        failure = error
        // Closed first, so the callers woken below no longer see this connection as usable.
        context.close(promise: nil)
        failAll(error)
    }

    private func failAll(_ error: RedisError) {
        failure = failure ?? error
        while let entry = waiting.popFirst() {
            entry.timeout?.cancel()
            entry.reply.fail(error)
        }
    }
}

extension Duration {
    /// Whole milliseconds, rounded up (at least 1 for any positive duration): `PX` arguments and messages.
    var redisMilliseconds: Int64 {
        components.attoseconds % 1_000_000_000_000_000 > 0 ? wholeMilliseconds + 1 : wholeMilliseconds
    }
}
