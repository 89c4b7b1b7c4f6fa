import HTTPTypes

extension HTTPField.Name {
    static let failover = HTTPField.Name("X-Failover")!
    static let originalProvider = HTTPField.Name("X-Original-Provider")!
    static let attempts = HTTPField.Name("X-Attempts")!
    static let cacheSimilarity = HTTPField.Name("X-Cache-Similarity")!
    static let cacheEntry = HTTPField.Name("X-Cache-Entry")!
}

/// The gateway's headers on an answer, whatever the client's dialect.
enum AnswerHeaders {
    /// `X-Provider` (the configured provider's name), `X-Model`, `X-Attempts`, and `X-Failover` with
    /// `X-Original-Provider` (the first choice's provider name) when a fallback or another deployment answered.
    static func routing(model: ResolvedModel, original: ResolvedModel, attempts: Int) -> HTTPFields {
        var headers: HTTPFields = [:]
        headers[.provider] = model.provider.name
        headers[.servedModel] = model.upstream
        headers[.attempts] = String(attempts)
        if model.provider.name != original.provider.name || model.upstream != original.upstream {
            headers[.failover] = "true"
            headers[.originalProvider] = original.provider.name
        }
        return headers
    }

    /// The headers of a complete answer, from this request's upstream call or shared with an identical one
    /// (`joined`: then `X-Cache-Hit: exact` and no cost); returns the cost to report (nil when unpriced).
    static func answered(_ shared: SharedAnswer, joined: Bool, latencyMs: Int, into headers: inout HTTPFields) -> Double? {
        let served = shared.served
        headers.append(contentsOf: routing(model: served.model, original: served.original, attempts: joined ? 0 : served.attempts))
        headers[.latency] = String(latencyMs)
        let cost = joined ? 0 : shared.costUSD
        if joined { headers[.cacheHit] = "exact" }
        if let cost { headers[.cost] = CostFormat.usd(cost) }
        return cost
    }

    /// The headers of an answer a cache tier gave: who made it, no attempt, no cost.
    static func cacheHit(_ hit: AnswerCache.Hit) -> HTTPFields {
        var headers: HTTPFields = [:]
        headers[.cacheHit] = hit.label
        if let similarity = hit.similarity { headers[.cacheSimilarity] = formatSimilarity(similarity) }
        if let entry = hit.entry { headers[.cacheEntry] = entry }
        headers[.provider] = hit.answer.provider
        headers[.servedModel] = hit.answer.upstreamModel
        headers[.attempts] = "0"
        headers[.cost] = CostFormat.usd(0)
        return headers
    }

    /// A similarity with 4 decimals, never above 1 (float rounding can reach 1.0000001).
    static func formatSimilarity(_ similarity: Double) -> String {
        let tenThousandths = Int((min(max(similarity, -1), 1) * 10_000).rounded())
        let magnitude = abs(tenThousandths)
        let fraction = String(magnitude % 10_000)
        return (tenThousandths < 0 ? "-" : "") + "\(magnitude / 10_000)." + String(repeating: "0", count: 4 - fraction.count) + fraction
    }

    /// A stream's head: server-sent events, never cached by intermediaries.
    static func stream(into headers: inout HTTPFields) {
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
    }
}
