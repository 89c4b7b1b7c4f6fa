import HTTPTypes
import NIOCore

/// Anthropic's Messages API (`POST /v1/messages`), as the Anthropic SDKs and Claude Code speak it.
///
/// The client's body is kept (`NativeRequest`): an Anthropic model receives it byte for byte and its answer or
/// stream comes back as it was sent. Any other provider gets the canonical translation (`AnthropicIngress`), and its
/// answer is written back as a Messages answer, its stream as Messages events (`Frames`).
public struct AnthropicMessagesDialect: ClientDialect {
    /// The provider path the body is for: `/v1/messages`, or `/v1/messages/count_tokens`.
    let upstreamPath: String

    public init(upstreamPath: String = "/v1/messages") {
        self.upstreamPath = upstreamPath
    }

    /// `anthropic-version`: every Anthropic client sends it (`GET /v1/models` answers such a client in Anthropic's shape).
    static let versionHeader = HTTPField.Name("anthropic-version")!
    /// Client headers an Anthropic provider receives.
    static let forwardedHeaders: [HTTPField.Name] = [versionHeader, HTTPField.Name("anthropic-beta")!]

    public func decode(_ body: ByteBuffer, headers: HTTPFields) throws(GatewayError) -> ChatRequest {
        let json = try ChatRequest.parseBody(body.readableBytesView)
        let counting = upstreamPath.hasSuffix("/count_tokens")
        let translation = try AnthropicIngress.translate(json, countingTokens: counting)
        var canonical = translation.canonical
        if counting { canonical["max_tokens"] = 1 }
        var request = try ChatRequest(json: .object(canonical))
        var forwarded: [(name: String, value: String)] = []
        for name in Self.forwardedHeaders {
            for value in headers[values: name] { forwarded.append((name.canonicalName, value)) }
        }
        request.native = NativeRequest(
            dialect: .anthropicMessages, body: Array(body.readableBytesView), object: json.objectValue ?? [:], path: upstreamPath, forwardedHeaders: forwarded,
            untranslatable: translation.untranslatable)
        return request
    }

    public func encodeAnswer(_ completionText: [UInt8], costUSD: Double?, latencyMs: Int) -> ByteBuffer {
        let completion = (try? JSON.parse(completionText)) ?? [:]
        return ByteBuffer(string: Self.message(from: completion).serialized())
    }

    public func encodeNativeAnswer(_ native: [UInt8], costUSD: Double?, latencyMs: Int) -> ByteBuffer? {
        ByteBuffer(bytes: native)
    }

    public func makeFrameEncoder(for request: ChatRequest) -> Frames { Frames() }

    public func errorBody(_ error: GatewayError) -> ByteBuffer {
        ByteBuffer(string: Self.envelope(error).serialized())
    }

    // MARK: - Answers

    /// Anthropic's error type for a status.
    static func errorType(status: Int) -> String {
        switch status {
        case 400, 422: "invalid_request_error"
        case 401: "authentication_error"
        case 402: "billing_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 413: "request_too_large"
        case 429: "rate_limit_error"
        case 503, 529: "overloaded_error"
        case 504: "timeout_error"
        default: "api_error"
        }
    }

    /// `{"type": "error", "error": {"type", "message"}}`.
    static func envelope(_ error: GatewayError) -> JSON {
        ["type": "error", "error": ["type": .string(errorType(status: error.status)), "message": .string(error.message)]]
    }

    /// Anthropic's stop reason for a Chat Completions finish reason.
    static func stopReason(_ finish: String?) -> String {
        switch finish {
        case "length": "max_tokens"
        case "tool_calls", "function_call": "tool_use"
        case "content_filter": "refusal"
        default: "end_turn"
        }
    }

    /// Anthropic's `usage`: input without the cached part, which is `cache_read_input_tokens`.
    static func usage(_ usage: Usage?) -> JSON {
        let usage = usage ?? Usage()
        let cached = min(usage.cachedTokens, usage.promptTokens)
        return [
            "input_tokens": .int(Int64(usage.promptTokens - cached)), "output_tokens": .int(Int64(usage.completionTokens)),
            "cache_read_input_tokens": .int(Int64(cached)), "cache_creation_input_tokens": 0,
        ]
    }

    /// A `message` from a canonical `chat.completion`.
    static func message(from completion: JSON) -> JSON {
        let choice = completion["choices"]?.arrayValue?.first ?? [:]
        let message = choice["message"] ?? [:]
        var content: [JSON] = []
        if let text = message["content"]?.stringValue, !text.isEmpty { content.append(["type": "text", "text": .string(text)]) }
        if let refusal = message["refusal"]?.stringValue, !refusal.isEmpty { content.append(["type": "text", "text": .string(refusal)]) }
        for call in message["tool_calls"]?.arrayValue ?? [] {
            let arguments = call["function"]?["arguments"]?.stringValue ?? ""
            let input = (try? JSON.parse(Array(arguments.utf8))).flatMap { $0.objectValue == nil ? nil : $0 } ?? .object([:])
            content.append([
                "type": "tool_use", "id": .string(call["id"]?.stringValue ?? RandomID.make(prefix: "toolu_", length: 24)),
                "name": call["function"]?["name"] ?? "", "input": input,
            ])
        }
        return [
            "id": .string(messageID(completion["id"]?.stringValue)), "type": "message", "role": "assistant",
            "model": completion["model"] ?? "", "content": .array(content),
            "stop_reason": .string(stopReason(choice["finish_reason"]?.stringValue)), "stop_sequence": .null,
            "usage": usage(Usage(openAI: completion["usage"])),
        ]
    }

