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
                    await ledger.settle(.failed)
                    if case .failed(let error) = served.answer {
                        outcome?.update { $0.errorMessage = error.message }
                        ledger.close(status: error.status, into: sink)
                    }
                    return
                }
                let cost = usage.flatMap { usage in served.model.price.map { usage.cost(at: $0) } }
                finalCost.withLockedValue { $0 = cost }
                var completion: CachedAnswer?
                if let assembler, var assembled = assembler.withLockedValue({ $0.completion() }) {
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
                await ledger.settle(.failed)
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
}
