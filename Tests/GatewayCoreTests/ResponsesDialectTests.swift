import HTTPTypes
import NIOCore
import Testing
@testable import GatewayCore

extension JSON {
    /// The element at `index` when this is an array holding one there.
    fileprivate subscript(index: Int) -> JSON? {
        guard let elements = arrayValue, elements.indices.contains(index) else { return nil }
        return elements[index]
    }
}

/// A request body the dialect must refuse, and the parameter and code its 400 must name.
struct RefusedResponsesRequest: Sendable, CustomTestStringConvertible {
    let body: JSON
    let param: String
    let code: String

    init(_ body: JSON, _ param: String, _ code: String) {
        self.body = body
        self.param = param
        self.code = code
    }

    var testDescription: String { param }
}

/// OpenAI's Responses API as a client dialect: requests into the canonical chat request, chat answers and chunk
/// streams back into `response` objects and Responses events.
@Suite("Responses dialect")
struct ResponsesDialectTests {
    let dialect = OpenAIResponsesDialect()

    func decode(_ body: JSON) throws -> ChatRequest {
        // The translation alone: the route's decoding also refuses `previous_response_id` (ResponsesRouteTests).
        try dialect.decode(json: body)
    }

    func decodeError(_ body: JSON) -> GatewayError? {
        do {
            _ = try decode(body)
            return nil
        } catch {
            return error as? GatewayError
        }
    }

    // MARK: - Requests

    @Test func aStringInputIsOneUserMessage() throws {
        let chat = try decode(["model": "gpt-4.1", "input": "Hello there"])
        #expect(chat.model == "gpt-4.1")
        #expect(chat.messages.map(JSON.object) == [["role": "user", "content": "Hello there"]])
        #expect(chat.stream == false)
        #expect(chat.body["input"] == nil)
    }

