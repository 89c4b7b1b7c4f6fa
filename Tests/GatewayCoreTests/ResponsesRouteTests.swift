import Foundation
import Logging
import Testing
@testable import GatewayCore

/// `POST /v1/responses` through the gateway's pipeline: every provider, the exact cache scoped to the route, the
/// request log, and what the gateway does not keep.
@Suite("OpenAI Responses route")
struct ResponsesRouteTests {
    @Test(arguments: [("gpt-4o-mini", "openai"), ("claude-haiku-4-5", "anthropic"), ("gemini-2.5-flash", "gemini")])
    func everyProviderAnswersAResponse(model: String, provider: String) async throws {
        try await GatewayHarness.with { gateway in
            let reply = try await gateway.post("/v1/responses", json: ["model": .string(model), "input": "hello route", "store": true])
            #expect(reply.status == 200)
            let response = try #require(reply.json)
            #expect(response["object"] == "response")
            #expect(response["id"]?.stringValue?.hasPrefix("resp_") == true)
            #expect(response["store"] == false, "nothing is kept, and the response says so")
            let text = response["output"]?.arrayValue?.first?["content"]?.arrayValue?.first?["text"]?.stringValue
            #expect(text == "Hello from \(provider): hello route")
            #expect(reply.header("x-provider") == provider)
            let record = try #require(try await gateway.records.waitFor(1).first)
            #expect(record.endpoint == "/v1/responses")
            #expect(record.provider == provider)
        }
    }

    @Test func theExactCacheAnswersResponsesOnlyAsResponses() async throws {
        try await GatewayHarness.with(configure: { $0.cache.backend = .memory }) { gateway in
            let ask: JSON = ["model": "gpt-4o-mini", "input": [["role": "user", "content": "cache me"]]]
            let first = try await gateway.post("/v1/responses", json: ask)
            let second = try await gateway.post("/v1/responses", json: ask)
            #expect(first.header("x-cache-hit") == "miss")
            #expect(second.header("x-cache-hit") == "exact")
            #expect(second.json?["object"] == "response")
            #expect(second.json?["id"] != first.json?["id"], "a replay is a response of its own")
            let chat = try await gateway.post(json: ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "cache me"]]])
            #expect(chat.header("x-cache-hit") == "miss")
            #expect(chat.json?["object"] == "chat.completion")
        }
    }

    @Test func withoutARequestLogNothingIsKept() async throws {
        try await GatewayHarness.with { gateway in
            let kept = try await gateway.post("/v1/responses", json: ["model": "gpt-4o-mini", "input": "x", "store": true])
            #expect(kept.json?["store"] == false, "nothing is kept, and the response says so")
            let follow = try await gateway.post("/v1/responses", json: ["model": "gpt-4o-mini", "input": "x", "previous_response_id": "resp_abc"])
            #expect(follow.status == 400)
            #expect(follow.json?["error"]?["param"] == "previous_response_id")
            #expect(gateway.openai.requests.count == 1)
            let fetched = try await gateway.get("/v1/responses/resp_abc")
            #expect(fetched.status == 404)
            #expect(fetched.json?["error"]?["code"] == "response_not_found")
            let hosted = try await gateway.post("/v1/responses", json: ["model": "gpt-4o-mini", "input": "x", "tools": [["type": "web_search"]]])
            #expect(hosted.status == 400)
            #expect(hosted.json?["error"]?["code"] == "unsupported_tool")
        }
    }
}

/// `store`, `previous_response_id`, `GET` and `DELETE /v1/responses/{id}` with the request log's database keeping the
/// responses: SQLite for one gateway, PostgreSQL for a fleet.
@Suite("Stored responses through the gateway", .timeLimit(.minutes(3)))
struct StoredResponsesRouteTests {
    static func sqlite() -> @Sendable () async throws -> any RequestLogStore {
        {
            let folder = NSTemporaryDirectory() + "stored-responses-\(UUID().uuidString)"
            let store = try await SQLiteRequestLogStore(path: folder + "/requests.db", logger: Logger(label: "test"))
            try await store.migrate()
            return store
        }
    }

