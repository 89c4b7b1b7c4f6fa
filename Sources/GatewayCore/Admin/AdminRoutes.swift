#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import NIOCore

/// The admin socket's endpoints: JSON introspection of the running daemon, cache flush, reload and metrics.
///
/// Nothing here ever shows a secret: provider keys, extra provider headers, key hashes and passwords in URLs are
/// redacted, and keys are named, never hashed.
struct AdminRoutes: Sendable {
    let gateway: Gateway
    let reloader: ConfigReloader?
    let socketPath: String

    func add(to router: Router<BasicRequestContext>) {
        router.get("status") { _, _ in Response.json(status()) }
        router.get("config") { _, _ in Response.json(EffectiveConfig.json(gateway.store.snapshot.config)) }
        router.get("providers") { _, _ in Response.json(providers()) }
        router.get("keys") { _, _ in Response.json(keys()) }
        router.get("cache") { _, _ in Response.json(cache()) }
        router.post("cache/flush") { _, _ in await flush() }
        addSemanticCache(to: router)
        router.post("reload") { _, _ in await reload() }
        router.get("metrics") { _, _ in Response.metrics(gateway.metrics.exposition(for: gateway)) }
        addBudgets(to: router)
        router.get("notifications") { _, _ in await notifications() }
    }

    /// The notification outbox per channel (see `NotificationOutbox.adminJSON`).
    func notifications() async -> Response {
        do {
            return .json(try await gateway.notifications.adminJSON())
        } catch {
            return .json(
                ["error": ["message": .string("The notification outbox cannot be read: \(error)"), "type": "server_error", "code": "outbox_unavailable"]],
                status: 503)
        }
    }

    func status() -> JSON {
        let snapshot = gateway.store.snapshot
        let uptime = ContinuousClock.now - gateway.startedAt
        var listeners: [String: JSON] = [:]
        for (name, address) in gateway.readiness.listeners { listeners[name] = .string(address) }
        return [
            "version": .string(GatewayVersion.current),
            "pid": .int(Int64(getpid())),
            "uptime_seconds": .int(uptime.components.seconds),
            "started_at": .string(UnixTime.iso8601(micros: gateway.startedAtMicros)),
            "ready": .bool(gateway.readiness.isReady),
            "tasks": .string(TaskPlacement.onEventLoops ? "event-loops" : "thread-pool"),
            "task_placement": .string(TaskPlacement.current.rawValue),
            "task_jobs_queued": .int(Int64(TaskPlacement.jobsQueued)),
            "config": [
                "path": reloader.map { .string($0.path) } ?? .null,
                "generation": .int(Int64(snapshot.generation)),
                "sha256": snapshot.sourceSHA256.map(JSON.string) ?? .null,
            ],
            "last_reload": reloader?.lastReload.map(Self.json) ?? .null,
            "listeners": .object(listeners),
        ]
    }

    static func json(_ outcome: ReloadOutcome) -> JSON {
        [
            "time": .string(UnixTime.iso8601(micros: outcome.finishedAtMicros)),
            "result": .string(outcome.result.rawValue),
            "generation": .int(Int64(outcome.generation)),
            "errors": .array(outcome.errors.map(JSON.string)),
            "warnings": .array(outcome.problems.filter { $0.severity == .warning }.map { .string($0.description) }),
            "restart_required": .array(outcome.restartRequired.map(JSON.string)),
        ]
    }

    func providers() -> JSON {
        let statistics = gateway.load.statistics()
        let providers: [JSON] = gateway.store.snapshot.config.providers.map { provider in
            let figures = statistics[provider.name] ?? ProviderLoad.Statistics()
            return [
                "name": .string(provider.name),
                "type": .string(provider.type.rawValue),
                "enabled": .bool(provider.isEnabled),
                "circuit": .string(gateway.breakers.state(of: provider.name).rawValue),
                "in_flight": .int(Int64(figures.inFlight)),
                "requests": .int(Int64(figures.requests)),
                "errors": .int(Int64(figures.errors)),
                "p50_ms": figures.p50Ms.map { .int(Int64($0)) } ?? .null,
                "p99_ms": figures.p99Ms.map { .int(Int64($0)) } ?? .null,
                "connections": gateway.clients.connections(of: provider.name).map { ["open": .int(Int64($0.open)), "idle": .int(Int64($0.idle))] }
                    ?? .null,
            ]
        }
        return ["providers": .array(providers)]
    }

