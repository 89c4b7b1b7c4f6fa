import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
@testable import GatewayCore

/// The gateway's own client for plain-HTTP providers, against a server whose every byte the test chooses.
@Suite("Upstream connection pool", .timeLimit(.minutes(1)))
struct UpstreamConnectionPoolTests {
    static let loop = MultiThreadedEventLoopGroup.singleton.next()

    static func pool(_ server: ScriptedHTTPServer, readTimeout: TimeAmount = .seconds(5), maximumConnections: Int = 16) -> UpstreamConnectionPool {
        UpstreamConnectionPool(
            target: UpstreamTarget(baseURL: "http://127.0.0.1:\(server.port)/v1")!, loop: loop, connectTimeout: .seconds(2),
            readTimeout: readTimeout, maximumConnections: maximumConnections)
    }

    static func post(_ pool: UpstreamConnectionPool, _ body: String = #"{"n":1}"#, headers: [(name: String, value: String)] = [],
                     headWithin: TimeAmount = .seconds(5)) async throws -> UpstreamResponse {
        try await pool.post(
            path: "/chat/completions", headers: [("content-type", "application/json")] + headers, body: ByteBuffer(string: body),
            headDeadline: .now() + headWithin)
    }

    /// Whether the pool's one connection closes (on both sides) within two seconds.
    static func theConnectionCloses(_ server: ScriptedHTTPServer, _ pool: UpstreamConnectionPool) async throws -> Bool {
        try await eventually { server.closedConnections == 1 && pool.openConnections == 0 }
    }

    /// Waits up to two seconds for `condition`.
    static func eventually(_ condition: () -> Bool) async throws -> Bool {
        let started = ContinuousClock.now
        while !condition() {
            if ContinuousClock.now - started > .seconds(2) { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    @Test func sequentialRequestsShareOneKeptAliveConnection() async throws {
        let server = try await ScriptedHTTPServer { request, index in .parts([ScriptedHTTPServer.ok("answer \(index) to \(request.body)")]) }
        let pool = Self.pool(server)
        defer { pool.retire() }
        for index in 0..<5 {
            let response = try await Self.post(pool, "question \(index)")
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "content-type") == "application/json")
            #expect(String(buffer: try await response.body.collect(upTo: 1024)) == "answer \(index) to question \(index)")
        }
        #expect(server.connections == 1)
        #expect(pool.openConnections == 1)
        let first = try #require(server.received.first)
        #expect(first.head.method == .POST)
        #expect(first.head.uri == "/v1/chat/completions")
        #expect(first.head.version == .http1_1)
        #expect(first.head.headers["host"] == ["127.0.0.1:\(server.port)"])
        #expect(first.head.headers["content-length"] == ["10"])
        #expect(first.head.headers["content-type"] == ["application/json"])
        await server.close()
    }

    @Test func concurrentRequestsEachGetAConnectionThatIsThenReused() async throws {
        let server = try await ScriptedHTTPServer { request, _ in .parts([ScriptedHTTPServer.ok(request.body)], pause: .milliseconds(50)) }
        let pool = Self.pool(server)
        defer { pool.retire() }
        for _ in 0..<2 {
            try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<4 { group.addTask { String(buffer: try await Self.post(pool, "r\(index)").body.collect(upTo: 1024)) } }
                var answers: Set<String> = []
                for try await answer in group { answers.insert(answer) }
                #expect(answers == ["r0", "r1", "r2", "r3"])
            }
        }
        #expect(server.connections <= 4, "the second round reused the first round's connections")
        #expect(pool.openConnections == server.connections)
        await server.close()
    }

    @Test func anAnswerWithConnectionCloseIsNotReused() async throws {
        let server = try await ScriptedHTTPServer { _, _ in .parts([ScriptedHTTPServer.ok("bye", close: true)], close: true) }
        let pool = Self.pool(server)
        defer { pool.retire() }
        for _ in 0..<3 {
            #expect(String(buffer: try await Self.post(pool).body.collect(upTo: 1024)) == "bye")
        }
        #expect(server.connections == 3)
        #expect(try await Self.eventually { pool.openConnections == 0 })
    }

    @Test func aConnectionTheServerClosedWhileIdleIsReplaced() async throws {
        // Like a server whose keep-alive timeout is shorter than the gateway's: it closes the connection after answering.
        let server = try await ScriptedHTTPServer { _, index in .parts([ScriptedHTTPServer.ok("\(index)")], pause: .milliseconds(20), close: true) }
        let pool = Self.pool(server)
        defer { pool.retire() }
        #expect(String(buffer: try await Self.post(pool).body.collect(upTo: 1024)) == "0")
        #expect(try await Self.theConnectionCloses(server, pool))
        #expect(String(buffer: try await Self.post(pool).body.collect(upTo: 1024)) == "1")
        #expect(server.connections == 2)
    }

