/// A chat completion request in OpenAI's format, checked against the schema.
///
/// The whole body is kept as `JSON` so unknown fields pass through to OpenAI-compatible upstreams.
public struct ChatRequest: Sendable {
    /// The complete request object.
    public var body: [String: JSON]
    /// `model` as the client sent it: at most `longestModelName` bytes, no control characters.
    public var model: String
    /// The longest model name a request may give, in UTF-8 bytes.
    public static let longestModelName = 256

    /// Whether `name` could be a model's: at most `longestModelName` bytes, no control characters. Anything else is
    /// never written into an error message or a log line.
    public static func isPlausibleModelName(_ name: String) -> Bool {
        name.utf8.count <= longestModelName && !name.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }
    /// `messages`, each an object with a valid role.
    public var messages: [[String: JSON]]
    /// `stream`.
    public var stream: Bool
    /// `stream_options.include_usage`.
    public var includeUsage: Bool
    /// The client's own body, when it came in another API than Chat Completions (`NativeRequest`).
    public var native: NativeRequest?
    /// For a Responses request (`OpenAIResponsesDialect`): its response id and what the response echoes.
    public var responses: ResponsesContext?

    /// Roles OpenAI accepts in `messages`.
    public static let roles: Set<String> = ["system", "developer", "user", "assistant", "tool", "function"]

    /// Parses and validates a request body.
    /// - Throws: `GatewayError` (400) naming the offending parameter.
    public init<Bytes: Collection>(parsing bytes: Bytes) throws(GatewayError) where Bytes.Element == UInt8 {
        try self.init(json: try Self.parseBody(bytes))
    }

    /// A client's request body as JSON, or the 400 `invalid_json` saying where it broke.
    static func parseBody<Bytes: Collection>(_ bytes: Bytes) throws(GatewayError) -> JSON where Bytes.Element == UInt8 {
        do {
            return try JSON.parse(bytes)
        } catch {
            throw .invalidRequest(
                "We could not parse the JSON body of your request (\(error.description)). The body must be valid JSON.",
                code: "invalid_json")
        }
    }

    /// Validates an already parsed request body.
    public init(json: JSON) throws(GatewayError) {
        guard let body = json.objectValue else {
            throw .invalidRequest("The request body must be a JSON object, not \(json.typeName).")
        }
        self.body = body
        guard let modelValue = body["model"] else {
            throw .invalidRequest("Missing required parameter: 'model'.", param: "model", code: "missing_required_parameter")
        }
        guard let model = modelValue.stringValue, !model.isEmpty else {
            throw .invalidRequest(
                "Invalid type for 'model': expected a non-empty string, but got \(modelValue.typeName).", param: "model",
                code: "invalid_type")
        }
        // The model name reaches error messages, log lines, metrics and the request log: a name no model has (over
        // 256 bytes, or with a control character such as a newline) is refused here, and never repeated back.
        guard Self.isPlausibleModelName(model) else {
            throw .invalidRequest(
                "Invalid 'model': a model name is at most \(Self.longestModelName) bytes, without control characters.", param: "model",
                code: "invalid_value")
        }
        self.model = model
        guard let messagesValue = body["messages"] else {
            throw .invalidRequest(
                "Missing required parameter: 'messages'.", param: "messages", code: "missing_required_parameter")
        }
        guard let list = messagesValue.arrayValue else {
            throw .invalidRequest(
                "Invalid type for 'messages': expected an array, but got \(messagesValue.typeName).", param: "messages",
                code: "invalid_type")
        }
        guard !list.isEmpty else {
            throw .invalidRequest(
                "Invalid 'messages': empty array. Expected an array with minimum length 1.", param: "messages",
                code: "empty_array")
        }
        var messages: [[String: JSON]] = []
        messages.reserveCapacity(list.count)
        for (index, element) in list.enumerated() {
            messages.append(try Self.validateMessage(element, index: index))
        }
        self.messages = messages
        self.stream = try Self.optionalBool(body, "stream") ?? false
        if let options = body["stream_options"], !options.isNull {
            guard let object = options.objectValue else {
                throw .invalidRequest(
                    "Invalid type for 'stream_options': expected an object, but got \(options.typeName).",
                    param: "stream_options", code: "invalid_type")
            }
            if !stream {
                throw .invalidRequest(
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param: "stream_options")
            }
            self.includeUsage = try Self.optionalBool(object, "include_usage", prefix: "stream_options.") ?? false
        } else {
            self.includeUsage = false
        }
        try validateParameters()
    }

