import HTTPTypes
import Logging

extension HTTPField.Name {
    static let budgetRemaining = HTTPField.Name("X-Budget-Remaining-USD")!
    static let budgetReset = HTTPField.Name("X-Budget-Reset")!
}

/// Budgets (`budgets:`, `keys[].budget`): before any provider is called, holds the request's estimated cost on every
/// counter it is charged to, or refuses it with 429 `budget_exceeded` when a hard budget cannot afford it; after,
/// replaces the hold with the real cost (nothing for a failure or a cache hit).
///
/// The estimate is the prompt's tokens (from its text, `TokenEstimate`) and the output cap (`max_tokens` × `n`, else
/// the provider's `default_max_tokens`), at the highest price in the model's fallback chain, so a failover to a
/// pricier model stays inside what was held. With no budgets configured the step returns at once.
struct BudgetAdmission: AdmissionStep {
    let book: BudgetBook

    func admit(_ candidate: AdmissionCandidate) async throws -> (any AdmissionTicket)? {
        let budgets = candidate.snapshot.budgets
        guard !budgets.isEmpty else { return nil }
        let now = book.clock()
        let subject = Self.subject(of: candidate)
        let counters = book.counters(for: subject, among: budgets, atMillis: now)
        guard !counters.isEmpty else { return nil }
        let hardBudget = counters.first(where: \.hard)?.budget
        guard let price = Self.highestPrice(of: candidate.model, in: candidate.snapshot.models) else {
            if let hardBudget {
                throw GatewayError.invalidRequest(
                    "The model '\(candidate.requestedModel)' has no price, so the hard budget '\(hardBudget)' cannot count what it spends. Give it a price under models: in gateway.yaml.",
                    param: "model", code: "budget_unpriced_model")
            }
            return nil
        }
        let amount = Self.estimate(candidate.expected, price: price, defaultOutput: candidate.model.provider.defaultMaxTokens)
        let id = book.nextReservationID()
        let expires = now + Int64(candidate.model.provider.timeouts.total.components.seconds) * 1000 + 60_000
        let reservation: BudgetReservation
        do {
            if let memory = book.store as? MemoryBudgetStore {
                reservation = memory.reserveNow(counters, amount: amount, id: id, expiresAtMillis: expires, nowMillis: now)
            } else {
                reservation = try await book.store.reserve(counters, amount: amount, id: id, expiresAtMillis: expires, nowMillis: now)
            }
            book.outage.succeeded(logger: candidate.logger)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            switch candidate.snapshot.config.budgetSettings.onBackendError {
            case .allow:
                book.outage.failed(error, logger: candidate.logger, consequence: "requests pass without budgets (budgets_on_backend_error: allow)")
                return nil
            case .deny:
                book.outage.failed(error, logger: candidate.logger, consequence: "requests under budgets are refused (budgets_on_backend_error: deny)")
                throw GatewayError.unavailable("The budget store is unavailable, and this gateway refuses requests under budgets until it is back.")
            }
        }
        switch reservation {
        case .refused(let index, let level):
            let counter = counters[index]
            book.count([counter], refused: true)
            if let budget = budgets.first(where: { $0.name == counter.budget }) {
                book.alerts.refused(counter, budget: budget, level: level, nowMillis: now)
            }
            throw BudgetRefusal(counter: counter, level: level, nowMillis: now)
        case .held(let levels):
            book.count(counters, held: amount)
            return Ticket(
                book: book, budgets: budgets, subject: subject, counters: counters, id: id, heldAtMillis: now, heldNanos: amount,
                headers: Self.headers(counters, levels, nowMillis: now))
        }
    }

