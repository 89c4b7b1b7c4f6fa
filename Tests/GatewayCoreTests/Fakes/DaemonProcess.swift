import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix

/// The real `llm-gateway serve` binary running on a free loopback port with a configuration written for it.
final class DaemonProcess: @unchecked Sendable {
    let port: Int
    let configPath: String
    private let process = Process()

    /// Starts the daemon; `configuration` receives the port it must listen on and returns the YAML.
    init(configuration: (Int) -> String) async throws {
        port = try await Self.freePort()
        configPath = NSTemporaryDirectory() + "daemon-\(UUID().uuidString).yaml"
        try configuration(port).write(toFile: configPath, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: ProcessRunner.gatewayBinary)
        process.arguments = ["serve", "--config", configPath]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<150 {
            if await status("/healthz", key: nil) == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        process.terminate()
        throw StartFailed()
    }

    struct StartFailed: Error, CustomStringConvertible {
        var description: String { "llm-gateway serve did not start (is the binary built? `make test` builds it)" }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// The status of a GET, or nil when the daemon does not answer.
    func status(_ path: String, key: String?) async -> Int? {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        if let key { request.headers.add(name: "authorization", value: "Bearer \(key)") }
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)) else { return nil }
        _ = try? await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    /// Sends SIGTERM and waits for the exit status.
    func stop() async -> Int32 {
        let (exited, exit) = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in exit.finish() }
        if process.isRunning {
            process.terminate()
            for await _ in exited {}
        }
        return process.terminationStatus
    }

    private static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }
}