    func keys() -> JSON {
        let memoryLimiter = gateway.stores.limiter as? MemoryRateLimiter
        let keys: [JSON] = gateway.store.snapshot.config.keys.map { key in
            let totals = gateway.keyUsage.totals(for: key.name)
            var remaining: JSON = .null
            if let limit = key.rateLimit, let memoryLimiter {
                let now = memoryLimiter.remaining(key: key.name, limit: limit)
                remaining = [
                    "requests": now.requests.map { .int(Int64($0)) } ?? .null,
                    "tokens": now.tokens.map { .int(Int64($0)) } ?? .null,
                ]
            }
            return [
                "name": .string(key.name),
                "prefix": key.prefix.map(JSON.string) ?? .null,
                "models": .array(key.models.map(JSON.string)),
                "rate_limit": key.rateLimit.map(EffectiveConfig.rateLimit) ?? .null,
                "remaining": remaining,
                "usage": [
                    "requests": .int(Int64(totals.requests)),
                    "errors": .int(Int64(totals.errors)),
                    "rate_limited": .int(Int64(totals.rateLimited)),
                    "prompt_tokens": .int(Int64(totals.promptTokens)),
                    "completion_tokens": .int(Int64(totals.completionTokens)),
                    "cost_usd": .double(totals.costUSD),
                    "last_used": totals.lastUsedMicros.map { .string(UnixTime.iso8601(micros: $0)) } ?? .null,
                ],
            ]
        }
        return ["keys": .array(keys)]
    }

    func cache() -> JSON {
        let config = gateway.store.snapshot.config.cache
        // The backend in use (chosen at start-up), whatever a reloaded file says.
        let backend = gateway.stores.memoryCache != nil ? "memory" : gateway.stores.cache is RedisCache ? "redis" : "off"
        var answer: JSON = [
            "backend": .string(backend),
            "ttl": EffectiveConfig.duration(config.ttl),
            "scope": .string(config.scope.rawValue),
        ]
        if let memory = gateway.stores.memoryCache {
            let stats = memory.stats
            answer["entries"] = .int(Int64(stats.entries))
            answer["bytes"] = .int(Int64(stats.bytes))
            answer["max_entries"] = .int(Int64(config.maxEntries))
            answer["max_bytes"] = .int(Int64(config.maxBytes))
            answer["hits"] = .int(Int64(stats.hits))
            answer["misses"] = .int(Int64(stats.misses))
            answer["evictions"] = .int(Int64(stats.evictions))
            answer["expirations"] = .int(Int64(stats.expirations))
            let lookups = stats.hits + stats.misses
            answer["hit_rate"] = lookups == 0 ? .null : .double(Double(stats.hits) / Double(lookups))
        }
        if let semantic = semanticCacheJSON() { answer["semantic"] = semantic }
        if let redis = gateway.stores.cache as? RedisCache {
            answer["prefix"] = .string(gateway.store.snapshot.config.redis.prefix)
            answer["available"] = .bool(!redis.outage.isDown)
            answer["errors"] = .int(Int64(redis.outage.failureCount))
        }
        return answer
    }

    func flush() async -> Response {
        guard let cache = gateway.stores.cache else {
            return .json(["flushed": 0, "backend": "off"])
        }
        let semantic = gateway.stores.semantic.removeAll()
        guard let flushed = await cache.flush() else {
            return .json(
                ["error": ["message": "The cache backend could not be flushed (is Redis reachable?).", "type": "server_error", "code": "cache_flush_failed"]],
                status: 503)
        }
        gateway.logger.notice("cache flushed from the admin socket", metadata: ["entries": "\(flushed)"])
        return .json([
            "flushed": .int(Int64(flushed)), "semantic_flushed": .int(Int64(semantic)),
            "backend": .string(gateway.stores.memoryCache != nil ? "memory" : "redis"),
        ])
    }

    func reload() async -> Response {
        guard let reloader else {
            return .json(["error": ["message": "This gateway was started without a configuration file to reload.", "type": "invalid_request_error"]], status: 409)
        }
        let outcome = await reloader.reloadOffLoop()
        return .json(Self.json(outcome), status: outcome.result == .refused ? 422 : 200)
    }
}

extension Response {
    /// Prometheus text exposition.
    static func metrics(_ bytes: [UInt8]) -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .contentLength: String(bytes.count)],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
