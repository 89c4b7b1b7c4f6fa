/// Token counts of one answer, in OpenAI's terms.
///
/// The numbers come from providers, so they are untrusted: every count is kept within `0...maximumTokens`
/// (2^40, far beyond any real answer), so sums, costs and the limits settled from them cannot overflow.
public struct Usage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// Prompt tokens served from the provider's prompt cache (part of `promptTokens`).
    public var cachedTokens: Int
    /// Prompt tokens written to the provider's prompt cache (part of `promptTokens`; Anthropic reports them).
    public var cacheWriteTokens: Int

    /// The largest count a usage keeps (2^40).
    public static let maximumTokens = 1 << 40

    public init(promptTokens: Int = 0, completionTokens: Int = 0, cachedTokens: Int = 0, cacheWriteTokens: Int = 0) {
        self.promptTokens = Self.bounded(promptTokens)
        self.completionTokens = Self.bounded(completionTokens)
        self.cachedTokens = Self.bounded(cachedTokens)
        self.cacheWriteTokens = Self.bounded(cacheWriteTokens)
    }

    /// `count` within `0...maximumTokens`.
    static func bounded(_ count: Int) -> Int {
        min(max(0, count), maximumTokens)
    }

    /// A token count a provider reported, within `0...maximumTokens`: integers and integral doubles of any size
    /// (`2e17`, `1e300`) are clamped; anything else (negative, fractional, not a number) is 0.
    public static func count(_ value: JSON?) -> Int {
        switch value {
        case .int(let number): return number <= 0 ? 0 : Int(min(number, Int64(maximumTokens)))
        case .double(let number) where number.isFinite && number > 0:
            return number >= Double(maximumTokens) ? maximumTokens : Int(number.rounded(.down))
        default: return 0
        }
    }

    public var totalTokens: Int { promptTokens + completionTokens }

    /// OpenAI's `usage` object.
    public var json: JSON {
        var object: [String: JSON] = [
            "prompt_tokens": .int(Int64(promptTokens)),
            "completion_tokens": .int(Int64(completionTokens)),
            "total_tokens": .int(Int64(totalTokens)),
        ]
        var details: [String: JSON] = ["cached_tokens": .int(Int64(cachedTokens))]
        // Not OpenAI's; only there when a provider reported cache writes, so the cache keeps them for the record.
        if cacheWriteTokens > 0 { details["cache_write_tokens"] = .int(Int64(cacheWriteTokens)) }
        object["prompt_tokens_details"] = .object(details)
        return .object(object)
    }

    /// Reads OpenAI's `usage` object.
    public init?(openAI usage: JSON?) {
        guard let usage, usage.objectValue != nil else { return nil }
        self.init(
            promptTokens: Self.count(usage["prompt_tokens"]),
            completionTokens: Self.count(usage["completion_tokens"]),
            cachedTokens: Self.count(usage["prompt_tokens_details"]?["cached_tokens"]),
            cacheWriteTokens: Self.count(usage["prompt_tokens_details"]?["cache_write_tokens"]))
    }

    /// Cost in USD at `price` (per one million tokens): cache reads at `cachedInput`, cache writes at `cacheWrite`,
    /// the rest of the prompt at `input`.
    public func cost(at price: Price) -> Double {
        let cached = min(cachedTokens, promptTokens)
        let written = min(cacheWriteTokens, promptTokens - cached)
        let uncached = promptTokens - cached - written
        let input = Double(uncached) * price.input + Double(cached) * (price.cachedInput ?? price.input)
            + Double(written) * (price.cacheWrite ?? price.input)
        return (input + Double(completionTokens) * price.output) / 1_000_000
    }
}

extension FixedWidthInteger {
    /// The sum, or the type's largest / smallest value where it would overflow.
    func addingSaturated(_ other: Self) -> Self {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}