    @Test func instructionsLeadAsASystemMessage() throws {
        let chat = try decode(["model": "m", "instructions": "Talk like a pirate.", "input": "Hi"])
        #expect(
            chat.messages.map(JSON.object) == [
                ["role": "system", "content": "Talk like a pirate."], ["role": "user", "content": "Hi"],
            ])
        #expect(chat.body["instructions"] == nil)
    }

    @Test func itemsWithFunctionCallsAndTheirOutputsBecomeChatMessages() throws {
        let chat = try decode([
            "model": "m",
            "input": [
                [
                    "role": "user",
                    "content": [
                        ["type": "input_text", "text": "Weather in Paris and Rome?"],
                        ["type": "input_image", "image_url": "https://example.com/map.png", "detail": "low"],
                    ],
                ],
                ["type": "reasoning", "id": "rs_1", "summary": []],
                ["type": "message", "role": "assistant", "content": [["type": "output_text", "text": "Checking."]]],
                ["type": "function_call", "call_id": "call_1", "name": "weather", "arguments": #"{"city":"Paris"}"#],
                ["type": "function_call", "call_id": "call_2", "name": "weather", "arguments": #"{"city":"Rome"}"#],
                ["type": "function_call_output", "call_id": "call_1", "output": "18C"],
                ["type": "function_call_output", "call_id": "call_2", "output": "24C"],
                ["type": "function_call", "call_id": "call_3", "name": "clock", "arguments": "{}"],
                ["type": "function_call_output", "call_id": "call_3", "output": [["type": "input_text", "text": "noon"]]],
            ],
        ])
        let expected: [JSON] = [
            [
                "role": "user",
                "content": [
                    ["type": "text", "text": "Weather in Paris and Rome?"],
                    ["type": "image_url", "image_url": ["url": "https://example.com/map.png", "detail": "low"]],
                ],
            ],
            [
                "role": "assistant", "content": [["type": "text", "text": "Checking."]],
                "tool_calls": [
                    ["id": "call_1", "type": "function", "function": ["name": "weather", "arguments": #"{"city":"Paris"}"#]],
                    ["id": "call_2", "type": "function", "function": ["name": "weather", "arguments": #"{"city":"Rome"}"#]],
                ],
            ],
            ["role": "tool", "tool_call_id": "call_1", "content": "18C"],
            ["role": "tool", "tool_call_id": "call_2", "content": "24C"],
            [
                "role": "assistant", "content": nil,
                "tool_calls": [["id": "call_3", "type": "function", "function": ["name": "clock", "arguments": "{}"]]],
            ],
            ["role": "tool", "tool_call_id": "call_3", "content": [["type": "text", "text": "noon"]]],
        ]
        #expect(chat.messages.map(JSON.object) == expected)
    }

    @Test func functionToolsAndToolChoiceTakeChatsNestedForm() throws {
        let parameters: JSON = ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]]
        let chat = try decode([
            "model": "m", "input": "Weather?",
            "tools": [
                [
                    "type": "function", "name": "weather", "description": "Current weather", "parameters": parameters,
                    "strict": true,
                ],
                ["type": "function", "name": "clock"],
            ],
            "tool_choice": ["type": "function", "name": "weather"],
            "parallel_tool_calls": false,
        ])
        #expect(
            chat.body["tools"] == [
                [
                    "type": "function",
                    "function": ["name": "weather", "description": "Current weather", "parameters": parameters, "strict": true],
                ],
                ["type": "function", "function": ["name": "clock"]],
            ])
        #expect(chat.body["tool_choice"] == ["type": "function", "function": ["name": "weather"]])
        #expect(chat.body["parallel_tool_calls"] == false)

        let required = try decode([
            "model": "m", "input": "x", "tools": [["type": "function", "name": "f"]], "tool_choice": "required",
        ])
        #expect(required.body["tool_choice"] == "required")
        let withoutTools = try decode(["model": "m", "input": "x", "tool_choice": "auto", "parallel_tool_calls": true])
        #expect(withoutTools.body["tool_choice"] == nil && withoutTools.body["parallel_tool_calls"] == nil)
    }

    @Test(arguments: ["web_search", "file_search", "computer_use_preview", "code_interpreter", "mcp"])
    func aHostedToolIsRefusedByName(type: String) {
        let error = decodeError([
            "model": "m", "input": "x", "tools": [["type": "function", "name": "f"], ["type": .string(type)]],
        ])
        #expect(error?.status == 400)
        #expect(error?.param == "tools")
        #expect(error?.code == "unsupported_tool")
        #expect(error?.message.contains("'\(type)'") == true)
        #expect(error?.message.contains("tools[1]") == true)
    }

    @Test func textFormatsBecomeResponseFormats() throws {
        let schema: JSON = ["type": "object", "properties": ["answer": ["type": "string"]], "additionalProperties": false]
        let structured = try decode([
            "model": "m", "input": "x",
            "text": ["format": ["type": "json_schema", "name": "reply", "schema": schema, "strict": true], "verbosity": "low"],
        ])
        #expect(
            structured.body["response_format"]
                == ["type": "json_schema", "json_schema": ["name": "reply", "schema": schema, "strict": true]])
        #expect(structured.body["verbosity"] == "low")
        let object = try decode(["model": "m", "input": "x", "text": ["format": ["type": "json_object"]]])
        #expect(object.body["response_format"] == ["type": "json_object"])
        let plain = try decode(["model": "m", "input": "x", "text": ["format": ["type": "text"]]])
        #expect(plain.body["response_format"] == ["type": "text"])
    }

    @Test func limitsEffortSamplingAndStreamTakeChatsNames() throws {
        let chat = try decode([
            "model": "m", "input": "x", "max_output_tokens": 300, "reasoning": ["effort": "high", "summary": "auto"],
            "temperature": 0.5, "top_p": 0.9, "user": "u-1", "stream": true, "store": false,
            "previous_response_id": "resp_prev", "include": ["reasoning.encrypted_content"], "truncation": "auto",
            "metadata": ["team": "search"],
        ])
        #expect(chat.body["max_completion_tokens"] == 300)
        #expect(chat.maxTokens == 300)
        #expect(chat.body["max_output_tokens"] == nil)
        #expect(chat.body["reasoning_effort"] == "high")
        #expect(chat.body["reasoning"] == nil)
        #expect(chat.temperature == 0.5 && chat.topP == 0.9)
        #expect(chat.body["user"] == "u-1")
        #expect(chat.stream && chat.includeUsage)
        for name in ["store", "previous_response_id", "include", "truncation", "metadata"] {
            #expect(chat.body[name] == nil, "\(name)")
        }
    }

    @Test func storeAndPreviousResponseAreTheCallers() throws {
        #expect(
            try OpenAIResponsesDialect.extras(of: ["model": "m", "input": "x"])
                == ResponsesRequestExtras(store: true, previousResponseID: nil))
        #expect(
            try OpenAIResponsesDialect.extras(of: [
                "store": false, "previous_response_id": "resp_1", "instructions": "Be brief.", "metadata": ["team": "a"],
            ])
                == ResponsesRequestExtras(
                    store: false, previousResponseID: "resp_1", instructions: "Be brief.", metadata: ["team": "a"]))
        #expect(throws: GatewayError.invalidRequest(
            "Invalid type for 'store': expected a boolean, but got string.", param: "store", code: "invalid_type"))
        {
            try OpenAIResponsesDialect.extras(of: ["store": "yes"])
        }
    }

    static let refusedRequests: [RefusedResponsesRequest] = [
        RefusedResponsesRequest(["model": "m"], "input", "missing_required_parameter"),
        RefusedResponsesRequest(["model": "m", "input": 7], "input", "invalid_type"),
        RefusedResponsesRequest(["model": "m", "input": []], "input", "empty_array"),
        RefusedResponsesRequest(["model": "m", "input": ["hi"]], "input[0]", "invalid_type"),
        RefusedResponsesRequest(
            ["model": "m", "input": [["role": "user", "content": "a"], ["role": "robot", "content": "b"]]],
            "input[1].role", "invalid_value"),
        RefusedResponsesRequest(["model": "m", "input": [["role": "user", "content": 3]]], "input[0].content", "invalid_type"),
        RefusedResponsesRequest(
            ["model": "m", "input": [["role": "user", "content": [["type": "input_text"]]]]],
            "input[0].content[0].text", "missing_required_parameter"),
        RefusedResponsesRequest(
            ["model": "m", "input": [["role": "user", "content": [["type": "video"]]]]],
            "input[0].content[0].type", "invalid_value"),
        RefusedResponsesRequest(
            [
                "model": "m",
                "input": [["role": "user", "content": "a"], ["type": "function_call", "call_id": 5, "name": "f", "arguments": "{}"]],
            ],
            "input[1].call_id", "invalid_type"),
        RefusedResponsesRequest(
            ["model": "m", "input": [["type": "function_call_output", "call_id": "c"]]],
            "input[0].output", "missing_required_parameter"),
        RefusedResponsesRequest(
            ["model": "m", "input": [["type": "item_reference", "id": "msg_1"]]],
            "input[0].type", "unsupported_value"),
        RefusedResponsesRequest(["model": "m", "input": "x", "instructions": 1], "instructions", "invalid_type"),
        RefusedResponsesRequest(["model": "m", "input": "x", "max_output_tokens": "many"], "max_output_tokens", "invalid_type"),
        RefusedResponsesRequest(["model": "m", "input": "x", "max_output_tokens": 0], "max_output_tokens", "invalid_value"),
        RefusedResponsesRequest(["model": "m", "input": "x", "temperature": "hot"], "temperature", "invalid_type"),
        RefusedResponsesRequest(["model": "m", "input": "x", "stream": "yes"], "stream", "invalid_type"),
        RefusedResponsesRequest(
            ["model": "m", "input": "x", "tools": [["type": "function"]]],
            "tools[0].name", "missing_required_parameter"),
        RefusedResponsesRequest(["model": "m", "input": "x", "tool_choice": "sometimes"], "tool_choice", "invalid_value"),
        RefusedResponsesRequest(
            ["model": "m", "input": "x", "text": ["format": ["type": "json_schema", "name": "r"]]],
            "text.format.schema", "missing_required_parameter"),
        RefusedResponsesRequest(
            ["model": "m", "input": "x", "text": ["format": ["type": "yaml"]]],
            "text.format.type", "invalid_value"),
        RefusedResponsesRequest(["model": "m", "input": "x", "reasoning": ["effort": 2]], "reasoning.effort", "invalid_type"),
        RefusedResponsesRequest(["model": "m", "input": "x", "background": true], "background", "unsupported_value"),
        RefusedResponsesRequest(["model": "m", "input": "x", "conversation": "conv_1"], "conversation", "unsupported_parameter"),
        RefusedResponsesRequest(["model": "m", "input": "x", "truncation": "sometimes"], "truncation", "invalid_value"),
        RefusedResponsesRequest(["input": "x"], "model", "missing_required_parameter"),
        RefusedResponsesRequest(["model": "m", "input": "x", "prompt": ["id": "pmpt_1"]], "prompt", "unsupported_parameter"),
        RefusedResponsesRequest(
            ["model": "m", "instructions": "Be brief.", "input": [["type": "reasoning", "id": "rs_1", "summary": []]]],
            "input", "invalid_value"),
    ]

    @Test(arguments: refusedRequests)
    func badRequestsAreRefusedNamingTheParameter(refused: RefusedResponsesRequest) {
        let error = decodeError(refused.body)
        #expect(error?.status == 400)
        #expect(error?.param == refused.param)
        #expect(error?.code == refused.code)
    }

    @Test func aBodyThatIsNotJSONIsRefused() {
        #expect(throws: GatewayError.self) { try dialect.decode(ByteBuffer(string: "{input"), headers: [:]) }
    }

    // MARK: - Complete answers

    func response(_ body: ByteBuffer) throws -> JSON { try JSON.parse(Array(buffer: body)) }

    @Test func aTextAnswerIsACompletedResponse() throws {
        let chat = try decode([
            "model": "m", "input": "x", "max_output_tokens": 50, "temperature": 0.2,
            "text": ["format": ["type": "json_schema", "name": "reply", "schema": ["type": "object"]]],
        ])
        var completion = ChatCompletion.make(
            model: "gpt-4.1-2025", text: "Paris.", toolCalls: [], finishReason: "stop",
            usage: Usage(promptTokens: 20, completionTokens: 4, cachedTokens: 8), created: 1_700_000_000
        ).body
        completion["usage"]?["completion_tokens_details"] = ["reasoning_tokens": 2]
        let extras = ResponsesRequestExtras(
            store: false, previousResponseID: "resp_prev", instructions: "Be brief.", metadata: ["team": "search"])
        let body = try response(
            dialect.encodeResponse(
                completion.bytes(), request: chat, responseID: "resp_abc", costUSD: 0.25, latencyMs: 42, extras: extras))
        #expect(body["id"] == "resp_abc")
        #expect(body["object"] == "response")
        #expect(body["created_at"] == 1_700_000_000)
        #expect(body["status"] == "completed")
        #expect(body["incomplete_details"] == .null)
        #expect(body["model"] == "gpt-4.1-2025")
        let output = try #require(body["output"]?.arrayValue)
        #expect(output.count == 1)
        #expect(output[0]["type"] == "message" && output[0]["role"] == "assistant" && output[0]["status"] == "completed")
        #expect(output[0]["id"]?.stringValue?.hasPrefix("msg_") == true)
        #expect(output[0]["content"] == [["type": "output_text", "text": "Paris.", "annotations": [], "logprobs": []]])
        #expect(
            body["usage"] == [
                "input_tokens": 20, "input_tokens_details": ["cached_tokens": 8], "output_tokens": 4,
                "output_tokens_details": ["reasoning_tokens": 2], "total_tokens": 24,
            ])
        #expect(body["cost_usd"] == 0.25 && body["latency_ms"] == 42)
        #expect(body["max_output_tokens"] == 50 && body["temperature"] == 0.2 && body["top_p"] == 1)
        #expect(body["text"] == ["format": ["type": "json_schema", "name": "reply", "schema": ["type": "object"]]])
        #expect(body["metadata"] == ["team": "search"])
        #expect(body["store"] == false && body["previous_response_id"] == "resp_prev" && body["instructions"] == "Be brief.")
        #expect(body["tool_choice"] == "auto" && body["tools"] == [] && body["parallel_tool_calls"] == true)
    }

    @Test func toolCallsAreFunctionCallItems() throws {
        let chat = try decode([
            "model": "m", "input": "x", "tools": [["type": "function", "name": "weather", "parameters": ["type": "object"]]],
            "tool_choice": ["type": "function", "name": "weather"],
        ])
        let completion = ChatCompletion.make(
            model: "m", text: nil,
            toolCalls: [
                ["id": "call_a", "type": "function", "function": ["name": "weather", "arguments": #"{"city":"Oslo"}"#]],
                ["id": "call_b", "type": "function", "function": ["name": "weather", "arguments": #"{"city":"Rome"}"#]],
            ], finishReason: "tool_calls", usage: Usage(promptTokens: 9, completionTokens: 12)
        ).body
        let body = try response(
            dialect.encodeResponse(completion.bytes(), request: chat, responseID: "resp_t", costUSD: nil, latencyMs: 5))
        let output = try #require(body["output"]?.arrayValue)
        #expect(output.count == 2)
        for (item, (callID, city)) in zip(output, [("call_a", "Oslo"), ("call_b", "Rome")]) {
            #expect(item["type"] == "function_call" && item["status"] == "completed")
            #expect(item["id"]?.stringValue?.hasPrefix("fc_") == true)
            #expect(item["call_id"] == .string(callID) && item["name"] == "weather")
            #expect(item["arguments"] == .string(#"{"city":"\#(city)"}"#))
        }
        #expect(body["status"] == "completed")
        #expect(body["cost_usd"] == .null)
        #expect(
            body["tools"] == [
                ["type": "function", "name": "weather", "description": nil, "parameters": ["type": "object"], "strict": nil]
            ])
        #expect(body["tool_choice"] == ["type": "function", "name": "weather"])
    }

    @Test func anAnswerCutShortByTheLimitIsIncomplete() throws {
        let completion = ChatCompletion.make(
            model: "m", text: "Once upon a", toolCalls: [], finishReason: "length",
            usage: Usage(promptTokens: 3, completionTokens: 16)
        ).body
        let body = try response(dialect.encodeAnswer(completion.bytes(), costUSD: 0.5, latencyMs: 9))
        #expect(body["status"] == "incomplete")
        #expect(body["incomplete_details"] == ["reason": "max_output_tokens"])
        #expect(body["output"]?[0]?["status"] == "incomplete")
        #expect(body["id"]?.stringValue?.hasPrefix("resp_") == true)
        #expect(body["usage"]?["output_tokens"] == 16)
        #expect(body["latency_ms"] == 9)
    }

    @Test func aRefusalIsARefusalPart() throws {
        var completion = ChatCompletion.make(model: "m", text: nil, toolCalls: [], finishReason: "stop", usage: nil).body
        let message: JSON = ["role": "assistant", "content": nil, "refusal": "I can't help with that."]
        completion["choices"] = [["index": 0, "message": message, "finish_reason": "stop"]]
        let body = try response(dialect.encodeAnswer(completion.bytes(), costUSD: nil, latencyMs: 1))
        #expect(body["output"]?[0]?["content"] == [["type": "refusal", "refusal": "I can't help with that."]])
        #expect(body["usage"] == .null)
    }

    @Test func errorsUseOpenAIsEnvelope() throws {
        let body = try response(dialect.errorBody(.invalidRequest("Bad.", param: "input", code: "invalid_type")))
        #expect(body == ["error": ["message": "Bad.", "type": "invalid_request_error", "param": "input", "code": "invalid_type"]])
    }

    // MARK: - Streams

    /// The events of a stream fed `batches` of payloads, one `frames` call per batch.
    func events(_ batches: [[String]], request: ChatRequest, error: GatewayError? = nil) throws -> [JSON] {
        var frames = dialect.makeFrameEncoder(for: request, responseID: "resp_s", extras: ResponsesRequestExtras())
        var parser = ServerSentEventParser()
        var events: [ServerSentEvent] = []
        for batch in batches { events += try parser.feed(frames.frames(batch).readableBytesView) }
        if let error {
            events += try parser.feed(frames.errorFrame(error).readableBytesView)
            events += try parser.feed(frames.frames(["[DONE]"]).readableBytesView)
        }
        events += parser.finish()
        return try events.map { event in
            let data = try JSON.parse(event.data)
            #expect(data["type"]?.stringValue == event.event)
            return data
        }
    }

    func checkNumbering(_ events: [JSON]) {
        #expect(events.map { $0["sequence_number"]?.intValue ?? -1 } == Array(0..<events.count))
    }

    func streamingRequest(_ extra: [String: JSON] = [:]) throws -> ChatRequest {
        var body: [String: JSON] = ["model": "m", "input": "x", "stream": true]
        body.merge(extra) { _, new in new }
        return try decode(.object(body))
    }

    @Test func aTextStreamIsMessageEventsThenCompleted() throws {
        var builder = ChunkBuilder(model: "m", includeUsage: true, created: 1_700_000_001)
        let pieces = ["The quick ", "brown fox ", "jumps."]
        let batches = [
            [builder.start(), builder.text(pieces[0])], [builder.text(pieces[1])],
            [builder.text(pieces[2]), builder.finish(reason: "stop")],
            builder.closing(usage: Usage(promptTokens: 11, completionTokens: 7, cachedTokens: 2)),
        ]
        let events = try events(batches, request: try streamingRequest())
        #expect(
            events.map { $0["type"]?.stringValue ?? "" } == [
                "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
                "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
                "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
            ])
        checkNumbering(events)
        #expect(events[0]["response"]?["status"] == "in_progress" && events[0]["response"]?["id"] == "resp_s")
        let deltas = events.filter { $0["type"] == "response.output_text.delta" }
        #expect(deltas.map { $0["delta"]?.stringValue ?? "" }.joined() == pieces.joined())
        let itemID = try #require(events[2]["item"]?["id"]?.stringValue)
        #expect(deltas.allSatisfy { $0["item_id"]?.stringValue == itemID && $0["output_index"] == 0 && $0["content_index"] == 0 })
        #expect(events[7]["text"] == .string(pieces.joined()))
        let completed = try #require(events.last?["response"])
        #expect(completed["status"] == "completed" && completed["id"] == "resp_s" && completed["created_at"] == 1_700_000_001)
        #expect(completed["output"]?[0]?["content"]?[0]?["text"] == .string(pieces.joined()))
        #expect(completed["output"]?[0]?["id"] == .string(itemID))
        #expect(
            completed["usage"] == [
                "input_tokens": 11, "input_tokens_details": ["cached_tokens": 2], "output_tokens": 7,
                "output_tokens_details": ["reasoning_tokens": 0], "total_tokens": 18,
            ])
    }

    @Test func aToolCallStreamIsFunctionCallEventsThenCompleted() throws {
        var builder = ChunkBuilder(model: "m", includeUsage: true)
        let batches = [
            [builder.start(), builder.toolCallStart(index: 0, id: "call_1", name: "weather", arguments: #"{"ci"#)],
            [builder.toolCallArguments(index: 0, fragment: #"ty":"Oslo"}"#)],
            [builder.toolCallStart(index: 1, id: "call_2", name: "clock"), builder.toolCallArguments(index: 1, fragment: "{}")],
            [builder.finish(reason: "tool_calls")] + builder.closing(usage: Usage(promptTokens: 30, completionTokens: 20)),
        ]
        let events = try events(batches, request: try streamingRequest(["tools": [["type": "function", "name": "weather"]]]))
        #expect(
            events.map { $0["type"]?.stringValue ?? "" } == [
                "response.created", "response.in_progress",
                "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                "response.function_call_arguments.done", "response.output_item.done",
                "response.output_item.added", "response.function_call_arguments.delta",
                "response.function_call_arguments.done", "response.output_item.done", "response.completed",
            ])
        checkNumbering(events)
        #expect(events[2]["item"]?["call_id"] == "call_1" && events[2]["item"]?["name"] == "weather")
        #expect(events[2]["item"]?["arguments"] == "" && events[2]["item"]?["status"] == "in_progress")
        let firstDeltas = events.filter { $0["type"] == "response.function_call_arguments.delta" && $0["output_index"] == 0 }
        #expect(firstDeltas.map { $0["delta"]?.stringValue ?? "" }.joined() == #"{"city":"Oslo"}"#)
        #expect(events[5]["arguments"] == #"{"city":"Oslo"}"# && events[5]["item_id"] == events[2]["item"]?["id"])
        #expect(events[6]["item"]?["status"] == "completed")
        #expect(events[7]["output_index"] == 1 && events[7]["item"]?["call_id"] == "call_2")
        let completed = try #require(events.last?["response"])
        #expect(completed["output"]?.arrayValue?.map { $0["arguments"]?.stringValue ?? "" } == [#"{"city":"Oslo"}"#, "{}"])
        #expect(completed["usage"]?["input_tokens"] == 30 && completed["usage"]?["output_tokens"] == 20)
        #expect(completed["tools"]?[0]?["name"] == "weather")
    }

    @Test func aStreamCutShortByTheLimitEndsIncomplete() throws {
        var builder = ChunkBuilder(model: "m", includeUsage: true)
        let batches = [
            [builder.start(), builder.text("Once upon"), builder.finish(reason: "length")]
                + builder.closing(usage: Usage(completionTokens: 2))
        ]
        let events = try events(batches, request: try streamingRequest())
        #expect(events.last?["type"] == "response.incomplete")
        #expect(events.last?["response"]?["incomplete_details"] == ["reason": "max_output_tokens"])
        #expect(events.last?["response"]?["output"]?[0]?["status"] == "incomplete")
        #expect(!events.contains { $0["type"] == "response.completed" })
        checkNumbering(events)
    }

    @Test func aReplayedAnswerStreamsLikeALiveOne() throws {
        let text = "A cached answer, long enough to be cut into several pieces by the replay."
        let completion = ChatCompletion.make(
            model: "m", text: text, toolCalls: [], finishReason: "stop", usage: Usage(promptTokens: 5, completionTokens: 15)
        ).body
        let events = try events([StreamReplay.payloads(for: completion, includeUsage: true)], request: try streamingRequest())
        let deltas = events.filter { $0["type"] == "response.output_text.delta" }
        #expect(deltas.count > 1)
        #expect(deltas.map { $0["delta"]?.stringValue ?? "" }.joined() == text)
        #expect(events.last?["type"] == "response.completed" && events.last?["response"]?["usage"]?["total_tokens"] == 20)
        checkNumbering(events)
    }

    @Test func anErrorEndsTheStream() throws {
        var builder = ChunkBuilder(model: "m", includeUsage: true)
        let failure = GatewayError.gatewayTimeout("The provider stopped answering.")
        let events = try events([[builder.start(), builder.text("Hal")]], request: try streamingRequest(), error: failure)
        let last = try #require(events.last)
        #expect(last["type"] == "error")
        #expect(last["code"] == "upstream_timeout" && last["param"] == .null)
        #expect(last["message"] == "The provider stopped answering.")
        #expect(!events.contains { $0["type"] == "response.completed" })
        checkNumbering(events)
    }
}
