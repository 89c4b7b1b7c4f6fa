/// The answer of a rate limiter for one request.
public struct RateDecision: Sendable, Equatable {
    /// Whether the request may go on.
    public var allowed: Bool
    /// `X-RateLimit-Limit`: the per-minute request limit (or token limit when only that is set).
    public var limit: Int
    /// `X-RateLimit-Remaining`: what is left right now (after this request when allowed).
    public var remaining: Int
    /// `X-RateLimit-Reset`: whole seconds until the bucket is full again.
    public var resetSeconds: Int
    /// `Retry-After` for a refused request: whole seconds, at least 1.
    public var retryAfterSeconds: Int

    public init(allowed: Bool, limit: Int, remaining: Int, resetSeconds: Int, retryAfterSeconds: Int) {
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.resetSeconds = resetSeconds
        self.retryAfterSeconds = retryAfterSeconds
    }
}

/// Token buckets per gateway key: burst = the per-minute figure, refilled continuously.
public protocol RateLimiterBackend: Sendable {
    /// Takes one request and `estimatedTokens` tokens from `key`'s buckets, or refuses without taking anything.
    func acquire(key: String, limit: RateLimit, estimatedTokens: Int) async throws -> RateDecision
    /// Corrects the token bucket once the real usage is known (`actualTokens - estimatedTokens`, either sign).
    func settle(key: String, limit: RateLimit, estimatedTokens: Int, actualTokens: Int) async throws
}
