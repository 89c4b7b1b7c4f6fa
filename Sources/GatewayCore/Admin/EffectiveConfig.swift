/// The configuration in force as JSON, for `GET /config`: every setting with its default filled in, and every
/// secret replaced by `"[redacted]"` (provider keys, extra provider headers, key hashes, passwords in URLs).
enum EffectiveConfig {
    static let redacted: JSON = "[redacted]"

    static func json(_ config: GatewayConfig) -> JSON {
        var providers: [String: JSON] = [:]
        for provider in config.providers {
            var headers: [String: JSON] = [:]
            for name in provider.headers.keys { headers[name] = redacted }
            providers[provider.name] = [
                "type": .string(provider.type.rawValue),
                "base_url": .string(redactingCredentials(provider.baseURL)),
                "api_key": provider.apiKey == nil ? .null : redacted,
                "enabled": .bool(provider.isEnabled),
                "missing_variables": .array(provider.missingVariables.map(JSON.string)),
                "headers": .object(headers),
                "timeouts": [
                    "connect": duration(provider.timeouts.connect), "first_byte": duration(provider.timeouts.firstByte),
                    "idle": duration(provider.timeouts.idle), "total": duration(provider.timeouts.total),
                ],
                "retries": .int(Int64(provider.retries)),
                "responses_api": .bool(provider.servesResponsesAPI),
                "retry_after_max": duration(provider.retryAfterMax),
                "circuit_breaker": [
                    "consecutive_failures": .int(Int64(provider.circuitBreaker.consecutiveFailures)),
                    "error_ratio": provider.circuitBreaker.errorRatio.map(JSON.double) ?? .null,
                    "minimum_requests": .int(Int64(provider.circuitBreaker.minimumRequests)),
                    "window": duration(provider.circuitBreaker.window),
                    "cool_down": duration(provider.circuitBreaker.coolDown),
                ],
            ]
        }
        var models: [String: JSON] = [:]
        for (name, model) in config.models {
            models[name] = [
                "provider": .string(model.provider),
                "upstream": .string(model.upstream),
                "fallbacks": model.fallbacks.map { .array($0.map(JSON.string)) } ?? .null,
                "price": model.price.map(price) ?? .null,
                "deployments": .array(model.deployments.map { ["provider": .string($0.provider), "weight": .int(Int64($0.weight))] }),
            ]
        }
        let keys: [JSON] = config.keys.map { key in
            [
                "name": .string(key.name),
                "sha256": redacted,
                "prefix": key.prefix.map(JSON.string) ?? .null,
                "models": .array(key.models.map(JSON.string)),
                "rate_limit": key.rateLimit.map(rateLimit) ?? .null,
                "cache": ["enabled": .bool(key.cache.enabled), "ttl": key.cache.ttl.map(duration) ?? .null],
            ]
        }
        return [
            "server": [
                "listen": .string("\(config.server.host):\(config.server.port)"),
                "max_body_bytes": .int(Int64(config.server.maxBodyBytes)),
                "drain_timeout": duration(config.server.drainTimeout),
            ],
            "admin": ["socket": .string(config.admin.socket), "mode": .string(String(config.admin.mode, radix: 8).leftPadded(to: 4))],
            "providers": .object(providers),
            "models": .object(models),
            "keys": .array(keys),
            "cache": [
                "backend": .string(config.cache.backend.rawValue), "ttl": duration(config.cache.ttl),
                "max_entries": .int(Int64(config.cache.maxEntries)), "max_bytes": .int(Int64(config.cache.maxBytes)),
                "scope": .string(config.cache.scope.rawValue),
            ],
            "rate_limits": ["backend": .string(config.rateLimits.backend.rawValue), "on_backend_error": .string(config.rateLimits.onBackendError.rawValue)],
            "redis": [
                "url": .string(redactingCredentials(config.redis.url)), "prefix": .string(config.redis.prefix),
                "pool_size": .int(Int64(config.redis.poolSize)), "connect_timeout": duration(config.redis.connectTimeout),
                "command_timeout": duration(config.redis.commandTimeout),
            ],
            "request_log": [
                "backend": .string(config.requestLog.backend.rawValue), "path": .string(config.requestLog.path),
                "spool_path": config.requestLog.spoolPath.map(JSON.string) ?? .null,
                "batch_size": .int(Int64(config.requestLog.batchSize)), "flush_interval": duration(config.requestLog.flushInterval),
                "responses_ttl": duration(config.requestLog.responsesTTL),
            ],
            "postgres": ["url": .string(redactingCredentials(config.postgres.url)), "pool_size": .int(Int64(config.postgres.poolSize))],
            "metrics": [
                "listen": config.metrics.listenHost.map { host in .string("\(host):\(config.metrics.listenPort ?? 0)") } ?? .null,
                "token": config.metrics.token == nil ? .null : redacted,
            ],
            "logging": ["level": .string(config.logging.level)],
            "budgets": .array(config.allBudgets.map(budget)),
            "budgets_on_backend_error": .string(config.budgetSettings.onBackendError.rawValue),
            "notifications": [
                "give_up_after": duration(config.notifications.giveUpAfter),
                "channels": .object(config.notifications.channels.mapValues { channel in
                    ["type": .string(channel.type), "target": .string(channel.redactedTarget)]
                }),
            ],
        ]
    }

    static func budget(_ budget: BudgetConfig) -> JSON {
        var filter: [String: JSON] = [:]
        for entry in budget.filter { filter[entry.dimension.description] = .string(entry.pattern.pattern) }
        return [
            "name": .string(budget.name), "per": .array(budget.per.map { .string($0.description) }), "where": .object(filter),
            "limit_usd": .double(budget.limitUSD), "window": .string(budget.window.description), "timezone": .string(budget.timeZone.identifier),
            "mode": .string(budget.mode.rawValue), "alerts": .array(budget.alerts.map { .int(Int64($0)) }),
            "notify": .array(budget.notify.map(JSON.string)),
        ]
    }

    static func duration(_ value: Duration) -> JSON { .string(Units.format(value)) }

    static func price(_ price: Price) -> JSON {
        ["input": .double(price.input), "output": .double(price.output), "cached_input": price.cachedInput.map(JSON.double) ?? .null,
         "cache_write": price.cacheWrite.map(JSON.double) ?? .null]
    }

    static func rateLimit(_ limit: RateLimit) -> JSON {
        [
            "requests_per_minute": limit.requestsPerMinute.map { .int(Int64($0)) } ?? .null,
            "tokens_per_minute": limit.tokensPerMinute.map { .int(Int64($0)) } ?? .null,
        ]
    }

    /// `scheme://user:secret@host/...` without the password, and without any query string (which may hold a token):
    /// the credentials found as the URL's own parsers find them (`URLCredentials`).
    static func redactingCredentials(_ url: String) -> String {
        URLCredentials.redacting(url)
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
