/// Google Gemini's `generateContent` API (`/v1beta/models/{model}:generateContent`).
///
/// Requests are rebuilt from the OpenAI fields: system and developer messages become `systemInstruction`,
/// turns alternate between `user` and `model`, tool results become `functionResponse` parts and the sampling
/// parameters move into `generationConfig`. Anything Gemini cannot honour is refused with a 400 naming the
/// parameter rather than silently dropped. The answer direction lives in `GeminiResponse.swift`.
///
/// ```swift
/// let upstream = try GeminiAdapter().makeRequest(request, upstreamModel: "gemini-2.5-flash", provider: provider)
/// upstream.path // "/v1beta/models/gemini-2.5-flash:generateContent"
/// ```
public struct GeminiAdapter: ProviderAdapter {
    public init() {}

    /// Placeholder `thoughtSignature` Google documents for function calls whose real signature is unknown
    /// (history written by another model or rebuilt by a client). Gemini 3 refuses replayed function calls without one.
    static let unknownThoughtSignature = "skip_thought_signature_validator"

    public func makeRequest(_ request: ChatRequest, upstreamModel: String, provider: ProviderConfig)
        throws(GatewayError)
        -> UpstreamRequest
    {
        try GeminiRequestTranslation.rejectUnsupported(request)
        let body = try GeminiRequestTranslation.body(for: request)
        let headers = Self.headers(for: provider)
        return UpstreamRequest(
            path: Self.path(model: upstreamModel, stream: request.stream), headers: headers, body: body)
    }

