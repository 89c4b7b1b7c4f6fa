import NIOCore
import NIOPosix

/// A TCP server on a free loopback port that accepts each connection and closes it at once with a reset.
final class ResetServer: Sendable {
    private let channel: any Channel

    /// The bound port.
    var port: Int { channel.localAddress?.port ?? 0 }

    private final class ResetOnConnect: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        func channelActive(context: ChannelHandlerContext) {
            // SO_LINGER 0 turns the close into a TCP reset.
            if let provider = context.channel as? any SocketOptionProvider {
                _ = provider.setSoLinger(linger(l_onoff: 1, l_linger: 0))
            }
            context.close(promise: nil)
        }
    }

    init() async throws {
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ResetOnConnect()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func close() async {
        try? await channel.close()
    }
}
