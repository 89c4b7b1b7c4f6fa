/// Reads an answer of OpenAI's Responses API (a `/v1/responses` request passed through to OpenAI) into the canonical
/// `chat.completion`, for the price, the budgets, the request log and the exact cache; the client gets the answer as
/// OpenAI wrote it.
///
/// Message items' `output_text` parts become the text, `refusal` parts the refusal, `function_call` items tool calls;
/// reasoning and hosted-tool items have no chat equivalent and only count in the usage. `status: incomplete` for
/// `max_output_tokens` is finish reason `length`, for `content_filter` `content_filter`.
enum OpenAIResponsesReader {
    /// The canonical answer of a `response` object.
    /// - Throws: `GatewayError` (502) when the body is not a response, or the response failed.
    static func completion(from body: JSON, model: String) throws(GatewayError) -> ChatCompletion {
        guard body.objectValue != nil, body["object"]?.stringValue == "response", let output = body["output"]?.arrayValue else {
            throw .badGateway("The provider's answer is not a Responses API response.")
        }
        if body["status"]?.stringValue == "failed" {
            throw .badGateway("The provider's response failed: \(body["error"]?["message"]?.stringValue ?? "no reason given").")
        }
        var text: String?
        var refusal: String?
        var toolCalls: [JSON] = []
        for item in output {
            switch item["type"]?.stringValue {
            case "message":
                for part in item["content"]?.arrayValue ?? [] {
                    if part["type"] == "output_text" { text = (text ?? "") + (part["text"]?.stringValue ?? "") }
                    if part["type"] == "refusal" { refusal = (refusal ?? "") + (part["refusal"]?.stringValue ?? "") }
                }
            case "function_call":
                toolCalls.append(toolCall(item))
            default:
                break
            }
        }
        let reason = finishReason(status: body["status"]?.stringValue, incomplete: body["incomplete_details"]?["reason"]?.stringValue, calledTools: !toolCalls.isEmpty)
        var completion = ChatCompletion.make(
            model: body["model"]?.stringValue ?? model, text: text, toolCalls: toolCalls, finishReason: reason, usage: usage(body["usage"]))
        if let refusal, case .object(var object) = completion.body, var choices = object["choices"]?.arrayValue, !choices.isEmpty {
            choices[0]["message"]?["refusal"] = .string(refusal)
            object["choices"] = .array(choices)
            completion.body = .object(object)
        }
        return completion
    }

    /// Chat's finish reason for a response's status.
    static func finishReason(status: String?, incomplete: String?, calledTools: Bool) -> String {
        switch (status, incomplete) {
        case ("incomplete", "content_filter"): FinishReason.contentFilter
        case ("incomplete", _): FinishReason.length
        default: calledTools ? "tool_calls" : "stop"
        }
    }

    /// A Responses `usage` object as the canonical usage; nil when there is none. Counts from outside are clamped
    /// (`Usage.count`): a negative or absurd number never reaches a price.
    static func usage(_ usage: JSON?) -> Usage? {
        guard let usage, usage.objectValue != nil else { return nil }
        return Usage(
            promptTokens: Usage.count(usage["input_tokens"]), completionTokens: Usage.count(usage["output_tokens"]),
            cachedTokens: Usage.count(usage["input_tokens_details"]?["cached_tokens"]))
    }

    /// A `function_call` item as a chat tool call.
    static func toolCall(_ item: JSON) -> JSON {
        [
            "id": item["call_id"] ?? "", "type": "function",
            "function": ["name": item["name"] ?? "", "arguments": item["arguments"] ?? ""],
        ]
    }
}

/// Reads OpenAI's Responses stream into canonical `chat.completion.chunk` payloads, beside the events relayed to the
/// client as they came: text deltas, each `function_call` item as a tool call with its argument deltas in order, and
/// the usage from `response.completed` (or `response.incomplete`). `error` and `response.failed` are errors; a stream
/// that ends without its final response was cut short.
struct OpenAIResponsesStreamReader: StreamTranslator {
    private var builder: ChunkBuilder
    private var started = false
    private var finished = false
    /// Chat's tool-call index of each `function_call` item, by `output_index`.
    private var toolIndexes: [Int: Int] = [:]
    private(set) var usage: Usage?

    init(model: String, includeUsage: Bool) {
        builder = ChunkBuilder(model: model, includeUsage: includeUsage)
    }

    mutating func consume(_ event: ServerSentEvent) throws(GatewayError) -> [String] {
        guard !finished else { return [] }
        let data = try event.jsonObject()
        var payloads: [String] = []
        if !started {
            started = true
            payloads.append(builder.start())
        }
        switch data["type"]?.stringValue ?? event.event {
        case "response.output_text.delta":
            if let text = data["delta"]?.stringValue, !text.isEmpty { payloads.append(builder.text(text)) }
        case "response.output_item.added":
            let item = data["item"] ?? [:]
            guard item["type"] == "function_call" else { break }
            let index = toolIndexes.count
            toolIndexes[data["output_index"]?.intValue ?? -1] = index
            payloads.append(
                builder.toolCallStart(
                    index: index, id: item["call_id"]?.stringValue ?? "", name: item["name"]?.stringValue ?? "",
                    arguments: item["arguments"]?.stringValue ?? ""))
        case "response.function_call_arguments.delta":
            guard let index = toolIndexes[data["output_index"]?.intValue ?? -1], let fragment = data["delta"]?.stringValue, !fragment.isEmpty
            else { break }
            payloads.append(builder.toolCallArguments(index: index, fragment: fragment))
        case "response.completed", "response.incomplete":
            let response = data["response"] ?? [:]
            usage = OpenAIResponsesReader.usage(response["usage"])
            finished = true
            payloads.append(
                builder.finish(
                    reason: OpenAIResponsesReader.finishReason(
                        status: response["status"]?.stringValue, incomplete: response["incomplete_details"]?["reason"]?.stringValue,
                        calledTools: !toolIndexes.isEmpty)))
        case "response.failed":
            throw .badGateway("The provider's response failed: \(data["response"]?["error"]?["message"]?.stringValue ?? "no reason given").")
        case "error":
            throw .badGateway("The provider reported an error in its stream: \(data["message"]?.stringValue ?? data["error"]?["message"]?.stringValue ?? "no message").")
        default:
            break
        }
        return payloads
    }

    mutating func finish() throws(GatewayError) -> [String] {
        guard finished else {
            throw .badGateway("The provider's stream ended before it was complete.", code: "stream_truncated")
        }
        return builder.closing(usage: usage)
    }
}
