import Hummingbird
import HTTPTypes
import NIOCore

/// OpenAI's Responses API (`POST /v1/responses`) over the canonical Chat Completions request and answers.
///
/// Requests become a `ChatRequest`: `instructions` a leading system message, `input` items messages (consecutive
/// `function_call` items one assistant message with `tool_calls`, `function_call_output` items tool messages),
/// flat function tools chat's nested ones, `text.format` `response_format`, `max_output_tokens`
/// `max_completion_tokens`, `reasoning.effort` `reasoning_effort`. Only function tools can be used: a hosted tool
/// (`web_search`, `file_search`, ...) is a 400, never dropped. `store`, `previous_response_id` (and `metadata`) are
/// the gateway's, not the model's (`extras(of:)`): `prepare` follows the previous response and arranges for this one to
/// be kept (`StoredResponses`); `background`, `conversation` and `prompt` are refused.
///
/// ```swift
/// let dialect = OpenAIResponsesDialect()
/// let chat = try dialect.decode(body, headers: headers)
/// let answer = dialect.encodeResponse(completionText, request: chat, responseID: "resp_1", costUSD: nil, latencyMs: 80)
/// ```
public struct OpenAIResponsesDialect: ClientDialect {
    /// Where responses asked to be kept go, and `previous_response_id` is looked up; nil when the request log is off.
    let stored: StoredResponses?

    /// - Parameter stored: the kept responses (the request log's database); nil keeps none.
    public init(stored: StoredResponses? = nil) {
        self.stored = stored
    }

    /// The canonical request, carrying its response id and extras (`ChatRequest.responses`) for the encoders.
    ///
    /// The response says `store: false` until `prepare` arranges for it to be kept.
    /// - Throws: `GatewayError` (400).
    public func decode(_ body: ByteBuffer, headers: HTTPFields) throws(GatewayError) -> ChatRequest {
        let json = try ChatRequest.parseBody(body.readableBytesView)
        var request = try decode(json: json)
        var extras = try Self.extras(of: json)
        extras.store = false
        let object = json.objectValue ?? [:]
        request.responses = ResponsesContext(id: Self.makeResponseID(), extras: extras, body: object, input: Self.inputItems(of: json["input"]))
        request.native = Self.nativeRequest(body: Array(body.readableBytesView), object: object)
        return request
    }

    /// Follows `previous_response_id` (the previous conversation goes before this request's input) and, when the
    /// request asks for it (`store`, true by default), arranges for the response to be kept for its key.
    /// - Throws: `GatewayError`: 404 `previous_response_not_found` for a response that is not there for this key (or
    ///   expired; OpenAI says 400 with the same code), 400 when the gateway keeps no responses (`request_log.backend: off`), 503 when the database cannot
    ///   be asked.
    public func prepare(_ request: ChatRequest, key: KeyConfig, context requestContext: GatewayRequestContext) async throws -> ChatRequest {
        guard var context = request.responses else { return request }
        let asked = (try? Self.extras(of: .object(context.body)).store) ?? true
        var chat = request
        var conversation = context.input
        if let previousID = context.extras.previousResponseID {
            guard let stored else {
                throw GatewayError.invalidRequest(
                    "This gateway keeps no responses (its request log is off), so 'previous_response_id' cannot be followed: send the whole conversation in 'input'.",
                    param: "previous_response_id", code: "unsupported_parameter")
            }
            let previous: StoredResponse?
            do {
                previous = try await stored.find(id: previousID, keyName: key.name)
            } catch {
                throw GatewayError.unavailable("The previous response cannot be read now: the request log's database is unavailable. Try again later.")
            }
            guard let previous else {
                throw GatewayError.notFound(
                    "Previous response with id '\(Self.printable(previousID))' not found.", param: "previous_response_id",
                    code: "previous_response_not_found")
            }
            conversation = previous.conversationItems() + context.input
            var body = context.body
            body["input"] = .array(conversation)
            body["previous_response_id"] = nil
            chat = try decode(json: .object(body))
            // OpenAI gets the whole conversation too: the previous response is the gateway's, not OpenAI's.
            chat.native = Self.nativeRequest(body: Array(JSON.object(body).serialized().utf8), object: body)
        }
        if asked, let stored {
            context.extras.store = true
            context.keeper = stored.keeper(
                id: context.id, keyName: key.name, input: conversation,
                ttl: requestContext.snapshot?.config.requestLog.responsesTTL ?? RequestLogSettings().responsesTTL, outcome: requestContext.outcome)
        }
        chat.responses = context
        return chat
    }

    /// The canonical request of an already parsed Responses request body.
    /// - Throws: `GatewayError` (400) naming the Responses parameter at fault, e.g. `input[2].call_id`.
    public func decode(json: JSON) throws(GatewayError) -> ChatRequest {
        try ChatRequest(json: .object(Self.canonicalBody(of: json)))
    }

    /// The fields of a Responses request the canonical request does not carry: the caller keeps responses (or not)
    /// and threads conversations; the answer echoes them.
    /// - Throws: `GatewayError` (400) when one has the wrong type.
    public static func extras(of body: JSON) throws(GatewayError) -> ResponsesRequestExtras {
        guard let object = body.objectValue else {
            throw .invalidRequest("The request body must be a JSON object, not \(body.typeName).")
        }
        return try extras(of: RequestFields(object, at: ""))
    }

    /// The request as OpenAI's Responses API takes it, for a provider that serves it (`ProviderConfig.servesResponsesAPI`).
    static func nativeRequest(body: [UInt8], object: [String: JSON]) -> NativeRequest {
        NativeRequest(dialect: .openAIResponses, body: body, object: object, path: "/responses")
    }

