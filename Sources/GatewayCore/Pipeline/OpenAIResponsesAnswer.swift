import Hummingbird
import HTTPTypes
import NIOCore

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
