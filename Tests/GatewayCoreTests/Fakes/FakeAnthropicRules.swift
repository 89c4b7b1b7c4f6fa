@testable import GatewayCore

/// What a fake Anthropic Messages API accepts and answers: it refuses what the real API refuses,
/// with the real status and error type, and answers accepted requests deterministically.
///
/// `thinking` (enabled, a budget of 1,024 or more below `max_tokens`) adds a thinking block signed with
/// `signature(of:)`; an earlier turn's thinking block whose signature is not that is refused, as the real API
/// refuses a block changed on its way back. `POST /v1/messages/count_tokens` answers `input_tokens`.
///
/// Models with special behaviour: `status-NNN` answers that status; `stream-truncate` stops a stream
/// after the first text delta; `stream-error` sends an `overloaded_error` event after `message_start`.
enum FakeAnthropicRules {
    /// Top-level fields the real API knows; anything else is "Extra inputs are not permitted".
    static let knownFields: Set<String> = [
        "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p",
        "top_k", "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers", "output_config",
        "context_management",
    ]

    /// nil when the real API would accept the request; else the status and Anthropic-style error body.
    static func check(method: String, path: String, headers: [String: String], body: [UInt8], expectedKey: String)
        -> (status: Int, body: JSON)?
    {
        let route = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        guard method == "POST", route == "/v1/messages" || route == countTokensPath else { return failure(404, "Not found") }
        guard let key = headers["x-api-key"], !key.isEmpty else {
            return failure(401, "x-api-key header is required")
        }
        guard key == expectedKey else { return failure(401, "invalid x-api-key") }
        guard let version = headers["anthropic-version"], !version.isEmpty else {
            return failure(400, "anthropic-version: header is required")
        }
        guard let request = try? JSON.parse(body) else {
            return failure(400, "There was an issue with your request body. It must be valid JSON.")
        }
        if let problem = problem(in: request, counting: route == countTokensPath) { return failure(400, problem) }
        if let model = request["model"]?.stringValue, model.hasPrefix("status-"),
            let status = Int(model.dropFirst("status-".count)), status >= 400
        {
            return failure(status, "Fake failure for model \(model).")
        }
        return nil
    }

    static let countTokensPath = "/v1/messages/count_tokens"

    /// The count for an accepted `count_tokens` request.
    static func tokenCount(for request: JSON) -> JSON {
        ["input_tokens": .int(Int64(Answer(request).inputTokens))]
    }

    /// The signature the fake gives a thinking text, and checks when the block comes back.
    static func signature(of thinking: String) -> String {
        "sig-" + KeyHash.sha256Hex(thinking)
    }

    /// A successful non-streamed answer for an accepted request.
    static func response(for request: JSON) -> JSON {
        let answer = Answer(request)
        return [
            "id": .string(answer.messageID), "type": "message", "role": "assistant",
            "model": request["model"] ?? "", "content": .array(answer.blocks),
            "stop_reason": .string(answer.stopReason), "stop_sequence": .null,
            "usage": answer.usage(output: answer.outputTokens),
        ]
    }

    /// The SSE events of a streamed answer for an accepted request, in order.
    static func streamEvents(for request: JSON) -> [ServerSentEvent] {
        let answer = Answer(request)
        let model = request["model"]?.stringValue ?? ""
        var events: [ServerSentEvent] = [
            event(
                "message_start",
                [
                    "message": [
                        "id": .string(answer.messageID), "type": "message", "role": "assistant", "model": .string(model),
                        "content": [], "stop_reason": .null, "stop_sequence": .null, "usage": answer.usage(output: 1),
                    ]
                ])
        ]
        if model == "stream-error" {
            events.append(event("error", ["error": ["type": "overloaded_error", "message": "Overloaded"]]))
            return events
        }
        var index: Int64 = 0
        if let thinking = answer.thinking {
            events.append(event("content_block_start", ["index": 0, "content_block": ["type": "thinking", "thinking": "", "signature": ""]]))
            for piece in pieces(of: thinking) {
                events.append(event("content_block_delta", ["index": 0, "delta": ["type": "thinking_delta", "thinking": .string(piece)]]))
            }
            events.append(event("content_block_delta", ["index": 0, "delta": ["type": "signature_delta", "signature": .string(signature(of: thinking))]]))
            events.append(event("content_block_stop", ["index": 0]))
            index = 1
        }
        if let toolUse = answer.toolUse {
            events.append(
                event(
                    "content_block_start",
                    [
                        "index": .int(index),
                        "content_block": ["type": "tool_use", "id": toolUse["id"] ?? "", "name": toolUse["name"] ?? "", "input": [:]],
                    ]))
            events.append(event("ping", [:]))
            for fragment in ["", "{\"city\": ", "\"Paris\"}"] {
                events.append(
                    event("content_block_delta", ["index": .int(index), "delta": ["type": "input_json_delta", "partial_json": .string(fragment)]]))
            }
        } else {
            events.append(event("content_block_start", ["index": .int(index), "content_block": ["type": "text", "text": ""]]))
            events.append(event("ping", [:]))
            for piece in pieces(of: answer.text) {
                events.append(event("content_block_delta", ["index": .int(index), "delta": ["type": "text_delta", "text": .string(piece)]]))
                if model == "stream-truncate" { return events }
            }
        }
        events.append(event("content_block_stop", ["index": .int(index)]))
        events.append(
            event(
                "message_delta",
                [
                    "delta": ["stop_reason": .string(answer.stopReason), "stop_sequence": .null],
                    "usage": ["output_tokens": .int(Int64(answer.outputTokens))],
                ]))
        events.append(event("message_stop", [:]))
        return events
    }

