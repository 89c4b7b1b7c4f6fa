import AsyncHTTPClient
import NIOCore
import Testing
@testable import GatewayCore

/// Failover chains, retries, circuit breaking and load spreading, against fault-injecting fake providers.
@Suite("Failover", .timeLimit(.minutes(2)))
struct FailoverTests {
    static let hello: JSON = [["role": "user", "content": "hi"]]

    /// A model `chain` served by `primary` (a `provider/model` upstream on one of the fakes) with `fallbacks`.
    static func chain(_ config: inout GatewayConfig, provider: String = "openai", upstream: String, fallbacks: [String]) {
        config.models["chain"] = ModelConfig(name: "chain", provider: provider, upstream: upstream, fallbacks: fallbacks, price: Price(input: 1, output: 1))
    }

    static func copyProvider(_ config: inout GatewayConfig, from name: String, as newName: String, change: (inout ProviderConfig) -> Void = { _ in }) {
        var provider = config.provider(named: name)!
        provider.name = newName
        change(&provider)
        config.providers.append(provider)
    }

    static let pairs = [("openai", "anthropic"), ("anthropic", "gemini"), ("gemini", "openai")]
    static let triggers = ["status-429", "status-500", "status-503", "status-529", "slow-head"]

    @Test(arguments: pairs.flatMap { pair in triggers.map { (pair.0, pair.1, $0) } })
    func everyUpstreamTriggerFailsOver(primary: String, fallback: String, upstream: String) async throws {
        let fallbackModel = ["openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"][fallback]!
        try await GatewayHarness.with(configure: { Self.chain(&$0, provider: primary, upstream: upstream, fallbacks: ["\(fallback)/\(fallbackModel)"]) }) { gateway in
            for stream in [false, true] {
                let reply = try await gateway.post(json: ["model": "chain", "stream": .bool(stream), "messages": Self.hello])
                #expect(reply.status == 200, "\(reply.body)")
                #expect(reply.header("X-Provider") == fallback)
                #expect(reply.header("X-Failover") == "true")
                #expect(reply.header("X-Original-Provider") == primary)
                #expect(reply.header("X-Attempts") == "2")
                #expect(reply.header("X-Model") == fallbackModel)
                if stream {
                    #expect(GatewayHarness.payloads(reply.body).last == "[DONE]")
                } else {
                    #expect(reply.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == "Hello from \(fallback): hi")
                }
            }
        }
    }

    @Test func anthropicOverloadedRightAfterTheStreamOpensFailsOver() async throws {
        try await GatewayHarness.with(configure: { Self.chain(&$0, provider: "anthropic", upstream: "stream-error", fallbacks: ["openai/gpt-4o-mini"]) }) { gateway in
            let reply = try await gateway.post(json: ["model": "chain", "stream": true, "messages": Self.hello])
            #expect(reply.header("X-Provider") == "openai")
            #expect(reply.header("X-Failover") == "true")
            let payloads = GatewayHarness.payloads(reply.body)
            #expect(payloads.last == "[DONE]")
            #expect(!reply.body.contains("overloaded"))
        }
    }

