import Logging

/// Who answered a request, and how.
public struct ServedAnswer<Answer: Sendable>: Sendable {
    /// What the accepting step produced (a completion, or a finished stream).
    public var answer: Answer
    /// The model and provider that answered.
    public var model: ResolvedModel
    /// The first choice of the chain.
    public var original: ResolvedModel
    /// Attempts made, the answering one included.
    public var attempts: Int

    /// True when someone other than the first choice answered.
    public var failedOver: Bool {
        model.provider.name != original.provider.name || model.upstream != original.upstream
    }
}

/// Where an attempt stands in its chain.
public struct AttemptContext: Sendable {
    /// 1 for the first attempt.
    public var attempt: Int
    /// The first choice of the chain.
    public var original: ResolvedModel
}

/// Runs an operation (a chat request today, embeddings next) down its model's failover chain.
///
/// The chain is the requested model's deployments (weighted, least in-flight first), then each fallback
/// model's. Each target is skipped while its provider's circuit is open, tried, and retried on 429, 5xx,
/// connection failures and timeouts up to the provider's `retries` with jittered exponential backoff
/// (honouring `Retry-After` up to `retry_after_max`), before the chain moves on. Client errors end the chain at
/// once. One deadline, the first provider's `total`, bounds the whole chain; each attempt also has its own
/// connect and first-byte timers. Cancelling the calling task (the client went away) stops everything,
/// backoff sleeps included.
public struct UpstreamChain: Sendable {
    public let proxy: UpstreamProxy
    public let breakers: CircuitBreakers
    public let load: ProviderLoad
    /// First backoff step; each retry doubles it, up to the provider's `retry_after_max`.
    public var backoffBase: Duration = .milliseconds(250)

    public init(proxy: UpstreamProxy, breakers: CircuitBreakers, load: ProviderLoad) {
        self.proxy = proxy
        self.breakers = breakers
        self.load = load
    }

    /// One target of the chain: a model on one provider.
    struct Target {
        var model: ResolvedModel
        /// Position of the chain link (0 for the requested model) the target belongs to.
        var link: Int
    }

    /// The targets in the order to try them.
    func plan(for model: ResolvedModel, in table: ModelTable) -> [Target] {
        var links = [model]
        for name in model.fallbacks {
            guard let fallback = table.resolve(name) else { continue }
            links.append(fallback)
        }
        var seen = Set<String>()
        var targets: [Target] = []
        var generator = SystemRandomNumberGenerator()
        for (index, link) in links.enumerated() {
            let providers: [ProviderConfig]
            if link.deployments.isEmpty {
                providers = [link.provider]
            } else {
                let ordered = DeploymentPicker.order(link.deployments, inFlight: load.current, using: &generator)
                providers = ordered.filter { $0.weight > 0 }.compactMap { table.provider(named: $0.provider) }
            }
            for provider in providers {
                let model = link.served(by: provider)
                guard seen.insert("\(provider.name)\u{0}\(model.upstream)").inserted else { continue }
                targets.append(Target(model: model, link: index))
            }
        }
        return targets
    }

