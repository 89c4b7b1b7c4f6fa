import Foundation
import Testing

@testable import GatewayCore

/// `POST /v1/embeddings` over OpenAI, Gemini and OpenAI-compatible servers, through the pipeline's stages.
@Suite("Embeddings", .timeLimit(.minutes(2)))
struct EmbeddingsTests {
    static func vector(_ json: JSON?) -> [Double] {
        (json?.arrayValue ?? []).compactMap(\.doubleValue)
    }

    static func close(_ first: [Double], _ second: [Double], within tolerance: Double = 1e-6) -> Bool {
        first.count == second.count && zip(first, second).allSatisfy { abs($0 - $1) <= tolerance }
    }

    static func floats(base64 text: String) -> [Double] {
        guard let vector = EmbeddingVector(.string(text)) else { return [] }
        return vector.values
    }

    @Test func openAIFloatAndBase64AnswersArePricedAndLogged() async throws {
        try await GatewayHarness.with { gateway in
            let reply = try await gateway.post(
                "/v1/embeddings", json: ["model": "text-embedding-3-small", "input": ["the quick fox", "a lazy dog sleeps"], "user": "u-1"])
            #expect(reply.status == 200, "\(reply.body)")
            let json = try #require(reply.json)
            let data = try #require(json["data"]?.arrayValue)
            #expect(data.count == 2)
            #expect(Self.close(Self.vector(data[0]["embedding"]), FakeEmbeddings.vector(for: "the quick fox")))
            #expect(Self.close(Self.vector(data[1]["embedding"]), FakeEmbeddings.vector(for: "a lazy dog sleeps")))
            #expect(data[1]["index"]?.intValue == 1 && data[0]["object"]?.stringValue == "embedding")
            #expect(json["object"]?.stringValue == "list")
            #expect(json["usage"]?["prompt_tokens"]?.intValue == 7)
            // Exact in the body (the header has six decimals).
            let cost = 7 * 0.02 / 1_000_000
            #expect(abs((json["cost_usd"]?.doubleValue ?? -1) - cost) < 1e-15)
            #expect(reply.header("X-Cost-USD") == "0.000000")
            #expect(reply.header("X-Provider") == "openai")
            #expect(gateway.openai.requests.last?.path == "/v1/embeddings")
            #expect(gateway.openai.requests.last?.body?["model"]?.stringValue == "text-embedding-3-small")

            let encoded = try await gateway.post(
                "/v1/embeddings", json: ["model": "text-embedding-3-small", "input": "the quick fox", "encoding_format": "base64", "dimensions": 16])
            #expect(encoded.status == 200, "\(encoded.body)")
            let text = try #require(encoded.json?["data"]?.arrayValue?.first?["embedding"]?.stringValue)
            #expect(Self.close(Self.floats(base64: text), FakeEmbeddings.vector(for: "the quick fox", dimensions: 16), within: 1e-6))
            #expect(gateway.openai.requests.last?.body?["dimensions"]?.intValue == 16)

            let records = try await gateway.records.waitFor(2)
            let first = try #require(records.first { $0.promptTokens == 7 })
            #expect(first.kind == "embeddings" && first.endpoint == "/v1/embeddings")
            #expect(first.model == "text-embedding-3-small" && first.provider == "openai" && first.statusCode == 200)
            #expect(first.customer == "u-1")
            #expect(abs((first.costUSD ?? -1) - cost) < 1e-12)
        }
    }

