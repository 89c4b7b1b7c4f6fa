@testable import GatewayCore

/// What the real OpenAI Chat Completions API rejects, and canned answers for what it accepts.
enum FakeOpenAIRules {
    static let knownFields: Set<String> = [
        "model", "messages", "stream", "stream_options", "temperature", "top_p", "n", "stop", "max_tokens",
        "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "user",
        "tools", "tool_choice", "parallel_tool_calls", "response_format", "seed", "metadata", "store", "service_tier",
        "reasoning_effort", "modalities", "audio", "prediction", "web_search_options", "verbosity",
    ]

    static func error(_ status: Int, _ message: String, type: String = "invalid_request_error", param: String? = nil) -> (status: Int, body: JSON) {
        (status, ["error": ["message": .string(message), "type": .string(type), "param": param.map(JSON.string) ?? .null, "code": .null]])
    }

    static func check(method: String, path: String, headers: [String: String], body: [UInt8], expectedKey: String) -> (status: Int, body: JSON)? {
        guard method == "POST", path == "/v1/chat/completions" else { return error(404, "Invalid URL (\(method) \(path))") }
        guard headers["authorization"] == "Bearer \(expectedKey)" else {
            return error(401, "Incorrect API key provided.", type: "invalid_request_error")
        }
        guard let json = try? JSON.parse(body), let object = json.objectValue else {
            return error(400, "We could not parse the JSON body of your request.")
        }
        for key in object.keys where !knownFields.contains(key) {
            return error(400, "Unrecognized request argument supplied: \(key)")
        }
        guard let model = object["model"]?.stringValue, !model.isEmpty else { return error(400, "you must provide a model parameter") }
        guard let messages = object["messages"]?.arrayValue, !messages.isEmpty else {
            return error(400, "Invalid 'messages': empty array.", param: "messages")
        }
        for (index, message) in messages.enumerated() {
            guard let role = message["role"]?.stringValue, ChatRequest.roles.contains(role) else {
                return error(400, "Invalid value for 'messages[\(index)].role'", param: "messages[\(index)].role")
            }
        }
        if object["stream_options"] != nil, object["stream"]?.boolValue != true {
            return error(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param: "stream_options")
        }
        return nil
    }

    static func answerText(for request: JSON) -> String {
        "Hello from openai: \(FakeText.lastUserText(request))"
    }

    static func hasPendingToolCall(_ request: JSON) -> Bool {
        guard !(request["tools"]?.arrayValue ?? []).isEmpty else { return false }
        return request["messages"]?.arrayValue?.last?["role"]?.stringValue != "tool"
    }

    static func usage(for request: JSON, answer: String) -> JSON {
        let prompt = 10 + FakeText.characterCount(request) / 4
        let completion = answer.split(separator: " ").count
        return ["prompt_tokens": .int(Int64(prompt)), "completion_tokens": .int(Int64(completion)), "total_tokens": .int(Int64(prompt + completion)),
                "prompt_tokens_details": ["cached_tokens": 0]]
    }

    static func response(for request: JSON) -> JSON {
        let model = request["model"]?.stringValue ?? ""
        if hasPendingToolCall(request) {
            let name = request["tools"]?.arrayValue?.first?["function"]?["name"]?.stringValue ?? "tool"
            return ["id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": .string(model),
                    "choices": [["index": 0, "finish_reason": "tool_calls", "logprobs": .null,
                                 "message": ["role": "assistant", "content": .null,
                                             "tool_calls": [["id": "call_fake1", "type": "function",
                                                             "function": ["name": .string(name), "arguments": "{\"city\":\"Paris\"}"]]]]]],
                    "usage": usage(for: request, answer: "call")]
        }
        let text = answerText(for: request)
        return ["id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": .string(model),
                "choices": [["index": 0, "finish_reason": "stop", "logprobs": .null, "message": ["role": "assistant", "content": .string(text)]]],
                "usage": usage(for: request, answer: text)]
    }

    static func streamEvents(for request: JSON) -> [ServerSentEvent] {
        let model = request["model"]?.stringValue ?? ""
        let includeUsage = request["stream_options"]?["include_usage"]?.boolValue == true
        func chunk(_ delta: JSON, finish: String? = nil) -> ServerSentEvent {
            var object: JSON = ["id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": .string(model),
                                "choices": [["index": 0, "delta": delta, "finish_reason": finish.map(JSON.string) ?? .null]]]
            if includeUsage { object["usage"] = .null }
            return ServerSentEvent(data: object.serialized())
        }
        var events: [ServerSentEvent]
        let answer: String
        if hasPendingToolCall(request) {
            let name = request["tools"]?.arrayValue?.first?["function"]?["name"]?.stringValue ?? "tool"
            answer = "call"
            events = [
                chunk(["role": "assistant", "content": .null, "tool_calls": [["index": 0, "id": "call_fake1", "type": "function", "function": ["name": .string(name), "arguments": ""]]]]),
                chunk(["tool_calls": [["index": 0, "function": ["arguments": "{\"city\":"]]]]),
                chunk(["tool_calls": [["index": 0, "function": ["arguments": "\"Paris\"}"]]]]),
                chunk([:], finish: "tool_calls"),
            ]
        } else {
            answer = answerText(for: request)
            events = [chunk(["role": "assistant", "content": ""])]
            for word in FakeText.pieces(answer) { events.append(chunk(["content": .string(word)])) }
            events.append(chunk([:], finish: "stop"))
        }
        if model == "stream-truncate" { return Array(events.prefix(2)) }
        if includeUsage {
            let usageChunk: JSON = ["id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": .string(model),
                                    "choices": [], "usage": usage(for: request, answer: answer)]
            events.append(ServerSentEvent(data: usageChunk.serialized()))
        }
        events.append(ServerSentEvent(data: "[DONE]"))
        return events
    }
}

/// Text helpers shared by the fakes.
enum FakeText {
    /// The text of the last user message.
    static func lastUserText(_ request: JSON) -> String {
        let messages = request["messages"]?.arrayValue ?? request["contents"]?.arrayValue ?? []
        guard let last = messages.last(where: { $0["role"]?.stringValue == "user" }) else { return "" }
        if let text = last["content"]?.stringValue { return text }
        let parts = last["content"]?.arrayValue ?? last["parts"]?.arrayValue ?? []
        return parts.compactMap { $0["text"]?.stringValue }.joined(separator: " ")
    }

    /// Characters of every string in `value`.
    static func characterCount(_ value: JSON) -> Int {
        switch value {
        case .string(let text): return text.count
        case .array(let items): return items.reduce(0) { $0 + characterCount($1) }
        case .object(let members): return members.values.reduce(0) { $0 + characterCount($1) }
        default: return 0
        }
    }

    /// `text` cut into word-sized pieces that join back to it.
    static func pieces(_ text: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if character == " " {
                pieces.append(current)
                current = ""
            }
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }
}