    @Test(arguments: GatewayHarness.plainHTTPClients)
    func connectionRefusedAndResetFailOver(through plainHTTP: UpstreamClients.PlainHTTPClient) async throws {
        let reset = try await ResetServer()
        let resetPort = reset.port
        try await GatewayHarness.with(plainHTTP: plainHTTP, configure: { config in
            Self.copyProvider(&config, from: "openai", as: "refused") { $0.baseURL = "http://127.0.0.1:1/v1" }
            Self.copyProvider(&config, from: "openai", as: "reset") { $0.baseURL = "http://127.0.0.1:\(resetPort)/v1" }
            Self.chain(&config, provider: "refused", upstream: "gpt-4o-mini", fallbacks: ["reset/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
        }) { gateway in
            let reply = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(reply.status == 200)
            #expect(reply.header("X-Provider") == "anthropic")
            #expect(reply.header("X-Attempts") == "3")
            #expect(reply.header("X-Failover") == "true")
        }
        await reset.close()
    }

    /// 401 and 403 refuse the gateway's own key, not the client's request: they fail over
    /// (`HostileInputTests.aRefusedProviderKeyFailsOverAndIsNeverTheClientsFault`).
    @Test(arguments: [400, 404, 413, 422])
    func clientErrorsNeverFailOver(status: Int) async throws {
        try await GatewayHarness.with(configure: { Self.chain(&$0, upstream: "gpt-4o-mini", fallbacks: ["anthropic/claude-haiku-4-5"]) }) { gateway in
            gateway.openai.failNext(1, status: status)
            let reply = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(reply.status == status)
            #expect(reply.json?["error"]?["message"]?.stringValue?.contains("Scripted failure") == true)
            #expect(!reply.body.contains(gateway.openai.key))
            #expect(gateway.anthropic.requests.isEmpty)
        }
    }

    @Test func twoHopChainAndEveryAttemptListedWhenAllFail() async throws {
        try await GatewayHarness.with(configure: {
            Self.chain(&$0, upstream: "status-500", fallbacks: ["anthropic/status-529", "gemini/gemini-2.5-flash"])
            $0.models["doomed"] = ModelConfig(name: "doomed", provider: "openai", upstream: "status-500", fallbacks: ["anthropic/status-429", "gemini/status-503"])
        }) { gateway in
            let reply = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(reply.status == 200)
            #expect(reply.header("X-Attempts") == "3")
            #expect(reply.header("X-Provider") == "gemini")
            #expect(reply.header("X-Original-Provider") == "openai")

            let failed = try await gateway.post(json: ["model": "doomed", "messages": Self.hello])
            #expect(failed.status == 502)
            let message = try #require(failed.json?["error"]?["message"]?.stringValue)
            #expect(message.contains("openai (status-500)"))
            #expect(message.contains("anthropic (status-429)"))
            #expect(message.contains("gemini (status-503)"))
            for fake in [gateway.openai, gateway.anthropic, gateway.gemini] { #expect(!failed.body.contains(fake.key)) }
        }
    }

    @Test func fallbacksEmptyDisablesTheChain() async throws {
        try await GatewayHarness.with(configure: { Self.chain(&$0, upstream: "status-500", fallbacks: []) }) { gateway in
            let reply = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(reply.status == 502)
            #expect(gateway.anthropic.requests.isEmpty && gateway.gemini.requests.isEmpty)
        }
    }

    @Test func catalogChainsWorkWithZeroConfiguration() async throws {
        try await GatewayHarness.with { gateway in
            gateway.openai.failNext(1, status: 503)
            let reply = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": Self.hello])
            #expect(reply.status == 200)
            #expect(reply.header("X-Provider") == "anthropic")
            #expect(reply.header("X-Model") == "claude-haiku-4-5")
        }
    }

    @Test(arguments: GatewayHarness.plainHTTPClients)
    func streamFailsOverBeforeTheFirstByte(through plainHTTP: UpstreamClients.PlainHTTPClient) async throws {
        try await GatewayHarness.with(plainHTTP: plainHTTP, configure: {
            Self.chain(&$0, upstream: "stream-empty", fallbacks: ["anthropic/status-500", "gemini/gemini-2.5-flash"])
        }) { gateway in
            let reply = try await gateway.post(json: ["model": "chain", "stream": true, "messages": Self.hello])
            #expect(reply.status == 200)
            #expect(reply.header("X-Provider") == "gemini")
            #expect(reply.header("X-Failover") == "true")
            #expect(reply.header("X-Attempts") == "3")
            let payloads = GatewayHarness.payloads(reply.body)
            #expect(payloads.last == "[DONE]")
            let text = payloads.dropLast().compactMap { try? JSON.parse($0) }
                .compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }.joined()
            #expect(text == "Hello from gemini: hi")
        }
    }

    @Test(arguments: GatewayHarness.plainHTTPClients)
    func streamCutAfterTheFirstByteIsAnErrorNotAFailover(through plainHTTP: UpstreamClients.PlainHTTPClient) async throws {
        try await GatewayHarness.with(plainHTTP: plainHTTP, configure: { Self.chain(&$0, upstream: "stream-truncate", fallbacks: ["anthropic/claude-haiku-4-5"]) }) { gateway in
            let reply = try await gateway.post(json: ["model": "chain", "stream": true, "messages": Self.hello])
            #expect(reply.status == 200)
            #expect(reply.header("X-Provider") == "openai")
            let payloads = GatewayHarness.payloads(reply.body)
            #expect(!payloads.contains("[DONE]"))
            #expect((try? JSON.parse(payloads.last ?? ""))?["error"]?["code"] == "stream_truncated", "\(payloads.last ?? "no payload")")
            #expect(gateway.anthropic.requests.isEmpty)
        }
    }

    @Test func aTimedOutFirstAttemptLeavesTheFallbackItsOwnTime() async throws {
        try await GatewayHarness.with(configure: { config in
            for index in config.providers.indices {
                config.providers[index].timeouts.firstByte = .seconds(2)
                // The chain's deadline is its first provider's total: ample for openai, tight for anthropic.
                config.providers[index].timeouts.total = config.providers[index].name == "anthropic" ? .seconds(3) : .seconds(20)
            }
            Self.chain(&config, upstream: "slow-head", fallbacks: ["anthropic/claude-haiku-4-5"])
            config.models["slow-chain"] = ModelConfig(name: "slow-chain", provider: "anthropic", upstream: "slow-head", fallbacks: ["gemini/slow-head", "openai/slow-head"])
        }) { gateway in
            let reply = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(reply.status == 200)
            #expect(reply.header("X-Provider") == "anthropic")

            let started = ContinuousClock.now
            let timedOut = try await gateway.post(json: ["model": "slow-chain", "messages": Self.hello])
            let elapsed = ContinuousClock.now - started
            #expect(timedOut.status == 504)
            // Unbounded, three links of 2 s each would take 6 s; the 3 s total stops the chain in the second.
            #expect(elapsed < .seconds(5), "the total timeout must bound the whole chain, took \(elapsed)")
            #expect(gateway.openai.requests.count == 1, "the third link starts after the deadline and must not be tried")
        }
    }

    @Test func retriesTheSameProviderWithBackoffBeforeFailingOver() async throws {
        try await GatewayHarness.with(configure: { config in
            config.providers[0].retries = 2
            Self.chain(&config, upstream: "gpt-4o-mini", fallbacks: ["anthropic/claude-haiku-4-5"])
        }) { gateway in
            gateway.openai.failNext(2, status: 429, retryAfter: "0")
            let reply = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(reply.status == 200)
            #expect(reply.header("X-Provider") == "openai")
            #expect(reply.header("X-Attempts") == "3")
            #expect(reply.header("X-Failover") == nil)
            #expect(gateway.anthropic.requests.isEmpty)

            gateway.openai.failNext(3, status: 500)
            let failedOver = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(failedOver.header("X-Provider") == "anthropic")
            #expect(failedOver.header("X-Attempts") == "4")
        }
    }

    @Test func retryAfterIsHonouredUpToItsCap() async throws {
        try await GatewayHarness.with(configure: { config in
            config.providers[0].retries = 1
            config.providers[0].retryAfterMax = .milliseconds(300)
            Self.chain(&config, upstream: "gpt-4o-mini", fallbacks: [])
        }) { gateway in
            gateway.openai.failNext(1, status: 503, retryAfter: "1")
            var started = ContinuousClock.now
            let honoured = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(honoured.status == 200)
            #expect(ContinuousClock.now - started >= .milliseconds(300))

            gateway.openai.failNext(1, status: 429, retryAfter: "30")
            started = ContinuousClock.now
            let capped = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(capped.status == 200)
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test func circuitOpensSkipsTheProviderAndRecoversAfterAProbe() async throws {
        try await GatewayHarness.with(configure: { config in
            config.providers[0].circuitBreaker.consecutiveFailures = 2
            config.providers[0].circuitBreaker.coolDown = .seconds(4)
            Self.chain(&config, upstream: "gpt-4o-mini", fallbacks: ["anthropic/claude-haiku-4-5"])
        }) { gateway in
            gateway.openai.failNext(2, status: 500)
            for _ in 0..<2 {
                let reply = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
                #expect(reply.header("X-Provider") == "anthropic")
            }
            #expect(gateway.openai.requests.count == 2)
            let skipped = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(skipped.header("X-Provider") == "anthropic")
            #expect(skipped.header("X-Attempts") == "1")
            #expect(gateway.openai.requests.count == 2, "an open circuit must not reach the provider")

            try await Task.sleep(for: .milliseconds(4200))
            let probe = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(probe.header("X-Provider") == "openai")
            #expect(gateway.openai.requests.count == 3)
            let closed = try await gateway.post(json: ["model": "chain", "messages": Self.hello])
            #expect(closed.header("X-Provider") == "openai")
        }
    }

    @Test func deploymentsSpreadByWeightAndFailOverBetweenThemselves() async throws {
        try await GatewayHarness.with(configure: { config in
            Self.copyProvider(&config, from: "openai", as: "openai-a") { $0.headers = ["X-Deployment": "a"] }
            Self.copyProvider(&config, from: "openai", as: "openai-b") { $0.headers = ["X-Deployment": "b"] }
            var model = ModelConfig(name: "spread", provider: "openai-a", upstream: "gpt-4o-mini", fallbacks: [])
            model.deployments = [Deployment(provider: "openai-a", weight: 2), Deployment(provider: "openai-b", weight: 1)]
            config.models["spread"] = model
        }) { gateway in
            let total = 90
            var servedBy: [String] = []
            for _ in 0..<total {
                let reply = try await gateway.post(json: ["model": "spread", "messages": Self.hello])
                #expect(reply.status == 200)
                servedBy.append("\(reply.header("X-Provider") ?? "-")/\(reply.header("X-Attempts") ?? "-")")
            }
            let toA = gateway.openai.requests.filter { $0.headers["x-deployment"] == "a" }.count
            #expect(servedBy.filter { $0 == "openai-a/1" }.count == toA, "every request is answered by its first deployment")
            // 2/3 of 90 is 60, with a standard deviation of 4.5: the bounds are 4.5 deviations either side (the
            // split itself is measured more tightly by idlePickerSplitsByWeight).
            #expect(toA >= 40 && toA <= 80, "weight 2 of 3 should take about 60 of 90, took \(toA): \(servedBy.joined(separator: " "))")

            gateway.openai.failNext(1, status: 500)
            let reply = try await gateway.post(json: ["model": "spread", "messages": Self.hello])
            #expect(reply.status == 200)
            #expect(reply.header("X-Attempts") == "2")
            #expect(reply.header("X-Failover") == "true")
        }
    }

    /// With the cache on, a non-streamed request waits in a shared flight; with it off, in a task of its own.
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func aClientThatLeavesCancelsPendingBackoff(stream: Bool, cache: Bool) async throws {
        try await GatewayHarness.with(configure: { config in
            if cache { config.cache.backend = .memory }
            config.providers[0].retries = 1
            config.providers[0].retryAfterMax = .seconds(30)
            Self.chain(&config, upstream: "gpt-4o-mini", fallbacks: ["anthropic/claude-haiku-4-5"])
        }) { gateway in
            gateway.openai.failNext(1, status: 429, retryAfter: "2")
            // A stream leaves before its first chunk, while nothing has been written to it.
            let call = Task { try await gateway.post(json: ["model": "chain", "stream": .bool(stream), "messages": Self.hello]) }
            let waitStarted = ContinuousClock.now
            while gateway.openai.requests.isEmpty, ContinuousClock.now - waitStarted < .seconds(10) {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(gateway.openai.requests.count == 1)
            call.cancel()
            _ = try? await call.value
            try await Task.sleep(for: .milliseconds(2500))
            #expect(gateway.openai.requests.count == 1, "the retry after the backoff must not happen")
            #expect(gateway.anthropic.requests.isEmpty)
        }
    }
}

@Suite("Circuit breaker and deployment picker", .timeLimit(.minutes(2)))
struct CircuitBreakerTests {
    final class Clock: @unchecked Sendable {
        var now = ContinuousClock.now
    }

    @Test func errorRatioOverTheWindowOpensTheCircuit() {
        let clock = Clock()
        let breakers = CircuitBreakers(now: { clock.now })
        var settings = CircuitBreakerSettings()
        settings.consecutiveFailures = 100
        settings.errorRatio = 0.5
        settings.minimumRequests = 10
        for index in 0..<10 {
            #expect(breakers.admit("p", settings: settings))
            breakers.record("p", success: index % 3 == 2, settings: settings)
        }
        #expect(breakers.state(of: "p") == .open)
        #expect(!breakers.admit("p", settings: settings))
        clock.now += settings.coolDown
        #expect(breakers.state(of: "p") == .halfOpen)
        #expect(breakers.admit("p", settings: settings))
        #expect(!breakers.admit("p", settings: settings), "only one probe at a time")
        breakers.record("p", success: false, settings: settings)
        #expect(breakers.state(of: "p") == .open)
        clock.now += settings.coolDown
        #expect(breakers.admit("p", settings: settings))
        breakers.record("p", success: true, settings: settings)
        #expect(breakers.state(of: "p") == .closed)
    }

    @Test func theWindowForgetsOutcomesOlderThanItself() {
        var counts = WindowCounts()
        let window = Duration.seconds(60)
        for _ in 0..<5 { counts.add(failed: true, at: .seconds(1), window: window) }
        for _ in 0..<3 { counts.add(failed: false, at: .seconds(30), window: window) }
        #expect(counts.totals(at: .seconds(30), window: window) == (8, 5))
        #expect(counts.totals(at: .seconds(59), window: window) == (8, 5))
        // A minute and more after the failures they have left the window; the successes have not.
        #expect(counts.totals(at: .seconds(66), window: window) == (3, 0))
        counts.add(failed: true, at: .seconds(80), window: window)
        #expect(counts.totals(at: .seconds(80), window: window) == (4, 1))
        #expect(counts.totals(at: .seconds(200), window: window) == (0, 0))
    }

    @Test func idlePickerSplitsByWeight() {
        var generator = SystemRandomNumberGenerator()
        let deployments = [Deployment(provider: "a", weight: 2), Deployment(provider: "b", weight: 1)]
        let draws = 3000
        let firstA = (0..<draws).filter { _ in DeploymentPicker.order(deployments, inFlight: { _ in 0 }, using: &generator)[0].provider == "a" }.count
        // 2000 expected, standard deviation 25.8: 5 deviations either side.
        #expect(abs(firstA - 2000) < 130, "weight 2 of 3 should go first about 2000 times in 3000, went \(firstA)")
    }

    @Test func pickerPrefersTheLeastLoadedPerWeight() {
        var generator = SystemRandomNumberGenerator()
        let deployments = [Deployment(provider: "a", weight: 1), Deployment(provider: "b", weight: 4)]
        let busyB = DeploymentPicker.order(deployments, inFlight: { $0 == "b" ? 8 : 1 }, using: &generator)
        #expect(busyB.map(\.provider) == ["a", "b"])
        let busyA = DeploymentPicker.order(deployments, inFlight: { $0 == "a" ? 3 : 4 }, using: &generator)
        #expect(busyA.map(\.provider) == ["b", "a"])
    }

    @Test func backoffIsJitteredExponentialAndRespectsRetryAfterAndCap() {
        let router = UpstreamChain(proxy: UpstreamProxy(clients: UpstreamClients()), breakers: CircuitBreakers(), load: ProviderLoad())
        var generator = SystemRandomNumberGenerator()
        for retry in 0..<6 {
            let pause = router.backoff(retry: retry, retryAfter: nil, cap: .seconds(5), using: &generator)
            #expect(pause >= .zero && pause <= min(.seconds(5), .milliseconds(250) * (1 << retry)))
        }
        #expect(router.backoff(retry: 0, retryAfter: .seconds(2), cap: .seconds(5), using: &generator) == .seconds(2))
        #expect(router.backoff(retry: 0, retryAfter: .seconds(60), cap: .seconds(5), using: &generator) == .seconds(5))
    }

    @Test(arguments: [
        (UpstreamConnectionError.headTimeout as any Error & Sendable, 504, "upstream_timeout", true),
        (UpstreamConnectionError.readTimeout, 504, "upstream_timeout", true),
        (UpstreamConnectionError.bodyTimeout, 504, "upstream_timeout", true),
        (ChannelError.connectTimeout(.seconds(5)), 504, "upstream_timeout", true),
        (UpstreamConnectionError.closed, 502, "upstream_unreachable", false),
        (UpstreamConnectionError.protocolViolation, 502, "upstream_unreachable", false),
        (UpstreamConnectionError.tooManyConnections(4096), 503, "provider_unavailable", false),
    ])
    func poolFailuresFailOverWithTheirOwnStatus(error: any Error & Sendable, status: Int, code: String, timedOut: Bool) {
        let provider = ProviderConfig(name: "local", type: .openai, baseURL: "http://127.0.0.1:8000/v1", apiKey: "sk-secret-key")
        let failure = UpstreamProxy.transportFailure(error, provider: provider)
        #expect(failure.triggersFailover)
        #expect(failure.timedOut == timedOut)
        #expect(failure.error.status == status)
        #expect(failure.error.code == code)
        #expect(failure.error.message.contains("'local'"))
        #expect(!failure.error.message.contains("sk-secret-key") && !failure.error.message.contains("127.0.0.1"))
    }
}
