import Atomics
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The stream exit: the chain runs in a task of its own, which hands the response over once the first chunks are
/// ready and keeps relaying after that. The client leaving cancels it, whatever it is doing. When the stream ends,
/// the request's ledger settles (the answer assembled from the stream is cached) and the task writes the record.
struct StreamedAnswer<Dialect: ClientDialect>: Sendable {
    let dialect: Dialect
    let chain: UpstreamChain
    let request: ChatRequest
    let model: ResolvedModel
    let table: ModelTable
    let ledger: RequestLedger
    let sink: (any RequestRecordSink)?

    /// Starts the chain; returns the response once the first chunks are ready.
    /// - Throws: the chain's error when no provider started a stream.
    @inline(never)
    func start(headers baseHeaders: HTTPFields, context: GatewayRequestContext) async throws -> Response {
        let chat = request
        let output = StreamOutput()
        let assembler: NIOLockedValueBox<StreamAssembler>? = ledger.storesAnswers ? NIOLockedValueBox(StreamAssembler()) : nil
        var configured = StreamRelay(
            requestedModel: chat.model, includeUsage: chat.includeUsage, logger: context.logger, output: output,
            frames: NIOLockedValueBox(dialect.makeFrameEncoder(for: chat)))
        // What a stream cut short is charged: the payloads the client got, about one token each.
        let relayed = ManagedAtomic(0)
        let servedModel = NIOLockedValueBox<ResolvedModel?>(nil)
        // A stream relayed in the client's own API (thinking signatures and all) is not cached: a replay from the
        // canonical chunks would lose what the client must send back.
        let servedNatively = ManagedAtomic(false)
        configured.observe = { @Sendable payloads in
            relayed.wrappingIncrement(by: payloads.count, ordering: .relaxed)
            assembler?.withLockedValue { collected in
                for payload in payloads { collected.add(payload) }
            }
        }
        let relay = configured
        let delivery = OneShot<Response>()
        let finalCost = NIOLockedValueBox<Double?>(nil)
        let (chain, model, table, ledger, sink) = (self.chain, self.model, self.table, self.ledger, self.sink)
        let outcome = ledger.outcome
        let logger = context.logger
        let watch = DisconnectWatch(channel: context.channel)
        let startedAt = context.startedAt
        let exchange = Task(executorPreference: TaskPlacement.preferredExecutor) {
            defer {
                watch.stop()
                output.finish()
            }
            do {
                let served = try await chain.run(chat, model: model, table: table, logger: logger) { opened, attempt in
                    try await relay.relay(opened) {
                        // The first byte goes out with these headers: one reading for the log's ttfb and X-Latency-Ms.
                        let elapsedMs = Int((ContinuousClock.now - startedAt).wholeMilliseconds)
                        outcome?.update { fields in
                            fields.deferred = true
                            fields.ttfbMs = elapsedMs
                            fields.served(by: opened.model, original: attempt.original, attempts: attempt.attempt)
                        }
                        servedModel.withLockedValue { $0 = opened.model }
                        servedNatively.store(opened.passthrough, ordering: .relaxed)
                        var headers = baseHeaders
                        headers.append(contentsOf: AnswerHeaders.routing(model: opened.model, original: attempt.original, attempts: attempt.attempt))
                        AnswerHeaders.stream(into: &headers)
                        headers[.latency] = String(elapsedMs)
                        headers[.trailer] = "X-Cost-USD"
                        delivery.deliver(.success(Response(status: .ok, headers: headers, body: Self.body(output, cost: finalCost))))
                    }
                } succeeded: { end in
                    if case .complete = end { return true }
                    return false
                }
                delivery.deliver(.failure(GatewayError.badGateway("The provider's stream ended without any content.")))
                guard case .complete(let usage) = served.answer else {
                    await ledger.settle(Self.cutShort(chat, served: servedModel, relayed: relayed))
                    if case .failed(let error) = served.answer {
                        outcome?.update { $0.errorMessage = error.message }
                        ledger.close(status: error.status, into: sink)
                    }
                    return
                }
                let cost = usage.flatMap { usage in served.model.price.map { usage.cost(at: $0) } }
                finalCost.withLockedValue { $0 = cost }
                var completion: CachedAnswer?
                if let assembler, !servedNatively.load(ordering: .relaxed), var assembled = assembler.withLockedValue({ $0.completion() }) {
                    if let usage { assembled["usage"] = usage.json }
                    completion = CachedAnswer(
                        completion: assembled, provider: served.model.provider.name, upstreamModel: served.model.upstream, costUSD: cost)
                }
                // The answer is cached and the limits settled before the stream ends, so the client's next request sees both.
                await ledger.settle(.streamed(usage: usage, costUSD: cost, completion: completion, provider: served.model.provider.name))
                output.finish()
                ledger.close(status: 200, into: sink)
            } catch {
                delivery.deliver(.failure(error))
                await ledger.settle(Self.cutShort(chat, served: servedModel, relayed: relayed))
                if outcome?.isDeferred == true {
                    outcome?.update { $0.errorMessage = error is CancellationError ? "The client closed the connection." : "\(error)" }
                    ledger.close(status: error is CancellationError ? 499 : 502, into: sink)
                }
            }
        }
        watch.start { exchange.cancel() }
        output.whenConsumerStops { exchange.cancel() }
        return try await withTaskCancellationHandler {
            try await delivery.wait()
        } onCancel: {
            exchange.cancel()
        }
    }

    /// The stream's body; once it is complete, the cost follows as the `X-Cost-USD` trailer (when the model is priced).
    private static func body(_ output: StreamOutput, cost: NIOLockedValueBox<Double?>) -> ResponseBody {
        ResponseBody { writer in
            defer { output.consumerStopped() }
            while let buffer = await output.next() { try await writer.write(buffer) }
            var trailers: HTTPFields = [:]
            if let cost = cost.withLockedValue({ $0 }) { trailers[.cost] = CostFormat.usd(cost) }
            try await writer.finish(trailers.isEmpty ? nil : trailers)
        }
    }

    /// How a stream that broke or that the client left after it began is settled: the provider has generated (and
    /// will bill) what was sent, which the stream's own usage, never received, would have said. It is charged as the
    /// prompt's estimate and one completion token per payload the client got, at the serving model's price (and
    /// logged so); a stream that never began costs nothing.
    static func cutShort(_ chat: ChatRequest, served: NIOLockedValueBox<ResolvedModel?>, relayed: ManagedAtomic<Int>) -> RequestLedger.Exit {
        let payloads = relayed.load(ordering: .relaxed)
        guard let model = served.withLockedValue({ $0 }), payloads > 0 else { return .failed }
        let usage = Usage(promptTokens: TokenEstimate.promptTokens(for: chat), completionTokens: payloads)
        return .streamed(usage: usage, costUSD: model.price.map { usage.cost(at: $0) }, completion: nil, provider: model.provider.name)
    }
}
