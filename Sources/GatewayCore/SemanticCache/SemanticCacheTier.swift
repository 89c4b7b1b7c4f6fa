import Logging

/// The answer cache's second tier (`cache.semantic`): a chat request whose user turns mean what an earlier
/// request's meant, in the same partition (`SemanticProbe`), gets that request's answer.
///
/// The lookup embeds the user turns with the configured embedder, through the upstream chain like any embeddings
/// request, within `timeout`; then searches the partition for the nearest answer at or above `threshold`
/// (`SemanticStore`). The cache never fails a request: an embedder that is slow, down or erroring makes the lookup
/// a miss (counted, and logged at most once a minute), and the request goes to the provider with at most `timeout`
/// added. A fresh answer is stored under the vector its lookup embedded.
struct SemanticCacheTier: AnswerCacheTier {
    let store: SemanticStore
    let chain: UpstreamChain
    let outage: OutageLog
    let logger: Logger
    /// Where new entries are shared with other gateways (Redis); nil in a gateway of its own.
    let sharing: SemanticSharing?
    /// Where embedder failures are counted (`semantic_embedder_failed`).
    var metrics: GatewayMetrics? = nil

    var hitLabel: String { "semantic" }

    func lookup(_ query: AnswerCache.Query) async -> AnswerCache.Hit? {
        guard let probe = query.semantic else { return nil }
        sharing?.startFollowing()
        let started = ContinuousClock.now
        let request = EmbeddingsRequest(texts: [probe.text], model: probe.embedder.name)
        let served: ServedAnswer<ChatCompletion>
        let vector: [Float]
        do {
            let (chain, embedder, table, logger) = (chain, probe.embedder, probe.table, logger)
            served = try await withDeadline(started + probe.settings.timeout) {
                try await EmbeddingsPipeline.embed(request, model: embedder, table: table, chain: chain, logger: logger)
            }
            guard let first = served.answer.body["data"]?.arrayValue?.first?["embedding"], let parsed = EmbeddingVector(first) else {
                throw GatewayError.badGateway("The embedder's answer holds no vector.")
            }
            vector = parsed.floats
            outage.succeeded(logger: logger)
        } catch {
            probe.record(vector: nil, costUSD: nil, latencyMs: Int((ContinuousClock.now - started).wholeMilliseconds))
            if Task.isCancelled { return nil }
            store.countEmbedderFailure()
            metrics?.cacheLookup("semantic_embedder_failed")
            let reason = error is DeadlineExceeded ? "slower than its timeout (\(Units.format(probe.settings.timeout)))" : "\(error)"
            outage.failed(
                SemanticEmbedderFailure(embedder: probe.settings.embedder, reason: reason), logger: logger,
                consequence: "requests go to their provider without the semantic cache")
            return nil
        }
        let cost = served.answer.usage.flatMap { usage in served.model.price.map { usage.cost(at: $0) } }
        probe.record(vector: vector, costUSD: cost, latencyMs: Int((ContinuousClock.now - started).wholeMilliseconds))
        guard let match = store.nearest(partition: probe.partition, to: vector, threshold: probe.settings.threshold) else { return nil }
        if let sharing { sharing.touched(match.entry) }
        return AnswerCache.Hit(answer: match.entry.answer, label: hitLabel, similarity: match.similarity, entry: SemanticEntry.describe(match.entry.id))
    }

    func store(_ answer: CachedAnswer, for query: AnswerCache.Query) async {
        guard let probe = query.semantic, let vector = probe.vector, let unit = VectorIndex.normalised(vector, dimensions: vector.count) else { return }
        let millis = Int64(probe.ttl.components.seconds) * 1000 + probe.ttl.components.attoseconds / 1_000_000_000_000_000
        let entry = SemanticEntry(
            id: UInt64.random(in: 1...UInt64.max), partition: probe.partition, vector: unit, answer: answer,
            expiresAtMillis: UnixTime.nowMicros() / 1000 + millis)
        guard store.insert(entry, maxEntries: probe.settings.maxEntries) else { return }
        // Shared off the request's path: the answer does not wait for Redis.
        if let sharing {
            let maxEntries = probe.settings.maxEntries
            Task(executorPreference: TaskPlacement.preferredExecutor) { await sharing.publish(entry, maxEntries: maxEntries) }
        }
    }
}

/// Why the embedder could not serve a lookup (what the rate-limited log line says).
struct SemanticEmbedderFailure: Error, CustomStringConvertible {
    var embedder: String
    var reason: String
    var description: String { "embedder '\(embedder)': \(reason)" }
}

extension EmbeddingsRequest {
    /// A request embedding `texts` with `model`, as floats.
    init(texts: [String], model: String) {
        self.body = ["model": .string(model), "input": .array(texts.map(JSON.string))]
        self.model = model
        self.input = .texts(texts)
        self.base64 = false
        self.dimensions = nil
    }
}