    /// Tries the chain until `accept` succeeds with an opened upstream.
    /// - Parameters:
    ///   - accept: consumes a successful response head; throws `AttemptFailure` when the answer failed before
    ///     anything reached the client (then the chain goes on).
    ///   - succeeded: whether an accepted answer went well, for the provider's breaker and load statistics: a stream
    ///     that broke after it reached the client is the provider's failure, though the chain cannot move on.
    /// - Throws: `GatewayError` for the client: a client error at once, else a summary of every attempt.
    public func run<Operation: UpstreamOperation, Answer: Sendable>(
        _ operation: Operation, model: ResolvedModel, table: ModelTable, logger: Logger,
        accept: (OpenedUpstream, AttemptContext) async throws -> Answer, succeeded: (Answer) -> Bool = { _ in true }
    ) async throws -> ServedAnswer<Answer> {
        let targets = plan(for: model, in: table)
        let deadline = ContinuousClock.now + model.provider.timeouts.total
        var report = ChainReport(model: model.name)
        var generator = SystemRandomNumberGenerator()
        for target in targets {
            let provider = target.model.provider
            guard breakers.admit(provider.name, settings: provider.circuitBreaker) else {
                report.skip(target.model, reason: "circuit open")
                continue
            }
            var retry = 0
            while true {
                try Task.checkCancellation()
                guard ContinuousClock.now < deadline else {
                    breakers.abandon(provider.name)
                    report.deadlinePassed()
                    throw report.summary().after(report.attempts)
                }
                report.attempts += 1
                load.start(provider.name)
                let attemptStarted = ContinuousClock.now
                do {
                    let opened = try await proxy.open(operation, model: target.model, deadline: deadline, logger: logger)
                    let answer = try await accept(opened, AttemptContext(attempt: report.attempts, original: targets[0].model))
                    let wentWell = succeeded(answer)
                    load.finish(provider.name, failed: !wentWell, elapsed: ContinuousClock.now - attemptStarted)
                    breakers.record(provider.name, success: wentWell, settings: provider.circuitBreaker)
                    return ServedAnswer(answer: answer, model: target.model, original: targets[0].model, attempts: report.attempts)
                } catch {
                    let elapsed = ContinuousClock.now - attemptStarted
                    if Task.isCancelled || error is CancellationError {
                        load.finish(provider.name, failed: nil, elapsed: elapsed)
                        breakers.abandon(provider.name)
                        throw CancellationError()
                    }
                    let failure = error as? AttemptFailure ?? AttemptFailure(.badGateway("\(error)"), triggersFailover: true)
                    load.finish(provider.name, failed: failure.triggersFailover, elapsed: elapsed)
                    if !failure.triggersFailover {
                        breakers.record(provider.name, success: true, settings: provider.circuitBreaker)
                        if failure.error.status == 499 { throw CancellationError() }
                        // A fallback that cannot express the request is skipped; the client's own choice is answered.
                        if target.link > 0, failure.rejectedBeforeSending {
                            report.skip(target.model, reason: failure.error.message)
                            break
                        }
                        throw failure.error.after(report.attempts)
                    }
                    breakers.record(provider.name, success: false, settings: provider.circuitBreaker)
                    report.fail(target.model, failure)
                    logger.warning(
                        "attempt failed", metadata: ["provider": "\(provider.name)", "model": "\(target.model.upstream)", "error": "\(failure.error.message)"])
                    guard failure.retryable, retry < provider.retries else { break }
                    let pause = backoff(retry: retry, retryAfter: failure.retryAfter, cap: provider.retryAfterMax, using: &generator)
                    guard ContinuousClock.now + pause < deadline else { break }
                    retry += 1
                    try await LoopTimer.sleep(for: pause)
                    guard breakers.admit(provider.name, settings: provider.circuitBreaker) else {
                        report.skip(target.model, reason: "circuit open")
                        break
                    }
                }
            }
        }
        throw report.summary().after(report.attempts)
    }

    /// Full-jitter exponential backoff, or the provider's `Retry-After`, never more than `cap`.
    func backoff<Generator: RandomNumberGenerator>(retry: Int, retryAfter: Duration?, cap: Duration, using generator: inout Generator) -> Duration {
        if let retryAfter { return min(retryAfter, cap) }
        let ceiling = min(cap, backoffBase * (1 << min(retry, 20)))
        let nanoseconds = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...nanoseconds, using: &generator))
    }
}

/// The attempts of one request, for the error that lists them when every one failed.
struct ChainReport {
    let model: String
    var attempts = 0
    private var lines: [String] = []
    private var failures: [AttemptFailure] = []
    private var providers = Set<String>()
    private var timedOutOverall = false

    init(model: String) {
        self.model = model
    }

    mutating func skip(_ target: ResolvedModel, reason: String) {
        lines.append("\(target.provider.name) (\(target.upstream)): skipped, \(reason)")
        providers.insert(target.provider.name)
    }

    mutating func fail(_ target: ResolvedModel, _ failure: AttemptFailure) {
        let reason = failure.error.message.hasSuffix(".") ? String(failure.error.message.dropLast()) : failure.error.message
        lines.append("\(target.provider.name) (\(target.upstream)): \(reason)")
        failures.append(failure)
        providers.insert(target.provider.name)
    }

    mutating func deadlinePassed() {
        timedOutOverall = true
        lines.append("the request's total timeout passed")
    }

    /// One provider's single failure is answered as it is; a chain whose every provider is skipped or not
    /// configured is 503; anything more becomes 502, or 504 when all timed out.
    func summary() -> GatewayError {
        if providers.count == 1, let last = failures.last, !timedOutOverall { return last.error }
        if !timedOutOverall && failures.allSatisfy({ $0.error.code == GatewayError.providerUnavailable }) {
            return .unavailable("No provider could take the request for model '\(model)': " + lines.joined(separator: "; ") + ".")
        }
        let message = "All \(lines.count) attempts for model '\(model)' failed: " + lines.joined(separator: "; ") + "."
        if timedOutOverall || (!failures.isEmpty && failures.allSatisfy(\.timedOut)) {
            return .gatewayTimeout(message)
        }
        return .badGateway(message, code: "all_providers_failed")
    }
}

extension GatewayError {
    /// The same error, telling how many attempts the chain made.
    func after(_ attempts: Int) -> GatewayError {
        var error = self
        error.attempts = attempts
        return error
    }
}