    /// OpenAI's own answer under the request's response id (a cached or shared answer is a response of its own),
    /// `store` saying whether the gateway keeps it, with the gateway's `cost_usd` and `latency_ms`; kept when asked.
    public func encodeNativeAnswer(_ native: [UInt8], for request: ChatRequest, costUSD: Double?, latencyMs: Int) -> ByteBuffer? {
        var bytes = native
        if let context = request.responses {
            bytes = JSONSplice.replacingTopLevelValue(of: "id", in: bytes, with: .string(context.id))
            bytes = JSONSplice.replacingTopLevelValue(of: "store", in: bytes, with: .bool(context.extras.store))
            if let previous = context.extras.previousResponseID {
                bytes = JSONSplice.replacingTopLevelValue(of: "previous_response_id", in: bytes, with: .string(previous))
            }
            if let keeper = context.keeper, let object = try? JSON.parse(bytes) { keeper.keep(object) }
        }
        return OpenAIChatDialect.answerBody(bytes, cost: costUSD, latencyMs: latencyMs)
    }

    public func encodeNativeAnswer(_ native: [UInt8], costUSD: Double?, latencyMs: Int) -> ByteBuffer? {
        OpenAIChatDialect.answerBody(native, cost: costUSD, latencyMs: latencyMs)
    }

    /// A `response` object for a complete answer, with a fresh id and no request to echo (`encodeResponse` has one).
    public func encodeAnswer(_ completionText: [UInt8], costUSD: Double?, latencyMs: Int) -> ByteBuffer {
        Self.responseBody(
            completionText, echoing: [:], extras: ResponsesRequestExtras(), responseID: Self.makeResponseID(),
            costUSD: costUSD, latencyMs: latencyMs)
    }

    /// The `response` object of a complete answer, echoing the request's parameters as OpenAI does, with the
    /// gateway's `cost_usd` and `latency_ms`.
    /// - Parameters:
    ///   - completionText: the canonical `chat.completion` object's JSON text.
    ///   - request: the canonical request `decode` made.
    ///   - responseID: the `resp_…` id (the caller may keep the response under it).
    ///   - costUSD: what the answer cost (nil when the model has no price).
    ///   - latencyMs: milliseconds since the request arrived.
    ///   - extras: the request's `store`, `previous_response_id`, `instructions` and `metadata`, echoed.
    public func encodeResponse(
        _ completionText: [UInt8], request: ChatRequest, responseID: String, costUSD: Double?, latencyMs: Int,
        extras: ResponsesRequestExtras = ResponsesRequestExtras()
    ) -> ByteBuffer {
        Self.responseBody(
            completionText, echoing: request.body, extras: extras, responseID: responseID, costUSD: costUSD,
            latencyMs: latencyMs)
    }

    /// The answer for `request`, under the id and with the extras its decoding gave it.
    public func encodeAnswer(_ completionText: [UInt8], for request: ChatRequest, costUSD: Double?, latencyMs: Int) -> ByteBuffer {
        guard let context = request.responses else { return encodeAnswer(completionText, costUSD: costUSD, latencyMs: latencyMs) }
        return Self.responseBody(
            completionText, echoing: request.body, extras: context.extras, responseID: context.id, costUSD: costUSD,
            latencyMs: latencyMs, keeper: context.keeper)
    }

    public func makeFrameEncoder(for request: ChatRequest) -> Frames {
        guard let context = request.responses else { return Frames(request: request) }
        var frames = Frames(request: request, responseID: context.id, extras: context.extras)
        frames.keeper = context.keeper
        return frames
    }

    /// The encoder for one streamed answer under a known id, echoing `extras`.
    public func makeFrameEncoder(for request: ChatRequest, responseID: String, extras: ResponsesRequestExtras) -> Frames {
        Frames(request: request, responseID: responseID, extras: extras)
    }

    public func errorBody(_ error: GatewayError) -> ByteBuffer {
        ByteBuffer(string: error.envelope.serialized())
    }

    /// A fresh `resp_…` id.
    public static func makeResponseID() -> String { RandomID.make(prefix: "resp_", length: 32) }
}

/// A Responses request's id and extras, made once when it is decoded, for the answer or the stream that answers it.
public struct ResponsesContext: Sendable {
    /// The `resp_…` id of the response.
    public var id: String
    /// What the response echoes.
    public var extras: ResponsesRequestExtras
    /// The request body as the client sent it (followed again with the previous conversation's items).
    var body: [String: JSON] = [:]
    /// This request's `input` as items (a string is one user message).
    var input: [JSON] = []
    /// Keeps the complete response; nil when it is not to be kept.
    var keeper: ResponseKeeper?

    public init(id: String, extras: ResponsesRequestExtras) {
        self.id = id
        self.extras = extras
    }

    init(id: String, extras: ResponsesRequestExtras, body: [String: JSON], input: [JSON]) {
        self.id = id
        self.extras = extras
        self.body = body
        self.input = input
    }
}

/// What a Responses request asks of the caller rather than of the model.
public struct ResponsesRequestExtras: Sendable, Equatable {
    /// `store`: whether the response should be kept for `previous_response_id` (OpenAI's default is true).
    public var store: Bool
    /// `previous_response_id`: the response whose conversation this request continues.
    public var previousResponseID: String?
    /// `instructions`, echoed in the response (the canonical request has them as its first system message).
    public var instructions: String?
    /// `metadata`, echoed in the response; kept out of the canonical request, whose `metadata` is the gateway's.
    public var metadata: [String: JSON]

    public init(
        store: Bool = true, previousResponseID: String? = nil, instructions: String? = nil, metadata: [String: JSON] = [:]
    ) {
        self.store = store
        self.previousResponseID = previousResponseID
        self.instructions = instructions
        self.metadata = metadata
    }
}

// MARK: - Decoding the request

extension OpenAIResponsesDialect {
    /// Roles a message item may have.
    static let inputRoles: Set<String> = ["user", "assistant", "system", "developer"]

    /// The Chat Completions body of a Responses body.
    static func canonicalBody(of json: JSON) throws(GatewayError) -> [String: JSON] {
        guard let object = json.objectValue else {
            throw .invalidRequest("The request body must be a JSON object, not \(json.typeName).")
        }
        let request = RequestFields(object, at: "")
        try refuseUnsupportedFeatures(request)
        let extras = try extras(of: request)
        var chat: [String: JSON] = [:]
        if let model = object["model"] { chat["model"] = model }
        chat["messages"] = .array(try messages(instructions: extras.instructions, request: request))
        try copySampling(request, into: &chat)
        try copyTools(request, into: &chat)
        try copyTextFormat(request, into: &chat)
        if try request.bool("stream") == true {
            chat["stream"] = true
            // The stream's last event carries the usage, so the canonical stream must end with it.
            chat["stream_options"] = ["include_usage": true]
        }
        return chat
    }

