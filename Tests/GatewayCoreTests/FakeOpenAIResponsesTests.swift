import Testing
@testable import GatewayCore

/// The fake of OpenAI's `POST /v1/responses` itself, called directly: what it refuses and what it answers.
@Suite("Fake OpenAI Responses")
struct FakeOpenAIResponsesTests {
    func refusal(_ request: JSON, store: FakeOpenAIResponses.Store? = nil) throws -> (status: Int, error: JSON) {
        let rejection = try #require(FakeOpenAIResponses.rejection(for: request, store: store))
        return (rejection.status, try #require(rejection.body["error"]))
    }

    /// The text of the first output item's first content part.
    func outputText(_ response: JSON) -> String? {
        response["output"]?.arrayValue?.first?["content"]?.arrayValue?.first?["text"]?.stringValue
    }

    @Test func refusesAnUnknownParameter() throws {
        let (status, error) = try refusal(["model": "gpt-4o", "input": "Hi", "messages": []])
        #expect(status == 400)
        #expect(error["message"] == "Unknown parameter: 'messages'.")
        #expect(error["type"] == "invalid_request_error")
        #expect(error["param"] == "messages")
        #expect(error["code"] == "unknown_parameter")
    }

    @Test func refusesAFunctionCallOutputWithoutItsCall() throws {
        let input: JSON = [
            ["role": "user", "content": "Weather?"],
            ["type": "function_call_output", "call_id": "call_orphan", "output": "sunny"],
        ]
        let (status, error) = try refusal(["model": "gpt-4o", "input": input])
        #expect(status == 400)
        #expect(error["message"] == "No tool call found for function call output with call_id call_orphan.")
        #expect(error["param"] == "input")

        let answered: JSON = [
            ["role": "user", "content": "Weather?"],
            ["type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"],
            ["type": "function_call_output", "call_id": "call_1", "output": "sunny"],
        ]
        #expect(FakeOpenAIResponses.rejection(for: ["model": "gpt-4o", "input": answered]) == nil)
    }

    @Test func refusesAChatStyleTool() throws {
        let tools: JSON = [["type": "function", "function": ["name": "weather", "parameters": ["type": "object"]]]]
        let (status, error) = try refusal(["model": "gpt-4o", "input": "Hi", "tools": tools])
        #expect(status == 400)
        #expect(error["message"] == "Missing required parameter: 'tools[0].name'.")
        #expect(error["param"] == "tools[0].name")
        #expect(error["code"] == "missing_required_parameter")
    }

    @Test func refusesWhatTheAPIRefuses() throws {
        #expect(try refusal(["input": "Hi"]).error["param"] == "model")
        #expect(try refusal(["model": "gpt-4o"]).error["param"] == "input")
        #expect(try refusal(["model": "gpt-4o", "input": []]).error["code"] == "empty_array")
        #expect(try refusal(["model": "gpt-4o", "input": "Hi", "stream_options": ["include_usage": true]]).error["param"] == "stream_options")
        #expect(try refusal(["model": "gpt-4o", "input": "Hi", "max_output_tokens": 8]).error["code"] == "integer_below_min_value")
        #expect(try refusal(["model": "gpt-4o", "input": [["role": "tool", "content": "x"]]]).error["param"] == "input[0].role")
        let wrongPart: JSON = [["role": "assistant", "content": [["type": "input_text", "text": "x"]]]]
        #expect(try refusal(["model": "gpt-4o", "input": wrongPart]).error["param"] == "input[0].content[0]")
        #expect(try refusal(["model": "gpt-4o", "input": [["type": "item_reference", "id": "x"]]]).error["code"] == "invalid_value")
        let reasoning: JSON = [["type": "reasoning", "id": "rs_1", "summary": []], ["role": "user", "content": "Hi"]]
        let unstored = try refusal(["model": "gpt-4o", "store": false, "input": reasoning])
        #expect(unstored.status == FakeOpenAIResponses.itemNotPersistedStatus)
        #expect(unstored.error["message"]?.stringValue?.hasPrefix("Item with id 'rs_1' not found.") == true)
    }

    @Test func previousResponseMustBeStored() throws {
        let store = FakeOpenAIResponses.Store()
        let (status, error) = try refusal(["model": "gpt-4o", "input": "Hi", "previous_response_id": "resp_nope"], store: store)
        #expect(status == FakeOpenAIResponses.previousResponseNotFoundStatus)
        #expect(error["message"] == "Previous response with id 'resp_nope' not found.")
        #expect(error["code"] == "previous_response_not_found")

        // A stored function call can be answered in the next turn; a response made with `store: false` is not kept.
        let first: JSON = ["model": "gpt-4o", "input": "Weather?", "tools": [["type": "function", "name": "weather", "parameters": [:]]]]
        let answer = FakeOpenAIResponses.response(for: first)
        store.remember(answer, request: first)
        let id = try #require(answer["id"]?.stringValue)
        let next: JSON = ["model": "gpt-4o", "previous_response_id": .string(id),
                          "input": [["type": "function_call_output", "call_id": "call_fake1", "output": "sunny"]]]
        #expect(FakeOpenAIResponses.rejection(for: next, store: store) == nil)

        var unstoredRequest = first
        unstoredRequest["store"] = false
        let unstored = FakeOpenAIResponses.response(for: unstoredRequest)
        store.remember(unstored, request: unstoredRequest)
        #expect(store.response(try #require(unstored["id"]?.stringValue)) == nil)
    }

    @Test func checksTheKey() throws {
        let body = Array(#"{"model": "gpt-4o", "input": "Hi"}"#.utf8)
        let refused = try #require(FakeOpenAIResponses.check(method: "POST", headers: ["authorization": "Bearer wrong"], body: body, expectedKey: "sk-right"))
        #expect(refused.status == 401)
        #expect(refused.body["error"]?["type"] == "invalid_request_error")
        #expect(FakeOpenAIResponses.check(method: "POST", headers: ["authorization": "Bearer sk-right"], body: body, expectedKey: "sk-right") == nil)
    }

    @Test func answersAStringInput() throws {
        let request: JSON = ["model": "gpt-4o", "input": "What is up"]
        #expect(FakeOpenAIResponses.rejection(for: request) == nil)
        let response = FakeOpenAIResponses.response(for: request)
        #expect(response["id"]?.stringValue?.hasPrefix("resp_") == true)
        #expect(response["object"] == "response")
        #expect(response["status"] == "completed")
        #expect(response["model"] == "gpt-4o")
        #expect(response["error"] == .null)
        #expect(response["store"] == true)
        #expect(response["tool_choice"] == "auto")
        let item = try #require(response["output"]?.arrayValue?.first)
        #expect(item["type"] == "message")
        #expect(item["role"] == "assistant")
        #expect(item["id"]?.stringValue?.hasPrefix("msg_") == true)
        #expect(outputText(response) == "Hello from openai: What is up")

        let input = 10 + FakeText.characterCount(request) / 4
        let usage = try #require(response["usage"])
        #expect(usage["input_tokens"]?.intValue == input)
        #expect(usage["output_tokens"]?.intValue == 6)
        #expect(usage["total_tokens"]?.intValue == input + 6)
        #expect(usage["input_tokens_details"]?["cached_tokens"] == 0)
        #expect(usage["output_tokens_details"]?["reasoning_tokens"] == 0)
    }

    @Test func answersWithAFunctionCallWhenToolsArePending() throws {
        let request: JSON = ["model": "gpt-4o", "input": "Weather?", "tools": [["type": "function", "name": "weather", "parameters": [:]]]]
        let item = try #require(FakeOpenAIResponses.response(for: request)["output"]?.arrayValue?.first)
        #expect(item["type"] == "function_call")
        #expect(item["name"] == "weather")
        #expect(item["call_id"] == "call_fake1")
        #expect(item["arguments"] == "{\"city\":\"Paris\"}")
        #expect(item["id"]?.stringValue?.hasPrefix("fc_") == true)
    }

    @Test func streamEndsWithTheCompletedResponse() throws {
        let request: JSON = ["model": "gpt-4o", "input": [["role": "user", "content": [["type": "input_text", "text": "Stream this"]]]], "stream": true]
        #expect(FakeOpenAIResponses.rejection(for: request) == nil)
        let events = FakeOpenAIResponses.streamEvents(for: request)
        let payloads = try events.map { try JSON.parse($0.data) }
        #expect(events.allSatisfy { $0.data != "[DONE]" })
        for (number, (event, payload)) in zip(events, payloads).enumerated() {
            #expect(payload["sequence_number"]?.intValue == number)
            #expect(event.event == payload["type"]?.stringValue)
        }
        #expect(payloads.first?["type"] == "response.created")
        #expect(payloads.first?["response"]?["status"] == "in_progress")
        #expect(payloads.first?["response"]?["usage"] == .null)
        let completed = try #require(payloads.last)
        #expect(completed["type"] == "response.completed")
        let expected = outputText(FakeOpenAIResponses.response(for: request))
        #expect(expected == "Hello from openai: Stream this")
        #expect(outputText(try #require(completed["response"])) == expected)
        let deltas = payloads.filter { $0["type"] == "response.output_text.delta" }.compactMap { $0["delta"]?.stringValue }
        #expect(deltas.joined() == expected)

        var truncated = request
        truncated["model"] = "stream-truncate"
        #expect(FakeOpenAIResponses.streamEvents(for: truncated).count == 3)
    }
}
