import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// An HTTP/1.1 server on a free loopback port that answers each request with raw bytes chosen by a script,
/// for testing how the gateway's own client treats connections: reuse, closes, silences and stalls.
final class ScriptedHTTPServer: Sendable {
    /// What to do with one request.
    enum Reply: Sendable {
        /// Send these parts, each `pause` after the one before, then close the connection if `close`.
        case parts([String], pause: TimeAmount = .zero, close: Bool = false)
        /// Never answer.
        case silence
    }

    /// A request as the server read it.
    struct Received: Sendable {
        var head: HTTPRequestHead
        var body: String
        /// Which accepted connection (0, 1, …) it came on.
        var connection: Int
    }

    /// What the server has seen and sent so far.
    struct Tally: Sendable {
        var connections = 0
        var closed = 0
        var received: [Received] = []
        var partsSent = 0
        /// Parts sent before the server waits for `release()` (see `hold(after:)`).
        var holdAfter: Int?
        /// What `release()` runs: the rest of the held reply.
        var parked: (@Sendable () -> Void)?
    }

    private let channel: any Channel
    private let state: NIOLockedValueBox<Tally>

    /// The bound port.
    var port: Int { channel.localAddress?.port ?? 0 }
    /// Connections accepted so far.
    var connections: Int { state.withLockedValue { $0.connections } }
    /// Connections that have closed so far.
    var closedConnections: Int { state.withLockedValue { $0.closed } }
    /// Requests read so far.
    var received: [Received] { state.withLockedValue { $0.received } }
    /// Parts of replies written so far.
    var partsSent: Int { state.withLockedValue { $0.partsSent } }

    /// Makes the server stop after `count` parts have been sent, until `release()`.
    func hold(after count: Int) {
        state.withLockedValue { $0.holdAfter = count }
    }

    /// Sends the rest of a held reply.
    func release() {
        let parked = state.withLockedValue { state -> (@Sendable () -> Void)? in
            state.holdAfter = nil
            defer { state.parked = nil }
            return state.parked
        }
        parked?()
    }

    /// - Parameters:
    ///   - answerOnHead: answer as soon as a request's head is read, and stop reading the connection (like a
    ///     server refusing a body too large to read).
    ///   - script: the reply to each request, given the request and its position (0, 1, …).
    init(answerOnHead: Bool = false, _ script: @escaping @Sendable (Received, Int) -> Reply) async throws {
        let state = NIOLockedValueBox(Tally())
        self.state = state
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                let number = state.withLockedValue { state in
                    defer { state.connections += 1 }
                    return state.connections
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
                    try channel.pipeline.syncOperations.addHandler(
                        Answerer(connection: number, answerOnHead: answerOnHead, state: state, script: script))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func close() async {
        try? await channel.close()
    }

    private final class Answerer: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = ByteBuffer

        let connection: Int
        let answerOnHead: Bool
        let state: NIOLockedValueBox<Tally>
        let script: @Sendable (Received, Int) -> Reply
        var head: HTTPRequestHead?
        var body = ""

        init(
            connection: Int, answerOnHead: Bool, state: NIOLockedValueBox<Tally>,
            script: @escaping @Sendable (Received, Int) -> Reply
        ) {
            self.connection = connection
            self.answerOnHead = answerOnHead
            self.state = state
            self.script = script
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = ""
                if answerOnHead {
                    context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
                    answer(context: context)
                }
            case .body(let buffer):
                body += String(buffer: buffer)
            case .end:
                if !answerOnHead { answer(context: context) }
            }
        }

        private func answer(context: ChannelHandlerContext) {
            guard let head else { return }
            let request = Received(head: head, body: body, connection: connection)
            let index = state.withLockedValue { state in
                state.received.append(request)
                return state.received.count - 1
            }
            switch script(request, index) {
            case .silence: break
            case .parts(let parts, let pause, let close):
                send(parts[...], pause: pause, close: close, context: context)
            }
        }

        /// Sends each part `pause` after the one before (the first `pause` after the request), then closes if `close`.
        private func send(_ parts: ArraySlice<String>, pause: TimeAmount, close: Bool, context: ChannelHandlerContext) {
            guard let part = parts.first else {
                if close { context.close(promise: nil) }
                return
            }
            let write = { [self] in
                state.withLockedValue { $0.partsSent += 1 }
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: part)), promise: nil)
                send(parts.dropFirst(), pause: pause, close: close, context: context)
            }
            let loop = context.eventLoop
            let bound = NIOLoopBound(write, eventLoop: loop)
            let held = state.withLockedValue { state -> Bool in
                guard let limit = state.holdAfter, state.partsSent >= limit else { return false }
                state.parked = { loop.execute { bound.value() } }
                return true
            }
            if held { return }
            if pause == .zero {
                write()
            } else {
                context.eventLoop.assumeIsolated().scheduleTask(in: pause, write)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.closed += 1 }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    /// A complete 200 answer carrying `body`, kept alive unless `close`.
    static func ok(_ body: String, close: Bool = false) -> String {
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n" + (close ? "connection: close\r\n" : "") + "\r\n" + body
    }

    /// The head of a chunked 200 answer.
    static let chunkedHead = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"

    /// One chunk of a chunked body.
    static func chunk(_ text: String) -> String {
        String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n"
    }
}