    static func subject(of candidate: AdmissionCandidate) -> BudgetSubject {
        BudgetSubject(
            key: candidate.key.name, customer: candidate.attribution.customer, feature: candidate.attribution.feature,
            model: candidate.requestedModel, provider: candidate.model.provider.name,
            metadata: candidate.attribution.metadata.isEmpty ? [:]
                : Dictionary(candidate.attribution.metadata.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first }))
    }

    /// The highest input and output prices among the model and its fallbacks; nil when the model itself has none.
    static func highestPrice(of model: ResolvedModel, in table: ModelTable) -> Price? {
        guard var price = model.price else { return nil }
        // A prompt may be written to the provider's cache, at its cache-write price: hold the dearer of the two.
        price.input = max(price.input, price.cacheWrite ?? price.input)
        for name in model.fallbacks {
            guard let fallback = table.resolve(name)?.price else { continue }
            price.input = max(price.input, fallback.input, fallback.cacheWrite ?? fallback.input)
            price.output = max(price.output, fallback.output)
        }
        price.cachedInput = nil
        price.cacheWrite = nil
        return price
    }

    /// The estimated cost of `expected` at `price`, in nano-USD.
    static func estimate(_ expected: ExpectedUsage, price: Price, defaultOutput: Int) -> Int64 {
        let prompt = expected.promptTokens
        let output = expected.outputTokens(default: defaultOutput)
        return BudgetMoney.nanos(Usage(promptTokens: prompt, completionTokens: output).cost(at: price))
    }

    /// `X-Budget-Remaining-USD` and `X-Budget-Reset` of the tightest counter: the one with the least left.
    static func headers(_ counters: [BudgetCounter], _ levels: [BudgetLevel], nowMillis: Int64) -> HTTPFields {
        var tightest: (remaining: Int64, counter: BudgetCounter)?
        for (counter, level) in zip(counters, levels) {
            let remaining = counter.limitNanos - level.totalNanos
            if tightest == nil || remaining < tightest!.remaining { tightest = (remaining, counter) }
        }
        guard let tightest else { return [:] }
        var headers: HTTPFields = [:]
        headers[.budgetRemaining] = BudgetMoney.sixDecimals(tightest.remaining)
        headers[.budgetReset] = String(tightest.counter.span.secondsToReset(fromMillis: nowMillis))
        return headers
    }

    /// The hold on a request's counters until it settles.
    struct Ticket: AdmissionTicket {
        let book: BudgetBook
        let budgets: [BudgetConfig]
        let subject: BudgetSubject
        let counters: [BudgetCounter]
        let id: String
        let heldAtMillis: Int64
        let heldNanos: Int64
        let headers: HTTPFields

        func settle(usage: Usage?, costUSD: Double?, logger: Logger) async {
            await settle(usage: usage, costUSD: costUSD, servedBy: nil, logger: logger)
        }

        /// In memory, at once; in Redis, in a task of its own, so the request's only round trip to Redis on its
        /// way is the hold (the hold stays until the settlement replaces it, so nothing can overshoot meanwhile).
        func settle(usage: Usage?, costUSD: Double?, servedBy provider: String?, logger: Logger) async {
            let amount = usage == nil ? 0 : BudgetMoney.nanos(costUSD ?? 0)
            guard book.isShared else { return await apply(amount, servedBy: provider, logger: logger) }
            Task(executorPreference: TaskPlacement.preferredExecutor) { await apply(amount, servedBy: provider, logger: logger) }
        }

        private func apply(_ amount: Int64, servedBy provider: String?, logger: Logger) async {
            let now = book.clock()
            // The counters the request is charged to now that the provider that served is known: those it no
            // longer falls in are only released.
            var charged = counters
            var released: [BudgetCounter] = []
            var fresh: [BudgetCounter] = []
            var kept = counters
            if let provider, provider != subject.provider {
                var served = subject
                served.provider = provider
                charged = book.counters(for: served, among: budgets, atMillis: heldAtMillis)
                released = counters.filter { held in !charged.contains { $0.storageKey == held.storageKey } }
                fresh = charged.filter { counter in !counters.contains { $0.storageKey == counter.storageKey } }
                kept = charged.filter { counter in counters.contains { $0.storageKey == counter.storageKey } }
            }
            book.count(counters, held: -heldNanos)
            book.count(charged, charged: amount)
            if let memory = book.store as? MemoryBudgetStore {
                if !released.isEmpty { _ = memory.settleNow(released, id: id, amount: 0, nowMillis: now) }
                if !fresh.isEmpty { alert(fresh, memory.settleNow(fresh, id: nil, amount: amount, nowMillis: now), amount, now) }
                if !kept.isEmpty { alert(kept, memory.settleNow(kept, id: id, amount: amount, nowMillis: now), amount, now) }
                return
            }
            do {
                if !released.isEmpty { _ = try await book.store.settle(released, id: id, amount: 0, nowMillis: now) }
                if !fresh.isEmpty { alert(fresh, try await book.store.settle(fresh, id: nil, amount: amount, nowMillis: now), amount, now) }
                if !kept.isEmpty { alert(kept, try await book.store.settle(kept, id: id, amount: amount, nowMillis: now), amount, now) }
            } catch {
                book.outage.failed(error, logger: logger, consequence: "a request's spend could not be added to its budgets")
            }
        }

        private func alert(_ counters: [BudgetCounter], _ levels: [BudgetLevel], _ amount: Int64, _ now: Int64) {
            for (counter, level) in zip(counters, levels) {
                guard let budget = budgets.first(where: { $0.name == counter.budget }) else { continue }
                book.alerts.settled(counter, budget: budget, amount: amount, level: level, nowMillis: now)
            }
        }
    }
}

/// A request a hard budget cannot afford: 429 `budget_exceeded`, naming the budget and nothing of its bucket.
struct BudgetRefusal: RefusalWithHeaders, Sendable {
    /// How every budget refusal's message starts (the request log and the metrics tell it from a rate limit's).
    static let messagePrefix = "This request would exceed the budget"

    let counter: BudgetCounter
    let level: BudgetLevel
    let nowMillis: Int64

    var error: GatewayError {
        GatewayError(
            status: 429, type: "budget_exceeded",
            message: "\(Self.messagePrefix) '\(counter.budget)'. It resets in \(counter.span.secondsToReset(fromMillis: nowMillis)) s.",
            code: "budget_exceeded")
    }

    var headers: HTTPFields {
        var headers: HTTPFields = [:]
        headers[.retryAfter] = String(counter.span.secondsToReset(fromMillis: nowMillis))
        headers[.budgetReset] = String(counter.span.secondsToReset(fromMillis: nowMillis))
        return headers
    }
}
