import Logging
import NIOConcurrencyHelpers

/// What one request owes once it is over, settled exactly once whatever the exit: a cache hit, an answer, the
/// end of a stream, an error, or the client leaving.
///
/// The pipeline opens the ledger as the request starts, adds each admission step's ticket as it is admitted and the
/// cache query once it is known, and calls `settle` at its exit. Settling runs the steps in order:
/// 1. the answer cache stores a fresh, complete answer (once per single flight, whoever of its requests settles first);
/// 2. every admission ticket is settled with the real usage and cost (zero for a hit; nothing for a failure, which
///    releases what was held);
/// 3. the request's record (`RequestOutcome`) gets its usage, cost and cache fields.
///
/// The record is then written, and counted in the metrics and the key's usage, by whoever ends the response: the
/// logging middleware right after an answer or an error has been written, or the stream's task when the stream
/// ends (`close`). A later `settle` does nothing, so no exit can settle twice.
final class RequestLedger: Sendable {
    /// How the request ended.
    enum Exit: Sendable {
        /// A cache tier answered; no provider was called.
        case cacheHit(AnswerCache.Hit)
        /// A complete answer, from this request's upstream call or shared with an identical one (`joined`).
        case answered(SharedAnswer, joined: Bool)
        /// A stream that ended well, with its usage and cost; `completion` is the answer assembled from it, to cache.
        case streamed(usage: Usage?, costUSD: Double?, completion: CachedAnswer?, provider: String? = nil)
        /// Refused after admission, failed, or the client left: nothing that is known was spent.
        case failed
    }

    private struct State {
        var tickets: [any AdmissionTicket] = []
        var cacheQuery: AnswerCache.Query?
        var settled = false
    }

    /// The request's record, filled in as it goes; nil where nothing is recorded.
    let outcome: RequestOutcome?
    private let cache: AnswerCache
    private let logger: Logger
    /// One lock for the tickets, the query and the settled flag: a ledger is made for every request.
    private let state = NIOLockedValueBox(State())

    init(outcome: RequestOutcome?, cache: AnswerCache, logger: Logger) {
        self.outcome = outcome
        self.cache = cache
        self.logger = logger
    }

    /// Holds an admission step's ticket until the request settles.
    func hold(_ ticket: any AdmissionTicket) {
        state.withLockedValue { $0.tickets.append(ticket) }
    }

    /// The cache query, for storing the answer when the request settles.
    func storeAnswers(for query: AnswerCache.Query) {
        state.withLockedValue { $0.cacheQuery = query }
    }

    /// Whether a fresh answer will be stored in the cache when the request settles.
    var storesAnswers: Bool {
        state.withLockedValue { $0.cacheQuery?.policy.store ?? false }
    }

    /// Runs every settlement step once; later calls do nothing.
    func settle(_ exit: Exit) async {
        let taken: (tickets: [any AdmissionTicket], query: AnswerCache.Query?)? = state.withLockedValue { state in
            guard !state.settled else { return nil }
            state.settled = true
            return (state.tickets, state.cacheQuery)
        }
        guard let (tickets, query) = taken else { return }
        var usage: Usage?
        var cost: Double?
        var provider: String?
        switch exit {
        case .cacheHit(let hit):
            (usage, cost) = (Usage(), 0)
            provider = hit.answer.provider
            outcome?.update { fields in
                fields.cacheHit = true
                fields.cacheHitKind = hit.label
                fields.cacheSimilarity = hit.similarity
                fields.cacheEntry = hit.entry
                fields.provider = hit.answer.provider
                fields.servedModel = hit.answer.upstreamModel
                fields.usage = hit.answer.usage
                fields.costUSD = 0
                fields.savedCostUSD = hit.answer.costUSD
            }
        case .answered(let shared, let joined):
            if let query, shared.storing.take() { await cache.store(shared.answer, for: query) }
            (usage, cost) = joined ? (Usage(), 0) : (shared.served.answer.usage, shared.costUSD)
            let served = shared.served
            provider = served.model.provider.name
            outcome?.update { fields in
                fields.served(by: served.model, original: served.original, attempts: joined ? 0 : served.attempts)
                fields.usage = served.answer.usage
                fields.cacheHit = joined
                if joined { fields.cacheHitKind = "exact" }
                fields.costUSD = cost
                fields.savedCostUSD = joined ? shared.costUSD : nil
            }
        case .streamed(let streamUsage, let streamCost, let completion, let servedBy):
            if let query, let completion { await cache.store(completion, for: query) }
            (usage, cost) = (streamUsage, streamCost)
            provider = servedBy
            outcome?.update { fields in
                fields.usage = streamUsage
                fields.costUSD = streamCost
            }
        case .failed:
            (usage, cost) = (nil, nil)
        }
        // The semantic cache's embedder call spent too, whatever the exit: recorded apart, and charged to the budgets
        // (which is what their rebuild from the request log counts: cost_usd + embedder_cost_usd).
        if let probe = query?.semantic {
            let call = probe.embedderCall
            outcome?.update { fields in
                fields.embedderCostUSD = call.costUSD
                fields.embedderLatencyMs = call.latencyMs
            }
            if let spent = call.costUSD, spent > 0 {
                cost = (cost ?? 0) + spent
                if usage == nil { usage = Usage() }
            }
        }
        for ticket in tickets { await ticket.settle(usage: usage, costUSD: cost, servedBy: provider, logger: logger) }
    }

    /// Writes the request's record now (a stream's task, as its stream ends); the record is written once.
    func close(status: Int, into sink: (any RequestRecordSink)?) {
        outcome?.finish(status: status, into: sink)
    }
}

extension RequestOutcome.Fields {
    /// Who answered: the model and provider that served, the first choice when a fallback did, and the attempts.
    mutating func served(by model: ResolvedModel, original: ResolvedModel, attempts: Int) {
        servedModel = model.upstream
        provider = model.provider.name
        let failedOver = model.provider.name != original.provider.name || model.upstream != original.upstream
        failoverUsed = failedOver
        originalProvider = failedOver ? original.provider.name : nil
        self.attempts = attempts
    }
}
