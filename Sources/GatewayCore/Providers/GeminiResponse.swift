/// Gemini `GenerateContentResponse` -> OpenAI `chat.completion`, and the pieces the stream translator shares.
enum GeminiResponse {
    /// Translates a complete answer: one OpenAI choice per candidate.
    static func completion(from body: JSON, model: String) throws(GatewayError) -> ChatCompletion {
        guard body.objectValue != nil else { throw .badGateway("The provider's answer is not a Gemini response.") }
        if let error = body["error"], !error.isNull { throw streamError(error) }
        let usage = usage(from: body["usageMetadata"])
        let reported = body["modelVersion"]?.stringValue ?? model
        let candidates = body["candidates"]?.arrayValue ?? []
        guard !candidates.isEmpty else {
            guard body["promptFeedback"]?["blockReason"]?.stringValue != nil else {
                throw .badGateway("The provider answered without any candidate.")
            }
            return ChatCompletion.make(
                model: reported, text: nil, toolCalls: [], finishReason: FinishReason.contentFilter, usage: usage)
        }
        var choices: [JSON] = []
        for (position, candidate) in candidates.enumerated() {
            let content = Content(candidate)
            var message: [String: JSON] = [
                "role": "assistant", "content": content.text.map(JSON.string) ?? .null, "refusal": .null,
            ]
            if !content.toolCalls.isEmpty { message["tool_calls"] = .array(content.toolCalls.map(\.json)) }
            choices.append([
                "index": .int(Int64(candidate["index"]?.intValue ?? position)),
                "message": .object(message),
                "logprobs": .null,
                "finish_reason": .string(
                    finishReason(candidate["finishReason"]?.stringValue, calledFunctions: !content.toolCalls.isEmpty)),
            ])
        }
        var completion = ChatCompletion.make(model: reported, text: nil, toolCalls: [], finishReason: "", usage: usage)
        completion.body["choices"] = .array(choices)
        return completion
    }

    // MARK: - Parts

    /// A function call as OpenAI reports it.
    struct ToolCall {
        var id: String
        var name: String
        var arguments: String

        /// Reads a `functionCall` part, keeping Gemini's id when it gives one.
        init(_ call: JSON) {
            id = call["id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? RandomID.make(prefix: "call_")
            name = call["name"]?.stringValue ?? ""
            arguments = (call["args"] ?? [:]).serialized(sortedKeys: true)
        }

        var json: JSON {
            [
                "id": .string(id), "type": "function",
                "function": ["name": .string(name), "arguments": .string(arguments)],
            ]
        }
    }

    /// The visible text and the function calls of one candidate; thought summaries are dropped.
    struct Content {
        var text: String?
        var toolCalls: [ToolCall] = []

        init(_ candidate: JSON) {
            var texts: [String] = []
            for part in candidate["content"]?["parts"]?.arrayValue ?? [] {
                if part["thought"]?.boolValue == true { continue }
                if let text = part["text"]?.stringValue { texts.append(text) }
                if let call = part["functionCall"], call.objectValue != nil { toolCalls.append(ToolCall(call)) }
            }
            text = texts.isEmpty ? nil : texts.joined()
        }
    }

    // MARK: - Finish reasons and usage

    /// The OpenAI finish reason for a Gemini one.
    static func finishReason(_ reason: String?, calledFunctions: Bool) -> String {
        switch reason {
        case "MAX_TOKENS":
            return FinishReason.length
        case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
            "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION":
            return FinishReason.contentFilter
        case "STOP", nil:
            return calledFunctions ? FinishReason.toolCalls : FinishReason.stop
        default:
            return FinishReason.stop
        }
    }

    /// `usageMetadata` in OpenAI's terms: thinking tokens count as completion tokens, as OpenAI counts reasoning.
    static func usage(from metadata: JSON?) -> Usage? {
        guard let metadata, metadata.objectValue != nil else { return nil }
        return Usage(
            promptTokens: Usage.count(metadata["promptTokenCount"]),
            completionTokens: Usage.count(metadata["candidatesTokenCount"]) + Usage.count(metadata["thoughtsTokenCount"]),
            cachedTokens: Usage.count(metadata["cachedContentTokenCount"]))
    }

