import Testing

@testable import GatewayCore

// MARK: - Helpers

private let geminiProvider: ProviderConfig = {
    var provider = ProviderConfig(
        name: "gemini", type: .gemini, baseURL: "https://generativelanguage.googleapis.com", apiKey: "test-key")
    provider.headers = ["x-team": "search"]
    return provider
}()

private func chatRequest(_ text: String) throws -> ChatRequest {
    try ChatRequest(json: JSON.parse(text))
}

private func geminiRequest(_ text: String, model: String = "gemini-2.5-flash") throws -> UpstreamRequest {
    try GeminiAdapter().makeRequest(chatRequest(text), upstreamModel: model, provider: geminiProvider)
}

extension JSON {
    /// The element at `index` when this is an array holding one there.
    fileprivate subscript(index: Int) -> JSON? {
        guard let elements = arrayValue, elements.indices.contains(index) else { return nil }
        return elements[index]
    }
}

/// A completion or chunk with its random `id` and `created` replaced, and generated tool call ids too.
private func normalized(_ value: JSON) -> JSON {
    switch value {
    case .object(var members):
        if members["id"]?.stringValue?.hasPrefix("chatcmpl-") == true { members["id"] = "<id>" }
        if members["created"] != nil { members["created"] = 0 }
        if let id = members["id"]?.stringValue, id.hasPrefix("call_"), id.count == "call_".count + 24 {
            members["id"] = "<call>"
        }
        return .object(members.mapValues(normalized))
    case .array(let elements):
        return .array(elements.map(normalized))
    default:
        return value
    }
}

// MARK: - Request golden pairs

struct GeminiRequestCase: Sendable, CustomTestStringConvertible {
    var name: String
    var openAI: String
    var path: String
    var gemini: String
    var model = "gemini-2.5-flash"
    var testDescription: String { name }
}

