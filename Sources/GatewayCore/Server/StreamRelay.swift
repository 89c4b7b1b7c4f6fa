#if canImport(Glibc)
import Glibc
#endif
import Atomics
import AsyncHTTPClient
import Hummingbird
import Logging
import NIOCore

/// Relays one streamed answer: reads the provider's events, translates them, and writes OpenAI chunks
/// to the client as soon as each upstream read completes.
///
/// A stream that breaks, stalls past the provider's `idle` timeout or runs past `total` ends with an
/// OpenAI-style error chunk and no `[DONE]`, so the client can tell it failed.
struct StreamRelay: Sendable {
    let opened: OpenedUpstream
    let requestedModel: String
    let includeUsage: Bool
    let logger: Logger

    /// What the relay produces for the client.
    enum Output: Sendable {
        case bytes(ByteBuffer)
        case failure(GatewayError)
    }

    func run(into writer: inout any ResponseBodyWriter) async {
        let (outputs, continuation) = AsyncStream<Output>.makeStream()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.pump(into: continuation) }
            for await output in outputs {
                switch output {
                case .bytes(let buffer):
                    do {
                        try await writer.write(buffer)
                    } catch {
                        logger.info("client went away during the stream")
                        group.cancelAll()
                        return
                    }
                case .failure(let error):
                    logger.warning("stream failed", metadata: ["error": "\(error.message)"])
                    try? await writer.write(Self.frame(error.envelope.serialized()))
                }
            }
        }
    }

    /// Reads upstream, translating, under the idle and total timers.
    private func pump(into continuation: AsyncStream<Output>.Continuation) async {
        defer { continuation.finish() }
        let provider = opened.model.provider
        let lastRead = ManagedAtomic<Int64>(Self.nowNanoseconds())
        let idle = provider.timeouts.idle
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var translator = opened.adapter.makeStreamTranslator(model: requestedModel, includeUsage: includeUsage)
                    var parser = ServerSentEventParser()
                    for try await chunk in opened.response.body {
                        lastRead.store(Self.nowNanoseconds(), ordering: .relaxed)
                        let events = try parser.feed(chunk.readableBytesView)
                        var payloads: [String] = []
                        for event in events { payloads += try translator.consume(event) }
                        if !payloads.isEmpty { continuation.yield(.bytes(Self.frames(payloads))) }
                    }
                    var payloads: [String] = []
                    for event in parser.finish() { payloads += try translator.consume(event) }
                    payloads += try translator.finish()
                    continuation.yield(.bytes(Self.frames(payloads)))
                }
                group.addTask {
                    try await Self.watch(lastRead: lastRead, idle: idle, deadline: opened.deadline, provider: provider.name)
                }
                try await group.next()
                group.cancelAll()
            }
        } catch let error as GatewayError {
            continuation.yield(.failure(error))
        } catch is CancellationError {
            return
        } catch {
            continuation.yield(.failure(ChatProxy.transportError(error, provider: provider)))
        }
    }

    /// Throws once no data has arrived for `idle`, or `deadline` has passed.
    private static func watch(lastRead: ManagedAtomic<Int64>, idle: Duration, deadline: ContinuousClock.Instant, provider: String)
        async throws
    {
        let idleNanoseconds = idle.components.seconds * 1_000_000_000 + idle.components.attoseconds / 1_000_000_000
        while true {
            let wakeAt = lastRead.load(ordering: .relaxed) + idleNanoseconds
            let now = nowNanoseconds()
            if ContinuousClock.now >= deadline {
                throw GatewayError.gatewayTimeout("Provider '\(provider)' did not finish the stream within its total timeout.")
            }
            if now >= wakeAt {
                throw GatewayError.gatewayTimeout("Provider '\(provider)' sent nothing for longer than its idle timeout (\(idle)).")
            }
            let untilIdle = Duration.nanoseconds(wakeAt - now)
            let untilDeadline = ContinuousClock.now.duration(to: deadline)
            try await Task.sleep(for: min(untilIdle, untilDeadline) + .milliseconds(1))
        }
    }

    private static func nowNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    static func frame(_ payload: String) -> ByteBuffer {
        frames([payload])
    }

    static func frames(_ payloads: [String]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for payload in payloads {
            buffer.writeString("data: ")
            buffer.writeString(payload)
            buffer.writeString("\n\n")
        }
        return buffer
    }
}
