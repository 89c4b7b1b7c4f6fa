import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import GatewayCore

/// `RedisClient` against real `redis-server` processes (see `RedisServerProcess`); nothing is mocked.
@Suite("Redis client", .timeLimit(.minutes(1)))
struct RedisClientTests {
    // MARK: - Commands

    @Test func setsWithExpiryAndGets() async throws {
        try await withClient { _, redis in
            try await redis.set("greeting", Array("hello".utf8), ttl: .seconds(20))
            #expect(try await redis.get("greeting") == Array("hello".utf8))
            let remaining = try #require(try await redis.send("PTTL", "greeting").integer)
            #expect((1...20_000).contains(remaining))
            #expect(try await redis.get("missing") == nil)
            try await redis.set("brief", Array("hello".utf8), ttl: .milliseconds(100))
            try await Task.sleep(for: .milliseconds(600))
            #expect(try await redis.get("brief") == nil)
        }
    }

    @Test func valuesAreBinarySafe() async throws {
        try await withClient { _, redis in
            let everyByte = (0...255).map(UInt8.init)
            try await redis.set("bytes", everyByte, ttl: .seconds(60))
            #expect(try await redis.get("bytes") == everyByte)
            // Several MiB arrive in many reads: the parser is fed partial replies.
            let large = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try await redis.set("large", large, ttl: .seconds(60))
            #expect(try await redis.get("large") == large)
            #expect(try await redis.send([Array("SET".utf8), Array("empty".utf8), []]) == .simple("OK"))
            #expect(try await redis.get("empty") == [])
            #expect(try await redis.send([Array("ECHO".utf8), Array("a\r\n$-1\r\n\0b".utf8)]) == .bulk(Array("a\r\n$-1\r\n\0b".utf8)))
        }
    }

    @Test func incrementsIntegers() async throws {
        try await withClient { _, redis in
            let first = try await redis.send("INCR", "counter")
            #expect(first == .integer(1))
            #expect(try await redis.send("INCR", "counter") == .integer(2))
            #expect(try await redis.send("INCRBY", "counter", "40") == .integer(42))
            #expect(try await redis.send("DECRBY", "counter", "50") == .integer(-8))
            #expect(try await redis.get("counter") == Array("-8".utf8))
        }
    }

    @Test func returnsArrays() async throws {
        try await withClient { _, redis in
            #expect(try await redis.send("RPUSH", "list", "a", "b", "c") == .integer(3))
            #expect(try await redis.send("LRANGE", "list", "0", "-1") == .array([.bulk([97]), .bulk([98]), .bulk([99])]))
            #expect(try await redis.send("LRANGE", "nothing", "0", "-1") == .array([]))
            #expect(try await redis.send("MSET", "x", "1", "z", "3") == .simple("OK"))
            #expect(try await redis.send("MGET", "x", "y", "z") == .array([.bulk(Array("1".utf8)), .null, .bulk(Array("3".utf8))]))
            let nested = try await redis.send("EVAL", "return {1, {'a', {2}}, 'b'}", "0")
            #expect(nested == .array([.integer(1), .array([.bulk([97]), .array([.integer(2)])]), .bulk([98])]))
        }
    }

    @Test func returnsErrorRepliesAsValues() async throws {
        try await withClient { _, redis in
            _ = try await redis.send("SET", "text", "abc")
            let notInteger = try await redis.send("INCR", "text")
            #expect(notInteger.errorMessage?.hasPrefix("ERR value is not an integer") == true)
            let unknown = try await redis.send("NOSUCHCOMMAND", "x")
            #expect(unknown.errorMessage?.contains("unknown command") == true)
            _ = try await redis.send("RPUSH", "list", "a")
            let error = await #expect(throws: RedisError.self) { try await redis.get("list") }
            #expect(error?.kind == .server)
            #expect(error?.message.contains("WRONGTYPE") == true)
            // The connection is still in step afterwards.
            #expect(try await redis.send("PING") == .simple("PONG"))
        }
    }

