#if canImport(Glibc)
import Glibc
#endif
import Atomics
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Relays one streamed answer: reads the provider's events, translates them into canonical (OpenAI) chunks, and
/// hands them, framed in the client's dialect, to the client's response as soon as each upstream read completes.
///
/// Until the first chunks are handed over, a failure is an `AttemptFailure`, so the chain can try the next
/// provider and the client never sees partial output from a failed one. After that, a stream that breaks,
/// stalls past the provider's `idle` timeout or runs past the request's deadline ends with an OpenAI-style
/// error chunk and no `[DONE]`.
struct StreamRelay<Frames: StreamFrameEncoder>: Sendable {
    let requestedModel: String
    let includeUsage: Bool
    let logger: Logger
    /// Where the client's response reads its bytes from; sending waits while the client is behind.
    let output: StreamOutput
    /// Writes the chunks as the client's dialect frames them.
    let frames: NIOLockedValueBox<Frames>
    /// Sees every payload handed to the client, in order (the cache assembles the answer from them).
    var observe: (@Sendable ([String]) -> Void)? = nil

    /// How a relayed stream ended.
    enum End: Sendable {
        case complete(Usage?)
        case failed(GatewayError)
    }

    /// Relays `opened` to the client.
    /// - Parameter onFirstPayload: called once, just before the first bytes are handed to the client.
    func relay(_ opened: OpenedUpstream, onFirstPayload: @escaping @Sendable () -> Void) async throws -> End {
        let provider = opened.model.provider
        let lastRead = ManagedAtomic<Int64>(StreamClock.nowNanoseconds())
        let started = ManagedAtomic(false)
        let output = self.output
        let requestedModel = self.requestedModel
        let includeUsage = self.includeUsage
        let observe = self.observe
        let frames = self.frames
        // The first chunk (often the role alone) is held back until a second one is ready, so a provider that fails
        // right after opening its stream can still be failed over without the client seeing anything.
        // A provider streaming in the client's own API (`passthrough`) has its events relayed as they came; the
        // canonical payloads then serve only the usage and the observer.
        let passthrough = opened.passthrough
        let pending = NIOLockedValueBox<(payloads: [String], events: [ServerSentEvent])>(([], []))
        let price = opened.model.price
        let write: @Sendable ([String], [ServerSentEvent]) -> ByteBuffer = { payloads, events in
            frames.withLockedValue { passthrough ? $0.nativeFrames(events) : $0.frames(payloads) }
        }
        let hand: @Sendable ([String], [ServerSentEvent], Bool) async -> Void = { raw, events, final in
            let payloads = Self.addingCost(to: raw, price: price)
            if started.load(ordering: .relaxed) {
                if !payloads.isEmpty || (passthrough && !events.isEmpty) {
                    if !payloads.isEmpty { observe?(payloads) }
                    await output.send(write(payloads, events))
                }
                return
            }
            let held = pending.withLockedValue { held -> (payloads: [String], events: [ServerSentEvent])? in
                held.payloads += payloads
                if passthrough { held.events += events }
                return held.payloads.count >= 2 || (final && !(held.payloads.isEmpty && held.events.isEmpty)) ? held : nil
            }
            guard let held else { return }
            started.store(true, ordering: .relaxed)
            onFirstPayload()
            if !held.payloads.isEmpty { observe?(held.payloads) }
            await output.send(write(held.payloads, held.events))
        }
        let reader = Task(executorPreference: TaskPlacement.preferredExecutor) {
            var translator = opened.makeStreamTranslator(model: requestedModel, includeUsage: includeUsage)
            var parser = ServerSentEventParser()
            for try await chunk in opened.response.body {
                lastRead.store(StreamClock.nowNanoseconds(), ordering: .relaxed)
                var payloads: [String] = []
                let events = try parser.feed(chunk.readableBytesView)
                for event in events { payloads += try translator.consume(event) }
                await hand(payloads, events, false)
            }
            var payloads: [String] = []
            let events = parser.finish()
            for event in events { payloads += try translator.consume(event) }
            payloads += try translator.finish()
            await hand(payloads, events, true)
            return translator.usage
        }
        let watchdog = StreamWatchdog(
            lastRead: lastRead, idle: provider.timeouts.idle, deadline: opened.deadline, provider: provider.name
        ) { reader.cancel() }
        defer { watchdog.stop() }
        do {
            let usage = try await withTaskCancellationHandler {
                do {
                    return try await reader.value
                } catch {
                    // The watchdog's cancellation surfaces as whatever the read threw; say why it happened.
                    if let timeout = watchdog.timeout { throw timeout }
                    throw error
                }
            } onCancel: {
                reader.cancel()
            }
            return .complete(usage)
        } catch {
            if Task.isCancelled || error is CancellationError { throw CancellationError() }
            let failure: AttemptFailure
            if var error = error as? GatewayError {
                // A provider's message from inside its stream may quote its key, masked or not.
                error.message = provider.redactingSecrets(error.message)
                failure = AttemptFailure(error, triggersFailover: true, timedOut: error.status == 504)
            } else {
                failure = UpstreamProxy.transportFailure(error, provider: provider)
            }
            guard started.load(ordering: .relaxed) else { throw failure }
            logger.warning("stream failed after it started", metadata: ["provider": "\(provider.name)", "error": "\(failure.error.message)"])
            observe?([failure.error.envelope.serialized()])
            output.push(frames.withLockedValue { $0.errorFrame(failure.error) })
            return .failed(failure.error)
        }
    }

