import NIOConcurrencyHelpers
import NIOCore

/// Cancels work when the client's connection closes, without consuming the request stream
/// (so keep-alive connections stay usable for the next request).
enum ClientWatch {
    /// How often the connection is looked at.
    static let interval: Duration = .milliseconds(200)

    /// Runs `operation` in a task of its own; if `channel` closes first, cancels it and throws `CancellationError`
    /// once it has stopped.
    static func cancellingOnDisconnect<Value: Sendable>(
        _ channel: (any Channel)?, _ operation: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        guard let channel else { return try await operation() }
        return try await withOutsideCancellation(throwing: CancellationError()) { cancel in
            let watch = DisconnectWatch(channel: channel)
            watch.start(onClose: cancel)
            return { watch.stop() }
        } operation: {
            try await operation()
        }
    }
}

/// Cancels a task when the client's connection closes, from a timer on the connection's event loop: no task
/// of its own, so an open stream does not keep a watcher task (and its memory) alive beside it.
///
/// ```swift
/// let watch = DisconnectWatch(channel: context.channel)
/// let work = Task { defer { watch.stop() }; ... }
/// watch.start { work.cancel() }
/// ```
final class DisconnectWatch: Sendable {
    private struct State {
        var stopped = false
        var timer: RepeatedTask?
    }

    private let channel: (any Channel)?
    private let state = NIOLockedValueBox(State())

    init(channel: (any Channel)?) {
        self.channel = channel
    }

    /// Looks at the connection every `ClientWatch.interval` and calls `onClose` once when it has closed; does
    /// nothing after `stop()`.
    func start(onClose: @escaping @Sendable () -> Void) {
        guard let channel else { return }
        state.withLockedValue { state in
            guard !state.stopped else { return }
            let interval = TimeAmount(ClientWatch.interval)
            state.timer = channel.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { timer in
                guard !channel.isActive else { return }
                timer.cancel()
                onClose()
            }
        }
    }

    /// Stops looking.
    func stop() {
        let timer = state.withLockedValue { state -> RepeatedTask? in
            state.stopped = true
            defer { state.timer = nil }
            return state.timer
        }
        timer?.cancel()
    }
}

/// Treats a client's half-close (FIN) as the client leaving, so `ClientWatch` sees the connection close.
///
/// Hummingbird allows half-closed connections; an HTTP client that stops sending has, in practice,
/// given up on the answer (as proxies like nginx assume too).
final class HalfCloseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}
