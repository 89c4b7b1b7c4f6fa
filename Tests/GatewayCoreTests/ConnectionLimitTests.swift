import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import GatewayCore

/// Idle, slow and numerous client connections: bounded by `server.idle_timeout`, `server.header_timeout` and
/// `server.max_connections`, while keyed clients keep being answered.
@Suite("Client connections", .timeLimit(.minutes(2)))
struct ConnectionLimitTests {
    static let hello: JSON = ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "hi"]]]

    /// Opens `count` connections that send `prefix` (maybe nothing) and then nothing more.
    static func openIdle(_ count: Int, port: Int, sending prefix: String = "") async throws -> [any Channel] {
        var channels: [any Channel] = []
        for _ in 0..<count {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            if !prefix.isEmpty { try await channel.writeAndFlush(ByteBuffer(string: prefix)).get() }
            channels.append(channel)
        }
        return channels
    }

    /// Whether every channel has been closed (by the gateway) within `limit`.
    static func allClosed(_ channels: [any Channel], within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if channels.allSatisfy({ !$0.isActive }) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// A thousand sockets opened without a request, from a process of their own against the daemon binary (so
    /// this test process holds no more than a few descriptors: Foundation's `Process.run` crashes when a process
    /// that spawns has descriptors past 1024 open, and other suites spawn servers meanwhile).
    static let idleOpener = """
        import selectors, socket, sys, time
        port, count = int(sys.argv[1]), int(sys.argv[2])
        sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        print("open", flush=True)
        sys.stdin.readline()
        selector = selectors.DefaultSelector()
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        closed, deadline = 0, time.time() + 30
        while closed < count and time.time() < deadline:
            for key, _ in selector.select(timeout=0.5):
                if key.fileobj.recv(1024) == b"":
                    selector.unregister(key.fileobj)
                    closed += 1
        print("closed", closed, flush=True)
        """

    @Test func aThousandIdleConnectionsLeaveKeyedClientsAnsweredAndAreClosed() async throws {
        try await GatewayHarness.with { fakes in
            let upstream = fakes.openai.baseURL(port: fakes.fakePorts[.openai]!)
            let daemon = try await DaemonProcess { port in
                """
                server: {listen: "127.0.0.1:\(port)", header_timeout: 2s}
                providers:
                  openai: {type: openai, base_url: "\(upstream)", api_key: "\(fakes.openai.key)"}
                keys:
                  - {name: ops, sha256: \(KeyHash.sha256Hex(GatewayHarness.clientKey))}
                request_log: {backend: off}
                """
            }
            let opener = Process()
            opener.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            opener.arguments = ["python3", "-c", Self.idleOpener, String(daemon.port), "1000"]
            let input = Pipe(), output = Pipe()
            opener.standardInput = input
            opener.standardOutput = output
            try opener.run()
            let lines = output.fileHandleForReading
            #expect(String(decoding: lines.availableData, as: UTF8.self).hasPrefix("open"))
            let api = GatewayHarness(
                port: daemon.port, openai: fakes.openai, anthropic: fakes.anthropic, gemini: fakes.gemini, fakePorts: fakes.fakePorts,
                config: fakes.config, records: fakes.records)
            let reply = try await api.post(json: Self.hello)
            #expect(reply.status == 200)
            input.fileHandleForWriting.write(Data("go\n".utf8))
            let report = String(decoding: lines.readDataToEndOfFile(), as: UTF8.self)
            opener.waitUntilExit()
            #expect(report.contains("closed 1000"), "the gateway closes connections that never send a request: \(report)")
            #expect(await daemon.stop() == 0)
        }
    }

    @Test func aHeadThatTricklesInIsCutOff() async throws {
        try await GatewayHarness.with(configure: { config in
            config.server.headerTimeout = .milliseconds(300)
        }) { gateway in
            let slow = try await Self.openIdle(3, port: gateway.port, sending: "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            #expect(await Self.allClosed(slow, within: .seconds(10)))
        }
    }

    @Test func anIdleKeptAliveConnectionIsClosedAfterTheIdleTimeout() async throws {
        try await GatewayHarness.with(configure: { config in
            config.server.idleTimeout = .milliseconds(300)
        }) { gateway in
            let channels = try await Self.openIdle(1, port: gateway.port, sending: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await Self.allClosed(channels, within: .seconds(10)))
        }
    }

    @Test func beyondMaxConnectionsTheListenerWaitsForOneToClose() async throws {
        try await GatewayHarness.with(configure: { config in
            config.server.maxConnections = 4
            config.server.headerTimeout = .milliseconds(500)
        }) { gateway in
            // More than the limit: the listener accepts a few at a time, so some beyond it may get in before it stops.
            // The clock starts before they open: each idle one's header timeout runs from when it was accepted, so
            // the bound below holds however long opening them takes on a busy machine.
            let started = ContinuousClock.now
            let idle = try await Self.openIdle(12, port: gateway.port)
            try await Task.sleep(for: .milliseconds(100))
            // A new connection is accepted only once the header timeout has closed idle ones.
            let body = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
            let answer = try await gateway.raw(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(GatewayHarness.clientKey)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(200))")
            #expect(ContinuousClock.now - started >= .milliseconds(450), "no room until the header timeout (500 ms) closed idle ones")
            for channel in idle { try? await channel.close() }
        }
    }

    @Test func connectionSettingsAreReadAndChecked() {
        let result = ConfigLoader.parse(
            yaml: "server: {idle_timeout: 90s, header_timeout: 5s, max_connections: 100}\nkeys: []\n", file: "gateway.yaml", environment: [:])
        #expect(result.config?.server.idleTimeout == .seconds(90))
        #expect(result.config?.server.headerTimeout == .seconds(5))
        #expect(result.config?.server.maxConnections == 100)
        let bad = ConfigLoader.parse(yaml: "server: {idle_timeout: 0, max_connections: 0}\n", file: "gateway.yaml", environment: [:])
        #expect(bad.errors.count >= 2)
    }
}