    /// The headers of every request to `provider`: JSON, the provider's key, its configured extra headers.
    static func headers(for provider: ProviderConfig) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [("content-type", "application/json")]
        if let key = provider.apiKey, !key.isEmpty { headers.append(("x-goog-api-key", key)) }
        for (name, value) in provider.headers.sorted(by: { $0.key < $1.key }) { headers.append((name, value)) }
        return headers
    }

    public func translateResponse(_ body: JSON, model: String) throws(GatewayError) -> ChatCompletion {
        try GeminiResponse.completion(from: body, model: model)
    }

    public func makeStreamTranslator(model: String, includeUsage: Bool) -> any StreamTranslator {
        GeminiStreamTranslator(model: model, includeUsage: includeUsage)
    }

    public func errorMessage(from body: JSON) -> String? {
        // Streamed methods called without `alt=sse` answer a JSON array; its errors come wrapped the same way.
        let envelope = body.arrayValue?.first ?? body
        return envelope["error"]?["message"]?.stringValue ?? envelope["error"]?.stringValue
    }

    /// The request path for `model`, which is percent-encoded as one path segment.
    ///
    /// A model given as `models/gemini-2.5-flash` is sent as `gemini-2.5-flash`.
    /// - Parameters:
    ///   - model: the upstream model id.
    ///   - stream: whether to call `streamGenerateContent` with server-sent events.
    public static func path(model: String, stream: Bool) -> String {
        let id = model.hasPrefix("models/") ? String(model.dropFirst("models/".count)) : model
        let method = stream ? "streamGenerateContent?alt=sse" : "generateContent"
        return "/v1beta/models/\(percentEncodedSegment(id)):\(method)"
    }

    /// Percent-encodes every byte outside RFC 3986's unreserved set, so `/`, `?`, `#`, `%`, `:` and spaces cannot
    /// change the meaning of the URL.
    static func percentEncodedSegment(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                bytes.append(byte)
            default:
                bytes.append(contentsOf: [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

// MARK: - Request translation

/// OpenAI request -> Gemini `GenerateContentRequest`.
enum GeminiRequestTranslation {
    /// Refuses parameters Gemini cannot honour, naming each.
    static func rejectUnsupported(_ request: ChatRequest) throws(GatewayError) {
        if let bias = request.body["logit_bias"], !bias.isNull, bias.objectValue?.isEmpty != true {
            throw unsupported("logit_bias", "Gemini has no token bias.")
        }
        if request.body["logprobs"]?.boolValue == true {
            throw unsupported("logprobs", "The gateway does not translate Gemini log probabilities.")
        }
        if request.has("top_logprobs") {
            throw unsupported("top_logprobs", "The gateway does not translate Gemini log probabilities.")
        }
        if request.stream, request.n > 1 {
            throw unsupported("n", "Gemini streams a single candidate; use n > 1 without streaming.")
        }
        if request.body["modalities"]?.arrayValue?.contains(where: { $0.stringValue == "audio" }) == true {
            throw unsupported("modalities", "The gateway cannot return Gemini audio output.")
        }
        if request.has("audio") {
            throw unsupported("audio", "The gateway cannot return Gemini audio output.")
        }
        for legacy in ["functions", "function_call"] where request.has(legacy) {
            throw unsupported(legacy, "Use 'tools' and 'tool_choice' instead.")
        }
        if request.has("web_search_options") {
            throw unsupported("web_search_options", "Web search is not available through this provider.")
        }
    }

    static func unsupported(_ param: String, _ reason: String) -> GatewayError {
        .invalidRequest(
            "The '\(param)' parameter is not supported by this model's provider (Gemini). \(reason)",
            param: param, code: "unsupported_parameter")
    }

    /// The Gemini request body.
    static func body(for request: ChatRequest) throws(GatewayError) -> JSON {
        var conversation = Conversation()
        for (index, message) in request.messages.enumerated() {
            try conversation.add(message, index: index)
        }
        guard !conversation.turns.isEmpty else {
            throw .invalidRequest(
                "Gemini needs at least one user or assistant message with content besides system messages.",
                param: "messages")
        }
        var body: [String: JSON] = [
            "contents": .array(conversation.turns.map { ["role": .string($0.role), "parts": .array($0.parts)] })
        ]
        if !conversation.system.isEmpty { body["systemInstruction"] = ["parts": .array(conversation.system)] }
        let config = try generationConfig(for: request)
        if !config.isEmpty { body["generationConfig"] = .object(config) }
        let declarations = functionDeclarations(request.tools)
        if !declarations.isEmpty { body["tools"] = [["functionDeclarations": .array(declarations)]] }
        if let toolConfig = try toolConfig(for: request) { body["toolConfig"] = toolConfig }
        return .object(body)
    }

    // MARK: Generation config

    static func generationConfig(for request: ChatRequest) throws(GatewayError) -> [String: JSON] {
        var config: [String: JSON] = [:]
        if let maxTokens = request.maxTokens { config["maxOutputTokens"] = .int(Int64(maxTokens)) }
        if let temperature = request.temperature { config["temperature"] = .double(min(max(temperature, 0), 2)) }
        if let topP = request.topP { config["topP"] = .double(topP) }
        let stops = request.stopSequences
        if !stops.isEmpty { config["stopSequences"] = .array(stops.map(JSON.string)) }
        if request.has("n") { config["candidateCount"] = .int(Int64(request.n)) }
        if let seed = request.body["seed"]?.intValue { config["seed"] = .int(Int64(seed)) }
        if let penalty = request.body["presence_penalty"]?.doubleValue { config["presencePenalty"] = .double(penalty) }
        if let penalty = request.body["frequency_penalty"]?.doubleValue {
            config["frequencyPenalty"] = .double(penalty)
        }
        if let format = request.body["response_format"], !format.isNull {
            switch format["type"]?.stringValue {
            case "json_object":
                config["responseMimeType"] = "application/json"
            case "json_schema":
                config["responseMimeType"] = "application/json"
                // `responseJsonSchema` takes JSON Schema as OpenAI clients write it; `responseSchema` only an
                // OpenAPI subset that rejects `additionalProperties`, `$ref`, `const` and friends.
                if let schema = format["json_schema"]?["schema"], schema.objectValue != nil {
                    config["responseJsonSchema"] = schema
                }
            default:
                break
            }
        }
        if let effort = request.body["reasoning_effort"], !effort.isNull {
            config["thinkingConfig"] = ["thinkingBudget": .int(Int64(try thinkingBudget(effort)))]
        }
        return config
    }

    /// Gemini's thinking budget for an OpenAI `reasoning_effort` (the budgets Google's own OpenAI layer uses).
    static func thinkingBudget(_ effort: JSON) throws(GatewayError) -> Int {
        switch effort.stringValue {
        case "none": return 0
        case "minimal", "low": return 1024
        case "medium": return 8192
        case "high": return 24576
        default:
            throw .invalidRequest(
                "Invalid value for 'reasoning_effort': \(effort). Supported values are: 'none', 'minimal', 'low', 'medium' and 'high'.",
                param: "reasoning_effort", code: "invalid_value")
        }
    }

    // MARK: Tools

    static func functionDeclarations(_ tools: [JSON]) -> [JSON] {
        tools.compactMap { tool -> JSON? in
            guard let function = tool["function"], let name = function["name"]?.stringValue else { return nil }
            var declaration: [String: JSON] = ["name": .string(name)]
            if let description = function["description"]?.stringValue {
                declaration["description"] = .string(description)
            }
            // Full JSON Schema, as OpenAI clients send it; `parameters` would reject `additionalProperties`.
            if let parameters = function["parameters"], parameters.objectValue != nil {
                declaration["parametersJsonSchema"] = parameters
            }
            return .object(declaration)
        }
    }

    static func toolConfig(for request: ChatRequest) throws(GatewayError) -> JSON? {
        guard let choice = request.body["tool_choice"], !choice.isNull else { return nil }
        let names = Set(request.tools.compactMap { $0["function"]?["name"]?.stringValue })
        let config: JSON
        switch choice {
        case "none":
            guard !names.isEmpty else { return nil }
            config = ["mode": "NONE"]
        case "auto":
            guard !names.isEmpty else { return nil }
            config = ["mode": "AUTO"]
        case "required":
            guard !names.isEmpty else {
                throw .invalidRequest("'tool_choice' is 'required' but no tools were given.", param: "tool_choice")
            }
            config = ["mode": "ANY"]
        default:
            guard choice["type"]?.stringValue == "function", let name = choice["function"]?["name"]?.stringValue else {
                throw .invalidRequest(
                    "Invalid 'tool_choice': expected 'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}.",
                    param: "tool_choice", code: "invalid_value")
            }
            guard names.contains(name) else {
                throw .invalidRequest(
                    "Invalid 'tool_choice': the function '\(name)' is not among the tools.", param: "tool_choice",
                    code: "invalid_value")
            }
            config = ["mode": "ANY", "allowedFunctionNames": [.string(name)]]
        }
        return ["functionCallingConfig": config]
    }
}

// MARK: - Messages

extension GeminiRequestTranslation {
    /// Gemini `contents` and `systemInstruction`, built message by message.
    struct Conversation {
        struct Turn {
            var role: String
            var parts: [JSON]
        }

        /// `systemInstruction` parts.
        var system: [JSON] = []
        /// `contents`, consecutive turns of the same role merged.
        var turns: [Turn] = []
        /// Function names by tool call id, from the assistant messages seen so far.
        private var functionNames: [String: String] = [:]

        mutating func add(_ message: [String: JSON], index: Int) throws(GatewayError) {
            let param = "messages[\(index)]"
            let content = message["content"] ?? .null
            switch message["role"]?.stringValue {
            case "system", "developer":
                system += try Self.textParts(content, param: "\(param).content", allowRefusal: false)
            case "user":
                append(role: "user", try Self.userParts(content, param: "\(param).content"))
            case "assistant":
                var parts = try Self.textParts(content, param: "\(param).content", allowRefusal: true)
                parts += try functionCalls(message["tool_calls"]?.arrayValue ?? [], param: "\(param).tool_calls")
                append(role: "model", parts)
            case "tool":
                let id = message["tool_call_id"]?.stringValue ?? ""
                guard let name = functionNames[id] else {
                    throw .invalidRequest(
                        "Invalid '\(param).tool_call_id': '\(id)' does not match any tool call of an earlier assistant message.",
                        param: "\(param).tool_call_id", code: "invalid_value")
                }
                append(
                    role: "user", [try Self.functionResponse(name: name, content: content, param: "\(param).content")])
            case "function":
                guard let name = message["name"]?.stringValue, !name.isEmpty else {
                    throw .invalidRequest(
                        "Missing required parameter: '\(param).name'.", param: "\(param).name",
                        code: "missing_required_parameter")
                }
                append(
                    role: "user", [try Self.functionResponse(name: name, content: content, param: "\(param).content")])
            default:
                break
            }
        }

        private mutating func append(role: String, _ parts: [JSON]) {
            guard !parts.isEmpty else { return }
            if let last = turns.indices.last, turns[last].role == role {
                turns[last].parts += parts
            } else {
                turns.append(Turn(role: role, parts: parts))
            }
        }

        private mutating func functionCalls(_ calls: [JSON], param: String) throws(GatewayError) -> [JSON] {
            var parts: [JSON] = []
            for (index, call) in calls.enumerated() {
                let name = call["function"]?["name"]?.stringValue ?? ""
                if let id = call["id"]?.stringValue { functionNames[id] = name }
                let text = call["function"]?["arguments"]?.stringValue ?? ""
                let arguments: JSON
                if text.allSatisfy(\.isWhitespace) {
                    arguments = [:]
                } else if let parsed = try? JSON.parse(text), parsed.objectValue != nil {
                    arguments = parsed
                } else {
                    throw .invalidRequest(
                        "Invalid '\(param)[\(index)].function.arguments': expected a JSON object serialized as a string.",
                        param: "\(param)[\(index)].function.arguments", code: "invalid_value")
                }
                var part: [String: JSON] = ["functionCall": ["name": .string(name), "args": arguments]]
                // Only the first call of a step carries a signature; the real one is gone after the OpenAI round trip.
                if index == 0 { part["thoughtSignature"] = .string(GeminiAdapter.unknownThoughtSignature) }
                parts.append(.object(part))
            }
            return parts
        }

        // MARK: Content parts

        /// Text parts of a system, developer or assistant message (empty texts dropped: Gemini refuses them).
        private static func textParts(_ content: JSON, param: String, allowRefusal: Bool) throws(GatewayError) -> [JSON]
        {
            switch content {
            case .string(let text):
                return text.isEmpty ? [] : [["text": .string(text)]]
            case .array(let parts):
                var result: [JSON] = []
                for (index, part) in parts.enumerated() {
                    let type = part["type"]?.stringValue
                    let text: String?
                    switch type {
                    case "text": text = part["text"]?.stringValue
                    case "refusal" where allowRefusal: text = part["refusal"]?.stringValue
                    default: text = nil
                    }
                    guard let text else {
                        throw .invalidRequest(
                            "Invalid '\(param)[\(index)]': this message may only contain text parts, not '\(type ?? "unknown")'.",
                            param: "\(param)[\(index)]", code: "invalid_value")
                    }
                    if !text.isEmpty { result.append(["text": .string(text)]) }
                }
                return result
            default:
                return []
            }
        }

        private static func userParts(_ content: JSON, param: String) throws(GatewayError) -> [JSON] {
            guard case .array(let parts) = content else {
                return try textParts(content, param: param, allowRefusal: false)
            }
            var result: [JSON] = []
            for (index, part) in parts.enumerated() {
                if let converted = try userPart(part, param: "\(param)[\(index)]") { result.append(converted) }
            }
            return result
        }

        private static func userPart(_ part: JSON, param: String) throws(GatewayError) -> JSON? {
            switch part["type"]?.stringValue {
            case "text":
                let text = part["text"]?.stringValue ?? ""
                return text.isEmpty ? nil : ["text": .string(text)]
            case "image_url":
                return try imagePart(part["image_url"]?["url"]?.stringValue ?? "", param: "\(param).image_url.url")
            case "input_audio":
                return try audioPart(part["input_audio"], param: "\(param).input_audio")
            case "file":
                return try filePart(part["file"], param: "\(param).file")
            default:
                throw .invalidRequest(
                    "Invalid '\(param).type': user messages may contain 'text', 'image_url', 'input_audio' and 'file' parts.",
                    param: "\(param).type", code: "invalid_value")
            }
        }

        private static func imagePart(_ url: String, param: String) throws(GatewayError) -> JSON {
            if url.hasPrefix("data:") {
                return try inlineData(dataURL: url, param: param)
            }
            let lowered = url.lowercased()
            guard lowered.hasPrefix("https://") || lowered.hasPrefix("http://") else {
                throw .invalidRequest(
                    "Invalid '\(param)': expected an http(s) URL or a base64 data URL.", param: param,
                    code: "invalid_value")
            }
            var fileData: [String: JSON] = ["fileUri": .string(url)]
            // Only a known extension names the type; otherwise Gemini reads it from the fetched file.
            if let mimeType = imageMimeType(url: url) { fileData["mimeType"] = .string(mimeType) }
            return ["fileData": .object(fileData)]
        }

        /// The image type an URL's extension names, nil when it names none.
        static func imageMimeType(url: String) -> String? {
            let path = url.split(separator: "?", maxSplits: 1).first.map { $0.split(separator: "#").first ?? $0 } ?? ""
            guard let last = path.split(separator: "/").last, let dot = last.lastIndex(of: ".") else { return nil }
            switch last[last.index(after: dot)...].lowercased() {
            case "jpg", "jpeg": return "image/jpeg"
            case "png": return "image/png"
            case "webp": return "image/webp"
            case "gif": return "image/gif"
            case "heic": return "image/heic"
            case "heif": return "image/heif"
            default: return nil
            }
        }

        /// `data:<mime>;base64,<data>` -> `inlineData`.
        private static func inlineData(dataURL: String, param: String) throws(GatewayError) -> JSON {
            let rest = dataURL.dropFirst("data:".count)
            guard let comma = rest.firstIndex(of: ","), rest[..<comma].hasSuffix(";base64") else {
                throw .invalidRequest(
                    "Invalid '\(param)': expected a data URL of the form 'data:<mime type>;base64,<data>'.",
                    param: param,
                    code: "invalid_value")
            }
            let mimeType = rest[..<comma].dropLast(";base64".count)
            let data = rest[rest.index(after: comma)...]
            guard !mimeType.isEmpty, !data.isEmpty else {
                throw .invalidRequest(
                    "Invalid '\(param)': the data URL needs a mime type and data.", param: param, code: "invalid_value")
            }
            return ["inlineData": ["mimeType": .string(String(mimeType)), "data": .string(String(data))]]
        }

        private static func audioPart(_ audio: JSON?, param: String) throws(GatewayError) -> JSON {
            guard let data = audio?["data"]?.stringValue, !data.isEmpty else {
                throw .invalidRequest(
                    "Missing required parameter: '\(param).data'.", param: "\(param).data",
                    code: "missing_required_parameter")
            }
            let mimeType: String
            switch audio?["format"]?.stringValue {
            case "wav": mimeType = "audio/wav"
            case "mp3": mimeType = "audio/mp3"
            default:
                throw .invalidRequest(
                    "Invalid '\(param).format'. Supported values are: 'wav' and 'mp3'.", param: "\(param).format",
                    code: "invalid_value")
            }
            return ["inlineData": ["mimeType": .string(mimeType), "data": .string(data)]]
        }

        /// Inline file data (`file_data` as a data URL, e.g. a PDF) maps to `inlineData`; OpenAI file ids mean nothing to Gemini.
        private static func filePart(_ file: JSON?, param: String) throws(GatewayError) -> JSON {
            guard let data = file?["file_data"]?.stringValue, data.hasPrefix("data:") else {
                throw .invalidRequest(
                    "Invalid '\(param)': Gemini accepts files only as 'file_data' data URLs ('data:<mime type>;base64,<data>'); OpenAI file ids are not available.",
                    param: param, code: "unsupported_parameter")
            }
            return try inlineData(dataURL: data, param: "\(param).file_data")
        }

        // MARK: Tool results

        /// A tool result as `functionResponse`: a JSON object result as is, anything else as `{"content": text}`.
        private static func functionResponse(name: String, content: JSON, param: String) throws(GatewayError) -> JSON {
            let text: String
            switch content {
            case .string(let value):
                text = value
            case .array(let parts):
                text = parts.compactMap { $0["type"]?.stringValue == "text" ? $0["text"]?.stringValue : nil }.joined()
            default:
                text = ""
            }
            var response: JSON = ["content": .string(text)]
            if let parsed = try? JSON.parse(text), parsed.objectValue != nil { response = parsed }
            return ["functionResponse": ["name": .string(name), "response": response]]
        }
    }
}