    @Test func aKeptAliveConnectionClosedUnderARequestIsRetriedOnceOnANewOne() async throws {
        // The second request finds the provider closing the connection it was sent on, as when a server's
        // keep-alive timeout races the request.
        let server = try await ScriptedHTTPServer { _, index in index == 1 ? .parts([], close: true) : .parts([ScriptedHTTPServer.ok("answer \(index)")]) }
        let pool = Self.pool(server)
        defer { pool.retire() }
        #expect(String(buffer: try await Self.post(pool).body.collect(upTo: 1024)) == "answer 0")
        #expect(String(buffer: try await Self.post(pool).body.collect(upTo: 1024)) == "answer 2")
        #expect(server.received.map(\.connection) == [0, 0, 1])
    }

    @Test func aNewConnectionClosedUnderARequestIsNotRetried() async throws {
        let server = try await ScriptedHTTPServer { _, _ in .parts([], close: true) }
        let pool = Self.pool(server)
        defer { pool.retire() }
        await #expect(throws: UpstreamConnectionError.closed) { try await Self.post(pool) }
        #expect(server.received.count == 1)
    }

    @Test func aChunkedBodyArrivesAsItIsSent() async throws {
        let server = try await ScriptedHTTPServer { _, _ in
            .parts([ScriptedHTTPServer.chunkedHead, ScriptedHTTPServer.chunk("data: one\n\n"), ScriptedHTTPServer.chunk("data: two\n\n"), "0\r\n\r\n"],
                   pause: .milliseconds(50))
        }
        // The server sends the head and the first chunk, then waits until the client has read that chunk.
        server.hold(after: 2)
        let pool = Self.pool(server)
        defer { pool.retire() }
        let response = try await Self.post(pool)
        var parts: [String] = []
        for try await part in response.body {
            if parts.isEmpty {
                #expect(server.partsSent == 2, "the first chunk arrived while the rest was still unsent")
                server.release()
            }
            parts.append(String(buffer: part))
        }
        #expect(parts == ["data: one\n\n", "data: two\n\n"])
        #expect(String(buffer: try await Self.post(pool).body.collect(upTo: 1024)) == "data: one\n\ndata: two\n\n")
        #expect(server.connections == 1)
    }

    @Test func noHeadBeforeTheDeadlineIsAHeadTimeoutAndClosesTheConnection() async throws {
        let server = try await ScriptedHTTPServer { _, _ in .silence }
        let pool = Self.pool(server)
        defer { pool.retire() }
        let started = ContinuousClock.now
        await #expect(throws: UpstreamConnectionError.headTimeout) { try await Self.post(pool, headWithin: .milliseconds(150)) }
        #expect(ContinuousClock.now - started >= .milliseconds(150))
        #expect(try await Self.theConnectionCloses(server, pool))
    }

    @Test func aBodyThatStallsIsAReadTimeout() async throws {
        let server = try await ScriptedHTTPServer { _, _ in .parts([ScriptedHTTPServer.chunkedHead + ScriptedHTTPServer.chunk("data: one\n\n")]) }
        let pool = Self.pool(server, readTimeout: .milliseconds(200))
        defer { pool.retire() }
        let response = try await Self.post(pool)
        var iterator = response.body.makeAsyncIterator()
        #expect(try await iterator.next().map { String(buffer: $0) } == "data: one\n\n")
        await #expect(throws: UpstreamConnectionError.readTimeout) { _ = try await iterator.next() }
        #expect(try await Self.theConnectionCloses(server, pool))
    }

    @Test func aBodyUnfinishedAtTheBodyDeadlineIsABodyTimeout() async throws {
        let server = try await ScriptedHTTPServer { _, _ in .parts(["HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart"]) }
        let pool = Self.pool(server)
        defer { pool.retire() }
        let response = try await pool.post(
            path: "/chat/completions", headers: [], body: ByteBuffer(string: "{}"), headDeadline: .now() + .seconds(5),
            bodyDeadline: .now() + .milliseconds(150))
        #expect(response.body.endsAtDeadline)
        await #expect(throws: UpstreamConnectionError.bodyTimeout) { _ = try await response.body.collect(upTo: 1024) }
        #expect(try await Self.theConnectionCloses(server, pool))
    }

    @Test func aBodyCutShortIsAnError() async throws {
        let server = try await ScriptedHTTPServer { _, _ in
            .parts(["HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n", "only part"], close: true)
        }
        let pool = Self.pool(server)
        defer { pool.retire() }
        let response = try await Self.post(pool)
        await #expect(throws: (any Error).self) { _ = try await response.body.collect(upTo: 1024) }
    }

