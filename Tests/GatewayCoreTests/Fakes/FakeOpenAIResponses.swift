import Foundation
import NIOConcurrencyHelpers

@testable import GatewayCore

/// What the real OpenAI Responses API (`POST /v1/responses`) rejects, and canned answers for what it accepts.
///
/// The answer is a `function_call` item (first tool, arguments `{"city":"Paris"}`, call id `call_fake1`) when the
/// request has tools and its last input item is not a `function_call_output`; otherwise an assistant message saying
/// `Hello from openai: <last user text>`. Responses answered with `store` not false are kept in a `Store`, so
/// `previous_response_id` can name them. Model `stream-truncate` cuts a stream after its first three events.
enum FakeOpenAIResponses {
    static let path = "/v1/responses"

    static let knownFields: Set<String> = [
        "background", "conversation", "include", "input", "instructions", "max_output_tokens", "max_tool_calls",
        "metadata", "model", "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key", "reasoning",
        "safety_identifier", "service_tier", "store", "stream", "stream_options", "temperature", "text", "tool_choice",
        "tools", "top_logprobs", "top_p", "truncation", "user",
    ]

    /// The status of `Previous response with id '…' not found.` (`previous_response_not_found`).
    static let previousResponseNotFoundStatus = 400
    /// The status of `Item with id '…' not found.` for a reasoning item sent without its encrypted content when
    /// `store` is false.
    static let itemNotPersistedStatus = 404

    /// The responses a fake has answered with `store` not false, and the function call ids each one's conversation
    /// holds (its predecessors', its input's and its output's), so a later `function_call_output` can answer them.
    final class Store: Sendable {
        struct Entry: Sendable {
            var response: JSON
            var callIDs: Set<String>
        }

        private let entries = NIOLockedValueBox<[String: Entry]>([:])

        init() {}

        func entry(_ id: String) -> Entry? { entries.withLockedValue { $0[id] } }

        /// The stored response with `id`.
        func response(_ id: String) -> JSON? { entry(id)?.response }

        /// Keeps `response` unless its request said `store: false`.
        func remember(_ response: JSON, request: JSON) {
            guard request["store"]?.boolValue != false, let id = response["id"]?.stringValue else { return }
            var callIDs = request["previous_response_id"]?.stringValue.flatMap { entry($0)?.callIDs } ?? []
            let items = (request["input"]?.arrayValue ?? []) + (response["output"]?.arrayValue ?? [])
            for item in items where item["type"]?.stringValue == "function_call" {
                if let callID = item["call_id"]?.stringValue { callIDs.insert(callID) }
            }
            entries.withLockedValue { $0[id] = Entry(response: response, callIDs: callIDs) }
        }
    }

    // MARK: - Errors

    /// OpenAI's error envelope: `{"error": {"message", "type", "param", "code"}}`.
    static func error(
        _ status: Int, _ message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil
    ) -> (status: Int, body: JSON) {
        (status, ["error": ["message": .string(message), "type": .string(type), "param": param.map(JSON.string) ?? .null,
                            "code": code.map(JSON.string) ?? .null]])
    }

    static func missing(_ param: String) -> (status: Int, body: JSON) {
        error(400, "Missing required parameter: '\(param)'.", param: param, code: "missing_required_parameter")
    }

    static func invalidType(_ param: String, expected: String, got value: JSON) -> (status: Int, body: JSON) {
        error(400, "Invalid type for '\(param)': expected \(expected), but got \(value.typeName) instead.", param: param, code: "invalid_type")
    }

    static func invalidValue(_ param: String, _ value: String, supported: [String]) -> (status: Int, body: JSON) {
        let quoted = supported.map { "'\($0)'" }
        let list = quoted.count > 1 ? quoted.dropLast().joined(separator: ", ") + ", and " + quoted.last! : quoted.joined()
        return error(400, "Invalid value: '\(value)'. Supported values are: \(list).", param: param, code: "invalid_value")
    }

    // MARK: - Checks

