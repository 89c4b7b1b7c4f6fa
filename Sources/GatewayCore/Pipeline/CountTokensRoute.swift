import Hummingbird
import NIOCore

/// `POST /v1/messages/count_tokens`: a Messages body's input tokens.
///
/// For a model served by an Anthropic provider the count is Anthropic's own, asked through the gateway's provider
/// key with the client's body as sent; for any other provider it is the gateway's estimate (a token per four
/// characters of text and tool definitions, `TokenEstimate`), marked by `X-Token-Count: estimate`. Counting is
/// free: no admission, no cache, no spend.
public struct CountTokensRoute: Sendable {
    let dialect = AnthropicMessagesDialect(upstreamPath: "/v1/messages/count_tokens")
    let chain: UpstreamChain

    public init(chain: UpstreamChain) {
        self.chain = chain
    }

    public func handle(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        guard let snapshot = context.snapshot, let key = context.key else { throw GatewayError.unauthorized("Missing API key.") }
        let body = try await ChatPipeline<AnthropicMessagesDialect>.body(of: request, limit: snapshot.config.server.maxBodyBytes)
        let counted = try dialect.decode(body, headers: request.headers)
        context.outcome?.update { $0.model = counted.model }
        let model = try ChatPipeline<AnthropicMessagesDialect>.resolve(counted.model, kind: .chat, key: key, in: snapshot)
        guard model.provider.type.adapter.nativeDialect == .anthropicMessages else {
            var headers = HTTPFields()
            headers[.tokenCount] = "estimate"
            return .json(["input_tokens": .int(Int64(TokenEstimate.promptTokens(for: counted)))], headers: headers)
        }
        let opened: OpenedUpstream
        do {
            opened = try await chain.proxy.open(
                counted, model: model, deadline: ContinuousClock.now + model.provider.timeouts.total, logger: context.logger)
        } catch {
            throw error.error
        }
        let (json, _) = try await chain.proxy.body(of: opened)
        guard let tokens = json["input_tokens"], tokens.intValue != nil else {
            throw GatewayError.badGateway("Provider '\(model.provider.name)' answered count_tokens without 'input_tokens'.")
        }
        var headers = HTTPFields()
        headers[.tokenCount] = "provider"
        return .json(["input_tokens": .int(Int64(Usage.count(tokens)))], headers: headers)
    }
}
