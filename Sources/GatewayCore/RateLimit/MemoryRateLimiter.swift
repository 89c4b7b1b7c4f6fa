import NIOConcurrencyHelpers

/// Rate limits kept in this process: per key, a request bucket and a token bucket (`TokenBucket`).
///
/// `acquire` takes one request and the estimated tokens only when both buckets allow it, so a refusal takes
/// nothing. `settle` then corrects the token bucket by the difference between the real and the estimated usage.
///
/// Memory stays bounded: about once per `sweepInterval`, keys whose buckets have refilled completely are dropped.
/// A full bucket is exactly what an unseen key gets, so dropping one never changes a decision.
///
/// ```swift
/// let limiter = MemoryRateLimiter()
/// let decision = try await limiter.acquire(key: key.sha256, limit: rateLimit, estimatedTokens: 1200)
/// ```
public final class MemoryRateLimiter: RateLimiterBackend {
    private struct Buckets {
        var requests: TokenBucket?
        var tokens: TokenBucket?

        func isFull(at now: ContinuousClock.Instant) -> Bool {
            [requests, tokens].allSatisfy { bucket in
                guard let bucket else { return true }
                return bucket.available(at: now) + TokenBucket.tolerance >= bucket.capacity
            }
        }
    }

    private struct State {
        var buckets: [String: Buckets] = [:]
        var lastSweep: ContinuousClock.Instant
    }

    /// How often full buckets are looked for and dropped.
    public let sweepInterval: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let state: NIOLockedValueBox<State>

    /// - Parameters:
    ///   - sweepInterval: how often keys with full buckets are dropped.
    ///   - now: the clock buckets refill on (tests inject their own).
    public init(sweepInterval: Duration = .seconds(60), now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.sweepInterval = sweepInterval
        self.now = now
        self.state = NIOLockedValueBox(State(lastSweep: now()))
    }

    /// Keys with buckets in memory.
    public var trackedKeys: Int {
        state.withLockedValue { $0.buckets.count }
    }

    public func acquire(key: String, limit: RateLimit, estimatedTokens: Int) async throws -> RateDecision {
        decide(key: key, limit: limit, estimatedTokens: estimatedTokens)
    }

    public func settle(key: String, limit: RateLimit, estimatedTokens: Int, actualTokens: Int) async throws {
        correct(key: key, limit: limit, estimatedTokens: estimatedTokens, actualTokens: actualTokens)
    }

    /// What `key`'s buckets hold now, taking nothing; nil for a bucket the limit does not set.
    public func remaining(key: String, limit: RateLimit) -> (requests: Int?, tokens: Int?) {
        let instant = now()
        let buckets = state.withLockedValue { state in Self.buckets(state.buckets[key], for: limit, now: instant) }
        return (buckets.requests.map { Int($0.available(at: instant)) }, buckets.tokens.map { Int($0.available(at: instant)) })
    }

    // MARK: - Synchronous core

    /// Takes one request and `estimatedTokens` tokens from `key`'s buckets, or refuses without taking anything.
    public func decide(key: String, limit: RateLimit, estimatedTokens: Int) -> RateDecision {
        let instant = now()
        let tokenCost = Double(max(0, estimatedTokens))
        return state.withLockedValue { state in
            sweepIfDue(&state, now: instant)
            var buckets = Self.buckets(state.buckets[key], for: limit, now: instant)
            let requestsAllowed = buckets.requests?.allows(1, now: instant) ?? true
            let tokensAllowed = buckets.tokens?.allows(tokenCost, now: instant) ?? true
            let allowed = requestsAllowed && tokensAllowed
            if allowed {
                buckets.requests?.take(1, now: instant)
                buckets.tokens?.take(tokenCost, now: instant)
            }
            state.buckets[key] = buckets

            var retryAfter = 0.0
            if !allowed {
                if !requestsAllowed, let bucket = buckets.requests {
                    retryAfter = max(retryAfter, bucket.secondsUntilAllowed(1, now: instant))
                }
                if !tokensAllowed, let bucket = buckets.tokens {
                    retryAfter = max(retryAfter, bucket.secondsUntilAllowed(tokenCost, now: instant))
                }
            }
            let reported = buckets.requests ?? buckets.tokens
            let remaining = reported.map { $0.available(at: instant) + TokenBucket.tolerance } ?? 0
            return RateDecision(
                allowed: allowed,
                limit: limit.requestsPerMinute ?? limit.tokensPerMinute ?? 0,
                remaining: max(0, Int(remaining.rounded(.down))),
                resetSeconds: reported.map { Self.wholeSeconds($0.secondsUntilFull(now: instant)) } ?? 0,
                retryAfterSeconds: allowed ? 0 : max(1, Self.wholeSeconds(retryAfter)))
        }
    }