    /// `input` as a list of items: a string is one user message.
    static func inputItems(of input: JSON?) -> [JSON] {
        switch input {
        case .string(let text)?: [["type": "message", "role": "user", "content": .string(text)]]
        case .array(let items)?: items
        default: []
        }
    }

    private static func extras(of request: RequestFields) throws(GatewayError) -> ResponsesRequestExtras {
        ResponsesRequestExtras(
            store: try request.bool("store") ?? true, previousResponseID: try request.string("previous_response_id"),
            instructions: try request.string("instructions"), metadata: try request.object("metadata") ?? [:])
    }

    /// Features that need state the gateway does not keep.
    private static func refuseUnsupportedFeatures(_ request: RequestFields) throws(GatewayError) {
        if try request.bool("background") == true {
            throw .invalidRequest(
                "Background responses are not supported by this gateway: send the request without 'background'.",
                param: "background", code: "unsupported_value")
        }
        let statefulParameters = [
            "conversation": "send the whole conversation in 'input'", "prompt": "send the prompt's text in 'instructions'",
        ]
        for (name, instead) in statefulParameters where request.value(name) != nil {
            throw .invalidRequest(
                "The '\(name)' parameter is not supported by this gateway: \(instead).", param: name,
                code: "unsupported_parameter")
        }
        if let truncation = try request.string("truncation"), truncation != "auto", truncation != "disabled" {
            throw .invalidRequest(
                "Invalid value for 'truncation'. Supported values are: 'auto' and 'disabled'.", param: "truncation",
                code: "invalid_value")
        }
        // `include` asks for output the gateway never has (encrypted reasoning, search results): its type is checked.
        _ = try request.array("include")
    }

    private static func messages(instructions: String?, request: RequestFields) throws(GatewayError) -> [JSON] {
        var messages = InputMessages()
        if let instructions { messages.list.append(["role": "system", "content": .string(instructions)]) }
        guard let input = request.value("input") else { throw .missingParameter("input") }
        switch input {
        case .string:
            messages.list.append(["role": "user", "content": input])
        case .array(let items):
            guard !items.isEmpty else {
                throw .invalidRequest(
                    "Invalid 'input': empty array. Expected an array with minimum length 1.", param: "input",
                    code: "empty_array")
            }
            for (index, item) in items.enumerated() { try messages.add(item, at: "input[\(index)]") }
        default:
            throw .wrongType("input", expected: "a string or an array of input items", got: input)
        }
        guard messages.list.contains(where: { $0["role"] != "system" }) else {
            throw .invalidRequest(
                "Invalid 'input': it has no message or function call output for the model to answer.", param: "input",
                code: "invalid_value")
        }
        return messages.list.map(JSON.object)
    }

    /// `temperature`, `top_p`, `user` and the other parameters chat has under the same name; `max_output_tokens`
    /// and `reasoning.effort` under chat's names. `metadata` stays out: it is the caller's (`extras(of:)`).
    private static func copySampling(_ request: RequestFields, into chat: inout [String: JSON]) throws(GatewayError) {
        for name in ["temperature", "top_p"] {
            guard let value = request.value(name) else { continue }
            guard value.doubleValue != nil else { throw .wrongType(name, expected: "a number", got: value) }
            chat[name] = value
        }
        for name in ["user", "service_tier", "safety_identifier", "prompt_cache_key"] {
            if let value = try request.string(name) { chat[name] = .string(value) }
        }
        if let limit = try request.integer("max_output_tokens") {
            guard limit >= 1 else {
                throw .invalidRequest(
                    "Invalid 'max_output_tokens': \(limit). Expected a value >= 1.", param: "max_output_tokens",
                    code: "invalid_value")
            }
            chat["max_completion_tokens"] = .int(Int64(limit))
        }
        if let reasoning = try request.object("reasoning"),
            let effort = try RequestFields(reasoning, at: "reasoning").string("effort")
        {
            chat["reasoning_effort"] = .string(effort)
        }
    }

    /// Function tools in chat's nested form; `tool_choice` and `parallel_tool_calls` only beside tools, as chat
    /// refuses them alone.
    private static func copyTools(_ request: RequestFields, into chat: inout [String: JSON]) throws(GatewayError) {
        var tools: [JSON] = []
        for (index, tool) in (try request.array("tools") ?? []).enumerated() {
            tools.append(try functionTool(tool, at: "tools[\(index)]"))
        }
        var choice: JSON?
        if let value = request.value("tool_choice") { choice = try toolChoice(value) }
        let parallel = try request.bool("parallel_tool_calls")
        guard !tools.isEmpty else { return }
        chat["tools"] = .array(tools)
        chat["tool_choice"] = choice
        chat["parallel_tool_calls"] = parallel.map(JSON.bool)
    }

    private static func functionTool(_ tool: JSON, at param: String) throws(GatewayError) -> JSON {
        guard let object = tool.objectValue else { throw .wrongType(param, expected: "an object", got: tool) }
        let fields = RequestFields(object, at: param)
        let type = try fields.requiredString("type")
        guard type == "function" else {
            throw .invalidRequest(
                "The '\(printable(type))' tool (\(param)) is not supported by this gateway: only 'function' tools can be used.",
                param: "tools", code: "unsupported_tool")
        }
        var function: [String: JSON] = ["name": .string(try fields.requiredString("name"))]
        if let description = try fields.string("description") { function["description"] = .string(description) }
        if let parameters = try fields.object("parameters") { function["parameters"] = .object(parameters) }
        if let strict = try fields.bool("strict") { function["strict"] = .bool(strict) }
        return ["type": "function", "function": .object(function)]
    }

