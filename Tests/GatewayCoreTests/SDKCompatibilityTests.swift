import Testing
@testable import GatewayCore

/// The official `openai` Python SDK against the running gateway, for all three providers.
@Suite("OpenAI Python SDK", .timeLimit(.minutes(2)))
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
}
