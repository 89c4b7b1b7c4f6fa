/// Anthropic's Messages API (`POST /v1/messages`).
///
/// System and developer messages become the top-level `system` blocks, tool calls and results
/// become `tool_use` and `tool_result` blocks, and consecutive turns of one role are merged,
/// as Anthropic wants strictly alternating user and assistant turns that start with the user.
/// Parameters Anthropic cannot honour are refused with a 400 naming them rather than dropped.
public struct AnthropicAdapter: ProviderAdapter {
    /// Image types Anthropic accepts in `image` blocks.
    public static let imageMediaTypes: Set<String> = ["image/jpeg", "image/png", "image/gif", "image/webp"]

    public init() {}

    public func makeRequest(_ request: ChatRequest, upstreamModel: String, provider: ProviderConfig) throws(GatewayError)
        -> UpstreamRequest
    {
        try rejectUnsupportedParameters(request)
        var body: [String: JSON] = [
            "model": .string(upstreamModel),
            "max_tokens": .int(Int64(request.maxTokens ?? provider.defaultMaxTokens)),
        ]
        let conversation = try AnthropicConversation(request.messages)
        if !conversation.system.isEmpty { body["system"] = .array(conversation.system) }
        body["messages"] = .array(conversation.turns)
        if let temperature = request.temperature { body["temperature"] = .double(min(max(temperature, 0), 1)) }
        if let topP = request.topP { body["top_p"] = .double(topP) }
        let stops = request.stopSequences
        if !stops.isEmpty { body["stop_sequences"] = .array(stops.map(JSON.string)) }
        if request.stream { body["stream"] = true }
        if let user = request.body["user"]?.stringValue, !user.isEmpty { body["metadata"] = ["user_id": .string(user)] }
        if let format = try outputFormat(request) { body["output_config"] = ["format": format] }
        if !request.tools.isEmpty {
            body["tools"] = .array(request.tools.map(Self.tool))
            if let choice = try toolChoice(request) { body["tool_choice"] = choice }
        } else if let choice = request.body["tool_choice"], !choice.isNull,
            choice.stringValue != "none", choice.stringValue != "auto"
        {
            throw .invalidRequest(
                "Invalid 'tool_choice': a tool can only be required when 'tools' lists at least one tool.",
                param: "tool_choice")
        }

        var headers: [(name: String, value: String)] = [
            ("content-type", "application/json"),
            ("anthropic-version", provider.anthropicVersion),
        ]
        if let key = provider.apiKey, !key.isEmpty { headers.append(("x-api-key", key)) }
        for (name, value) in provider.headers.sorted(by: { $0.key < $1.key }) { headers.append((name, value)) }
        return UpstreamRequest(path: "/v1/messages", headers: headers, body: .object(body))
    }

    public var nativeDialect: NativeDialect? { .anthropicMessages }

    /// The client's Messages body as sent, with the deployment's model; the client's `anthropic-version` and
    /// `anthropic-beta` replace the provider's, the provider's key and headers are added.
    public func makePassthroughRequest(_ native: NativeRequest, upstreamModel: String, provider: ProviderConfig) throws(GatewayError)
        -> UpstreamRequest
    {
        let body = try native.body(withModel: upstreamModel)
        var headers: [(name: String, value: String)] = [("content-type", "application/json")]
        let forwarded = Set(native.forwardedHeaders.map { $0.name.lowercased() })
        if !forwarded.contains("anthropic-version") { headers.append(("anthropic-version", provider.anthropicVersion)) }
        headers += native.forwardedHeaders
        if let key = provider.apiKey, !key.isEmpty { headers.append(("x-api-key", key)) }
        for (name, value) in provider.headers.sorted(by: { $0.key < $1.key }) where !forwarded.contains(name.lowercased()) {
            headers.append((name, value))
        }
        return UpstreamRequest(path: native.path, headers: headers, rawBody: body)
    }

    public func translateResponse(_ body: JSON, model: String) throws(GatewayError) -> ChatCompletion {
        try AnthropicResponse.translate(body, model: model)
    }

    public func makeStreamTranslator(model: String, includeUsage: Bool) -> any StreamTranslator {
        AnthropicStreamTranslator(model: model, includeUsage: includeUsage)
    }

