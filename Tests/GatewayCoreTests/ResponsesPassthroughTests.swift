import Foundation
import Testing

@testable import GatewayCore

/// `POST /v1/responses` to a provider that serves OpenAI's Responses API (`responses_api`): the body goes as sent, the
/// answer and the stream come back as OpenAI wrote them, priced, logged and kept like any other.
@Suite("OpenAI Responses passthrough", .timeLimit(.minutes(2)))
struct ResponsesPassthroughTests {
    /// A `native` model on a copy of the fake OpenAI provider that serves the Responses API, priced.
    static func configure(_ config: inout GatewayConfig) {
        FailoverTests.copyProvider(&config, from: "openai", as: "openai-native") { $0.responsesAPI = true }
        config.models["native"] = ModelConfig(
            name: "native", provider: "openai-native", upstream: "gpt-4.1", fallbacks: [], price: Price(input: 2, output: 8))
    }

    /// The text of a response's first output item's first part.
    static func outputText(_ response: JSON?) -> String? {
        response?["output"]?.arrayValue?.first?["content"]?.arrayValue?.first?["text"]?.stringValue
    }

    @Test func theBodyGoesAsSentAndTheAnswerComesBackAsOpenAIWroteIt() async throws {
        try await GatewayHarness.with(configure: Self.configure, requestLogStore: StoredResponsesRouteTests.sqlite()) { gateway in
            let sent = #"{ "model" : "native", "input": "as sent",  "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low", "summary": "auto"}, "max_output_tokens": 64 }"#
            let reply = try await gateway.post("/v1/responses", body: sent)
            #expect(reply.status == 200)
            let recorded = try #require(gateway.openai.requests.last)
            #expect(recorded.path == "/v1/responses")
            let expected = sent.replacingOccurrences(of: #""model" : "native""#, with: #""model" : "gpt-4.1""#)
            #expect(String(decoding: recorded.raw, as: UTF8.self) == expected, "every other byte as the client sent it")

            let response = try #require(reply.json)
            #expect(response["object"] == "response")
            #expect(Self.outputText(response) == "Hello from openai: as sent")
            #expect(response["id"]?.stringValue?.hasPrefix("resp_") == true)
            #expect(response["store"] == true)
            let usage = try #require(response["usage"])
            let input = try #require(usage["input_tokens"]?.intValue), output = try #require(usage["output_tokens"]?.intValue)
            let cost = (Double(input) * 2 + Double(output) * 8) / 1_000_000
            #expect(abs((response["cost_usd"]?.doubleValue ?? 0) - cost) < 1e-12)

            let record = try #require(try await gateway.records.waitFor(1).first)
            #expect(record.provider == "openai-native")
            #expect(record.promptTokens == input && record.completionTokens == output)
            #expect(abs((record.costUSD ?? 0) - cost) < 1e-12)
            let kept = try await gateway.get("/v1/responses/\(response["id"]!.stringValue!)")
            #expect(kept.json?["output"] == response["output"])
        }
    }

    @Test func aStreamIsRelayedEventForEventAndItsSpendCounted() async throws {
        try await GatewayHarness.with(configure: Self.configure, requestLogStore: StoredResponsesRouteTests.sqlite()) { gateway in
            let reply = try await gateway.post("/v1/responses", json: ["model": "native", "input": "stream it", "stream": true])
            #expect(reply.status == 200)
            let events = GatewayHarness.payloads(reply.body).compactMap { try? JSON.parse($0) }
            let types = events.compactMap { $0["type"]?.stringValue }
            #expect(types.first == "response.created")
            #expect(types.last == "response.completed")
            #expect(events.map { $0["sequence_number"]?.intValue } == Array(0..<events.count).map { Optional($0) }, "OpenAI's own numbering")
            let text = events.filter { $0["type"] == "response.output_text.delta" }.compactMap { $0["delta"]?.stringValue }.joined()
            #expect(text == "Hello from openai: stream it")
            let final = try #require(events.last?["response"])
            let output = try #require(final["usage"]?["output_tokens"]?.intValue)

            let record = try #require(try await gateway.records.waitFor(1).first)
            #expect(record.stream && record.completionTokens == output)
            #expect((record.costUSD ?? 0) > 0, "a streamed answer is priced")
            let id = try #require(final["id"]?.stringValue)
            let kept = try await gateway.get("/v1/responses/\(id)")
            #expect(kept.status == 200)
            #expect(kept.json?["output"] == final["output"])
        }
    }

    @Test func aConversationMovesBetweenOpenAIAndTranslatedProviders() async throws {
        try await GatewayHarness.with(configure: Self.configure, requestLogStore: StoredResponsesRouteTests.sqlite()) { gateway in
            let first = try await gateway.post("/v1/responses", json: ["model": "claude-haiku-4-5", "input": "opening line"])
            let firstID = try #require(first.json?["id"]?.stringValue)
            let second = try await gateway.post(
                "/v1/responses", json: ["model": "native", "input": "second line", "previous_response_id": .string(firstID)])
            #expect(second.status == 200)
            let sent = try #require(gateway.openai.requests.last?.body)
            #expect(sent["previous_response_id"] == nil, "the previous response is the gateway's: OpenAI gets the conversation")
            let items = sent["input"]?.arrayValue ?? []
            #expect(items.count == 3)
            #expect(items.allSatisfy { $0["id"] == nil })
            #expect(Self.outputText(second.json) == "Hello from openai: second line")

            let secondID = try #require(second.json?["id"]?.stringValue)
            let third = try await gateway.post(
                "/v1/responses", json: ["model": "gemini-2.5-flash", "input": "third line", "previous_response_id": .string(secondID)])
            #expect(third.status == 200)
            let raw = String(decoding: gateway.gemini.requests.last?.raw ?? [], as: UTF8.self)
            for text in ["opening line", "Hello from anthropic: opening line", "second line", "Hello from openai: second line", "third line"] {
                #expect(raw.contains(text), "\(text) reaches the third provider")
            }
        }
    }

    @Test func aFailedOpenAIAttemptFailsOverToATranslatedProvider() async throws {
        try await GatewayHarness.with(configure: { config in
            Self.configure(&config)
            config.models["native"]?.fallbacks = ["claude-haiku-4-5"]
        }) { gateway in
            gateway.openai.failNext(1, status: 500)
            let reply = try await gateway.post("/v1/responses", json: ["model": "native", "input": "fail me over"])
            #expect(reply.status == 200)
            #expect(reply.header("X-Provider") == "anthropic")
            #expect(reply.json?["object"] == "response")
            #expect(Self.outputText(reply.json) == "Hello from anthropic: fail me over")
        }
    }

    @Test func theExactCacheReplaysAnOpenAIAnswerUnderAnIdOfItsOwn() async throws {
        try await GatewayHarness.with(configure: { config in
            Self.configure(&config)
            config.cache.backend = .memory
        }) { gateway in
            let ask: JSON = ["model": "native", "input": "cache natively", "store": false]
            let first = try await gateway.post("/v1/responses", json: ask)
            let second = try await gateway.post("/v1/responses", json: ask)
            #expect(second.header("x-cache-hit") == "exact")
            #expect(gateway.openai.requests.count == 1)
            #expect(second.json?["output"] == first.json?["output"])
            #expect(second.json?["id"] != first.json?["id"])
            #expect(second.json?["store"] == false)
        }
    }

    @Test func onlyOpenAIsOwnHostServesTheResponsesAPIUnlessConfigured() {
        var provider = ProviderConfig(name: "openai", type: .openai, baseURL: "https://api.openai.com/v1")
        #expect(provider.servesResponsesAPI)
        provider.baseURL = "http://127.0.0.1:8000/v1"
        #expect(!provider.servesResponsesAPI)
        provider.responsesAPI = true
        #expect(provider.servesResponsesAPI)
        let anthropic = ProviderConfig(name: "a", type: .anthropic, baseURL: "https://api.openai.com/v1")
        #expect(!anthropic.servesResponsesAPI)
        let loaded = ConfigLoader.parse(
            yaml: "providers:\n  local: {type: openai, base_url: \"http://127.0.0.1:8000/v1\", responses_api: true}\n  claude: {type: anthropic, responses_api: true}\n",
            file: "gateway.yaml", environment: [:])
        #expect(loaded.config?.provider(named: "local")?.servesResponsesAPI == true)
        #expect(loaded.warnings.contains { $0.description.contains("responses_api is only used by openai providers") })
    }
}

/// `OpenAIResponsesReader`: OpenAI's Responses answers and streams read into the canonical answer.
@Suite("OpenAI Responses reader")
struct OpenAIResponsesReaderTests {
    static func message(_ parts: [JSON]) -> JSON {
        ["type": "message", "id": "msg_1", "role": "assistant", "status": "completed", "content": .array(parts)]
    }