    // MARK: - Answers

    /// The deterministic answer to one request.
    private struct Answer {
        var blocks: [JSON]
        let stopReason: String
        /// Tokens written to the prompt cache: 20 when the request marks anything with `cache_control`.
        let cacheWrites: Int
        let inputTokens: Int
        let outputTokens: Int
        let messageID: String

        var text: String { blocks.first { $0["type"] == "text" }?["text"]?.stringValue ?? "" }
        var toolUse: JSON? { blocks.first { $0["type"] == "tool_use" } }
        var thinking: String? { blocks.first { $0["type"] == "thinking" }?["thinking"]?.stringValue }

        init(_ request: JSON) {
            let messages = request["messages"]?.arrayValue ?? []
            cacheWrites = request.serialized().contains("\"cache_control\"") ? 20 : 0
            let characters = messages.reduce(0) { $0 + FakeAnthropicRules.text(of: $1["content"]).count }
            inputTokens = 10 + characters / 4
            let lastIsToolResult = (messages.last?["content"]?.arrayValue ?? []).contains { $0["type"] == "tool_result" }
            if let tool = request["tools"]?.arrayValue?.first, let name = tool["name"]?.stringValue, !lastIsToolResult {
                let id = "toolu_fake\(messages.count)\(name.count)"
                blocks = [["type": "tool_use", "id": .string(id), "name": .string(name), "input": ["city": "Paris"]]]
                stopReason = "tool_use"
                outputTokens = 12
            } else {
                let last = messages.last { $0["role"] == "user" }
                let answer = "Hello from anthropic: " + FakeAnthropicRules.text(of: last?["content"])
                blocks = [["type": "text", "text": .string(answer)]]
                stopReason = "end_turn"
                outputTokens = answer.split(separator: " ").count
            }
            if request["thinking"]?["type"] == "enabled" {
                let last = messages.last { $0["role"] == "user" }
                let thinking = "Thinking about: " + FakeAnthropicRules.text(of: last?["content"])
                blocks.insert(["type": "thinking", "thinking": .string(thinking), "signature": .string(FakeAnthropicRules.signature(of: thinking))], at: 0)
            }
            messageID = "msg_fake\(inputTokens)x\(outputTokens)"
        }

        func usage(output: Int) -> JSON {
            [
                "input_tokens": .int(Int64(inputTokens)), "output_tokens": .int(Int64(output)),
                "cache_read_input_tokens": 0, "cache_creation_input_tokens": .int(Int64(cacheWrites)),
            ]
        }
    }

    /// The text of a message's content: a string, or its text blocks and tool results joined.
    static func text(of content: JSON?) -> String {
        switch content {
        case .string(let value)?:
            return value
        case .array(let blocks)?:
            return blocks.map { block in
                block["type"] == "tool_result" ? text(of: block["content"]) : (block["text"]?.stringValue ?? "")
            }.joined()
        default:
            return ""
        }
    }