    /// Reads `{"type": "error", "error": {"type", "message"}}`.
    public func errorMessage(from body: JSON) -> String? {
        body["error"]?["message"]?.stringValue ?? body["message"]?.stringValue
    }

    // MARK: - Parameters

    private func rejectUnsupportedParameters(_ request: ChatRequest) throws(GatewayError) {
        func refuse(_ param: String, _ why: String) -> GatewayError {
            .invalidRequest("Anthropic models do not support '\(param)' \(why).", param: param, code: "unsupported_parameter")
        }
        if request.n > 1 { throw refuse("n", "greater than 1: ask for one choice per request") }
        if request.body["logprobs"]?.boolValue == true { throw refuse("logprobs", "(log probabilities are not returned)") }
        if let top = request.body["top_logprobs"]?.intValue, top > 0 {
            throw refuse("top_logprobs", "(log probabilities are not returned)")
        }
        for name in ["presence_penalty", "frequency_penalty"] {
            if let value = request.body[name]?.doubleValue, value != 0 { throw refuse(name, "with a non-zero value") }
        }
        if let bias = request.body["logit_bias"]?.objectValue, !bias.isEmpty { throw refuse("logit_bias", "") }
        if request.has("audio") { throw refuse("audio", "(they answer in text only)") }
        if let modalities = request.body["modalities"]?.arrayValue, modalities.contains(where: { $0 != "text" }) {
            throw refuse("modalities", "other than \"text\"")
        }
        for name in ["functions", "function_call"] where request.has(name) {
            throw refuse(name, "(the legacy functions API): use 'tools' and 'tool_choice'")
        }
        if request.has("web_search_options") { throw refuse("web_search_options", "through this gateway") }
        if request.has("reasoning_effort") { throw refuse("reasoning_effort", "through this gateway") }
    }

    /// `response_format`: a JSON schema maps to Anthropic's structured outputs; bare JSON mode has no equivalent.
    private func outputFormat(_ request: ChatRequest) throws(GatewayError) -> JSON? {
        guard let format = request.body["response_format"], !format.isNull else { return nil }
        switch format["type"]?.stringValue {
        case "json_schema":
            let schema = format["json_schema"]?["schema"] ?? ["type": "object", "properties": [:]]
            return ["type": "json_schema", "schema": schema]
        case "json_object":
            throw .invalidRequest(
                "Anthropic models have no JSON mode without a schema: use 'response_format' of type 'json_schema' with a schema.",
                param: "response_format", code: "unsupported_parameter")
        default:
            return nil
        }
    }

    private static func tool(_ tool: JSON) -> JSON {
        let function = tool["function"] ?? [:]
        var schema = function["parameters"]?.objectValue ?? [:]
        if schema["type"] == nil { schema["type"] = "object" }
        if schema["type"] == "object", schema["properties"] == nil { schema["properties"] = [:] }
        var result: [String: JSON] = ["name": function["name"] ?? "", "input_schema": .object(schema)]
        if let description = function["description"]?.stringValue, !description.isEmpty {
            result["description"] = .string(description)
        }
        if function["strict"]?.boolValue == true { result["strict"] = true }
        return .object(result)
    }

    private func toolChoice(_ request: ChatRequest) throws(GatewayError) -> JSON? {
        var choice: [String: JSON]
        switch request.body["tool_choice"] {
        case nil, .null?, .string("auto")?: choice = ["type": "auto"]
        case .string("required")?: choice = ["type": "any"]
        case .string("none")?: return ["type": "none"]
        case let value?:
            guard value["type"]?.stringValue == "function", let name = value["function"]?["name"]?.stringValue else {
                throw .invalidRequest(
                    "Invalid 'tool_choice': expected \"auto\", \"required\", \"none\" or {\"type\": \"function\", \"function\": {\"name\": ...}}.",
                    param: "tool_choice", code: "invalid_value")
            }
            choice = ["type": "tool", "name": .string(name)]
        }
        if request.body["parallel_tool_calls"]?.boolValue == false { choice["disable_parallel_tool_use"] = true }
        if choice == ["type": "auto"] && !request.has("tool_choice") { return nil }
        return .object(choice)
    }
}

// MARK: - Messages