    private static func toolChoice(_ value: JSON) throws(GatewayError) -> JSON {
        switch value {
        case .string(let mode):
            guard ["auto", "none", "required"].contains(mode) else {
                throw .invalidRequest(
                    "Invalid value for 'tool_choice'. Supported values are: 'auto', 'none' and 'required'.",
                    param: "tool_choice", code: "invalid_value")
            }
            return value
        case .object(let object):
            let fields = RequestFields(object, at: "tool_choice")
            let type = try fields.requiredString("type")
            guard type == "function" else {
                throw .invalidRequest(
                    "A 'tool_choice' of type '\(printable(type))' is not supported by this gateway: use 'auto', 'none', "
                        + "'required' or {\"type\": \"function\", \"name\": ...}.",
                    param: "tool_choice", code: "unsupported_value")
            }
            return ["type": "function", "function": ["name": .string(try fields.requiredString("name"))]]
        default:
            throw .wrongType("tool_choice", expected: "a string or an object", got: value)
        }
    }

    /// `text.format` as `response_format`, `text.verbosity` as `verbosity`.
    private static func copyTextFormat(_ request: RequestFields, into chat: inout [String: JSON]) throws(GatewayError) {
        guard let text = try request.object("text") else { return }
        let fields = RequestFields(text, at: "text")
        if let verbosity = try fields.string("verbosity") { chat["verbosity"] = .string(verbosity) }
        guard let format = try fields.object("format") else { return }
        chat["response_format"] = try responseFormat(RequestFields(format, at: "text.format"))
    }

    private static func responseFormat(_ format: RequestFields) throws(GatewayError) -> JSON {
        let type = try format.requiredString("type")
        switch type {
        case "text", "json_object":
            return ["type": .string(type)]
        case "json_schema":
            var schema: [String: JSON] = ["name": .string(try format.requiredString("name"))]
            guard let body = try format.object("schema") else { throw .missingParameter(format.param("schema")) }
            schema["schema"] = .object(body)
            if let description = try format.string("description") { schema["description"] = .string(description) }
            if let strict = try format.bool("strict") { schema["strict"] = .bool(strict) }
            return ["type": "json_schema", "json_schema": .object(schema)]
        default:
            throw .invalidRequest(
                "Invalid value for 'text.format.type'. Supported values are: 'text', 'json_object' and 'json_schema'.",
                param: format.param("type"), code: "invalid_value")
        }
    }

    /// `text` when it is short and has no control characters, so a client's value can go into an error message.
    static func printable(_ text: String) -> String {
        text.utf8.count <= 64 && ChatRequest.isPlausibleModelName(text) ? text : "(unrecognised)"
    }
}

// MARK: - Input items

/// The chat messages of a Responses `input` array, built item by item.
private struct InputMessages {
    var list: [[String: JSON]] = []

    mutating func add(_ item: JSON, at param: String) throws(GatewayError) {
        guard let object = item.objectValue else { throw .wrongType(param, expected: "an object", got: item) }
        let fields = RequestFields(object, at: param)
        switch try fields.string("type") ?? "message" {
        case "message":
            list.append(try Self.message(fields))
        case "function_call":
            appendToolCall(try Self.toolCall(fields))
        case "function_call_output":
            list.append(try Self.toolResult(fields))
        case "reasoning":
            // Another model's reasoning, handed back from an earlier response: chat has nowhere to put it, and the
            // answer does not depend on it.
            break
        case let type:
            throw .invalidRequest(
                "Input items of type '\(OpenAIResponsesDialect.printable(type))' are not supported by this gateway. "
                    + "Supported types are: 'message', 'function_call', 'function_call_output' and 'reasoning'.",
                param: fields.param("type"), code: "unsupported_value")
        }
    }

    /// Adds a tool call to the assistant message just before (the text or calls of the same turn), else to a new one.
    mutating func appendToolCall(_ call: JSON) {
        if let last = list.indices.last, list[last]["role"] == "assistant" {
            list[last]["tool_calls"] = .array((list[last]["tool_calls"]?.arrayValue ?? []) + [call])
        } else {
            list.append(["role": "assistant", "content": .null, "tool_calls": [call]])
        }
    }

    static func message(_ fields: RequestFields) throws(GatewayError) -> [String: JSON] {
        let role = try fields.requiredString("role")
        guard OpenAIResponsesDialect.inputRoles.contains(role) else {
            throw .invalidRequest(
                "Invalid value for '\(fields.param("role"))'. Supported values are: 'user', 'assistant', 'system' and 'developer'.",
                param: fields.param("role"), code: "invalid_value")
        }
        guard let content = fields.value("content") else { throw .missingParameter(fields.param("content")) }
        return ["role": .string(role), "content": try Self.content(content, at: fields.param("content"))]
    }

    static func toolCall(_ fields: RequestFields) throws(GatewayError) -> JSON {
        let callID = try fields.requiredString("call_id")
        let name = try fields.requiredString("name")
        let arguments = try fields.requiredString("arguments")
        return ["id": .string(callID), "type": "function", "function": ["name": .string(name), "arguments": .string(arguments)]]
    }

    static func toolResult(_ fields: RequestFields) throws(GatewayError) -> [String: JSON] {
        let callID = try fields.requiredString("call_id")
        guard let output = fields.value("output") else { throw .missingParameter(fields.param("output")) }
        return ["role": "tool", "tool_call_id": .string(callID), "content": try content(output, at: fields.param("output"))]
    }

    /// A string as it is; an array of content parts in chat's part types.
    static func content(_ content: JSON, at param: String) throws(GatewayError) -> JSON {
        switch content {
        case .string:
            return content
        case .array(let parts):
            var converted: [JSON] = []
            for (index, part) in parts.enumerated() { converted.append(try Self.part(part, at: "\(param)[\(index)]")) }
            return .array(converted)
        default:
            throw .wrongType(param, expected: "a string or an array of content parts", got: content)
        }
    }

