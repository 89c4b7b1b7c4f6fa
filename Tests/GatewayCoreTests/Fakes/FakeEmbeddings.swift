import Foundation

@testable import GatewayCore

/// The fakes' embeddings: OpenAI's `POST /v1/embeddings` and Gemini's `embedContent` / `batchEmbedContents`, each
/// refusing what the real API refuses, with vectors known in advance.
///
/// A text's vector is a bag of words (`vector(for:)`): each lower-cased word adds 1 to the dimension its FNV-1a
/// hash picks, then the vector is normalised. Tests compute the similarity of two texts with the same function,
/// so thresholds and expected hits are exact. Model `slow-embed` answers after 5 s; `status-NNN` fails with NNN.
enum FakeEmbeddings {
    static let defaultDimensions = 64

    /// The fake's vector for `text`.
    static func vector(for text: String, dimensions: Int = defaultDimensions) -> [Double] {
        var vector = [Double](repeating: 0, count: dimensions)
        let words = text.lowercased().split { !$0.isLetter && !$0.isNumber }
        for word in words {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in word.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01b3
            }
            vector[Int(hash % UInt64(dimensions))] += 1
        }
        if words.isEmpty { vector[0] = 1 }
        let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return vector.map { $0 / norm }
    }

    /// The cosine similarity the fake's vectors give two texts.
    static func similarity(_ first: String, _ second: String) -> Double {
        zip(vector(for: first), vector(for: second)).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// Tokens the fakes report for `text`: its words.
    static func tokens(_ text: String) -> Int {
        text.split { !$0.isLetter && !$0.isNumber }.count
    }

    // MARK: - OpenAI

    static let openAIFields: Set<String> = ["model", "input", "encoding_format", "dimensions", "user"]

    /// nil when OpenAI would accept the body; else its status and error.
    static func openAIRejection(_ body: JSON) -> (status: Int, body: JSON)? {
        guard let object = body.objectValue else { return FakeOpenAIRules.error(400, "We could not parse the JSON body of your request.") }
        for key in object.keys where !openAIFields.contains(key) {
            return FakeOpenAIRules.error(400, "Unrecognized request argument supplied: \(key)")
        }
        guard let model = object["model"]?.stringValue, !model.isEmpty else { return FakeOpenAIRules.error(400, "you must provide a model parameter") }
        let invalidInput = FakeOpenAIRules.error(400, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", param: "input")
        switch object["input"] {
        case .string(let text) where !text.isEmpty: break
        case .array(let items) where !items.isEmpty && items.count <= 2048:
            let valid = items.allSatisfy { item in
                switch item {
                case .string(let text): return !text.isEmpty
                case .int(let token): return token >= 0
                case .array(let tokens): return !tokens.isEmpty && tokens.allSatisfy { ($0.intValue ?? -1) >= 0 }
                default: return false
                }
            }
            if !valid { return invalidInput }
        default: return invalidInput
        }
        if let format = object["encoding_format"], format != "float", format != "base64" {
            return FakeOpenAIRules.error(400, "Invalid value for 'encoding_format': must be 'float' or 'base64'.", param: "encoding_format")
        }
        if let dimensions = object["dimensions"] {
            if !model.hasPrefix("text-embedding-3") && !model.hasPrefix("fake-embed") {
                return FakeOpenAIRules.error(400, "This model does not support specifying dimensions.", param: "dimensions")
            }
            if (dimensions.intValue ?? 0) < 1 { return FakeOpenAIRules.error(400, "Invalid value for 'dimensions'.", param: "dimensions") }
        }
        return nil
    }

    /// OpenAI's answer: one vector per input, float or base64 as asked.
    static func openAIResponse(for body: JSON) -> JSON {
        let dimensions = body["dimensions"]?.intValue ?? defaultDimensions
        let base64 = body["encoding_format"]?.stringValue == "base64"
        let texts: [String]
        switch body["input"] {
        case .string(let text): texts = [text]
        case .array(let items) where items.first?.intValue != nil: texts = [items.map { $0.serialized() }.joined(separator: " ")]
        case .array(let items): texts = items.map { $0.stringValue ?? $0.arrayValue?.map { $0.serialized() }.joined(separator: " ") ?? "" }
        default: texts = []
        }
        let data: [JSON] = texts.enumerated().map { index, text in
            let vector = vector(for: text, dimensions: dimensions)
            let embedding: JSON = base64 ? .string(EmbeddingVector(values: vector).base64) : .array(vector.map { .double($0) })
            return ["object": "embedding", "index": .int(Int64(index)), "embedding": embedding]
        }
        let count = texts.reduce(0) { $0 + tokens($1) }
        return [
            "object": "list", "data": .array(data), "model": body["model"] ?? .null,
            "usage": ["prompt_tokens": .int(Int64(count)), "total_tokens": .int(Int64(count))],
        ]
    }

    // MARK: - Gemini

    /// `embedContent` or `batchEmbedContents` of `model`, from a request path.
    static func geminiRoute(path: String) -> (model: String, batch: Bool)? {
        let rawPath = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let prefix = "/v1beta/models/"
        guard rawPath.hasPrefix(prefix), let colon = rawPath.lastIndex(of: ":") else { return nil }
        let model = String(rawPath[rawPath.index(rawPath.startIndex, offsetBy: prefix.count)..<colon])
        switch rawPath[rawPath.index(after: colon)...] {
        case "embedContent": return (model, false)
        case "batchEmbedContents": return (model, true)
        default: return nil
        }
    }

    /// nil when Gemini would accept the body; else its status and error.
    static func geminiRejection(_ body: JSON, model: String, batch: Bool) -> (status: Int, body: JSON)? {
        func unknown(_ name: String) -> (status: Int, body: JSON) {
            FakeGeminiRules.error(400, "Invalid JSON payload received. Unknown name \"\(name)\": Cannot find field.")
        }
        func checkRequest(_ request: JSON, named: Bool) -> (status: Int, body: JSON)? {
            guard let object = request.objectValue else { return FakeGeminiRules.error(400, "Invalid JSON payload received.") }
            let known: Set<String> = ["content", "taskType", "title", "outputDimensionality", "model"]
            for key in object.keys where !known.contains(key) { return unknown(key) }
            if named, object["model"]?.stringValue != "models/" + model {
                return FakeGeminiRules.error(400, "Model name in the request (\(object["model"]?.stringValue ?? "none")) does not match the model in the URL.")
            }
            guard let parts = object["content"]?["parts"]?.arrayValue, !parts.isEmpty,
                parts.allSatisfy({ ($0["text"]?.stringValue).map { !$0.isEmpty } ?? false })
            else { return FakeGeminiRules.error(400, "* BatchEmbedContentsRequest.requests[0].content: contents is not specified") }
            if let dimensions = object["outputDimensionality"], (dimensions.intValue ?? 0) < 1 {
                return FakeGeminiRules.error(400, "Invalid value at 'output_dimensionality'.")
            }
            return nil
        }
        guard batch else { return checkRequest(body, named: false) }
        guard let object = body.objectValue else { return FakeGeminiRules.error(400, "Invalid JSON payload received.") }
        for key in object.keys where key != "requests" { return unknown(key) }
        guard let requests = object["requests"]?.arrayValue, !requests.isEmpty else {
            return FakeGeminiRules.error(400, "* BatchEmbedContentsRequest.requests: requests is not specified")
        }
        if requests.count > 100 { return FakeGeminiRules.error(400, "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch") }
        for request in requests { if let problem = checkRequest(request, named: true) { return problem } }
        return nil
    }

    /// Gemini's answer: `embedding` or `embeddings`, values only (Gemini reports no token count here).
    static func geminiResponse(for body: JSON, batch: Bool) -> JSON {
        func embedding(_ request: JSON) -> JSON {
            let text = (request["content"]?["parts"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined(separator: " ")
            let vector = vector(for: text, dimensions: request["outputDimensionality"]?.intValue ?? defaultDimensions)
            return ["values": .array(vector.map { .double($0) })]
        }
        guard batch else { return ["embedding": embedding(body)] }
        return ["embeddings": .array((body["requests"]?.arrayValue ?? []).map(embedding))]
    }
}
