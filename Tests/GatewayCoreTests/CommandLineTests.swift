import Foundation
import Testing
@testable import GatewayCore

/// The `llm-gateway` executable as an operator runs it.
@Suite("Command line", .timeLimit(.minutes(2)))
struct CommandLineTests {
    func writeConfig(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "gateway-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func checkAcceptsTheExampleConfiguration() async throws {
        let example = ProcessRunner.packageRoot.appendingPathComponent("gateway.yaml.example").path
        let result = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["check", "--config", example])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("configuration is valid"))
    }

    @Test func checkPrintsEveryProblemWithItsPositionAndExits1() async throws {
        let path = try writeConfig("""
            server:
              listen: 127.0.0.1:8080
              max_bodybytes: 1MiB
            providers:
              openai:
                type: openai
                base_url: https://api.openai.com/v1
                timeouts: {connect: 5x}
            models:
              mine:
                provider: nowhere
            """)
        let result = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["check", "--config", path])
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("\(path):3:3: error:") && $0.contains("max_bodybytes") })
        #expect(lines.contains { $0.hasPrefix("\(path):8:25: error:") && $0.contains("5x") })
        #expect(lines.contains { $0.hasPrefix("\(path):11:15: error:") && $0.contains("nowhere") })
    }

    @Test func unsetProviderVariableIsAWarningNotAnError() async throws {
        let path = try writeConfig("""
            providers:
              anthropic:
                type: anthropic
                base_url: https://api.anthropic.com
                api_key: ${LLM_GATEWAY_TEST_UNSET_VARIABLE}
            """)
        let result = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["check", "--config", path])
        #expect(result.status == 0)
        #expect(result.stderr.contains("warning"))
        #expect(result.stderr.contains("LLM_GATEWAY_TEST_UNSET_VARIABLE"))
    }

    @Test func missingFileIsAnError() async throws {
        let result = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["check", "--config", "/nonexistent/gateway.yaml"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("/nonexistent/gateway.yaml"))
    }

    @Test func keysGenerateAndHashAgree() async throws {
        let generated = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["keys", "generate", "--name", "web-app"])
        #expect(generated.status == 0)
        let key = try #require(generated.stdout.split(separator: "\n").first.map(String.init))
        #expect(key.hasPrefix("gw_"))
        #expect(key.count >= 35)
        #expect(generated.stdout.contains("name: web-app"))
        let hashed = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["keys", "hash"], stdin: key + "\n")
        #expect(hashed.status == 0)
        let hash = hashed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(hash == KeyHash.sha256Hex(key))
        #expect(generated.stdout.contains("sha256: \(hash)"))
    }

    @Test func versionHelpAndUsageErrors() async throws {
        let version = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == GatewayVersion.current)
        let help = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("serve"))
        let wrong = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["serve", "--no-such-flag"])
        #expect(wrong.status != 0)
        #expect(!wrong.stderr.isEmpty)
    }

    @Test func serveRefusesAnInvalidFileAndRunsAValidOne() async throws {
        let invalid = try writeConfig("server: {listen: nowhere}\n")
        let refused = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["serve", "--config", invalid])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("server.listen"))
    }
}
