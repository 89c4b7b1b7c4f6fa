import NIOConcurrencyHelpers
import Prometheus

/// The gateway's Prometheus metrics, one registry per gateway, exposed at `GET /metrics` on the API listener and
/// on the admin socket.
///
/// Per-request series are fed by the request records (the same one record per request the request log gets),
/// so metrics and the log never disagree. Circuit states and in-flight counts are read when scraped.
public final class GatewayMetrics: RequestRecordSink, Sendable {
    /// The registry everything is registered in; the daemon also hands it to swift-metrics.
    public let registry = PrometheusCollectorRegistry()

    /// Buckets of the request-duration and time-to-first-byte histograms: LLM calls take from milliseconds (a cache
    /// hit) to minutes (a long generation).
    static let durationBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300),
    ]

    /// Built once: a descriptor's `name` is assembled from its parts at each use.
    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "llm_gateway", metricName: metric, unitName: unit, helpText: help)
    }

    nonisolated(unsafe) static let requests = name("requests", "total", "Requests answered, by requested model, provider that answered and HTTP status.")
    nonisolated(unsafe) static let duration = name("request_duration", "seconds", "Time from a request's arrival to the end of its answer.")
    nonisolated(unsafe) static let firstByte = name("time_to_first_byte", "seconds", "Time from a request's arrival to the first byte of its answer.")
    nonisolated(unsafe) static let tokens = name("tokens", "total", "Tokens used, by model, provider and type (prompt, completion, cached).")
    nonisolated(unsafe) static let cost = name("cost_usd", "total", "What answers cost, in USD, by model and provider.")
    nonisolated(unsafe) static let savedCost = name("saved_cost_usd", "total", "What cache hits saved, in USD, by model.")
    nonisolated(unsafe) static let cache = name("cache_lookups", "total", "Cache lookups by result: hit (exact), semantic_hit, miss, bypass, semantic_embedder_failed.")
    nonisolated(unsafe) static let rateLimited = name("rate_limited", "total", "Requests refused by a rate limit, by key.")
    nonisolated(unsafe) static let failovers = name("failovers", "total", "Answers given by a fallback, by the provider tried first and the one that answered.")
    nonisolated(unsafe) static let circuit = name("circuit_state", "", "Circuit breaker per provider: 0 closed, 1 half-open, 2 open.")
    nonisolated(unsafe) static let inFlight = name("in_flight", "requests", "Requests in flight to each provider.")
    nonisolated(unsafe) static let reloads = name("config_reloads", "total", "Configuration reloads by result: applied, unchanged, refused.")
    nonisolated(unsafe) static let generation = name("config_generation", "", "The configuration generation in force.")
    nonisolated(unsafe) static let backendErrors = name("backend_errors", "total", "Failed calls to a shared backend (redis cache, redis rate limiter), by backend.")
    nonisolated(unsafe) static let budgetLimit = name("budget_limit", "usd", "Each budget's limit per window, in USD.")
    nonisolated(unsafe) static let budgetHeld = name("budget_reserved", "usd", "What this gateway's requests under way hold on each budget, in USD.")
    nonisolated(unsafe) static let budgetSpend = name("budget_spend_usd", "total", "Spend this gateway charged to each budget, in USD.")
    nonisolated(unsafe) static let budgetRefusals = name("budget_refusals", "total", "Requests a hard budget refused, by budget.")
    nonisolated(unsafe) static let logRows = name(
        "request_log_rows", "", "Request-log rows since start, by state: written, spooled, rejected (refused by the database for their values, kept in the rejected-rows file), dropped.")

    nonisolated(unsafe) static let notifications = name(
        "notifications", "total", "Notification delivery attempts by channel and outcome: delivered, retried, failed (refused or given up).")
    nonisolated(unsafe) static let notificationsPending = name("notifications_pending", "", "Notifications waiting in the outbox, by channel.")

    /// Backend failures already counted, by backend: the outage logs keep running totals.
    private let countedBackendErrors = NIOLockedValueBox<[String: Int]>([:])
    /// Budget figures already counted, by budget: the book keeps running totals.
    private let countedBudgets = NIOLockedValueBox<[String: BudgetBook.BudgetTally]>([:])

    /// A series of one family by its label values, in the family's label order.
    private struct SeriesKey: Hashable {
        var family: Family
        var first: String
        var second: String = ""
        var third: String = ""
        var fourth: String = ""
    }

    private enum Family: Hashable {
        case requests, duration, firstByte, tokens, cost, savedCost, rateLimited, failovers, cache
    }

    /// The series every request records, found here by their label values: the registry's own lookup builds
    /// label arrays and name strings at every call, which profiles showed on every request.
    private let counters = NIOLockedValueBox<[SeriesKey: Counter]>([:])
    private let histograms = NIOLockedValueBox<[SeriesKey: DurationHistogram]>([:])

    /// Whether a model name is one the configuration names, so it may be a label value.
    private let isNamedModel: @Sendable (String) -> Bool

    /// - Parameter isNamedModel: whether a requested model is a configured or catalog name; any other (a
    ///   `provider/model` the client chose) is counted under `other`, so clients cannot make series without end.
    public init(isNamedModel: @escaping @Sendable (String) -> Bool = { _ in true }) {
        self.isNamedModel = isNamedModel
        // Register the families without labels up front, so a scrape shows them before the first event.
        _ = registry.makeGauge(descriptor: Self.generation)
    }

    // MARK: - Recording

    /// The API routes the `route` label names; any other path is `other`, so a client cannot add series.
    static let routes: Set<String> = ["/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/embeddings", "/v1/responses", "/v1/models"]

    /// Counts one finished request.
    public func record(_ record: RequestRecord) {
        let model = record.provider == nil ? "" : record.model.map { isNamedModel($0) ? $0 : "other" } ?? ""
        let provider = record.provider ?? ""
        let status = String(record.statusCode)
        let route = Self.routes.contains(record.endpoint) ? record.endpoint : "other"
        cached(counters, SeriesKey(family: .requests, first: model, second: provider, third: status, fourth: route)) {
            registry.makeCounter(
                descriptor: Self.requests, labels: [("model", model), ("provider", provider), ("status", status), ("route", route)])
        }.increment()
        cached(histograms, SeriesKey(family: .duration, first: model, second: provider)) {
            registry.makeDurationHistogram(descriptor: Self.duration, labels: [("model", model), ("provider", provider)], buckets: Self.durationBuckets)
        }.record(.milliseconds(record.latencyMs))
        // A JSON answer's first byte goes out with the rest of it.
        if let ttfb = record.ttfbMs ?? (record.stream ? nil : record.latencyMs) {
            cached(histograms, SeriesKey(family: .firstByte, first: model, second: provider)) {
                registry.makeDurationHistogram(
                    descriptor: Self.firstByte, labels: [("model", model), ("provider", provider)], buckets: Self.durationBuckets)
            }.record(.milliseconds(ttfb))
        }
        if !record.cacheHit {
            for (type, count) in [("prompt", record.promptTokens), ("completion", record.completionTokens), ("cached", record.cachedTokens)] {
                if let count, count > 0 {
                    cached(counters, SeriesKey(family: .tokens, first: model, second: provider, third: type)) {
                        registry.makeCounter(descriptor: Self.tokens, labels: [("model", model), ("provider", provider), ("type", type)])
                    }.increment(by: Int64(count))
                }
            }
        }
        if let cost = record.costUSD, cost > 0 {
            cached(counters, SeriesKey(family: .cost, first: model, second: provider)) {
                registry.makeCounter(descriptor: Self.cost, labels: [("model", model), ("provider", provider)])
            }.increment(by: cost)
        }
        if let saved = record.savedCostUSD, saved > 0 {
            cached(counters, SeriesKey(family: .savedCost, first: model)) {
                registry.makeCounter(descriptor: Self.savedCost, labels: [("model", model)])
            }.increment(by: saved)
        }
        if record.isRateLimitRefusal {
            let key = record.keyName ?? ""
            cached(counters, SeriesKey(family: .rateLimited, first: key)) {
                registry.makeCounter(descriptor: Self.rateLimited, labels: [("key", key)])
            }.increment()
        }
        if record.failoverUsed, let original = record.originalProvider {
            cached(counters, SeriesKey(family: .failovers, first: original, second: provider)) {
                registry.makeCounter(descriptor: Self.failovers, labels: [("from", original), ("to", provider)])
            }.increment()
        }
    }

    /// Counts one cache lookup: `hit` (exact), `semantic_hit`, `miss`, `bypass`, or `semantic_embedder_failed`.
    public func cacheLookup(_ result: String) {
        cached(counters, SeriesKey(family: .cache, first: result)) {
            registry.makeCounter(descriptor: Self.cache, labels: [("result", result)])
        }.increment()
    }

    /// The series under `key`, made by `make` (in the registry) the first time.
    private func cached<Metric: Sendable>(_ series: NIOLockedValueBox<[SeriesKey: Metric]>, _ key: SeriesKey, make: () -> Metric) -> Metric {
        if let known = series.withLockedValue({ $0[key] }) { return known }
        let made = make()
        series.withLockedValue { $0[key] = made }
        return made
    }


    /// Counts one reload.
    public func reloaded(_ result: ReloadOutcome.Result) {
        registry.makeCounter(descriptor: Self.reloads, labels: [("result", result.rawValue)]).increment()
    }

    // MARK: - Notifications

    /// Counts one delivery attempt on `channel`: `delivered`, `retried` or `failed`.
    public func notificationDelivery(channel: String, outcome: String) {
        registry.makeCounter(descriptor: Self.notifications, labels: [("channel", channel), ("outcome", outcome)]).increment()
    }

    /// Sets the pending rows of each channel.
    public func notificationsPending(_ counts: [(channel: String, pending: Int)]) {
        for (channel, pending) in counts {
            registry.makeGauge(descriptor: Self.notificationsPending, labels: [("channel", channel)]).set(Double(pending))
        }
    }

    // MARK: - Exposition

    /// The Prometheus text exposition (format 0.0.4), with the gauges read now from `gateway`.
    public func exposition(for gateway: Gateway) -> [UInt8] {
        let snapshot = gateway.store.snapshot
        registry.makeGauge(descriptor: Self.generation).set(Double(snapshot.generation))
        for provider in snapshot.config.providers {
            let state = gateway.breakers.state(of: provider.name)
            registry.makeGauge(descriptor: Self.circuit, labels: [("provider", provider.name)]).set(state.metricValue)
            registry.makeGauge(descriptor: Self.inFlight, labels: [("provider", provider.name)]).set(Double(gateway.load.current(provider.name)))
        }
        let tallies = gateway.stores.budgets.tally
        for budget in snapshot.budgets {
            registry.makeGauge(descriptor: Self.budgetLimit, labels: [("budget", budget.name)]).set(budget.limitUSD)
            let tally = tallies[budget.name] ?? BudgetBook.BudgetTally()
            registry.makeGauge(descriptor: Self.budgetHeld, labels: [("budget", budget.name)]).set(BudgetMoney.usd(max(0, tally.heldNanos)))
            let counted = countedBudgets.withLockedValue { counted in
                defer { counted[budget.name] = tally }
                return counted[budget.name] ?? BudgetBook.BudgetTally()
            }
            let spend = registry.makeCounter(descriptor: Self.budgetSpend, labels: [("budget", budget.name)])
            if tally.chargedNanos > counted.chargedNanos { spend.increment(by: BudgetMoney.usd(tally.chargedNanos - counted.chargedNanos)) }
            let refusals = registry.makeCounter(descriptor: Self.budgetRefusals, labels: [("budget", budget.name)])
            if tally.refusals > counted.refusals { refusals.increment(by: Int64(tally.refusals - counted.refusals)) }
        }
        var outages: [(String, OutageLog)] = [("redis_rate_limiter", gateway.stores.limiterOutage), ("budget_store", gateway.stores.budgets.outage)]
        if let redis = gateway.stores.cache as? RedisCache { outages.append(("redis_cache", redis.outage)) }
        for (backend, outage) in outages {
            let total = outage.failureCount
            let new = countedBackendErrors.withLockedValue { counted in
                defer { counted[backend] = total }
                return total - counted[backend, default: 0]
            }
            let counter = registry.makeCounter(descriptor: Self.backendErrors, labels: [("backend", backend)])
            if new > 0 { counter.increment(by: Int64(new)) }
        }
        if let log = gateway.requestLog as? RequestLog {
            for (state, count) in [("written", log.written), ("spooled", log.spooled), ("rejected", log.rejected), ("dropped", log.dropped)] {
                registry.makeGauge(descriptor: Self.logRows, labels: [("state", state)]).set(Double(count))
            }
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}

extension CircuitState {
    /// 0 closed, 1 half-open, 2 open.
    var metricValue: Double {
        switch self {
        case .closed: 0
        case .halfOpen: 1
        case .open: 2
        }
    }
}

/// Hands each request record to several sinks (the metrics and the request log).
struct RecordFanout: RequestRecordSink {
    let sinks: [any RequestRecordSink]

    func record(_ record: RequestRecord) {
        for sink in sinks { sink.record(record) }
    }
}