    @Test func anAnswerBecomesTheCanonicalCompletion() throws {
        let body: JSON = [
            "object": "response", "id": "resp_1", "model": "gpt-4.1", "status": "completed",
            "output": [
                ["type": "reasoning", "id": "rs_1", "summary": []],
                Self.message([["type": "output_text", "text": "Hel"], ["type": "output_text", "text": "lo"]]),
                ["type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"],
            ],
            "usage": ["input_tokens": 120, "input_tokens_details": ["cached_tokens": 100], "output_tokens": 9, "total_tokens": 129],
        ]
        let completion = try OpenAIResponsesReader.completion(from: body, model: "asked")
        let choice = try #require(completion.body["choices"]?.arrayValue?.first)
        #expect(choice["message"]?["content"] == "Hello")
        #expect(choice["message"]?["tool_calls"]?.arrayValue?.first?["function"]?["arguments"] == "{\"city\":\"Paris\"}")
        #expect(choice["finish_reason"] == "tool_calls")
        #expect(completion.usage == Usage(promptTokens: 120, completionTokens: 9, cachedTokens: 100))
    }

    @Test func incompleteAndRefusedAnswersKeepTheirMeaning() throws {
        let cut: JSON = [
            "object": "response", "status": "incomplete", "incomplete_details": ["reason": "max_output_tokens"],
            "output": [Self.message([["type": "output_text", "text": "trunc"]])], "usage": ["input_tokens": -5, "output_tokens": 1e30],
        ]
        let completion = try OpenAIResponsesReader.completion(from: cut, model: "m")
        #expect(completion.body["choices"]?.arrayValue?.first?["finish_reason"] == "length")
        #expect(completion.usage?.promptTokens == 0, "a negative count from outside is no count")
        #expect(completion.usage?.completionTokens == Usage.maximumTokens, "an absurd count is bounded")
        let refused: JSON = ["object": "response", "status": "completed", "output": [Self.message([["type": "refusal", "refusal": "No."]])]]
        let message = try OpenAIResponsesReader.completion(from: refused, model: "m").body["choices"]?.arrayValue?.first?["message"]
        #expect(message?["refusal"] == "No.")
        #expect(message?["content"] == .null)
    }