    static func part(_ value: JSON, at param: String) throws(GatewayError) -> JSON {
        guard let object = value.objectValue else { throw .wrongType(param, expected: "an object", got: value) }
        let part = RequestFields(object, at: param)
        let type = try part.requiredString("type")
        switch type {
        case "input_text", "output_text":
            return ["type": "text", "text": .string(try part.requiredString("text"))]
        case "refusal":
            return ["type": "refusal", "refusal": .string(try part.requiredString("refusal"))]
        case "input_image":
            return try image(part)
        case "input_file":
            return try file(part)
        case "input_audio":
            guard let audio = try part.object("input_audio") else { throw .missingParameter(part.param("input_audio")) }
            return ["type": "input_audio", "input_audio": .object(audio)]
        default:
            throw .invalidRequest(
                "Invalid value: '\(OpenAIResponsesDialect.printable(type))'. Supported values are: 'input_text', "
                    + "'output_text', 'refusal', 'input_image', 'input_file' and 'input_audio'.",
                param: part.param("type"), code: "invalid_value")
        }
    }

    static func image(_ part: RequestFields) throws(GatewayError) -> JSON {
        guard let url = try part.string("image_url") else {
            if try part.string("file_id") != nil {
                throw .invalidRequest(
                    "Images by 'file_id' are not supported by this gateway: send the image as 'image_url' (a URL or a data URL).",
                    param: part.param("file_id"), code: "unsupported_value")
            }
            throw .missingParameter(part.param("image_url"))
        }
        var image: [String: JSON] = ["url": .string(url)]
        if let detail = try part.string("detail") { image["detail"] = .string(detail) }
        return ["type": "image_url", "image_url": .object(image)]
    }

    static func file(_ part: RequestFields) throws(GatewayError) -> JSON {
        if try part.string("file_url") != nil {
            throw .invalidRequest(
                "Files by 'file_url' are not supported by this gateway: send the file as 'file_data' (a data URL).",
                param: part.param("file_url"), code: "unsupported_value")
        }
        var file: [String: JSON] = [:]
        for name in ["file_data", "file_id", "filename"] {
            if let value = try part.string(name) { file[name] = .string(value) }
        }
        guard file["file_data"] != nil || file["file_id"] != nil else { throw .missingParameter(part.param("file_data")) }
        return ["type": "file", "file": .object(file)]
    }
}

/// One object of a request and where it sits in the body, so each error names the parameter (`input[2].call_id`).
/// A member that is null counts as absent.
private struct RequestFields {
    let object: [String: JSON]
    let path: String

    init(_ object: [String: JSON], at path: String) {
        self.object = object
        self.path = path
    }

    func param(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    func value(_ name: String) -> JSON? {
        guard let value = object[name], !value.isNull else { return nil }
        return value
    }

    func string(_ name: String) throws(GatewayError) -> String? {
        guard let value = value(name) else { return nil }
        guard let text = value.stringValue else { throw .wrongType(param(name), expected: "a string", got: value) }
        return text
    }

    func requiredString(_ name: String) throws(GatewayError) -> String {
        guard let text = try string(name) else { throw .missingParameter(param(name)) }
        return text
    }

    func bool(_ name: String) throws(GatewayError) -> Bool? {
        guard let value = value(name) else { return nil }
        guard let flag = value.boolValue else { throw .wrongType(param(name), expected: "a boolean", got: value) }
        return flag
    }

    func integer(_ name: String) throws(GatewayError) -> Int? {
        guard let value = value(name) else { return nil }
        guard let number = value.intValue else { throw .wrongType(param(name), expected: "an integer", got: value) }
        return number
    }

    func object(_ name: String) throws(GatewayError) -> [String: JSON]? {
        guard let value = value(name) else { return nil }
        guard let members = value.objectValue else { throw .wrongType(param(name), expected: "an object", got: value) }
        return members
    }

    func array(_ name: String) throws(GatewayError) -> [JSON]? {
        guard let value = value(name) else { return nil }
        guard let elements = value.arrayValue else { throw .wrongType(param(name), expected: "an array", got: value) }
        return elements
    }
}

extension GatewayError {
    fileprivate static func missingParameter(_ param: String) -> GatewayError {
        .invalidRequest("Missing required parameter: '\(param)'.", param: param, code: "missing_required_parameter")
    }

    fileprivate static func wrongType(_ param: String, expected: String, got value: JSON) -> GatewayError {
        .invalidRequest(
            "Invalid type for '\(param)': expected \(expected), but got \(value.typeName).", param: param, code: "invalid_type")
    }
}

// MARK: - Encoding the response

extension OpenAIResponsesDialect {
    static func responseBody(
        _ completionText: [UInt8], echoing canonical: [String: JSON], extras: ResponsesRequestExtras, responseID: String,
        costUSD: Double?, latencyMs: Int, keeper: ResponseKeeper? = nil
    ) -> ByteBuffer {
        let completion = (try? JSON.parse(completionText)) ?? [:]
        let choice = completion["choices"]?.arrayValue?.first ?? [:]
        let outcome = ResponseOutcome(finishReason: choice["finish_reason"]?.stringValue)
        var response = ResponseObject(
            id: responseID, createdAt: Int64(completion["created"]?.intValue ?? Int(UnixTime.now())),
            model: completion["model"]?.stringValue ?? canonical["model"]?.stringValue ?? "", status: outcome.status)
        response.incompleteReason = outcome.incompleteReason
        response.output = outputItems(of: choice["message"] ?? [:], status: outcome.itemStatus)
        response.usage = responsesUsage(completion["usage"])
        let object = response.json(echoing: canonical, extras: extras)
        keeper?.keep(object)
        let text = object.serialized()
        return OpenAIChatDialect.answerBody(Array(text.utf8), cost: costUSD, latencyMs: latencyMs)
    }

    /// A message item with the text and refusal, then a `function_call` item per tool call.
    static func outputItems(of message: JSON, status: String) -> [JSON] {
        let calls = message["tool_calls"]?.arrayValue ?? []
        var parts: [JSON] = []
        // An empty text beside tool calls is no part of the answer.
        if let text = message["content"]?.stringValue, !(text.isEmpty && !calls.isEmpty) {
            parts.append(OutputItem.textPart(text))
        }
        if let refusal = message["refusal"]?.stringValue { parts.append(OutputItem.refusalPart(refusal)) }
        var items: [JSON] = []
        if !parts.isEmpty { items.append(OutputItem.message(id: OutputItem.makeMessageID(), parts: parts, status: status)) }
        for call in calls {
            items.append(
                OutputItem.functionCall(
                    id: OutputItem.makeFunctionCallID(), callID: call["id"]?.stringValue ?? RandomID.make(prefix: "call_"),
                    name: call["function"]?["name"]?.stringValue ?? "",
                    arguments: call["function"]?["arguments"]?.stringValue ?? "", status: status))
        }
        return items
    }

