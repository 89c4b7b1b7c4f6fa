/// Rebuilds the non-streamed `chat.completion` equivalent to a streamed answer, so a streamed answer can be cached.
///
/// Feed it the OpenAI `data:` payloads in the order the client got them: chunk JSON texts, then `[DONE]`.
/// Per choice (by `index`) it concatenates `content`, `refusal` and other text fields such as
/// `reasoning_content`, keeps the role, merges `tool_calls` by their `index` (the first `id`, `type` and
/// `function.name` seen win, so providers that repeat them are fine; `function.arguments` are concatenated),
/// appends `logprobs` lists and keeps the last `finish_reason`. `usage` comes from the usage chunk.
///
/// Content that stayed empty reads as `null` when the choice called tools, as in a non-streamed answer.
///
/// ```swift
/// var assembler = StreamAssembler()
/// for payload in payloads { assembler.add(payload) }
/// if let completion = assembler.completion() { ... cache it ... }
/// ```
public struct StreamAssembler: Sendable {
    private struct ToolCall: Sendable {
        var id: String?
        var type: String?
        var name: String?
        var arguments = ""
        /// Members other than the above, e.g. provider extensions; the first value seen is kept.
        var extra: [String: JSON] = [:]
    }

    private struct Choice: Sendable {
        var role: String?
        /// Text fields of the delta (`content`, `refusal`, `reasoning_content`, ...), concatenated.
        var texts: [String: String] = [:]
        /// Other delta fields, last value kept.
        var others: [String: JSON] = [:]
        var toolCalls: [Int: ToolCall] = [:]
        var legacyFunctionCall: ToolCall?
        /// `logprobs` members; lists (`content`, `refusal`) are appended.
        var logprobs: [String: JSON]?
        var finishReason: String?
    }

    private var id: String?
    private var created: JSON?
    private var model: String?
    private var systemFingerprint: JSON?
    private var serviceTier: JSON?
    private var usage: JSON?
    private var choices: [Int: Choice] = [:]
    private var done = false
    private var broken = false
    /// Bytes of the payloads seen: past `maximumBytes` the answer is not assembled (nor cached).
    private var seenBytes = 0
    /// The largest streamed answer assembled for the cache, as for a non-streamed answer.
    public static let maximumBytes = UpstreamProxy.maximumResponseBytes

    public init() {}

    /// Consumes one `data:` payload (a chunk, an error object or `[DONE]`). Payloads after `[DONE]` are ignored.
    public mutating func add(_ payload: String) {
        guard !done, !broken else { return }
        seenBytes += payload.utf8.count
        if seenBytes > Self.maximumBytes {
            // Too large to keep: drop what was gathered so far, so memory stays bounded.
            self = StreamAssembler()
            broken = true
            return
        }
        if payload.utf8.elementsEqual("[DONE]".utf8) {
            done = true
            return
        }
        guard let chunk = try? JSON.parse(payload), chunk.objectValue != nil else {
            broken = true
            return
        }
        if let error = chunk["error"], !error.isNull {
            broken = true
            return
        }
        if id == nil { id = chunk["id"]?.stringValue }
        if created == nil, let value = chunk["created"], !value.isNull { created = value }
        if model == nil { model = chunk["model"]?.stringValue }
        if let value = chunk["system_fingerprint"], !value.isNull { systemFingerprint = value }
        if let value = chunk["service_tier"], !value.isNull { serviceTier = value }
        if let value = chunk["usage"], value.objectValue != nil { usage = value }
        for choice in chunk["choices"]?.arrayValue ?? [] {
            guard let index = choice["index"]?.intValue else {
                broken = true
                return
            }
            var state = choices[index] ?? Choice()
            merge(choice, into: &state)
            choices[index] = state
        }
    }

    /// The equivalent `chat.completion`, or nil unless the stream was complete: `[DONE]` seen, no error payload,
    /// at least one choice, choice indices 0, 1, ... without gaps, and a `finish_reason` for each.
    public func completion() -> JSON? {
        guard done, !broken, !choices.isEmpty else { return nil }
        var list: [JSON] = []
        for index in 0..<choices.count {
            guard let choice = choices[index], let finishReason = choice.finishReason else { return nil }
            list.append(Self.json(choice, index: index, finishReason: finishReason))
        }
        var body: [String: JSON] = [
            "id": .string(id ?? RandomID.make(prefix: "chatcmpl-")),
            "object": "chat.completion",
            "created": created ?? .int(UnixTime.now()),
            "model": .string(model ?? ""),
            "choices": .array(list),
        ]
        if let systemFingerprint { body["system_fingerprint"] = systemFingerprint }
        if let serviceTier { body["service_tier"] = serviceTier }
        if let usage { body["usage"] = usage }
        return .object(body)
    }

