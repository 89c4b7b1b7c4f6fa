/// An HTTP request to send to a provider, built by a `ProviderAdapter`.
public struct UpstreamRequest: Sendable {
    /// Path and query to append to the provider's `base_url`; every dynamic part already percent-encoded.
    public var path: String
    /// Headers, the credential included.
    public var headers: [(name: String, value: String)]
    /// The JSON body.
    public var body: JSON
    /// The body's bytes as the client sent them (`NativeRequest`), sent instead of `body` when set.
    public var rawBody: [UInt8]?
    /// The client's API the body is in, when it went out as sent: the answer is in that API too.
    public var nativeDialect: NativeDialect?

    public init(path: String, headers: [(name: String, value: String)], body: JSON) {
        self.path = path
        self.headers = headers
        self.body = body
    }

    /// A request whose body goes out as `rawBody`, byte for byte.
    public init(path: String, headers: [(name: String, value: String)], rawBody: [UInt8]) {
        self.path = path
        self.headers = headers
        self.body = .null
        self.rawBody = rawBody
    }

    /// The value of the first header called `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// A complete non-streamed answer, translated to OpenAI's `chat.completion`.
public struct ChatCompletion: Sendable {
    /// The `chat.completion` object.
    public var body: JSON
    /// Token usage, when the provider reported it.
    public var usage: Usage?
    /// The provider's body as it came (without surrounding whitespace), when `body` is that body untouched:
    /// the answer then goes out as the provider wrote it, not written again from `body`.
    public var text: [UInt8]?
    /// The provider's body as it came, when it answered in the client's own API (`NativeRequest`): the answer goes
    /// to the client as it is, `body` serving the cache, the record and the price.
    public var native: [UInt8]?

    public init(body: JSON, usage: Usage?, text: [UInt8]? = nil) {
        self.body = body
        self.usage = usage
        self.text = text
    }
}

/// Translates between OpenAI's Chat Completions API and one provider's API.
///
/// Adapters are stateless values; the per-stream state lives in the `StreamTranslator` they make.
public protocol ProviderAdapter: Sendable {
    /// Builds the upstream request for `request`.
    /// - Parameters:
    ///   - request: the validated client request.
    ///   - upstreamModel: the model id to ask the provider for.
    ///   - provider: the provider's settings (key, headers, defaults).
    /// - Throws: `GatewayError` (400) when the request asks for something this provider cannot do.
    func makeRequest(_ request: ChatRequest, upstreamModel: String, provider: ProviderConfig) throws(GatewayError)
        -> UpstreamRequest

    /// Translates a successful (2xx) non-streamed response body.
    /// - Parameter model: the model name to report to the client.
    func translateResponse(_ body: JSON, model: String) throws(GatewayError) -> ChatCompletion

    /// Makes the translator for one streamed response.
    /// - Parameters:
    ///   - model: the model name to report to the client.
    ///   - includeUsage: whether the client asked for the final usage chunk.
    func makeStreamTranslator(model: String, includeUsage: Bool) -> any StreamTranslator

    /// The human-readable message inside a provider's error body, if it has one.
    func errorMessage(from body: JSON) -> String?

    /// Whether `translateResponse` returns the provider's body untouched, so its text can go to the client as it
    /// came (`ChatCompletion.text`).
    var passesAnswersThrough: Bool { get }

    /// The client API this provider speaks natively; a request in it goes through as the client sent it.
    var nativeDialect: NativeDialect? { get }

    /// Whether `provider` takes requests in `dialect` as the client sent them; by default, when it is `nativeDialect`.
    func speaks(_ dialect: NativeDialect, provider: ProviderConfig) -> Bool

    /// The request for `native`, a body in a dialect the provider `speaks`: the body as sent, with `upstreamModel`.
    func makePassthroughRequest(_ native: NativeRequest, upstreamModel: String, provider: ProviderConfig) throws(GatewayError)
        -> UpstreamRequest
}

extension ProviderAdapter {
    public var passesAnswersThrough: Bool { false }

    public var nativeDialect: NativeDialect? { nil }

    public func speaks(_ dialect: NativeDialect, provider: ProviderConfig) -> Bool { nativeDialect == dialect }

    public func makePassthroughRequest(_ native: NativeRequest, upstreamModel: String, provider: ProviderConfig) throws(GatewayError)
        -> UpstreamRequest
    {
        throw .invalidRequest("Provider '\(provider.name)' does not speak this API natively.")
    }
}

/// Turns one provider's streamed events into OpenAI `chat.completion.chunk` payloads.
public protocol StreamTranslator: Sendable {
    /// Consumes one upstream server-sent event and returns the `data:` payloads to send to the client, in order.
    /// - Throws: `GatewayError` when the provider reports an error inside the stream.
    mutating func consume(_ event: ServerSentEvent) throws(GatewayError) -> [String]

    /// Called once the upstream stream has ended; returns the last payloads, `[DONE]` included.
    /// - Throws: `GatewayError` when the stream ended before the provider said it was complete.
    mutating func finish() throws(GatewayError) -> [String]

    /// Usage seen so far (complete once `finish()` has returned).
    var usage: Usage? { get }
}
