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
        let storeAsked = extras.store
        extras.store = false
        let object = json.objectValue ?? [:]
        request.responses = ResponsesContext(
            id: Self.makeResponseID(), extras: extras, storeAsked: storeAsked, body: object, input: Self.inputItems(of: json["input"]))
        request.native = Self.nativeRequest(body: Array(body.readableBytesView), object: object)
        return request
    }

    /// Follows `previous_response_id` (the previous conversation goes before this request's input) and, when the
    /// request asks for it (`store`, true by default), arranges for the response to be kept for its key.
    /// - Throws: `GatewayError`: 404 `previous_response_not_found` for a response that is not there for this key (or
    ///   expired; OpenAI says 400 with the same code), 400 when the gateway keeps no responses
    ///   (`request_log.backend: off`), 503 when the database cannot be asked.
    public func prepare(_ request: ChatRequest, key: KeyConfig, context requestContext: GatewayRequestContext) async throws -> ChatRequest {
        guard var context = request.responses else { return request }
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
        if context.storeAsked, let stored {
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
        return try extras(of: ResponsesRequestFields(object, at: ""))
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
    /// Whether the request asked for the response to be kept (`store`, true by default); `extras.store` says whether
    /// it is.
    var storeAsked = false
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

    init(id: String, extras: ResponsesRequestExtras, storeAsked: Bool, body: [String: JSON], input: [JSON]) {
        self.id = id
        self.extras = extras
        self.storeAsked = storeAsked
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
