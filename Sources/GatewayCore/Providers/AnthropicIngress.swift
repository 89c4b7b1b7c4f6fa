/// Reads a client's Anthropic Messages request (`POST /v1/messages`) into the gateway's canonical request.
///
/// Validation follows Anthropic's: `model`, `max_tokens` and `messages` are required, roles are `user` and
/// `assistant`, content is a string or a list of typed blocks. What has a Chat Completions equivalent is translated
/// (text, images, PDF documents, tool use and results, tools, tool choice, stop sequences, `thinking` as a reasoning
/// effort, `metadata.user_id`); what has none is listed as untranslatable, so a provider of another API refuses the
/// request naming it. Two things are left out on purpose and documented: `cache_control` marks (other providers
/// cache prompts on their own) and earlier turns' `thinking` blocks (reasoning another provider cannot read back).
enum AnthropicIngress {
    /// The canonical request body and what it could not carry.
    struct Translation {
        var canonical: [String: JSON]
        var untranslatable: [(param: String, what: String)] = []
    }

    /// Validates `body` and translates it.
    /// - Parameter countingTokens: a `count_tokens` body, which has no `max_tokens`.
    /// - Throws: `GatewayError` (400) naming the field at fault, in Anthropic's words.
    static func translate(_ body: JSON, countingTokens: Bool = false) throws(GatewayError) -> Translation {
        guard let object = body.objectValue else {
            throw .invalidRequest("The request body must be a JSON object, not \(body.typeName).")
        }
        guard let model = object["model"]?.stringValue, !model.isEmpty else {
            throw .invalidRequest("model: Field required (a non-empty string).", param: "model", code: "missing_required_parameter")
        }
        var translation = Translation(canonical: ["model": .string(model)])
        if !countingTokens {
            guard let maxTokens = object["max_tokens"]?.intValue, maxTokens >= 1 else {
                throw .invalidRequest("max_tokens: Field required (an integer of at least 1).", param: "max_tokens", code: "missing_required_parameter")
            }
            translation.canonical["max_tokens"] = .int(Int64(maxTokens))
        }
        guard let messages = object["messages"]?.arrayValue, !messages.isEmpty else {
            throw .invalidRequest("messages: Field required (a non-empty list).", param: "messages", code: "missing_required_parameter")
        }
        var canonical: [JSON] = []
        if let system = object["system"], !system.isNull {
            let text = try systemText(system, translation: &translation)
            if !text.isEmpty { canonical.append(["role": "system", "content": .string(text)]) }
        }
        for (index, message) in messages.enumerated() {
            canonical += try translateMessage(message, index: index, translation: &translation)
        }
        translation.canonical["messages"] = .array(canonical)
        try translateParameters(object, into: &translation)
        return translation
    }

    // MARK: - System and messages

    private static func systemText(_ system: JSON, translation: inout Translation) throws(GatewayError) -> String {
        if let text = system.stringValue { return text }
        guard let blocks = system.arrayValue else {
            throw .invalidRequest("system: Input should be a string or a list of text blocks.", param: "system", code: "invalid_type")
        }
        var parts: [String] = []
        for (index, block) in blocks.enumerated() {
            guard block["type"]?.stringValue == "text", let text = block["text"]?.stringValue else {
                throw .invalidRequest("system.\(index): Input should be a text block.", param: "system.\(index)", code: "invalid_type")
            }
            parts.append(text)
        }
        return parts.joined(separator: "\n\n")
    }

    private static func translateMessage(_ message: JSON, index: Int, translation: inout Translation) throws(GatewayError) -> [JSON] {
        let path = "messages.\(index)"
        guard let role = message["role"]?.stringValue, role == "user" || role == "assistant" else {
            throw .invalidRequest("\(path).role: Input should be 'user' or 'assistant'.", param: "\(path).role", code: "invalid_value")
        }
        guard let content = message["content"] else {
            throw .invalidRequest("\(path).content: Field required.", param: "\(path).content", code: "missing_required_parameter")
        }
        if let text = content.stringValue { return [["role": .string(role), "content": .string(text)]] }
        guard let blocks = content.arrayValue else {
            throw .invalidRequest("\(path).content: Input should be a string or a list of blocks.", param: "\(path).content", code: "invalid_type")
        }
        return role == "user"
            ? try userTurn(blocks, path: path, translation: &translation)
            : try assistantTurn(blocks, path: path, translation: &translation)
    }

