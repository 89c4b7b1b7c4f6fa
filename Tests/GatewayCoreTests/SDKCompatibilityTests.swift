import Foundation
import Testing
@testable import GatewayCore

/// The official `openai` Python SDK against the running gateway, for all three providers.
@Suite("OpenAI Python SDK")
struct SDKCompatibilityTests {
    @Test func officialPythonSDKWorksUnchanged() async throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("sdk/openai_sdk_check.py").path
        try await GatewayHarness.with { gateway in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script, "gpt-4o-mini=openai", "claude-haiku-4-5=anthropic", "gemini-2.5-flash=gemini"]
            var environment = ProcessInfo.processInfo.environment
            environment["GATEWAY_URL"] = gateway.baseURL
            environment["GATEWAY_KEY"] = GatewayHarness.clientKey
            process.environment = environment
            let logPath = NSTemporaryDirectory() + "sdk-check-\(UUID().uuidString).log"
            FileManager.default.createFile(atPath: logPath, contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            process.standardOutput = log
            process.standardError = log
            // Wait without blocking a thread of the cooperative pool: the gateway under test runs on it too.
            let (exited, exit) = AsyncStream<Void>.makeStream()
            process.terminationHandler = { _ in exit.finish() }
            try process.run()
            for await _ in exited {}
            try log.close()
            let data = FileManager.default.contents(atPath: logPath) ?? Data()
            let text = String(decoding: data, as: UTF8.self)
            #expect(process.terminationStatus == 0, "python SDK check failed (is the openai package installed? `make test` installs it):\n\(text)")
            #expect(text.contains("sdk checks passed"))
        }
    }
}
