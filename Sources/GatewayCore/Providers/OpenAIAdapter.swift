/// OpenAI Chat Completions, and every server that speaks it (vLLM, Ollama, llama.cpp).
///
/// Requests and answers pass through nearly untouched; the gateway only sets the upstream model,
/// asks for streamed usage so every stream can be accounted, and hides that usage from clients that did not ask.
public struct OpenAIAdapter: ProviderAdapter {
    public init() {}

    public func makeRequest(_ request: ChatRequest, upstreamModel: String, provider: ProviderConfig) throws(GatewayError)
        -> UpstreamRequest
    {
        var body = request.body
        body["model"] = .string(upstreamModel)
        if request.stream {
            var options = body["stream_options"]?.objectValue ?? [:]
            options["include_usage"] = true
            body["stream_options"] = .object(options)
        }
        let headers = Self.headers(for: provider)
        return UpstreamRequest(path: "/chat/completions", headers: headers, body: .object(body))
    }

    /// The headers of every request to `provider`: JSON, the provider's key, its configured extra headers.
    static func headers(for provider: ProviderConfig) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [("content-type", "application/json")]
        if let key = provider.apiKey, !key.isEmpty { headers.append(("authorization", "Bearer \(key)")) }
        for (name, value) in provider.headers.sorted(by: { $0.key < $1.key }) { headers.append((name, value)) }
        return headers
    }

    public func translateResponse(_ body: JSON, model: String) throws(GatewayError) -> ChatCompletion {
        guard body.objectValue != nil, body["choices"]?.arrayValue != nil else {
            throw .badGateway("The provider's answer is not a chat completion.")
        }
        return ChatCompletion(body: body, usage: Usage(openAI: body["usage"]))
    }

    public func makeStreamTranslator(model: String, includeUsage: Bool) -> any StreamTranslator {
        OpenAIStreamTranslator(includeUsage: includeUsage)
    }

    /// The answer is the provider's own body.
    public var passesAnswersThrough: Bool { true }

    /// OpenAI's Responses API, where the provider serves it (`ProviderConfig.servesResponsesAPI`).
    public func speaks(_ dialect: NativeDialect, provider: ProviderConfig) -> Bool {
        dialect == .openAIResponses && provider.servesResponsesAPI
    }

    /// The client's Responses body as sent, with the deployment's model, to `POST /responses`.
    public func makePassthroughRequest(_ native: NativeRequest, upstreamModel: String, provider: ProviderConfig) throws(GatewayError)
        -> UpstreamRequest
    {
        UpstreamRequest(path: native.path, headers: Self.headers(for: provider), rawBody: try native.body(withModel: upstreamModel))
    }

    public func errorMessage(from body: JSON) -> String? {
        body["error"]?["message"]?.stringValue ?? body["message"]?.stringValue ?? body["error"]?.stringValue
    }
}

/// Forwards OpenAI chunks as they come, recording usage and removing it when the client did not ask for it.
struct OpenAIStreamTranslator: StreamTranslator {
    let includeUsage: Bool
    private(set) var usage: Usage?
    private var sawDone = false

    init(includeUsage: Bool) {
        self.includeUsage = includeUsage
    }

    mutating func consume(_ event: ServerSentEvent) throws(GatewayError) -> [String] {
        if event.data == "[DONE]" {
            sawDone = true
            return []
        }
        guard !sawDone else { return [] }
        var chunk = try event.jsonObject()
        if let error = chunk["error"], !error.isNull {
            throw GatewayError(
                status: 502, type: error["type"]?.stringValue ?? "api_error",
                message: error["message"]?.stringValue ?? "The provider reported an error in the stream.",
                code: error["code"]?.stringValue)
        }
        if let reported = Usage(openAI: chunk["usage"]) { usage = reported }
        if includeUsage { return [event.data] }
        guard chunk["usage"] != nil else { return [event.data] }
        if (chunk["choices"]?.arrayValue ?? []).isEmpty { return [] }
        chunk["usage"] = nil
        return [chunk.serialized()]
    }

    mutating func finish() throws(GatewayError) -> [String] {
        guard sawDone else {
            throw .badGateway("The provider's stream ended before it was complete.", code: "stream_truncated")
        }
        return ["[DONE]"]
    }
}