    /// A Gemini error object (`{"code", "message", "status"}`) as the gateway's error.
    static func streamError(_ error: JSON) -> GatewayError {
        let message = error["message"]?.stringValue ?? error.stringValue ?? "The provider reported an error."
        let status = error["status"]?.stringValue
        let code = error["code"]?.intValue ?? 0
        let type: String
        switch code {
        case 429: type = "rate_limit_error"
        case 400..<500: type = "invalid_request_error"
        default: type = "api_error"
        }
        return GatewayError(
            status: (400..<600).contains(code) ? code : 502, type: type, message: "Gemini: \(message)",
            code: status?.lowercased() ?? "upstream_error")
    }
}

// MARK: - Streaming

/// Translates `streamGenerateContent?alt=sse` events, each a whole `GenerateContentResponse`, into OpenAI chunks.
///
/// Text arrives in pieces; function calls arrive whole and are sent as one tool call chunk each.
/// The finish chunk goes out when the candidate's `finishReason` arrives; usage is the last `usageMetadata` seen.
struct GeminiStreamTranslator: StreamTranslator {
    private let model: String
    private let includeUsage: Bool
    private var builder: ChunkBuilder?
    private var finishReason: String?
    private var toolCalls = 0
    private(set) var usage: Usage?

    init(model: String, includeUsage: Bool) {
        self.model = model
        self.includeUsage = includeUsage
    }

    mutating func consume(_ event: ServerSentEvent) throws(GatewayError) -> [String] {
        if event.data.allSatisfy(\.isWhitespace) { return [] }
        guard let response = try? JSON.parse(event.data), response.objectValue != nil else {
            throw .badGateway("The provider sent a streamed event that is not a JSON object.")
        }
        if let error = response["error"], !error.isNull { throw GeminiResponse.streamError(error) }
        if let reported = GeminiResponse.usage(from: response["usageMetadata"]) { usage = reported }
        var builder =
            self.builder
            ?? ChunkBuilder(
                model: response["modelVersion"]?.stringValue ?? model, includeUsage: includeUsage)
        defer { self.builder = builder }
        var payloads: [String] = []
        if self.builder == nil { payloads.append(builder.start()) }
        guard finishReason == nil else { return payloads }

        let candidates = response["candidates"]?.arrayValue ?? []
        if candidates.isEmpty, response["promptFeedback"]?["blockReason"]?.stringValue != nil {
            finishReason = FinishReason.contentFilter
            payloads.append(builder.finish(reason: FinishReason.contentFilter))
            return payloads
        }
        // Streaming is refused with n > 1, so only the first candidate exists.
        guard let candidate = candidates.first(where: { ($0["index"]?.intValue ?? 0) == 0 }) else { return payloads }
        for part in candidate["content"]?["parts"]?.arrayValue ?? [] where part["thought"]?.boolValue != true {
            if let text = part["text"]?.stringValue, !text.isEmpty {
                payloads.append(builder.text(text))
            }
            if let call = part["functionCall"], call.objectValue != nil {
                let toolCall = GeminiResponse.ToolCall(call)
                payloads.append(
                    builder.toolCallStart(
                        index: toolCalls, id: toolCall.id, name: toolCall.name, arguments: toolCall.arguments))
                toolCalls += 1
            }
        }
        if let reason = candidate["finishReason"]?.stringValue {
            let mapped = GeminiResponse.finishReason(reason, calledFunctions: toolCalls > 0)
            finishReason = mapped
            payloads.append(builder.finish(reason: mapped))
        }
        return payloads
    }

    mutating func finish() throws(GatewayError) -> [String] {
        guard let builder, finishReason != nil else {
            throw .badGateway("The provider's stream ended before it was complete.", code: "stream_truncated")
        }
        return builder.closing(usage: usage)
    }
}
