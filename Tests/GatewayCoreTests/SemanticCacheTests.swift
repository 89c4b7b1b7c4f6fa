import Foundation
import Testing

@testable import GatewayCore

/// `cache.semantic` end to end, with the fakes' bag-of-words embedder (`FakeEmbeddings`), whose similarities the
/// tests compute in advance.
@Suite("Semantic cache", .timeLimit(.minutes(2)))
struct SemanticCacheTests {
    static let question = "What is the capital city of France?"
    static let paraphrase = "What is the capital of France?"
    static let unrelated = "How do I bake sourdough bread at home?"

    /// The memory cache with a semantic tier whose embedder is the fake OpenAI's `upstream`.
    static func semantic(
        _ config: inout GatewayConfig, threshold: Double = 0.9, upstream: String = "fake-embed", timeout: Duration = .seconds(2),
        maxEntries: Int = 100, scope: CacheSettings.Scope? = nil
    ) {
        config.cache.backend = .memory
        var model = ModelConfig(name: "embedder", provider: "openai", upstream: upstream, price: Price(input: 0.1, output: 0))
        model.kind = .embedding
        config.models["embedder"] = model
        var settings = SemanticCacheSettings(embedder: "embedder")
        settings.threshold = threshold
        settings.timeout = timeout
        settings.maxEntries = maxEntries
        settings.scope = scope
        config.cache.semantic = settings
    }

    static func ask(_ text: String, model: String = "gpt-4o-mini", system: String? = nil, stream: Bool = false, extra: [String: JSON] = [:]) -> JSON {
        var messages: [JSON] = []
        if let system { messages.append(["role": "system", "content": .string(system)]) }
        messages.append(["role": "user", "content": .string(text)])
        var body: [String: JSON] = ["model": .string(model), "messages": .array(messages), "stream": .bool(stream)]
        for (name, value) in extra { body[name] = value }
        return .object(body)
    }

    static func content(_ reply: GatewayHarness.Reply) -> String? {
        reply.json?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue
    }

    static func chatCalls(_ gateway: GatewayHarness) -> Int {
        gateway.openai.requests.filter { $0.path == "/v1/chat/completions" }.count
    }

    @Test func aParaphraseIsAnsweredFromTheCacheAndLogged() async throws {
        let similarity = FakeEmbeddings.similarity(Self.question, Self.paraphrase)
        #expect(similarity > 0.9 && similarity < 0.99, "the fixture's similarity: \(similarity)")
        #expect(FakeEmbeddings.similarity(Self.question, Self.unrelated) < 0.5)
        try await GatewayHarness.with(configure: { Self.semantic(&$0) }) { gateway in
            let first = try await gateway.post(json: Self.ask(Self.question))
            #expect(first.status == 200 && first.header("X-Cache-Hit") == "miss")
            let firstCost = try #require(first.header("X-Cost-USD").flatMap(Double.init))

            let hit = try await gateway.post(json: Self.ask(Self.paraphrase))
            #expect(hit.status == 200)
            #expect(hit.header("X-Cache-Hit") == "semantic")
            let reported = try #require(hit.header("X-Cache-Similarity").flatMap(Double.init))
            #expect(abs(reported - similarity) <= 0.00051, "\(reported) vs \(similarity)")
            #expect(hit.header("X-Cache-Similarity")?.split(separator: ".").last?.count == 4)
            #expect(Self.content(hit) == Self.content(first), "the first answer is served")
            #expect(hit.header("X-Cost-USD") == "0.000000")
            let entry = try #require(hit.header("X-Cache-Entry"))
            #expect(entry.count == 16)
            #expect(Self.chatCalls(gateway) == 1)
            #expect(gateway.openai.requests.filter { $0.path == "/v1/embeddings" }.count == 2)

            let miss = try await gateway.post(json: Self.ask(Self.unrelated))
            #expect(miss.header("X-Cache-Hit") == "miss")
            #expect(Self.chatCalls(gateway) == 2)
            let daemon = try #require(gateway.daemon)
            let exposition = String(decoding: daemon.metrics.exposition(for: daemon), as: UTF8.self)
            #expect(exposition.contains(#"llm_gateway_cache_lookups_total{result="semantic_hit"} 1"#))
            #expect(exposition.contains(#"llm_gateway_cache_lookups_total{result="miss"} 2"#))

            let records = try await gateway.records.waitFor(3)
            let logged = try #require(records.first { $0.cacheHitKind == "semantic" })
            #expect(logged.cacheHit && logged.costUSD == 0)
            #expect(abs((logged.cacheSimilarity ?? 0) - similarity) < 0.0001)
            #expect(logged.cacheEntry == entry)
            #expect(abs((logged.savedCostUSD ?? 0) - firstCost) < 0.000_001)
            // The embedder's own call: 6 words at $0.1 per million tokens, and its time.
            #expect(abs((logged.embedderCostUSD ?? 0) - 6 * 0.1 / 1_000_000) < 1e-15)
            #expect(logged.embedderLatencyMs != nil)
            #expect(records.allSatisfy { $0.embedderLatencyMs != nil }, "every lookup records its embedder call")
            #expect(records.filter { $0.cacheHitKind == nil }.count == 2)
        }
    }

