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

    /// A provider whose API key names a variable that is never set (its `api_key` at 5:14).
    static let providerWithUnsetKey = """
        providers:
          anthropic:
            type: anthropic
            base_url: https://api.anthropic.com
            api_key: ${LLM_GATEWAY_TEST_UNSET_VARIABLE}
        """

    @Test func unsetProviderVariableIsAWarningNotAnError() async throws {
        let path = try writeConfig(Self.providerWithUnsetKey)
        let result = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["check", "--config", path])
        #expect(result.status == 0)
        #expect(result.stderr.contains("warning"))
        #expect(result.stderr.contains("LLM_GATEWAY_TEST_UNSET_VARIABLE"))
    }

    /// Like `nginx -t`: every warning names its file, line and column, so an editor can jump to it.
    @Test func checkPrintsEveryWarningWithItsPosition() async throws {
        let path = try writeConfig(Self.providerWithUnsetKey + "\nmodels:\n  house-model: {provider: anthropic, upstream: house-model-1}\n")
        let result = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["check", "--config", path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "\(path): configuration is valid (3 warning(s))\n")
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(result.stderr)")
        for line in lines {
            #expect(line.wholeMatch(of: /(.+):([0-9]+):([0-9]+): warning: .+/)?.output.1 == path[...], "\(line)")
        }
        #expect(lines.contains { $0.hasPrefix("\(path):5:14: warning: providers.anthropic.api_key:") })
        #expect(lines.contains { $0.hasPrefix("\(path):7:3: warning: models.house-model:") })
        #expect(lines.contains { $0.hasPrefix("\(path):1:1: warning: keys: no keys configured") })
    }

    /// Commands that read the file only to find the request log or the admin socket keep the file's warnings
    /// (an unset provider key, no keys) to `serve` and `check`: their own output is all they print.
    @Test func commandsThatOnlyReadTheLogOrTheSocketPrintNoWarnings() async throws {
        let folder = NSTemporaryDirectory() + "quiet-\(UUID().uuidString)"
        let path = try writeConfig(Self.providerWithUnsetKey + """

            admin: {socket: \(folder)/admin.sock}
            request_log: {backend: sqlite, path: \(folder)/requests.db}
            """)
        let checked = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["check", "--config", path])
        #expect(checked.stdout.contains("(2 warning(s))"), "\(checked.stdout)")

        let migrated = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["migrate", "--config", path])
        #expect(migrated.status == 0, "\(migrated.stderr)")
        #expect(migrated.stderr == "")
        let stats = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["stats", "--config", path, "--json"])
        #expect(stats.status == 0, "\(stats.stderr)")
        #expect(stats.stderr == "")
        #expect(stats.stdout == "[]\n")
        // No daemon listens: the one line on standard error is that error.
        let ctl = try await ProcessRunner.run(ProcessRunner.gatewayBinary, ["ctl", "status", "--config", path])
        #expect(ctl.status == 2)
        #expect(ctl.stderr.split(separator: "\n").count == 1, "\(ctl.stderr)")
        #expect(!ctl.stderr.contains("warning"))
        #expect(ctl.stderr.contains("\(folder)/admin.sock"), "\(ctl.stderr)")
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