    /// Tool results first (Chat Completions wants them right after the assistant's calls), then the other parts.
    private static func userTurn(_ blocks: [JSON], path: String, translation: inout Translation) throws(GatewayError) -> [JSON] {
        var results: [JSON] = []
        var parts: [JSON] = []
        for (index, block) in blocks.enumerated() {
            let param = "\(path).content.\(index)"
            let type = try blockType(block, param: param)
            switch type {
            case "text":
                parts.append(["type": "text", "text": .string(try text(of: block, param: param))])
            case "image":
                if let part = imagePart(block["source"]) { parts.append(part) } else { translation.untranslatable.append((param, "an image of this source type")) }
            case "document":
                if let part = documentPart(block["source"]) { parts.append(part) } else { translation.untranslatable.append((param, "a document of this source type")) }
            case "tool_result":
                guard let id = block["tool_use_id"]?.stringValue else {
                    throw .invalidRequest("\(param).tool_use_id: Field required.", param: "\(param).tool_use_id", code: "missing_required_parameter")
                }
                var text = try toolResultText(block["content"], param: param, translation: &translation)
                if block["is_error"]?.boolValue == true { text = "Error: " + text }
                results.append(["role": "tool", "tool_call_id": .string(id), "content": .string(text)])
            default:
                translation.untranslatable.append((param, "a '\(type)' block"))
            }
        }
        var turns = results
        if !parts.isEmpty { turns.append(["role": "user", "content": .array(parts)]) }
        return turns
    }

    private static func assistantTurn(_ blocks: [JSON], path: String, translation: inout Translation) throws(GatewayError) -> [JSON] {
        var text = ""
        var calls: [JSON] = []
        for (index, block) in blocks.enumerated() {
            let param = "\(path).content.\(index)"
            let type = try blockType(block, param: param)
            switch type {
            case "text":
                text += try self.text(of: block, param: param)
            case "tool_use":
                guard let id = block["id"]?.stringValue, let name = block["name"]?.stringValue else {
                    throw .invalidRequest("\(param): a tool_use block needs 'id' and 'name'.", param: param, code: "missing_required_parameter")
                }
                let input = block["input"] ?? .object([:])
                calls.append(["id": .string(id), "type": "function", "function": ["name": .string(name), "arguments": .string(input.serialized())]])
            case "thinking", "redacted_thinking":
                continue  // an earlier turn's reasoning: only Anthropic can read it back
            default:
                translation.untranslatable.append((param, "a '\(type)' block"))
            }
        }
        var turn: [String: JSON] = ["role": "assistant", "content": text.isEmpty && !calls.isEmpty ? .null : .string(text)]
        if !calls.isEmpty { turn["tool_calls"] = .array(calls) }
        return [.object(turn)]
    }

    private static func blockType(_ block: JSON, param: String) throws(GatewayError) -> String {
        guard block.objectValue != nil, let type = block["type"]?.stringValue else {
            throw .invalidRequest("\(param): Input should be a block with a 'type'.", param: param, code: "invalid_type")
        }
        return type
    }

    private static func text(of block: JSON, param: String) throws(GatewayError) -> String {
        guard let text = block["text"]?.stringValue else {
            throw .invalidRequest("\(param).text: Field required (a string).", param: "\(param).text", code: "missing_required_parameter")
        }
        return text
    }

    private static func imagePart(_ source: JSON?) -> JSON? {
        switch source?["type"]?.stringValue {
        case "base64":
            guard let media = source?["media_type"]?.stringValue, let data = source?["data"]?.stringValue else { return nil }
            return ["type": "image_url", "image_url": ["url": .string("data:\(media);base64,\(data)")]]
        case "url":
            guard let url = source?["url"]?.stringValue else { return nil }
            return ["type": "image_url", "image_url": ["url": .string(url)]]
        default:
            return nil
        }
    }

    private static func documentPart(_ source: JSON?) -> JSON? {
        switch source?["type"]?.stringValue {
        case "base64" where source?["media_type"]?.stringValue == "application/pdf":
            guard let data = source?["data"]?.stringValue else { return nil }
            return ["type": "file", "file": ["filename": "document.pdf", "file_data": .string("data:application/pdf;base64,\(data)")]]
        case "text":
            guard let data = source?["data"]?.stringValue else { return nil }
            return ["type": "text", "text": .string(data)]
        default:
            return nil
        }
    }

