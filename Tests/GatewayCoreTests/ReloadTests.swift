import AsyncHTTPClient
import Foundation
import Logging
import Testing
@testable import GatewayCore

/// Validate-then-swap reloads, in process and through SIGHUP to the real binary.
@Suite("Reload", .timeLimit(.minutes(2)))
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
        let daemon = try await DaemonProcess { port in Self.config(keyName: "first", key: "gw_first", listen: "127.0.0.1:\(port)") }
        #expect(await daemon.status("/v1/models", key: "gw_first") == 200)

        try Self.config(keyName: "second", key: "gw_second", listen: "127.0.0.1:\(daemon.port)")
            .write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        kill(daemon.pid, SIGHUP)
        var swapped = false
        for _ in 0..<50 where !swapped {
            swapped = await daemon.status("/v1/models", key: "gw_second") == 200
            if !swapped { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(swapped)
        #expect(daemon.isRunning)
        #expect(await daemon.status("/v1/models", key: "gw_first") == 401)
        #expect(await daemon.stop() == 0)
    }
}
