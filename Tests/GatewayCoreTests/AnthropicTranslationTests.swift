import Testing

@testable import GatewayCore

// MARK: - Helpers

private func provider() -> ProviderConfig {
    var provider = ProviderConfig(name: "claude", type: .anthropic, baseURL: "https://api.anthropic.com", apiKey: "sk-ant-test")
    provider.headers = ["anthropic-beta": "prompt-caching-2024-07-31"]
    return provider
}

private func json(_ text: String) throws -> JSON { try JSON.parse(text) }

/// Translates an OpenAI request body to the Anthropic request.
private func upstream(_ openAI: String, model: String = "claude-sonnet-4-5") throws -> UpstreamRequest {
    try AnthropicAdapter().makeRequest(ChatRequest(json: json(openAI)), upstreamModel: model, provider: provider())
}

/// The error the translation of `openAI` throws, or nil.
private func rejection(_ openAI: String) throws -> GatewayError? {
    let request = try ChatRequest(json: json(openAI))
    do {
        _ = try AnthropicAdapter().makeRequest(request, upstreamModel: "claude-sonnet-4-5", provider: provider())
        return nil
    } catch {
        return error
    }
}

/// Compares as JSON values; `1` and `1.0` are the same number, as they are on the wire.
private func expectJSON(
    _ actual: JSON, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let expected = try json(expected)
    #expect(actual.description == expected.description, sourceLocation: sourceLocation)
}

/// Runs an SSE text through the parser and the translator: payloads, then the closing payloads or the error.
private func stream(
    _ sse: String, includeUsage: Bool = false
) -> (payloads: [String], error: GatewayError?, usage: Usage?) {
    var parser = ServerSentEventParser()
    var translator = AnthropicAdapter().makeStreamTranslator(model: "claude-test", includeUsage: includeUsage)
    var payloads: [String] = []
    do {
        let events = try parser.feed(Array(sse.utf8)) + parser.finish()
        for event in events { payloads += try translator.consume(event) }
        payloads += try translator.finish()
        return (payloads, nil, translator.usage)
    } catch {
        return (payloads, error, translator.usage)
    }
}

