import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
@testable import GatewayCore

/// The real `llm-gateway serve` binary running on a free loopback port with a configuration written for it.
final class DaemonProcess: @unchecked Sendable {
    let port: Int
    let configPath: String
    /// The admin socket: `admin.socket` of the configuration, else one in a private folder of its own.
    let adminSocket: String
    /// Where the daemon's output goes, for `logTail` when a test fails.
    let logPath: String
    private let process = Process()

    /// Starts the daemon; `configuration` receives the port it must listen on and returns the YAML.
    /// Unless the YAML has an `admin:` section, the daemon gets an admin socket of its own (the default one in
    /// /run is shared by every daemon on the machine).
    init(environment: [String: String] = [:], configuration: (Int) -> String) async throws {
        port = try await Self.freePort()
        let name = UUID().uuidString
        configPath = NSTemporaryDirectory() + "daemon-\(name).yaml"
        logPath = NSTemporaryDirectory() + "daemon-\(name).log"
        var yaml = configuration(port)
        if yaml.hasPrefix("admin:") || yaml.contains("\nadmin:") {
            adminSocket = ConfigLoader.parse(yaml: yaml, file: "daemon.yaml", environment: [:]).config?.admin.socket ?? ""
        } else {
            let directory = NSTemporaryDirectory() + "daemon-admin-\(name.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            adminSocket = directory + "/admin.sock"
            yaml += "\nadmin: {socket: \"\(adminSocket)\"}\n"
        }
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: ProcessRunner.gatewayBinary)
        process.arguments = ["serve", "--config", configPath]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath) ?? FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
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

    /// The last `lines` lines the daemon wrote: put it in a failing expectation's comment.
    func logTail(lines: Int = 40) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return "daemon log (\(logPath)):\n" + text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
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

    deinit { try? FileManager.default.removeItem(atPath: logPath) }

    private static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }
}
