/// A validated OpenAI embeddings request (`POST /v1/embeddings`): the gateway's canonical form of every
/// provider's embeddings call.
///
/// Accepted as OpenAI accepts it: `input` is a string, an array of strings, an array of token ids, or an array of
/// arrays of token ids (at most `maximumInputs` items, none empty); `encoding_format` is `float` (the default) or
/// `base64`; `dimensions` is a positive integer; `user` a string. Other members go through to OpenAI-compatible
/// servers untouched.
public struct EmbeddingsRequest: Sendable {
    /// What to embed.
    public enum Input: Sendable, Equatable {
        case texts([String])
        case tokens([[Int]])

        /// How many vectors the answer holds.
        public var count: Int {
            switch self {
            case .texts(let texts): texts.count
            case .tokens(let tokens): tokens.count
            }
        }
    }

    /// The complete request object.
    public var body: [String: JSON]
    /// `model` as the client sent it.
    public var model: String
    public var input: Input
    /// `encoding_format: base64`: each vector as the base64 of its little-endian float32 values.
    public var base64: Bool
    /// `dimensions`, when given.
    public var dimensions: Int?

    /// OpenAI's limit on the inputs of one request.
    public static let maximumInputs = 2048

    /// Parses and validates a request body.
    /// - Throws: `GatewayError` (400) naming the parameter at fault.
    public init<Bytes: Collection>(parsing bytes: Bytes) throws(GatewayError) where Bytes.Element == UInt8 {
        try self.init(json: try ChatRequest.parseBody(bytes))
    }

    /// Validates an already parsed body.
    public init(json: JSON) throws(GatewayError) {
        guard let body = json.objectValue else {
            throw .invalidRequest("The request body must be a JSON object, not \(json.typeName).")
        }
        guard let model = body["model"]?.stringValue, !model.isEmpty else {
            throw .invalidRequest("You must provide a model parameter.", param: "model", code: "missing_required_parameter")
        }
        guard ChatRequest.isPlausibleModelName(model) else {
            throw .invalidRequest("Invalid 'model': at most \(ChatRequest.longestModelName) bytes without control characters.", param: "model")
        }
        guard let input = body["input"], !input.isNull else {
            throw .invalidRequest("Missing required parameter: 'input'.", param: "input", code: "missing_required_parameter")
        }
        self.body = body
        self.model = model
        self.input = try Self.readInput(input)
        switch body["encoding_format"] {
        case nil, .null, .string("float"): base64 = false
        case .string("base64"): base64 = true
        default:
            throw .invalidRequest("Invalid 'encoding_format': expected 'float' or 'base64'.", param: "encoding_format")
        }
        switch body["dimensions"] {
        case nil, .null: dimensions = nil
        case let value?:
            guard let number = value.intValue, number >= 1, number <= 65_536 else {
                throw .invalidRequest("Invalid 'dimensions': expected a positive integer.", param: "dimensions")
            }
            dimensions = number
        }
        if let user = body["user"], !user.isNull, user.stringValue == nil {
            throw .invalidRequest("Invalid 'user': expected a string, but got \(user.typeName) instead.", param: "user")
        }
    }

    private static func readInput(_ input: JSON) throws(GatewayError) -> Input {
        let invalid = GatewayError.invalidRequest(
            "Invalid 'input': expected a non-empty string, an array of non-empty strings, an array of token ids, or an array of arrays of token ids (at most \(maximumInputs)).",
            param: "input")
        switch input {
        case .string(let text):
            guard !text.isEmpty else { throw invalid }
            return .texts([text])
        case .array(let items):
            guard !items.isEmpty, items.count <= maximumInputs else { throw invalid }
            switch items[0] {
            case .string:
                var texts: [String] = []
                texts.reserveCapacity(items.count)
                for item in items {
                    guard let text = item.stringValue, !text.isEmpty else { throw invalid }
                    texts.append(text)
                }
                return .texts(texts)
            case .array:
                var lists: [[Int]] = []
                for item in items {
                    guard let list = item.arrayValue, let tokens = tokenIDs(list) else { throw invalid }
                    lists.append(tokens)
                }
                return .tokens(lists)
            default:
                guard let tokens = tokenIDs(items) else { throw invalid }
                return .tokens([tokens])
            }
        default:
            throw invalid
        }
    }

    private static func tokenIDs(_ items: [JSON]) -> [Int]? {
        guard !items.isEmpty else { return nil }
        var tokens: [Int] = []
        tokens.reserveCapacity(items.count)
        for item in items {
            guard case .int(let id) = item, id >= 0, id <= Int64(Int32.max) else { return nil }
            tokens.append(Int(id))
        }
        return tokens
    }

    /// The input's tokens before any provider counts them: token ids as given, text at a token per 4 characters.
    public var estimatedTokens: Int {
        switch input {
        case .texts(let texts): texts.reduce(0) { $0 + ($1.unicodeScalars.count + 3) / 4 }
        case .tokens(let lists): lists.reduce(0) { $0 + $1.count }
        }
    }
}

extension EmbeddingsRequest: UpstreamOperation {
    public var streams: Bool { false }

    public func makeRequest(adapter: any ProviderAdapter, upstreamModel: String, provider: ProviderConfig) throws(GatewayError) -> UpstreamRequest {
        switch provider.type {
        case .openai: OpenAIEmbeddings.request(for: self, upstreamModel: upstreamModel, provider: provider)
        case .gemini: try GeminiEmbeddings.request(for: self, upstreamModel: upstreamModel, provider: provider)
        case .anthropic:
            throw GatewayError.invalidRequest(
                "The model '\(model)' is served by provider '\(provider.name)' (anthropic), and Anthropic has no embeddings API.",
                param: "model", code: "embeddings_not_supported")
        }
    }

    /// Translates a provider's successful answer into OpenAI's embeddings list, in the encoding the client asked for.
    /// - Throws: `GatewayError` (502) when the answer is not a list of one vector per input.
    func translateAnswer(_ body: JSON, provider: ProviderType, upstreamModel: String) throws(GatewayError) -> ChatCompletion {
        let vectors: [EmbeddingVector]
        let reportedTokens: Int?
        switch provider {
        case .gemini: (vectors, reportedTokens) = try GeminiEmbeddings.vectors(from: body)
        default: (vectors, reportedTokens) = try OpenAIEmbeddings.vectors(from: body)
        }
        guard vectors.count == input.count else {
            throw .badGateway("The provider answered \(vectors.count) embeddings for \(input.count) inputs.")
        }
        let tokens = reportedTokens ?? estimatedTokens
        var data: [JSON] = []
        data.reserveCapacity(vectors.count)
        for (index, vector) in vectors.enumerated() {
            data.append(["object": "embedding", "index": .int(Int64(index)), "embedding": base64 ? .string(vector.base64) : vector.json])
        }
        let answer: JSON = [
            "object": "list", "data": .array(data), "model": .string(body["model"]?.stringValue ?? upstreamModel),
            "usage": ["prompt_tokens": .int(Int64(tokens)), "total_tokens": .int(Int64(tokens))],
        ]
        return ChatCompletion(body: answer, usage: Usage(promptTokens: tokens))
    }
}
