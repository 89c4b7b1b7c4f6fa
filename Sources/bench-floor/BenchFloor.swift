import Foundation
import GatewayCore
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix

/// The floor of the gateway's stack, for the benchmark harness (`bench/run.sh --floor`).
///
/// A proxy that does nothing but forward: every request's body is posted to the upstream on a kept-alive
/// connection of the request's own event loop, and the upstream's answer goes back to the client. No keys, no
/// parsing, no cache, no request log, no metrics. It runs in one of two ways:
///
/// - `bench-floor nio PORT UPSTREAM_PORT`: SwiftNIO channel handlers only, no Swift tasks;
/// - `bench-floor hummingbird PORT UPSTREAM_PORT`: a Hummingbird 2 route, with tasks on the event loops as the
///   daemon places them (`TaskPlacement`), and the same upstream connections.
///
/// What the gateway adds over the second is the cost of its own work; what the second adds over the first is the
/// cost of the server framework.
@main
enum BenchFloor {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 4, let port = Int(arguments[2]), let upstreamPort = Int(arguments[3]) else {
            print("usage: bench-floor nio|hummingbird PORT UPSTREAM_PORT")
            exit(2)
        }
        let upstream = Upstream(group: MultiThreadedEventLoopGroup.singleton, port: upstreamPort)
        switch arguments[1] {
        case "nio": try await serveWithNIO(port: port, upstream: upstream)
        case "hummingbird":
            let placement = TaskPlacement.mode(fromEnvironment: ProcessInfo.processInfo.environment)
            try await TaskPlacement.run(placement) { try await serveWithHummingbird(port: port, upstream: upstream) }
        default:
            print("bench-floor: the mode is nio or hummingbird")
            exit(2)
        }
    }

    /// An HTTP/1.1 server made of NIO's codec and `ForwardingHandler`.
    static func serveWithNIO(port: Int, upstream: Upstream) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(ForwardingHandler(upstream: upstream))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        try await server.closeFuture.get()
    }

    /// A Hummingbird application with one route, `POST /v1/chat/completions`, that forwards.
    static func serveWithHummingbird(port: Int, upstream: Upstream) async throws {
        let router = Router()
        router.post("/v1/chat/completions") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
            let promise = loop.makePromise(of: UpstreamAnswer.self)
            loop.execute { upstream.pool(for: loop).exchange(body) { promise.succeed($0) } }
            let answer = try await promise.futureResult.get()
            return Response(status: .init(code: Int(answer.status.code)), headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: answer.body))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        try await app.runService()
    }
}

/// The upstream's answer: its status and its whole body.
struct UpstreamAnswer: Sendable {
    var status: HTTPResponseStatus
    var body: ByteBuffer

    static let unreachable = UpstreamAnswer(status: .badGateway, body: ByteBuffer())
}

/// The upstream's kept-alive connections: one pool per event loop, each used on its loop only.
final class Upstream: Sendable {
    private let pools: [ObjectIdentifier: LoopPool]

    init(group: MultiThreadedEventLoopGroup, port: Int) {
        var pools: [ObjectIdentifier: LoopPool] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = LoopPool(loop: loop, port: port)
        }
        self.pools = pools
    }

    /// The pool of `loop`; call it on `loop`.
    func pool(for loop: any EventLoop) -> LoopPool {
        pools[ObjectIdentifier(loop)]!
    }
}

/// One event loop's idle connections to the upstream, and new ones when none is idle.
///
/// Sendable only to be found from any thread: its state is used on its loop alone (`exchange` checks).
final class LoopPool: @unchecked Sendable {
    private let loop: any EventLoop
    private let port: Int
    private var idle: [UpstreamConnection] = []

    init(loop: any EventLoop, port: Int) {
        self.loop = loop
        self.port = port
    }

    /// Posts `body` on an idle connection, or a new one, and calls `done` with the answer on this loop.
    func exchange(_ body: ByteBuffer, _ done: @escaping (UpstreamAnswer) -> Void) {
        loop.preconditionInEventLoop()
        while let connection = idle.popLast() {
            if connection.isUsable {
                send(body, on: connection, done)
                return
            }
        }
        let pool = NIOLoopBound(self, eventLoop: loop)
        let callback = NIOLoopBound(done, eventLoop: loop)
        let port = self.port
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamConnection(port: port))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    do {
                        let connection = try channel.pipeline.syncOperations.handler(type: UpstreamConnection.self)
                        pool.value.send(body, on: connection, callback.value)
                    } catch {
                        callback.value(.unreachable)
                    }
                case .failure:
                    callback.value(.unreachable)
                }
            }
    }

    private func send(_ body: ByteBuffer, on connection: UpstreamConnection, _ done: @escaping (UpstreamAnswer) -> Void) {
        connection.post(body) { answer in
            if connection.isUsable { self.idle.append(connection) }
            done(answer)
        }
    }
}

/// One connection to the upstream: posts a body to `/v1/chat/completions` and gathers the answer.
final class UpstreamConnection: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let port: Int
    private var context: ChannelHandlerContext?
    private var waiting: ((UpstreamAnswer) -> Void)?
    private var answer = UpstreamAnswer.unreachable

    init(port: Int) { self.port = port }

    /// Whether the connection is open and may take another request.
    var isUsable: Bool { context?.channel.isActive ?? false }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func post(_ body: ByteBuffer, _ done: @escaping (UpstreamAnswer) -> Void) {
        guard let context else { return done(.unreachable) }
        waiting = done
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions")
        head.headers.add(name: "host", value: "127.0.0.1:\(port)")
        head.headers.add(name: "content-type", value: "application/json")
        head.headers.add(name: "content-length", value: String(body.readableBytes))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            answer = UpstreamAnswer(status: head.status, body: context.channel.allocator.buffer(capacity: 512))
        case .body(var part):
            answer.body.writeBuffer(&part)
        case .end:
            let done = waiting
            waiting = nil
            done?(answer)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let done = waiting
        waiting = nil
        done?(.unreachable)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// The server side of `bench-floor nio`: gathers a request's body, forwards it, writes the answer back.
final class ForwardingHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let upstream: Upstream
    private var body = ByteBuffer()

    init(upstream: Upstream) { self.upstream = upstream }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            upstream.pool(for: context.eventLoop).exchange(body) { answer in
                var head = HTTPResponseHead(version: .http1_1, status: answer.status)
                head.headers.add(name: "content-type", value: "application/json")
                head.headers.add(name: "content-length", value: String(answer.body.readableBytes))
                context.write(self.wrapOutboundOut(.head(head)), promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(answer.body))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
