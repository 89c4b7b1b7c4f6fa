import Foundation
import Testing
@testable import GatewayCore

/// `POST /v1/messages` and `count_tokens` as the Anthropic SDKs and Claude Code use them: passthrough to Anthropic,
/// translation to the other providers both ways, streams checked against Anthropic's event grammar.
@Suite("Anthropic Messages ingress")
struct AnthropicMessagesTests {
    static let price = Price(input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75)

    /// Claude Code's dated model id on Anthropic, and the same API in front of OpenAI and Gemini.
    static func configure(_ config: inout GatewayConfig) {
        config.models["claude-sonnet-4-5-20250929"] = ModelConfig(
            name: "claude-sonnet-4-5-20250929", provider: "anthropic", upstream: "claude-sonnet-4-5", price: price)
        config.models["claude-haiku-4-5-20251001"] = ModelConfig(
            name: "claude-haiku-4-5-20251001", provider: "openai", upstream: "gpt-4o-mini", price: price)
        config.models["gemini-behind-messages"] = ModelConfig(
            name: "gemini-behind-messages", provider: "gemini", upstream: "gemini-2.0-flash", price: price)
    }

    static func ask(_ text: String, model: String, stream: Bool = false, extra: [String: JSON] = [:]) -> JSON {
        var body: [String: JSON] = [
            "model": .string(model), "max_tokens": 2048,
            "system": [["type": "text", "text": "You are terse.", "cache_control": ["type": "ephemeral"]]],
            "messages": [["role": "user", "content": .string(text)]],
        ]
        if stream { body["stream"] = true }
        for (name, value) in extra { body[name] = value }
        return .object(body)
    }

    static let headers = ["anthropic-version": "2023-06-01"]