    // MARK: - Typed parameters

    /// `max_completion_tokens`, else `max_tokens`.
    public var maxTokens: Int? {
        body["max_completion_tokens"]?.intValue ?? body["max_tokens"]?.intValue
    }

    /// `temperature`.
    public var temperature: Double? { body["temperature"]?.doubleValue }

    /// `top_p`.
    public var topP: Double? { body["top_p"]?.doubleValue }

    /// `n`, 1 when absent.
    public var n: Int { body["n"]?.intValue ?? 1 }

    /// `stop`, as a list whether sent as one string or several.
    public var stopSequences: [String] {
        switch body["stop"] {
        case .string(let value): return [value]
        case .array(let values): return values.compactMap(\.stringValue)
        default: return []
        }
    }

    /// `tools`, when present and non-empty.
    public var tools: [JSON] { body["tools"]?.arrayValue ?? [] }

    /// True when the parameter is present and not null.
    public func has(_ name: String) -> Bool {
        if let value = body[name], !value.isNull { return true }
        return false
    }

    // MARK: - Validation

    private static func validateMessage(_ element: JSON, index: Int) throws(GatewayError) -> [String: JSON] {
        let param = "messages[\(index)]"
        guard let message = element.objectValue else {
            throw .invalidRequest(
                "Invalid type for '\(param)': expected an object, but got \(element.typeName).", param: param,
                code: "invalid_type")
        }
        guard let roleValue = message["role"] else {
            throw .invalidRequest(
                "Missing required parameter: '\(param).role'.", param: "\(param).role", code: "missing_required_parameter")
        }
        guard let role = roleValue.stringValue, roles.contains(role) else {
            throw .invalidRequest(
                "Invalid value for '\(param).role': \(roleValue). Supported values are: 'system', 'developer', 'user', 'assistant', 'tool' and 'function'.",
                param: "\(param).role", code: "invalid_value")
        }
        let content = message["content"] ?? .null
        switch content {
        case .string:
            break
        case .null:
            let hasToolCalls = !(message["tool_calls"]?.arrayValue ?? []).isEmpty || message["function_call"] != nil
            if !(role == "assistant" && hasToolCalls) && message["content"] == nil {
                throw .invalidRequest(
                    "Missing required parameter: '\(param).content'.", param: "\(param).content",
                    code: "missing_required_parameter")
            }
            if role != "assistant" && message["content"] != nil {
                throw .invalidRequest(
                    "Invalid type for '\(param).content': expected a string or an array of content parts, but got null.",
                    param: "\(param).content", code: "invalid_type")
            }
        case .array(let parts):
            for (partIndex, part) in parts.enumerated() {
                try validateContentPart(part, param: "\(param).content[\(partIndex)]")
            }
        default:
            throw .invalidRequest(
                "Invalid type for '\(param).content': expected a string or an array of content parts, but got \(content.typeName).",
                param: "\(param).content", code: "invalid_type")
        }
        if role == "tool", message["tool_call_id"]?.stringValue == nil {
            throw .invalidRequest(
                "Missing required parameter: '\(param).tool_call_id'.", param: "\(param).tool_call_id",
                code: "missing_required_parameter")
        }
        if let calls = message["tool_calls"], !calls.isNull {
            guard role == "assistant", let list = calls.arrayValue else {
                throw .invalidRequest(
                    "Invalid '\(param).tool_calls': only assistant messages carry an array of tool calls.",
                    param: "\(param).tool_calls")
            }
            for (callIndex, call) in list.enumerated() {
                let callParam = "\(param).tool_calls[\(callIndex)]"
                guard call["id"]?.stringValue != nil, call["function"]?["name"]?.stringValue != nil else {
                    throw .invalidRequest(
                        "Invalid '\(callParam)': a tool call needs an 'id' and a 'function' with a 'name'.",
                        param: callParam)
                }
            }
        }
        return message
    }

