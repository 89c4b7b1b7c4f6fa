import HTTPTypes

/// What the cache may do for one request: settings, the key's own, and the client's `Cache-Control`.
struct CachePolicy: Sendable {
    /// Look the answer up before asking a provider.
    var lookup: Bool
    /// Store a complete, successful answer.
    var store: Bool
    /// The entry's lifetime.
    var ttl: Duration
    /// The key's cache namespace (per key, or global).
    var namespace: String

    /// True when the cache takes part at all.
    var isActive: Bool { lookup || store }

    /// - Parameter cacheable: whether the request's answer may be cached at all (`CacheKey.isCacheable`): when not,
    ///   the cache takes no part, as if it were off.
    init(config: GatewayConfig, key: KeyConfig, cacheControl: String?, backendAvailable: Bool, cacheable: Bool = true) {
        let enabled = backendAvailable && cacheable && config.cache.backend != .off && key.cache.enabled
        let directives = Set((cacheControl ?? "").lowercased().split(separator: ",").map { $0.trimmingWhitespace() })
        self.lookup = enabled && !directives.contains("no-cache")
        self.store = enabled && !directives.contains("no-store")
        self.ttl = key.cache.ttl ?? config.cache.ttl
        self.namespace = config.cache.scope == .global ? "global" : "key:" + key.name
    }
}

extension HTTPField.Name {
    static let cacheHit = HTTPField.Name("X-Cache-Hit")!
    static let rateLimitLimit = HTTPField.Name("X-RateLimit-Limit")!
    static let rateLimitRemaining = HTTPField.Name("X-RateLimit-Remaining")!
    static let rateLimitReset = HTTPField.Name("X-RateLimit-Reset")!
    static let retryAfter = HTTPField.Name("Retry-After")!
}
