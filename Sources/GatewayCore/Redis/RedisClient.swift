import Logging
import NIOCore
import NIOPosix

/// A Redis client for the cache and the rate limiter: a bounded pool of pipelined connections on SwiftNIO,
/// with hiredis formatting commands and parsing replies.
///
/// Create one at start and `shutdown()` it at stop. Every call is bounded: by `connectTimeout` while a connection
/// opens, then by `commandTimeout` while the reply is awaited. While Redis is down, calls fail fast with a
/// `.connection` error; connect attempts back off from 100 ms, doubling up to 2 s, and the first call after the
/// backoff tries again.
///
/// ```swift
/// let redis = RedisClient(configuration: try RedisConfiguration(url: "redis://127.0.0.1:6379/0"), logger: logger)
/// try await redis.set("greeting", Array("hello".utf8), ttl: .seconds(60))
/// let bytes = try await redis.get("greeting")
/// await redis.shutdown()
/// ```
///
/// Commands that change how a connection answers (`SUBSCRIBE`, `MONITOR`, `CLIENT REPLY`, `QUIT`, `SELECT`)
/// must not be sent: connections are shared.
public final class RedisClient: Sendable {
    /// The configuration the client was made with.
    public let configuration: RedisConfiguration
    private let pool: RedisConnectionPool

    /// Makes a client; no connection is opened until the first call.
    /// - Parameters:
    ///   - configuration: where Redis is, the pool size and the timeouts.
    ///   - logger: receives connection failures (once per outage) and recoveries.
    public init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.pool = RedisConnectionPool(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
    }

    /// Sends one command and returns its reply; an error reply is returned as `.error`, not thrown.
    ///
    /// ```swift
    /// let reply = try await redis.send([Array("GET".utf8), Array("key".utf8)])
    /// ```
    /// - Parameter arguments: the command name and its arguments, binary-safe.
    /// - Throws: `RedisError` of kind `.connection`, `.timeout`, `.protocol` or `.cancelled`.
    public func send(_ arguments: [[UInt8]]) async throws(RedisError) -> RedisValue {
        guard !Task.isCancelled else { throw RedisError.cancelled }
        do {
            return try await pool.lease().send(arguments)
        } catch where error.wasNotSent {
            // The connection closed between lease and write (e.g. a command timeout on it): one more try.
            return try await pool.lease().send(arguments)
        }
    }

    /// Sends one command given as UTF-8 strings; an error reply is returned as `.error`, not thrown.
    ///
    /// ```swift
    /// let count = try await redis.send("INCR", "visits")   // .integer(1)
    /// ```
    public func send(_ arguments: String...) async throws(RedisError) -> RedisValue {
        try await send(arguments.map { Array($0.utf8) })
    }

    /// `GET key`: the value, or nil when the key does not exist.
    /// - Throws: `.server` for an error reply (e.g. `WRONGTYPE`), besides the errors of `send`.
    public func get(_ key: String) async throws(RedisError) -> [UInt8]? {
        switch try await send([Array("GET".utf8), Array(key.utf8)]) {
        case .bulk(let bytes): return bytes
        case .null: return nil
        case let reply: throw Self.unexpected(reply, to: "GET")
        }
    }

    /// `SET key value PX milliseconds`: stores `value` for `ttl` (rounded up to whole milliseconds).
    /// - Throws: `.configuration` for a `ttl` that is not positive, `.server` for an error reply, besides the errors of `send`.
    public func set(_ key: String, _ value: [UInt8], ttl: Duration) async throws(RedisError) {
        guard ttl > .zero else { throw RedisError(.configuration, "SET needs a ttl of more than zero") }
        let reply = try await send([Array("SET".utf8), Array(key.utf8), value, Array("PX".utf8), Array(String(ttl.redisMilliseconds).utf8)])
        guard reply == .simple("OK") else { throw Self.unexpected(reply, to: "SET") }
    }

    /// Runs `script` with `EVALSHA`, sending the source with `EVAL` when Redis does not know it yet (`NOSCRIPT`,
    /// e.g. after a restart or `SCRIPT FLUSH`); Redis then caches it for the next `EVALSHA`.
    ///
    /// An error raised by the script is returned as `.error`, like `send` does.
    /// - Parameters:
    ///   - script: the script.
    ///   - keys: the keys it touches (`KEYS`).
    ///   - arguments: its other arguments (`ARGV`).
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [String]) async throws(RedisError) -> RedisValue {
        let tail = [Array(String(keys.count).utf8)] + keys.map { Array($0.utf8) } + arguments.map { Array($0.utf8) }
        let reply = try await send([Array("EVALSHA".utf8), Array(script.sha1.utf8)] + tail)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            return try await send([Array("EVAL".utf8), Array(script.source.utf8)] + tail)
        }
        return reply
    }

    /// Closes every connection; later calls fail with `.connection`. Waits until the connections are closed.
    public func shutdown() async {
        await pool.shutdown()
    }

    private static func unexpected(_ reply: RedisValue, to command: String) -> RedisError {
        if case .error(let message) = reply { return RedisError(.server, "\(command): \(message)") }
        return RedisError(.protocol, "unexpected reply to \(command): \(reply)")
    }
}