    /// The offsets of `texts` in what the provider received last, in order; nil for one it did not receive.
    static func offsets(of texts: [String], in fake: FakeUpstream) -> [Int?] {
        let raw = String(decoding: fake.requests.last?.raw ?? [], as: UTF8.self)
        return texts.map { text in raw.range(of: text).map { raw.distance(from: raw.startIndex, to: $0.lowerBound) } }
    }

    @Test(arguments: [("gpt-4o-mini", "openai"), ("claude-haiku-4-5", "anthropic"), ("gemini-2.5-flash", "gemini")])
    func aConversationContinuesFromAKeptResponse(model: String, provider: String) async throws {
        try await GatewayHarness.with(requestLogStore: Self.sqlite()) { gateway in
            let first = try await gateway.post(
                "/v1/responses", json: ["model": .string(model), "instructions": "Be brief.", "input": "first question"])
            #expect(first.status == 200)
            let response = try #require(first.json)
            #expect(response["store"] == true)
            let id = try #require(response["id"]?.stringValue)

            let fetched = try await gateway.get("/v1/responses/\(id)")
            #expect(fetched.status == 200)
            #expect(fetched.json?["id"] == response["id"])
            #expect(fetched.json?["output"] == response["output"])
            #expect(fetched.json?["instructions"] == "Be brief.")

            let second = try await gateway.post(
                "/v1/responses", json: ["model": .string(model), "input": "second question", "previous_response_id": .string(id)])
            #expect(second.status == 200)
            #expect(second.json?["previous_response_id"] == .string(id))
            #expect(second.json?["instructions"] == .null, "instructions are not carried over")
            let fake = provider == "openai" ? gateway.openai : provider == "anthropic" ? gateway.anthropic : gateway.gemini
            let seen = Self.offsets(of: ["first question", "Hello from \(provider): first question", "second question"], in: fake)
            let positions = seen.compactMap { $0 }
            #expect(positions.count == 3 && positions == positions.sorted(), "the provider gets the whole conversation in order: \(seen)")
            #expect(Self.offsets(of: ["Be brief."], in: fake) == [nil])

            let records = try await gateway.records.waitFor(2)
            #expect(records.compactMap(\.storedResponse?.id).contains(id))
        }
    }

    @Test func aStreamedResponseIsKeptWhenItEnds() async throws {
        try await GatewayHarness.with(requestLogStore: Self.sqlite()) { gateway in
            let streamed = try await gateway.post("/v1/responses", json: ["model": "claude-haiku-4-5", "input": "stream me", "stream": true])
            #expect(streamed.status == 200)
            let completed = GatewayHarness.payloads(streamed.body).compactMap { try? JSON.parse($0) }.first { $0["type"] == "response.completed" }
            let response = try #require(completed?["response"])
            #expect(response["store"] == true)
            let id = try #require(response["id"]?.stringValue)
            let fetched = try await gateway.get("/v1/responses/\(id)")
            #expect(fetched.json?["output"] == response["output"])
            #expect(fetched.json?["status"] == "completed")
            let next = try await gateway.post(
                "/v1/responses", json: ["model": "gpt-4o-mini", "input": "and then", "previous_response_id": .string(id), "stream": true])
            #expect(next.status == 200)
            let seen = Self.offsets(of: ["stream me", "Hello from anthropic: stream me", "and then"], in: gateway.openai)
            #expect(seen.allSatisfy { $0 != nil }, "a conversation moves between providers: \(seen)")
        }
    }

    @Test func aResponseBelongsToTheKeyThatMadeIt() async throws {
        try await GatewayHarness.with(requestLogStore: Self.sqlite()) { gateway in
            let made = try await gateway.post("/v1/responses", json: ["model": "gpt-4o-mini", "input": "mine"])
            let id = try #require(made.json?["id"]?.stringValue)
            let other = GatewayHarness.limitedKey
            #expect(try await gateway.get("/v1/responses/\(id)", key: other).status == 404)
            #expect(try await gateway.delete("/v1/responses/\(id)", key: other).status == 404)
            let follow = try await gateway.post(
                "/v1/responses", json: ["model": "gpt-4o-mini", "input": "yours?", "previous_response_id": .string(id)], key: other)
            #expect(follow.status == 404)
            #expect(follow.json?["error"]?["code"] == "previous_response_not_found")
            #expect(gateway.openai.requests.count == 1, "a refused continuation reaches no provider")

            let deleted = try await gateway.delete("/v1/responses/\(id)")
            #expect(deleted.status == 200)
            #expect(deleted.json == ["id": .string(id), "object": "response", "deleted": true])
            #expect(try await gateway.get("/v1/responses/\(id)").status == 404)
            #expect(try await gateway.delete("/v1/responses/\(id)").status == 404)
            let gone = try await gateway.post("/v1/responses", json: ["model": "gpt-4o-mini", "input": "x", "previous_response_id": .string(id)])
            #expect(gone.status == 404)
            #expect(gone.json?["error"]?["code"] == "previous_response_not_found")
        }
    }