    // MARK: - Merging

    private func merge(_ choice: JSON, into state: inout Choice) {
        if let reason = choice["finish_reason"]?.stringValue { state.finishReason = reason }
        if let logprobs = choice["logprobs"]?.objectValue {
            var merged = state.logprobs ?? [:]
            for (name, value) in logprobs {
                if case .array(let old) = merged[name], case .array(let new) = value {
                    merged[name] = .array(old + new)
                } else if merged[name] == nil || !value.isNull {
                    merged[name] = value
                }
            }
            state.logprobs = merged
        }
        guard let delta = choice["delta"]?.objectValue else { return }
        for (name, value) in delta {
            switch (name, value) {
            case (_, .null):
                continue
            case ("role", .string(let role)):
                state.role = role
            case ("tool_calls", .array(let calls)):
                for (position, call) in calls.enumerated() {
                    let index = call["index"]?.intValue ?? position
                    var merged = state.toolCalls[index] ?? ToolCall()
                    Self.merge(call, into: &merged)
                    state.toolCalls[index] = merged
                }
            case ("function_call", .object):
                var merged = state.legacyFunctionCall ?? ToolCall()
                Self.merge(value, into: &merged)
                state.legacyFunctionCall = merged
            case (_, .string(let text)):
                state.texts[name, default: ""] += text
            default:
                state.others[name] = value
            }
        }
    }

    private static func merge(_ call: JSON, into merged: inout ToolCall) {
        if merged.id == nil, let id = call["id"]?.stringValue, !id.isEmpty { merged.id = id }
        if merged.type == nil, let type = call["type"]?.stringValue, !type.isEmpty { merged.type = type }
        let function = call["function"] ?? call
        if merged.name == nil, let name = function["name"]?.stringValue, !name.isEmpty { merged.name = name }
        if let arguments = function["arguments"]?.stringValue { merged.arguments += arguments }
        for (name, value) in call.objectValue ?? [:]
        where !["index", "id", "type", "function", "name", "arguments"].contains(name) && merged.extra[name] == nil {
            merged.extra[name] = value
        }
    }

    private static func json(_ choice: Choice, index: Int, finishReason: String) -> JSON {
        var message = choice.others
        for (name, text) in choice.texts { message[name] = .string(text) }
        message["role"] = .string(choice.role ?? "assistant")
        let content = choice.texts["content"] ?? ""
        let calledTools = !choice.toolCalls.isEmpty || choice.legacyFunctionCall != nil
        message["content"] = content.isEmpty && (calledTools || choice.texts["content"] == nil) ? .null : .string(content)
        if choice.texts["refusal"] == nil { message["refusal"] = .null }
        if !choice.toolCalls.isEmpty {
            message["tool_calls"] = .array(
                choice.toolCalls.keys.sorted().map { key in
                    let call = choice.toolCalls[key]!
                    var object = call.extra
                    object["id"] = .string(call.id ?? "")
                    object["type"] = .string(call.type ?? "function")
                    object["function"] = ["name": .string(call.name ?? ""), "arguments": .string(call.arguments)]
                    return .object(object)
                })
        }
        if let call = choice.legacyFunctionCall {
            message["function_call"] = ["name": .string(call.name ?? ""), "arguments": .string(call.arguments)]
        }
        return [
            "index": .int(Int64(index)),
            "message": .object(message),
            "logprobs": choice.logprobs.map(JSON.object) ?? .null,
            "finish_reason": .string(finishReason),
        ]
    }
}

// MARK: - Replay

/// Turns a `chat.completion` (a cached answer) into the chunk sequence of an equivalent streamed answer.
///
/// One id, `created` and model for every chunk, as `ChunkBuilder` writes them. Per choice, with its `index`:
/// a first delta with the role (and other non-text message fields), then `reasoning_content`-like text fields,
/// `content` and `refusal`, each in a few pieces; each tool call opened with its id, type and name, then its
/// arguments in pieces; then the `finish_reason` chunk, which carries the choice's `logprobs`. After every choice:
/// the usage chunk when `includeUsage` (the completion's `usage` as is), then `[DONE]`.
///
/// Assembling the replay with `StreamAssembler` gives back the completion's id, created, model, choices and usage
/// (message members that are `null`, other than `content` and `refusal`, are left out, as in a stream; so is
/// `content: ""` beside tool calls, which reads back as `null`).
///
/// `ChunkBuilder` is not used for the deltas because it always writes choice index 0 and re-encodes usage
/// through `Usage`, dropping details such as `completion_tokens_details`.
public enum StreamReplay {
    /// Most pieces a text is cut into.
    static let maximumPieces = 8
    /// Fewest characters in a piece (except a shorter whole text).
    static let minimumPieceLength = 16

