import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The path of a chat request, whatever the client's dialect, as a list of stages (`ARCHITECTURE.md`):
///
/// 1. decode: the body, within `server.max_body_bytes`, into the canonical request (`Dialect`), which the dialect then
///    completes with what the gateway keeps for the key (`prepare`: a Responses request's previous response);
/// 2. attribute: key, customer, feature and metadata on the request's record (`Attribution`);
/// 3. resolve: the model, and whether the key may use it;
/// 4. admit: each `AdmissionStep` (rate limits) admits or refuses, holding a ticket in the `RequestLedger`;
/// 5. answer cache: `AnswerCache.lookup`, each tier in turn; a hit is the first exit;
/// 6. upstream chain: `UpstreamChain`, as a complete answer (`answer`, shared by identical misses) or a stream
///    (`StreamedAnswer`); encoded back by the dialect;
/// 7. settle: the ledger settles once at whichever exit, an error or a client leaving included.
public struct ChatPipeline<Dialect: ClientDialect>: Sendable {
    let dialect: Dialect
    let admission: [any AdmissionStep]
    let cache: AnswerCache
    let chain: UpstreamChain
    let sink: (any RequestRecordSink)?
    let metrics: GatewayMetrics?
    /// The route it answers (what `cache.semantic.routes` names).
    let route: String

    /// - Parameters:
    ///   - dialect: how the client speaks.
    ///   - chain: the upstream chain, shared by every route.
    ///   - stores: the cache and rate-limit backends.
    ///   - sink: where a stream's task writes its record when the stream ends.
    public init(
        dialect: Dialect, chain: UpstreamChain, stores: Stores, sink: (any RequestRecordSink)? = nil, metrics: GatewayMetrics? = nil,
        route: String = "/v1/chat/completions"
    ) {
        self.dialect = dialect
        self.route = route
        self.admission = [RateLimitAdmission(stores: stores), BudgetAdmission(book: stores.budgets)]
        self.cache = AnswerCache(stores: stores, chain: chain, metrics: metrics)
        self.chain = chain
        self.sink = sink
        self.metrics = metrics
    }

    /// Handles one request (a route's handler).
    public func handle(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        guard let snapshot = context.snapshot, let key = context.key else {
            throw GatewayError.unauthorized("Missing API key.")
        }
        let chat = try await dialect.prepare(try await decode(request, limit: snapshot.config.server.maxBodyBytes), key: key, context: context)
        let outcome = context.outcome
        let attribution = Attribution.read(headers: request.headers, request: chat)
        outcome?.update { fields in
            fields.model = chat.model
            fields.stream = chat.stream
            Attribution.apply(attribution, to: &fields)
        }
        let model = try Self.resolve(chat.model, kind: .chat, key: key, in: snapshot)
        let ledger = RequestLedger(outcome: outcome, cache: cache, logger: context.logger)
        do {
            let candidate = AdmissionCandidate(
                requestedModel: chat.model, expected: ExpectedUsage(chat: chat), key: key, snapshot: snapshot, model: model, attribution: attribution, logger: context.logger)
            var headers = try await admission.admit(candidate, into: ledger)
            let query = cache.query(for: chat, route: route, key: key, snapshot: snapshot, cacheControl: request.headers[.cacheControl])
            ledger.storeAnswers(for: query)
            if let hit = await cache.lookup(query) {
                await ledger.settle(.cacheHit(hit))
                metrics?.cacheLookup(hit.metricResult)
                return answerFromCache(hit, request: chat, headers: headers, context: context)
            }
            headers[.cacheHit] = query.policy.isActive ? "miss" : "bypass"
            metrics?.cacheLookup(query.policy.isActive ? "miss" : "bypass")
            if chat.stream {
                let stream = StreamedAnswer(
                    dialect: dialect, chain: chain, request: chat, model: model, table: snapshot.models, ledger: ledger, sink: sink)
                return try await stream.start(headers: headers, context: context)
            }
            return try await answer(chat, model: model, table: snapshot.models, query: query, ledger: ledger, headers: headers, context: context)
        } catch {
            await ledger.settle(.failed)
            throw error
        }
    }