    @Test func storeFalseKeepsNothing() async throws {
        try await GatewayHarness.with(requestLogStore: Self.sqlite()) { gateway in
            let reply = try await gateway.post("/v1/responses", json: ["model": "gpt-4o-mini", "input": "forget me", "store": false])
            #expect(reply.json?["store"] == false)
            let id = try #require(reply.json?["id"]?.stringValue)
            #expect(try await gateway.get("/v1/responses/\(id)").status == 404)
            let records = try await gateway.records.waitFor(2)
            #expect(records.allSatisfy { $0.storedResponse == nil })
        }
    }

    @Test func keptResponsesExpireAfterTheirTTL() async throws {
        try await GatewayHarness.with(configure: { $0.requestLog.responsesTTL = .seconds(1) }, requestLogStore: Self.sqlite()) { gateway in
            let made = try await gateway.post("/v1/responses", json: ["model": "gpt-4o-mini", "input": "short-lived"])
            let id = try #require(made.json?["id"]?.stringValue)
            #expect(try await gateway.get("/v1/responses/\(id)").status == 200)
            await gateway.requestLog?.flush()
            try await Task.sleep(for: .milliseconds(1200))
            #expect(try await gateway.get("/v1/responses/\(id)").status == 404)
            let follow = try await gateway.post("/v1/responses", json: ["model": "gpt-4o-mini", "input": "x", "previous_response_id": .string(id)])
            #expect(follow.json?["error"]?["code"] == "previous_response_not_found")
        }
    }

    /// Gateways sharing PostgreSQL: a response one of them kept is found and continued by another once written.
    @Test func aFleetSharesKeptResponsesThroughPostgreSQL() async throws {
        try await withPostgresServer { server in
            let url = server.url
            let postgres: @Sendable () async throws -> any RequestLogStore = {
                let store = try PostgresRequestLogStore(url: url, poolSize: 2, logger: Logger(label: "test"))
                try await store.migrate()
                return store
            }
            try await GatewayHarness.with(requestLogStore: postgres) { first in
                try await first.withAnotherGateway(config: first.config, requestLogStore: postgres) { second in
                    // Asked of the other gateway at once, before the first has written its row: the lookup waits for it.
                    let made = try await first.post("/v1/responses", json: ["model": "gpt-4o-mini", "input": "fleet question"])
                    let id = try #require(made.json?["id"]?.stringValue)
                    let fetched = try await second.get("/v1/responses/\(id)")
                    #expect(fetched.status == 200)
                    #expect(fetched.json?["id"] == .string(id))
                    let log = try #require(first.requestLog)
                    await log.flush()
                    #expect(first.daemon?.storedResponses?.pendingCount == 0, "written rows leave the gateway's memory")
                    #expect(try await server.psql("SELECT key_name FROM stored_responses WHERE id = '\(id)'") == "tests\n")
                    let next = try await second.post(
                        "/v1/responses", json: ["model": "gpt-4o-mini", "input": "fleet follow-up", "previous_response_id": .string(id)])
                    #expect(next.status == 200)
                    let seen = Self.offsets(of: ["fleet question", "Hello from openai: fleet question", "fleet follow-up"], in: second.openai)
                    #expect(seen.allSatisfy { $0 != nil }, "\(seen)")
                    #expect(try await second.delete("/v1/responses/\(id)").status == 200)
                    #expect(try await first.get("/v1/responses/\(id)").status == 404, "a delete on one gateway holds for all")
                }
            }
        }
    }
}