    /// The `data:` payloads replaying `completion`, ending with `[DONE]`.
    ///
    /// - Parameters:
    ///   - completion: an OpenAI `chat.completion` object.
    ///   - includeUsage: whether the client asked for the usage chunk (`stream_options.include_usage`).
    public static func payloads(for completion: JSON, includeUsage: Bool) -> [String] {
        var envelope: [String: JSON] = [
            "id": completion["id"] ?? .string(RandomID.make(prefix: "chatcmpl-")),
            "object": "chat.completion.chunk",
            "created": completion["created"] ?? .int(UnixTime.now()),
            "model": completion["model"] ?? "",
        ]
        for name in ["system_fingerprint", "service_tier"] {
            if let value = completion[name], !value.isNull { envelope[name] = value }
        }
        if includeUsage { envelope["usage"] = .null }
        func chunk(_ choices: [JSON], usage: JSON? = nil) -> String {
            var object = envelope
            object["choices"] = .array(choices)
            if let usage { object["usage"] = usage }
            return JSON.object(object).serialized()
        }

        var payloads: [String] = []
        for (position, choice) in (completion["choices"]?.arrayValue ?? []).enumerated() {
            let index = JSON.int(Int64(choice["index"]?.intValue ?? position))
            func delta(_ delta: [String: JSON], finishReason: JSON = .null, logprobs: JSON = .null) -> String {
                chunk([["index": index, "delta": .object(delta), "logprobs": logprobs, "finish_reason": finishReason]])
            }
            let message = choice["message"]?.objectValue ?? [:]
            var first: [String: JSON] = ["role": message["role"] ?? "assistant"]
            first["content"] = message["content"]?.stringValue == nil ? .null : ""
            var textFields: [String] = []
            for (name, value) in message where !["role", "content", "refusal", "tool_calls", "function_call"].contains(name) {
                if value.stringValue != nil { textFields.append(name) } else if !value.isNull { first[name] = value }
            }
            payloads.append(delta(first))
            for name in textFields.sorted() + ["content", "refusal"] {
                guard let text = message[name]?.stringValue else { continue }
                for piece in pieces(of: text) { payloads.append(delta([name: .string(piece)])) }
            }
            for (callIndex, call) in (message["tool_calls"]?.arrayValue ?? []).enumerated() {
                var opening = call.objectValue ?? [:]
                opening["index"] = .int(Int64(callIndex))
                opening["type"] = call["type"] ?? "function"
                opening["function"] = ["name": call["function"]?["name"] ?? "", "arguments": ""]
                payloads.append(delta(["tool_calls": [.object(opening)]]))
                for piece in pieces(of: call["function"]?["arguments"]?.stringValue ?? "") {
                    payloads.append(
                        delta(["tool_calls": [["index": .int(Int64(callIndex)), "function": ["arguments": .string(piece)]]]]))
                }
            }
            if let call = message["function_call"], call.objectValue != nil {
                payloads.append(delta(["function_call": ["name": call["name"] ?? "", "arguments": ""]]))
                for piece in pieces(of: call["arguments"]?.stringValue ?? "") {
                    payloads.append(delta(["function_call": ["arguments": .string(piece)]]))
                }
            }
            payloads.append(
                delta([:], finishReason: choice["finish_reason"] ?? .string(FinishReason.stop), logprobs: choice["logprobs"] ?? .null))
        }
        if includeUsage {
            payloads.append(chunk([], usage: completion["usage"] ?? Usage().json))
        }
        payloads.append("[DONE]")
        return payloads
    }

    /// `text` cut into at most `maximumPieces` pieces at character boundaries; nothing for an empty text.
    static func pieces(of text: String) -> [String] {
        let characters = Array(text)
        guard !characters.isEmpty else { return [] }
        let length = max(minimumPieceLength, (characters.count + maximumPieces - 1) / maximumPieces)
        return stride(from: 0, to: characters.count, by: length).map {
            String(characters[$0..<min($0 + length, characters.count)])
        }
    }
}