/// Parses chunk payloads, checks that every chunk shares one id and one `created`, and removes both.
private func withoutIdentity(_ payloads: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> [JSON] {
    var ids: Set<JSON> = []
    var times: Set<JSON> = []
    var result: [JSON] = []
    for payload in payloads {
        guard payload != "[DONE]" else {
            result.append("[DONE]")
            continue
        }
        var chunk = try json(payload)
        ids.insert(chunk["id"] ?? .null)
        times.insert(chunk["created"] ?? .null)
        chunk["id"] = nil
        chunk["created"] = nil
        result.append(chunk)
    }
    #expect(ids.count == 1, "one id for every chunk", sourceLocation: sourceLocation)
    #expect(ids.first?.stringValue?.hasPrefix("chatcmpl-") == true, sourceLocation: sourceLocation)
    #expect(times.count == 1 && times.first?.intValue != nil, sourceLocation: sourceLocation)
    return result
}

/// An expected chunk without its id and time.
private func chunk(_ delta: String, finish: String? = nil, usage: Bool = false) throws -> JSON {
    var object: [String: JSON] = [
        "object": "chat.completion.chunk", "model": "claude-test",
        "choices": [
            [
                "index": 0, "delta": try json(delta), "logprobs": .null,
                "finish_reason": finish.map(JSON.string) ?? .null,
            ]
        ],
    ]
    if usage { object["usage"] = .null }
    return .object(object)
}

/// Requests Anthropic cannot honour, and the parameter the 400 must name.
private let refused: [(String, String)] = [
    (#""n": 2"#, "n"),
    (#""logprobs": true"#, "logprobs"),
    (#""logprobs": true, "top_logprobs": 3"#, "logprobs"),
    (#""top_logprobs": 3"#, "top_logprobs"),
    (#""presence_penalty": 0.5"#, "presence_penalty"),
    (#""frequency_penalty": -1"#, "frequency_penalty"),
    (#""logit_bias": {"50256": -100}"#, "logit_bias"),
    (#""audio": {"voice": "alloy", "format": "mp3"}"#, "audio"),
    (#""modalities": ["text", "audio"]"#, "modalities"),
    (#""response_format": {"type": "json_object"}"#, "response_format"),
    (#""functions": [{"name": "f"}]"#, "functions"),
    (#""reasoning_effort": "high""#, "reasoning_effort"),
    (#""tool_choice": "required""#, "tool_choice"),
    (#""tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "allowed_tools"}"#, "tool_choice"),
]

/// Conversations Anthropic cannot take, and the parameter the 400 must name.
private let refusedMessages: [(String, String)] = [
    (#"{"role": "assistant", "content": "I start"}, {"role": "user", "content": "Hi"}"#, "messages[0]"),
    (#"{"role": "system", "content": "Only rules"}"#, "messages"),
    (#"{"role": "user", "content": ""}"#, "messages"),
    (#"{"role": "user", "content": "Hi"}, {"role": "function", "name": "f", "content": "x"}"#, "messages[1].role"),
    (
        #"{"role": "user", "content": "Hi"}, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}"#,
        "messages[1].tool_calls[0].function.arguments"
    ),
    (
        #"{"role": "user", "content": "Hi"}, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}"#,
        "messages[1].tool_calls[0].function.arguments"
    ),
    (
        #"{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]}"#,
        "messages[0].content[0]"
    ),
    (
        #"{"role": "user", "content": [{"type": "text", "text": "Read"}, {"type": "file", "file": {"file_id": "file-1"}}]}"#,
        "messages[0].content[1]"
    ),
    (
        #"{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/svg+xml;base64,PHN2Zz4="}}]}"#,
        "messages[0].content[0].image_url.url"
    ),
    (
        #"{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}"#,
        "messages[0].content[0].image_url.url"
    ),
    (
        #"{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}]}"#,
        "messages[0].content[0].image_url.url"
    ),
    (
        #"{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}]}, {"role": "user", "content": "Hi"}"#,
        "messages[0].content[0]"
    ),
]

/// The parts of a `chat.completion` that do not vary between runs.
private func stable(_ completion: ChatCompletion) -> JSON {
    var body = completion.body
    #expect(body["id"]?.stringValue?.hasPrefix("chatcmpl-") == true)
    #expect(body["created"]?.intValue != nil)
    body["id"] = nil
    body["created"] = nil
    return body
}

private func fakeCheck(_ body: JSON, headers: [String: String]? = nil, path: String = "/v1/messages")
    -> (status: Int, body: JSON)?
{
    let headers = headers ?? ["x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01", "content-type": "application/json"]
    return FakeAnthropicRules.check(method: "POST", path: path, headers: headers, body: body.bytes(), expectedKey: "sk-ant-test")
}

/// Golden translations between OpenAI Chat Completions and Anthropic Messages, and the fake server's rules.
@Suite struct AnthropicTranslationTests {
    // MARK: - Requests

    @Test func minimalRequestHasPathHeadersAndDefaults() throws {
        let request = try upstream(#"{"model": "claude", "messages": [{"role": "user", "content": "Hi"}]}"#)
        #expect(request.path == "/v1/messages")
        #expect(request.header("x-api-key") == "sk-ant-test")
        #expect(request.header("anthropic-version") == "2023-06-01")
        #expect(request.header("content-type") == "application/json")
        #expect(request.header("anthropic-beta") == "prompt-caching-2024-07-31")
        #expect(request.header("authorization") == nil)
        try expectJSON(
            request.body,
            #"""
            {"model": "claude-sonnet-4-5", "max_tokens": 4096,
             "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
            """#)
    }

    @Test func systemAndDeveloperMessagesBecomeSystemBlocksInOrder() throws {
        let request = try upstream(
            #"""
            {"model": "m", "messages": [
              {"role": "system", "content": "Be brief."},
              {"role": "user", "content": "Hi"},
              {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}, {"type": "text", "text": "No emoji."}]},
              {"role": "assistant", "content": "Bonjour"},
              {"role": "system", "content": "Last rule."},
              {"role": "user", "content": "Encore"}
            ]}
            """#)
        try expectJSON(
            request.body,
            #"""
            {"model": "claude-sonnet-4-5", "max_tokens": 4096,
             "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."},
                        {"type": "text", "text": "No emoji."}, {"type": "text", "text": "Last rule."}],
             "messages": [
               {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
               {"role": "assistant", "content": [{"type": "text", "text": "Bonjour"}]},
               {"role": "user", "content": [{"type": "text", "text": "Encore"}]}]}
            """#)
    }

    @Test func consecutiveTurnsOfOneRoleAreMerged() throws {
        let request = try upstream(
            #"""
            {"model": "m", "messages": [
              {"role": "user", "content": "One"},
              {"role": "user", "content": [{"type": "text", "text": "Two"}]},
              {"role": "assistant", "content": "A"},
              {"role": "assistant", "content": "B  "},
              {"role": "user", "content": "Three"},
              {"role": "assistant", "content": "Prefill \n"}
            ]}
            """#)
        try expectJSON(
            request.body["messages"] ?? nil,
            #"""
            [{"role": "user", "content": [{"type": "text", "text": "One"}, {"type": "text", "text": "Two"}]},
             {"role": "assistant", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B  "}]},
             {"role": "user", "content": [{"type": "text", "text": "Three"}]},
             {"role": "assistant", "content": [{"type": "text", "text": "Prefill"}]}]
            """#)
    }

    @Test func toolCallsAndResultsRoundTrip() throws {
        let request = try upstream(
            #"""
            {"model": "m",
             "tools": [
               {"type": "function", "function": {"name": "weather", "description": "Weather in a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
               {"type": "function", "function": {"name": "time"}}],
             "tool_choice": "required", "parallel_tool_calls": false,
             "messages": [
               {"role": "user", "content": "Weather and time in Paris?"},
               {"role": "assistant", "content": "Let me look.", "tool_calls": [
                 {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                 {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}}]},
               {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
               {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:00"}]},
               {"role": "user", "content": "Thanks"}
             ]}
            """#)
        try expectJSON(
            request.body,
            #"""
            {"model": "claude-sonnet-4-5", "max_tokens": 4096,
             "tools": [
               {"name": "weather", "description": "Weather in a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
               {"name": "time", "input_schema": {"type": "object", "properties": {}}}],
             "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
             "messages": [
               {"role": "user", "content": [{"type": "text", "text": "Weather and time in Paris?"}]},
               {"role": "assistant", "content": [
                 {"type": "text", "text": "Let me look."},
                 {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                 {"type": "tool_use", "id": "call_2", "name": "time", "input": {}}]},
               {"role": "user", "content": [
                 {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                 {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "14:00"}]},
                 {"type": "text", "text": "Thanks"}]}]}
            """#)
    }

    @Test func toolResultsGoBeforeUserTextInTheSameTurn() throws {
        let request = try upstream(
            #"""
            {"model": "m", "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
             "messages": [
               {"role": "user", "content": "Go"},
               {"role": "assistant", "content": null, "tool_calls": [
                 {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
               {"role": "user", "content": "Here is the result:"},
               {"role": "tool", "tool_call_id": "call_9", "content": "ok"}]}
            """#)
        try expectJSON(
            request.body["messages"]?.arrayValue?.last ?? nil,
            #"""
            {"role": "user", "content": [
              {"type": "tool_result", "tool_use_id": "call_9", "content": "ok"},
              {"type": "text", "text": "Here is the result:"}]}
            """#)
        try expectJSON(request.body["tools"] ?? nil, #"[{"name": "f", "input_schema": {"type": "object", "properties": {}}}]"#)
        #expect(request.body["tool_choice"] == nil)
    }

    @Test func imagesFromDataAndHTTPURLs() throws {
        let request = try upstream(
            #"""
            {"model": "m", "messages": [{"role": "user", "content": [
              {"type": "text", "text": "Compare"},
              {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
              {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}
            """#)
        try expectJSON(
            request.body["messages"] ?? nil,
            #"""
            [{"role": "user", "content": [
              {"type": "text", "text": "Compare"},
              {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
              {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]}]
            """#)
    }

    @Test func samplingParametersAndHarmlessFields() throws {
        let request = try upstream(
            #"""
            {"model": "m", "messages": [{"role": "user", "content": "Hi"}],
             "max_tokens": 50, "max_completion_tokens": 100, "temperature": 1.7, "top_p": 0.9,
             "stop": ["END", "STOP"], "stream": true, "stream_options": {"include_usage": true},
             "user": "user-42", "store": true, "service_tier": "auto", "metadata": {"k": "v"}, "seed": 7,
             "n": 1, "presence_penalty": 0, "frequency_penalty": 0, "logprobs": false,
             "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
               "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}}
            """#)
        try expectJSON(
            request.body,
            #"""
            {"model": "claude-sonnet-4-5", "max_tokens": 100, "temperature": 1, "top_p": 0.9,
             "stop_sequences": ["END", "STOP"], "stream": true, "metadata": {"user_id": "user-42"},
             "output_config": {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}},
             "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
            """#)
    }

    @Test(arguments: [
        ("0.4", "0.4"), ("0", "0"), ("1", "1"), ("2", "1"), ("1.0001", "1"),
    ])
    func temperatureIsClampedToAnthropicsRange(sent: String, expected: String) throws {
        let request = try upstream(#"{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "temperature": \#(sent)}"#)
        try expectJSON(request.body["temperature"] ?? nil, expected)
    }

    @Test(arguments: [
        (#""auto""#, #"{"type": "auto"}"#),
        (#""none""#, #"{"type": "none"}"#),
        (#""required""#, #"{"type": "any"}"#),
        (#"{"type": "function", "function": {"name": "f"}}"#, #"{"type": "tool", "name": "f"}"#),
    ])
    func toolChoiceMapping(openAI: String, anthropic: String) throws {
        let request = try upstream(
            #"""
            {"model": "m", "messages": [{"role": "user", "content": "Hi"}],
             "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": \#(openAI)}
            """#)
        try expectJSON(request.body["tool_choice"] ?? nil, anthropic)
    }

    @Test func parallelToolCallsOffWithoutToolChoice() throws {
        let request = try upstream(
            #"""
            {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "parallel_tool_calls": false,
             "tools": [{"type": "function", "function": {"name": "f"}}]}
            """#)
        try expectJSON(request.body["tool_choice"] ?? nil, #"{"type": "auto", "disable_parallel_tool_use": true}"#)
    }

    @Test(arguments: refused)
    func unsupportedParametersAreRefused(fields: String, param: String) throws {
        let error = try rejection(#"{"model": "m", "messages": [{"role": "user", "content": "Hi"}], \#(fields)}"#)
        #expect(error?.status == 400)
        #expect(error?.type == "invalid_request_error")
        #expect(error?.param == param)
        #expect(error?.message.contains(param) == true)
    }

    @Test(arguments: refusedMessages)
    func unsupportedConversationsAreRefused(messages: String, param: String) throws {
        let error = try rejection(#"{"model": "m", "messages": [\#(messages)]}"#)
        #expect(error?.status == 400)
        #expect(error?.param == param)
    }

    @Test func errorMessageReadsAnthropicsErrorBody() throws {
        let body = try json(#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#)
        #expect(AnthropicAdapter().errorMessage(from: body) == "Overloaded")
        #expect(AnthropicAdapter().errorMessage(from: try json(#"{"unrelated": 1}"#)) == nil)
    }

    // MARK: - Responses

    @Test func textResponseDropsThinkingAndCountsCachedTokens() throws {
        let completion = try AnthropicAdapter().translateResponse(
            json(
                #"""
                {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
                 "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                             {"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}],
                 "stop_reason": "end_turn", "stop_sequence": null,
                 "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}}
                """#),
            model: "claude")
        try expectJSON(
            stable(completion),
            #"""
            {"object": "chat.completion", "model": "claude-sonnet-4-5-20250929",
             "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": "Hello world", "refusal": null}}],
             "usage": {"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
                       "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20}}}
            """#)
        #expect(completion.usage == Usage(promptTokens: 130, completionTokens: 5, cachedTokens: 100, cacheWriteTokens: 20))
    }

    @Test func toolUseResponseBecomesToolCalls() throws {
        let completion = try AnthropicAdapter().translateResponse(
            json(
                #"""
                {"type": "message", "role": "assistant",
                 "content": [{"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Paris"}},
                             {"type": "tool_use", "id": "toolu_02", "name": "time", "input": {}}],
                 "stop_reason": "tool_use", "usage": {"input_tokens": 7, "output_tokens": 3}}
                """#),
            model: "claude")
        try expectJSON(
            stable(completion),
            #"""
            {"object": "chat.completion", "model": "claude",
             "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                          "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                            {"id": "toolu_01", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                            {"id": "toolu_02", "type": "function", "function": {"name": "time", "arguments": "{}"}}]}}],
             "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "prompt_tokens_details": {"cached_tokens": 0}}}
            """#)
    }

    @Test(arguments: [
        ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
        ("tool_use", "tool_calls"), ("refusal", "content_filter"),
    ])
    func stopReasonMapping(stopReason: String, finishReason: String) throws {
        let completion = try AnthropicAdapter().translateResponse(
            json(#"{"type": "message", "content": [{"type": "text", "text": "x"}], "stop_reason": "\#(stopReason)"}"#),
            model: "claude")
        #expect(completion.body["choices"]?.arrayValue?.first?["finish_reason"]?.stringValue == finishReason)
        #expect(completion.usage == nil)
    }

    @Test func responseThatIsNotAMessageIsABadGateway() throws {
        #expect(throws: GatewayError.self) {
            try AnthropicAdapter().translateResponse(json(#"{"choices": []}"#), model: "claude")
        }
    }

    // MARK: - Streams

    @Test func textStreamBecomesChunks() throws {
        let result = stream(
            #"""
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"usage":{"input_tokens":25,"cache_read_input_tokens":5,"cache_creation_input_tokens":0,"output_tokens":1}}}

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think"}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"abc"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":0}

            event: content_block_start
            data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

            event: ping
            data: {"type": "ping"}

            event: content_block_delta
            data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello"}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" world"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":1}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":15}}

            event: message_stop
            data: {"type":"message_stop"}


            """#,
            includeUsage: true)
        #expect(result.error == nil)
        let expectedUsage = Usage(promptTokens: 30, completionTokens: 15, cachedTokens: 5)
        #expect(result.usage == expectedUsage)
        let expected: [JSON] = [
            try chunk(#"{"role": "assistant", "content": ""}"#, usage: true),
            try chunk(#"{"content": "Hello"}"#, usage: true),
            try chunk(#"{"content": " world"}"#, usage: true),
            try chunk("{}", finish: "length", usage: true),
            [
                "object": "chat.completion.chunk", "model": "claude-test", "choices": [],
                "usage": expectedUsage.json,
            ],
            "[DONE]",
        ]
        #expect(try withoutIdentity(result.payloads) == expected)
    }

    @Test func toolUseStreamBecomesToolCallChunks() throws {
        let result = stream(
            #"""
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","content":[],"model":"claude","usage":{"input_tokens":40,"output_tokens":1}}}

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Checking"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":0}

            event: content_block_start
            data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_A","name":"weather","input":{}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":1}

            event: content_block_start
            data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_B","name":"time","input":{}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":2}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":30}}

            event: message_stop
            data: {"type":"message_stop"}
            """#)
        #expect(result.error == nil)
        #expect(result.usage == Usage(promptTokens: 40, completionTokens: 30))
        let expected: [JSON] = [
            try chunk(#"{"role": "assistant", "content": ""}"#),
            try chunk(#"{"content": "Checking"}"#),
            try chunk(
                #"{"tool_calls": [{"index": 0, "id": "toolu_A", "type": "function", "function": {"name": "weather", "arguments": ""}}]}"#),
            try chunk(#"{"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}"#),
            try chunk(#"{"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}"#),
            try chunk(
                #"{"tool_calls": [{"index": 1, "id": "toolu_B", "type": "function", "function": {"name": "time", "arguments": ""}}]}"#),
            try chunk(#"{"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}"#),
            try chunk("{}", finish: "tool_calls"),
            "[DONE]",
        ]
        #expect(try withoutIdentity(result.payloads) == expected)
    }

    @Test func streamWithoutMessageStopIsTruncated() throws {
        let result = stream(
            #"""
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_3","usage":{"input_tokens":3,"output_tokens":1}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}
            """#)
        #expect(result.error?.status == 502)
        #expect(result.error?.code == "stream_truncated")
        #expect(result.payloads.count == 2)
        #expect(result.usage == Usage(promptTokens: 3, completionTokens: 1))
    }

    @Test(arguments: [("overloaded_error", 503), ("api_error", 502), ("rate_limit_error", 502)])
    func errorEventThrows(type: String, status: Int) throws {
        let result = stream(
            #"""
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_4","usage":{"input_tokens":3,"output_tokens":1}}}

            event: error
            data: {"type": "error", "error": {"type": "\#(type)", "message": "Something broke"}}
            """#)
        #expect(result.error?.status == status)
        #expect(result.error?.message.contains("Something broke") == true)
        #expect(result.payloads.count == 1)
    }

    @Test func eventThatIsNotJSONIsABadGateway() throws {
        let result = stream("event: content_block_delta\ndata: {oops\n\n")
        #expect(result.error?.status == 502)
    }

    // MARK: - The fake's rules against the adapter

    @Test func fakeAcceptsWhatTheAdapterSendsAndAnswersIt() throws {
        let request = try upstream(
            #"""
            {"model": "m", "stream": true, "temperature": 2,
             "tools": [{"type": "function", "function": {"name": "weather"}}],
             "messages": [
               {"role": "system", "content": "Be brief."},
               {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
               {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"}]}
            """#, model: "claude-fake")
        #expect(fakeCheck(request.body) == nil)

        let answer = FakeAnthropicRules.response(for: request.body)
        let completion = try AnthropicAdapter().translateResponse(answer, model: "m")
        let message = completion.body["choices"]?.arrayValue?.first?["message"]
        #expect(message?["content"] == "Hello from anthropic: Sunny")
        #expect(completion.body["model"] == "claude-fake")

        var translator = AnthropicAdapter().makeStreamTranslator(model: "m", includeUsage: false)
        var text = ""
        for event in FakeAnthropicRules.streamEvents(for: request.body) {
            for payload in try translator.consume(event) {
                text += try json(payload)["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue ?? ""
            }
        }
        #expect(try translator.finish() == ["[DONE]"])
        #expect(text == "Hello from anthropic: Sunny")
        #expect(translator.usage == completion.usage)
    }

    @Test func fakeAnswersToolsWithAToolCall() throws {
        let request = try upstream(
            #"{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "function", "function": {"name": "weather"}}]}"#)
        let completion = try AnthropicAdapter().translateResponse(FakeAnthropicRules.response(for: request.body), model: "m")
        let call = completion.body["choices"]?.arrayValue?.first?["message"]?["tool_calls"]?.arrayValue?.first
        #expect(call?["function"]?["name"] == "weather")
        #expect(call?["function"]?["arguments"] == #"{"city":"Paris"}"#)
        #expect(call?["id"]?.stringValue?.hasPrefix("toolu_") == true)
    }

    @Test(arguments: [
        (#"{"n": 2}"#, 400), (#"{"stop": "x"}"#, 400), (#"{"max_completion_tokens": 5}"#, 400),
        (#"{"response_format": {"type": "text"}}"#, 400), (#"{"tool_choice": "auto"}"#, 400),
        (#"{"frequency_penalty": 0}"#, 400), (#"{"presence_penalty": 0}"#, 400), (#"{"user": "u"}"#, 400),
        (#"{"stream_options": {}}"#, 400), (#"{"temperature": 1.5}"#, 400), (#"{"max_tokens": null}"#, 400),
        (#"{"model": "status-529"}"#, 529), (#"{"model": "status-429"}"#, 429), (#"{"top_k": 5}"#, 0),
    ])
    func fakeRefusesWhatAnthropicRefuses(change: String, status: Int) throws {
        var body = try json(#"{"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}"#)
        for (key, value) in try json(change).objectValue ?? [:] { body[key] = value.isNull ? nil : value }
        let answer = fakeCheck(body)
        #expect(answer?.status ?? 0 == status)
        if let answer {
            #expect(answer.body["type"] == "error")
            #expect(answer.body["error"]?["type"]?.stringValue == FakeAnthropicRules.errorType(status: status))
        }
    }

    @Test func fakeRefusesBadHeadersPathsAndConversations() throws {
        let valid = try json(#"{"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}"#)
        #expect(fakeCheck(valid, path: "/v1/chat/completions")?.status == 404)
        #expect(fakeCheck(valid, headers: ["anthropic-version": "2023-06-01"])?.body["error"]?["type"] == "authentication_error")
        #expect(fakeCheck(valid, headers: ["x-api-key": "wrong", "anthropic-version": "2023-06-01"])?.status == 401)
        #expect(fakeCheck(valid, headers: ["x-api-key": "sk-ant-test"])?.status == 400)
        #expect(
            FakeAnthropicRules.check(
                method: "POST", path: "/v1/messages", headers: ["x-api-key": "sk-ant-test", "anthropic-version": "1"],
                body: Array("{".utf8), expectedKey: "sk-ant-test")?.status == 400)
        let conversations = [
            #"[{"role": "system", "content": "x"}, {"role": "user", "content": "Hi"}]"#,
            #"[{"role": "assistant", "content": "x"}, {"role": "user", "content": "Hi"}]"#,
            #"[]"#,
            #"[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "x"}]}]"#,
            #"[{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AA"}}]}]"#,
            #"[{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]"#,
            #"[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}, {"role": "user", "content": "no result"}]"#,
        ]
        for messages in conversations {
            var body = valid
            body["messages"] = try json(messages)
            #expect(fakeCheck(body)?.status == 400, "\(messages)")
        }
        var noSchema = valid
        noSchema["tools"] = [["name": "f"]]
        #expect(fakeCheck(noSchema)?.status == 400)
    }

    @Test func fakeTruncatesStreamsForTheTruncateModel() throws {
        let request = try upstream(#"{"model": "m", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}"#, model: "stream-truncate")
        var translator = AnthropicAdapter().makeStreamTranslator(model: "m", includeUsage: false)
        let events = FakeAnthropicRules.streamEvents(for: request.body)
        #expect(events.map(\.event) == ["message_start", "content_block_start", "ping", "content_block_delta"])
        for event in events { _ = try translator.consume(event) }
        #expect(throws: GatewayError.badGateway("The provider's stream ended before it was complete.", code: "stream_truncated")) {
            try translator.finish()
        }
    }
}
