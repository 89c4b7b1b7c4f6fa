import Testing
@testable import GatewayCore

/// The official `openai` and `anthropic` Python SDKs against the running gateway, for all three providers.
@Suite("Official Python SDKs", .timeLimit(.minutes(2)))
struct SDKCompatibilityTests {
    @Test func officialPythonSDKWorksUnchanged() async throws {
        let script = ProcessRunner.packageRoot.appendingPathComponent("Tests/sdk/openai_sdk_check.py").path
        try await GatewayHarness.with { gateway in
            let result = try await ProcessRunner.run(
                "/usr/bin/env", ["python3", script, "gpt-4o-mini=openai", "claude-haiku-4-5=anthropic", "gemini-2.5-flash=gemini"],
                environment: ["GATEWAY_URL": gateway.baseURL, "GATEWAY_KEY": GatewayHarness.clientKey])
            #expect(result.status == 0, "python SDK check failed (is the openai package installed? `make test` installs it):\n\(result.stdout)\n\(result.stderr)")
            #expect(result.stdout.contains("sdk checks passed"))
        }
    }

    @Test func officialPythonSDKEmbeddingsFloatAndBase64() async throws {
        let script = ProcessRunner.packageRoot.appendingPathComponent("Tests/sdk/openai_embeddings_check.py").path
        try await GatewayHarness.with { gateway in
            let result = try await ProcessRunner.run(
                "/usr/bin/env", ["python3", script, "text-embedding-3-small=openai", "gemini-embedding-001=gemini"],
                environment: ["GATEWAY_URL": gateway.baseURL, "GATEWAY_KEY": GatewayHarness.clientKey])
            #expect(result.status == 0, "python SDK embeddings check failed:\n\(result.stdout)\n\(result.stderr)")
            #expect(result.stdout.contains("sdk embeddings checks passed"))
        }
    }

    @Test func officialAnthropicSDKWorksUnchangedOnEveryProvider() async throws {
        let script = ProcessRunner.packageRoot.appendingPathComponent("Tests/sdk/anthropic_sdk_check.py").path
        try await GatewayHarness.with(configure: AnthropicMessagesTests.configure) { gateway in
            let result = try await ProcessRunner.run(
                "/usr/bin/env",
                ["python3", script, "claude-sonnet-4-5-20250929=anthropic", "claude-haiku-4-5-20251001=openai", "gemini-behind-messages=gemini"],
                environment: ["GATEWAY_URL": gateway.baseURL, "GATEWAY_KEY": GatewayHarness.clientKey])
            #expect(result.status == 0, "anthropic SDK check failed (is the anthropic package installed? `make test` installs it):\n\(result.stdout)\n\(result.stderr)")
            #expect(result.stdout.contains("anthropic sdk checks passed"))
        }
    }
}
