import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The path of an embeddings request (`POST /v1/embeddings`, OpenAI's API): the chat pipeline's stages over an
/// `EmbeddingsRequest`.
///
/// decode → attribute → resolve (an embedding model the key may use) → admit (rate limits with the input's tokens,
/// budgets) → exact cache → upstream chain (deployments of the one model, retries, breakers: an embedding model has
/// no fallbacks, since two models' vectors are not comparable) → settle once. Answers are OpenAI's embeddings list,
/// translated from Gemini's `embedContent` / `batchEmbedContents` where Gemini serves.
public struct EmbeddingsPipeline: Sendable {
    let admission: [any AdmissionStep]
    let cache: AnswerCache
    let chain: UpstreamChain
    let metrics: GatewayMetrics?

    /// - Parameters:
    ///   - chain: the upstream chain, shared by every route.
    ///   - stores: the cache, rate-limit and budget backends.
    public init(chain: UpstreamChain, stores: Stores, metrics: GatewayMetrics? = nil) {
        self.admission = [RateLimitAdmission(stores: stores), BudgetAdmission(book: stores.budgets)]
        self.cache = AnswerCache(stores: stores, chain: chain, metrics: metrics)
        self.chain = chain
        self.metrics = metrics
    }

    /// Handles one request (the route's handler).
    public func handle(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        guard let snapshot = context.snapshot, let key = context.key else {
            throw GatewayError.unauthorized("Missing API key.")
        }
        let body = try await ChatPipeline<OpenAIChatDialect>.body(of: request, limit: snapshot.config.server.maxBodyBytes)
        let embeddings = try EmbeddingsRequest(parsing: body.readableBytesView)
        let outcome = context.outcome
        let attribution = Attribution.read(headers: request.headers, body: embeddings.body)
        outcome?.update { fields in
            fields.kind = "embeddings"
            fields.model = embeddings.model
            Attribution.apply(attribution, to: &fields)
        }
        let model = try ChatPipeline<OpenAIChatDialect>.resolve(embeddings.model, kind: .embedding, key: key, in: snapshot)
        let ledger = RequestLedger(outcome: outcome, cache: cache, logger: context.logger)
        do {
            let candidate = AdmissionCandidate(
                requestedModel: embeddings.model, expected: ExpectedUsage(promptTokens: embeddings.estimatedTokens, maxOutputTokens: 0), key: key,
                snapshot: snapshot, model: model, attribution: attribution, logger: context.logger)
            var headers = try await admission.admit(candidate, into: ledger)
            let query = cache.query(forEmbeddings: embeddings, key: key, config: snapshot.config, cacheControl: request.headers[.cacheControl])
            if let hit = await cache.lookup(query) {
                await ledger.settle(.cacheHit(hit))
                metrics?.cacheLookup(hit.metricResult)
                headers.append(contentsOf: AnswerHeaders.cacheHit(hit))
                headers[.latency] = String(context.elapsedMilliseconds)
                return .json(text: OpenAIChatDialect.answerBody(hit.answer.completionText, cost: 0, latencyMs: context.elapsedMilliseconds), headers: headers)
            }
            headers[.cacheHit] = query.policy.isActive ? "miss" : "bypass"
            metrics?.cacheLookup(query.policy.isActive ? "miss" : "bypass")
            ledger.storeAnswers(for: query)
            return try await answer(embeddings, model: model, table: snapshot.models, query: query, ledger: ledger, headers: headers, context: context)
        } catch {
            await ledger.settle(.failed)
            throw error
        }
    }

    /// The provider's answer (or an identical request's, under way), priced and settled.
    @inline(never)
    func answer(
        _ embeddings: EmbeddingsRequest, model: ResolvedModel, table: ModelTable, query: AnswerCache.Query, ledger: RequestLedger,
        headers: HTTPFields, context: GatewayRequestContext
    ) async throws -> Response {
        var headers = headers
        let logger = context.logger
        let work: @Sendable () async throws -> SharedAnswer = { [chain] in
            SharedAnswer(pricing: try await Self.embed(embeddings, model: model, table: table, chain: chain, logger: logger))
        }
        let (shared, joined) = try await cache.shared(query, channel: context.channel, work)
        await ledger.settle(.answered(shared, joined: joined))
        let latency = context.elapsedMilliseconds
        let cost = AnswerHeaders.answered(shared, joined: joined, latencyMs: latency, into: &headers)
        return .json(text: OpenAIChatDialect.answerBody(shared.answer.completionText, cost: cost, latencyMs: latency), headers: headers)
    }

    /// Runs `embeddings` down `model`'s chain and translates the answer: also the semantic cache's embedder call.
    static func embed(
        _ embeddings: EmbeddingsRequest, model: ResolvedModel, table: ModelTable, chain: UpstreamChain, logger: Logger
    ) async throws -> ServedAnswer<ChatCompletion> {
        try await chain.run(embeddings, model: model, table: table, logger: logger) { opened, _ in
            do {
                let (json, _) = try await chain.proxy.body(of: opened)
                return try embeddings.translateAnswer(json, provider: opened.model.provider.type, upstreamModel: opened.model.upstream)
            } catch let error as GatewayError {
                throw AttemptFailure(error, triggersFailover: true, timedOut: error.status == 504)
            }
        }
    }
}
