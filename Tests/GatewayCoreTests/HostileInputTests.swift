import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import AsyncHTTPClient
import Testing
@testable import GatewayCore

/// Upstreams and clients that send what no honest one would: the gateway answers, never traps, and keeps its
/// numbers sane (issue 20).
@Suite("Hostile upstreams and clients", .timeLimit(.minutes(2)))
struct HostileInputTests {
    static let hello: JSON = [["role": "user", "content": "hi"]]

    /// A provider on `server`, named `hostile`, behind a priced model `hostile-model`.
    static func hostile(_ config: inout GatewayConfig, port: Int, retries: Int = 0) {
        FailoverTests.copyProvider(&config, from: "openai", as: "hostile") { provider in
            provider.baseURL = "http://127.0.0.1:\(port)/v1"
            provider.retries = retries
        }
        config.models["hostile-model"] = ModelConfig(
            name: "hostile-model", provider: "hostile", upstream: "gpt-4o-mini", fallbacks: [], price: Price(input: 1, output: 2))
    }

    @Test(arguments: ["1e16", "1e19", "1e300", "9223372036854775807"])
    func aHugeRetryAfterIsClampedNotATrap(value: String) async throws {
        #expect(AttemptFailure.retryAfter(seconds: value, milliseconds: nil) == AttemptFailure.longestRetryAfter)
        #expect(AttemptFailure.retryAfter(seconds: nil, milliseconds: value) == AttemptFailure.longestRetryAfter)
        let server = try await ScriptedHTTPServer { _, _ in
            .parts(["HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: \(value)\r\nretry-after-ms: \(value)\r\ncontent-length: 2\r\n\r\n{}"])
        }
        let port = server.port
        try await GatewayHarness.with(configure: { Self.hostile(&$0, port: port, retries: 1) }) { gateway in
            let reply = try await gateway.post(json: ["model": "hostile-model", "messages": Self.hello])
            #expect(reply.status == 429, "\(reply.body)")
            // The gateway is still there for the next request.
            let next = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello])
            #expect(next.status == 200)
        }
        await server.close()
    }

    static let absurdUsages = [
        #"{"prompt_tokens": 9223372036854775807, "completion_tokens": 9223372036854775807, "total_tokens": 1}"#,
        #"{"prompt_tokens": 2e17, "completion_tokens": 1e300, "prompt_tokens_details": {"cached_tokens": -5}}"#,
        #"{"prompt_tokens": -9223372036854775808, "completion_tokens": -1, "prompt_tokens_details": {"cached_tokens": 9223372036854775807}}"#,
    ]

    @Test(arguments: absurdUsages)
    func absurdTokenCountsAreClampedAndPricedWithoutOverflow(usage: String) async throws {
        let body = #"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":"# + usage + "}"
        let server = try await ScriptedHTTPServer { _, _ in .parts([ScriptedHTTPServer.ok(body)]) }
        let port = server.port
        try await GatewayHarness.with(configure: { config in
            Self.hostile(&config, port: port)
            config.keys[0].rateLimit = RateLimit(tokensPerMinute: 1_000_000)
        }) { gateway in
            let reply = try await gateway.post(json: ["model": "hostile-model", "messages": Self.hello])
            #expect(reply.status == 200, "\(reply.body)")
            let cost = try #require(reply.json?["cost_usd"]?.doubleValue)
            #expect(cost.isFinite && cost >= 0 && cost <= 3 * Double(Usage.maximumTokens) / 1_000_000)
            #expect(reply.header("X-Cost-USD").flatMap(Double.init) == cost)
            // The rate limiter settled the clamped usage without trapping: the key's minute is spent, or not.
            let next = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello])
            #expect(next.status == 200 || next.status == 429)
            let rows = try await gateway.records.waitFor(2)
            for row in rows where row.model == "hostile-model" {
                #expect((row.promptTokens ?? 0) >= 0 && (row.promptTokens ?? 0) <= Usage.maximumTokens)
                #expect((row.completionTokens ?? 0) >= 0 && (row.completionTokens ?? 0) <= Usage.maximumTokens)
                #expect((row.cachedTokens ?? 0) >= 0 && (row.cachedTokens ?? 0) <= Usage.maximumTokens)
            }
        }
        await server.close()
    }

    @Test(arguments: [
        ("9223372036854775807", 1 << 40), ("2e17", 1 << 40), ("1e300", 1 << 40), ("-5", 0), ("-1e300", 0), ("4.5", 4), ("12", 12), ("\"7\"", 0),
    ] as [(String, Int)])
    func tokenCountsOfAnySizeReadWithinBounds(text: String, expected: Int) throws {
        #expect(Usage.count(try JSON.parse(Array(text.utf8)[...])) == expected)
    }

    @Test func anthropicAndGeminiUsageAreClampedToo() throws {
        var anthropic = AnthropicResponse.TokenCounts()
        anthropic.read(["input_tokens": .int(.max), "cache_read_input_tokens": .int(.max), "cache_creation_input_tokens": .double(1e300), "output_tokens": -3])
        let usage = try #require(anthropic.usage)
        #expect(usage.promptTokens == Usage.maximumTokens && usage.completionTokens == 0)
        let gemini = try #require(GeminiResponse.usage(from: ["promptTokenCount": .int(.max), "candidatesTokenCount": .int(.max), "thoughtsTokenCount": .int(.max)]))
        #expect(gemini.promptTokens == Usage.maximumTokens && gemini.completionTokens == Usage.maximumTokens)
        #expect(gemini.cost(at: Price(input: 1000, output: 1000)).isFinite)
    }

    @Test(arguments: [(-0.5, "-0.500000"), (.nan, "0.000000"), (.infinity, "1000000000000.000000"), (-Double.infinity, "-1000000000000.000000"), (1e300, "1000000000000.000000"), (0.0000005, "0.000001")] as [(Double, String)])
    func costFormattingIsTotal(amount: Double, text: String) {
        #expect(CostFormat.usd(amount) == text)
    }

    @Test func durationsBeyondATimerAreRefused() {
        #expect(throws: UnitParseError.self) { try Units.parseDuration("9223372036854775807ms") }
        #expect(throws: UnitParseError.self) { try Units.parseDuration("100001h") }
        #expect((try? Units.parseDuration("100000h")) == .seconds(360_000_000))
    }
}

