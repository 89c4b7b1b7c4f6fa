import Hummingbird

/// The semantic cache on the admin socket: its part of `GET /cache`, and `POST /cache/semantic/forget`.
extension AdminRoutes {
    func addSemanticCache(to router: Router<BasicRequestContext>) {
        router.post("cache/semantic/forget") { request, _ in await forgetSemanticEntry(request.uri.queryParameters.get("id")) }
    }

    /// Removes the entry `id` (16 hex digits, as `X-Cache-Hit: semantic` answers' log rows name it in `cache_entry`),
    /// here and, with Redis, in every gateway sharing it.
    func forgetSemanticEntry(_ id: String?) async -> Response {
        guard let id, let value = SemanticEntry.id(id) else {
            return .json(
                ["error": ["message": "Give the entry's id: POST /cache/semantic/forget?id=<16 hex digits> (the request log's cache_entry).", "type": "invalid_request_error"]],
                status: 400)
        }
        let local = gateway.stores.semantic.forget(value)
        let shared = await gateway.stores.semanticSharing?.forget(value) ?? false
        guard local != nil || shared else {
            return .json(["error": ["message": .string("No semantic cache entry \(id)."), "type": "not_found_error"]], status: 404)
        }
        gateway.logger.notice("semantic cache entry forgotten from the admin socket", metadata: ["entry": "\(id)"])
        var answer: JSON = ["forgot": .string(id)]
        if let local { answer["model"] = .string(local.answer.upstreamModel) }
        return .json(answer)
    }

    /// `GET /cache`'s `semantic` member: settings, counters, hit rate and the most recently used entries; nil when
    /// `cache.semantic` is not set.
    func semanticCacheJSON() -> JSON? {
        guard let settings = gateway.store.snapshot.config.cache.semantic else { return nil }
        let store = gateway.stores.semantic
        let stats = store.stats
        let lookups = stats.hits + stats.misses
        let recent: [JSON] = store.recent(10).map { entry in
            [
                "id": .string(SemanticEntry.describe(entry.id)), "provider": .string(entry.answer.provider),
                "model": .string(entry.answer.upstreamModel),
                "expires_at": .string(UnixTime.iso8601(micros: entry.expiresAtMillis * 1000)),
            ]
        }
        return [
            "embedder": .string(settings.embedder), "threshold": .double(settings.threshold),
            "entries": .int(Int64(stats.entries)), "max_entries": .int(Int64(settings.maxEntries)),
            "partitions": .int(Int64(stats.partitions)), "hits": .int(Int64(stats.hits)), "misses": .int(Int64(stats.misses)),
            "hit_rate": lookups == 0 ? .null : .double(Double(stats.hits) / Double(lookups)),
            "evictions": .int(Int64(stats.evictions)), "expirations": .int(Int64(stats.expirations)),
            "embedder_failures": .int(Int64(stats.embedderFailures)), "index_bytes_per_entry": .int(Int64(stats.indexBytesPerEntry)),
            "shared": .bool(gateway.stores.semanticSharing != nil), "recent": .array(recent),
        ]
    }
}