    @Test func geminiIsTranslatedBothWays() async throws {
        try await GatewayHarness.with { gateway in
            let single = try await gateway.post("/v1/embeddings", json: ["model": "gemini-embedding-001", "input": "hello there world", "dimensions": 8])
            #expect(single.status == 200, "\(single.body)")
            #expect(Self.close(Self.vector(single.json?["data"]?.arrayValue?.first?["embedding"]), FakeEmbeddings.vector(for: "hello there world", dimensions: 8)))
            let sent = try #require(gateway.gemini.requests.last)
            #expect(sent.path == "/v1beta/models/gemini-embedding-001:embedContent")
            #expect(sent.body?["outputDimensionality"]?.intValue == 8)
            #expect(sent.headers["x-goog-api-key"] == gateway.gemini.key)
            // Gemini reports no tokens: a token per 4 characters is counted and priced.
            #expect(single.json?["usage"]?["prompt_tokens"]?.intValue == 5)

            let batch = try await gateway.post(
                "/v1/embeddings", json: ["model": "gemini-embedding-001", "input": ["one two", "three", "four five six"], "encoding_format": "base64"])
            #expect(batch.status == 200, "\(batch.body)")
            let data = try #require(batch.json?["data"]?.arrayValue)
            #expect(data.count == 3)
            for (index, text) in ["one two", "three", "four five six"].enumerated() {
                #expect(Self.close(Self.floats(base64: data[index]["embedding"]?.stringValue ?? ""), FakeEmbeddings.vector(for: text)))
            }
            #expect(gateway.gemini.requests.last?.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents")

            let tokens = try await gateway.post("/v1/embeddings", json: ["model": "gemini-embedding-001", "input": [1, 2, 3]])
            #expect(tokens.status == 400 && tokens.body.contains("token ids"), "\(tokens.body)")
            let many = try await gateway.post("/v1/embeddings", json: ["model": "gemini-embedding-001", "input": .array((0..<101).map { .string("t\($0)") })])
            #expect(many.status == 400 && many.body.contains("at most 100"), "\(many.body)")
        }
    }

    @Test func anthropicAndWrongKindsAreRefusedWithTheirReason() async throws {
        try await GatewayHarness.with { gateway in
            let anthropic = try await gateway.post("/v1/embeddings", json: ["model": "anthropic/some-embedder", "input": "hi"])
            #expect(anthropic.status == 400)
            #expect(anthropic.json?["error"]?["code"]?.stringValue == "embeddings_not_supported")
            #expect(anthropic.body.contains("Anthropic has no embeddings API"))
            #expect(gateway.anthropic.requests.isEmpty)

            let chatModel = try await gateway.post("/v1/embeddings", json: ["model": "gpt-4o-mini", "input": "hi"])
            #expect(chatModel.status == 400 && chatModel.json?["error"]?["code"]?.stringValue == "wrong_model_kind", "\(chatModel.body)")
            let embeddingModel = try await gateway.post(json: ["model": "text-embedding-3-small", "messages": [["role": "user", "content": "hi"]]])
            #expect(embeddingModel.status == 400 && embeddingModel.body.contains("/v1/embeddings"), "\(embeddingModel.body)")

            let limited = try await gateway.post("/v1/embeddings", json: ["model": "text-embedding-3-small", "input": "hi"], key: GatewayHarness.limitedKey)
            #expect(limited.status == 403)
            #expect(gateway.openai.requests.isEmpty)
        }
    }