    @Test func whatIsNotAResponseIsABadGateway() {
        for body: JSON in [["object": "chat.completion", "choices": []], ["object": "response", "status": "failed", "output": [], "error": ["message": "boom"]], "text"] {
            #expect(throws: GatewayError.self) { try OpenAIResponsesReader.completion(from: body, model: "m") }
        }
    }

    @Test func aStreamIsReadIntoChunksAndItsUsage() throws {
        var reader = OpenAIResponsesStreamReader(model: "m", includeUsage: true)
        func event(_ type: String, _ fields: [String: JSON]) -> ServerSentEvent {
            var object = fields
            object["type"] = .string(type)
            return ServerSentEvent(event: type, data: JSON.object(object).serialized())
        }
        var payloads: [String] = []
        payloads += try reader.consume(event("response.created", ["response": ["status": "in_progress"]]))
        payloads += try reader.consume(event("response.output_text.delta", ["delta": "Hi ", "output_index": 0]))
        payloads += try reader.consume(
            event("response.output_item.added", ["output_index": 1, "item": ["type": "function_call", "call_id": "call_9", "name": "f", "arguments": ""]]))
        payloads += try reader.consume(event("response.function_call_arguments.delta", ["output_index": 1, "delta": "{\"a\":"]))
        payloads += try reader.consume(event("response.function_call_arguments.delta", ["output_index": 1, "delta": "1}"]))
        payloads += try reader.consume(
            event("response.completed", ["response": ["status": "completed", "usage": ["input_tokens": 7, "output_tokens": 3]]]))
        payloads += try reader.finish()
        let chunks = payloads.compactMap { try? JSON.parse($0) }
        let arguments = chunks.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["tool_calls"]?.arrayValue?.first?["function"]?["arguments"]?.stringValue }
        #expect(arguments.joined() == "{\"a\":1}")
        #expect(chunks.contains { $0["choices"]?.arrayValue?.first?["delta"]?["content"] == "Hi " })
        #expect(chunks.contains { $0["choices"]?.arrayValue?.first?["finish_reason"] == "tool_calls" })
        #expect(reader.usage == Usage(promptTokens: 7, completionTokens: 3))
        #expect(payloads.last == "[DONE]")

        var cut = OpenAIResponsesStreamReader(model: "m", includeUsage: false)
        _ = try cut.consume(event("response.output_text.delta", ["delta": "x"]))
        #expect(throws: GatewayError.self) { try cut.finish() }
        var failed = OpenAIResponsesStreamReader(model: "m", includeUsage: false)
        #expect(throws: GatewayError.self) { try failed.consume(event("error", ["message": "overloaded"])) }
    }
}