    static func messageID(_ completionID: String?) -> String {
        guard let completionID, !completionID.isEmpty else { return RandomID.make(prefix: "msg_", length: 24) }
        return completionID.hasPrefix("msg_") ? completionID : "msg_" + completionID
    }

    // MARK: - Streams

    /// Writes canonical chunks as Messages events: `message_start`, per block `content_block_start`, its deltas
    /// (`text_delta`, `input_json_delta` in the order the arguments came) and `content_block_stop`, then
    /// `message_delta` with the stop reason and usage, and `message_stop`.
    public struct Frames: StreamFrameEncoder {
        private var started = false
        private var finished = false
        /// The open block: its index, and the tool call it is for (nil for text).
        private var open: (index: Int, toolCall: Int?)?
        private var nextIndex = 0
        private var stopReason = "end_turn"
        private var usage: Usage?

        public init() {}

        public mutating func frames(_ payloads: [String]) -> ByteBuffer {
            var buffer = ByteBuffer()
            for payload in payloads {
                if payload == "[DONE]" {
                    finish(into: &buffer)
                    continue
                }
                guard let chunk = try? JSON.parse(Array(payload.utf8)) else { continue }
                if !started { start(chunk, into: &buffer) }
                if let reported = Usage(openAI: chunk["usage"]) { usage = reported }
                guard let choice = chunk["choices"]?.arrayValue?.first else { continue }
                let delta = choice["delta"] ?? [:]
                if let text = delta["content"]?.stringValue, !text.isEmpty {
                    if open == nil || open?.toolCall != nil { openBlock(["type": "text", "text": ""], toolCall: nil, into: &buffer) }
                    Self.event("content_block_delta", ["type": "content_block_delta", "index": .int(Int64(open!.index)), "delta": ["type": "text_delta", "text": .string(text)]], into: &buffer)
                }
                for call in delta["tool_calls"]?.arrayValue ?? [] {
                    let position = call["index"]?.intValue ?? 0
                    if open?.toolCall != position {
                        let block: JSON = [
                            "type": "tool_use", "id": .string(call["id"]?.stringValue ?? RandomID.make(prefix: "toolu_", length: 24)),
                            "name": call["function"]?["name"] ?? "", "input": .object([:]),
                        ]
                        openBlock(block, toolCall: position, into: &buffer)
                    }
                    if let arguments = call["function"]?["arguments"]?.stringValue, !arguments.isEmpty {
                        Self.event("content_block_delta", ["type": "content_block_delta", "index": .int(Int64(open!.index)), "delta": ["type": "input_json_delta", "partial_json": .string(arguments)]], into: &buffer)
                    }
                }
                if let finish = choice["finish_reason"]?.stringValue { stopReason = AnthropicMessagesDialect.stopReason(finish) }
            }
            return buffer
        }

        public mutating func errorFrame(_ error: GatewayError) -> ByteBuffer {
            var buffer = ByteBuffer()
            Self.event("error", AnthropicMessagesDialect.envelope(error), into: &buffer)
            return buffer
        }

        private mutating func start(_ chunk: JSON, into buffer: inout ByteBuffer) {
            started = true
            let message: JSON = [
                "id": .string(AnthropicMessagesDialect.messageID(chunk["id"]?.stringValue)), "type": "message", "role": "assistant",
                "model": chunk["model"] ?? "", "content": [], "stop_reason": .null, "stop_sequence": .null,
                "usage": ["input_tokens": 0, "output_tokens": 0],
            ]
            Self.event("message_start", ["type": "message_start", "message": message], into: &buffer)
        }

        private mutating func openBlock(_ block: JSON, toolCall: Int?, into buffer: inout ByteBuffer) {
            closeBlock(into: &buffer)
            open = (nextIndex, toolCall)
            Self.event("content_block_start", ["type": "content_block_start", "index": .int(Int64(nextIndex)), "content_block": block], into: &buffer)
            nextIndex += 1
        }

        private mutating func closeBlock(into buffer: inout ByteBuffer) {
            guard let block = open else { return }
            Self.event("content_block_stop", ["type": "content_block_stop", "index": .int(Int64(block.index))], into: &buffer)
            open = nil
        }

        private mutating func finish(into buffer: inout ByteBuffer) {
            guard started, !finished else { return }
            finished = true
            closeBlock(into: &buffer)
            Self.event(
                "message_delta",
                ["type": "message_delta", "delta": ["stop_reason": .string(stopReason), "stop_sequence": .null], "usage": AnthropicMessagesDialect.usage(usage)],
                into: &buffer)
            Self.event("message_stop", ["type": "message_stop"], into: &buffer)
        }

        static func event(_ name: String, _ data: JSON, into buffer: inout ByteBuffer) {
            ServerSentEvent(event: name, data: data.serialized()).write(to: &buffer)
        }
    }
}
