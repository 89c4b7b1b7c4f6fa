import HTTPTypes
import Logging

/// One check that admits a request before any provider is called, or refuses it.
///
/// Each step's `admit` returns a ticket (nil when the step has nothing to hold for this request); the request's
/// `RequestLedger` settles every ticket exactly once with the real usage and cost, whatever the exit. Rate limits
/// are the first step; budgets come as the second.
protocol AdmissionStep: Sendable {
    /// Admits `request` or throws the refusal (an error the client sees, e.g. 429).
    func admit(_ request: ChatRequest, key: KeyConfig, snapshot: ConfigSnapshot, logger: Logger) async throws -> (any AdmissionTicket)?
}

/// What an admission step holds for one request until it is settled.
protocol AdmissionTicket: Sendable {
    /// Headers the step adds to the answer (e.g. `X-RateLimit-Remaining`).
    var headers: HTTPFields { get }

    /// Corrects what was held with what the request really used.
    /// - Parameters:
    ///   - usage: the answer's usage; zero for a cache hit, nil when the request failed or was cancelled.
    ///   - costUSD: what the request cost; nil when unknown or unpriced.
    func settle(usage: Usage?, costUSD: Double?, logger: Logger) async
}

/// The key's rate limits (`rate_limits`, `keys[].rate_limit`): requests and tokens per minute, tokens estimated
/// before the call and settled to the real count after.
struct RateLimitAdmission: AdmissionStep {
    let stores: Stores

    func admit(_ request: ChatRequest, key: KeyConfig, snapshot: ConfigSnapshot, logger: Logger) async throws -> (any AdmissionTicket)? {
        let gate = RateLimitGate(backend: stores.limiter, onBackendError: snapshot.config.rateLimits.onBackendError, outage: stores.limiterOutage)
        guard let admission = try await gate.admit(key: key, request: request, logger: logger) else { return nil }
        return Ticket(gate: gate, admission: admission)
    }

    struct Ticket: AdmissionTicket {
        let gate: RateLimitGate
        let admission: RateLimitGate.Admission

        var headers: HTTPFields { admission.headers }

        func settle(usage: Usage?, costUSD: Double?, logger: Logger) async {
            await gate.settle(admission, usage: usage, logger: logger)
        }
    }
}