    @Test func aDifferentSystemPromptModelToolsTemperatureOrKeyNeverShares() async throws {
        try await GatewayHarness.with(configure: { Self.semantic(&$0) }) { gateway in
            let stored = try await gateway.post(json: Self.ask(Self.question, system: "Answer briefly.", extra: ["temperature": 0.5]))
            #expect(stored.header("X-Cache-Hit") == "miss")
            let tools: JSON = [["type": "function", "function": ["name": "lookup", "parameters": ["type": "object"]]]]
            let variants: [(String, JSON, String?)] = [
                ("system prompt", Self.ask(Self.paraphrase, system: "Answer at length.", extra: ["temperature": 0.5]), nil),
                ("no system prompt", Self.ask(Self.paraphrase, extra: ["temperature": 0.5]), nil),
                ("model", Self.ask(Self.paraphrase, model: "gpt-4.1-mini", system: "Answer briefly.", extra: ["temperature": 0.5]), nil),
                ("tools", Self.ask(Self.paraphrase, system: "Answer briefly.", extra: ["temperature": 0.5, "tools": tools]), nil),
                ("temperature", Self.ask(Self.paraphrase, system: "Answer briefly.", extra: ["temperature": 0.7]), nil),
                ("seed", Self.ask(Self.paraphrase, system: "Answer briefly.", extra: ["temperature": 0.5, "seed": 7]), nil),
                ("key", Self.ask(Self.paraphrase, system: "Answer briefly.", extra: ["temperature": 0.5]), GatewayHarness.limitedKey),
            ]
            for (what, body, key) in variants {
                let reply = try await gateway.post(json: body, key: key ?? GatewayHarness.clientKey, headers: ["Cache-Control": "no-store"])
                #expect(reply.status == 200, "\(what): \(reply.body)")
                #expect(reply.header("X-Cache-Hit") == "miss", "\(what) must not share the stored answer")
            }
            // The same partition does share.
            let same = try await gateway.post(json: Self.ask(Self.paraphrase, system: "Answer briefly.", extra: ["temperature": 0.5]))
            #expect(same.header("X-Cache-Hit") == "semantic")
        }
    }

    @Test func aGlobalScopeSharesAcrossKeys() async throws {
        try await GatewayHarness.with(configure: { Self.semantic(&$0, scope: .global) }) { gateway in
            _ = try await gateway.post(json: Self.ask(Self.question))
            let other = try await gateway.post(json: Self.ask(Self.paraphrase), key: GatewayHarness.limitedKey)
            #expect(other.header("X-Cache-Hit") == "semantic")
        }
    }

