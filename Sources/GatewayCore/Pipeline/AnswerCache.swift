import HTTPTypes
import NIOCore

/// One tier of the answer cache: the exact tier, then the semantic tier (`SemanticCacheTier`).
protocol AnswerCacheTier: Sendable {
    /// `X-Cache-Hit` on this tier's hits, e.g. `exact`.
    var hitLabel: String { get }
    /// The answer this tier holds for `query`, if any.
    func lookup(_ query: AnswerCache.Query) async -> AnswerCache.Hit?
    /// Keeps a fresh, complete answer for `query`.
    func store(_ answer: CachedAnswer, for query: AnswerCache.Query) async
}

/// Answers stored under a hash of the request's body, model and key namespace (`CacheKey`).
struct ExactCacheTier: AnswerCacheTier {
    let backend: any ResponseCacheBackend

    var hitLabel: String { "exact" }

    func lookup(_ query: AnswerCache.Query) async -> AnswerCache.Hit? {
        await backend.get(query.exactKey).map { AnswerCache.Hit(answer: $0, label: hitLabel) }
    }

    func store(_ answer: CachedAnswer, for query: AnswerCache.Query) async {
        await backend.set(query.exactKey, answer, ttl: query.policy.ttl)
    }
}

/// The answer-cache stage: `lookup` asks each tier in order before any provider is called; `store` keeps a fresh
/// answer in every tier (the request's `RequestLedger` calls it when the request settles). Identical misses share
/// one upstream call (`flights`), keyed like the exact tier.
struct AnswerCache: Sendable {
    /// The tiers, in lookup order; empty when `cache.backend` is `off`.
    let tiers: [any AnswerCacheTier]
    /// Identical concurrent misses share one upstream call.
    let flights: SingleFlight<SharedAnswer>

    /// The tiers the configured backend gives: the exact tier and the semantic tier (which answers only queries
    /// with a `SemanticProbe`, i.e. when `cache.semantic` applies), unless `cache.backend` is `off`.
    /// - Parameter chain: the upstream chain the semantic tier's embedder calls go down (no semantic tier without).
    init(stores: Stores, chain: UpstreamChain? = nil, metrics: GatewayMetrics? = nil) {
        guard let backend = stores.cache else {
            self.init(tiers: [], flights: stores.flights)
            return
        }
        guard let chain else {
            self.init(tiers: [ExactCacheTier(backend: backend)], flights: stores.flights)
            return
        }
        let semantic = SemanticCacheTier(
            store: stores.semantic, chain: chain, outage: stores.semanticOutage, logger: stores.logger, sharing: stores.semanticSharing,
            metrics: metrics)
        self.init(tiers: [ExactCacheTier(backend: backend), semantic], flights: stores.flights)
    }

    init(tiers: [any AnswerCacheTier], flights: SingleFlight<SharedAnswer>) {
        self.tiers = tiers
        self.flights = flights
    }

    /// What the cache does for one request, and the keys it uses.
    struct Query: Sendable {
        /// The client's chat request; nil for an embeddings request (which only the exact tier keeps).
        var request: ChatRequest?
        /// Whether to look up and store, and for how long.
        var policy: CachePolicy
        /// The exact tier's key (also the single flight's); empty when the cache takes no part.
        var exactKey: String
        /// The semantic tier's part; nil when `cache.semantic` does not apply.
        var semantic: SemanticProbe? = nil
    }

    /// A lookup's answer, with the tier that had it.
    struct Hit: Sendable {
        /// The `llm_gateway_cache_lookups_total` result it counts as: `hit` (exact) or `semantic_hit`.
        var metricResult: String { label == "exact" ? "hit" : label + "_hit" }

        var answer: CachedAnswer
        var label: String
        /// A semantic hit's cosine similarity.
        var similarity: Double? = nil
        /// A semantic hit's entry (`SemanticEntry.describe`).
        var entry: String? = nil
    }

    /// The query for `request` on `route` under `key`'s settings, the snapshot's `cache.semantic` and the client's
    /// `Cache-Control`.
    func query(for request: ChatRequest, route: String = "/v1/chat/completions", key: KeyConfig, snapshot: ConfigSnapshot, cacheControl: String?) -> Query {
        let config = snapshot.config
        let policy = CachePolicy(
            config: config, key: key, cacheControl: cacheControl, backendAvailable: !tiers.isEmpty,
            cacheable: tiers.isEmpty || CacheKey.isCacheable(request))
        guard policy.isActive else { return Query(request: request, policy: policy, exactKey: "") }
        var query = Query(request: request, policy: policy, exactKey: Self.exactKey(for: request, namespace: policy.namespace))
        // A request in another API is answered in it (`CachedAnswer.native`): the semantic tier keeps chat answers only.
        if let semantic = config.cache.semantic, policy.lookup, request.native == nil {
            let namespace = (semantic.scope ?? config.cache.scope) == .global ? "global" : "key:" + key.name
            query.semantic = SemanticProbe.make(
                for: request, route: route, settings: semantic, namespace: namespace, ttl: policy.ttl, table: snapshot.models)
        }
        return query
    }

    /// The exact key: of the canonical request, or for a request in another API, of the client's own body under that
    /// API's namespace (every byte of it may shape the answer, thinking blocks included, and the answer is replayed
    /// in that API).
    static func exactKey(for request: ChatRequest, namespace: String) -> String {
        guard let native = request.native else {
            return CacheKey.make(for: request, namespace: request.responses == nil ? namespace : "responses|" + namespace)
        }
        return CacheKey.make(body: native.object, namespace: native.dialect.rawValue + "|" + native.path + "|" + namespace)
    }

    /// The query for an embeddings request: the exact tier only, under a namespace of its own.
    func query(forEmbeddings request: EmbeddingsRequest, key: KeyConfig, config: GatewayConfig, cacheControl: String?) -> Query {
        let policy = CachePolicy(config: config, key: key, cacheControl: cacheControl, backendAvailable: !tiers.isEmpty)
        let exactKey = policy.isActive ? CacheKey.make(body: request.body, namespace: "embeddings|" + policy.namespace) : ""
        return Query(request: nil, policy: policy, exactKey: exactKey)
    }

    /// The first tier's answer, when the policy lets the cache answer.
    func lookup(_ query: Query) async -> Hit? {
        guard query.policy.lookup else { return nil }
        for tier in tiers {
            if let hit = await tier.lookup(query) { return hit }
        }
        return nil
    }

    /// Runs `work` for a complete answer, shared with an identical request already under way when the policy looks up.
    ///
    /// The client leaving (its `channel` closing) stops the wait: a shared flight's waiter leaves it (the flight's
    /// task is cancelled when nobody waits any more); otherwise the work's own task is cancelled.
    /// - Returns: the answer, and whether it was another request's (`joined`).
    func shared(
        _ query: Query, channel: (any Channel)?, _ work: @escaping @Sendable () async throws -> SharedAnswer
    ) async throws -> (SharedAnswer, joined: Bool) {
        guard query.policy.lookup else {
            return (try await ClientWatch.cancellingOnDisconnect(channel, work), false)
        }
        let watch = DisconnectWatch(channel: channel)
        defer { watch.stop() }
        let (answer, joined) = try await flights.run(query.exactKey, leavingWhen: { leave in watch.start(onClose: leave) }, work)
        return (answer, joined)
    }

    /// Keeps `answer` in every tier, when the policy lets the cache store.
    func store(_ answer: CachedAnswer, for query: Query) async {
        guard query.policy.store else { return }
        for tier in tiers { await tier.store(answer, for: query) }
    }
}