extension HostileInputTests {
    @Test func requestsTheCacheMustNotAnswerAreNeitherLookedUpNorStored() async throws {
        try await GatewayHarness.with(configure: { $0.cache.backend = .memory }) { gateway in
            let stored: JSON = ["model": "gpt-4o-mini", "store": true, "messages": Self.hello]
            let first = try await gateway.post(json: stored)
            let second = try await gateway.post(json: stored)
            #expect(first.status == 200 && second.status == 200)
            #expect(first.header("X-Cache-Hit") == "bypass" && second.header("X-Cache-Hit") == "bypass")
            #expect(gateway.openai.requests.count == 2)
        }
        var config = GatewayConfig()
        config.cache.backend = .memory
        let cache = AnswerCache(stores: try Stores(config: config, logger: .init(label: "t")))
        let plain = try ChatRequest(parsing: Array(#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#.utf8)[...])
        #expect(cache.query(for: plain, key: KeyConfig(name: "k", sha256: ""), snapshot: ConfigSnapshot(config: config), cacheControl: nil).policy.isActive)
        for body in [
            #"{"model":"m","modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"},"messages":[{"role":"user","content":"hi"}]}"#,
            #"{"model":"m","audio":{"voice":"alloy","format":"wav"},"messages":[{"role":"user","content":"hi"}]}"#,
        ] {
            let request = try ChatRequest(parsing: Array(body.utf8)[...])
            let query = cache.query(for: request, key: KeyConfig(name: "k", sha256: ""), snapshot: ConfigSnapshot(config: config), cacheControl: nil)
            #expect(!query.policy.isActive)
        }
    }
}

extension HostileInputTests {
    @Test(arguments: [
        ("postgres://gw:pa/ss@db/x", "postgres://gw:[redacted]@db/x", "pa/ss"),
        ("postgres://gw:p@s/s:w@db:5432/x?sslmode=require", "postgres://gw:[redacted]@db:5432/x?[redacted]", "p@s/s:w"),
        ("redis://:se/cr@et@cache:6379/1", "redis://:[redacted]@cache:6379/1", "se/cr@et"),
        ("redis://cache:6379/0", "redis://cache:6379/0", "nothing"),
    ])
    func passwordsWithSlashesAreRedactedAsTheParsersReadThem(url: String, shown: String, secret: String) throws {
        #expect(EffectiveConfig.redactingCredentials(url) == shown)
        #expect(!EffectiveConfig.redactingCredentials(url).contains(secret))
    }

    @Test func theParsersFindThePasswordWhereTheRedactionHidesIt() throws {
        let postgres = try PostgresURL(parsing: "postgres://gw:pa/ss@db/x").configuration
        #expect(postgres.password == "pa/ss" && postgres.username == "gw" && postgres.database == "x")
        let redis = try RedisURL(parsing: "redis://:se/cr@et@cache:6379/1")
        #expect(redis.password == "se/cr@et" && redis.database == 1)
    }

    @Test func aMistypedURLIsNeverEchoedWithItsPassword() {
        let result = ConfigLoader.parse(
            yaml: """
                postgres: {url: "postgress://gw:pa/ss@db/x"}
                redis: {url: "http://user:hunter2/x@cache"}
                """, file: "gateway.yaml", environment: [:])
        let text = result.problems.map(\.description).joined(separator: "\n")
        #expect(text.contains("invalid URL"))
        #expect(!text.contains("pa/ss") && !text.contains("hunter2"), "\(text)")
    }
}

extension HostileInputTests {
    /// The provider refusing the gateway's own key (401, 403) fails over, and alone is a 502 naming the provider,
    /// never the `authentication_error` that would tell the client its gateway key is wrong.
    @Test(arguments: [401, 403])
    func aRefusedProviderKeyFailsOverAndIsNeverTheClientsFault(status: Int) async throws {
        try await GatewayHarness.with(configure: { config in
            FailoverTests.chain(&config, upstream: "status-\(status)", fallbacks: ["anthropic/claude-haiku-4-5"])
            config.models["alone"] = ModelConfig(name: "alone", provider: "openai", upstream: "status-\(status)", fallbacks: [])
        }) { gateway in
            for stream in [false, true] {
                let reply = try await gateway.post(json: ["model": "chain", "stream": .bool(stream), "messages": Self.hello])
                #expect(reply.status == 200, "\(reply.body)")
                #expect(reply.header("X-Provider") == "anthropic" && reply.header("X-Failover") == "true")
                let alone = try await gateway.post(json: ["model": "alone", "stream": .bool(stream), "messages": Self.hello])
                #expect(alone.status == 502)
                #expect(alone.json?["error"]?["type"] != "authentication_error")
                #expect(alone.json?["error"]?["code"] == "upstream_credentials_rejected")
                #expect(alone.json?["error"]?["message"]?.stringValue?.contains("'openai'") == true)
                #expect(alone.header("X-Attempts") == "1", "a refused key is not retried")
            }
        }
    }

    @Test func maskedKeyFragmentsInAProvidersMessageAreRedacted() async throws {
        let key = "sk-test-0123456789abcdefwxyz"
        let message = "Incorrect API key provided: sk-test-****************wxyz. Key ends in defwxyz; see https://example/keys."
        let body = #"{"error":{"message":"\#(message)","type":"invalid_request_error","code":"invalid_api_key"}}"#
        let server = try await ScriptedHTTPServer { _, _ in
            .parts(["HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"])
        }
        let port = server.port
        try await GatewayHarness.with(configure: { config in
            Self.hostile(&config, port: port)
            config.providers[config.providers.count - 1].apiKey = key
        }) { gateway in
            let reply = try await gateway.post(json: ["model": "hostile-model", "messages": Self.hello])
            #expect(reply.status == 502)
            #expect(!reply.body.contains("****") && !reply.body.contains("wxyz") && !reply.body.contains(key), "\(reply.body)")
            #expect(reply.body.contains("Incorrect API key provided"))
        }
        await server.close()
    }

    /// A stream that breaks after it reached the client is the provider's failure: with a breaker that opens on one
    /// failure, the next request skips the provider.
    @Test func aStreamThatBreaksAfterItStartedCountsAgainstTheProvider() async throws {
        try await GatewayHarness.with(configure: { config in
            FailoverTests.copyProvider(&config, from: "openai", as: "fragile") { provider in
                provider.circuitBreaker.consecutiveFailures = 1
                provider.circuitBreaker.coolDown = .seconds(60)
                provider.retries = 0
            }
        }) { gateway in
            let cut = try await gateway.post(json: ["model": "fragile/stream-truncate", "stream": true, "messages": Self.hello])
            #expect(cut.status == 200)
            #expect(GatewayHarness.payloads(cut.body).last != "[DONE]")
            let next = try await gateway.post(json: ["model": "fragile/gpt-4o-mini", "messages": Self.hello])
            #expect(next.status == 503, "\(next.body)")
            #expect(next.json?["error"]?["message"]?.stringValue?.contains("circuit open") == true)
        }
    }
}

extension HostileInputTests {
    /// The client's `X-Request-Id` is echoed and kept, but the row's key is always the gateway's: a client sending
    /// one constant id (or a stranger claiming it without a key) keeps every request's row.
    @Test func aConstantClientRequestIDKeepsEveryRow() async throws {
        try await GatewayHarness.with { gateway in
            let stranger = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello], key: nil, headers: ["X-Request-Id": "same-id"])
            #expect(stranger.status == 401 && stranger.header("X-Request-Id") == "same-id")
            for _ in 0..<5 {
                let reply = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello], headers: ["X-Request-Id": "same-id"])
                #expect(reply.status == 200 && reply.header("X-Request-Id") == "same-id")
            }
            let rows = try await gateway.records.waitFor(6)
            #expect(Set(rows.map(\.requestID)).count == 6)
            #expect(rows.allSatisfy { $0.clientRequestID == "same-id" && $0.requestID.hasPrefix("req_") })
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("client-id-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try await SQLiteRequestLogStore(path: folder + "/requests.db", logger: .init(label: "t"))
        try await store.migrate()
        try await store.insert([
            RequestRecord(requestID: "req_1", clientRequestID: "same-id", createdAtMicros: 1, statusCode: 200),
            RequestRecord(requestID: "req_2", clientRequestID: "same-id", createdAtMicros: 2, statusCode: 200),
        ])
        #expect(try await store.strings("SELECT request_id || ' ' || client_request_id FROM gateway_logs ORDER BY id") == ["req_1 same-id", "req_2 same-id"])
        await store.close()
    }
}