    @Test(arguments: [
        (#"{"model":"text-embedding-3-small"}"#, "input"),
        (#"{"model":"text-embedding-3-small","input":""}"#, "input"),
        (#"{"model":"text-embedding-3-small","input":[]}"#, "input"),
        (#"{"model":"text-embedding-3-small","input":[1,-2]}"#, "input"),
        (#"{"model":"text-embedding-3-small","input":[[1],[]]}"#, "input"),
        (#"{"model":"text-embedding-3-small","input":{"text":"x"}}"#, "input"),
        (#"{"model":"text-embedding-3-small","input":"x","encoding_format":"int8"}"#, "encoding_format"),
        (#"{"model":"text-embedding-3-small","input":"x","dimensions":0}"#, "dimensions"),
        (#"{"input":"x"}"#, "model"),
        (#"[1]"#, nil),
    ])
    func invalidBodiesAreRefusedBeforeAnyProvider(body: String, param: String?) async throws {
        try await GatewayHarness.with { gateway in
            let reply = try await gateway.post("/v1/embeddings", body: body)
            #expect(reply.status == 400, "\(reply.body)")
            #expect(reply.json?["error"]?["param"]?.stringValue == param, "\(reply.body)")
            #expect(reply.json?["error"]?["type"]?.stringValue == "invalid_request_error")
            #expect(gateway.openai.requests.isEmpty)
        }
    }

    @Test func exactCacheRateLimitsAndDeploymentFailover() async throws {
        try await GatewayHarness.with(configure: { config in
            config.cache.backend = .memory
            config.keys[0].rateLimit = RateLimit(tokensPerMinute: 40)
            var broken = config.providers.first { $0.name == "openai" }!
            broken.name = "broken"
            broken.apiKey = "sk-wrong"
            config.providers.append(broken)
            var model = ModelConfig(name: "embed-ha", provider: "openai", upstream: "text-embedding-3-small", price: Price(input: 0.02, output: 0))
            model.kind = .embedding
            model.deployments = [Deployment(provider: "broken", weight: 1), Deployment(provider: "openai", weight: 1)]
            config.models["embed-ha"] = model
        }) { gateway in
            let body: JSON = ["model": "embed-ha", "input": "one two three four five"]
            let first = try await gateway.post("/v1/embeddings", json: body)
            #expect(first.status == 200, "\(first.body)")
            #expect(first.header("X-Cache-Hit") == "miss")
            let again = try await gateway.post("/v1/embeddings", json: body)
            #expect(again.header("X-Cache-Hit") == "exact")
            #expect(again.json?["data"] == first.json?["data"])
            #expect(again.header("X-Cost-USD").flatMap(Double.init) == 0)
            // A chat request never reads an embeddings entry, whatever its body.
            let embeddedCalls = gateway.openai.requests.filter { $0.path == "/v1/embeddings" && $0.headers["authorization"] == "Bearer \(gateway.openai.key)" }
            #expect(embeddedCalls.count == 1)

            // Every other request is a miss: each reaches a working deployment, whichever is picked first.
            for index in 0..<4 {
                let reply = try await gateway.post(
                    "/v1/embeddings", json: ["model": "embed-ha", "input": .string("w\(index)")], headers: ["Cache-Control": "no-cache"])
                #expect(reply.status == 200, "\(reply.body)")
            }
            // 5 tokens, then 4 × 1 token: 9 of 40. A 40-token input is then refused before any provider.
            let big = try await gateway.post("/v1/embeddings", json: ["model": "embed-ha", "input": .string(String(repeating: "wordy ", count: 30))])
            #expect(big.status == 429, "\(big.body)")
        }
    }

    @Test func checkRefusesFallbacksBetweenEmbeddingModels() throws {
        let yaml = """
            providers:
              openai: {type: openai, api_key: sk-x}
              claude: {type: anthropic, api_key: sk-y}
            models:
              small:
                provider: openai
                upstream: text-embedding-3-small
                kind: embedding
                price: {input: 0.02}
                fallbacks: [text-embedding-3-large]
              chatty:
                provider: openai
                fallbacks: [small]
              claude-embed:
                provider: claude
                kind: embedding
            keys: []
            """
        let result = ConfigLoader.parse(yaml: yaml, file: "gateway.yaml", environment: [:])
        let messages = result.errors.map(\.message)
        #expect(result.config == nil)
        #expect(messages.contains { $0.contains("embedding model \"small\" cannot fall back to another model") }, "\(messages)")
        #expect(messages.contains { $0.contains("chat model \"chatty\" cannot fall back to embedding model \"small\"") }, "\(messages)")
        #expect(messages.contains { $0.contains("anthropic, which has no embeddings API") }, "\(messages)")
        #expect(!messages.contains { $0.contains("price") }, "an embedding model's price needs no output: \(messages)")
    }

    @Test func aHardBudgetCountsEmbeddings() async throws {
        try await GatewayHarness.with(configure: { config in
            var model = ModelConfig(name: "pricey-embed", provider: "openai", upstream: "text-embedding-3-small", price: Price(input: 1000, output: 0))
            model.kind = .embedding
            config.models["pricey-embed"] = model
            config.budgets = [BudgetConfig(name: "all", limitUSD: 0.006)]
        }) { gateway in
            // 18 characters: 5 tokens held ($0.005), 4 spent ($0.004); the second cannot afford its hold.
            let body: JSON = ["model": "pricey-embed", "input": "one two three four"]
            let first = try await gateway.post("/v1/embeddings", json: body)
            #expect(first.status == 200, "\(first.body)")
            let second = try await gateway.post("/v1/embeddings", json: body, headers: ["Cache-Control": "no-cache"])
            #expect(second.status == 429 && second.json?["error"]?["code"]?.stringValue == "budget_exceeded", "\(second.body)")
        }
    }
}
