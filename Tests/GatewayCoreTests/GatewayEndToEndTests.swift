import AsyncHTTPClient
import NIOCore
import Testing
@testable import GatewayCore

/// The daemon end to end: real HTTP to the gateway, real HTTP from it to the fake providers.
@Suite("Gateway end to end", .timeLimit(.minutes(2)))
struct GatewayEndToEndTests {
    static let providerModels: [(model: String, provider: String)] = [
        ("gpt-4o-mini", "openai"), ("claude-haiku-4-5", "anthropic"), ("gemini-2.5-flash", "gemini"),
    ]

    @Test func healthAndReadinessNeedNoKey() async throws {
        try await GatewayHarness.with { gateway in
            let health = try await gateway.get("/healthz", key: nil)
            #expect(health.status == 200)
            #expect(health.json?["status"] == "ok")
            let ready = try await gateway.get("/readyz", key: nil)
            #expect(ready.status == 200)
            #expect(ready.json?["status"] == "ready")
        }
    }

    @Test func missingAndUnknownKeysAre401WithoutEchoingTheKey() async throws {
        try await GatewayHarness.with { gateway in
            let body: JSON = ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "hi"]]]
            let missing = try await gateway.post(json: body, key: nil)
            #expect(missing.status == 401)
            #expect(missing.json?["error"]?["type"] == "authentication_error")
            let wrongKey = "gw_wrong_key_should_never_be_echoed_123"
            let unknown = try await gateway.post(json: body, key: wrongKey)
            #expect(unknown.status == 401)
            #expect(!unknown.body.contains(wrongKey))
            #expect(gateway.openai.requests.isEmpty)
        }
    }

    @Test(arguments: [
        ("Bearer KEY", 200), ("bearer KEY", 200), ("BEARER  KEY ", 200), ("bEaReR KEY", 200),
        ("Basic KEY", 401), ("BearerKEY", 401), ("Bearer", 401), ("Bearers KEY", 401), ("Bear KEY", 401), (" KEY", 401),
    ])
    func authorizationSchemeIsBearerInAnyCase(header: String, status: Int) async throws {
        try await GatewayHarness.with { gateway in
            let body: JSON = ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "hi"]]]
            let value = header.replacingOccurrences(of: "KEY", with: GatewayHarness.clientKey)
            let reply = try await gateway.post(json: body, key: nil, headers: ["Authorization": value])
            #expect(reply.status == status, "Authorization: \(header)")
            if status == 401 { #expect(reply.json?["error"]?["type"] == "authentication_error") }
        }
    }

    @Test func unknownModelIs404AndForbiddenModelIs403() async throws {
        try await GatewayHarness.with { gateway in
            let unknown = try await gateway.post(json: ["model": "no-such-model", "messages": [["role": "user", "content": "hi"]]])
            #expect(unknown.status == 404)
            #expect(unknown.json?["error"]?["param"] == "model")
            #expect(unknown.json?["error"]?["code"] == "model_not_found")
            let forbidden = try await gateway.post(
                json: ["model": "claude-haiku-4-5", "messages": [["role": "user", "content": "hi"]]], key: GatewayHarness.limitedKey)
            #expect(forbidden.status == 403)
            #expect(forbidden.json?["error"]?["type"] == "permission_error")
            let allowed = try await gateway.post(
                json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "hi"]]], key: GatewayHarness.limitedKey)
            #expect(allowed.status == 200)
        }
    }

    @Test(arguments: [
        ("{not json", "invalid_json"),
        ("[1,2]", nil),
        (#"{"model":"gpt-4o-mini"}"#, "missing_required_parameter"),
        (#"{"model":"gpt-4o-mini","messages":[]}"#, "empty_array"),
        (#"{"model":"gpt-4o-mini","messages":"hi"}"#, "invalid_type"),
        (#"{"model":"gpt-4o-mini","messages":[{"role":"wizard","content":"hi"}]}"#, "invalid_value"),
        (#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":42}]}"#, "invalid_type"),
        (#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}"#, "invalid_type"),
        (#"{"model":42,"messages":[{"role":"user","content":"hi"}]}"#, "invalid_type"),
    ] as [(String, String?)])
    func malformedRequestsAre400AndTheNextRequestIsServed(body: String, code: String?) async throws {
        try await GatewayHarness.with { gateway in
            let bad = try await gateway.post(body: body)
            #expect(bad.status == 400)
            #expect(bad.json?["error"]?["type"] == "invalid_request_error")
            #expect(bad.json?["error"]?["message"]?.stringValue?.isEmpty == false)
            if let code { #expect(bad.json?["error"]?["code"]?.stringValue == code) }
            #expect(gateway.openai.requests.isEmpty)
            let good = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "hi"]]])
            #expect(good.status == 200)
        }
    }

    @Test func oversizedBodyIs413() async throws {
        try await GatewayHarness.with { gateway in
            let big = String(repeating: "a", count: 70 * 1024)
            let reply = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": .string(big)]]])
            #expect(reply.status == 413)
            #expect(reply.json?["error"]?["code"] == "request_too_large")
            let next = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "hi"]]])
            #expect(next.status == 200)
        }
    }

    @Test func unknownRouteIs404InTheEnvelope() async throws {
        try await GatewayHarness.with { gateway in
            let reply = try await gateway.get("/v1/nothing-here")
            #expect(reply.status == 404)
            #expect(reply.json?["error"]?["type"] == "not_found_error")
        }
    }

    @Test(arguments: providerModels, GatewayHarness.plainHTTPClients)
    func nonStreamedAnswerFromEachProvider(_ target: (model: String, provider: String), through plainHTTP: UpstreamClients.PlainHTTPClient) async throws {
        let (model, provider) = target
        try await GatewayHarness.with(plainHTTP: plainHTTP) { gateway in
            let reply = try await gateway.post(
                json: ["model": .string(model), "messages": [["role": "system", "content": "Be brief."], ["role": "user", "content": "hi there"]]],
                headers: ["X-Request-Id": "trace-123"])
            #expect(reply.status == 200)
            #expect(reply.json?["object"] == "chat.completion")
            #expect(reply.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == "Hello from \(provider): hi there")
            #expect(reply.json?["choices"]?.arrayValue?.first?["finish_reason"] == "stop")
            #expect((reply.json?["usage"]?["prompt_tokens"]?.intValue ?? 0) > 0)
            #expect(reply.header("X-Provider") == provider)
            #expect(reply.header("X-Request-Id") == "trace-123")
            #expect(Int(reply.header("X-Latency-Ms") ?? "") != nil)
            let cost = try #require(reply.header("X-Cost-USD"))
            #expect(cost.split(separator: ".").last?.count == 6)
            #expect(Double(cost)! > 0)
        }
    }

    @Test(arguments: providerModels, GatewayHarness.plainHTTPClients)
    func streamedAnswerFromEachProvider(_ target: (model: String, provider: String), through plainHTTP: UpstreamClients.PlainHTTPClient) async throws {
        let (model, provider) = target
        try await GatewayHarness.with(plainHTTP: plainHTTP) { gateway in
            let reply = try await gateway.post(
                json: ["model": .string(model), "stream": true, "stream_options": ["include_usage": true],
                       "messages": [["role": "user", "content": "stream please"]]])
            #expect(reply.status == 200)
            #expect(reply.header("content-type") == "text/event-stream")
            #expect(reply.header("X-Provider") == provider)
            let payloads = GatewayHarness.payloads(reply.body)
            #expect(payloads.last == "[DONE]")
            let chunks = payloads.dropLast().compactMap { try? JSON.parse($0) }
            #expect(chunks.count == payloads.count - 1)
            #expect(Set(chunks.compactMap { $0["id"]?.stringValue }).count == 1)
            #expect(chunks.allSatisfy { $0["object"] == "chat.completion.chunk" })
            #expect(chunks.first?["choices"]?.arrayValue?.first?["delta"]?["role"] == "assistant")
            let text = chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }.joined()
            #expect(text == "Hello from \(provider): stream please")
            let finishes = chunks.compactMap { $0["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue }
            #expect(finishes == ["stop"])
            let usage = try #require(chunks.last?["usage"])
            #expect(chunks.last?["choices"]?.arrayValue?.isEmpty == true)
            #expect((usage["completion_tokens"]?.intValue ?? 0) > 0)
        }
    }

    @Test(arguments: providerModels)
    func streamWithoutIncludeUsageHasNoUsageChunk(model: String, provider: String) async throws {
        try await GatewayHarness.with { gateway in
            let reply = try await gateway.post(json: ["model": .string(model), "stream": true, "messages": [["role": "user", "content": "hi"]]])
            let payloads = GatewayHarness.payloads(reply.body)
            #expect(payloads.last == "[DONE]")
            let chunks = payloads.dropLast().compactMap { try? JSON.parse($0) }
            #expect(!chunks.isEmpty)
            #expect(chunks.allSatisfy { $0["usage"] == nil && !($0["choices"]?.arrayValue?.isEmpty ?? true) })
        }
    }

    @Test(arguments: providerModels)
    func toolCallsFromEachProvider(model: String, provider: String) async throws {
        try await GatewayHarness.with { gateway in
            let tools: JSON = [["type": "function", "function": ["name": "get_weather", "description": "Weather",
                                                                 "parameters": ["type": "object", "properties": ["city": ["type": "string"]]]]]]
            let reply = try await gateway.post(json: ["model": .string(model), "tools": tools, "messages": [["role": "user", "content": "weather?"]]])
            #expect(reply.status == 200)
            let choice = try #require(reply.json?["choices"]?.arrayValue?.first)
            #expect(choice["finish_reason"] == "tool_calls")
            let call = try #require(choice["message"]?["tool_calls"]?.arrayValue?.first)
            #expect(call["function"]?["name"] == "get_weather")
            let arguments = try JSON.parse(call["function"]?["arguments"]?.stringValue ?? "")
            #expect(arguments["city"] == "Paris")
            let callID = try #require(call["id"]?.stringValue)

            let followUp = try await gateway.post(json: [
                "model": .string(model), "tools": tools,
                "messages": [
                    ["role": "user", "content": "weather?"],
                    ["role": "assistant", "content": .null, "tool_calls": [call]],
                    ["role": "tool", "tool_call_id": .string(callID), "content": "{\"temp\": 21}"],
                ],
            ])
            #expect(followUp.status == 200)
            #expect(followUp.json?["choices"]?.arrayValue?.first?["finish_reason"] == "stop")

            let streamed = try await gateway.post(json: ["model": .string(model), "stream": true, "tools": tools, "messages": [["role": "user", "content": "weather?"]]])
            let chunks = GatewayHarness.payloads(streamed.body).dropLast().compactMap { try? JSON.parse($0) }
            let deltas = chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["tool_calls"]?.arrayValue?.first }
            #expect(deltas.first?["function"]?["name"] == "get_weather")
            #expect(deltas.first?["id"]?.stringValue?.isEmpty == false)
            let streamedArguments = deltas.compactMap { $0["function"]?["arguments"]?.stringValue }.joined()
            #expect((try? JSON.parse(streamedArguments))?["city"] == "Paris")
            #expect(chunks.compactMap { $0["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue } == ["tool_calls"])
        }
    }

    @Test func providerWithUnsetVariableAnswers503NamingIt() async throws {
        try await GatewayHarness.with { gateway in
            let reply = try await gateway.post(json: ["model": "mistral-large", "messages": [["role": "user", "content": "hi"]]])
            #expect(reply.status == 503)
            #expect(reply.json?["error"]?["message"]?.stringValue?.contains("MISTRAL_API_KEY") == true)
        }
    }

    @Test func aChainOfUnconfiguredProvidersAnswers503NamingEveryVariable() async throws {
        try await GatewayHarness.with(configure: { config in
            var second = ProviderConfig(name: "mistral-eu", type: .openai, baseURL: "http://127.0.0.1:9/v1")
            second.missingVariables = ["MISTRAL_EU_API_KEY"]
            config.providers.append(second)
            config.models["all-off"] = ModelConfig(name: "all-off", provider: "mistral", upstream: "m", fallbacks: ["mistral-eu/m"])
        }) { gateway in
            let reply = try await gateway.post(json: ["model": "all-off", "messages": [["role": "user", "content": "hi"]]])
            #expect(reply.status == 503)
            let message = reply.json?["error"]?["message"]?.stringValue ?? ""
            #expect(message.contains("MISTRAL_API_KEY") && message.contains("MISTRAL_EU_API_KEY"))
            #expect(!message.contains(".."))
            #expect(reply.header("X-Attempts") == "2")
        }
    }

    @Test func providerSlashModelRoutesStraightToTheProvider() async throws {
        try await GatewayHarness.with { gateway in
            let reply = try await gateway.post(json: ["model": "openai/gpt-4.1", "messages": [["role": "user", "content": "hi"]]])
            #expect(reply.status == 200)
            #expect(gateway.openai.requests.last?.body?["model"] == "gpt-4.1")
            let configured = try await gateway.post(json: ["model": "local-llama", "messages": [["role": "user", "content": "hi"]]])
            #expect(configured.status == 200)
            #expect(gateway.openai.requests.last?.body?["model"] == "llama-3.1-8b")
        }
    }

    @Test(arguments: [("status-429", 429, "rate_limit_exceeded"), ("status-500", 502, "api_error"), ("status-400", 400, "invalid_request_error")])
    func upstreamErrorsAreMappedWithoutLeakingTheKey(model: String, status: Int, type: String) async throws {
        try await GatewayHarness.with { gateway in
            for provider in ["openai", "anthropic", "gemini"] {
                let reply = try await gateway.post(json: ["model": .string("\(provider)/\(model)"), "messages": [["role": "user", "content": "hi"]]])
                #expect(reply.status == status, "\(provider)")
                #expect(reply.json?["error"]?["type"]?.stringValue == type, "\(provider)")
                for fake in [gateway.openai, gateway.anthropic, gateway.gemini] {
                    #expect(!reply.body.contains(fake.key))
                }
                #expect(!reply.body.contains("127.0.0.1"))
            }
        }
    }

    @Test(arguments: ["openai", "anthropic", "gemini"])
    func truncatedStreamEndsWithAnErrorChunkAndNoDone(provider: String) async throws {
        try await GatewayHarness.with { gateway in
            let reply = try await gateway.post(json: ["model": .string("\(provider)/stream-truncate"), "stream": true, "messages": [["role": "user", "content": "hi"]]])
            #expect(reply.status == 200)
            let payloads = GatewayHarness.payloads(reply.body)
            #expect(!payloads.contains("[DONE]"))
            let last = try JSON.parse(payloads.last ?? "")
            #expect(last["error"]?["message"]?.stringValue?.isEmpty == false)
        }
    }

    @Test(arguments: GatewayHarness.plainHTTPClients)
    func stalledStreamEndsWithAnIdleTimeoutErrorChunk(through plainHTTP: UpstreamClients.PlainHTTPClient) async throws {
        try await GatewayHarness.with(plainHTTP: plainHTTP) { gateway in
            let reply = try await gateway.post(json: ["model": "openai/stall-stream", "stream": true, "messages": [["role": "user", "content": "hi"]]])
            let payloads = GatewayHarness.payloads(reply.body)
            #expect(!payloads.contains("[DONE]"))
            let last = try JSON.parse(payloads.last ?? "")
            #expect(last["error"]?["code"] == "upstream_timeout")
        }
    }

    @Test(arguments: GatewayHarness.plainHTTPClients)
    func slowProviderHeadIs504(through plainHTTP: UpstreamClients.PlainHTTPClient) async throws {
        try await GatewayHarness.with(plainHTTP: plainHTTP) { gateway in
            let reply = try await gateway.post(json: ["model": "openai/slow-head", "messages": [["role": "user", "content": "hi"]]])
            #expect(reply.status == 504)
            #expect(reply.json?["error"]?["code"] == "upstream_timeout")
        }
    }

    @Test(arguments: GatewayHarness.plainHTTPClients)
    func anAnswerWhoseBodyOutlivesTheTotalTimeoutIs504(through plainHTTP: UpstreamClients.PlainHTTPClient) async throws {
        // The head arrives at once, then half the body, then nothing: only the total timeout can end it.
        let server = try await ScriptedHTTPServer { _, _ in
            .parts(["HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{\"id\":\"chatcmpl-1\","])
        }
        let port = server.port
        try await GatewayHarness.with(plainHTTP: plainHTTP, configure: { config in
            FailoverTests.copyProvider(&config, from: "openai", as: "stalling") { provider in
                provider.baseURL = "http://127.0.0.1:\(port)/v1"
                provider.timeouts.idle = .seconds(20)
                provider.timeouts.firstByte = .seconds(20)
                provider.timeouts.total = .milliseconds(400)
            }
        }) { gateway in
            let started = ContinuousClock.now
            let reply = try await gateway.post(json: ["model": "stalling/gpt-4o-mini", "messages": [["role": "user", "content": "hi"]]])
            #expect(reply.status == 504)
            #expect(reply.json?["error"]?["message"]?.stringValue?.contains("total timeout") == true, "\(reply.body)")
            #expect(ContinuousClock.now - started < .seconds(5))
        }
        await server.close()
    }

    @Test func modelsListFollowsTheKeysAllowList() async throws {
        try await GatewayHarness.with { gateway in
            let all = try await gateway.get("/v1/models")
            #expect(all.status == 200)
            let ids = Set(all.json?["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [])
            #expect(ids.isSuperset(of: ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash", "local-llama"]))
            #expect(!ids.contains("mistral-large"))
            let limited = try await gateway.get("/v1/models", key: GatewayHarness.limitedKey)
            let limitedIDs = limited.json?["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
            #expect(!limitedIDs.isEmpty)
            #expect(limitedIDs.allSatisfy { $0.hasPrefix("gpt-") })
            let one = try await gateway.get("/v1/models/gpt-4o-mini")
            #expect(one.json?["id"] == "gpt-4o-mini")
        }
    }

    @Test func providerCredentialsGoInHeadersNeverInTheURL() async throws {
        try await GatewayHarness.with { gateway in
            _ = try await gateway.post(json: ["model": "gemini-2.5-flash", "messages": [["role": "user", "content": "hi"]]])
            _ = try await gateway.post(json: ["model": "claude-haiku-4-5", "messages": [["role": "user", "content": "hi"]]])
            _ = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "hi"]]])
            let gemini = try #require(gateway.gemini.requests.last)
            #expect(gemini.headers["x-goog-api-key"] == gateway.gemini.key)
            #expect(!gemini.path.contains(gateway.gemini.key))
            let anthropic = try #require(gateway.anthropic.requests.last)
            #expect(anthropic.headers["x-api-key"] == gateway.anthropic.key)
            #expect(anthropic.headers["anthropic-version"] != nil)
            #expect(gateway.openai.requests.last?.headers["authorization"] == "Bearer \(gateway.openai.key)")
            for fake in [gateway.openai, gateway.anthropic, gateway.gemini] {
                #expect(fake.requests.allSatisfy { $0.headers["authorization"] != "Bearer \(GatewayHarness.clientKey)" })
            }
        }
    }

    @Test(arguments: GatewayHarness.plainHTTPClients)
    func clientDisconnectCancelsTheUpstreamStream(through plainHTTP: UpstreamClients.PlainHTTPClient) async throws {
        try await GatewayHarness.with(plainHTTP: plainHTTP, configure: { config in
            for index in config.providers.indices { config.providers[index].timeouts.idle = .seconds(20) }
        }) { gateway in
            #expect(try await gateway.readTheStartOfAStallingStreamThenLeave())
            #expect(gateway.openai.cancelledStreams == 0)
            let waitStarted = ContinuousClock.now
            while gateway.openai.cancelledStreams == 0, ContinuousClock.now - waitStarted < .seconds(5) {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(gateway.openai.cancelledStreams == 1, "the gateway kept the upstream stream open after the client left")
        }
    }

    @Test func anOpenAICompatibleAnswerReachesTheClientAsTheProviderWroteIt() async throws {
        // Spacing, member order, an escape and a trailing newline that writing the object again would change.
        let written = #"{"object": "chat.completion", "id": "chatcmpl-x", "model": "local-model", "choices": [{"index": 0, "message": {"role": "assistant", "content": "caf\u00e9 \/ ok"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}"# + "\n"
        let server = try await ScriptedHTTPServer { _, _ in .parts([ScriptedHTTPServer.ok(written)]) }
        let port = server.port
        try await GatewayHarness.with(configure: { config in
            config.cache.backend = .memory
            var provider = config.provider(named: "openai")!
            provider.name = "local"
            provider.baseURL = "http://127.0.0.1:\(port)/v1"
            config.providers.append(provider)
        }) { gateway in
            let expectedStart = String(written.dropLast(2))  // without the newline and the closing brace
            for attempt in ["miss", "exact"] {
                let reply = try await gateway.post(json: ["model": "local/local-model", "messages": [["role": "user", "content": "hi"]]])
                #expect(reply.status == 200)
                #expect(reply.header("X-Cache-Hit") == attempt)
                #expect(reply.body.hasPrefix(expectedStart + ",\"cost_usd\":"), "\(reply.body)")
                #expect(reply.json?["choices"]?.arrayValue?.first?["message"]?["content"] == "caf\u{e9} / ok")
                #expect(reply.json?["latency_ms"]?.intValue != nil)
            }
            #expect(server.received.count == 1)
        }
        await server.close()
    }

    @Test func garbageBodiesNeverBreakTheDaemon() async throws {
        try await GatewayHarness.with { gateway in
            var bodies: [String] = [
                String(repeating: "[", count: 20_000), String(repeating: "{\"a\":", count: 5_000),
                #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\ud800"}]}"#,
                #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":1e400}"#,
                #"{"model":"claude-haiku-4-5","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:,"}}]}]}"#,
                #"{"model":"claude-haiku-4-5","messages":[{"role":"assistant","content":"x"}]}"#,
                #"{"model":"gemini-2.5-flash","messages":[{"role":"tool","tool_call_id":"nope","content":"x"}]}"#,
                #"{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}],"n":3}"#,
                #"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"x"}],"logit_bias":{"1":2}}"#,
                "", "null", "\u{0}", "{\"model\":", #"{"model":"gpt-4o-mini","messages":[null]}"#,
            ]
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<150 {
                let length = Int.random(in: 1...300, using: &generator)
                bodies.append(String(decoding: (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }, as: UTF8.self))
            }
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                var statuses: [Int] = []
                for (index, body) in bodies.enumerated() {
                    if index >= 8, let status = try await group.next() { statuses.append(status) }
                    group.addTask { try await gateway.post(body: body).status }
                }
                for try await status in group { statuses.append(status) }
                return statuses
            }
            #expect(statuses.count == bodies.count)
            #expect(statuses.allSatisfy { (400..<500).contains($0) }, "\(statuses.filter { !(400..<500).contains($0) })")
            let good = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "still alive"]]])
            #expect(good.status == 200)
            #expect(good.json?["choices"]?.arrayValue?.first?["message"]?["content"] == "Hello from openai: still alive")
        }
    }
}
