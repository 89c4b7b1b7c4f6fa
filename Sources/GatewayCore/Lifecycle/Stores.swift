import Logging

/// The cache and rate-limit backends the configuration chose at start-up, and the Redis client they share.
///
/// `cache.backend`, `rate_limits.backend` and `redis.*` take effect at start-up; a reload that changes them says a
/// restart is needed. TTLs, scope, per-key settings and the memory cache's bounds reload.
public final class Stores: Sendable {
    /// Where answers are cached; nil when `cache.backend` is `off`.
    public let cache: (any ResponseCacheBackend)?
    /// The in-process cache, when that is the backend (for statistics).
    public let memoryCache: MemoryCache?
    /// Token buckets.
    public let limiter: any RateLimiterBackend
    /// The shared Redis client, when a backend uses Redis.
    public let redis: RedisClient?
    /// Rate-limiter outages (the Redis cache keeps its own).
    public let limiterOutage = OutageLog(name: "redis rate limiter")
    /// Identical concurrent misses share one upstream call.
    let flights = SingleFlight<SharedAnswer>()
    /// Budget counters: in Redis when the file has a `redis:` section, else in memory.
    public let budgets: BudgetBook
    /// The semantic cache's entries in this process (empty unless `cache.semantic` is set).
    let semantic = SemanticStore()
    /// Embedder outages of the semantic cache (logged at most once a minute).
    let semanticOutage = OutageLog(name: "semantic cache embedder")
    /// With `cache.backend: redis`, where semantic entries are shared with the other gateways.
    let semanticSharing: (any SemanticSharing)?
    /// The daemon's logger, for the stores' own lines.
    let logger: Logger

    /// Builds the backends `config` asks for.
    /// - Throws: `RedisError` when `redis.url` cannot be used.
    public init(
        config: GatewayConfig, logger: Logger, budgetClock: @escaping @Sendable () -> Int64 = BudgetBook.systemClock,
        semanticSettings: @escaping @Sendable () -> SemanticCacheSettings? = { nil },
        budgetEvents: @escaping BudgetAlerts.Publisher = { _ in }
    ) throws {
        let needsRedis = config.cache.backend == .redis || config.rateLimits.backend == .redis || config.redisConfigured
        let redis: RedisClient?
        if needsRedis {
            let settings = config.redis
            redis = RedisClient(
                configuration: try RedisConfiguration(
                    url: settings.url, poolSize: settings.poolSize, connectTimeout: settings.connectTimeout,
                    commandTimeout: settings.commandTimeout),
                logger: logger)
        } else {
            redis = nil
        }
        self.redis = redis
        self.logger = logger
        if config.cache.backend == .redis, let redis {
            let sharing = RedisSemanticSharing(client: redis, prefix: config.redis.prefix, store: semantic, logger: logger, settings: semanticSettings)
            if config.cache.semantic != nil { sharing.startFollowing() }
            semanticSharing = sharing
        } else {
            semanticSharing = nil
        }
        switch config.cache.backend {
        case .off:
            cache = nil
            memoryCache = nil
        case .memory:
            let memory = MemoryCache(maxEntries: config.cache.maxEntries, maxBytes: config.cache.maxBytes)
            cache = memory
            memoryCache = memory
        case .redis:
            cache = RedisCache(client: redis!, prefix: config.redis.prefix, logger: logger)
            memoryCache = nil
        }
        switch config.rateLimits.backend {
        case .memory: limiter = MemoryRateLimiter()
        case .redis: limiter = RedisRateLimiter(client: redis!, prefix: config.redis.prefix)
        }
        let alerts = BudgetAlerts(logger: logger, publisher: budgetEvents)
        if config.redisConfigured, let redis {
            budgets = BudgetBook(store: RedisBudgetStore(client: redis, prefix: config.redis.prefix), isShared: true, alerts: alerts, clock: budgetClock)
        } else {
            budgets = BudgetBook(store: MemoryBudgetStore(), isShared: false, alerts: alerts, clock: budgetClock)
        }
    }

    /// Settings that only take effect at start-up and differ between `old` and `new`.
    static func restartRequired(from old: GatewayConfig, to new: GatewayConfig) -> [String] {
        var changed: [String] = []
        if old.cache.backend != new.cache.backend { changed.append("cache.backend") }
        if old.rateLimits.backend != new.rateLimits.backend { changed.append("rate_limits.backend") }
        if old.redis != new.redis || old.redisConfigured != new.redisConfigured { changed.append("redis") }
        // The request log's writer and its database connections are made at start-up too.
        if old.requestLog != new.requestLog { changed.append("request_log") }
        if old.postgres != new.postgres { changed.append("postgres") }
        return changed
    }

    /// Closes the Redis connections.
    public func shutdown() async {
        semanticSharing?.stop()
        await redis?.shutdown()
    }
}

/// An answer shared by the requests of one single flight.
struct SharedAnswer: Sendable {
    var served: ServedAnswer<ChatCompletion>
    /// The answer as it is cached, with its text written once for every client it goes to.
    var answer: CachedAnswer
    var costUSD: Double? { answer.costUSD }
    /// Taken by the first of the flight's requests to settle, which stores the answer in the cache.
    let storing = OnceFlag()

    init(served: ServedAnswer<ChatCompletion>, answer: CachedAnswer) {
        self.served = served
        self.answer = answer
    }

    /// `served` priced at its model's price (nil when unpriced or without usage), kept as the cache keeps it.
    init(pricing served: ServedAnswer<ChatCompletion>) {
        let cost = served.answer.usage.flatMap { usage in served.model.price.map { usage.cost(at: $0) } }
        let answer = CachedAnswer(
            completion: served.answer.body, text: served.answer.text, provider: served.model.provider.name,
            upstreamModel: served.model.upstream, costUSD: cost, native: served.answer.native)
        self.init(served: served, answer: answer)
    }
}