    static let weatherTool: JSON = [
        "name": "get_weather", "description": "The weather in a city",
        "input_schema": ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]],
    ]

    // MARK: - Passthrough to Anthropic

    @Test func anAnthropicModelGetsTheBodyAsSentAndTheAnswerAsItCame() async throws {
        try await GatewayHarness.with(configure: Self.configure) { gateway in
            // Odd spacing and key order: every byte but the model's survives.
            let body = #"{ "max_tokens" : 2048, "model":"claude-sonnet-4-5-20250929","messages":[{"role":"user","content":[{"type":"text","text":"caf\u00e9 \ud83d\ude00","cache_control":{"type":"ephemeral"}}]}] }"#
            let reply = try await gateway.post(
                "/v1/messages", body: body, key: nil,
                headers: ["x-api-key": GatewayHarness.clientKey, "anthropic-version": "2023-06-01", "anthropic-beta": "prompt-caching-2024-07-31"])
            #expect(reply.status == 200)
            let sent = try #require(gateway.anthropic.requests.last)
            #expect(String(decoding: sent.raw, as: UTF8.self) == body.replacingOccurrences(of: "claude-sonnet-4-5-20250929", with: "claude-sonnet-4-5"))
            #expect(sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31")
            #expect(sent.headers["x-api-key"] == gateway.anthropic.key)
            let answer = try #require(reply.json)
            #expect(answer["type"] == "message")
            #expect(answer["content"]?.arrayValue?.first?["text"]?.stringValue?.hasPrefix("Hello from anthropic:") == true)
            #expect(answer["model"] == "claude-sonnet-4-5")
            #expect(reply.header("x-provider") == "anthropic")
            let cost = try #require(reply.header("x-cost-usd").flatMap(Double.init))
            let usage = try #require(answer["usage"])
            let input = Double(usage["input_tokens"]?.intValue ?? 0), output = Double(usage["output_tokens"]?.intValue ?? 0)
            let written = Double(usage["cache_creation_input_tokens"]?.intValue ?? 0)
            #expect(written == 20, "the fake wrote the marked prompt to its cache")
            // Input at $3, the prompt-cache write at $3.75, output at $15 a million tokens.
            let expected = (input * 3 + written * 3.75 + output * 15) / 1_000_000
            #expect(abs(cost - expected) < 1e-9, "cost \(cost), expected \(expected)")
        }
    }

    @Test func thinkingBlocksAndTheirSignaturesGoBackAndForthUnchanged() async throws {
        try await GatewayHarness.with(configure: Self.configure) { gateway in
            let thinking: JSON = ["type": "enabled", "budget_tokens": 1024]
            let first = try await gateway.post(
                "/v1/messages", json: Self.ask("plan a trip", model: "claude-sonnet-4-5-20250929", extra: ["thinking": thinking]), headers: Self.headers)
            #expect(first.status == 200)
            let content = try #require(first.json?["content"]?.arrayValue)
            #expect(content.first?["type"] == "thinking")
            #expect(content.first?["signature"]?.stringValue?.hasPrefix("sig-") == true)
            // The next turn sends the thinking block back; the provider refuses one whose signature changed.
            let next = Self.ask("and then?", model: "claude-sonnet-4-5-20250929", extra: [
                "thinking": thinking,
                "messages": [
                    ["role": "user", "content": "plan a trip"], ["role": "assistant", "content": .array(content)],
                    ["role": "user", "content": "and then?"],
                ],
            ])
            #expect(try await gateway.post("/v1/messages", json: next, headers: Self.headers).status == 200)
            var tampered = content
            tampered[0]["signature"] = "sig-forged"
            var refused = next
            refused["messages"] = [
                ["role": "user", "content": "plan a trip"], ["role": "assistant", "content": .array(tampered)], ["role": "user", "content": "and then?"],
            ]
            let reply = try await gateway.post("/v1/messages", json: refused, headers: Self.headers)
            #expect(reply.status == 400)
            #expect(reply.json?["type"] == "error")
            #expect(reply.json?["error"]?["type"] == "invalid_request_error")
        }
    }

    @Test func aStreamFromAnthropicIsRelayedEventForEventWithThinkingAndSignatureDeltas() async throws {
        try await GatewayHarness.with(configure: Self.configure) { gateway in
            let body = Self.ask("stream me", model: "claude-sonnet-4-5-20250929", stream: true, extra: ["thinking": ["type": "enabled", "budget_tokens": 1024]])
            let reply = try await gateway.post("/v1/messages", json: body, headers: Self.headers)
            #expect(reply.status == 200)
            let events = try Self.checkGrammar(reply.body)
            let deltas = events.compactMap { $0.json["delta"]?["type"]?.stringValue }
            #expect(deltas.contains("thinking_delta") && deltas.contains("signature_delta") && deltas.contains("text_delta"))
            let sent = try #require(gateway.anthropic.requests.last?.body)
            let expected = try FakeAnthropicRules.streamEvents(for: sent).map { try JSON.parse(Array($0.data.utf8)) }
            #expect(events.map(\.json) == expected, "every event as the provider sent it")
            let record = try #require(try await gateway.records.waitFor(1).first)
            #expect(record.endpoint == "/v1/messages")
            #expect((record.completionTokens ?? 0) > 0)
            #expect((record.costUSD ?? 0) > 0)
        }
    }

    @Test(arguments: [false, true])
    func spendOnMessagesCountsAgainstABudgetThatThenRefusesInAnthropicsEnvelope(stream: Bool) async throws {
        try await GatewayHarness.with(configure: { config in
            Self.configure(&config)
            // At $3 / $15 a million tokens an answer costs about $0.0001, and 20 output tokens hold about $0.0003
            // until it is settled: a hard cap of $0.0005 admits two.
            config.budgets = [BudgetTests.budget("team", limit: 0.0005)]
        }) { gateway in
            var statuses: [Int] = []
            var last: GatewayHarness.Reply?
            for index in 0..<6 {
                let reply = try await gateway.post(
                    "/v1/messages", json: Self.ask("spend \(index) on claude", model: "claude-sonnet-4-5-20250929", stream: stream, extra: ["max_tokens": 20]), headers: Self.headers)
                statuses.append(reply.status)
                last = reply
            }
            #expect(statuses.prefix(1) == [200])
            #expect(statuses.last == 429, "spend through /v1/messages reached the budget: \(statuses)")
            #expect(last?.json?["type"] == "error")
            #expect(last?.json?["error"]?["type"] == "rate_limit_error")
            let records = try await gateway.records.waitFor(6)
            let spent = records.compactMap(\.costUSD).reduce(0, +)
            #expect(records.filter { $0.statusCode == 200 }.allSatisfy { ($0.costUSD ?? 0) > 0 }, "every answer was priced")
            #expect(spent > 0 && spent <= 0.0005, "the hard cap held: \(spent)")
        }
    }

    // MARK: - Translated to OpenAI and Gemini

    @Test(arguments: ["claude-haiku-4-5-20251001", "gemini-behind-messages"])
    func otherProvidersAnswerInTheMessagesShape(model: String) async throws {
        try await GatewayHarness.with(configure: Self.configure) { gateway in
            let reply = try await gateway.post("/v1/messages", json: Self.ask("hi there", model: model), headers: Self.headers)
            #expect(reply.status == 200)
            let answer = try #require(reply.json)
            #expect(answer["type"] == "message")
            #expect(answer["role"] == "assistant")
            #expect(answer["id"]?.stringValue?.hasPrefix("msg_") == true)
            #expect(answer["stop_reason"] == "end_turn")
            let text = try #require(answer["content"]?.arrayValue?.first?["text"]?.stringValue)
            #expect(text.hasSuffix("hi there"))
            #expect((answer["usage"]?["input_tokens"]?.intValue ?? 0) > 0)
            #expect((answer["usage"]?["output_tokens"]?.intValue ?? 0) > 0)

            let streamed = try await gateway.post("/v1/messages", json: Self.ask("hi there", model: model, stream: true), headers: Self.headers)
            let events = try Self.checkGrammar(streamed.body)
            let joined = events.compactMap { $0.json["delta"]?["text"]?.stringValue }.joined()
            #expect(joined == text)
            let last = try #require(events.last { $0.name == "message_delta" })
            #expect(last.json["delta"]?["stop_reason"] == "end_turn")
            #expect((last.json["usage"]?["output_tokens"]?.intValue ?? 0) > 0)
        }
    }

    @Test(arguments: ["claude-haiku-4-5-20251001", "gemini-behind-messages"])
    func toolUseTranslatesBothWaysWithItsArgumentsStreamedInOrder(model: String) async throws {
        try await GatewayHarness.with(configure: Self.configure) { gateway in
            let ask = Self.ask("weather in Paris?", model: model, extra: ["tools": [Self.weatherTool], "tool_choice": ["type": "auto"]])
            let reply = try await gateway.post("/v1/messages", json: ask, headers: Self.headers)
            #expect(reply.status == 200)
            #expect(reply.json?["stop_reason"] == "tool_use")
            let use = try #require(reply.json?["content"]?.arrayValue?.first { $0["type"] == "tool_use" })
            #expect(use["name"] == "get_weather")
            #expect(use["input"]?["city"] == "Paris")

            var streamed = ask
            streamed["stream"] = true
            let events = try Self.checkGrammar(try await gateway.post("/v1/messages", json: streamed, headers: Self.headers).body)
            let start = try #require(events.first { $0.json["content_block"]?["type"] == "tool_use" })
            #expect(start.json["content_block"]?["name"] == "get_weather")
            let arguments = events.compactMap { $0.json["delta"]?["partial_json"]?.stringValue }.joined()
            #expect(try JSON.parse(Array(arguments.utf8))["city"] == "Paris", "the streamed JSON is whole, never empty")

            // The result goes back as a tool_result block.
            let id = try #require(use["id"]?.stringValue)
            var followUp = ask
            followUp["messages"] = [
                ["role": "user", "content": "weather in Paris?"],
                ["role": "assistant", "content": [use]],
                ["role": "user", "content": [["type": "tool_result", "tool_use_id": .string(id), "content": "sunny, 21 C"]]],
            ]
            let final = try await gateway.post("/v1/messages", json: followUp, headers: Self.headers)
            #expect(final.status == 200)
            #expect(final.json?["stop_reason"] == "end_turn")
        }
    }

    @Test func whatAnotherProviderCannotHonourIsRefusedNamingIt() async throws {
        try await GatewayHarness.with(configure: Self.configure) { gateway in
            let search: JSON = ["type": "web_search_20250305", "name": "web_search", "max_uses": 2]
            let reply = try await gateway.post(
                "/v1/messages", json: Self.ask("news?", model: "claude-haiku-4-5-20251001", extra: ["tools": [search]]), headers: Self.headers)
            #expect(reply.status == 400)
            #expect(reply.json?["error"]?["type"] == "invalid_request_error")
            let message = try #require(reply.json?["error"]?["message"]?.stringValue)
            #expect(message.contains("tools.0") && message.contains("web_search"))
            #expect(gateway.openai.requests.isEmpty, "nothing reached the provider")
            // To Anthropic the same request goes through.
            let anthropic = try await gateway.post(
                "/v1/messages", json: Self.ask("news?", model: "claude-sonnet-4-5-20250929", extra: ["tools": [search]]), headers: Self.headers)
            #expect(anthropic.status != 400 || anthropic.json?["error"]?["message"]?.stringValue?.contains("cannot honour") == false)
        }
    }

    // MARK: - Errors, keys, models, count_tokens

    @Test func errorsComeInAnthropicsEnvelopeWithItsTypes() async throws {
        try await GatewayHarness.with(configure: Self.configure) { gateway in
            var missing = Self.ask("x", model: "claude-sonnet-4-5-20250929")
            missing["max_tokens"] = nil
            let cases: [(GatewayHarness.Reply, Int, String)] = [
                (try await gateway.post("/v1/messages", json: missing, headers: Self.headers), 400, "invalid_request_error"),
                (try await gateway.post("/v1/messages", json: Self.ask("x", model: "nope"), headers: Self.headers), 404, "not_found_error"),
                (try await gateway.post("/v1/messages", json: Self.ask("x", model: "claude-sonnet-4-5-20250929"), key: nil, headers: ["x-api-key": "gw_wrong"]), 401, "authentication_error"),
                (try await gateway.post("/v1/messages", body: "{not json", headers: Self.headers), 400, "invalid_request_error"),
            ]
            for (reply, status, type) in cases {
                #expect(reply.status == status)
                #expect(reply.json?["type"] == "error")
                #expect(reply.json?["error"]?["type"]?.stringValue == type)
                #expect(reply.json?["error"]?["message"]?.stringValue?.isEmpty == false)
                #expect(!reply.body.contains(GatewayHarness.clientKey) && !reply.body.contains(gateway.anthropic.key))
            }
        }
    }

    @Test func countTokensIsAnthropicsOwnForAnthropicAndAnEstimateElsewhere() async throws {
        try await GatewayHarness.with(configure: Self.configure) { gateway in
            let body: JSON = ["model": "claude-sonnet-4-5-20250929", "messages": [["role": "user", "content": "count these words please"]], "tools": [Self.weatherTool]]
            let exact = try await gateway.post("/v1/messages/count_tokens", json: body, headers: Self.headers)
            #expect(exact.status == 200)
            let sent = try #require(gateway.anthropic.requests.last)
            #expect(sent.path == "/v1/messages/count_tokens")
            #expect(sent.headers["x-api-key"] == gateway.anthropic.key)
            #expect(exact.json?["input_tokens"] == FakeAnthropicRules.tokenCount(for: try #require(sent.body))["input_tokens"])
            #expect(exact.header("x-token-count") == "provider")

            var other = body
            other["model"] = "claude-haiku-4-5-20251001"
            let estimate = try await gateway.post("/v1/messages/count_tokens", json: other, headers: Self.headers)
            #expect(estimate.status == 200)
            #expect(estimate.header("x-token-count") == "estimate")
            #expect((estimate.json?["input_tokens"]?.intValue ?? 0) > 0)
            #expect(gateway.openai.requests.isEmpty)
        }
    }

    @Test func modelsAreListedInAnthropicsShapeForAnthropicClients() async throws {
        try await GatewayHarness.with(configure: Self.configure) { gateway in
            let reply = try await gateway.get("/v1/models", key: nil, headers: ["x-api-key": GatewayHarness.clientKey, "anthropic-version": "2023-06-01"])
            #expect(reply.status == 200)
            let data = try #require(reply.json?["data"]?.arrayValue)
            #expect(data.contains { $0["id"] == "claude-sonnet-4-5-20250929" && $0["type"] == "model" })
            #expect(reply.json?["has_more"] == false)
            #expect(reply.json?["object"] == nil)
            let openAI = try await gateway.get("/v1/models")
            #expect(openAI.json?["object"] == "list")
        }
    }

    @Test func theExactCacheReplaysAMessagesAnswerOnlyToMessagesClients() async throws {
        try await GatewayHarness.with(configure: { config in
            Self.configure(&config)
            config.cache.backend = .memory
        }) { gateway in
            let ask = Self.ask("cache me", model: "claude-sonnet-4-5-20250929")
            let first = try await gateway.post("/v1/messages", json: ask, headers: Self.headers)
            let second = try await gateway.post("/v1/messages", json: ask, headers: Self.headers)
            #expect(first.header("x-cache-hit") == "miss")
            #expect(second.header("x-cache-hit") == "exact")
            #expect(second.body == first.body, "the provider's own answer, replayed byte for byte")
            #expect(gateway.anthropic.requests.count == 1)
            let streamed = try await gateway.post("/v1/messages", json: Self.ask("cache me", model: "claude-sonnet-4-5-20250929", stream: true), headers: Self.headers)
            _ = try Self.checkGrammar(streamed.body)
            let chat: JSON = ["model": "claude-sonnet-4-5-20250929", "max_tokens": 2048, "messages": [["role": "system", "content": "You are terse."], ["role": "user", "content": "cache me"]]]
            let openAI = try await gateway.post(json: chat)
            #expect(openAI.status == 200)
            #expect(openAI.header("x-cache-hit") == "miss")
            #expect(openAI.json?["object"] == "chat.completion")
        }
    }

    // MARK: - A Claude Code session

    /// Claude Code's tools as it declares them: JSON Schema draft 7, no additional properties.
    static let claudeCodeTools: [JSON] = ["Bash", "Read", "Edit", "TodoWrite"].map { name in
        [
            "name": .string(name), "description": .string("Claude Code's \(name) tool"),
            "input_schema": [
                "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": false,
                "properties": ["command": ["type": "string"], "file_path": ["type": "string"]],
            ],
        ]
    }

    /// What Claude Code sends through `ANTHROPIC_BASE_URL` with `ANTHROPIC_AUTH_TOKEN`: `?beta=true` on the path,
    /// its beta flags, a Bearer token, system blocks marked for the prompt cache, its tool set, thinking, streams.
    static func claudeCodeSession(_ gateway: GatewayHarness, main: String, small: String) async throws -> [Event] {
        let headers = [
            "authorization": "Bearer \(GatewayHarness.clientKey)", "anthropic-version": "2023-06-01", "x-app": "cli",
            "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
        ]
        let system: JSON = [
            ["type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."],
            ["type": "text", "text": "Working directory: /work/project", "cache_control": ["type": "ephemeral"]],
        ]
        let thinking: JSON = ["type": "enabled", "budget_tokens": 1024]
        let metadata: JSON = ["user_id": "user_0123abcd_account__session_4567"]
        var turns: [JSON] = [["role": "user", "content": [["type": "text", "text": "list the files", "cache_control": ["type": "ephemeral"]]]]]

        let counted = try await gateway.post(
            "/v1/messages/count_tokens?beta=true",
            json: ["model": .string(main), "system": system, "tools": .array(Self.claudeCodeTools), "messages": .array(turns)], key: nil, headers: headers)
        #expect(counted.status == 200)
        #expect((counted.json?["input_tokens"]?.intValue ?? 0) > 0)

        // The small fast model names the conversation in the background.
        let title = try await gateway.post(
            "/v1/messages?beta=true",
            json: ["model": .string(small), "max_tokens": 512, "system": [["type": "text", "text": "Summarize in five words."]], "messages": .array(turns), "metadata": metadata],
            key: nil, headers: headers)
        #expect(title.status == 200)
        #expect(title.json?["content"]?.arrayValue?.first?["type"] == "text")

        func turn() async throws -> (events: [Event], content: [JSON]) {
            let body: JSON = [
                "model": .string(main), "max_tokens": 32000, "stream": true, "system": system, "tools": .array(Self.claudeCodeTools),
                "thinking": thinking, "metadata": metadata, "messages": .array(turns),
            ]
            let reply = try await gateway.post("/v1/messages?beta=true", json: body, key: nil, headers: headers)
            #expect(reply.status == 200, "\(reply.body)")
            let events = try Self.checkGrammar(reply.body)
            return (events, Self.assemble(events))
        }
        let first = try await turn()
        let use = try #require(first.content.first { $0["type"] == "tool_use" }, "the first turn calls a tool")
        #expect(use["name"] == "Bash")
        #expect(use["input"]?.objectValue?.isEmpty == false, "the tool's input arrived whole, never {}")
        turns.append(["role": "assistant", "content": .array(first.content)])
        turns.append(["role": "user", "content": [["type": "tool_result", "tool_use_id": use["id"] ?? "", "content": "README.md\nPackage.swift"]]])
        let second = try await turn()
        #expect(second.content.contains { $0["type"] == "text" }, "the answer after the tool result is text")
        return first.events + second.events
    }

    /// The message a stream's events build, as the Anthropic SDKs assemble it.
    static func assemble(_ events: [Event]) -> [JSON] {
        var blocks: [JSON] = []
        var partial: [Int: String] = [:]
        for event in events {
            let index = Int(event.json["index"]?.intValue ?? 0)
            switch event.name {
            case "content_block_start": blocks.append(event.json["content_block"] ?? [:])
            case "content_block_delta":
                let delta = event.json["delta"] ?? [:]
                switch delta["type"]?.stringValue {
                case "text_delta": blocks[index]["text"] = .string((blocks[index]["text"]?.stringValue ?? "") + (delta["text"]?.stringValue ?? ""))
                case "thinking_delta": blocks[index]["thinking"] = .string((blocks[index]["thinking"]?.stringValue ?? "") + (delta["thinking"]?.stringValue ?? ""))
                case "signature_delta": blocks[index]["signature"] = delta["signature"] ?? ""
                case "input_json_delta": partial[index, default: ""] += delta["partial_json"]?.stringValue ?? ""
                default: break
                }
            case "content_block_stop":
                if let json = partial[index] { blocks[index]["input"] = (try? JSON.parse(Array(json.utf8))) ?? [:] }
            default: break
            }
        }
        return blocks
    }

    @Test func aClaudeCodeSessionWorksOnAnthropicWithThinkingSignedAcrossTurns() async throws {
        try await GatewayHarness.with(configure: Self.configure) { gateway in
            let events = try await Self.claudeCodeSession(gateway, main: "claude-sonnet-4-5-20250929", small: "claude-haiku-4-5-20251001")
            #expect(events.contains { $0.json["delta"]?["type"] == "signature_delta" })
            let sent = gateway.anthropic.requests.filter { $0.path == "/v1/messages" }
            #expect(sent.count == 2)
            #expect(sent.allSatisfy { $0.headers["anthropic-beta"]?.contains("claude-code-20250219") == true })
            #expect(gateway.anthropic.requests.contains { $0.path == "/v1/messages/count_tokens" })
            // The background call went to OpenAI, translated.
            #expect(gateway.openai.requests.count == 1)
        }
    }

    @Test func aClaudeCodeSessionWorksWhenAnotherProviderServesTheMainModel() async throws {
        try await GatewayHarness.with(configure: { config in
            Self.configure(&config)
            config.models["claude-sonnet-4-5-20250929"] = ModelConfig(
                name: "claude-sonnet-4-5-20250929", provider: "openai", upstream: "o4-mini", price: Self.price)
        }) { gateway in
            let events = try await Self.claudeCodeSession(gateway, main: "claude-sonnet-4-5-20250929", small: "claude-haiku-4-5-20251001")
            #expect(!events.contains { $0.json["delta"]?["type"] == "thinking_delta" })
            #expect(gateway.anthropic.requests.isEmpty)
            let sent = try #require(gateway.openai.requests.last?.body)
            #expect(sent["reasoning_effort"] == "low")
            #expect(sent["messages"]?.arrayValue?.contains { $0["role"] == "tool" } == true)
        }
    }

    // MARK: - Anthropic's stream grammar

    struct Event {
        var name: String
        var data: String
        var json: JSON
    }

    /// The events of a Messages stream, checked against Anthropic's documented grammar: `message_start`, then blocks
    /// (`content_block_start` i, its deltas, `content_block_stop` i, with i counting from 0 and deltas of the block's
    /// type), `ping` anywhere, then `message_delta` and `message_stop`; each event's name equal to its data's type.
    static func checkGrammar(_ body: String) throws -> [Event] {
        var parser = ServerSentEventParser()
        let events = try parser.feed(Array(body.utf8)) + parser.finish()
        var result: [Event] = []
        for event in events {
            let json = try JSON.parse(Array(event.data.utf8))
            let name = try #require(event.event, "every event is named")
            #expect(json["type"]?.stringValue == name)
            result.append(Event(name: name, data: event.data, json: json))
        }
        let names = result.map(\.name).filter { $0 != "ping" }
        #expect(names.first == "message_start")
        #expect(names.suffix(2) == ["message_delta", "message_stop"])
        var open: (index: Int, type: String)?
        var next = 0
        for event in result.dropFirst() where !["ping", "message_delta", "message_stop"].contains(event.name) {
            let index = event.json["index"]?.intValue.map { Int($0) }
            switch event.name {
            case "content_block_start":
                #expect(open == nil, "a block starts only after the last one stopped")
                #expect(index == next)
                open = (next, event.json["content_block"]?["type"]?.stringValue ?? "")
                next += 1
            case "content_block_delta":
                #expect(index == open?.index)
                let allowed: [String: Set<String>] = [
                    "text": ["text_delta", "citations_delta"], "tool_use": ["input_json_delta"], "thinking": ["thinking_delta", "signature_delta"],
                ]
                let permitted = allowed[open?.type ?? "", default: []]
                let deltaType = event.json["delta"]?["type"]?.stringValue ?? ""
                #expect(permitted.contains(deltaType))
            case "content_block_stop":
                #expect(index == open?.index)
                open = nil
            default:
                Issue.record("unexpected event \(event.name)")
            }
        }
        #expect(open == nil, "every block stopped")
        return result
    }
}
