import AsyncHTTPClient
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore

extension HTTPField.Name {
    static let failover = HTTPField.Name("X-Failover")!
    static let originalProvider = HTTPField.Name("X-Original-Provider")!
    static let attempts = HTTPField.Name("X-Attempts")!
}

/// `POST /v1/chat/completions`: authenticate, validate, rate-limit, answer from the cache or route down the
/// failover chain, translate, relay.
public struct ChatCompletionsRoute: Sendable {
    let router: ChatRouter
    let stores: Stores
    let sink: (any RequestRecordSink)?
    let metrics: GatewayMetrics?

    public init(router: ChatRouter, stores: Stores, sink: (any RequestRecordSink)? = nil, metrics: GatewayMetrics? = nil) {
        self.router = router
        self.stores = stores
        self.sink = sink
        self.metrics = metrics
    }

    /// Handles one request.
    public func handle(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        guard let snapshot = context.snapshot, let key = context.key else {
            throw GatewayError.unauthorized("Missing API key.")
        }
        var request = request
        let limit = snapshot.config.server.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw GatewayError.payloadTooLarge(limit: limit)
        }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw GatewayError.payloadTooLarge(limit: limit)
        }
        let chat = try ChatRequest(parsing: body.readableBytesView)
        let outcome = context.outcome
        outcome?.update { fields in
            fields.model = chat.model
            fields.stream = chat.stream
            Attribution.apply(headers: request.headers, request: chat, to: &fields)
        }
        guard let model = snapshot.models.resolve(chat.model) else {
            throw GatewayError.notFound(
                "The model '\(chat.model)' does not exist or is not configured on this gateway. GET /v1/models lists the models your key can use.",
                param: "model", code: "model_not_found")
        }
        guard key.allows(model: chat.model) else {
            throw GatewayError.forbidden("Your key '\(key.name)' is not allowed to use the model '\(chat.model)'.", param: "model")
        }

        let gate = RateLimitGate(backend: stores.limiter, onBackendError: snapshot.config.rateLimits.onBackendError, outage: stores.limiterOutage)
        let admission = try await gate.admit(key: key, request: chat, logger: context.logger)
        let policy = CachePolicy(
            config: snapshot.config, key: key, cacheControl: request.headers[.cacheControl], backendAvailable: stores.cache != nil)
        let cacheKey = policy.isActive ? CacheKey.make(for: chat, namespace: policy.namespace) : ""
        var headers = admission?.headers ?? [:]

        if policy.lookup, let cache = stores.cache, let hit = await cache.get(cacheKey) {
            await gate.settle(admission, usage: Usage(), logger: context.logger)
            outcome?.update { fields in
                fields.cacheHit = true
                fields.provider = hit.providerType
                fields.servedModel = hit.upstreamModel
                fields.usage = hit.usage
                fields.costUSD = 0
                fields.savedCostUSD = hit.costUSD
            }
            headers[.cacheHit] = "exact"
            metrics?.cacheLookup("hit")
            headers[.provider] = hit.providerType
            headers[.servedModel] = hit.upstreamModel
            headers[.attempts] = "0"
            headers[.cost] = CostFormat.usd(0)
            headers[.latency] = String(context.elapsedMilliseconds)
            if chat.stream {
                headers[.contentType] = "text/event-stream"
                headers[.cacheControl] = "no-cache"
                let frames = StreamRelay.frames(StreamReplay.payloads(for: hit.completion, includeUsage: chat.includeUsage))
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: frames))
            }
            return .json(text: Self.answerBody(hit.completionText, cost: 0, latencyMs: context.elapsedMilliseconds), headers: headers)
        }
        headers[.cacheHit] = policy.isActive ? "miss" : "bypass"
        metrics?.cacheLookup(policy.isActive ? "miss" : "bypass")

        if chat.stream {
            return try await stream(chat, model: model, table: snapshot.models, context: context, headers: headers, policy: policy, cacheKey: cacheKey) { usage in
                await gate.settle(admission, usage: usage, logger: context.logger)
            }
        }
        return try await complete(
            chat, model: model, snapshot: snapshot, context: context, headers: headers, policy: policy, cacheKey: cacheKey, gate: gate,
            admission: admission)
    }

    /// A non-streamed answer: from the chain, or shared with an identical request already under way.
    ///
    /// Not inlined into `handle`, nor is `stream`: a task keeps the memory of its largest async frame for as long
    /// as it lives, and a connection's task would otherwise carry both paths' locals through every open stream.
    @inline(never)
    private func complete(
        _ chat: ChatRequest, model: ResolvedModel, snapshot: ConfigSnapshot, context: GatewayRequestContext, headers: HTTPFields,
        policy: CachePolicy, cacheKey: String, gate: RateLimitGate, admission: RateLimitGate.Admission?
    ) async throws -> Response {
        var headers = headers
        let outcome = context.outcome
        let router = self.router
        let cache = policy.store ? stores.cache : nil
        let logger = context.logger
        let work: @Sendable () async throws -> SharedAnswer = {
            let served = try await router.run(chat, model: model, table: snapshot.models, logger: logger) { opened, _ in
                do {
                    return try await router.proxy.completion(from: opened, requestedModel: chat.model)
                } catch let error as GatewayError {
                    throw AttemptFailure(error, triggersFailover: true, timedOut: error.status == 504)
                }
            }
            let cost = served.answer.usage.flatMap { usage in served.model.price.map { usage.cost(at: $0) } }
            let answer = CachedAnswer(
                completion: served.answer.body, text: served.answer.text, providerType: served.model.provider.type.rawValue,
                upstreamModel: served.model.upstream, costUSD: cost)
            if let cache { await cache.set(cacheKey, answer, ttl: policy.ttl) }
            return SharedAnswer(served: served, answer: answer)
        }
        // The client leaving stops the wait: a shared flight's waiter leaves it (the flight's task is cancelled
        // when nobody waits any more); otherwise the work's own task is cancelled.
        let shared: SharedAnswer
        let joined: Bool
        if policy.lookup {
            let watch = DisconnectWatch(channel: context.channel)
            defer { watch.stop() }
            (shared, joined) = try await stores.flights.run(cacheKey, leavingWhen: { leave in watch.start(onClose: leave) }, work)
        } else {
            (shared, joined) = (try await ClientWatch.cancellingOnDisconnect(context.channel, work), false)
        }
        let served = shared.served
        headers.append(contentsOf: Self.routingHeaders(model: served.model, original: served.original, attempts: joined ? 0 : served.attempts))
        let latency = context.elapsedMilliseconds
        headers[.latency] = String(latency)
        let cost = joined ? 0 : shared.costUSD
        outcome?.update { fields in
            fields.servedModel = served.model.upstream
            fields.provider = served.model.provider.name
            fields.failoverUsed = served.failedOver
            fields.originalProvider = served.failedOver ? served.original.provider.name : nil
            fields.attempts = joined ? 0 : served.attempts
            fields.usage = served.answer.usage
            fields.cacheHit = joined
            fields.costUSD = cost
            fields.savedCostUSD = joined ? shared.costUSD : nil
        }
        if joined {
            headers[.cacheHit] = "exact"
            await gate.settle(admission, usage: Usage(), logger: context.logger)
        } else {
            await gate.settle(admission, usage: served.answer.usage, logger: context.logger)
        }
        if let cost { headers[.cost] = CostFormat.usd(cost) }
        return .json(text: Self.answerBody(shared.answer.completionText, cost: cost, latencyMs: latency), headers: headers)
    }

    /// Streams: the chain runs in its own task, which hands the response over once the first chunks are ready
    /// and keeps relaying after that. The client leaving cancels it, whatever it is doing. A complete stream is
    /// assembled into a completion and cached.
    @inline(never)
    private func stream(
        _ chat: ChatRequest, model: ResolvedModel, table: ModelTable, context: GatewayRequestContext, headers baseHeaders: HTTPFields,
        policy: CachePolicy, cacheKey: String, settle: @escaping @Sendable (Usage?) async -> Void
    ) async throws -> Response {
        let (outputs, output) = AsyncStream<ByteBuffer>.makeStream()
        let assembler: NIOLockedValueBox<StreamAssembler>? = policy.store ? NIOLockedValueBox(StreamAssembler()) : nil
        var configured = StreamRelay(requestedModel: chat.model, includeUsage: chat.includeUsage, logger: context.logger, output: output)
        let outcome = context.outcome
        let sink = self.sink
        if let assembler {
            configured.observe = { @Sendable payloads in
                assembler.withLockedValue { collected in
                    for payload in payloads { collected.add(payload) }
                }
            }
        }
        let relay = configured
        let delivery = OneShot<Response>()
        let finalCost = NIOLockedValueBox<Double?>(nil)
        let router = self.router
        let cache = policy.store ? stores.cache : nil
        let logger = context.logger
        let watch = DisconnectWatch(channel: context.channel)
        let startedAt = context.startedAt
        let exchange = Task {
            defer {
                watch.stop()
                output.finish()
            }
            do {
                let served = try await router.run(chat, model: model, table: table, logger: logger) { opened, attempt in
                    try await relay.relay(opened) {
                        // The first byte goes out with these headers: one reading for the log's ttfb and X-Latency-Ms.
                        let elapsedMs = Int((ContinuousClock.now - startedAt).wholeMilliseconds)
                        outcome?.update { fields in
                            fields.deferred = true
                            fields.ttfbMs = elapsedMs
                            fields.servedModel = opened.model.upstream
                            fields.provider = opened.model.provider.name
                            fields.attempts = attempt.attempt
                            let failedOver = opened.model.provider.name != attempt.original.provider.name || opened.model.upstream != attempt.original.upstream
                            fields.failoverUsed = failedOver
                            fields.originalProvider = failedOver ? attempt.original.provider.name : nil
                        }
                        var headers = baseHeaders
                        headers.append(contentsOf: Self.routingHeaders(model: opened.model, original: attempt.original, attempts: attempt.attempt))
                        headers[.contentType] = "text/event-stream"
                        headers[.cacheControl] = "no-cache"
                        headers[.latency] = String(elapsedMs)
                        headers[.trailer] = "X-Cost-USD"
                        delivery.deliver(.success(Response(status: .ok, headers: headers, body: Self.body(outputs, cost: finalCost))))
                    }
                }
                delivery.deliver(.failure(GatewayError.badGateway("The provider's stream ended without any content.")))
                guard case .complete(let usage) = served.answer else {
                    if case .failed(let error) = served.answer {
                        outcome?.update { $0.errorMessage = error.message }
                        outcome?.finish(status: error.status, into: sink)
                    }
                    await settle(nil)
                    return
                }
                let cost = usage.flatMap { usage in served.model.price.map { usage.cost(at: $0) } }
                finalCost.withLockedValue { $0 = cost }
                // The answer is cached and the limits settled before the stream ends, so the client's next request sees both.
                if let cache, let assembler, var completion = assembler.withLockedValue({ $0.completion() }) {
                    if let usage { completion["usage"] = usage.json }
                    await cache.set(
                        cacheKey,
                        CachedAnswer(completion: completion, providerType: served.model.provider.type.rawValue, upstreamModel: served.model.upstream, costUSD: cost),
                        ttl: policy.ttl)
                }
                await settle(usage)
                output.finish()
                outcome?.update { fields in
                    fields.usage = usage
                    fields.costUSD = cost
                }
                outcome?.finish(status: 200, into: sink)
            } catch {
                delivery.deliver(.failure(error))
                if outcome?.isDeferred == true {
                    outcome?.update { $0.errorMessage = error is CancellationError ? "The client closed the connection." : "\(error)" }
                    outcome?.finish(status: error is CancellationError ? 499 : 502, into: sink)
                }
            }
        }
        watch.start { exchange.cancel() }
        output.onTermination = { _ in exchange.cancel() }
        return try await withTaskCancellationHandler {
            try await delivery.wait()
        } onCancel: {
            exchange.cancel()
        }
    }

    /// The stream's body; once it is complete, the cost follows as the `X-Cost-USD` trailer (when the model is priced).
    private static func body(_ outputs: AsyncStream<ByteBuffer>, cost: NIOLockedValueBox<Double?>) -> ResponseBody {
        ResponseBody { writer in
            for await buffer in outputs { try await writer.write(buffer) }
            var trailers: HTTPFields = [:]
            if let cost = cost.withLockedValue({ $0 }) { trailers[.cost] = CostFormat.usd(cost) }
            try await writer.finish(trailers.isEmpty ? nil : trailers)
        }
    }

    /// The answer with `cost_usd` (null when unpriced) and `latency_ms` beside `usage`: the two members are
    /// added to the object's text (`CachedAnswer.completionText`, which has neither), not to a copy of the object.
    static func answerBody(_ text: [UInt8], cost: Double?, latencyMs: Int) -> ByteBuffer {
        var members = text.count > 2 ? "," : ""
        members += "\"cost_usd\":"
        (cost.map(JSON.double) ?? .null).write(to: &members)
        members += ",\"latency_ms\":" + String(latencyMs) + "}"
        var buffer = ByteBuffer()
        buffer.reserveCapacity(text.count + members.utf8.count)
        buffer.writeBytes(text.dropLast())
        buffer.writeString(members)
        return buffer
    }

    /// `X-Provider`, `X-Model`, `X-Attempts`, and `X-Failover` with `X-Original-Provider` when a fallback answered.
    static func routingHeaders(model: ResolvedModel, original: ResolvedModel, attempts: Int) -> HTTPFields {
        var headers: HTTPFields = [:]
        headers[.provider] = model.provider.type.rawValue
        headers[.servedModel] = model.upstream
        headers[.attempts] = String(attempts)
        if model.provider.name != original.provider.name || model.upstream != original.upstream {
            headers[.failover] = "true"
            headers[.originalProvider] = original.provider.type.rawValue
        }
        return headers
    }
}

extension KeyConfig {
    /// Whether the allow-list admits `model`.
    public func allows(model: String) -> Bool {
        models.contains { Glob($0).matches(model) }
    }
}

/// Formats of money.
public enum CostFormat {
    /// USD with six decimals, e.g. `0.000123`.
    public static func usd(_ amount: Double) -> String {
        let micros = Int64((amount * 1_000_000).rounded())
        let whole = micros / 1_000_000
        let fraction = String(micros % 1_000_000)
        return "\(whole)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }
}