/// OpenAI `messages` regrouped as Anthropic's `system` blocks and alternating turns.
struct AnthropicConversation {
    /// Text blocks of every system and developer message, in order.
    private(set) var system: [JSON] = []
    /// `{"role", "content": [blocks]}` objects, user first, roles alternating.
    var turns: [JSON] {
        pending.map { ["role": .string($0.role), "content": .array($0.blocks)] }
    }
    private var pending: [(role: String, blocks: [JSON], index: Int)] = []

    init(_ messages: [[String: JSON]]) throws(GatewayError) {
        for (index, message) in messages.enumerated() {
            let param = "messages[\(index)]"
            switch message["role"]?.stringValue {
            case "system", "developer":
                system += try Self.textBlocks(message["content"], param: "\(param).content")
            case "user":
                append("user", try Self.userBlocks(message["content"], param: "\(param).content"), index: index)
            case "assistant":
                append("assistant", try Self.assistantBlocks(message, param: param), index: index)
            case "tool":
                append("user", [try Self.toolResult(message, param: param)], index: index)
            default:
                throw .invalidRequest(
                    "Invalid '\(param).role': the legacy 'function' role cannot be sent to Anthropic models; use 'tool' messages answering 'tool_calls'.",
                    param: "\(param).role", code: "unsupported_value")
            }
        }
        trimFinalAssistantTurn()
        guard let first = pending.first else {
            throw .invalidRequest(
                "Invalid 'messages': Anthropic models need at least one user message with non-empty content.",
                param: "messages")
        }
        guard first.role == "user" else {
            throw .invalidRequest(
                "Invalid 'messages[\(first.index)]': Anthropic models need the conversation to start with a user message, not an assistant message.",
                param: "messages[\(first.index)]", code: "invalid_value")
        }
    }

    private mutating func append(_ role: String, _ blocks: [JSON], index: Int) {
        guard !blocks.isEmpty else { return }
        if let last = pending.indices.last, pending[last].role == role {
            pending[last].blocks += blocks
        } else {
            pending.append((role, blocks, index))
        }
        // Anthropic wants a user turn's tool results before anything else in it.
        if role == "user", let last = pending.indices.last {
            let blocks = pending[last].blocks
            let results = blocks.filter { $0["type"] == "tool_result" }
            pending[last].blocks = results + blocks.filter { $0["type"] != "tool_result" }
        }
    }

    /// Anthropic refuses a final assistant turn (a prefill) that ends in whitespace.
    private mutating func trimFinalAssistantTurn() {
        guard let last = pending.indices.last, pending[last].role == "assistant",
            let text = pending[last].blocks.last?["text"]?.stringValue
        else { return }
        var trimmed = Substring(text)
        while let character = trimmed.last, character.isWhitespace { trimmed.removeLast() }
        pending[last].blocks.removeLast()
        if !trimmed.isEmpty { pending[last].blocks.append(["type": "text", "text": .string(String(trimmed))]) }
        if pending[last].blocks.isEmpty { pending.removeLast() }
    }

    // MARK: Content

    private static func text(_ value: String) -> [JSON] {
        value.isEmpty ? [] : [["type": "text", "text": .string(value)]]
    }

    /// Content that may only be text (system, developer and tool messages).
    private static func textBlocks(_ content: JSON?, param: String) throws(GatewayError) -> [JSON] {
        switch content {
        case .string(let value)?:
            return text(value)
        case .array(let parts)?:
            var blocks: [JSON] = []
            for (index, part) in parts.enumerated() {
                guard part["type"] == "text", let value = part["text"]?.stringValue else {
                    throw .invalidRequest(
                        "Invalid '\(param)[\(index)]': only text parts can be sent to Anthropic models here.",
                        param: "\(param)[\(index)]", code: "unsupported_value")
                }
                blocks += text(value)
            }
            return blocks
        default:
            return []
        }
    }

    private static func userBlocks(_ content: JSON?, param: String) throws(GatewayError) -> [JSON] {
        guard case .array(let parts)? = content else { return try textBlocks(content, param: param) }
        var blocks: [JSON] = []
        for (index, part) in parts.enumerated() {
            let partParam = "\(param)[\(index)]"
            switch part["type"]?.stringValue {
            case "text", "refusal":
                blocks += text(part["text"]?.stringValue ?? part["refusal"]?.stringValue ?? "")
            case "image_url":
                blocks.append(try image(part["image_url"]?["url"]?.stringValue ?? "", param: "\(partParam).image_url.url"))
            case let type:
                throw .invalidRequest(
                    "Invalid '\(partParam)': Anthropic models cannot take '\(type ?? "untyped")' content parts through this gateway; send text or images.",
                    param: partParam, code: "unsupported_value")
            }
        }
        return blocks
    }