    @Test func pipelinesManyConcurrentCommandsOverASmallPool() async throws {
        try await withClient(poolSize: 2) { _, redis in
            let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let echo = try await redis.send("ECHO", "value-\(index)")
                        let increment = try await redis.send("INCR", "shared")
                        return echo == .bulk(Array("value-\(index)".utf8)) && increment.integer != nil ? 0 : 1
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(mismatches == 0)
            #expect(try await redis.get("shared") == Array("200".utf8))
            let clients = try #require(try await redis.send("CLIENT", "LIST").string)
            #expect(clients.split(separator: "\n").count <= 2)
        }
    }

    // MARK: - Configuration

    static let password = "s3cret-Pw"

    static let goodURLs: [(String, RedisConfiguration.Endpoint, Int, String?, String?)] = [
        ("redis://127.0.0.1", .tcp(host: "127.0.0.1", port: 6379), 0, nil, nil),
        ("redis://localhost:6380/2", .tcp(host: "localhost", port: 6380), 2, nil, nil),
        ("REDIS://cache.internal/", .tcp(host: "cache.internal", port: 6379), 0, nil, nil),
        ("redis://:\(password)@10.0.0.5/1", .tcp(host: "10.0.0.5", port: 6379), 1, nil, password),
        ("redis://alice:\(password)@10.0.0.5:7000/15", .tcp(host: "10.0.0.5", port: 7000), 15, "alice", password),
        ("redis://:p%40ss%2Fw%3Ard@h", .tcp(host: "h", port: 6379), 0, nil, "p@ss/w:rd"),
        ("redis://:p@ss@h:1/3", .tcp(host: "h", port: 1), 3, nil, "p@ss"),
        ("redis://[::1]:6390/4", .tcp(host: "::1", port: 6390), 4, nil, nil),
        ("unix:///run/redis/redis.sock", .unixSocket(path: "/run/redis/redis.sock"), 0, nil, nil),
        ("unix:///run/redis/redis.sock?db=3", .unixSocket(path: "/run/redis/redis.sock"), 3, nil, nil),
        ("unix://:\(password)@/run/redis.sock?db=1", .unixSocket(path: "/run/redis.sock"), 1, nil, password),
        ("unix://alice:\(password)@/run/redis.sock", .unixSocket(path: "/run/redis.sock"), 0, "alice", password),
        ("unix:///run/redis.sock?password=\(password)&db=2", .unixSocket(path: "/run/redis.sock"), 2, nil, password),
        ("unix:///run/redis.sock?username=alice&password=\(password)", .unixSocket(path: "/run/redis.sock"), 0, "alice", password),
    ]

    @Test(arguments: goodURLs)
    func parsesURL(url: String, endpoint: RedisConfiguration.Endpoint, database: Int, username: String?, password: String?) throws {
        let configuration = try RedisConfiguration(url: url)
        #expect(configuration.endpoint == endpoint)
        #expect(configuration.database == database)
        #expect(configuration.username == username)
        #expect(configuration.password == password)
        #expect((configuration.poolSize, configuration.connectTimeout, configuration.commandTimeout) == (8, .seconds(2), .seconds(1)))
        for shown in [configuration.description, String(reflecting: configuration), "\(configuration)", Self.dumped(configuration)] {
            #expect(!shown.contains(Self.password))
            #expect(!shown.contains("p@ss"))
        }
    }

    static let badURLs: [(String, String)] = [
        ("rediss://:\(password)@cache:6380/0", "TLS not supported"),
        ("http://:\(password)@cache", "unsupported Redis URL scheme"),
        ("cache:6379", "invalid Redis URL"),
        ("redis://:\(password)@", "no host"),
        ("redis://:\(password)@cache:port", "port"),
        ("redis://:\(password)@cache:70000", "port"),
        ("redis://:\(password)@cache/zero", "database"),
        ("redis://:\(password)@cache/-1", "database"),
        ("redis://\(password)@cache", "credentials"),
        ("redis://alice:@cache", "empty password"),
        ("redis://:\(password)%zz@cache", "percent-encoding"),
        ("redis://:\(password)@cache?db=1", "query"),
        ("redis://:\(password)@[::1:6379", "IPv6"),
        ("redis://:\(password)@ca che", "host"),
        ("unix://run/redis.sock?password=\(password)", "absolute"),
        ("unix://\(password)@/run/redis.sock", "credentials"),
        ("unix:///run/redis.sock?pass=\(password)", "unknown query parameter"),
        ("unix://:\(password)@/run/redis.sock?password=\(password)", "twice"),
        ("unix:///run/redis.sock?db=one&password=\(password)", "database"),
        ("unix:///run/redis.sock?username=alice", "without a password"),
        ("unix://?password=\(password)", "absolute"),
    ]

