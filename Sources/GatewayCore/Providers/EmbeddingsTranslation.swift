import Foundation

/// One embedding vector as a provider sent it: its numbers kept as they were written, so a float answer goes back
/// to the client digit for digit.
struct EmbeddingVector: Sendable, Equatable {
    var values: [Double]

    /// The vector as a JSON array of numbers.
    var json: JSON { .array(values.map { .double($0) }) }

    /// The vector as float32 values (what `base64` encodes, and what the semantic cache keeps).
    var floats: [Float] { values.map { Float($0) } }

    /// OpenAI's `encoding_format: base64`: the little-endian float32 values, base64-encoded.
    var base64: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 4)
        for value in values {
            let bits = Float(value).bitPattern.littleEndian
            withUnsafeBytes(of: bits) { bytes.append(contentsOf: $0) }
        }
        return Data(bytes).base64EncodedString()
    }

    /// Reads a JSON array of finite numbers, or a base64 string of little-endian float32 values.
    init?(_ json: JSON) {
        switch json {
        case .array(let items):
            guard !items.isEmpty else { return nil }
            var values: [Double] = []
            values.reserveCapacity(items.count)
            for item in items {
                guard let value = item.doubleValue, value.isFinite else { return nil }
                values.append(value)
            }
            self.values = values
        case .string(let text):
            guard let data = Data(base64Encoded: text), !data.isEmpty, data.count % 4 == 0 else { return nil }
            var values: [Double] = []
            values.reserveCapacity(data.count / 4)
            data.withUnsafeBytes { raw in
                for offset in stride(from: 0, to: raw.count, by: 4) {
                    values.append(Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))))
                }
            }
            guard values.allSatisfy(\.isFinite) else { return nil }
            self.values = values
        default:
            return nil
        }
    }

    init(values: [Double]) {
        self.values = values
    }
}

/// OpenAI's embeddings API, also every OpenAI-compatible server's (vLLM, Ollama, llama.cpp, text-embeddings-inference).
enum OpenAIEmbeddings {
    /// `POST /embeddings` with the client's body and the upstream model id.
    static func request(for request: EmbeddingsRequest, upstreamModel: String, provider: ProviderConfig) -> UpstreamRequest {
        var body = request.body
        body["model"] = .string(upstreamModel)
        return UpstreamRequest(path: "/embeddings", headers: OpenAIAdapter.headers(for: provider), body: .object(body))
    }

    /// The vectors of an answer, in input order (by each item's `index`), and `usage.prompt_tokens` when present.
    static func vectors(from body: JSON) throws(GatewayError) -> ([EmbeddingVector], Int?) {
        guard let data = body["data"]?.arrayValue else {
            throw .badGateway("The provider's answer is not an embeddings list.")
        }
        var vectors = [EmbeddingVector?](repeating: nil, count: data.count)
        for (position, item) in data.enumerated() {
            let index = item["index"]?.intValue ?? position
            guard index >= 0, index < data.count, vectors[index] == nil, let embedding = item["embedding"], let vector = EmbeddingVector(embedding)
            else {
                throw .badGateway("The provider's embeddings list has an item without a valid vector (item \(position)).")
            }
            vectors[index] = vector
        }
        let tokens = body["usage"]?["prompt_tokens"].map(Usage.count)
        return (vectors.compactMap { $0 }, tokens)
    }
}

/// Gemini's `embedContent` (one text) and `batchEmbedContents` (several), translated both ways.
enum GeminiEmbeddings {
    /// The most requests one `batchEmbedContents` takes.
    static let maximumBatch = 100

    static func request(for request: EmbeddingsRequest, upstreamModel: String, provider: ProviderConfig) throws(GatewayError) -> UpstreamRequest {
        guard case .texts(let texts) = request.input else {
            throw .invalidRequest(
                "The model '\(request.model)' is served by Gemini, whose embeddings API takes text, not token ids.", param: "input")
        }
        guard texts.count <= maximumBatch else {
            throw .invalidRequest(
                "The model '\(request.model)' is served by Gemini, which embeds at most \(maximumBatch) inputs per request; this one has \(texts.count).",
                param: "input")
        }
        let id = upstreamModel.hasPrefix("models/") ? String(upstreamModel.dropFirst("models/".count)) : upstreamModel
        let segment = GeminiAdapter.percentEncodedSegment(id)
        func embedRequest(_ text: String, named: Bool) -> JSON {
            var object: [String: JSON] = ["content": ["parts": [["text": .string(text)]]]]
            if named { object["model"] = .string("models/" + id) }
            if let dimensions = request.dimensions { object["outputDimensionality"] = .int(Int64(dimensions)) }
            return .object(object)
        }
        let headers = GeminiAdapter.headers(for: provider)
        if texts.count == 1 {
            return UpstreamRequest(path: "/v1beta/models/\(segment):embedContent", headers: headers, body: embedRequest(texts[0], named: false))
        }
        let body: JSON = ["requests": .array(texts.map { embedRequest($0, named: true) })]
        return UpstreamRequest(path: "/v1beta/models/\(segment):batchEmbedContents", headers: headers, body: body)
    }

    /// `{"embedding": {"values": […]}}` or `{"embeddings": [{"values": […]}, …]}`; Gemini reports no token count
    /// for embeddings, unless a `usageMetadata.promptTokenCount` is there.
    static func vectors(from body: JSON) throws(GatewayError) -> ([EmbeddingVector], Int?) {
        let items: [JSON]
        if let single = body["embedding"] {
            items = [single]
        } else if let many = body["embeddings"]?.arrayValue {
            items = many
        } else {
            throw .badGateway("The provider's answer holds no embeddings.")
        }
        var vectors: [EmbeddingVector] = []
        for (position, item) in items.enumerated() {
            guard let values = item["values"], let vector = EmbeddingVector(values), values.arrayValue != nil else {
                throw .badGateway("The provider's embedding \(position) has no valid values.")
            }
            vectors.append(vector)
        }
        return (vectors, body["usageMetadata"]?["promptTokenCount"].map(Usage.count))
    }
}
