import Atomics
import Logging
import NIOCore
import NIOPosix

/// One connection to Redis: a NIO channel with a `RedisChannelHandler`, authenticated and on its database.
///
/// Commands from any number of tasks are pipelined; replies reach their callers in order.
final class RedisConnection: Sendable {
    /// Tells connections apart in logs.
    let number: Int
    private let channel: any Channel
    private let inFlightCount = ManagedAtomic(0)

    private init(number: Int, channel: any Channel) {
        self.number = number
        self.channel = channel
    }

    /// Commands sent whose callers still wait (a hint for spreading load).
    var inFlight: Int { inFlightCount.load(ordering: .relaxed) }

    /// Whether the channel is still open.
    var isActive: Bool { channel.isActive }

    /// Completes when the connection is closed, for whatever reason.
    var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Connects, then sends `AUTH` and `SELECT` as the configuration asks.
    /// - Throws: `RedisError` (`.connection`, or `.timeout` when `connectTimeout` passes).
    static func connect(
        number: Int, configuration: RedisConfiguration, group: any EventLoopGroup
    ) async throws(RedisError) -> RedisConnection {
        let commandTimeout = configuration.commandTimeout
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RedisChannelHandler(commandTimeout: commandTimeout))
                }
            }
        let channel: any Channel
        do {
            switch configuration.endpoint {
            case .tcp(let host, let port): channel = try await bootstrap.connect(host: host, port: port).get()
            case .unixSocket(let path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            throw RedisError(connecting: error, configuration: configuration)
        }
        let connection = RedisConnection(number: number, channel: channel)
        do {
            try await connection.handshake(configuration)
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    private func handshake(_ configuration: RedisConfiguration) async throws(RedisError) {
        if let password = configuration.password {
            let arguments = [Array("AUTH".utf8)] + (configuration.username.map { [Array($0.utf8)] } ?? []) + [Array(password.utf8)]
            if case .error(let message) = try await send(arguments) {
                throw RedisError(.connection, "Redis refused AUTH at \(configuration.redactedTarget): \(message)")
            }
        }
        if configuration.database != 0 {
            if case .error(let message) = try await send([Array("SELECT".utf8), Array(String(configuration.database).utf8)]) {
                throw RedisError(.connection, "Redis refused SELECT \(configuration.database) at \(configuration.redactedTarget): \(message)")
            }
        }
    }

    /// Sends one command and waits for its reply (an error reply is a value).
    ///
    /// A cancelled caller is answered at once with `.cancelled`; its command keeps its place in the reply order,
    /// so its reply, when it comes, is dropped and later commands still get their own (or the command timeout
    /// closes the connection).
    func send(_ arguments: [[UInt8]]) async throws(RedisError) -> RedisValue {
        let reply = channel.eventLoop.makePromise(of: RedisValue.self)
        inFlightCount.wrappingIncrement(ordering: .relaxed)
        reply.futureResult.whenComplete { [inFlightCount] _ in inFlightCount.wrappingDecrement(ordering: .relaxed) }
        channel.writeAndFlush(RedisCommand(arguments: arguments, reply: reply)).whenFailure { error in
            // Refused by the handler (`notSent`), or written to a channel already torn down, which the handler
            // never saw. A write the handler took and lost has failed `reply` already, so this is then ignored.
            switch error {
            case let error as RedisError: reply.fail(error)
            case ChannelError.ioOnClosedChannel: reply.fail(RedisError.notSent)
            default: reply.fail(RedisError(.connection, "cannot write to Redis: \(error)"))
            }
        }
        do {
            return try await withTaskCancellationHandler {
                try await reply.futureResult.get()
            } onCancel: {
                reply.fail(RedisError.cancelled)  // a later reply to a completed promise is ignored
            }
        } catch {
            throw error as? RedisError ?? RedisError(.connection, "\(error)")
        }
    }

    /// Closes the channel; waiting commands fail with `.connection`.
    func close() {
        channel.close(promise: nil)
    }
}

extension RedisError {
    /// Describes a failed connect without naming credentials.
    init(connecting error: any Error, configuration: RedisConfiguration) {
        if case ChannelError.connectTimeout = error {
            self.init(.timeout, "no connection to Redis at \(configuration.redactedTarget) within \(configuration.connectTimeout.redisMilliseconds) ms (connect_timeout)")
        } else {
            self.init(.connection, "cannot connect to Redis at \(configuration.redactedTarget): \(error)")
        }
    }
}