    /// Chat's `usage` in the Responses names; null when there is none.
    static func responsesUsage(_ usage: JSON?) -> JSON {
        guard let usage, usage.objectValue != nil else { return .null }
        let input = Usage.count(usage["prompt_tokens"])
        let output = Usage.count(usage["completion_tokens"])
        let total = usage["total_tokens"] == nil ? input + output : Usage.count(usage["total_tokens"])
        return [
            "input_tokens": .int(Int64(input)),
            "input_tokens_details": ["cached_tokens": .int(Int64(Usage.count(usage["prompt_tokens_details"]?["cached_tokens"])))],
            "output_tokens": .int(Int64(output)),
            "output_tokens_details": [
                "reasoning_tokens": .int(Int64(Usage.count(usage["completion_tokens_details"]?["reasoning_tokens"])))
            ],
            "total_tokens": .int(Int64(total)),
        ]
    }
}

extension OpenAIResponsesDialect {
    /// The response's status from chat's finish reason: cut short by the token limit or a content filter is incomplete.
    struct ResponseOutcome {
        let status: String
        let incompleteReason: String?

        init(finishReason: String?) {
            switch finishReason {
            case FinishReason.length: incompleteReason = "max_output_tokens"
            case FinishReason.contentFilter: incompleteReason = "content_filter"
            default: incompleteReason = nil
            }
            status = incompleteReason == nil ? "completed" : "incomplete"
        }

        /// The status of the last output item.
        var itemStatus: String { status }
    }

    /// A Responses `response` object: its own members, then the request's parameters echoed as OpenAI echoes them.
    struct ResponseObject {
        var id: String
        var createdAt: Int64
        var model: String
        var status: String
        var incompleteReason: String?
        var output: [JSON] = []
        var usage: JSON = .null
        /// The gateway's price of a streamed answer, from the canonical usage chunk.
        var costUSD: JSON?

        init(id: String, createdAt: Int64, model: String, status: String) {
            self.id = id
            self.createdAt = createdAt
            self.model = model
            self.status = status
        }

        func json(echoing canonical: [String: JSON], extras: ResponsesRequestExtras) -> JSON {
            var object = Self.echoedParameters(of: canonical, extras: extras)
            object["id"] = .string(id)
            object["object"] = "response"
            object["created_at"] = .int(createdAt)
            object["status"] = .string(status)
            object["error"] = .null
            object["incomplete_details"] = incompleteReason.map { ["reason": .string($0)] } ?? .null
            object["model"] = .string(model)
            object["output"] = .array(output)
            object["usage"] = usage
            if let costUSD { object["cost_usd"] = costUSD }
            return .object(object)
        }

        /// The canonical request's parameters back in the Responses names, with OpenAI's defaults where it had none.
        static func echoedParameters(of canonical: [String: JSON], extras: ResponsesRequestExtras) -> [String: JSON] {
            var text: [String: JSON] = ["format": textFormat(canonical["response_format"])]
            if let verbosity = canonical["verbosity"] { text["verbosity"] = verbosity }
            return [
                "background": false,
                "instructions": extras.instructions.map(JSON.string) ?? .null,
                "max_output_tokens": canonical["max_completion_tokens"] ?? .null,
                "metadata": .object(extras.metadata),
                "parallel_tool_calls": canonical["parallel_tool_calls"] ?? true,
                "previous_response_id": extras.previousResponseID.map(JSON.string) ?? .null,
                "reasoning": ["effort": canonical["reasoning_effort"] ?? .null, "summary": .null],
                "store": .bool(extras.store),
                "temperature": canonical["temperature"] ?? 1.0,
                "text": .object(text),
                "tool_choice": toolChoice(canonical["tool_choice"]),
                "tools": .array((canonical["tools"]?.arrayValue ?? []).map(tool)),
                "top_p": canonical["top_p"] ?? 1.0,
                "truncation": "disabled",
                "user": canonical["user"] ?? .null,
            ]
        }

        static func tool(_ chatTool: JSON) -> JSON {
            let function = chatTool["function"] ?? [:]
            return [
                "type": "function", "name": function["name"] ?? "", "description": function["description"] ?? .null,
                "parameters": function["parameters"] ?? .null, "strict": function["strict"] ?? .null,
            ]
        }

        static func toolChoice(_ choice: JSON?) -> JSON {
            guard let choice, !choice.isNull else { return "auto" }
            if let name = choice["function"]?["name"] { return ["type": "function", "name": name] }
            return choice
        }

        static func textFormat(_ format: JSON?) -> JSON {
            guard let type = format?["type"]?.stringValue else { return ["type": "text"] }
            guard type == "json_schema", var schema = format?["json_schema"]?.objectValue else { return ["type": .string(type)] }
            schema["type"] = "json_schema"
            return .object(schema)
        }
    }

    /// The output items and content parts of a response, as both the answer and the stream write them.
    enum OutputItem {
        static func makeMessageID() -> String { RandomID.make(prefix: "msg_", length: 32) }
        static func makeFunctionCallID() -> String { RandomID.make(prefix: "fc_", length: 32) }

        static func message(id: String, parts: [JSON], status: String) -> JSON {
            ["type": "message", "id": .string(id), "status": .string(status), "role": "assistant", "content": .array(parts)]
        }

        static func functionCall(id: String, callID: String, name: String, arguments: String, status: String) -> JSON {
            [
                "type": "function_call", "id": .string(id), "call_id": .string(callID), "name": .string(name),
                "arguments": .string(arguments), "status": .string(status),
            ]
        }

