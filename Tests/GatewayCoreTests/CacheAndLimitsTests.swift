import Testing
@testable import GatewayCore

/// The response cache and rate limits through the running gateway, embedded and on a real Redis.
@Suite("Cache and rate limits", .timeLimit(.minutes(2)))
struct CacheAndLimitsTests {
    static func ask(_ text: String, stream: Bool = false, model: String = "gpt-4o-mini") -> JSON {
        ["model": .string(model), "stream": .bool(stream), "temperature": 0, "messages": [["role": "user", "content": .string(text)]]]
    }

    @Test func aRepeatedRequestIsServedFromTheCacheAtNoCost() async throws {
        try await GatewayHarness.with(configure: { $0.cache.backend = .memory }) { gateway in
            let miss = try await gateway.post(json: Self.ask("cache me"))
            #expect(miss.status == 200)
            #expect(miss.header("X-Cache-Hit") == "miss")
            #expect(Double(miss.header("X-Cost-USD") ?? "") ?? 0 > 0)
            let reordered = #"{ "messages" : [ {"content":"cache me", "role":"user"} ], "temperature": 0.0, "stream": false, "model":"gpt-4o-mini" }"#
            let hit = try await gateway.post(body: reordered)
            #expect(hit.status == 200)
            #expect(hit.header("X-Cache-Hit") == "exact")
            #expect(hit.header("X-Cost-USD") == "0.000000")
            #expect(hit.header("X-Provider") == "openai")
            #expect(hit.json?["choices"] == miss.json?["choices"])
            #expect(hit.json?["usage"] == miss.json?["usage"])
            #expect(hit.json?["cost_usd"]?.doubleValue == 0)
            #expect(gateway.openai.requests.count == 1)
        }
    }

    @Test func cacheControlSkipsTheLookupOrTheWrite() async throws {
        try await GatewayHarness.with(configure: { $0.cache.backend = .memory }) { gateway in
            let noStore = try await gateway.post(json: Self.ask("a"), headers: ["Cache-Control": "no-store"])
            #expect(noStore.header("X-Cache-Hit") == "miss")
            let afterNoStore = try await gateway.post(json: Self.ask("a"))
            #expect(afterNoStore.header("X-Cache-Hit") == "miss")
            let noCache = try await gateway.post(json: Self.ask("a"), headers: ["Cache-Control": "no-cache"])
            #expect(noCache.header("X-Cache-Hit") == "miss")
            #expect(gateway.openai.requests.count == 3)
            let hit = try await gateway.post(json: Self.ask("a"))
            #expect(hit.header("X-Cache-Hit") == "exact")
            #expect(gateway.openai.requests.count == 3)
        }
    }

    @Test func keysDoNotShareAnswersUnlessTheScopeIsGlobal() async throws {
        let otherKey = "gw_other_tenant_key_0123456789abcdefghijk"
        try await GatewayHarness.with(configure: { config in
            config.cache.backend = .memory
            config.keys.append(KeyConfig(name: "other", sha256: KeyHash.sha256Hex(otherKey)))
            var off = KeyConfig(name: "uncached", sha256: KeyHash.sha256Hex("gw_uncached_key_0123456789abcdefghijklmn"))
            off.cache.enabled = false
            config.keys.append(off)
        }) { gateway in
            _ = try await gateway.post(json: Self.ask("tenant"))
            let other = try await gateway.post(json: Self.ask("tenant"), key: otherKey)
            #expect(other.header("X-Cache-Hit") == "miss")
            let disabled = try await gateway.post(json: Self.ask("tenant"), key: "gw_uncached_key_0123456789abcdefghijklmn")
            #expect(disabled.header("X-Cache-Hit") == "bypass")
            #expect(gateway.openai.requests.count == 3)
        }
        try await GatewayHarness.with(configure: { config in
            config.cache.backend = .memory
            config.cache.scope = .global
            config.keys.append(KeyConfig(name: "other", sha256: KeyHash.sha256Hex(otherKey)))
        }) { gateway in
            _ = try await gateway.post(json: Self.ask("shared"))
            let other = try await gateway.post(json: Self.ask("shared"), key: otherKey)
            #expect(other.header("X-Cache-Hit") == "exact")
        }
    }

    @Test(arguments: ["openai", "anthropic", "gemini"])
    func streamsAreCachedAndReplayedAsStreams(provider: String) async throws {
        let model = ["openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"][provider]!
        try await GatewayHarness.with(configure: { $0.cache.backend = .memory }) { gateway in
            let miss = try await gateway.post(json: Self.ask("stream cache", stream: true, model: model))
            #expect(miss.header("X-Cache-Hit") == "miss")
            let missText = Self.text(of: miss.body)
            #expect(missText == "Hello from \(provider): stream cache")
            var replayRequest = Self.ask("stream cache", stream: true, model: model)
            replayRequest["stream_options"] = ["include_usage": true]
            let hit = try await gateway.post(json: replayRequest)
            #expect(hit.header("X-Cache-Hit") == "exact")
            #expect(hit.header("content-type") == "text/event-stream")
            #expect(Self.text(of: hit.body) == missText)
            let payloads = GatewayHarness.payloads(hit.body)
            #expect(payloads.last == "[DONE]")
            #expect((try? JSON.parse(payloads[payloads.count - 2]))?["usage"]?["completion_tokens"]?.intValue ?? 0 > 0)
            let nonStream = try await gateway.post(json: Self.ask("stream cache", model: model))
            #expect(nonStream.header("X-Cache-Hit") == "exact")
            #expect(nonStream.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == missText)
            let upstream = [gateway.openai, gateway.anthropic, gateway.gemini].map(\.requests.count).reduce(0, +)
            #expect(upstream == 1)
        }
    }