    private static func validateContentPart(_ part: JSON, param: String) throws(GatewayError) {
        guard let type = part["type"]?.stringValue else {
            throw .invalidRequest(
                "Missing required parameter: '\(param).type'.", param: "\(param).type", code: "missing_required_parameter")
        }
        switch type {
        case "text":
            guard part["text"]?.stringValue != nil else {
                throw .invalidRequest(
                    "Missing required parameter: '\(param).text'.", param: "\(param).text",
                    code: "missing_required_parameter")
            }
        case "image_url":
            guard part["image_url"]?["url"]?.stringValue != nil else {
                throw .invalidRequest(
                    "Missing required parameter: '\(param).image_url.url'.", param: "\(param).image_url.url",
                    code: "missing_required_parameter")
            }
        case "input_audio", "file", "refusal":
            break
        default:
            throw .invalidRequest(
                "Invalid value: '\(type)'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal' and 'file'.",
                param: "\(param).type", code: "invalid_value")
        }
    }

    private static func optionalBool(_ object: [String: JSON], _ key: String, prefix: String = "") throws(GatewayError) -> Bool? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let bool = value.boolValue else {
            throw .invalidRequest(
                "Invalid type for '\(prefix)\(key)': expected a boolean, but got \(value.typeName).", param: prefix + key,
                code: "invalid_type")
        }
        return bool
    }

    private func validateParameters() throws(GatewayError) {
        for name in ["temperature", "top_p", "presence_penalty", "frequency_penalty"] {
            if let value = body[name], !value.isNull, value.doubleValue == nil {
                throw .invalidRequest(
                    "Invalid type for '\(name)': expected a number, but got \(value.typeName).", param: name,
                    code: "invalid_type")
            }
        }
        if let temperature, !(0...2).contains(temperature) {
            throw .invalidRequest(
                "Invalid 'temperature': \(temperature). Expected a value between 0 and 2.", param: "temperature",
                code: "invalid_value")
        }
        if let topP, !(0...1).contains(topP) {
            throw .invalidRequest("Invalid 'top_p': \(topP). Expected a value between 0 and 1.", param: "top_p", code: "invalid_value")
        }
        for name in ["max_tokens", "max_completion_tokens", "n", "seed"] {
            if let value = body[name], !value.isNull, value.intValue == nil {
                throw .invalidRequest(
                    "Invalid type for '\(name)': expected an integer, but got \(value.typeName).", param: name,
                    code: "invalid_type")
            }
        }
        for name in ["max_tokens", "max_completion_tokens", "n"] {
            if let value = body[name]?.intValue, value < 1 {
                throw .invalidRequest("Invalid '\(name)': \(value). Expected a value >= 1.", param: name, code: "invalid_value")
            }
        }
        if let stop = body["stop"], !stop.isNull {
            let valid: Bool
            switch stop {
            case .string: valid = true
            case .array(let values): valid = values.allSatisfy { $0.stringValue != nil } && values.count <= 4
            default: valid = false
            }
            if !valid {
                throw .invalidRequest(
                    "Invalid 'stop': expected a string or an array of at most 4 strings.", param: "stop", code: "invalid_type")
            }
        }
        if let tools = body["tools"], !tools.isNull {
            guard let list = tools.arrayValue else {
                throw .invalidRequest(
                    "Invalid type for 'tools': expected an array, but got \(tools.typeName).", param: "tools", code: "invalid_type")
            }
            for (index, tool) in list.enumerated() {
                guard tool["type"]?.stringValue == "function", tool["function"]?["name"]?.stringValue != nil else {
                    throw .invalidRequest(
                        "Invalid 'tools[\(index)]': expected {\"type\": \"function\", \"function\": {\"name\": ...}}.",
                        param: "tools[\(index)]")
                }
            }
        }
        if let format = body["response_format"], !format.isNull {
            guard let type = format["type"]?.stringValue, ["text", "json_object", "json_schema"].contains(type) else {
                throw .invalidRequest(
                    "Invalid 'response_format.type'. Supported values are: 'text', 'json_object' and 'json_schema'.",
                    param: "response_format.type", code: "invalid_value")
            }
            if type == "json_schema", format["json_schema"]?.objectValue == nil {
                throw .invalidRequest(
                    "Missing required parameter: 'response_format.json_schema'.", param: "response_format.json_schema",
                    code: "missing_required_parameter")
            }
        }
    }
}