    @Test func theThresholdIsInclusiveAtItsEdgeAndAReloadChangesIt() async throws {
        let similarity = FakeEmbeddings.similarity(Self.question, Self.paraphrase)
        try await GatewayHarness.with(configure: { Self.semantic(&$0, threshold: similarity + 0.0005) }) { gateway in
            _ = try await gateway.post(json: Self.ask(Self.question))
            let above = try await gateway.post(json: Self.ask(Self.paraphrase), headers: ["Cache-Control": "no-store"])
            #expect(above.header("X-Cache-Hit") == "miss", "a threshold just above the similarity misses")

            let daemon = try #require(gateway.daemon)
            var config = daemon.store.snapshot.config
            config.cache.semantic?.threshold = similarity - 0.0005
            daemon.store.replace(with: ConfigSnapshot(config: config, generation: 2))
            let below = try await gateway.post(json: Self.ask(Self.paraphrase), headers: ["Cache-Control": "no-store"])
            #expect(below.header("X-Cache-Hit") == "semantic", "after the reload, a threshold just below it hits")
        }
    }

    @Test(arguments: ["slow-embed", "status-503"])
    func anEmbedderThatIsSlowOrFailingNeverFailsTheRequest(upstream: String) async throws {
        try await GatewayHarness.with(configure: { Self.semantic(&$0, upstream: upstream, timeout: .milliseconds(150)) }) { gateway in
            for text in [Self.question, Self.paraphrase] {
                let reply = try await gateway.post(json: Self.ask(text))
                #expect(reply.status == 200, "\(reply.body)")
                #expect(reply.header("X-Cache-Hit") == "miss")
                // The slow fake embedder answers after 5 s: the request waited for the timeout (150 ms), not for it.
                #expect((reply.header("X-Latency-Ms").flatMap(Int.init) ?? .max) < 4000)
            }
            #expect(Self.chatCalls(gateway) == 2)
            let daemon = try #require(gateway.daemon)
            let stats = daemon.stores.semantic.stats
            #expect(stats.embedderFailures == 2 && stats.entries == 0)
            let exposition = String(decoding: daemon.metrics.exposition(for: daemon), as: UTF8.self)
            #expect(exposition.contains(#"llm_gateway_cache_lookups_total{result="semantic_embedder_failed"} 2"#), "\(exposition)")
            let records = try await gateway.records.waitFor(2)
            #expect(records.allSatisfy { $0.embedderCostUSD == nil && ($0.embedderLatencyMs ?? .max) < 4000 })
        }
    }