    @Test func errorsAndTruncatedStreamsAreNotCached() async throws {
        try await GatewayHarness.with(configure: { $0.cache.backend = .memory }) { gateway in
            gateway.openai.failNext(1, status: 400)
            _ = try await gateway.post(json: Self.ask("fail once"))
            let retry = try await gateway.post(json: Self.ask("fail once"))
            #expect(retry.status == 200)
            #expect(retry.header("X-Cache-Hit") == "miss")

            for _ in 0..<2 {
                let cut = try await gateway.post(json: ["model": "openai/stream-truncate", "stream": true, "messages": [["role": "user", "content": "x"]]])
                #expect(cut.header("X-Cache-Hit") == "miss")
            }
        }
    }

    @Test func concurrentIdenticalMissesMakeOneUpstreamCall() async throws {
        try await GatewayHarness.with(configure: { $0.cache.backend = .memory }) { gateway in
            let replies = try await withThrowingTaskGroup(of: GatewayHarness.Reply.self) { group in
                for _ in 0..<10 { group.addTask { try await gateway.post(json: Self.ask("together", model: "openai/slow-ok")) } }
                var replies: [GatewayHarness.Reply] = []
                for try await reply in group { replies.append(reply) }
                return replies
            }
            #expect(replies.allSatisfy { $0.status == 200 })
            #expect(gateway.openai.requests.count == 1)
            #expect(replies.filter { $0.header("X-Cache-Hit") == "miss" }.count == 1)
            #expect(replies.filter { $0.header("X-Cache-Hit") == "exact" }.count == 9)
        }
    }

    @Test func requestsPerMinuteAreEnforcedWithHeadersAndRetryAfter() async throws {
        try await GatewayHarness.with(configure: { config in
            config.keys[0].rateLimit = RateLimit(requestsPerMinute: 3)
        }) { gateway in
            for index in 0..<3 {
                let reply = try await gateway.post(json: Self.ask("limit \(index)"))
                #expect(reply.status == 200)
                #expect(reply.header("X-RateLimit-Limit") == "3")
                #expect(reply.header("X-RateLimit-Remaining") == String(2 - index))
                #expect(Int(reply.header("X-RateLimit-Reset") ?? "") != nil)
            }
            let refused = try await gateway.post(json: Self.ask("limit 3"))
            #expect(refused.status == 429)
            #expect(refused.json?["error"]?["type"] == "rate_limit_exceeded")
            #expect((Int(refused.header("Retry-After") ?? "") ?? 0) >= 1)
            #expect(refused.header("X-RateLimit-Remaining") == "0")
            #expect(gateway.openai.requests.count == 3, "a refused request must never reach the provider")
            let unlimited = try await gateway.post(json: Self.ask("other key"), key: GatewayHarness.limitedKey)
            #expect(unlimited.status == 200)
            #expect(unlimited.header("X-RateLimit-Limit") == nil)
        }
    }

    @Test func tokensPerMinuteAreSettledFromRealUsage() async throws {
        try await GatewayHarness.with(configure: { config in
            config.keys[0].rateLimit = RateLimit(tokensPerMinute: 40)
        }) { gateway in
            let first = try await gateway.post(json: Self.ask("tokens"))
            #expect(first.status == 200)
            let used = first.json?["usage"]?["total_tokens"]?.intValue ?? 0
            #expect(used > 0)
            var refused: GatewayHarness.Reply?
            for index in 0..<5 {
                let reply = try await gateway.post(json: Self.ask("tokens \(index)"))
                if reply.status == 429 { refused = reply; break }
            }
            let refusal = try #require(refused, "the token budget of 40 per minute must run out")
            #expect(refusal.json?["error"]?["type"] == "rate_limit_exceeded")
        }
    }