    /// Adds `cost_usd` to the usage chunk (the one with `usage` and no choices); other payloads pass as they are.
    static func addingCost(to payloads: [String], price: Price?) -> [String] {
        payloads.map { payload in
            guard payload.contains("\"usage\""), var chunk = try? JSON.parse(payload), let usage = Usage(openAI: chunk["usage"]),
                chunk["choices"]?.arrayValue?.isEmpty == true
            else { return payload }
            chunk["cost_usd"] = price.map { .double(usage.cost(at: $0)) } ?? .null
            return chunk.serialized()
        }
    }
}

/// The monotonic clock the relay and its watchdog read.
enum StreamClock {
    static func nowNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

/// Ends a stream that stalls or overruns: a timer on an event loop, re-armed for the next moment the stream could
/// go idle, that calls `expire` once no data has arrived for `idle` or `deadline` has passed. No task of its own,
/// so an open stream keeps no watcher task (and its memory) beside it.
final class StreamWatchdog: Sendable {
    private struct State {
        var stopped = false
        var timer: Scheduled<Void>?
        var timeout: GatewayError?
    }

    private let lastRead: ManagedAtomic<Int64>
    private let idleNanoseconds: Int64
    private let deadline: ContinuousClock.Instant
    private let idle: Duration
    private let provider: String
    private let expire: @Sendable () -> Void
    private let state = NIOLockedValueBox(State())

    /// Starts watching; `lastRead` holds `StreamClock.nowNanoseconds()` of the latest read.
    init(
        lastRead: ManagedAtomic<Int64>, idle: Duration, deadline: ContinuousClock.Instant, provider: String,
        expire: @escaping @Sendable () -> Void
    ) {
        self.lastRead = lastRead
        self.idle = idle
        self.idleNanoseconds = idle.components.seconds * 1_000_000_000 + idle.components.attoseconds / 1_000_000_000
        self.deadline = deadline
        self.provider = provider
        self.expire = expire
        check()
    }

    /// Why the stream was ended, once it was.
    var timeout: GatewayError? { state.withLockedValue { $0.timeout } }

    /// Stops watching.
    func stop() {
        let timer = state.withLockedValue { state -> Scheduled<Void>? in
            state.stopped = true
            defer { state.timer = nil }
            return state.timer
        }
        timer?.cancel()
    }

    private func check() {
        let now = StreamClock.nowNanoseconds()
        let idleAt = lastRead.load(ordering: .relaxed) + idleNanoseconds
        var timeout: GatewayError?
        if ContinuousClock.now >= deadline {
            timeout = .gatewayTimeout("Provider '\(provider)' did not finish the stream within the request's total timeout.")
        } else if now >= idleAt {
            timeout = .gatewayTimeout("Provider '\(provider)' sent nothing for longer than its idle timeout (\(Units.format(idle))).")
        }
        let wait = min(Duration.nanoseconds(idleAt - now), ContinuousClock.now.duration(to: deadline)) + .milliseconds(1)
        let expired: Bool = state.withLockedValue { state in
            guard !state.stopped else { return false }
            if let timeout {
                state.timeout = timeout
                state.stopped = true
                return true
            }
            state.timer = LoopTimer.schedule(in: wait) { [weak self] in self?.check() }
            return false
        }
        if expired { expire() }
    }
}
