import HTTPTypes
import Logging

/// One check that admits a request before any provider is called, or refuses it.
///
/// Each step's `admit` returns a ticket (nil when the step has nothing to hold for this request); the request's
/// `RequestLedger` settles every ticket exactly once with the real usage and cost, whatever the exit. Rate limits
/// are the first step, budgets the second (`BudgetAdmission`).
protocol AdmissionStep: Sendable {
    /// Admits the request or throws the refusal (an error the client sees, e.g. 429).
    func admit(_ candidate: AdmissionCandidate) async throws -> (any AdmissionTicket)?
}

extension Array where Element == any AdmissionStep {
    /// Runs every step in order, each ticket held by `ledger`; returns the headers the steps add to the answer.
    func admit(_ candidate: AdmissionCandidate, into ledger: RequestLedger) async throws -> HTTPFields {
        var headers: HTTPFields = [:]
        for step in self {
            guard let ticket = try await step.admit(candidate) else { continue }
            ledger.hold(ticket)
            headers.append(contentsOf: ticket.headers)
        }
        return headers
    }
}

/// What an admission step judges: the tokens the request may use, who sent it, the model it resolved to.
struct AdmissionCandidate: Sendable {
    /// `model` as the client asked for it.
    var requestedModel: String
    /// The request's tokens, estimated before any provider is called.
    var expected: ExpectedUsage
    var key: KeyConfig
    var snapshot: ConfigSnapshot
    var model: ResolvedModel
    var attribution: RequestAttribution
    var logger: Logger
}

/// The tokens a request may use, estimated before it is sent: what rate limits take and budgets hold.
struct ExpectedUsage: Sendable, Equatable {
    /// The prompt's tokens (`TokenEstimate.promptTokens`).
    var promptTokens: Int
    /// The request's own output cap per choice (`max_completion_tokens`, `max_tokens`); nil when it sets none.
    var maxOutputTokens: Int?
    /// Choices asked for (`n`).
    var choices = 1

    /// A chat request's: its prompt, its output cap, its `n`.
    init(chat request: ChatRequest) {
        self.init(promptTokens: TokenEstimate.promptTokens(for: request), maxOutputTokens: request.maxTokens, choices: request.n)
    }

    init(promptTokens: Int, maxOutputTokens: Int?, choices: Int = 1) {
        self.promptTokens = promptTokens
        self.maxOutputTokens = maxOutputTokens
        self.choices = choices
    }

    /// The output allowed: the cap (else `fallback`) times the choices.
    func outputTokens(default fallback: Int) -> Int {
        TokenEstimate.outputTokens(cap: maxOutputTokens, choices: choices, default: fallback)
    }
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

    /// `settle(usage:costUSD:logger:)` knowing the provider that served (nil when none did): budgets filtered by
    /// provider charge the one that served, not the one chosen before the call.
    func settle(usage: Usage?, costUSD: Double?, servedBy provider: String?, logger: Logger) async
}

extension AdmissionTicket {
    func settle(usage: Usage?, costUSD: Double?, servedBy provider: String?, logger: Logger) async {
        await settle(usage: usage, costUSD: costUSD, logger: logger)
    }
}

/// A refusal that carries headers of its own (`Retry-After`, the limit's state), answered as `error` in the
/// client's envelope.
protocol RefusalWithHeaders: Error {
    var error: GatewayError { get }
    var headers: HTTPFields { get }
}

/// The key's rate limits (`rate_limits`, `keys[].rate_limit`): requests and tokens per minute, tokens estimated
/// before the call and settled to the real count after.
struct RateLimitAdmission: AdmissionStep {
    let stores: Stores

    func admit(_ candidate: AdmissionCandidate) async throws -> (any AdmissionTicket)? {
        let gate = RateLimitGate(
            backend: stores.limiter, onBackendError: candidate.snapshot.config.rateLimits.onBackendError, outage: stores.limiterOutage)
        guard let admission = try await gate.admit(key: candidate.key, expected: candidate.expected, logger: candidate.logger) else { return nil }
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