    private static func toolResultText(_ content: JSON?, param: String, translation: inout Translation) throws(GatewayError) -> String {
        guard let content, !content.isNull else { return "" }
        if let text = content.stringValue { return text }
        guard let blocks = content.arrayValue else {
            throw .invalidRequest("\(param).content: Input should be a string or a list of blocks.", param: "\(param).content", code: "invalid_type")
        }
        var texts: [String] = []
        for (index, block) in blocks.enumerated() {
            if block["type"]?.stringValue == "text", let text = block["text"]?.stringValue {
                texts.append(text)
            } else {
                translation.untranslatable.append(("\(param).content.\(index)", "a tool result that is not text"))
            }
        }
        return texts.joined(separator: "\n")
    }

    // MARK: - Parameters

    private static func translateParameters(_ object: [String: JSON], into translation: inout Translation) throws(GatewayError) {
        for name in ["temperature", "top_p"] {
            if let value = object[name], !value.isNull { translation.canonical[name] = value }
        }
        if let stops = object["stop_sequences"]?.arrayValue, !stops.isEmpty { translation.canonical["stop"] = .array(stops) }
        if let stream = object["stream"], !stream.isNull {
            guard let flag = stream.boolValue else {
                throw .invalidRequest("stream: Input should be a valid boolean.", param: "stream", code: "invalid_type")
            }
            translation.canonical["stream"] = .bool(flag)
            if flag { translation.canonical["stream_options"] = ["include_usage": true] }
        }
        if let user = object["metadata"]?["user_id"]?.stringValue { translation.canonical["user"] = .string(user) }
        if let thinking = object["thinking"], thinking["type"]?.stringValue == "enabled" {
            let budget = thinking["budget_tokens"]?.intValue ?? 0
            translation.canonical["reasoning_effort"] = .string(budget < 4096 ? "low" : budget < 16384 ? "medium" : "high")
        }
        if let schema = object["output_format"]?["schema"] {
            translation.canonical["response_format"] = ["type": "json_schema", "json_schema": ["name": "output", "schema": schema, "strict": true]]
        }
        for name in ["top_k", "container", "mcp_servers", "context_management", "service_tier"] {
            if let value = object[name], !value.isNull { translation.untranslatable.append((name, "'\(name)'")) }
        }
        try translateTools(object, into: &translation)
    }

    private static func translateTools(_ object: [String: JSON], into translation: inout Translation) throws(GatewayError) {
        var functions: [JSON] = []
        if let tools = object["tools"]?.arrayValue {
            for (index, tool) in tools.enumerated() {
                let type = tool["type"]?.stringValue ?? "custom"
                guard type == "custom", let name = tool["name"]?.stringValue, let schema = tool["input_schema"] else {
                    translation.untranslatable.append(("tools.\(index)", "the server tool '\(tool["name"]?.stringValue ?? type)'"))
                    continue
                }
                var function: [String: JSON] = ["name": .string(name), "parameters": schema]
                if let description = tool["description"]?.stringValue { function["description"] = .string(description) }
                functions.append(["type": "function", "function": .object(function)])
            }
        }
        if !functions.isEmpty { translation.canonical["tools"] = .array(functions) }
        guard let choice = object["tool_choice"], !choice.isNull else { return }
        switch choice["type"]?.stringValue {
        case "auto": if !functions.isEmpty { translation.canonical["tool_choice"] = "auto" }
        case "any": translation.canonical["tool_choice"] = "required"
        case "none": if !functions.isEmpty { translation.canonical["tool_choice"] = "none" }
        case "tool":
            guard let name = choice["name"]?.stringValue else {
                throw .invalidRequest("tool_choice.name: Field required.", param: "tool_choice.name", code: "missing_required_parameter")
            }
            translation.canonical["tool_choice"] = ["type": "function", "function": ["name": .string(name)]]
        default:
            throw .invalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'.", param: "tool_choice.type", code: "invalid_value")
        }
        if choice["disable_parallel_tool_use"]?.boolValue == true, !functions.isEmpty { translation.canonical["parallel_tool_calls"] = false }
    }
}