    @Test func aStreamedRequestIsServedFromAHitAsAStreamAndAStreamIsStored() async throws {
        try await GatewayHarness.with(configure: { Self.semantic(&$0) }) { gateway in
            let first = try await gateway.post(json: Self.ask(Self.question))
            let streamed = try await gateway.post(json: Self.ask(Self.paraphrase, stream: true))
            #expect(streamed.header("X-Cache-Hit") == "semantic")
            #expect(streamed.header("Content-Type")?.hasPrefix("text/event-stream") == true)
            let payloads = GatewayHarness.payloads(streamed.body)
            #expect(payloads.last == "[DONE]")
            let text = payloads.compactMap { try? JSON.parse($0) }.compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }.joined()
            #expect(text == Self.content(first))

            // A streamed miss is kept too, and answers its paraphrase.
            let other = "Which river flows through Paris today?"
            let otherParaphrase = "Which river flows through Paris?"
            #expect(FakeEmbeddings.similarity(other, otherParaphrase) > 0.9)
            let streamedMiss = try await gateway.post(json: Self.ask(other, stream: true))
            #expect(streamedMiss.header("X-Cache-Hit") == "miss")
            let later = try await gateway.post(json: Self.ask(otherParaphrase))
            #expect(later.header("X-Cache-Hit") == "semantic")
            #expect(Self.content(later) == "Hello from openai: \(other)")
        }
    }

    @Test func theLeastRecentlyUsedEntryIsEvictedAtTheLimitAndForgetRemovesOne() async throws {
        let questions = ["How tall is mount Everest in metres?", "Who painted the Mona Lisa portrait?", "When did the Berlin wall fall down?"]
        let paraphrases = ["How tall is mount Everest?", "Who painted the Mona Lisa?", "When did the Berlin wall fall?"]
        for (question, paraphrase) in zip(questions, paraphrases) {
            #expect(FakeEmbeddings.similarity(question, paraphrase) > 0.85, "\(question)")
            for other in questions where other != question { #expect(FakeEmbeddings.similarity(other, paraphrase) < 0.85) }
        }
        try await GatewayHarness.with(configure: { Self.semantic(&$0, threshold: 0.85, maxEntries: 2) }) { gateway in
            for question in questions { _ = try await gateway.post(json: Self.ask(question)) }
            let evicted = try await gateway.post(json: Self.ask(paraphrases[0]), headers: ["Cache-Control": "no-store"])
            #expect(evicted.header("X-Cache-Hit") == "miss", "the oldest entry was evicted at max_entries 2")
            let kept = try await gateway.post(json: Self.ask(paraphrases[2]), headers: ["Cache-Control": "no-store"])
            #expect(kept.header("X-Cache-Hit") == "semantic")
            let daemon = try #require(gateway.daemon)
            #expect(daemon.stores.semantic.stats.entries == 2 && daemon.stores.semantic.stats.evictions == 1)

            // The entry that answered is forgotten through the admin route, and answers no more.
            let entry = try #require(kept.header("X-Cache-Entry"))
            let admin = AdminRoutes(gateway: daemon, reloader: nil, socketPath: "")
            let report = admin.cache()
            #expect(report["semantic"]?["hits"]?.intValue == 1 && report["semantic"]?["entries"]?.intValue == 2, "\(report)")
            #expect(AdminReport.cache(report).contains("embedder_failures"))
            let forgot = await admin.forgetSemanticEntry(entry)
            #expect(forgot.status == .ok)
            let again = try await gateway.post(json: Self.ask(paraphrases[2]), headers: ["Cache-Control": "no-store"])
            #expect(again.header("X-Cache-Hit") == "miss")
            #expect(await admin.forgetSemanticEntry(entry).status == .notFound)
            #expect(await admin.forgetSemanticEntry("not-an-id").status == .badRequest)
        }
    }

    @Test func imagesAndEmbeddingsRequestsStayOutOfTheSemanticTier() throws {
        let image: [[String: JSON]] = [[
            "role": "user",
            "content": [["type": "text", "text": "what is this"], ["type": "image_url", "image_url": ["url": "https://example.com/a.png"]]],
        ]]
        #expect(SemanticProbe.split(image) == nil)
        let turns: [[String: JSON]] = [["role": "user", "content": "first"], ["role": "assistant", "content": "ok"], ["role": "user", "content": "second"]]
        let split = try #require(SemanticProbe.split(turns))
        #expect(split.text == "first\n\nsecond")
        #expect(split.context.count == 3)
    }

    @Test func theEmbedderCallIsChargedToBudgets() async throws {
        try await GatewayHarness.with(configure: { config in
            Self.semantic(&config)
            config.models["embedder"]?.price = Price(input: 1000, output: 0)
            config.models["free-chat"] = ModelConfig(name: "free-chat", provider: "openai", upstream: "gpt-4o-mini", fallbacks: [], price: Price(input: 0, output: 0))
            config.budgets = [BudgetConfig(name: "all", limitUSD: 0.01)]
        }) { gateway in
            // The chat model is free; each lookup embeds 7 words at $1000 per million tokens: $0.007.
            for expected in [200, 200, 429] {
                let reply = try await gateway.post(json: Self.ask(Self.question, model: "free-chat"), headers: ["Cache-Control": "no-store"])
                #expect(reply.status == expected, "\(reply.status) \(reply.body)")
            }
        }
    }

    // MARK: - A fleet on one Redis

    /// Waits until `condition` holds (the follower polls Redis every 100 ms).
    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        let started = ContinuousClock.now
        while ContinuousClock.now - started < .seconds(10) {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func gatewaysOnOneRedisShareEntriesEvictionsAndForgets() async throws {
        let redis = try await RedisServerProcess.start()
        let url = redis.url()
        let prefix = "test-\(RandomID.make(prefix: "", length: 8)):"
        let questions = ["How tall is mount Everest in metres?", "Who painted the Mona Lisa portrait?", "When did the Berlin wall fall down?"]
        let paraphrases = ["How tall is mount Everest?", "Who painted the Mona Lisa?", "When did the Berlin wall fall?"]
        try await GatewayHarness.with(configure: { config in
            Self.semantic(&config, threshold: 0.85, maxEntries: 2)
            config.cache.backend = .redis
            config.redis.url = url
            config.redis.prefix = prefix
        }) { first in
            // An entry stored before the second gateway starts is loaded by it; later ones are followed.
            _ = try await first.post(json: Self.ask(questions[0]))
            let client = try #require(first.daemon?.stores.redis)
            let sharedBefore = try await Self.eventually { try await client.send("ZCARD", prefix + "semantic:lru") == .integer(1) }
            #expect(sharedBefore)
            try await first.withAnotherGateway(config: first.config) { second in
                let loaded = try await second.post(json: Self.ask(paraphrases[0]), headers: ["Cache-Control": "no-store"])
                #expect(loaded.header("X-Cache-Hit") == "semantic", "loaded at start")
                _ = try await first.post(json: Self.ask(questions[1]))
                let followed = try await Self.eventually {
                    try await second.post(json: Self.ask(paraphrases[1]), headers: ["Cache-Control": "no-store"]).header("X-Cache-Hit") == "semantic"
                }
                #expect(followed, "followed through the stream")

                // A third entry stored by the second gateway evicts the fleet's least recently used (questions[0]).
                _ = try await second.post(json: Self.ask(questions[2]))
                let evicted = try await Self.eventually {
                    try await first.post(json: Self.ask(paraphrases[0]), headers: ["Cache-Control": "no-store"]).header("X-Cache-Hit") == "miss"
                }
                #expect((first.daemon?.stores.semantic.stats.entries ?? 99) <= 2)
                #expect(try await client.send("ZCARD", prefix + "semantic:lru") == .integer(2))
                #expect(evicted, "evicted in every gateway at max_entries")

                // Forgotten in one gateway, gone from both.
                let hit = try await first.post(json: Self.ask(paraphrases[2]), headers: ["Cache-Control": "no-store"])
                let entry = try #require(hit.header("X-Cache-Entry"))
                let forgot = await AdminRoutes(gateway: try #require(first.daemon), reloader: nil, socketPath: "").forgetSemanticEntry(entry)
                #expect(forgot.status == .ok)
                let gone = try await Self.eventually {
                    try await second.post(json: Self.ask(paraphrases[2]), headers: ["Cache-Control": "no-store"]).header("X-Cache-Hit") == "miss"
                }
                #expect(gone, "forgotten fleet-wide")
            }
        }
        await redis.stop()
    }

    @Test func anEntryReadFromRedisIsCheckedBeforeUse() throws {
        let answer = CachedAnswer(completion: ["id": "c", "object": "chat.completion", "choices": []], provider: "p", upstreamModel: "m", costUSD: 0.5)
        let entry = SemanticEntry(id: 0xABC, partition: "part", vector: [0.6, 0.8], answer: answer, expiresAtMillis: 123)
        let decoded = try #require(SemanticEntry(encoded: entry.encoded()))
        #expect(decoded.id == 0xABC && decoded.partition == "part" && decoded.vector == [0.6, 0.8] && decoded.answer == answer)
        var broken = entry.encoded()
        broken.removeLast(answer.encoded().count + 2)
        #expect(SemanticEntry(encoded: broken) == nil, "a vector cut short")
        #expect(SemanticEntry(encoded: Array("llm-gateway-semantic/1\n{\"id\":\"zz\"}\n".utf8)) == nil)
        var nan = entry.encoded()
        let vectorStart = nan.firstIndex(of: UInt8(ascii: "}"))! + 2
        for offset in 0..<4 { nan[vectorStart + offset] = 0xFF }
        #expect(SemanticEntry(encoded: nan) == nil, "a NaN component")
    }
}