    /// `text` cut before every space, so the pieces join back to it; three pieces at least for any answer.
    static func pieces(of text: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        for character in text {
            if character == " ", !current.isEmpty {
                pieces.append(current)
                current = ""
            }
            current.append(character)
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    private static func event(_ type: String, _ fields: [String: JSON]) -> ServerSentEvent {
        var object = fields
        object["type"] = .string(type)
        return ServerSentEvent(event: type, data: JSON.object(object).serialized())
    }

    // MARK: - Errors

    /// Anthropic's error type for an HTTP status.
    static func errorType(status: Int) -> String {
        switch status {
        case 400: return "invalid_request_error"
        case 401: return "authentication_error"
        case 402: return "billing_error"
        case 403: return "permission_error"
        case 404: return "not_found_error"
        case 413: return "request_too_large"
        case 429: return "rate_limit_error"
        case 504: return "timeout_error"
        case 529: return "overloaded_error"
        default: return "api_error"
        }
    }

    private static func failure(_ status: Int, _ message: String) -> (status: Int, body: JSON) {
        let error: JSON = ["type": .string(errorType(status: status)), "message": .string(message)]
        return (status, ["type": "error", "error": error, "request_id": "req_fake"])
    }

    // MARK: - Validation

    /// The message of the 400 the real API would answer, or nil.
    static func problem(in request: JSON, counting: Bool = false) -> String? {
        guard let body = request.objectValue else { return "Request body must be a JSON object." }
        for key in body.keys.sorted() where !knownFields.contains(key) { return "\(key): Extra inputs are not permitted" }
        guard body["model"]?.stringValue?.isEmpty == false else { return "model: Field required" }
        if counting, body["max_tokens"] != nil || body["stream"] != nil { return "max_tokens: Extra inputs are not permitted" }
        let limit: Int
        if counting {
            limit = Int.max
        } else {
            guard let maxTokens = body["max_tokens"] else { return "max_tokens: Field required" }
            guard let value = maxTokens.intValue, value >= 1 else { return "max_tokens: must be an integer of at least 1" }
            limit = value
        }
        if let thinking = body["thinking"], thinking["type"] == "enabled" {
            guard let budget = thinking["budget_tokens"]?.intValue, budget >= 1024 else {
                return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            }
            if budget >= limit { return "`max_tokens` must be greater than `thinking.budget_tokens`" }
        }
        guard let messages = body["messages"]?.arrayValue else { return "messages: Field required" }
        if messages.isEmpty { return "messages: at least one message is required" }
        if let problem = systemProblem(body["system"]) { return problem }
        for name in ["temperature", "top_p"] {
            if let value = body[name], !(value.doubleValue.map { (0...1).contains($0) } ?? false) {
                return "\(name): Input should be a number between 0 and 1"
            }
        }
        if let stream = body["stream"], stream.boolValue == nil { return "stream: Input should be a valid boolean" }
        if let stops = body["stop_sequences"], !(stops.arrayValue?.allSatisfy { $0.stringValue != nil } ?? false) {
            return "stop_sequences: Input should be a valid list of strings"
        }
        if let metadata = body["metadata"] {
            guard let fields = metadata.objectValue else { return "metadata: Input should be an object" }
            for key in fields.keys.sorted() where key != "user_id" { return "metadata.\(key): Extra inputs are not permitted" }
        }
        if let problem = toolsProblem(body["tools"], choice: body["tool_choice"]) { return problem }
        return messagesProblem(messages)
    }

    private static func systemProblem(_ system: JSON?) -> String? {
        switch system {
        case nil, .string?: return nil
        case .array(let blocks)?:
            for (index, block) in blocks.enumerated() where block["type"] != "text" || block["text"]?.stringValue == nil {
                return "system.\(index): Input should be a text block"
            }
            return nil
        default: return "system: Input should be a valid string or list of text blocks"
        }
    }

    private static func toolsProblem(_ tools: JSON?, choice: JSON?) -> String? {
        if let tools {
            guard let list = tools.arrayValue else { return "tools: Input should be a valid list" }
            for (index, tool) in list.enumerated() {
                guard let name = tool["name"]?.stringValue, !name.isEmpty, name.count <= 128 else {
                    return "tools.\(index).name: Field required"
                }
                let isCustom = tool["type"] == nil || tool["type"] == "custom"
                if isCustom, tool["input_schema"]?.objectValue == nil { return "tools.\(index).input_schema: Field required" }
                if isCustom, tool["input_schema"]?["type"] != "object" {
                    return "tools.\(index).input_schema.type: Input should be 'object'"
                }
            }
        }
        guard let choice else { return nil }
        guard choice.objectValue != nil else { return "tool_choice: Input should be a valid dictionary or object" }
        switch choice["type"]?.stringValue {
        case "auto", "any", "none": return nil
        case "tool": return choice["name"]?.stringValue == nil ? "tool_choice.tool.name: Field required" : nil
        default: return "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
        }
    }

    private static func messagesProblem(_ messages: [JSON]) -> String? {
        // The real API merges consecutive turns of one role before checking them.
        var turns: [(role: String, blocks: [JSON], index: Int)] = []
        for (index, message) in messages.enumerated() {
            let role = message["role"]?.stringValue ?? ""
            switch role {
            case "user", "assistant": break
            case "system":
                return "messages.\(index): Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role."
            default:
                return "messages.\(index).role: Input should be 'user' or 'assistant'"
            }
            let isFinalAssistant = index == messages.count - 1 && role == "assistant"
            let blocks: [JSON]
            switch message["content"] {
            case .string(let text)?: blocks = text.isEmpty ? [] : [["type": "text", "text": .string(text)]]
            case .array(let list)?: blocks = list
            default: return "messages.\(index).content: Field required"
            }
            if blocks.isEmpty && !isFinalAssistant {
                return "messages.\(index): all messages must have non-empty content except for the optional final assistant message"
            }
            if let last = turns.indices.last, turns[last].role == role {
                turns[last].blocks += blocks
            } else {
                turns.append((role, blocks, index))
            }
        }
        if turns.first?.role != "user" { return "messages: first message must use the \"user\" role" }
        var pendingToolUses: Set<String> = []
        for turn in turns {
            if let problem = blocksProblem(turn.blocks, role: turn.role, index: turn.index, toolUses: pendingToolUses) {
                return problem
            }
            if turn.role == "user" {
                let answered = Set(turn.blocks.compactMap { $0["tool_use_id"]?.stringValue })
                let unanswered = pendingToolUses.subtracting(answered)
                if !unanswered.isEmpty {
                    return "messages.\(turn.index): `tool_use` ids were found without `tool_result` blocks immediately after: \(unanswered.sorted().joined(separator: ", ")). Each `tool_use` block must have a corresponding `tool_result` block in the next message."
                }
                pendingToolUses = []
            } else {
                pendingToolUses = Set(turn.blocks.filter { $0["type"] == "tool_use" }.compactMap { $0["id"]?.stringValue })
            }
        }
        if let last = turns.last, last.role == "assistant", last.blocks.last?["text"]?.stringValue?.last?.isWhitespace == true {
            return "messages: final assistant content cannot end with trailing whitespace"
        }
        return nil
    }

    private static func blocksProblem(_ blocks: [JSON], role: String, index: Int, toolUses: Set<String>) -> String? {
        var seenOtherBlock = false
        for (position, block) in blocks.enumerated() {
            let param = "messages.\(index).content.\(position)"
            switch block["type"]?.stringValue {
            case "text":
                guard let text = block["text"]?.stringValue else { return "\(param).text: Field required" }
                if text.isEmpty { return "\(param): text content blocks must be non-empty" }
                seenOtherBlock = true
            case "image":
                if role != "user" { return "\(param): images are only allowed in user messages" }
                if let problem = imageSourceProblem(block["source"], param: "\(param).source") { return problem }
                seenOtherBlock = true
            case "tool_use":
                if role != "assistant" { return "\(param): tool_use blocks are only allowed in assistant messages" }
                guard block["id"]?.stringValue?.isEmpty == false, block["name"]?.stringValue != nil,
                    block["input"]?.objectValue != nil
                else { return "\(param): tool_use blocks need an id, a name and an object input" }
            case "tool_result":
                if role != "user" { return "\(param): tool_result blocks are only allowed in user messages" }
                if seenOtherBlock {
                    return "messages.\(index): tool_result blocks must come first in the content of a user message"
                }
                guard let id = block["tool_use_id"]?.stringValue, toolUses.contains(id) else {
                    return "\(param): unexpected `tool_use_id` found in `tool_result` blocks: \(block["tool_use_id"]?.stringValue ?? "null"). Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                }
            case "thinking":
                guard let thinking = block["thinking"]?.stringValue, block["signature"]?.stringValue == signature(of: thinking) else {
                    return "\(param): Invalid `signature` in `thinking` block"
                }
                seenOtherBlock = true
            case "redacted_thinking", "document":
                seenOtherBlock = true
            default:
                return "\(param).type: Input tag '\(block["type"]?.stringValue ?? "null")' is not a valid content block type"
            }
        }
        return nil
    }

    private static func imageSourceProblem(_ source: JSON?, param: String) -> String? {
        switch source?["type"]?.stringValue {
        case "base64":
            guard let mediaType = source?["media_type"]?.stringValue, AnthropicAdapter.imageMediaTypes.contains(mediaType) else {
                return "\(param).media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
            }
            guard source?["data"]?.stringValue?.isEmpty == false else { return "\(param).data: Field required" }
            return nil
        case "url":
            guard let url = source?["url"]?.stringValue, url.hasPrefix("https://") || url.hasPrefix("http://") else {
                return "\(param).url: Input should be a valid URL"
            }
            return nil
        default:
            return "\(param): Input tag does not match any of the expected tags: 'base64', 'url'"
        }
    }
}
