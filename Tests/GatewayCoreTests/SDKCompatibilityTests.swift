import Testing
@testable import GatewayCore

/// The official `openai` and `anthropic` Python SDKs against the running gateway, for all three providers
/// (`Tests/sdk/`; `make test` installs the packages).
@Suite("Official Python SDKs", .timeLimit(.minutes(2)))
struct SDKCompatibilityTests {
    /// Runs `Tests/sdk/<script>` with `models` (`name=provider`) against a gateway and expects it to end with `passed`.
    static func check(
        _ script: String, _ models: [String], passed: String, configure: @Sendable (inout GatewayConfig) -> Void = { _ in },
        requestLogStore: (@Sendable () async throws -> any RequestLogStore)? = nil
    ) async throws {
        let path = ProcessRunner.packageRoot.appendingPathComponent("Tests/sdk/\(script)").path
        try await GatewayHarness.with(configure: configure, requestLogStore: requestLogStore) { gateway in
            let result = try await ProcessRunner.run(
                "/usr/bin/env", ["python3", path] + models,
                environment: ["GATEWAY_URL": gateway.baseURL, "GATEWAY_KEY": GatewayHarness.clientKey])
            #expect(result.status == 0, "\(script) failed (are the SDKs installed? `make test` installs them):\n\(result.stdout)\n\(result.stderr)")
            #expect(result.stdout.contains(passed))
        }
    }

    static let chatModels = ["gpt-4o-mini=openai", "claude-haiku-4-5=anthropic", "gemini-2.5-flash=gemini"]

    @Test func officialPythonSDKWorksUnchanged() async throws {
        try await Self.check("openai_sdk_check.py", Self.chatModels, passed: "sdk checks passed")
    }

    @Test func officialPythonSDKEmbeddingsFloatAndBase64() async throws {
        try await Self.check(
            "openai_embeddings_check.py", ["text-embedding-3-small=openai", "gemini-embedding-001=gemini"], passed: "sdk embeddings checks passed")
    }

    @Test func officialAnthropicSDKWorksUnchangedOnEveryProvider() async throws {
        try await Self.check(
            "anthropic_sdk_check.py",
            ["claude-sonnet-4-5-20250929=anthropic", "claude-haiku-4-5-20251001=openai", "gemini-behind-messages=gemini"],
            passed: "anthropic sdk checks passed", configure: AnthropicMessagesTests.configure)
    }

    @Test func officialOpenAISDKResponsesOnEveryProvider() async throws {
        // `native` is passed through to a provider serving the Responses API; the others are translated.
        try await Self.check(
            "openai_responses_check.py", Self.chatModels + ["native=openai"], passed: "responses sdk checks passed",
            configure: ResponsesPassthroughTests.configure, requestLogStore: StoredResponsesRouteTests.sqlite())
    }
}
