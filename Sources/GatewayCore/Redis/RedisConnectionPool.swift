import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Up to `poolSize` shared connections to Redis, opened on demand, with commands pipelined over them.
///
/// - A call uses the ready connection with the fewest commands in flight. When that one is busy and the pool is
///   not full, another connection is opened in the background for the calls to come.
/// - Closed connections (Redis gone, command timeout, server-side idle timeout) leave the pool; the next call opens
///   a new one.
/// - After a failed connect the pool backs off: 100 ms, doubling up to 2 s (less up to 25 % jitter). While no
///   connection is ready and the backoff runs, or a retry is under way, calls fail at once with `.connection`;
///   once it has passed, the next call tries to connect again. One successful connect ends the backoff.
final class RedisConnectionPool: Sendable {
    static let firstBackoff: Duration = .milliseconds(100)
    static let maximumBackoff: Duration = .seconds(2)

    private struct State {
        var ready: [RedisConnection] = []
        var connecting: [Int: EventLoopFuture<RedisConnection>] = [:]
        var nextNumber = 1
        var nextWaiter = 0
        var consecutiveFailures = 0
        var retryAt: ContinuousClock.Instant = .now
        var lastFailure: RedisError?
        var isShutDown = false
    }

    private enum Lease {
        case use(RedisConnection)
        case wait(EventLoopFuture<RedisConnection>)
        case fail(RedisError)
    }

    private let configuration: RedisConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(configuration: RedisConfiguration, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
    }

    deinit {
        for connection in state.withLockedValue({ $0.ready }) { connection.close() }
    }

    /// A connection to send one command on.
    func lease() async throws(RedisError) -> RedisConnection {
        let lease = state.withLockedValue { state -> Lease in
            if state.isShutDown { return .fail(RedisError(.connection, "the Redis client is shut down")) }
            let now = ContinuousClock.now
            state.ready.removeAll { !$0.isActive }
            let mayConnect =
                state.ready.count + state.connecting.count < configuration.poolSize
                && (state.consecutiveFailures == 0 || (state.connecting.isEmpty && now >= state.retryAt))
            if let best = state.ready.min(by: { $0.inFlight < $1.inFlight }) {
                if best.inFlight > 0 && mayConnect { _ = startConnect(&state) }
                return .use(best)
            }
            if mayConnect { return .wait(startConnect(&state)) }
            if state.consecutiveFailures == 0, !state.connecting.isEmpty {
                // A full pool still connecting: share its connections round-robin.
                let futures = state.connecting.sorted { $0.key < $1.key }.map(\.value)
                state.nextWaiter &+= 1
                return .wait(futures[state.nextWaiter % futures.count])
            }
            return .fail(unavailable(state, now: now))
        }
        switch lease {
        case .use(let connection): return connection
        case .fail(let error): throw error
        case .wait(let future): return try await Self.wait(for: future)
        }
    }

    /// Closes every connection and refuses further calls; waits until the connections are closed.
    func shutdown() async {
        let (ready, connecting) = state.withLockedValue { state in
            state.isShutDown = true
            defer { state.ready = [] }
            return (state.ready, Array(state.connecting.values))
        }
        for connection in ready { connection.close() }
        for connection in ready { try? await connection.closeFuture.get() }
        for future in connecting { _ = try? await future.get() }
    }

    // MARK: - Connecting

    /// Starts a connect whose result the returned future gives; the pool keeps the connection when it succeeds.
    private func startConnect(_ state: inout State) -> EventLoopFuture<RedisConnection> {
        let number = state.nextNumber
        state.nextNumber += 1
        let promise = group.next().makePromise(of: RedisConnection.self)
        state.connecting[number] = promise.futureResult
        Task(executorPreference: TaskPlacement.preferredExecutor) { await self.connect(number: number, promise: promise) }
        return promise.futureResult
    }

    private func connect(number: Int, promise: EventLoopPromise<RedisConnection>) async {
        let connection: RedisConnection
        do {
            connection = try await RedisConnection.connect(number: number, configuration: configuration, group: group)
        } catch {
            recordFailure(error, number: number)
            promise.fail(error)
            return
        }
        let (accepted, recoveredAfter) = state.withLockedValue { state -> (Bool, Int) in
            state.connecting[number] = nil
            guard !state.isShutDown else { return (false, 0) }
            state.ready.append(connection)
            defer { (state.consecutiveFailures, state.lastFailure) = (0, nil) }
            return (true, state.consecutiveFailures)
        }
        guard accepted else {
            connection.close()
            try? await connection.closeFuture.get()
            promise.fail(RedisError(.connection, "the Redis client is shut down"))
            return
        }
        if recoveredAfter > 0 {
            logger.info("Redis reachable again", metadata: ["redis": "\(configuration.redactedTarget)", "failed_connects": "\(recoveredAfter)"])
        }
        logger.debug("Redis connection opened", metadata: ["redis": "\(configuration.redactedTarget)", "connection": "\(number)"])
        connection.closeFuture.whenComplete { [weak self] _ in self?.closed(connection) }
        promise.succeed(connection)
    }

    private func recordFailure(_ error: RedisError, number: Int) {
        let failures = state.withLockedValue { state in
            state.connecting[number] = nil
            state.consecutiveFailures += 1
            state.lastFailure = error
            state.retryAt = .now + Self.backoff(afterFailures: state.consecutiveFailures)
            return state.consecutiveFailures
        }
        // Once per outage at error level; the retries at debug.
        logger.log(
            level: failures == 1 ? .error : .debug, "Redis unavailable",
            metadata: ["redis": "\(configuration.redactedTarget)", "error": "\(error.message)", "failed_connects": "\(failures)"])
    }

    private func closed(_ connection: RedisConnection) {
        let wasReady = state.withLockedValue { state in
            let count = state.ready.count
            state.ready.removeAll { $0 === connection }
            return state.ready.count < count
        }
        if wasReady {
            logger.debug("Redis connection closed", metadata: ["redis": "\(configuration.redactedTarget)", "connection": "\(connection.number)"])
        }
    }

    /// The wait before connect attempt `failures + 1`: 100 ms × 2^(failures − 1), at most 2 s, less up to 25 % jitter.
    static func backoff(afterFailures failures: Int) -> Duration {
        let full = min(firstBackoff * (1 << min(failures - 1, 20)), maximumBackoff)
        return full * Double.random(in: 0.75...1)
    }

    private func unavailable(_ state: State, now: ContinuousClock.Instant) -> RedisError {
        let last = state.lastFailure?.message ?? "connect failed"
        let retry =
            state.connecting.isEmpty
            ? "next attempt in \(max(state.retryAt - now, .zero).redisMilliseconds) ms" : "a reconnect is under way"
        return RedisError(.connection, "Redis unavailable after \(state.consecutiveFailures) failed connect(s), \(retry); last error: \(last)")
    }

    // MARK: - Waiting

    /// Waits for a connect in flight; a cancelled caller stops waiting at once (the connect goes on for the pool).
    private static func wait(for future: EventLoopFuture<RedisConnection>) async throws(RedisError) -> RedisConnection {
        let waiter = future.eventLoop.makePromise(of: RedisConnection.self)
        future.cascade(to: waiter)
        do {
            return try await withTaskCancellationHandler {
                try await waiter.futureResult.get()
            } onCancel: {
                waiter.fail(RedisError.cancelled)
            }
        } catch {
            throw error as? RedisError ?? RedisError(.connection, "\(error)")
        }
    }
}