    // MARK: - Stages

    /// Reads the body within `limit` bytes and decodes it in the client's dialect.
    func decode(_ request: Request, limit: Int) async throws -> ChatRequest {
        try dialect.decode(try await Self.body(of: request, limit: limit), headers: request.headers)
    }

    /// A request's whole body, or 413 beyond `limit` bytes (`server.max_body_bytes`).
    static func body(of request: Request, limit: Int) async throws -> ByteBuffer {
        var request = request
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw GatewayError.payloadTooLarge(limit: limit)
        }
        do {
            return try await request.collectBody(upTo: limit)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw GatewayError.payloadTooLarge(limit: limit)
        }
    }

    /// The configured model the request names, when the key may use it and it answers on this route.
    static func resolve(_ name: String, kind: ModelKind, key: KeyConfig, in snapshot: ConfigSnapshot) throws(GatewayError) -> ResolvedModel {
        guard let model = snapshot.models.resolve(name) else {
            throw GatewayError.notFound(
                "The model '\(name)' does not exist or is not configured on this gateway. GET /v1/models lists the models your key can use.",
                param: "model", code: "model_not_found")
        }
        guard key.allows(model: name) else {
            throw GatewayError.forbidden("Your key '\(key.name)' is not allowed to use the model '\(name)'.", param: "model")
        }
        if let modelKind = model.kind, modelKind != kind {
            throw GatewayError.invalidRequest(
                "The model '\(name)' is \(modelKind == .embedding ? "an embedding" : "a chat") model: send it to \(modelKind.route), not \(kind.route).",
                param: "model", code: "wrong_model_kind")
        }
        return model
    }

    // MARK: - Exits

    /// The first exit: a cache tier's answer, replayed as a stream when one was asked for.
    func answerFromCache(_ hit: AnswerCache.Hit, request chat: ChatRequest, headers: HTTPFields, context: GatewayRequestContext) -> Response {
        var headers = headers
        headers.append(contentsOf: AnswerHeaders.cacheHit(hit))
        headers[.latency] = String(context.elapsedMilliseconds)
        if chat.stream {
            AnswerHeaders.stream(into: &headers)
            var frames = dialect.makeFrameEncoder(for: chat)
            let body = frames.frames(StreamReplay.payloads(for: hit.answer.completion, includeUsage: chat.includeUsage))
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
        }
        return .json(text: dialect.encode(hit.answer, for: chat, costUSD: 0, latencyMs: context.elapsedMilliseconds), headers: headers)
    }

    /// A complete answer: from the chain, or shared with an identical request already under way.
    ///
    /// Not inlined into `handle`, nor is the stream's start: a task keeps the memory of its largest async frame for
    /// as long as it lives, and a connection's task would otherwise carry both paths' locals through every open stream.
    @inline(never)
    func answer(
        _ chat: ChatRequest, model: ResolvedModel, table: ModelTable, query: AnswerCache.Query, ledger: RequestLedger, headers: HTTPFields,
        context: GatewayRequestContext
    ) async throws -> Response {
        var headers = headers
        let chain = self.chain
        let logger = context.logger
        let work: @Sendable () async throws -> SharedAnswer = {
            let served = try await chain.run(chat, model: model, table: table, logger: logger) { opened, _ in
                do {
                    return try await chain.proxy.completion(from: opened, requestedModel: chat.model)
                } catch let error as GatewayError {
                    throw AttemptFailure(error, triggersFailover: true, timedOut: error.status == 504)
                }
            }
            return SharedAnswer(pricing: served)
        }
        let (shared, joined) = try await cache.shared(query, channel: context.channel, work)
        await ledger.settle(.answered(shared, joined: joined))
        let latency = context.elapsedMilliseconds
        let cost = AnswerHeaders.answered(shared, joined: joined, latencyMs: latency, into: &headers)
        return .json(text: dialect.encode(shared.answer, for: chat, costUSD: cost, latencyMs: latency), headers: headers)
    }
}