extension HostileInputTests {
    @Test func aStreamOutputWaitsForItsReaderAndLetsGoWhenTheReaderLeaves() async throws {
        let output = StreamOutput(limit: 10)
        let sent = ManagedAtomicCounter()
        let sender = Task {
            for _ in 0..<5 {
                await output.send(ByteBuffer(string: "0123456789"))
                sent.increment()
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        #expect(sent.value == 1, "the second send waits while 20 bytes are queued")
        #expect(await output.next() == ByteBuffer(string: "0123456789"))
        try await Task.sleep(for: .milliseconds(100))
        #expect(sent.value == 2)
        output.consumerStopped()
        await sender.value
        #expect(sent.value == 5, "a reader that left never holds the sender")
        #expect(output.queuedBytes == 0)
    }

    /// A client that reads nothing of a long stream: the gateway stops reading the provider once a bounded amount
    /// waits for the client, so the stream makes no progress and ends at the provider's idle timeout (504 in the
    /// log) instead of being read whole into memory.
    @Test func aClientThatStopsReadingHoldsBackTheProviderNotTheGatewaysMemory() async throws {
        let content = String(repeating: "a", count: 8000)
        let event = #"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"\#(content)"},"finish_reason":null}]}"# + "\n\n"
        let parts = [ScriptedHTTPServer.chunkedHead] + Array(repeating: ScriptedHTTPServer.chunk(event), count: 3000)
            + [ScriptedHTTPServer.chunk("data: [DONE]\n\n"), "0\r\n\r\n"]
        let server = try await ScriptedHTTPServer { _, _ in .parts(parts) }
        let port = server.port
        try await GatewayHarness.with(configure: { Self.hostile(&$0, port: port) }) { gateway in
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(ChannelOptions.autoRead, value: false)
                .connect(host: "127.0.0.1", port: gateway.port).get()
            let body = #"{"model":"hostile-model","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
            try await client.writeAndFlush(ByteBuffer(string:
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(GatewayHarness.clientKey)\r\n"
                + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)).get()
            let row = try #require(try await gateway.records.waitFor(1, timeout: .seconds(15)).first)
            #expect(row.statusCode == 504, "\(row.statusCode) \(row.errorMessage ?? "")")
            #expect(row.errorMessage?.contains("idle") == true)
            try? await client.close()
        }
        await server.close()
    }
}

/// A counter tests can read while a task bumps it.
final class ManagedAtomicCounter: Sendable {
    private let count = NIOLockedValueBox(0)
    func increment() { count.withLockedValue { $0 += 1 } }
    var value: Int { count.withLockedValue { $0 } }
}

extension HostileInputTests {
    /// A reload that changes a TLS provider's URL or timers retires its AsyncHTTPClients; they are shut down once
    /// the requests they may still carry have had their time, not kept until the process ends.
    @Test func clientsRetiredByAReloadAreShutDown() async throws {
        let clients = UpstreamClients(retiredClientGrace: .milliseconds(50))
        var provider = ProviderConfig(name: "tls", type: .openai, baseURL: "https://one.example/v1", apiKey: "k")
        provider.timeouts.total = .milliseconds(100)
        var config = GatewayConfig()
        config.providers = [provider]
        clients.prepare(for: config)
        #expect(clients.retiredClients == 0)
        config.providers[0].baseURL = "https://two.example/v1"
        clients.prepare(for: config)
        #expect(clients.retiredClients > 0)
        for _ in 0..<100 where clients.retiredClients > 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(clients.retiredClients == 0)
        await clients.shutdown()
    }
}

extension HostileInputTests {
    /// `/metrics` names keys, models and spend: on the API listener only with `metrics.token`, on its own listener
    /// with `metrics.listen`; and a model the client made up is counted as `other`, never as a new series.
    @Test func metricsAreServedOnlyWhereConfiguredAndLabelOnlyNamedModels() async throws {
        let token = "metrics-token-abcdefghijklmnop"
        let port = Int.random(in: 20_000..<30_000)
        try await GatewayHarness.with { gateway in
            let anonymous = try await gateway.get("/metrics", key: nil)
            let keyed = try await gateway.get("/metrics", key: GatewayHarness.clientKey)
            #expect(anonymous.status == 404 && keyed.status == 404)
        }
        try await GatewayHarness.with(configure: { config in
            config.metrics.token = token
            config.metrics.listenHost = "127.0.0.1"
            config.metrics.listenPort = port
        }) { gateway in
            let anonymous = try await gateway.get("/metrics", key: nil)
            let keyed = try await gateway.get("/metrics", key: GatewayHarness.clientKey)
            #expect(anonymous.status == 401 && keyed.status == 401)
            for made in ["openai/invented-\(UUID().uuidString)", "openai/another-one"] {
                _ = try await gateway.post(json: ["model": .string(made), "messages": Self.hello])
            }
            _ = try await gateway.records.waitFor(2)
            let scrape = try await gateway.get("/metrics", key: token)
            #expect(scrape.status == 200)
            #expect(scrape.body.contains(#"model="other""#))
            #expect(!scrape.body.contains("invented-") && !scrape.body.contains("another-one"))
        }
        // `metrics.listen`: the listener `Gateway.run` starts beside the API's, serving `/metrics` without a key.
        var config = GatewayConfig()
        config.metrics.listenHost = "127.0.0.1"
        config.metrics.listenPort = port
        let daemon = try Gateway(config: config, logger: .init(label: "metrics-test"))
        let app = try #require(daemon.makeMetricsApplication())
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            var answered: HTTPClientResponse?
            for _ in 0..<100 where answered == nil {
                answered = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(5))
                if answered == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let response = try #require(answered)
            #expect(response.status.code == 200)
            let body = try await response.body.collect(upTo: 1 << 22)
            #expect(String(buffer: body).contains("llm_gateway_config_generation"))
            group.cancelAll()
        }
        await daemon.clients.shutdown()
    }
}

extension HostileInputTests {
    /// Refused before its body is read (no key, a declared length over the limit, an unknown path), a request's
    /// connection is closed after the answer: the gateway never reads, without limit, a body it has refused.
    @Test(arguments: [
        ("POST /v1/chat/completions", "Bearer gw_wrong_key_0123456789abcdefghijklmn", "100000000", "401"),
        ("POST /v1/chat/completions", "Bearer \(GatewayHarness.clientKey)", "100000000", "413"),
        ("POST /v1/no-such-path", "Bearer \(GatewayHarness.clientKey)", "100000000", "404"),
    ])
    func aRefusedUploadIsNotReadToItsEnd(line: String, authorization: String, length: String, status: String) async throws {
        try await GatewayHarness.with { gateway in
            let started = ContinuousClock.now
            let answer = try await gateway.raw(
                "\(line) HTTP/1.1\r\nHost: x\r\nAuthorization: \(authorization)\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(length)\r\n\r\n{\"model\":")
            #expect(answer.hasPrefix("HTTP/1.1 \(status)"), "\(answer.prefix(120))")
            #expect(answer.lowercased().contains("connection: close"))
            #expect(ContinuousClock.now - started < .seconds(5), "the gateway closed the connection instead of waiting for the body")
        }
    }
}

extension HostileInputTests {
    @Test func theRequestLogsRowsAreCountedByStateInTheMetrics() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("log-metrics-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try await SQLiteRequestLogStore(path: folder + "/requests.db", logger: .init(label: "t"))
        let log = RequestLog(store: store, spoolPath: folder + "/requests.spool", batchSize: 10, flushInterval: .seconds(60), logger: .init(label: "t"))
        log.record(RequestRecord(requestID: "req_1", createdAtMicros: 1, statusCode: 200))
        await log.flush()
        let gateway = try Gateway(config: GatewayConfig(), logger: .init(label: "t"), requestLog: log)
        let text = String(decoding: gateway.metrics.exposition(for: gateway), as: UTF8.self)
        #expect(text.contains(#"llm_gateway_request_log_rows{state="written"} 1"#))
        #expect(text.contains(#"llm_gateway_request_log_rows{state="rejected"} 0"#))
        await gateway.clients.shutdown()
        await store.close()
    }
}

extension HostileInputTests {
    @Test func aModelNameThatIsNoNameIsRefusedAndNeverRepeated() async throws {
        try await GatewayHarness.with { gateway in
            for model in ["gpt-4o-mini\nX-Injected: 1", String(repeating: "m", count: 20_000)] {
                let reply = try await gateway.post(json: ["model": .string(model), "messages": Self.hello])
                #expect(reply.status == 400 && reply.json?["error"]?["param"] == "model")
                #expect(!reply.body.contains("X-Injected") && !reply.body.contains("mmmmmmmmmm"))
            }
            let long = try await gateway.get("/v1/models/" + String(repeating: "q", count: 2_000))
            #expect(long.status == 404 && !long.body.contains("qqqqqqqqqq"))
            let plain = try await gateway.get("/v1/models/no-such-model")
            #expect(plain.body.contains("'no-such-model'"))
        }
    }
}