    private static func image(_ url: String, param: String) throws(GatewayError) -> JSON {
        let lowercased = url.lowercased()
        if lowercased.hasPrefix("http://") || lowercased.hasPrefix("https://") {
            return ["type": "image", "source": ["type": "url", "url": .string(url)]]
        }
        guard lowercased.hasPrefix("data:"), let comma = url.firstIndex(of: ",") else {
            throw .invalidRequest(
                "Invalid '\(param)': expected an http(s) URL or a data:<type>;base64,<data> URL.", param: param,
                code: "invalid_value")
        }
        let header = url[url.index(url.startIndex, offsetBy: 5)..<comma].split(separator: ";")
        let data = url[url.index(after: comma)...]
        guard header.last?.lowercased() == "base64", header.count >= 2, !data.isEmpty else {
            throw .invalidRequest(
                "Invalid '\(param)': a data URL must be base64-encoded (data:<type>;base64,<data>).", param: param,
                code: "invalid_value")
        }
        let mediaType = header[0].lowercased()
        guard AnthropicAdapter.imageMediaTypes.contains(mediaType) else {
            throw .invalidRequest(
                "Invalid '\(param)': Anthropic models accept image/jpeg, image/png, image/gif and image/webp images, not \(mediaType).",
                param: param, code: "unsupported_value")
        }
        return ["type": "image", "source": ["type": "base64", "media_type": .string(mediaType), "data": .string(String(data))]]
    }

    private static func assistantBlocks(_ message: [String: JSON], param: String) throws(GatewayError) -> [JSON] {
        if message["function_call"].map({ !$0.isNull }) == true {
            throw .invalidRequest(
                "Invalid '\(param).function_call': the legacy functions API cannot be sent to Anthropic models; use 'tool_calls'.",
                param: "\(param).function_call", code: "unsupported_value")
        }
        var blocks: [JSON] = []
        switch message["content"] {
        case .array(let parts)?:
            for (index, part) in parts.enumerated() {
                guard let value = part["text"]?.stringValue ?? part["refusal"]?.stringValue else {
                    throw .invalidRequest(
                        "Invalid '\(param).content[\(index)]': assistant messages sent to Anthropic models may only hold text.",
                        param: "\(param).content[\(index)]", code: "unsupported_value")
                }
                blocks += text(value)
            }
        case .string(let value)?:
            blocks += text(value)
        default:
            break
        }
        for (index, call) in (message["tool_calls"]?.arrayValue ?? []).enumerated() {
            blocks.append(try toolUse(call, param: "\(param).tool_calls[\(index)]"))
        }
        return blocks
    }

    private static func toolUse(_ call: JSON, param: String) throws(GatewayError) -> JSON {
        if let type = call["type"]?.stringValue, type != "function" {
            throw .invalidRequest(
                "Invalid '\(param).type': only function tool calls can be sent to Anthropic models, not '\(type)'.",
                param: "\(param).type", code: "unsupported_value")
        }
        let arguments = call["function"]?["arguments"]?.stringValue ?? ""
        var input: JSON = [:]
        if !arguments.allSatisfy(\.isWhitespace) {
            guard let parsed = try? JSON.parse(arguments), parsed.objectValue != nil else {
                throw .invalidRequest(
                    "Invalid '\(param).function.arguments': expected a JSON object encoded as a string.",
                    param: "\(param).function.arguments", code: "invalid_value")
            }
            input = parsed
        }
        return [
            "type": "tool_use", "id": call["id"] ?? "", "name": call["function"]?["name"] ?? "", "input": input,
        ]
    }

    private static func toolResult(_ message: [String: JSON], param: String) throws(GatewayError) -> JSON {
        var result: [String: JSON] = ["type": "tool_result", "tool_use_id": message["tool_call_id"] ?? ""]
        switch message["content"] {
        case .string(let value)?:
            if !value.isEmpty { result["content"] = .string(value) }
        case let content:
            let blocks = try textBlocks(content, param: "\(param).content")
            if !blocks.isEmpty { result["content"] = .array(blocks) }
        }
        return .object(result)
    }
}
