/// Token counts of one answer, in OpenAI's terms.
public struct Usage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// Prompt tokens served from the provider's prompt cache (part of `promptTokens`).
    public var cachedTokens: Int

    public init(promptTokens: Int = 0, completionTokens: Int = 0, cachedTokens: Int = 0) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedTokens = cachedTokens
    }

    public var totalTokens: Int { promptTokens + completionTokens }

    /// OpenAI's `usage` object.
    public var json: JSON {
        var object: [String: JSON] = [
            "prompt_tokens": .int(Int64(promptTokens)),
            "completion_tokens": .int(Int64(completionTokens)),
            "total_tokens": .int(Int64(totalTokens)),
        ]
        object["prompt_tokens_details"] = ["cached_tokens": .int(Int64(cachedTokens))]
        return .object(object)
    }

    /// Reads OpenAI's `usage` object.
    public init?(openAI usage: JSON?) {
        guard let usage, usage.objectValue != nil else { return nil }
        self.init(
            promptTokens: usage["prompt_tokens"]?.intValue ?? 0,
            completionTokens: usage["completion_tokens"]?.intValue ?? 0,
            cachedTokens: usage["prompt_tokens_details"]?["cached_tokens"]?.intValue ?? 0)
    }

    /// Cost in USD at `price` (per one million tokens).
    public func cost(at price: Price) -> Double {
        let cached = min(cachedTokens, promptTokens)
        let uncached = promptTokens - cached
        let input = Double(uncached) * price.input + Double(cached) * (price.cachedInput ?? price.input)
        return (input + Double(completionTokens) * price.output) / 1_000_000
    }
}
