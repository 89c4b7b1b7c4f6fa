import AsyncHTTPClient
import Foundation
import Logging
import Testing
@testable import GatewayCore

/// Validate-then-swap reloads, in process and through SIGHUP to the real binary.
@Suite("Reload")
struct ReloadTests {
    static func config(keyName: String, key: String, listen: String = "127.0.0.1:0") -> String {
        """
        server: {listen: "\(listen)"}
        providers:
          local: {type: openai, base_url: "http://127.0.0.1:9/v1"}
        keys:
          - name: \(keyName)
            sha256: \(KeyHash.sha256Hex(key))
        """
    }

    @Test func aValidFileIsSwappedInAndAnInvalidOneChangesNothing() throws {
        let path = NSTemporaryDirectory() + "reload-\(UUID().uuidString).yaml"
        try Self.config(keyName: "first", key: "gw_first").write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = try #require(ConfigLoader.load(path: path, environment: [:]).config)
        var logger = Logger(label: "reload-test")
        logger.logLevel = .critical
        let gateway = try Gateway(config: loaded, logger: logger)
        let reloader = ConfigReloader(path: path, gateway: gateway, environment: { [:] })
        #expect(gateway.store.snapshot.key(forSecret: "gw_first")?.name == "first")

        try Self.config(keyName: "second", key: "gw_second", listen: "127.0.0.1:8099").write(toFile: path, atomically: true, encoding: .utf8)
        let applied = reloader.reload()
        #expect(applied.applied)
        #expect(applied.restartRequired == ["server.listen"])
        #expect(gateway.store.snapshot.generation == 2)
        #expect(gateway.store.snapshot.key(forSecret: "gw_first") == nil)
        #expect(gateway.store.snapshot.key(forSecret: "gw_second")?.name == "second")

        try "server: {listen: nowhere}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let refused = reloader.reload()
        #expect(!refused.applied)
        #expect(refused.problems.contains { $0.isError && $0.path == "server.listen" })
        #expect(gateway.store.snapshot.generation == 2)
        #expect(gateway.store.snapshot.key(forSecret: "gw_second")?.name == "second")
        gateway.clients.shutdownSync()
    }

    @Test func sighupReloadsTheRunningDaemon() async throws {
        let port = Int.random(in: 20_000..<40_000)
        let path = NSTemporaryDirectory() + "sighup-\(UUID().uuidString).yaml"
        try Self.config(keyName: "first", key: "gw_first", listen: "127.0.0.1:\(port)").write(toFile: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProcessRunner.gatewayBinary)
        process.arguments = ["serve", "--config", path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        func modelsStatus(_ key: String) async -> Int? {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/models")
            request.headers.add(name: "authorization", value: "Bearer \(key)")
            guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)) else { return nil }
            _ = try? await response.body.collect(upTo: 1 << 20)
            return Int(response.status.code)
        }
        var ready = false
        for _ in 0..<100 where !ready {
            ready = await modelsStatus("gw_first") == 200
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        try #require(ready, "the daemon did not start")

        try Self.config(keyName: "second", key: "gw_second", listen: "127.0.0.1:\(port)").write(toFile: path, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        var swapped = false
        for _ in 0..<50 where !swapped {
            swapped = await modelsStatus("gw_second") == 200
            if !swapped { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(swapped)
        #expect(process.isRunning)
        #expect(await modelsStatus("gw_first") == 401)

        process.terminate()
        let (exited, exit) = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in exit.finish() }
        if process.isRunning { for await _ in exited {} }
        #expect(process.terminationStatus == 0)
    }
}