        static func textPart(_ text: String) -> JSON {
            ["type": "output_text", "text": .string(text), "annotations": [], "logprobs": []]
        }

        static func refusalPart(_ refusal: String) -> JSON {
            ["type": "refusal", "refusal": .string(refusal)]
        }
    }
}

// MARK: - Streaming

extension OpenAIResponsesDialect {
    /// Writes canonical `chat.completion.chunk` payloads as the Responses API's server-sent events.
    ///
    /// Each event is `event: <type>` and `data: <object>`, the object with its `type` and a `sequence_number` one
    /// above the last. The first chunk opens the response (`response.created`, `response.in_progress`); text opens
    /// a message item and its content part, each tool call a `function_call` item; an item is done when the next one
    /// opens or the stream ends; the usage chunk ends the response with `response.completed` (or
    /// `response.incomplete` when the answer was cut short), carrying the whole response. `[DONE]` writes nothing:
    /// Responses streams have none.
    public struct Frames: StreamFrameEncoder {
        /// The `resp_…` id of the streamed response.
        public let responseID: String
        private let canonical: [String: JSON]
        private let extras: ResponsesRequestExtras
        private var model: String
        private var createdAt = UnixTime.now()
        private var nextSequenceNumber = 0
        private var phase = Phase.waiting
        private var items: [StreamedItem] = []
        /// The item (an index in `items`) still receiving deltas; every item before it is done.
        private var openItem: Int?
        /// Chat's tool call index to the item it opened.
        private var itemOfToolCall: [Int: Int] = [:]
        private var finishReason: String?
        /// Keeps the complete response when the stream ends well.
        var keeper: ResponseKeeper?

        private enum Phase { case waiting, streaming, ended }

        /// - Parameters:
        ///   - request: the canonical request, whose parameters the response objects echo.
        ///   - responseID: the response's id.
        ///   - extras: the request's `store`, `previous_response_id`, `instructions` and `metadata`, echoed.
        public init(
            request: ChatRequest, responseID: String = OpenAIResponsesDialect.makeResponseID(),
            extras: ResponsesRequestExtras = ResponsesRequestExtras()
        ) {
            self.responseID = responseID
            self.canonical = request.body
            self.extras = extras
            self.model = request.model
        }

        public mutating func frames(_ payloads: [String]) -> ByteBuffer {
            var buffer = ByteBuffer()
            for payload in payloads where phase != .ended {
                consume(payload, into: &buffer)
            }
            return buffer
        }

        /// OpenAI's own events, as they came; the final response is kept when asked. The events that carry the whole
        /// response say what the gateway did with it: `store` whether it keeps it, `previous_response_id` the one it
        /// followed (OpenAI got the conversation instead).
        public mutating func nativeFrames(_ events: [ServerSentEvent]) -> ByteBuffer {
            var buffer = ByteBuffer()
            for var event in events {
                let name = event.event ?? ""
                guard Self.responseEvents.contains(name), var data = try? JSON.parse(event.data), var response = data["response"] else {
                    event.write(to: &buffer)
                    continue
                }
                response["store"] = .bool(extras.store)
                if let previous = extras.previousResponseID { response["previous_response_id"] = .string(previous) }
                data["response"] = response
                event.data = data.serialized()
                event.write(to: &buffer)
                if name == "response.completed" || name == "response.incomplete" { keeper?.keep(response) }
            }
            return buffer
        }

        /// The events whose `response` is the whole response object.
        static let responseEvents: Set<String> = [
            "response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed",
        ]

        /// An `error` event; the stream writes nothing after it.
        public mutating func errorFrame(_ error: GatewayError) -> ByteBuffer {
            var buffer = ByteBuffer()
            guard phase != .ended else { return buffer }
            emit(
                "error",
                [
                    "code": error.code.map(JSON.string) ?? .null, "message": .string(error.message),
                    "param": error.param.map(JSON.string) ?? .null,
                ], into: &buffer)
            phase = .ended
            return buffer
        }

        // MARK: Chunks

        private mutating func consume(_ payload: String, into buffer: inout ByteBuffer) {
            guard payload != "[DONE]" else {
                // Only a stream without its usage chunk is still open here.
                finish(usage: nil, cost: nil, into: &buffer)
                return
            }
            guard let chunk = try? JSON.parse(payload), chunk.objectValue != nil else { return }
            if phase == .waiting { start(chunk, into: &buffer) }
            let choices = chunk["choices"]?.arrayValue ?? []
            // Responses has one output: the first choice's.
            if let choice = choices.first(where: { ($0["index"]?.intValue ?? 0) == 0 }) {
                consume(delta: choice["delta"] ?? [:], into: &buffer)
                if let reason = choice["finish_reason"]?.stringValue { finishReason = reason }
            }
            if choices.isEmpty, chunk["usage"]?.objectValue != nil {
                finish(usage: chunk["usage"], cost: chunk["cost_usd"], into: &buffer)
            }
        }

        private mutating func consume(delta: JSON, into buffer: inout ByteBuffer) {
            if let text = delta["content"]?.stringValue, !text.isEmpty { append(text, isRefusal: false, into: &buffer) }
            if let refusal = delta["refusal"]?.stringValue, !refusal.isEmpty { append(refusal, isRefusal: true, into: &buffer) }
            for call in delta["tool_calls"]?.arrayValue ?? [] { consume(toolCall: call, into: &buffer) }
        }

        private mutating func consume(toolCall call: JSON, into buffer: inout ByteBuffer) {
            let index = call["index"]?.intValue ?? 0
            let item: Int
            if let opened = itemOfToolCall[index] {
                item = opened
            } else {
                item = open(
                    StreamedItem(
                        functionCall: call["id"]?.stringValue ?? RandomID.make(prefix: "call_"),
                        name: call["function"]?["name"]?.stringValue ?? ""), into: &buffer)
                itemOfToolCall[index] = item
            }
            guard let fragment = call["function"]?["arguments"]?.stringValue, !fragment.isEmpty else { return }
            items[item].text += fragment
            // A fragment for a call already done (providers stream calls one after another) reaches only the final
            // response.
            guard openItem == item else { return }
            emit("response.function_call_arguments.delta", location(item, adding: ["delta": .string(fragment)]), into: &buffer)
        }