    static func text(of body: String) -> String {
        GatewayHarness.payloads(body).compactMap { try? JSON.parse($0) }
            .compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }.joined()
    }

    // MARK: - Redis

    @Test func gatewaysSharingRedisShareTheCacheAndOneGlobalLimit() async throws {
        let redis = try await RedisServerProcess.start()
        let url = redis.url()
        try await GatewayHarness.with(configure: { config in
            config.cache.backend = .redis
            config.rateLimits.backend = .redis
            config.redis.url = url
            config.redis.prefix = "test-\(RandomID.make(prefix: "", length: 8)):"
            config.keys[0].rateLimit = RateLimit(requestsPerMinute: 4)
        }) { first in
            try await first.withAnotherGateway(config: first.config) { second in
                let miss = try await first.post(json: Self.ask("shared over redis"))
                #expect(miss.header("X-Cache-Hit") == "miss")
                let hit = try await second.post(json: Self.ask("shared over redis"))
                #expect(hit.header("X-Cache-Hit") == "exact")
                #expect(hit.json?["choices"] == miss.json?["choices"])
                #expect(first.openai.requests.count == 1)

                let third = try await first.post(json: Self.ask("limit a"))
                let fourth = try await second.post(json: Self.ask("limit b"))
                #expect(third.status == 200 && fourth.status == 200)
                #expect(fourth.header("X-RateLimit-Remaining") == "0")
                let refusedHere = try await first.post(json: Self.ask("limit c"))
                let refusedThere = try await second.post(json: Self.ask("limit d"))
                #expect(refusedHere.status == 429)
                #expect(refusedThere.status == 429)
                #expect((Int(refusedThere.header("Retry-After") ?? "") ?? 0) >= 1)
            }
        }
        await redis.stop()
    }

    @Test(arguments: [RateLimitSettings.OnBackendError.allow, .deny])
    func aRedisOutageFailsOpenForTheCacheAndFollowsTheSettingForLimits(onError: RateLimitSettings.OnBackendError) async throws {
        let redis = try await RedisServerProcess.start()
        let url = redis.url()
        try await GatewayHarness.with(configure: { config in
            config.cache.backend = .redis
            config.rateLimits.backend = .redis
            config.rateLimits.onBackendError = onError
            config.redis.url = url
            config.redis.connectTimeout = .milliseconds(500)
            config.redis.commandTimeout = .milliseconds(300)
            config.keys[1].rateLimit = RateLimit(requestsPerMinute: 100)
        }) { gateway in
            let before = try await gateway.post(json: Self.ask("before the outage"))
            #expect(before.status == 200)
            await redis.kill()
            let started = ContinuousClock.now
            for index in 0..<3 {
                let unlimited = try await gateway.post(json: Self.ask("during \(index)"))
                #expect(unlimited.status == 200, "the cache fails open")
                #expect(unlimited.header("X-Cache-Hit") == "miss")
                let limited = try await gateway.post(json: Self.ask("limited \(index)", model: "gpt-4o-mini"), key: GatewayHarness.limitedKey)
                #expect(limited.status == (onError == .allow ? 200 : 503))
            }
            #expect(ContinuousClock.now - started < .seconds(10), "requests must never hang on Redis")
            try await redis.restart()
            var recovered = false
            for _ in 0..<50 where !recovered {
                let reply = try await gateway.post(json: Self.ask("after the outage"), key: GatewayHarness.limitedKey)
                recovered = reply.status == 200 && reply.header("X-RateLimit-Limit") == "100"
                if !recovered { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(recovered)
        }
        await redis.stop()
    }

    @Test func twoGatewayProcessesOnOneRedisEnforceOneGlobalLimit() async throws {
        let redis = try await RedisServerProcess.start()
        let redisURL = redis.url()
        try await GatewayHarness.with { fakes in
            let upstream = fakes.openai.baseURL(port: fakes.fakePorts[.openai]!)
            let prefix = "procs-\(RandomID.make(prefix: "", length: 8)):"
            let yaml: (Int) -> String = { port in
                """
                server: {listen: "127.0.0.1:\(port)"}
                providers:
                  openai: {type: openai, base_url: "\(upstream)", api_key: "\(fakes.openai.key)"}
                keys:
                  - name: shared
                    sha256: \(KeyHash.sha256Hex(GatewayHarness.clientKey))
                    rate_limit: {requests_per_minute: 4}
                cache: {backend: redis}
                rate_limits: {backend: redis}
                redis: {url: "\(redisURL)", prefix: "\(prefix)"}
                request_log: {backend: off}
                """
            }
            let first = try await DaemonProcess(configuration: yaml)
            let second = try await DaemonProcess(configuration: yaml)
            let one = GatewayHarness(port: first.port, openai: fakes.openai, anthropic: fakes.anthropic, gemini: fakes.gemini, fakePorts: fakes.fakePorts, config: fakes.config, records: fakes.records)
            let two = GatewayHarness(port: second.port, openai: fakes.openai, anthropic: fakes.anthropic, gemini: fakes.gemini, fakePorts: fakes.fakePorts, config: fakes.config, records: fakes.records)

            let miss = try await one.post(json: Self.ask("two processes"))
            #expect(miss.header("X-Cache-Hit") == "miss")
            let hit = try await two.post(json: Self.ask("two processes"))
            #expect(hit.header("X-Cache-Hit") == "exact")
            let statuses = [
                try await one.post(json: Self.ask("p1")).status, try await two.post(json: Self.ask("p2")).status,
                try await one.post(json: Self.ask("p3")).status, try await two.post(json: Self.ask("p4")).status,
            ]
            #expect(statuses == [200, 200, 429, 429], "4 per minute across both processes: 2 used above, 2 left")
            #expect(fakes.openai.requests.count == 3)
            #expect(await first.stop() == 0)
            #expect(await second.stop() == 0)
        }
        await redis.stop()
    }
}