    @Test(arguments: badURLs)
    func rejectsURL(url: String, expected: String) {
        let error = #expect(throws: RedisError.self) { try RedisConfiguration(url: url) }
        #expect(error?.kind == .configuration)
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "no error")")
        #expect(error.map { !$0.description.contains(Self.password) && !"\($0)".contains(Self.password) } == true)
    }

    @Test func rejectsBadLimits() {
        for (poolSize, connect, command) in [(0, Duration.seconds(1), Duration.seconds(1)), (1, .zero, .seconds(1)), (1, .seconds(1), .milliseconds(-5))] {
            let error = #expect(throws: RedisError.self) {
                try RedisConfiguration(url: "redis://h", poolSize: poolSize, connectTimeout: connect, commandTimeout: command)
            }
            #expect(error?.kind == .configuration)
        }
    }

    // MARK: - Connections

    @Test func authenticatesAndSelectsTheDatabase() async throws {
        try await withRedisServer(password: Self.password) { server in
            try await withClient(server.url(database: 3)) { redis in
                try await redis.set("in-three", Array("yes".utf8), ttl: .seconds(60))
                #expect(try await redis.send("CLIENT", "INFO").string?.contains(" db=3 ") == true)
            }
            try await withClient(server.url(database: 0)) { redis in
                let value = try await redis.get("in-three")
                #expect(value == nil)
            }
            try await withClient("redis://default:\(Self.password)@127.0.0.1:\(server.port)/3") { redis in
                let value = try await redis.get("in-three")
                #expect(value == Array("yes".utf8))
            }
            let logs = LogRecorder()
            try await withClient("redis://:wrong-\(Self.password)@127.0.0.1:\(server.port)/3", logger: logs.logger) { redis in
                let error = await #expect(throws: RedisError.self) { try await redis.send("PING") }
                #expect(error?.kind == .connection)
                #expect(error?.message.contains("AUTH") == true)
                #expect(error.map { !$0.description.contains(Self.password) } == true)
            }
            #expect(!logs.text.contains(Self.password))
            try await withClient("redis://127.0.0.1:\(server.port)/0") { redis in
                let reply = try await redis.send("GET", "x")
                #expect(reply.errorMessage?.hasPrefix("NOAUTH") == true)
            }
        }
    }

    @Test func connectsOverAUnixSocket() async throws {
        try await withRedisServer(password: Self.password, unixSocket: true) { server in
            let path = try #require(server.unixSocketPath)
            try await withClient("unix://:\(Self.password)@\(path)?db=2") { redis in
                try await redis.set("over-unix", Array("1".utf8), ttl: .seconds(60))
                #expect(try await redis.send("CLIENT", "INFO").string?.contains("laddr=\(path)") == true)
            }
            for url in ["unix://\(path)?db=2&password=\(Self.password)", server.url(database: 2)] {
                try await withClient(url) { redis in
                    let value = try await redis.get("over-unix")
                    #expect(value == Array("1".utf8))
                }
            }
        }
    }

    // MARK: - Scripts

    @Test func evaluatesBySHAAndFallsBackToEvalOnNoScript() async throws {
        try await withClient { _, redis in
            let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
            #expect(try await redis.evaluate(script, keys: ["total"], arguments: ["5"]) == .integer(5))
            #expect(try await redis.send("SCRIPT", "EXISTS", script.sha1) == .array([.integer(1)]))
            #expect(try await redis.evaluate(script, keys: ["total"], arguments: ["5"]) == .integer(10))
            #expect(try await Self.calls("eval", redis) == 1)
            #expect(try await redis.send("SCRIPT", "FLUSH") == .simple("OK"))
            #expect(try await redis.evaluate(script, keys: ["total"], arguments: ["5"]) == .integer(15))
            #expect(try await Self.calls("eval", redis) == 2)
            #expect(try await Self.calls("evalsha", redis) == 3)
            #expect(try await redis.send("SCRIPT", "LOAD", script.source) == .bulk(Array(script.sha1.utf8)))
            let failing = try await redis.evaluate(RedisScript("return redis.error_reply('nope')"), keys: [], arguments: [])
            #expect(failing.errorMessage?.hasSuffix("nope") == true)
        }
    }

    // MARK: - Timeouts, outages, cancellation

    @Test func commandTimeoutFailsFastAndReplacesTheConnection() async throws {
        try await withClient(poolSize: 1, commandTimeout: .milliseconds(300)) { _, redis in
            // BLPOP blocks only this connection: the next command goes out at once on a new one.
            // A server just started on a busy machine may be slow to answer at first: warm up before measuring.
            var first = try? await redis.send("CLIENT", "ID")
            for _ in 0..<5 where first == nil { first = try? await redis.send("CLIENT", "ID") }
            var started = ContinuousClock.now
            let blocked = await #expect(throws: RedisError.self) { try await redis.send("BLPOP", "nothing", "2") }
            #expect(blocked?.kind == .timeout)
            #expect(ContinuousClock.now - started < .milliseconds(1500), "the 300 ms command timeout, not BLPOP's 2 s")
            let second = try await redis.send("CLIENT", "ID")
            #expect(second != first && second.integer != nil)

            // DEBUG SLEEP blocks the whole server: the command after it succeeds once the server is back.
            started = ContinuousClock.now
            let slept = await #expect(throws: RedisError.self) { try await redis.send("DEBUG", "SLEEP", "2") }
            #expect(slept?.kind == .timeout)
            #expect(ContinuousClock.now - started < .milliseconds(1500), "the 300 ms command timeout, not the 2 s sleep")
            try await Task.sleep(until: started + .milliseconds(2300), clock: .continuous)
            let third = try await redis.send("CLIENT", "ID")
            #expect(third != second && third.integer != nil)
            #expect(try await redis.send("PING") == .simple("PONG"))
        }
    }

    @Test func failsFastWhileRedisIsDownAndRecovers() async throws {
        let logs = LogRecorder()
        try await withRedisServer { server in
            try await withClient(server.url(), connectTimeout: .seconds(5), logger: logs.logger) { redis in
                #expect(try await redis.send("PING") == .simple("PONG"))
                await server.kill()
                // The first call finds the connection gone or is refused; the calls after it are refused by the pool.
                _ = try? await redis.send("PING")
                var messages: [String] = []
                for _ in 0..<10 {
                    let started = ContinuousClock.now
                    let error = await #expect(throws: RedisError.self) { try await redis.send("PING") }
                    #expect(error?.kind == .connection)
                    #expect(ContinuousClock.now - started < .milliseconds(2500), "fail fast, well under the 5 s connect timeout")
                    messages.append(error?.message ?? "")
                }
                // Answered by the pool during the backoff, without a connect attempt.
                #expect(messages.contains { $0.hasPrefix("Redis unavailable after") }, "\(messages)")

                try await server.restart()
                let restarted = ContinuousClock.now
                var reply: RedisValue?
                while reply == nil, ContinuousClock.now - restarted < .seconds(5) {
                    reply = try? await redis.send("PING")
                    if reply == nil { try await Task.sleep(for: .milliseconds(25)) }
                }
                #expect(reply == .simple("PONG"))
                #expect(ContinuousClock.now - restarted < RedisConnectionPool.maximumBackoff + .milliseconds(500))
                try await redis.set("after", [1], ttl: .seconds(5))
                #expect(try await redis.get("after") == [1])
            }
        }
        #expect(logs.messages.filter { $0 == "error: Redis unavailable" }.count == 1)
        #expect(logs.messages.contains("info: Redis reachable again"))
    }

    @Test func connectTimeoutBoundsAConnectThatHangs() async throws {
        // A listener that never accepts, its backlog full: the kernel drops further SYNs, so a connect hangs.
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 0)
            .serverChannelOption(.autoRead, value: false)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(listener.localAddress?.port)
        let filler = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        let logs = LogRecorder()
        try await withClient("redis://:\(Self.password)@127.0.0.1:\(port)/0", connectTimeout: .milliseconds(1500), logger: logs.logger) { redis in
            let started = ContinuousClock.now
            let error = await #expect(throws: RedisError.self) { try await redis.send("PING") }
            #expect(error?.kind == .timeout)
            #expect(error?.message.contains("connect_timeout") == true)
            #expect(ContinuousClock.now - started < .milliseconds(3000))
            // The next call fails too (at once within the backoff, or after another bounded attempt).
            let again = await #expect(throws: RedisError.self) { try await redis.send("PING") }
            #expect(again?.kind == .connection || again?.kind == .timeout)
        }
        #expect(!logs.text.contains(Self.password))
        try? await filler.close()
        try? await listener.close()
    }

    @Test func cancelledCallerIsAnsweredAtOnceAndRepliesStayInOrder() async throws {
        try await withClient(poolSize: 1, commandTimeout: .seconds(5)) { _, redis in
            let blocked = Task { try await redis.send("BLPOP", "nothing", "1") }
            try await Task.sleep(for: .milliseconds(150))
            let cancelled = ContinuousClock.now
            blocked.cancel()
            let result = await blocked.result
            #expect(ContinuousClock.now - cancelled < .milliseconds(700), "at once, not when BLPOP's 1 s ends")
            #expect((result.failure as? RedisError)?.kind == .cancelled)
            // The BLPOP's own reply (a null) arrives later and must not be taken for this one.
            #expect(try await redis.send("ECHO", "mine") == .bulk(Array("mine".utf8)))

            let early = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await redis.send("PING")
            }
            #expect((await early.result.failure as? RedisError)?.kind == .cancelled)
        }
    }

    @Test func refusesCallsAfterShutdown() async throws {
        try await withRedisServer { server in
            let redis = RedisClient(configuration: try RedisConfiguration(url: server.url()), logger: LogRecorder().logger)
            #expect(try await redis.send("PING") == .simple("PONG"))
            await redis.shutdown()
            let error = await #expect(throws: RedisError.self) { try await redis.send("PING") }
            #expect(error?.kind == .connection)
            #expect(error?.message.contains("shut down") == true)
        }
    }

    // MARK: - Helpers

    /// Runs `body` with a fresh server and a client on it.
    private func withClient(
        poolSize: Int = 8, commandTimeout: Duration = .seconds(2), _ body: (RedisServerProcess, RedisClient) async throws -> Void
    ) async throws {
        try await withRedisServer { server in
            try await withClient(server.url(), poolSize: poolSize, commandTimeout: commandTimeout) { redis in
                try await body(server, redis)
            }
        }
    }

    /// Runs `body` with a client on `url`, shutting it down afterwards.
    private func withClient(
        _ url: String, poolSize: Int = 8, connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(2),
        logger: Logger = LogRecorder().logger, _ body: (RedisClient) async throws -> Void
    ) async throws {
        let configuration = try RedisConfiguration(url: url, poolSize: poolSize, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
        let redis = RedisClient(configuration: configuration, logger: logger)
        do {
            try await body(redis)
        } catch {
            await redis.shutdown()
            throw error
        }
        await redis.shutdown()
    }

    /// How often `command` ran, from `INFO commandstats`.
    private static func calls(_ command: String, _ redis: RedisClient) async throws -> Int? {
        let info = try #require(try await redis.send("INFO", "commandstats").string)
        let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cmdstat_\(command):") }
        return line?.split(separator: ",").first?.split(separator: "=").last.flatMap { Int($0) }
    }

    private static func dumped(_ value: some Any) -> String {
        var text = ""
        dump(value, to: &text)
        return text
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { error } else { nil }
    }
}

/// Keeps what is logged, to check what operators would see.
final class LogRecorder: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])

    /// A logger at debug level writing here.
    var logger: Logger {
        var logger = Logger(label: "redis-test") { _ in Handler(recorder: self) }
        logger.logLevel = .debug
        return logger
    }

    /// `level: message` for each entry.
    var messages: [String] { lines.withLockedValue { $0.map { $0.components(separatedBy: " | ")[0] } } }

    /// Everything, metadata included.
    var text: String { lines.withLockedValue { $0.joined(separator: "\n") } }

    private struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let line = "\(event.level): \(event.message) | \(all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
            recorder.lines.withLockedValue { $0.append(line) }
        }
    }
}