    @Test func aReaderThatLeavesEarlyClosesTheConnection() async throws {
        let server = try await ScriptedHTTPServer { _, index in
            index == 0 ? .parts([ScriptedHTTPServer.chunkedHead + ScriptedHTTPServer.chunk("data: one\n\n")]) : .parts([ScriptedHTTPServer.ok("fresh")])
        }
        let pool = Self.pool(server)
        defer { pool.retire() }
        do {
            let response = try await Self.post(pool)
            var iterator = response.body.makeAsyncIterator()
            #expect(try await iterator.next() != nil)
        }
        #expect(try await Self.theConnectionCloses(server, pool))
        #expect(String(buffer: try await Self.post(pool).body.collect(upTo: 1024)) == "fresh")
        #expect(server.connections == 2)
    }

    @Test func cancellingTheWaitForTheHeadClosesTheConnection() async throws {
        let server = try await ScriptedHTTPServer { _, _ in .silence }
        let pool = Self.pool(server)
        defer { pool.retire() }
        let waiting = Task { try await Self.post(pool) }
        #expect(try await Self.eventually { server.received.count == 1 })
        waiting.cancel()
        await #expect(throws: CancellationError.self) { _ = try await waiting.value }
        #expect(try await Self.theConnectionCloses(server, pool))
    }

    @Test func pastTheConnectionLimitARequestFailsAtOnce() async throws {
        let server = try await ScriptedHTTPServer { _, _ in .silence }
        let pool = Self.pool(server, maximumConnections: 1)
        defer { pool.retire() }
        let first = Task { try await Self.post(pool) }
        #expect(try await Self.eventually { server.received.count == 1 })
        await #expect(throws: UpstreamConnectionError.tooManyConnections(1)) { try await Self.post(pool) }
        first.cancel()
        _ = try? await first.value
    }

    @Test func anAnswerBeforeTheWholeRequestWentOutIsNotFollowedByAnotherRequest() async throws {
        // The server refuses at the head and stops reading; the rest of a large body is still on its way.
        let server = try await ScriptedHTTPServer(answerOnHead: true) { _, index in
            .parts(["HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n"])
        }
        let pool = Self.pool(server)
        defer { pool.retire() }
        let large = String(repeating: "x", count: 32 * 1024 * 1024)
        #expect(try await Self.post(pool, large).status == .payloadTooLarge)
        #expect(try await Self.post(pool, "{}", headWithin: .seconds(2)).status == .payloadTooLarge)
        #expect(server.connections == 2, "the first connection still had request bytes to send")
    }

    @Test func aRetiredPoolFinishesTheAnswerInFlightThenClosesItsConnections() async throws {
        // A reload that changes the provider's address or timers retires its pools.
        let server = try await ScriptedHTTPServer { _, index in
            index == 0 ? .parts([ScriptedHTTPServer.ok("kept")]) : .parts([ScriptedHTTPServer.ok("late")], pause: .milliseconds(200))
        }
        let pool = Self.pool(server)
        _ = try await Self.post(pool).body.collect(upTo: 1024)
        let inFlight = Task { String(buffer: try await Self.post(pool).body.collect(upTo: 1024)) }
        #expect(try await Self.eventually { server.received.count == 2 })
        pool.retire()
        #expect(try await inFlight.value == "late")
        #expect(try await Self.eventually { pool.openConnections == 0 && server.closedConnections == server.connections })
    }

    @Test func connectionsResetAtOnceAreCountedOutExactlyOnce() async throws {
        let reset = try await ResetServer()
        let pool = UpstreamConnectionPool(
            target: UpstreamTarget(baseURL: "http://127.0.0.1:\(reset.port)/v1")!, loop: Self.loop, connectTimeout: .seconds(2),
            readTimeout: .seconds(5), maximumConnections: 2)
        defer { pool.retire() }
        for _ in 0..<20 {
            await #expect(throws: (any Error).self) {
                _ = try await pool.post(path: "/chat/completions", headers: [], body: ByteBuffer(string: "{}"), headDeadline: .now() + .seconds(5))
            }
        }
        // A miscount would leave the pool full (every later request refused) or below zero.
        #expect(try await Self.eventually { pool.openConnections == 0 }, "open: \(pool.openConnections)")
        await reset.close()
    }

    @Test(arguments: ["evil\r\nx-injected: 1", "line\nbreak"])
    func aHeaderValueWithALineBreakIsNeverSent(value: String) async throws {
        let server = try await ScriptedHTTPServer { _, _ in .parts([ScriptedHTTPServer.ok("{}")]) }
        let pool = Self.pool(server)
        defer { pool.retire() }
        await #expect(throws: (any Error).self) { try await Self.post(pool, headers: [("x-custom", value)]) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(server.received.isEmpty)
    }

    @Test func aBodyLargerThanTheLimitIsRefused() async throws {
        let server = try await ScriptedHTTPServer { _, _ in .parts([ScriptedHTTPServer.ok(String(repeating: "x", count: 5000))]) }
        let pool = Self.pool(server)
        defer { pool.retire() }
        await #expect(throws: UpstreamConnectionError.responseTooLarge(4096)) { _ = try await Self.post(pool).body.collect(upTo: 4096) }
    }
}
