import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import GatewayCore

@Suite("Client disconnect watch", .timeLimit(.minutes(1)))
struct ClientWatchTests {
    /// A listener whose accepted connections carry a `ClientConnectionHandler`, and one client connected to it.
    struct Connection {
        var server: any Channel
        /// The accepted side, as the gateway's request handlers see it.
        var accepted: any Channel
        var client: any Channel

        static func open(withHandler: Bool = true) async throws -> Connection {
            let (acceptedChannels, continuation) = AsyncStream<any Channel>.makeStream()
            let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { channel in
                    continuation.yield(channel)
                    guard withHandler else { return channel.eventLoop.makeSucceededVoidFuture() }
                    return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ClientConnectionHandler()) }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: server.localAddress!.port!).get()
            var iterator = acceptedChannels.makeAsyncIterator()
            let accepted = try #require(await iterator.next())
            return Connection(server: server, accepted: accepted, client: client)
        }

        func close() async {
            try? await client.close()
            try? await accepted.close()
            try? await server.close()
        }
    }

    /// Waits up to `limit` for `calls` to count a call; whether it did.
    static func opens(_ calls: NIOLockedValueBox<Int>, within limit: Duration = .seconds(10)) async throws -> Bool {
        let started = ContinuousClock.now
        while calls.withLockedValue({ $0 }) == 0, ContinuousClock.now - started < limit {
            try await Task.sleep(for: .milliseconds(5))
        }
        return calls.withLockedValue { $0 } > 0
    }

    /// A started watch and the count of its calls.
    static func countingWatch(on channel: any Channel) -> (DisconnectWatch, NIOLockedValueBox<Int>) {
        let calls = NIOLockedValueBox(0)
        let watch = DisconnectWatch(channel: channel)
        watch.start { calls.withLockedValue { $0 += 1 } }
        return (watch, calls)
    }

    @Test func theClientClosingCallsBackOnce() async throws {
        let connection = try await Connection.open()
        let (watch, calls) = Self.countingWatch(on: connection.accepted)
        try await Task.sleep(for: .milliseconds(50))
        #expect(calls.withLockedValue { $0 } == 0, "nothing happens while the connection is open")
        try await connection.client.close()
        #expect(try await Self.opens(calls))
        watch.stop()
        try await Task.sleep(for: .milliseconds(50))
        #expect(calls.withLockedValue { $0 } == 1)
        await connection.close()
    }

    @Test func aHalfCloseCountsAsLeaving() async throws {
        let connection = try await Connection.open()
        let (_, calls) = Self.countingWatch(on: connection.accepted)
        try await connection.client.close(mode: .output)
        #expect(try await Self.opens(calls))
        #expect(!connection.accepted.isActive, "the gateway closes a half-closed connection")
        await connection.close()
    }

    @Test func aStoppedWatchIsNotCalled() async throws {
        let connection = try await Connection.open()
        let (watch, calls) = Self.countingWatch(on: connection.accepted)
        watch.stop()
        // A second watch on the same connection, still running, shows when the close has been seen.
        let (_, seen) = Self.countingWatch(on: connection.accepted)
        try await connection.client.close()
        #expect(try await Self.opens(seen))
        #expect(calls.withLockedValue { $0 } == 0)
        await connection.close()
    }

    @Test func aWatchStartedAfterTheCloseIsCalledAtOnce() async throws {
        let connection = try await Connection.open()
        try await connection.client.close()
        try await connection.accepted.closeFuture.get()
        let (_, calls) = Self.countingWatch(on: connection.accepted)
        #expect(try await Self.opens(calls))
        await connection.close()
    }

    @Test func watchesOfEarlierRequestsDoNotPileUpOnAKeptAliveConnection() async throws {
        let connection = try await Connection.open()
        let handler = try await connection.accepted.eventLoop.submit {
            try connection.accepted.pipeline.syncOperations.handler(type: ClientConnectionHandler.self)
        }.get()
        let loop = connection.accepted.eventLoop
        for _ in 0..<100 {
            let watch = DisconnectWatch(channel: connection.accepted)
            // Started on the connection's loop, as a request's task mostly is: it registers at once.
            try await loop.submit { watch.start {} }.get()
            #expect(handler.watching == 1)
            watch.stop()
        }
        #expect(handler.watching == 0)
        await connection.close()
    }
}