    /// nil when OpenAI would accept the call; else its status and error. Checks the method, the key and then the body.
    static func check(
        method: String, headers: [String: String], body: [UInt8], expectedKey: String, store: Store? = nil
    ) -> (status: Int, body: JSON)? {
        guard method == "POST" else { return error(404, "Invalid URL (\(method) \(path))") }
        guard headers["authorization"] == "Bearer \(expectedKey)" else {
            return error(401, "Incorrect API key provided.", code: "invalid_api_key")
        }
        guard let json = try? JSON.parse(body) else { return error(400, "We could not parse the JSON body of your request.") }
        return rejection(for: json, store: store)
    }

    /// nil when OpenAI would accept `request` as a create-response body; else its status and error.
    /// `store` holds the responses `previous_response_id` may name (none when nil).
    static func rejection(for request: JSON, store: Store? = nil) -> (status: Int, body: JSON)? {
        guard let object = request.objectValue else { return invalidType("body", expected: "an object", got: request) }
        for key in object.keys.sorted() where !knownFields.contains(key) {
            return error(400, "Unknown parameter: '\(key)'.", param: key, code: "unknown_parameter")
        }
        switch object["model"] {
        case nil, .null?: return missing("model")
        case .string(let model)? where model.isEmpty:
            return error(400, "Invalid 'model': empty string. Expected a string with minimum length 1, but got an empty string instead.",
                         param: "model", code: "empty_string")
        case .string?: break
        case let other?: return invalidType("model", expected: "a string", got: other)
        }
        for key in ["background", "parallel_tool_calls", "store", "stream"] {
            if let value = object[key], !value.isNull, value.boolValue == nil { return invalidType(key, expected: "a boolean", got: value) }
        }
        for key in ["temperature", "top_p"] {
            if let value = object[key], !value.isNull, value.doubleValue == nil { return invalidType(key, expected: "a decimal", got: value) }
        }
        if let value = object["stream_options"], !value.isNull, object["stream"]?.boolValue != true {
            return error(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param: "stream_options")
        }
        if let value = object["max_output_tokens"], !value.isNull {
            guard let tokens = value.intValue else { return invalidType("max_output_tokens", expected: "an integer", got: value) }
            if tokens < 16 {
                return error(400, "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got \(tokens) instead.",
                             param: "max_output_tokens", code: "integer_below_min_value")
            }
        }
        if let rejection = toolsRejection(object["tools"]) { return rejection }

        var knownCallIDs: Set<String> = []
        if let value = object["previous_response_id"], !value.isNull {
            guard let previous = value.stringValue else { return invalidType("previous_response_id", expected: "a string", got: value) }
            guard let entry = store?.entry(previous) else {
                return error(previousResponseNotFoundStatus, "Previous response with id '\(previous)' not found.",
                             param: "previous_response_id", code: "previous_response_not_found")
            }
            knownCallIDs = entry.callIDs
        }
        switch object["input"] {
        case nil, .null?: return missing("input")
        case .string?: return nil
        case .array(let items)? where items.isEmpty:
            return error(400, "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                         param: "input", code: "empty_array")
        case .array(let items)?:
            let stored = object["store"]?.boolValue != false
            for (index, item) in items.enumerated() {
                if let rejection = itemRejection(item, at: "input[\(index)]", stored: stored, knownCallIDs: &knownCallIDs) { return rejection }
            }
            return nil
        case let other?: return invalidType("input", expected: "one of a string or array of input items", got: other)
        }
    }

    /// Tools must be the Responses API's flat function tools: `{type: "function", name, parameters, ...}`.
    static func toolsRejection(_ tools: JSON?) -> (status: Int, body: JSON)? {
        guard let tools, !tools.isNull else { return nil }
        guard let list = tools.arrayValue else { return invalidType("tools", expected: "an array", got: tools) }
        for (index, tool) in list.enumerated() {
            let param = "tools[\(index)]"
            guard tool.objectValue != nil else { return invalidType(param, expected: "an object", got: tool) }
            guard let type = tool["type"]?.stringValue else { return missing("\(param).type") }
            guard type == "function" else { return invalidValue("\(param).type", type, supported: ["function"]) }
            switch tool["name"] {
            case nil, .null?: return missing("\(param).name")
            case .string?: break
            case let other?: return invalidType("\(param).name", expected: "a string", got: other)
            }
        }
        return nil
    }

    /// Checks one input item; `knownCallIDs` gathers the function calls a later `function_call_output` may answer.
    static func itemRejection(_ item: JSON, at param: String, stored: Bool, knownCallIDs: inout Set<String>) -> (status: Int, body: JSON)? {
        guard item.objectValue != nil else { return invalidType(param, expected: "an object", got: item) }
        func requireString(_ field: String) -> (status: Int, body: JSON)? {
            switch item[field] {
            case nil, .null?: return missing("\(param).\(field)")
            case .string?: return nil
            case let other?: return invalidType("\(param).\(field)", expected: "a string", got: other)
            }
        }
        let type = item["type"]?.stringValue ?? "message"
        switch type {
        case "message":
            guard let role = item["role"] else { return missing("\(param).role") }
            let roles = ["assistant", "system", "developer", "user"]
            guard let name = role.stringValue, roles.contains(name) else {
                return invalidValue("\(param).role", role.stringValue ?? role.serialized(), supported: roles)
            }
            let partTypes = name == "assistant" ? ["output_text", "refusal"] : ["input_text", "input_image", "input_file"]
            switch item["content"] {
            case nil, .null?: return missing("\(param).content")
            case .string?: return nil
            case .array(let parts)?:
                for (index, part) in parts.enumerated() {
                    let partParam = "\(param).content[\(index)]"
                    guard part.objectValue != nil else { return invalidType(partParam, expected: "an object", got: part) }
                    guard let partType = part["type"]?.stringValue else { return missing("\(partParam).type") }
                    guard partTypes.contains(partType) else { return invalidValue(partParam, partType, supported: partTypes) }
                    let field = partType == "refusal" ? "refusal" : "text"
                    if partType.hasSuffix("_text") || partType == "refusal", part[field]?.stringValue == nil {
                        return missing("\(partParam).\(field)")
                    }
                }
                return nil
            case let other?: return invalidType("\(param).content", expected: "one of a string or array of content parts", got: other)
            }
        case "function_call":
            for field in ["call_id", "name", "arguments"] {
                if let rejection = requireString(field) { return rejection }
            }
            knownCallIDs.insert(item["call_id"]!.stringValue!)
            return nil
        case "function_call_output":
            if let rejection = requireString("call_id") { return rejection }
            switch item["output"] {
            case nil, .null?: return missing("\(param).output")
            case .string?, .array?: break
            case let other?: return invalidType("\(param).output", expected: "one of a string or array", got: other)
            }
            let callID = item["call_id"]!.stringValue!
            guard knownCallIDs.contains(callID) else {
                return error(400, "No tool call found for function call output with call_id \(callID).", param: "input")
            }
            return nil
        case "reasoning":
            if !stored, item["encrypted_content"]?.stringValue == nil {
                let id = item["id"]?.stringValue ?? ""
                return error(itemNotPersistedStatus,
                             "Item with id '\(id)' not found. Items are not persisted when `store` is set to false. "
                                + "Try again with `store` set to true, or remove this item from your input.",
                             param: "input")
            }
            return nil
        default:
            return invalidValue("\(param).type", type, supported: ["message", "function_call", "function_call_output", "reasoning"])
        }
    }

    // MARK: - Answers

    /// `prefix` and 24 random bytes in hex, like OpenAI's ids.
    static func makeID(_ prefix: String) -> String {
        var id = prefix
        for _ in 0..<24 {
            let byte = UInt8.random(in: 0...255)
            id += byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }
        return id
    }

    /// The request's input items (a string input is one user message).
    static func inputItems(_ request: JSON) -> [JSON] {
        if let text = request["input"]?.stringValue { return [["role": "user", "content": .string(text)]] }
        return request["input"]?.arrayValue ?? []
    }

    static func answerText(for request: JSON) -> String {
        "Hello from openai: \(FakeText.lastUserText(["messages": .array(inputItems(request))]))"
    }

    /// True when the answer is a function call: there are tools and the input does not end with a tool's output.
    static func callsTool(_ request: JSON) -> Bool {
        guard !(request["tools"]?.arrayValue ?? []).isEmpty else { return false }
        return inputItems(request).last?["type"]?.stringValue != "function_call_output"
    }

    static func usage(for request: JSON, answer: String) -> JSON {
        let input = 10 + FakeText.characterCount(request) / 4
        let output = answer.split(separator: " ").count
        return ["input_tokens": .int(Int64(input)), "input_tokens_details": ["cached_tokens": 0],
                "output_tokens": .int(Int64(output)), "output_tokens_details": ["reasoning_tokens": 0],
                "total_tokens": .int(Int64(input + output))]
    }

    static func messageItem(id: String, text: String?, status: String) -> JSON {
        let content: [JSON] = text.map { [textPart($0)] } ?? []
        return ["id": .string(id), "type": "message", "status": .string(status), "role": "assistant", "content": .array(content)]
    }

    static func textPart(_ text: String) -> JSON {
        ["type": "output_text", "annotations": [], "logprobs": [], "text": .string(text)]
    }

    static func functionCallItem(id: String, name: String, arguments: String, status: String) -> JSON {
        ["id": .string(id), "type": "function_call", "status": .string(status), "arguments": .string(arguments),
         "call_id": "call_fake1", "name": .string(name)]
    }

    /// The completed `response` object OpenAI answers `request` with: the output, the usage and the request's
    /// parameters echoed with the API's defaults.
    static func response(for request: JSON, id: String = makeID("resp_")) -> JSON {
        let output: JSON
        let answer: String
        if callsTool(request) {
            let name = request["tools"]?.arrayValue?.first?["name"]?.stringValue ?? "tool"
            output = functionCallItem(id: makeID("fc_"), name: name, arguments: "{\"city\":\"Paris\"}", status: "completed")
            answer = "call"
        } else {
            answer = answerText(for: request)
            output = messageItem(id: makeID("msg_"), text: answer, status: "completed")
        }
        var object = echoedParameters(of: request)
        object["id"] = .string(id)
        object["object"] = "response"
        object["created_at"] = .int(Int64(Date().timeIntervalSince1970))
        object["status"] = "completed"
        object["error"] = .null
        object["incomplete_details"] = .null
        object["model"] = request["model"] ?? ""
        object["output"] = [output]
        object["usage"] = usage(for: request, answer: answer)
        return .object(object)
    }

    /// The request's parameters as a response echoes them, with the API's defaults for those it left out.
    static func echoedParameters(of request: JSON) -> [String: JSON] {
        func value(_ key: String, default fallback: JSON) -> JSON {
            guard let value = request[key], !value.isNull else { return fallback }
            return value
        }
        var text = request["text"]?.objectValue ?? [:]
        if text["format"] == nil || text["format"]!.isNull { text["format"] = ["type": "text"] }
        if text["verbosity"] == nil { text["verbosity"] = "medium" }
        let tier = request["service_tier"]?.stringValue
        let tools = (request["tools"]?.arrayValue ?? []).map { tool -> JSON in
            var tool = tool
            if tool["description"] == nil { tool["description"] = .null }
            if tool["parameters"] == nil { tool["parameters"] = .null }
            if tool["strict"] == nil { tool["strict"] = true }
            return tool
        }
        return [
            "background": value("background", default: false),
            "instructions": value("instructions", default: .null),
            "max_output_tokens": value("max_output_tokens", default: .null),
            "max_tool_calls": value("max_tool_calls", default: .null),
            "metadata": value("metadata", default: [:]),
            "parallel_tool_calls": value("parallel_tool_calls", default: true),
            "previous_response_id": value("previous_response_id", default: .null),
            "prompt_cache_key": value("prompt_cache_key", default: .null),
            "reasoning": ["effort": request["reasoning"]?["effort"] ?? .null, "summary": request["reasoning"]?["summary"] ?? .null],
            "safety_identifier": value("safety_identifier", default: .null),
            "service_tier": .string(tier == nil || tier == "auto" ? "default" : tier!),
            "store": value("store", default: true),
            "temperature": value("temperature", default: 1.0),
            "text": .object(text),
            "tool_choice": value("tool_choice", default: "auto"),
            "tools": .array(tools),
            "top_logprobs": value("top_logprobs", default: 0),
            "top_p": value("top_p", default: 1.0),
            "truncation": value("truncation", default: "disabled"),
            "user": value("user", default: .null),
        ]
    }

    /// The stream of `request`'s answer (`streamEvents(of:)` of `response(for:)`).
    static func streamEvents(for request: JSON) -> [ServerSentEvent] {
        streamEvents(of: response(for: request))
    }

    /// The Responses API's events for the completed `response`: each `event: <type>` with data holding the type and
    /// a `sequence_number` from 0, ending with `response.completed` (no `[DONE]`). Model `stream-truncate` keeps
    /// only the first three events.
    static func streamEvents(of response: JSON) -> [ServerSentEvent] {
        var payloads: [JSON] = []
        var opening = response
        opening["status"] = "in_progress"
        opening["output"] = []
        opening["usage"] = .null
        payloads.append(["type": "response.created", "response": opening])
        payloads.append(["type": "response.in_progress", "response": opening])
        for (outputIndex, item) in (response["output"]?.arrayValue ?? []).enumerated() {
            let itemID = item["id"] ?? ""
            let index = JSON.int(Int64(outputIndex))
            if item["type"]?.stringValue == "function_call" {
                let arguments = item["arguments"]?.stringValue ?? ""
                var added = item
                added["status"] = "in_progress"
                added["arguments"] = ""
                payloads.append(["type": "response.output_item.added", "output_index": index, "item": added])
                for delta in argumentPieces(arguments) {
                    payloads.append(["type": "response.function_call_arguments.delta", "item_id": itemID, "output_index": index, "delta": .string(delta)])
                }
                payloads.append(["type": "response.function_call_arguments.done", "item_id": itemID, "output_index": index, "arguments": .string(arguments)])
            } else {
                let text = item["content"]?.arrayValue?.first?["text"]?.stringValue ?? ""
                var added = item
                added["status"] = "in_progress"
                added["content"] = []
                payloads.append(["type": "response.output_item.added", "output_index": index, "item": added])
                let location: [String: JSON] = ["item_id": itemID, "output_index": index, "content_index": 0]
                func event(_ type: String, _ fields: [String: JSON]) -> JSON {
                    .object(location.merging(fields) { _, new in new }.merging(["type": .string(type)]) { _, new in new })
                }
                payloads.append(event("response.content_part.added", ["part": textPart("")]))
                for piece in FakeText.pieces(text) {
                    payloads.append(event("response.output_text.delta", ["delta": .string(piece), "logprobs": []]))
                }
                payloads.append(event("response.output_text.done", ["text": .string(text), "logprobs": []]))
                payloads.append(event("response.content_part.done", ["part": textPart(text)]))
            }
            payloads.append(["type": "response.output_item.done", "output_index": index, "item": item])
        }
        payloads.append(["type": "response.completed", "response": response])
        if response["model"]?.stringValue == "stream-truncate" { payloads = Array(payloads.prefix(3)) }
        return payloads.enumerated().map { number, payload in
            var payload = payload
            payload["sequence_number"] = .int(Int64(number))
            return ServerSentEvent(event: payload["type"]?.stringValue, data: payload.serialized())
        }
    }

    /// The arguments in the two deltas OpenAI would stream them in: `{"city":` and `"Paris"}` for the fake's call.
    static func argumentPieces(_ arguments: String) -> [String] {
        guard let colon = arguments.firstIndex(of: ":") else { return [arguments] }
        let cut = arguments.index(after: colon)
        return [String(arguments[..<cut]), String(arguments[cut...])]
    }
}