        /// Appends to the open message's last part when it is of the same kind, else opens a part (and a message).
        private mutating func append(_ text: String, isRefusal: Bool, into buffer: inout ByteBuffer) {
            var item = openItem ?? -1
            if item < 0 || items[item].isFunctionCall {
                item = open(StreamedItem(messageID: OutputItem.makeMessageID()), into: &buffer)
            }
            if items[item].parts.last?.isRefusal != isRefusal {
                if let last = items[item].parts.indices.last { closePart(last, of: item, into: &buffer) }
                items[item].parts.append(StreamedPart(isRefusal: isRefusal))
                let part = items[item].parts.count - 1
                emit(
                    "response.content_part.added",
                    location(item, part: part, adding: ["part": items[item].parts[part].json]), into: &buffer)
            }
            let part = items[item].parts.count - 1
            items[item].parts[part].text += text
            var fields = location(item, part: part, adding: ["delta": .string(text)])
            if !isRefusal { fields["logprobs"] = [] }
            emit(isRefusal ? "response.refusal.delta" : "response.output_text.delta", fields, into: &buffer)
        }

        // MARK: Items

        private mutating func open(_ item: StreamedItem, into buffer: inout ByteBuffer) -> Int {
            closeOpenItem(status: "completed", into: &buffer)
            items.append(item)
            let index = items.count - 1
            openItem = index
            emit("response.output_item.added", ["output_index": .int(Int64(index)), "item": item.json], into: &buffer)
            return index
        }

        private mutating func closeOpenItem(status: String, into buffer: inout ByteBuffer) {
            guard let item = openItem else { return }
            openItem = nil
            items[item].status = status
            if items[item].isFunctionCall {
                emit(
                    "response.function_call_arguments.done",
                    location(item, adding: ["arguments": .string(items[item].text)]), into: &buffer)
            } else if let last = items[item].parts.indices.last {
                closePart(last, of: item, into: &buffer)
            }
            emit("response.output_item.done", ["output_index": .int(Int64(item)), "item": items[item].json], into: &buffer)
        }

        private mutating func closePart(_ part: Int, of item: Int, into buffer: inout ByteBuffer) {
            let content = items[item].parts[part]
            if content.isRefusal {
                emit(
                    "response.refusal.done", location(item, part: part, adding: ["refusal": .string(content.text)]),
                    into: &buffer)
            } else {
                emit(
                    "response.output_text.done",
                    location(item, part: part, adding: ["text": .string(content.text), "logprobs": []]), into: &buffer)
            }
            emit("response.content_part.done", location(item, part: part, adding: ["part": content.json]), into: &buffer)
        }

        /// `fields` with `item_id`, `output_index` and, for a content part, `content_index`.
        private func location(_ item: Int, part: Int? = nil, adding fields: [String: JSON] = [:]) -> [String: JSON] {
            var fields = fields
            fields["item_id"] = .string(items[item].id)
            fields["output_index"] = .int(Int64(item))
            if let part { fields["content_index"] = .int(Int64(part)) }
            return fields
        }

        // MARK: The response

        private mutating func start(_ chunk: JSON?, into buffer: inout ByteBuffer) {
            phase = .streaming
            if let created = chunk?["created"]?.intValue { createdAt = Int64(created) }
            if let chunkModel = chunk?["model"]?.stringValue { model = chunkModel }
            let response = responseObject(status: "in_progress").json(echoing: canonical, extras: extras)
            emit("response.created", ["response": response], into: &buffer)
            emit("response.in_progress", ["response": response], into: &buffer)
        }

        private mutating func finish(usage: JSON?, cost: JSON?, into buffer: inout ByteBuffer) {
            guard phase != .ended else { return }
            if phase == .waiting { start(nil, into: &buffer) }
            let outcome = ResponseOutcome(finishReason: finishReason)
            closeOpenItem(status: outcome.itemStatus, into: &buffer)
            var response = responseObject(status: outcome.status)
            response.incompleteReason = outcome.incompleteReason
            response.output = items.map(\.json)
            response.usage = OpenAIResponsesDialect.responsesUsage(usage)
            response.costUSD = cost
            let object = response.json(echoing: canonical, extras: extras)
            keeper?.keep(object)
            emit("response." + outcome.status, ["response": object], into: &buffer)
            phase = .ended
        }

        private func responseObject(status: String) -> ResponseObject {
            ResponseObject(id: responseID, createdAt: createdAt, model: model, status: status)
        }

        /// Writes one event, numbered.
        private mutating func emit(_ type: String, _ fields: [String: JSON], into buffer: inout ByteBuffer) {
            var object = fields
            object["type"] = .string(type)
            object["sequence_number"] = .int(Int64(nextSequenceNumber))
            nextSequenceNumber += 1
            ServerSentEvent(event: type, data: JSON.object(object).serialized()).write(to: &buffer)
        }
    }

    /// One output item of a stream: a message with its content parts, or a function call with its arguments so far.
    struct StreamedItem: Sendable {
        let id: String
        let isFunctionCall: Bool
        var status = "in_progress"
        /// A message's content parts.
        var parts: [StreamedPart] = []
        /// A function call's `call_id` and `name`.
        var callID = ""
        var name = ""
        /// A function call's arguments.
        var text = ""

        init(messageID: String) {
            id = messageID
            isFunctionCall = false
        }

        init(functionCall callID: String, name: String) {
            id = OutputItem.makeFunctionCallID()
            isFunctionCall = true
            self.callID = callID
            self.name = name
        }

        var json: JSON {
            isFunctionCall
                ? OutputItem.functionCall(id: id, callID: callID, name: name, arguments: text, status: status)
                : OutputItem.message(id: id, parts: parts.map(\.json), status: status)
        }
    }

    /// One content part of a streamed message: text or a refusal.
    struct StreamedPart: Sendable {
        let isRefusal: Bool
        var text = ""

        var json: JSON { isRefusal ? OutputItem.refusalPart(text) : OutputItem.textPart(text) }
    }
}
