/// Token buckets in Redis, one hash per key, checked and updated by one atomic Lua script per call
/// (EVALSHA, falling back to EVAL), so every gateway instance on the same Redis enforces one global limit.
/// The script reads Redis' own clock, so gateway clocks need not agree.
public final class RedisRateLimiter: RateLimiterBackend {
    private let client: RedisClient
    private let prefix: String

    public init(client: RedisClient, prefix: String) {
        self.client = client
        self.prefix = prefix + "ratelimit:"
    }

    /// The bucket script. ARGV: mode (acquire | settle), requests per minute (0 = none), tokens per minute
    /// (0 = none), tokens (the estimate for acquire; actual minus estimate for settle).
    /// Returns {allowed, limit, remaining, reset ms, retry-after ms}.
    static let script = RedisScript(
        """
        local now_parts = redis.call('TIME')
        local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
        local rpm = tonumber(ARGV[2])
        local tpm = tonumber(ARGV[3])
        local tokens = tonumber(ARGV[4])
        local function level(field, capacity)
          local stored = redis.call('HMGET', KEYS[1], field, field .. ':ts')
          local amount = tonumber(stored[1])
          local stamp = tonumber(stored[2])
          if amount == nil or stamp == nil then return capacity end
          return math.min(capacity, amount + math.max(0, now - stamp) * capacity / 60000)
        end
        local requests = 0
        local budget = 0
        if rpm > 0 then requests = level('r', rpm) end
        if tpm > 0 then budget = level('t', tpm) end
        if ARGV[1] == 'settle' then
          if tpm > 0 then redis.call('HSET', KEYS[1], 't', tostring(budget - tokens), 't:ts', now) end
          redis.call('PEXPIRE', KEYS[1], 120000)
          return {1}
        end
        local allowed = 1
        local wait = 0
        if rpm > 0 and requests < 1 then
          allowed = 0
          wait = math.max(wait, (1 - requests) * 60000 / rpm)
        end
        local need = math.min(tokens, tpm)
        if tpm > 0 and budget < need then
          allowed = 0
          wait = math.max(wait, (need - budget) * 60000 / tpm)
        end
        if allowed == 1 then
          requests = requests - 1
          budget = budget - tokens
        end
        if rpm > 0 then redis.call('HSET', KEYS[1], 'r', tostring(requests), 'r:ts', now) end
        if tpm > 0 then redis.call('HSET', KEYS[1], 't', tostring(budget), 't:ts', now) end
        redis.call('PEXPIRE', KEYS[1], 120000)
        local capacity = tpm
        local level_now = budget
        if rpm > 0 then
          capacity = rpm
          level_now = requests
        end
        local reset = (capacity - level_now) * 60000 / capacity
        return {allowed, capacity, math.floor(math.max(level_now, 0)), math.ceil(reset), math.ceil(wait)}
        """)

    public func acquire(key: String, limit: RateLimit, estimatedTokens: Int) async throws -> RateDecision {
        let reply = try await client.evaluate(
            Self.script, keys: [prefix + key],
            arguments: ["acquire", String(limit.requestsPerMinute ?? 0), String(limit.tokensPerMinute ?? 0), String(estimatedTokens)])
        guard case .array(let values) = reply, values.count == 5 else {
            throw RedisError(.protocol, "unexpected reply from the rate-limit script: \(reply)")
        }
        // Redis' replies are untrusted too: each number is kept within 0...2^40, so the arithmetic below cannot trap.
        let numbers = values.map { value -> Int in
            if case .integer(let number) = value { return Int(min(max(number, 0), 1 << 40)) }
            return 0
        }
        return RateDecision(
            allowed: numbers[0] == 1, limit: numbers[1], remaining: numbers[2],
            resetSeconds: (numbers[3] + 999) / 1000, retryAfterSeconds: max(1, (numbers[4] + 999) / 1000))
    }

    public func settle(key: String, limit: RateLimit, estimatedTokens: Int, actualTokens: Int) async throws {
        guard limit.tokensPerMinute != nil, actualTokens != estimatedTokens else { return }
        _ = try await client.evaluate(
            Self.script, keys: [prefix + key],
            arguments: ["settle", String(limit.requestsPerMinute ?? 0), String(limit.tokensPerMinute ?? 0), String(actualTokens - estimatedTokens)])
    }
}
