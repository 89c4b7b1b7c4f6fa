/// Anthropic answers, complete or streamed, in OpenAI's shapes.
enum AnthropicResponse {
    /// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
    ///
    /// `pause_turn` (a server tool paused a long turn) ends the answer as far as the client can tell.
    static func finishReason(_ stopReason: String?) -> String {
        switch stopReason {
        case "max_tokens", "model_context_window_exceeded": return FinishReason.length
        case "tool_use": return FinishReason.toolCalls
        case "refusal": return FinishReason.contentFilter
        default: return FinishReason.stop
        }
    }

    /// Translates a `message` object into a `chat.completion`.
    static func translate(_ body: JSON, model: String) throws(GatewayError) -> ChatCompletion {
        guard body.objectValue != nil, let blocks = body["content"]?.arrayValue else {
            throw .badGateway("The provider's answer is not an Anthropic message.")
        }
        var text: String?
        var toolCalls: [JSON] = []
        for block in blocks {
            switch block["type"]?.stringValue {
            case "text":
                text = (text ?? "") + (block["text"]?.stringValue ?? "")
            case "tool_use":
                toolCalls.append([
                    "id": block["id"] ?? "", "type": "function",
                    "function": ["name": block["name"] ?? "", "arguments": .string((block["input"] ?? [:]).serialized())],
                ])
            default:
                break  // thinking, redacted_thinking and server tool blocks have no OpenAI equivalent
            }
        }
        var counts = TokenCounts()
        counts.read(body["usage"])
        return ChatCompletion.make(
            model: body["model"]?.stringValue ?? model, text: text, toolCalls: toolCalls,
            finishReason: finishReason(body["stop_reason"]?.stringValue), usage: counts.usage)
    }

    /// Anthropic's token counters, which arrive in pieces while streaming.
    struct TokenCounts {
        var input = 0
        var output = 0
        var cacheRead = 0
        var cacheCreation = 0
        var seen = false

        /// Takes the counters present in an Anthropic `usage` object (later values replace earlier ones).
        mutating func read(_ usage: JSON?) {
            guard let usage, usage.objectValue != nil else { return }
            seen = true
            if let value = usage["input_tokens"] { input = Usage.count(value) }
            if let value = usage["output_tokens"] { output = Usage.count(value) }
            if let value = usage["cache_read_input_tokens"] { cacheRead = Usage.count(value) }
            if let value = usage["cache_creation_input_tokens"] { cacheCreation = Usage.count(value) }
        }

        /// OpenAI counts cached and cache-writing tokens as prompt tokens; Anthropic counts them apart.
        var usage: Usage? {
            guard seen else { return nil }
            return Usage(
                promptTokens: input + cacheRead + cacheCreation, completionTokens: output, cachedTokens: cacheRead, cacheWriteTokens: cacheCreation)
        }
    }
}

// MARK: - Streaming

/// Turns Anthropic's stream (`message_start`, `content_block_*`, `message_delta`, `message_stop`)
/// into `chat.completion.chunk` payloads.
struct AnthropicStreamTranslator: StreamTranslator {
    private var builder: ChunkBuilder
    private var counts = AnthropicResponse.TokenCounts()
    private var stopReason: String?
    private var finished = false
    /// OpenAI tool-call index of each Anthropic content block that is a tool call.
    private var toolIndexes: [Int: Int] = [:]

    var usage: Usage? { counts.usage }

    init(model: String, includeUsage: Bool) {
        builder = ChunkBuilder(model: model, includeUsage: includeUsage)
    }

    mutating func consume(_ event: ServerSentEvent) throws(GatewayError) -> [String] {
        guard !finished else { return [] }
        let data = try event.jsonObject()
        switch data["type"]?.stringValue ?? event.event {
        case "message_start":
            counts.read(data["message"]?["usage"])
            return [builder.start()]
        case "content_block_start":
            return blockStart(data)
        case "content_block_delta":
            return blockDelta(data)
        case "message_delta":
            if let reason = data["delta"]?["stop_reason"]?.stringValue { stopReason = reason }
            counts.read(data["usage"])
            return []
        case "message_stop":
            finished = true
            return [builder.finish(reason: AnthropicResponse.finishReason(stopReason))]
        case "error":
            throw Self.streamError(data["error"])
        default:
            return []  // ping, content_block_stop and event types added later
        }
    }

    mutating func finish() throws(GatewayError) -> [String] {
        guard finished else {
            throw .badGateway("The provider's stream ended before it was complete.", code: "stream_truncated")
        }
        return builder.closing(usage: usage)
    }

    private mutating func blockStart(_ data: JSON) -> [String] {
        let block = data["content_block"] ?? [:]
        switch block["type"]?.stringValue {
        case "text":
            guard let text = block["text"]?.stringValue, !text.isEmpty else { return [] }
            return [builder.text(text)]
        case "tool_use":
            let index = toolIndexes.count
            toolIndexes[data["index"]?.intValue ?? -1] = index
            return [
                builder.toolCallStart(
                    index: index, id: block["id"]?.stringValue ?? "", name: block["name"]?.stringValue ?? "")
            ]
        default:
            return []
        }
    }

    private mutating func blockDelta(_ data: JSON) -> [String] {
        let delta = data["delta"] ?? [:]
        switch delta["type"]?.stringValue {
        case "text_delta":
            guard let text = delta["text"]?.stringValue, !text.isEmpty else { return [] }
            return [builder.text(text)]
        case "input_json_delta":
            guard let fragment = delta["partial_json"]?.stringValue, !fragment.isEmpty,
                let index = toolIndexes[data["index"]?.intValue ?? -1]
            else { return [] }
            return [builder.toolCallArguments(index: index, fragment: fragment)]
        default:
            return []  // thinking and signature deltas are not shown to OpenAI clients
        }
    }

    /// The client-facing error for an `error` event; only Anthropic's type and message are kept.
    private static func streamError(_ error: JSON?) -> GatewayError {
        let message = error?["message"]?.stringValue ?? "no message"
        if error?["type"]?.stringValue == "overloaded_error" {
            return GatewayError(
                status: 503, type: "service_unavailable", message: "The provider is overloaded: \(message)",
                code: "upstream_overloaded")
        }
        return .badGateway("The provider reported an error in the stream: \(message)")
    }
}