    /// Takes `actualTokens - estimatedTokens` more tokens from `key`'s token bucket, or gives them back.
    public func correct(key: String, limit: RateLimit, estimatedTokens: Int, actualTokens: Int) {
        guard limit.tokensPerMinute != nil else { return }
        let instant = now()
        let difference = Double(max(0, actualTokens)) - Double(max(0, estimatedTokens))
        state.withLockedValue { state in
            var buckets = Self.buckets(state.buckets[key], for: limit, now: instant)
            buckets.tokens?.adjust(by: difference, now: instant)
            state.buckets[key] = buckets
        }
    }

    // MARK: - Bookkeeping

    /// `existing` buckets brought in line with `limit`: created full, resized, or dropped as the limit says.
    private static func buckets(_ existing: Buckets?, for limit: RateLimit, now: ContinuousClock.Instant) -> Buckets {
        func bucket(_ current: TokenBucket?, perMinute: Int?) -> TokenBucket? {
            guard let perMinute else { return nil }
            guard var current else { return TokenBucket(capacity: perMinute, now: now) }
            if current.capacity != Double(perMinute) { current.resize(to: perMinute, now: now) }
            return current
        }
        return Buckets(
            requests: bucket(existing?.requests, perMinute: limit.requestsPerMinute),
            tokens: bucket(existing?.tokens, perMinute: limit.tokensPerMinute))
    }

    private func sweepIfDue(_ state: inout State, now: ContinuousClock.Instant) {
        guard now - state.lastSweep >= sweepInterval else { return }
        state.lastSweep = now
        state.buckets = state.buckets.filter { !$0.value.isFull(at: now) }
    }

    /// `seconds` rounded up to whole seconds (ignoring floating-point dust), capped at a day.
    private static func wholeSeconds(_ seconds: Double) -> Int {
        Int(max(0, min(seconds, 86_400) - 1e-6).rounded(.up))
    }
}

/// A rough token count of a request, for the token bucket before the real usage is known.
public enum TokenEstimate {
    /// Output tokens assumed per choice when the request sets no `max_tokens` / `max_completion_tokens`.
    public static let defaultOutputTokens = 256

    /// `ceil(prompt characters / 4) + output`, where prompt characters are those of every message's text
    /// (string content, text and refusal parts, tool call names and arguments) and of the `tools` definitions,
    /// and output is `max_completion_tokens` (else `max_tokens`, else `defaultOutputTokens`) times `n`.
    /// `settle` corrects the estimate once the real usage is known.
    public static func estimate(for request: ChatRequest) -> Int {
        promptTokens(for: request) + outputTokens(for: request, default: defaultOutputTokens)
    }

    /// The output the request allows: `max_completion_tokens` (else `max_tokens`, else `fallback`) times `n`.
    public static func outputTokens(for request: ChatRequest, default fallback: Int) -> Int {
        outputTokens(cap: request.maxTokens, choices: request.n, default: fallback)
    }

    /// `cap` (else `fallback`) times `choices`.
    public static func outputTokens(cap: Int?, choices: Int, default fallback: Int) -> Int {
        // Capped so absurd values cannot overflow; either cap is far beyond any per-minute budget.
        min(cap ?? fallback, 1 << 30) * min(max(1, choices), 1 << 10)
    }

    /// `ceil(prompt characters / 4)`.
    public static func promptTokens(for request: ChatRequest) -> Int {
        var characters = 0
        for message in request.messages {
            switch message["content"] {
            case .string(let text):
                characters += text.unicodeScalars.count
            case .array(let parts):
                for part in parts {
                    characters += (part["text"]?.stringValue ?? part["refusal"]?.stringValue ?? "").unicodeScalars.count
                }
            default:
                break
            }
            for call in message["tool_calls"]?.arrayValue ?? [] {
                characters += (call["function"]?["name"]?.stringValue ?? "").unicodeScalars.count
                characters += (call["function"]?["arguments"]?.stringValue ?? "").unicodeScalars.count
            }
        }
        if !request.tools.isEmpty {
            characters += JSON.array(request.tools).serialized().unicodeScalars.count
        }
        return (characters + 3) / 4
    }
}