private let requestCases: [GeminiRequestCase] = [
    GeminiRequestCase(
        name: "system and developer messages in order, same-role turns merged",
        openAI: #"""
            {"model": "g", "user": "u-1", "store": false, "metadata": {"k": "v"}, "service_tier": "auto", "messages": [
              {"role": "system", "content": "You are terse."},
              {"role": "user", "content": "Hi"},
              {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
              {"role": "user", "content": [{"type": "text", "text": "How are you?"}]},
              {"role": "assistant", "content": "Bien."},
              {"role": "assistant", "content": [{"type": "text", "text": "Et toi ?"}]},
              {"role": "assistant", "content": ""},
              {"role": "user", "content": "Good."}]}
            """#,
        path: "/v1beta/models/gemini-2.5-flash:generateContent",
        gemini: #"""
            {"systemInstruction": {"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]},
             "contents": [
               {"role": "user", "parts": [{"text": "Hi"}, {"text": "How are you?"}]},
               {"role": "model", "parts": [{"text": "Bien."}, {"text": "Et toi ?"}]},
               {"role": "user", "parts": [{"text": "Good."}]}]}
            """#),
    GeminiRequestCase(
        name: "tool round trip: declarations, calls, results found by id",
        openAI: #"""
            {"model": "g", "tool_choice": "auto", "parallel_tool_calls": true,
             "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                              "required": ["city"], "additionalProperties": false}, "strict": true}},
               {"type": "function", "function": {"name": "get_time"}}],
             "messages": [
              {"role": "user", "content": "Weather in Paris and Rome?"},
              {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
              {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
              {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
              {"role": "user", "content": "Thanks"}]}
            """#,
        path: "/v1beta/models/gemini-2.5-flash:generateContent",
        gemini: #"""
            {"contents": [
               {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
               {"role": "model", "parts": [
                 {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "skip_thought_signature_validator"},
                 {"functionCall": {"name": "get_time", "args": {}}}]},
               {"role": "user", "parts": [
                 {"functionResponse": {"name": "get_weather", "response": {"temp": 21, "sky": "clear"}}},
                 {"functionResponse": {"name": "get_time", "response": {"content": "12:00"}}},
                 {"text": "Thanks"}]}],
             "tools": [{"functionDeclarations": [
               {"name": "get_weather", "description": "Current weather",
                "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}},
                                         "required": ["city"], "additionalProperties": false}},
               {"name": "get_time"}]}],
             "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}}}
            """#),
    GeminiRequestCase(
        name: "images (data and http), audio and an inline PDF",
        openAI: #"""
            {"model": "g", "messages": [{"role": "user", "content": [
              {"type": "text", "text": "Describe"},
              {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
              {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?size=large#top"}},
              {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
              {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
              {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
              {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}]}]}
            """#,
        path: "/v1beta/models/gemini-2.5-flash:generateContent",
        gemini: #"""
            {"contents": [{"role": "user", "parts": [
              {"text": "Describe"},
              {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
              {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=large#top"}},
              {"fileData": {"fileUri": "https://example.com/photo"}},
              {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
              {"inlineData": {"mimeType": "audio/mp3", "data": "SUQz"}},
              {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}]}]}
            """#),
    GeminiRequestCase(
        name: "sampling parameters and json_object",
        openAI: #"""
            {"model": "g", "messages": [{"role": "user", "content": "Hi"}],
             "max_completion_tokens": 100, "max_tokens": 50, "temperature": 0.7, "top_p": 0.9, "stop": ["END", "STOP"],
             "n": 2, "seed": 42, "presence_penalty": 0.5, "frequency_penalty": -0.5, "logprobs": false,
             "response_format": {"type": "json_object"}, "reasoning_effort": "low"}
            """#,
        path: "/v1beta/models/gemini-2.5-flash:generateContent",
        gemini: #"""
            {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
             "generationConfig": {"maxOutputTokens": 100, "temperature": 0.7, "topP": 0.9, "stopSequences": ["END", "STOP"],
               "candidateCount": 2, "seed": 42, "presencePenalty": 0.5, "frequencyPenalty": -0.5,
               "responseMimeType": "application/json", "thinkingConfig": {"thinkingBudget": 1024}}}
            """#),
    GeminiRequestCase(
        name: "json_schema as responseJsonSchema, one stop string, a named tool choice, streaming",
        openAI: #"""
            {"model": "g", "stream": true, "stream_options": {"include_usage": true}, "stop": "END", "max_tokens": 20,
             "messages": [{"role": "user", "content": "Hi"}],
             "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
             "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
             "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
               "schema": {"type": "object", "properties": {"a": {"const": 1}}, "additionalProperties": false}}}}
            """#,
        path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        gemini: #"""
            {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
             "generationConfig": {"stopSequences": ["END"], "maxOutputTokens": 20, "responseMimeType": "application/json",
               "responseJsonSchema": {"type": "object", "properties": {"a": {"const": 1}}, "additionalProperties": false}},
             "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": {"type": "object"}}]}],
             "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}}
            """#),
    GeminiRequestCase(
        name: "models/ prefix dropped, legacy function message answered by name",
        openAI: #"""
            {"model": "g", "tool_choice": "required",
             "tools": [{"type": "function", "function": {"name": "lookup"}}],
             "messages": [{"role": "user", "content": "Go"},
              {"role": "function", "name": "lookup", "content": "not json"}]}
            """#,
        path: "/v1beta/models/gemini-2.0-flash:generateContent",
        gemini: #"""
            {"contents": [{"role": "user", "parts": [{"text": "Go"},
               {"functionResponse": {"name": "lookup", "response": {"content": "not json"}}}]}],
             "tools": [{"functionDeclarations": [{"name": "lookup"}]}],
             "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}
            """#,
        model: "models/gemini-2.0-flash"),
]

@Test(arguments: requestCases)
func geminiRequestGolden(_ testCase: GeminiRequestCase) throws {
    let upstream = try geminiRequest(testCase.openAI, model: testCase.model)
    #expect(upstream.path == testCase.path)
    #expect(upstream.body == (try JSON.parse(testCase.gemini)))
}

@Test(arguments: requestCases)
func fakeGeminiAcceptsTranslatedRequests(_ testCase: GeminiRequestCase) throws {
    let upstream = try geminiRequest(testCase.openAI, model: testCase.model)
    var headers: [String: String] = [:]
    for header in upstream.headers { headers[header.name.lowercased()] = header.value }
    let rejection = FakeGeminiRules.check(
        method: "POST", path: upstream.path, headers: headers, body: upstream.body.bytes(), expectedKey: "test-key")
    #expect(rejection == nil, "\(rejection.map { "\($0.body)" } ?? "")")
}

@Test func geminiToolChoiceModes() throws {
    let base =
        #"{"model": "g", "messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "#
    #expect(try geminiRequest(base + #""none"}"#).body["toolConfig"] == ["functionCallingConfig": ["mode": "NONE"]])
    #expect(try geminiRequest(base + #""required"}"#).body["toolConfig"] == ["functionCallingConfig": ["mode": "ANY"]])
    let noTools = try geminiRequest(
        #"{"model": "g", "messages": [{"role": "user", "content": "Hi"}], "tool_choice": "none"}"#)
    #expect(noTools.body["toolConfig"] == nil)
    #expect(noTools.body["tools"] == nil)
}

@Test func geminiTemperatureIsClampedToGeminiRange() throws {
    var request = try chatRequest(#"{"model": "g", "messages": [{"role": "user", "content": "Hi"}]}"#)
    request.body["temperature"] = 3.5
    let high = try GeminiAdapter().makeRequest(request, upstreamModel: "m", provider: geminiProvider)
    #expect(high.body["generationConfig"]?["temperature"] == 2.0)
    request.body["temperature"] = -1
    let low = try GeminiAdapter().makeRequest(request, upstreamModel: "m", provider: geminiProvider)
    #expect(low.body["generationConfig"]?["temperature"] == 0.0)
    request.body["temperature"] = 1.25
    let inRange = try GeminiAdapter().makeRequest(request, upstreamModel: "m", provider: geminiProvider)
    #expect(inRange.body["generationConfig"]?["temperature"] == 1.25)
}

@Test(arguments: [
    ("gemini-2.5-flash", false, "/v1beta/models/gemini-2.5-flash:generateContent"),
    ("models/gemini-2.5-pro", true, "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"),
    ("tuned/a b?c#d%e:f", false, "/v1beta/models/tuned%2Fa%20b%3Fc%23d%25e%3Af:generateContent"),
    ("../x", false, "/v1beta/models/..%2Fx:generateContent"),
    ("modèle~1", true, "/v1beta/models/mod%C3%A8le~1:streamGenerateContent?alt=sse"),
])
func geminiModelIsOneEscapedPathSegment(model: String, stream: Bool, path: String) {
    #expect(GeminiAdapter.path(model: model, stream: stream) == path)
    let route = FakeGeminiRules.route(path: path)
    #expect(route?.stream == stream)
    #expect(route?.model == (model.hasPrefix("models/") ? String(model.dropFirst(7)) : model))
}

@Test func geminiKeyTravelsOnlyInTheHeader() throws {
    let upstream = try geminiRequest(
        #"{"model": "g", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}"#)
    #expect(upstream.header("x-goog-api-key") == "test-key")
    #expect(upstream.header("content-type") == "application/json")
    #expect(upstream.header("x-team") == "search")
    #expect(upstream.header("authorization") == nil)
    #expect(!upstream.path.contains("test-key"))
    #expect(!upstream.path.contains("key="))
    #expect(!upstream.body.serialized().contains("test-key"))
}

// MARK: - Requests Gemini cannot honour

struct GeminiRejectionCase: Sendable, CustomTestStringConvertible {
    var openAI: String
    var param: String
    var testDescription: String { param }
}

private let user = #"{"role": "user", "content": "Hi"}"#

private let rejectionCases: [GeminiRejectionCase] = [
    .init(openAI: #"{"model": "g", "messages": [\#(user)], "logit_bias": {"50256": -100}}"#, param: "logit_bias"),
    .init(openAI: #"{"model": "g", "messages": [\#(user)], "logprobs": true}"#, param: "logprobs"),
    .init(openAI: #"{"model": "g", "messages": [\#(user)], "top_logprobs": 2}"#, param: "top_logprobs"),
    .init(openAI: #"{"model": "g", "messages": [\#(user)], "n": 2, "stream": true}"#, param: "n"),
    .init(openAI: #"{"model": "g", "messages": [\#(user)], "modalities": ["text", "audio"]}"#, param: "modalities"),
    .init(
        openAI: #"{"model": "g", "messages": [\#(user)], "audio": {"voice": "alloy", "format": "wav"}}"#, param: "audio"
    ),
    .init(openAI: #"{"model": "g", "messages": [\#(user)], "functions": [{"name": "f"}]}"#, param: "functions"),
    .init(openAI: #"{"model": "g", "messages": [\#(user)], "reasoning_effort": "extreme"}"#, param: "reasoning_effort"),
    .init(
        openAI:
            #"{"model": "g", "messages": [\#(user)], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}"#,
        param: "tool_choice"),
    .init(openAI: #"{"model": "g", "messages": [\#(user)], "tool_choice": "required"}"#, param: "tool_choice"),
    .init(
        openAI:
            #"{"model": "g", "messages": [\#(user), {"role": "tool", "tool_call_id": "call_unknown", "content": "x"}]}"#,
        param: "messages[1].tool_call_id"),
    .init(
        openAI:
            #"{"model": "g", "messages": [\#(user), {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}"#,
        param: "messages[1].tool_calls[0].function.arguments"),
    .init(
        openAI:
            #"{"model": "g", "messages": [\#(user), {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}"#,
        param: "messages[1].tool_calls[0].function.arguments"),
    .init(
        openAI:
            #"{"model": "g", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]}"#,
        param: "messages[0].content[0].file"),
    .init(
        openAI:
            #"{"model": "g", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}]}]}"#,
        param: "messages[0].content[0].image_url.url"),
    .init(
        openAI:
            #"{"model": "g", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]}"#,
        param: "messages[0].content[0].image_url.url"),
    .init(
        openAI:
            #"{"model": "g", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "abc", "format": "flac"}}]}]}"#,
        param: "messages[0].content[0].input_audio.format"),
    .init(
        openAI:
            #"{"model": "g", "messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}]}, \#(user)]}"#,
        param: "messages[0].content[0]"),
    .init(openAI: #"{"model": "g", "messages": [{"role": "system", "content": "Only rules."}]}"#, param: "messages"),
    .init(
        openAI: #"{"model": "g", "messages": [\#(user), {"role": "function", "content": "x"}]}"#,
        param: "messages[1].name"),
]

@Test(arguments: rejectionCases)
func geminiRefusesWhatItCannotHonour(_ testCase: GeminiRejectionCase) throws {
    let request = try chatRequest(testCase.openAI)
    let error = #expect(throws: GatewayError.self) {
        try GeminiAdapter().makeRequest(request, upstreamModel: "gemini-2.5-flash", provider: geminiProvider)
    }
    #expect(error?.status == 400)
    #expect(error?.type == "invalid_request_error")
    #expect(error?.param == testCase.param)
}

// MARK: - Responses

struct GeminiResponseCase: Sendable, CustomTestStringConvertible {
    var name: String
    var gemini: String
    var openAI: String
    var usage: Usage?
    var testDescription: String { name }
}

private let responseCases: [GeminiResponseCase] = [
    GeminiResponseCase(
        name: "text, thoughts dropped",
        gemini: #"""
            {"candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [
               {"text": "Let me think", "thought": true}, {"text": "Hi "}, {"text": "there"}]}}],
             "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 3,
               "cachedContentTokenCount": 1, "totalTokenCount": 9},
             "modelVersion": "gemini-2.5-flash-001", "responseId": "r1"}
            """#,
        openAI: #"""
            {"id": "<id>", "object": "chat.completion", "created": 0, "model": "gemini-2.5-flash-001",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there", "refusal": null},
                          "logprobs": null, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9,
                       "prompt_tokens_details": {"cached_tokens": 1}}}
            """#,
        usage: Usage(promptTokens: 4, completionTokens: 5, cachedTokens: 1)),
    GeminiResponseCase(
        name: "function calls, Gemini's id kept, others generated",
        gemini: #"""
            {"candidates": [{"finishReason": "STOP", "content": {"role": "model", "parts": [
               {"functionCall": {"id": "fc_1", "name": "get_weather", "args": {"unit": "c", "city": "Paris"}},
                "thoughtSignature": "c2ln"},
               {"functionCall": {"name": "get_time"}}]}}]}
            """#,
        openAI: #"""
            {"id": "<id>", "object": "chat.completion", "created": 0, "model": "requested-model",
             "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
               "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                 {"id": "fc_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}},
                 {"id": "<call>", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}}]}
            """#),
    GeminiResponseCase(
        name: "prompt blocked",
        gemini: #"""
            {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
             "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}, "modelVersion": "gemini-2.5-flash"}
            """#,
        openAI: #"""
            {"id": "<id>", "object": "chat.completion", "created": 0, "model": "gemini-2.5-flash",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null},
                          "logprobs": null, "finish_reason": "content_filter"}],
             "usage": {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 0}}}
            """#,
        usage: Usage(promptTokens: 7)),
    GeminiResponseCase(
        name: "several candidates, each with its finish reason",
        gemini: #"""
            {"candidates": [
               {"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [{"text": "One"}]}},
               {"index": 1, "finishReason": "MAX_TOKENS", "content": {"role": "model", "parts": [{"text": "Tw"}]}},
               {"index": 2, "finishReason": "RECITATION"},
               {"index": 3, "finishReason": "MALFORMED_FUNCTION_CALL", "content": {"parts": []}}],
             "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}}
            """#,
        openAI: #"""
            {"id": "<id>", "object": "chat.completion", "created": 0, "model": "requested-model",
             "choices": [
               {"index": 0, "message": {"role": "assistant", "content": "One", "refusal": null}, "logprobs": null, "finish_reason": "stop"},
               {"index": 1, "message": {"role": "assistant", "content": "Tw", "refusal": null}, "logprobs": null, "finish_reason": "length"},
               {"index": 2, "message": {"role": "assistant", "content": null, "refusal": null}, "logprobs": null, "finish_reason": "content_filter"},
               {"index": 3, "message": {"role": "assistant", "content": null, "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 0}}}
            """#,
        usage: Usage(promptTokens: 3, completionTokens: 4)),
]

@Test(arguments: responseCases)
func geminiResponseGolden(_ testCase: GeminiResponseCase) throws {
    let completion = try GeminiAdapter().translateResponse(JSON.parse(testCase.gemini), model: "requested-model")
    #expect(normalized(completion.body) == (try JSON.parse(testCase.openAI)))
    #expect(completion.usage == testCase.usage)
    #expect(completion.body["id"]?.stringValue?.hasPrefix("chatcmpl-") == true)
}

@Test func geminiGeneratedToolCallIdsAreDistinct() throws {
    let body = try JSON.parse(
        #"{"candidates": [{"finishReason": "STOP", "content": {"parts": [{"functionCall": {"name": "a"}}, {"functionCall": {"name": "b"}}]}}]}"#
    )
    let calls = try GeminiAdapter().translateResponse(body, model: "m").body["choices"]?[0]?["message"]?["tool_calls"]
    let ids = (calls?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
    #expect(ids.count == 2)
    #expect(Set(ids).count == 2)
    #expect(ids.allSatisfy { $0.hasPrefix("call_") })
}

@Test func geminiResponseWithoutCandidatesIsBadGateway() throws {
    let error = #expect(throws: GatewayError.self) {
        try GeminiAdapter().translateResponse(JSON.parse(#"{"usageMetadata": {"promptTokenCount": 1}}"#), model: "m")
    }
    #expect(error?.status == 502)
}

@Test func geminiErrorMessage() throws {
    let adapter = GeminiAdapter()
    let body = try JSON.parse(
        #"{"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}"#)
    #expect(adapter.errorMessage(from: body) == "Resource has been exhausted")
    #expect(adapter.errorMessage(from: .array([body])) == "Resource has been exhausted")
    #expect(adapter.errorMessage(from: ["candidates": []]) == nil)
}

// MARK: - Streaming

private func runStream(_ events: [String], includeUsage: Bool) throws -> (payloads: [String], usage: Usage?) {
    var translator = GeminiAdapter().makeStreamTranslator(model: "requested-model", includeUsage: includeUsage)
    var payloads: [String] = []
    for data in events { payloads += try translator.consume(ServerSentEvent(data: data)) }
    payloads += try translator.finish()
    return (payloads, translator.usage)
}

private let streamEvents = [
    #"{"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "Hel"}]}}], "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}, "modelVersion": "gemini-2.5-flash-001"}"#,
    #"{"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "pondering", "thought": true}, {"text": "lo"}]}}], "modelVersion": "gemini-2.5-flash-001"}"#,
    #"{"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}, {"functionCall": {"id": "fc_9", "name": "get_time", "args": {}}}]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "thoughtsTokenCount": 3, "cachedContentTokenCount": 2, "totalTokenCount": 15}, "modelVersion": "gemini-2.5-flash-001"}"#,
]

private func expectedChunk(_ delta: String, finish: String = "null", usage: Bool) -> String {
    #"{"id": "<id>", "object": "chat.completion.chunk", "created": 0, "model": "gemini-2.5-flash-001", "choices": [{"index": 0, "delta": \#(delta), "logprobs": null, "finish_reason": \#(finish)}]\#(usage ? #", "usage": null"# : "")}"#
}

@Test(arguments: [true, false])
func geminiStreamGolden(includeUsage: Bool) throws {
    let (payloads, usage) = try runStream(streamEvents, includeUsage: includeUsage)
    var expected = [
        expectedChunk(#"{"role": "assistant", "content": ""}"#, usage: includeUsage),
        expectedChunk(#"{"content": "Hel"}"#, usage: includeUsage),
        expectedChunk(#"{"content": "lo"}"#, usage: includeUsage),
        expectedChunk(
            #"{"tool_calls": [{"index": 0, "id": "<call>", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}"#,
            usage: includeUsage),
        expectedChunk(
            #"{"tool_calls": [{"index": 1, "id": "fc_9", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}"#,
            usage: includeUsage),
        expectedChunk("{}", finish: #""tool_calls""#, usage: includeUsage),
    ]
    if includeUsage {
        expected.append(
            #"{"id": "<id>", "object": "chat.completion.chunk", "created": 0, "model": "gemini-2.5-flash-001", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 10, "total_tokens": 15, "prompt_tokens_details": {"cached_tokens": 2}}}"#
        )
    }
    #expect(payloads.last == "[DONE]")
    let chunks = try payloads.dropLast().map { try JSON.parse($0) }
    #expect(chunks.map(normalized) == (try expected.map { try JSON.parse($0) }))
    #expect(Set(chunks.compactMap { $0["id"] }).count == 1)
    #expect(Set(chunks.compactMap { $0["created"] }).count == 1)
    #expect(usage == Usage(promptTokens: 5, completionTokens: 10, cachedTokens: 2))
}

@Test func geminiStreamTextStopsWithStopAndLastUsage() throws {
    let events = [
        #"{"candidates": [{"content": {"parts": [{"text": "A"}]}}], "usageMetadata": {"promptTokenCount": 2, "totalTokenCount": 2}}"#,
        #"{"candidates": [{"content": {"parts": [{"text": "B"}]}, "finishReason": "MAX_TOKENS"}], "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 2, "totalTokenCount": 4}}"#,
    ]
    let (payloads, usage) = try runStream(events, includeUsage: false)
    let finishes = try payloads.dropLast().map { try JSON.parse($0)["choices"]?[0]?["finish_reason"] }
    #expect(finishes == [.null, .null, .null, "length"])
    #expect(try JSON.parse(payloads[0])["model"] == "requested-model")
    #expect(usage == Usage(promptTokens: 2, completionTokens: 2))
}

@Test func geminiStreamBlockedPromptEndsWithContentFilter() throws {
    let (payloads, _) = try runStream(
        [#"{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}"#], includeUsage: false)
    #expect(payloads.count == 3)
    #expect(try JSON.parse(payloads[1])["choices"]?[0]?["finish_reason"] == "content_filter")
    #expect(payloads[2] == "[DONE]")
}

@Test func geminiTruncatedStreamIsAnError() throws {
    var translator = GeminiAdapter().makeStreamTranslator(model: "m", includeUsage: true)
    _ = try translator.consume(ServerSentEvent(data: #"{"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]}"#))
    let error = #expect(throws: GatewayError.self) { try translator.finish() }
    #expect(error?.code == "stream_truncated")
    #expect(error?.status == 502)

    var empty = GeminiAdapter().makeStreamTranslator(model: "m", includeUsage: false)
    #expect(throws: GatewayError.self) { try empty.finish() }
}

@Test func geminiErrorEventIsAnError() throws {
    var translator = GeminiAdapter().makeStreamTranslator(model: "m", includeUsage: false)
    _ = try translator.consume(ServerSentEvent(data: #"{"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]}"#))
    let error = #expect(throws: GatewayError.self) {
        try translator.consume(
            ServerSentEvent(
                data: #"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#))
    }
    #expect(error?.status == 503)
    #expect(error?.code == "unavailable")
    #expect(error?.message.contains("The model is overloaded.") == true)

    var garbage = GeminiAdapter().makeStreamTranslator(model: "m", includeUsage: false)
    let parseError = #expect(throws: GatewayError.self) { try garbage.consume(ServerSentEvent(data: "not json")) }
    #expect(parseError?.status == 502)
}

// MARK: - Fake server rules

private let fakePath = "/v1beta/models/gemini-2.5-flash:generateContent"
private let fakeBody = #"{"contents": [{"role": "user", "parts": [{"text": "Hi there"}]}]}"#

private func fakeCheck(
    method: String = "POST", path: String = fakePath, key: String? = "k", body: String = fakeBody
) -> (status: Int, body: JSON)? {
    var headers = ["content-type": "application/json"]
    if let key { headers["x-goog-api-key"] = key }
    return FakeGeminiRules.check(method: method, path: path, headers: headers, body: Array(body.utf8), expectedKey: "k")
}

@Test func fakeGeminiAcceptsAMinimalRequest() {
    #expect(fakeCheck() == nil)
    #expect(fakeCheck(path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse") == nil)
}

@Test(
    arguments: [
        (nil as String?, "POST", fakePath + "?key=k", fakeBody, 400, "INVALID_ARGUMENT", "x-goog-api-key header"),
        ("k", "GET", fakePath, fakeBody, 404, "NOT_FOUND", ""),
        ("k", "POST", "/v1beta/models/gemini:countTokens", fakeBody, 404, "NOT_FOUND", ""),
        ("k", "POST", "/v1beta/models/a/b:generateContent", fakeBody, 404, "NOT_FOUND", ""),
        ("k", "POST", "/v1beta/models/gemini:streamGenerateContent", fakeBody, 400, "INVALID_ARGUMENT", "alt=sse"),
        (nil, "POST", fakePath, fakeBody, 403, "PERMISSION_DENIED", "unregistered callers"),
        ("wrong", "POST", fakePath, fakeBody, 400, "INVALID_ARGUMENT", "API key not valid"),
        ("k", "POST", fakePath, "{nope", 400, "INVALID_ARGUMENT", "Invalid JSON payload"),
        ("k", "POST", fakePath, #"{"contents": []}"#, 400, "INVALID_ARGUMENT", "contents is not specified"),
        (
            "k", "POST", fakePath, #"{"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}"#, 400,
            "INVALID_ARGUMENT", "valid role"
        ),
        (
            "k", "POST", fakePath, #"{"messages": [], "contents": [{"parts": [{"text": "x"}]}]}"#, 400,
            "INVALID_ARGUMENT", #"Unknown name "messages""#
        ),
        (
            "k", "POST", fakePath, #"{"max_tokens": 5, "contents": [{"parts": [{"text": "x"}]}]}"#, 400,
            "INVALID_ARGUMENT", #"Unknown name "max_tokens""#
        ),
        (
            "k", "POST", fakePath, #"{"stop": ["a"], "contents": [{"parts": [{"text": "x"}]}]}"#, 400,
            "INVALID_ARGUMENT", #"Unknown name "stop""#
        ),
        (
            "k", "POST", fakePath, #"{"tools": [{"type": "function"}], "contents": [{"parts": [{"text": "x"}]}]}"#, 400,
            "INVALID_ARGUMENT", #"Unknown name "type" at 'tools[0]'"#
        ),
        (
            "k", "POST", fakePath,
            #"{"tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "additionalProperties": false}}]}], "contents": [{"parts": [{"text": "x"}]}]}"#,
            400, "INVALID_ARGUMENT", "additionalProperties"
        ),
        (
            "k", "POST", fakePath,
            #"{"generationConfig": {"temperature": 2.5}, "contents": [{"parts": [{"text": "x"}]}]}"#, 400,
            "INVALID_ARGUMENT", "temperature"
        ),
        (
            "k", "POST", fakePath,
            #"{"generationConfig": {"stopSequences": ["1","2","3","4","5","6"]}, "contents": [{"parts": [{"text": "x"}]}]}"#,
            400, "INVALID_ARGUMENT", "stop_sequences"
        ),
        (
            "k", "POST", fakePath,
            #"{"contents": [{"role": "user", "parts": [{"functionResponse": {"response": {}}}]}]}"#, 400,
            "INVALID_ARGUMENT", "Name cannot be empty"
        ),
        (
            "k", "POST", fakePath, #"{"contents": [{"role": "user", "parts": [{"text": ""}]}]}"#, 400,
            "INVALID_ARGUMENT", "empty text"
        ),
        ("k", "POST", "/v1beta/models/status-429:generateContent", fakeBody, 429, "RESOURCE_EXHAUSTED", ""),
        ("k", "POST", "/v1beta/models/status-503:generateContent", fakeBody, 503, "UNAVAILABLE", ""),
    ] as [(String?, String, String, String, Int, String, String)])
func fakeGeminiRejects(
    key: String?, method: String, path: String, body: String, status: Int, name: String, message: String
) {
    let rejection = fakeCheck(method: method, path: path, key: key, body: body)
    #expect(rejection?.status == status)
    #expect(rejection?.body["error"]?["code"] == .int(Int64(status)))
    #expect(rejection?.body["error"]?["status"]?.stringValue == name)
    let text = rejection?.body["error"]?["message"]?.stringValue
    #expect(text?.isEmpty == false)
    if !message.isEmpty { #expect(text?.contains(message) == true) }
}

@Test func fakeGeminiAnswersThroughTheAdapter() throws {
    let adapter = GeminiAdapter()
    let request = try chatRequest(
        #"{"model": "g", "messages": [{"role": "user", "content": "Bonjour tout le monde"}]}"#)
    let upstream = try adapter.makeRequest(request, upstreamModel: "fake-model", provider: geminiProvider)
    let answer = FakeGeminiRules.response(for: upstream.body, model: "fake-model")
    let completion = try adapter.translateResponse(answer, model: "g")
    #expect(completion.body["choices"]?[0]?["message"]?["content"] == "Hello from gemini: Bonjour tout le monde")
    #expect(completion.body["model"] == "fake-model")
    // 10 + 21 characters / 4; seven words answered.
    #expect(completion.usage == Usage(promptTokens: 15, completionTokens: 7))

    var translator = adapter.makeStreamTranslator(model: "g", includeUsage: true)
    let events = FakeGeminiRules.streamEvents(for: upstream.body, model: "fake-model")
    #expect(events.count >= 3)
    var text = ""
    for event in events {
        for payload in try translator.consume(event) {
            text += try JSON.parse(payload)["choices"]?[0]?["delta"]?["content"]?.stringValue ?? ""
        }
    }
    #expect(try translator.finish().last == "[DONE]")
    #expect(text == "Hello from gemini: Bonjour tout le monde")
    #expect(translator.usage == Usage(promptTokens: 15, completionTokens: 7))
}

@Test func fakeGeminiCallsTheFirstFunctionUntilAnswered() throws {
    let adapter = GeminiAdapter()
    let tools =
        #""tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]"#
    let first = try adapter.makeRequest(
        chatRequest(#"{"model": "g", \#(tools), "messages": [{"role": "user", "content": "Weather?"}]}"#),
        upstreamModel: "m", provider: geminiProvider)
    let call = try adapter.translateResponse(FakeGeminiRules.response(for: first.body, model: "m"), model: "g")
    let toolCall = call.body["choices"]?[0]?["message"]?["tool_calls"]?[0]
    #expect(toolCall?["function"]?["name"] == "get_weather")
    #expect(toolCall?["function"]?["arguments"] == #"{"city":"Paris"}"#)
    #expect(call.body["choices"]?[0]?["finish_reason"] == "tool_calls")

    let id = toolCall?["id"]?.stringValue ?? ""
    let second = try adapter.makeRequest(
        chatRequest(
            #"{"model": "g", \#(tools), "messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "tool_calls": [{"id": "\#(id)", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}, {"role": "tool", "tool_call_id": "\#(id)", "content": "sunny"}]}"#
        ), upstreamModel: "m", provider: geminiProvider)
    #expect(fakeCheck(body: second.body.serialized()) == nil)
    let text = try adapter.translateResponse(FakeGeminiRules.response(for: second.body, model: "m"), model: "g")
    #expect(text.body["choices"]?[0]?["message"]?["content"] == "Hello from gemini: Weather?")
}

@Test func fakeGeminiTruncatedStreamFailsTheTranslator() throws {
    let body = try JSON.parse(fakeBody)
    let events = FakeGeminiRules.streamEvents(for: body, model: "stream-truncate")
    #expect(events.count == 1)
    var translator = GeminiAdapter().makeStreamTranslator(model: "g", includeUsage: false)
    for event in events { _ = try translator.consume(event) }
    let error = #expect(throws: GatewayError.self) { try translator.finish() }
    #expect(error?.code == "stream_truncated")
}
