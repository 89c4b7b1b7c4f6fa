import NIOCore

/// Cancels work when the client's connection closes, without consuming the request stream
/// (so keep-alive connections stay usable for the next request).
enum ClientWatch {
    /// How often the connection is looked at.
    static let interval: Duration = .milliseconds(200)

    /// Runs `operation`; if `channel` closes first, cancels it and throws `CancellationError`.
    static func cancellingOnDisconnect<Value: Sendable>(
        _ channel: (any Channel)?, _ operation: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        guard let channel else { return try await operation() }
        return try await withThrowingTaskGroup(of: Value?.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                while channel.isActive { try await LoopTimer.sleep(for: interval) }
                return nil
            }
            defer { group.cancelAll() }
            guard let value = try await group.next()! else { throw CancellationError() }
            return value
        }
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
