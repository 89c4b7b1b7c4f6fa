import HTTPTypes
import Logging

/// Applies a key's rate limit before a request reaches any provider, and settles the token bucket after.
struct RateLimitGate: Sendable {
    let backend: any RateLimiterBackend
    let onBackendError: RateLimitSettings.OnBackendError
    let outage: OutageLog

    /// A request admitted under a limit, to be settled once its usage is known.
    struct Admission: Sendable {
        var key: String
        var limit: RateLimit
        var estimatedTokens: Int
        var headers: HTTPFields
    }

    /// Takes the request from the key's buckets, or throws 429 with `Retry-After`; nil when the key has no limit
    /// (or the backend failed and `on_backend_error` is `allow`).
    func admit(key: KeyConfig, expected: ExpectedUsage, logger: Logger) async throws -> Admission? {
        guard let limit = key.rateLimit, limit.requestsPerMinute != nil || limit.tokensPerMinute != nil else { return nil }
        let estimate = limit.tokensPerMinute == nil ? 0 : expected.promptTokens + expected.outputTokens(default: TokenEstimate.defaultOutputTokens)
        let decision: RateDecision
        do {
            decision = try await backend.acquire(key: key.name, limit: limit, estimatedTokens: estimate)
            outage.succeeded(logger: logger)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            switch onBackendError {
            case .allow:
                outage.failed(error, logger: logger, consequence: "requests pass without rate limits (on_backend_error: allow)")
                return nil
            case .deny:
                outage.failed(error, logger: logger, consequence: "requests of limited keys are refused (on_backend_error: deny)")
                throw GatewayError.unavailable("The rate limiter is unavailable, and this gateway refuses limited keys' requests until it is back.")
            }
        }
        var headers: HTTPFields = [:]
        headers[.rateLimitLimit] = String(decision.limit)
        headers[.rateLimitRemaining] = String(decision.remaining)
        headers[.rateLimitReset] = String(decision.resetSeconds)
        guard decision.allowed else {
            headers[.retryAfter] = String(max(1, decision.retryAfterSeconds))
            throw RateLimitRefusal(headers: headers, message: "Rate limit reached for key '\(key.name)'. Try again in \(max(1, decision.retryAfterSeconds)) s.")
        }
        return Admission(key: key.name, limit: limit, estimatedTokens: estimate, headers: headers)
    }

    /// Corrects the token bucket with the tokens actually used.
    func settle(_ admission: Admission?, usage: Usage?, logger: Logger) async {
        guard let admission, admission.limit.tokensPerMinute != nil else { return }
        do {
            try await backend.settle(
                key: admission.key, limit: admission.limit, estimatedTokens: admission.estimatedTokens, actualTokens: usage?.totalTokens ?? 0)
        } catch {
            outage.failed(error, logger: logger, consequence: "token usage could not be settled")
        }
    }
}

/// A request refused by a rate limit: 429 with the rate-limit headers.
struct RateLimitRefusal: RefusalWithHeaders, Sendable {
    var headers: HTTPFields
    var message: String

    var error: GatewayError {
        GatewayError(status: 429, type: "rate_limit_exceeded", message: message, code: "rate_limit_exceeded")
    }
}
