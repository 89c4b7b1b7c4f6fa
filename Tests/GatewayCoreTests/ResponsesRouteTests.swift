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

    @Test func keptResponsesAreRefusedPlainly() async throws {
        try await GatewayHarness.with { gateway in
            let follow = try await gateway.post("/v1/responses", json: ["model": "gpt-4o-mini", "input": "x", "previous_response_id": "resp_abc"])
            #expect(follow.status == 400)
            #expect(follow.json?["error"]?["param"] == "previous_response_id")
            #expect(gateway.openai.requests.isEmpty)
            let fetched = try await gateway.get("/v1/responses/resp_abc")
            #expect(fetched.status == 404)
            #expect(fetched.json?["error"]?["code"] == "response_not_found")
            let hosted = try await gateway.post("/v1/responses", json: ["model": "gpt-4o-mini", "input": "x", "tools": [["type": "web_search"]]])
            #expect(hosted.status == 400)
            #expect(hosted.json?["error"]?["code"] == "unsupported_tool")
        }
    }
}
