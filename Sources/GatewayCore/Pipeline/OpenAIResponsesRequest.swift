import Hummingbird
import HTTPTypes
import NIOCore

// MARK: - Decoding the request

extension OpenAIResponsesDialect {
    /// Roles a message item may have.
    static let inputRoles: Set<String> = ["user", "assistant", "system", "developer"]

    /// The Chat Completions body of a Responses body.
    static func canonicalBody(of json: JSON) throws(GatewayError) -> [String: JSON] {
        guard let object = json.objectValue else {
            throw .invalidRequest("The request body must be a JSON object, not \(json.typeName).")
        }
        let request = ResponsesRequestFields(object, at: "")
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

    static func extras(of request: ResponsesRequestFields) throws(GatewayError) -> ResponsesRequestExtras {
        ResponsesRequestExtras(
            store: try request.bool("store") ?? true, previousResponseID: try request.string("previous_response_id"),
            instructions: try request.string("instructions"), metadata: try request.object("metadata") ?? [:])
    }

    /// Features that need state the gateway does not keep.
    private static func refuseUnsupportedFeatures(_ request: ResponsesRequestFields) throws(GatewayError) {
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

    private static func messages(instructions: String?, request: ResponsesRequestFields) throws(GatewayError) -> [JSON] {
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
    private static func copySampling(_ request: ResponsesRequestFields, into chat: inout [String: JSON]) throws(GatewayError) {
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
            let effort = try ResponsesRequestFields(reasoning, at: "reasoning").string("effort")
        {
            chat["reasoning_effort"] = .string(effort)
        }
    }

    /// Function tools in chat's nested form; `tool_choice` and `parallel_tool_calls` only beside tools, as chat
    /// refuses them alone.
    private static func copyTools(_ request: ResponsesRequestFields, into chat: inout [String: JSON]) throws(GatewayError) {
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
        let fields = ResponsesRequestFields(object, at: param)
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
            let fields = ResponsesRequestFields(object, at: "tool_choice")
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
    private static func copyTextFormat(_ request: ResponsesRequestFields, into chat: inout [String: JSON]) throws(GatewayError) {
        guard let text = try request.object("text") else { return }
        let fields = ResponsesRequestFields(text, at: "text")
        if let verbosity = try fields.string("verbosity") { chat["verbosity"] = .string(verbosity) }
        guard let format = try fields.object("format") else { return }
        chat["response_format"] = try responseFormat(ResponsesRequestFields(format, at: "text.format"))
    }

    private static func responseFormat(_ format: ResponsesRequestFields) throws(GatewayError) -> JSON {
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
        let fields = ResponsesRequestFields(object, at: param)
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

    static func message(_ fields: ResponsesRequestFields) throws(GatewayError) -> [String: JSON] {
        let role = try fields.requiredString("role")
        guard OpenAIResponsesDialect.inputRoles.contains(role) else {
            throw .invalidRequest(
                "Invalid value for '\(fields.param("role"))'. Supported values are: 'user', 'assistant', 'system' and 'developer'.",
                param: fields.param("role"), code: "invalid_value")
        }
        guard let content = fields.value("content") else { throw .missingParameter(fields.param("content")) }
        return ["role": .string(role), "content": try Self.content(content, at: fields.param("content"))]
    }

    static func toolCall(_ fields: ResponsesRequestFields) throws(GatewayError) -> JSON {
        let callID = try fields.requiredString("call_id")
        let name = try fields.requiredString("name")
        let arguments = try fields.requiredString("arguments")
        return ["id": .string(callID), "type": "function", "function": ["name": .string(name), "arguments": .string(arguments)]]
    }

    static func toolResult(_ fields: ResponsesRequestFields) throws(GatewayError) -> [String: JSON] {
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
        let part = ResponsesRequestFields(object, at: param)
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

    static func image(_ part: ResponsesRequestFields) throws(GatewayError) -> JSON {
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

    static func file(_ part: ResponsesRequestFields) throws(GatewayError) -> JSON {
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
struct ResponsesRequestFields {
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
